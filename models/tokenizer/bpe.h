// Byte-level BPE (tokenizer.ggml.model = "gpt2"): pre-tokenize, map bytes to
// printable code points, then apply merges by rank (lowest first, leftmost on
// ties), as llama.cpp's llm_tokenizer_bpe.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

#include "models/gguf.h"
#include "models/tokenizer/pretokenize.h"
#include "models/tokenizer/vocab.h"

namespace atrium::tok {

class BpeTokenizer final : public VocabTokenizer {
 public:
  static StatusOr<std::unique_ptr<Tokenizer>> Create(const gguf::GgufFile& file);

  std::string TokenToPiece(int32_t id, bool render_special = false) const override;

 protected:
  void EncodeRaw(std::string_view text, bool after_special,
                 std::vector<int32_t>* out) const override;

 private:
  BpeTokenizer() = default;
  void EncodeWord(const std::string& word, std::vector<int32_t>* out) const;
  int Rank(std::string_view left, std::string_view right) const;

  PreTokenizer pre_ = PreTokenizer::kDefault;
  // llama3-style vocabularies take a word that is itself a token as is.
  bool ignore_merges_ = false;
  // "left right" -> rank (position in tokenizer.ggml.merges).
  std::unordered_map<std::string, int> ranks_;
};

}  // namespace atrium::tok
