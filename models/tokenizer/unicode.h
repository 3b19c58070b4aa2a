// Code point helpers shared by the tokenizers: UTF-8 decoding that treats bad
// bytes the way llama.cpp does, Unicode categories from ICU, and the GPT-2
// byte <-> printable code point mapping of byte-level BPE.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace atrium::tok {

// Length of the UTF-8 sequence a lead byte announces (1 for a stray
// continuation byte), from the high nibble alone as llama.cpp does.
size_t Utf8SeqLen(uint8_t lead);

// Decodes leniently, like llama.cpp's unicode_cpts_from_utf8: a byte that does
// not start a well-formed sequence becomes one U+FFFD. Overlong forms and
// surrogates are accepted as they are (llama.cpp does the same), so ids match.
std::vector<uint32_t> DecodeUtf8(std::string_view text);
void AppendUtf8(uint32_t cpt, std::string* out);

// Length of the longest prefix of `bytes` made of complete, well-formed UTF-8
// characters, and whether the rest is a cut (still completable) sequence.
struct Utf8Scan {
  size_t complete = 0;   // bytes that form whole characters
  bool invalid = false;  // the byte at `complete` can never start a character
};
Utf8Scan ScanUtf8(std::string_view bytes);
bool IsValidUtf8(std::string_view bytes);

// Categories as the pre-tokenizer regexes see them (\p{L}, \p{N}, \p{P}, \s).
struct CptFlags {
  bool letter = false;
  bool number = false;
  bool punctuation = false;
  bool whitespace = false;  // Unicode White_Space
  bool in_range = false;    // false only for "past the end of the chunk"
};
CptFlags FlagsOf(uint32_t cpt);
uint32_t ToLower(uint32_t cpt);

// GPT-2 byte-level mapping: every byte to a printable code point, as UTF-8.
const std::string& ByteToUnicode(uint8_t byte);
// The byte a mapped code point stands for, or -1 when it is not one of them.
int UnicodeToByte(uint32_t cpt);

}  // namespace atrium::tok
