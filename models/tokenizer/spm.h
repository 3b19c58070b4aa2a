// SentencePiece-style BPE over scores (tokenizer.ggml.model = "llama"), as
// llama.cpp's llm_tokenizer_spm: spaces become U+2581, adjacent symbols merge
// best score first, and text no token covers falls back to <0xXX> byte tokens.
#pragma once

#include <memory>
#include <string>

#include "models/gguf.h"
#include "models/tokenizer/vocab.h"

namespace atrium::tok {

class SpmTokenizer final : public VocabTokenizer {
 public:
  static StatusOr<std::unique_ptr<Tokenizer>> Create(const gguf::GgufFile& file);

  std::string TokenToPiece(int32_t id, bool render_special = false) const override;

 protected:
  void EncodeRaw(std::string_view text, bool after_special,
                 std::vector<int32_t>* out) const override;
  bool StripLeadingSpaceOnDecode() const override { return add_space_prefix_; }

 private:
  SpmTokenizer() = default;
  int32_t ByteToken(uint8_t byte) const;

  bool add_space_prefix_ = true;
  int32_t unk_id_ = -1;
  int32_t byte_ids_[256];
};

}  // namespace atrium::tok
