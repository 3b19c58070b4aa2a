// Pre-tokenizers of byte-level BPE: split text into words before merges, as
// the regexes named by tokenizer.ggml.pre do. Written by hand over code point
// categories (ICU) the way llama.cpp's unicode.cpp hand-writes the GPT-2 and
// llama3 regexes, so results match llama.cpp without a regex engine.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace atrium::tok {

enum class PreTokenizer {
  kDefault,  // "default": punctuation runs, GPT-2, number runs, digit triples
  kGpt2,     // "gpt-2", "gpt2": the GPT-2 regex
  kSmolLm,   // "smollm", "starcoder", ...: every digit alone, then GPT-2
  kLlama3,   // "llama3", "llama-bpe", ...: llama3 regex, \p{N}{1,3}
  kQwen2,    // "qwen2": llama3 regex with single digits
};

// The pre-tokenizer for a tokenizer.ggml.pre value; INVALID_ARGUMENT naming
// the value and the supported ones when unknown.
StatusOr<PreTokenizer> PreTokenizerFromName(std::string_view name);

// Splits `text` into words; each word comes back byte-encoded with the GPT-2
// byte -> code point map, ready for merges. Invalid UTF-8 bytes become U+FFFD
// first, as in llama.cpp.
std::vector<std::string> PreTokenize(PreTokenizer kind, std::string_view text);

}  // namespace atrium::tok
