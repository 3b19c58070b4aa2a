// What BPE and SentencePiece tokenizers share: the token table read from GGUF
// (texts, scores, types), special ids and add_bos / add_eos, end-of-generation
// ids, and the split of text around control / user-defined tokens that runs
// before either algorithm (llama.cpp's tokenizer_st_partition).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "models/gguf.h"
#include "models/tokenizer/tokenizer.h"
#include "runtime/status.h"

namespace atrium::tok {

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type); stored in files.
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// A piece of input after the special-token split: either raw text to run
// through the tokenizer algorithm, or one special token.
struct Fragment {
  int32_t token = -1;     // >= 0 for a special token
  std::string_view text;  // raw text otherwise
};

class VocabTokenizer : public Tokenizer {
 public:
  int32_t vocab_size() const override { return static_cast<int32_t>(texts_.size()); }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  bool add_bos() const override { return add_bos_; }
  bool add_eos() const { return add_eos_; }
  bool IsEndOfGeneration(int32_t id) const override { return eog_ids_.count(id) > 0; }
  bool IsControl(int32_t id) const override;
  std::optional<int32_t> TokenId(std::string_view piece) const override;

  std::vector<int32_t> Encode(std::string_view text, bool add_special,
                              bool parse_special) const override;

  TokenType type(int32_t id) const { return types_[id]; }
  const std::string& text(int32_t id) const { return texts_[id]; }
  float score(int32_t id) const { return scores_[id]; }

 protected:
  VocabTokenizer() = default;
  // Reads tokens, scores (optional), token types (optional) and the special
  // ids; `default_add_bos` is the model type's default when the file has no
  // tokenizer.ggml.add_bos_token.
  Status LoadVocab(const gguf::GgufFile& file, bool default_add_bos);

  // Appends the ids of raw text (no specials inside). `after_special` is true
  // when the fragment starts the input or follows a special token.
  virtual void EncodeRaw(std::string_view text, bool after_special,
                         std::vector<int32_t>* out) const = 0;

  // -1 when absent.
  int32_t Lookup(std::string_view text) const;

  // The symbol merging BPE and SentencePiece share (llama.cpp's
  // llm_tokenizer_bpe / llm_tokenizer_spm): text starts as one symbol per
  // UTF-8 code point, and adjacent symbols merge, the pair of highest
  // priority(left, right) first and the leftmost on ties, until no pair has
  // a priority (nullopt). Returns the final symbols, left to right.
  using MergePriority = std::function<std::optional<double>(std::string_view, std::string_view)>;
  static std::vector<std::string_view> MergeSymbols(std::string_view text, const MergePriority& priority);

  std::vector<Fragment> Partition(std::string_view text, bool parse_special) const;

  std::vector<std::string> texts_;
  std::vector<float> scores_;
  std::vector<TokenType> types_;
  std::unordered_map<std::string_view, int32_t> ids_;  // views into texts_

 private:
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  bool add_bos_ = false;
  bool add_eos_ = false;
  std::unordered_set<int32_t> eog_ids_;
  // Control, user-defined and unknown tokens, longest text first.
  std::vector<int32_t> specials_;
};

}  // namespace atrium::tok
