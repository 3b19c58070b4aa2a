// Tokenizers built from GGUF metadata: GPT-2 style byte-level BPE
// (tokenizer.ggml.model = "gpt2", with the pre-tokenizer tokenizer.ggml.pre
// names) and SentencePiece style (tokenizer.ggml.model = "llama"). Ids match
// llama.cpp's tokenizer for the same file.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/gguf.h"
#include "runtime/status.h"

namespace atrium {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Fails with a clear message for an unknown tokenizer.ggml.model or
  // tokenizer.ggml.pre, or inconsistent vocab arrays.
  static StatusOr<std::unique_ptr<Tokenizer>> FromGguf(const gguf::GgufFile& file);

  // text -> ids. add_special: prepend BOS / append EOS as the file's
  // tokenizer.ggml.add_bos_token / add_eos_token say. parse_special: text of
  // control and user-defined tokens ("<|im_start|>") maps to those tokens;
  // otherwise such text is tokenized as plain text.
  virtual std::vector<int32_t> Encode(std::string_view text, bool add_special,
                                      bool parse_special) const = 0;
  // A prompt (raw text or a chat template's output) -> ids: special-token
  // text read as such, and BOS prepended as the file says unless the text
  // already starts with the BOS token's text (a template that writes it).
  std::vector<int32_t> EncodePrompt(std::string_view text) const;
  // The bytes of one token. Control tokens give "" unless render_special.
  virtual std::string TokenToPiece(int32_t id, bool render_special = false) const = 0;
  std::string Decode(const std::vector<int32_t>& ids, bool render_special = false) const;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 when none
  virtual int32_t eos_id() const = 0;
  virtual bool add_bos() const = 0;
  // End of generation: EOS and the end-of-turn tokens (<|im_end|>,
  // <end_of_turn>, <|eot_id|>, ...).
  virtual bool IsEndOfGeneration(int32_t id) const = 0;
  virtual bool IsControl(int32_t id) const = 0;
  // The id of a token whose text is exactly `piece`, if any.
  virtual std::optional<int32_t> TokenId(std::string_view piece) const = 0;

 protected:
  // True for SentencePiece files with add_space_prefix: Encode put a space in
  // front of the text, and Decode drops it again from the first token.
  virtual bool StripLeadingSpaceOnDecode() const { return false; }
};

// Streams decoded text without ever splitting a UTF-8 character: bytes of an
// incomplete trailing character are held back until the next token.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool render_special = false)
      : tokenizer_(tokenizer), render_special_(render_special) {}
  // Text that is complete after this token (possibly "").
  std::string Push(int32_t id);
  // Whatever is held back; an invalid or cut sequence becomes U+FFFD.
  std::string Flush();

 private:
  const Tokenizer& tokenizer_;
  bool render_special_;
  std::string pending_;
};

}  // namespace atrium
