#include "models/tokenizer/unicode.h"

#include <unicode/uchar.h>

#include <array>

namespace atrium::tok {

size_t Utf8SeqLen(uint8_t lead) {
  static constexpr size_t kLookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLookup[lead >> 4];
}

namespace {

bool IsCont(uint8_t b) { return (b & 0xC0) == 0x80; }

// One code point at `*pos`, or 0xFFFD and one byte consumed.
uint32_t DecodeOne(std::string_view s, size_t* pos) {
  const size_t i = *pos;
  const uint8_t b0 = static_cast<uint8_t>(s[i]);
  auto at = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  if (b0 < 0x80) {
    *pos += 1;
    return b0;
  }
  if ((b0 & 0xE0) == 0xC0 && i + 1 < s.size() && IsCont(at(1))) {
    *pos += 2;
    return ((b0 & 0x1F) << 6) | (at(1) & 0x3F);
  }
  if ((b0 & 0xF0) == 0xE0 && i + 2 < s.size() && IsCont(at(1)) && IsCont(at(2))) {
    *pos += 3;
    return ((b0 & 0x0F) << 12) | ((at(1) & 0x3F) << 6) | (at(2) & 0x3F);
  }
  if ((b0 & 0xF8) == 0xF0 && i + 3 < s.size() && IsCont(at(1)) && IsCont(at(2)) &&
      IsCont(at(3))) {
    const uint32_t cpt = ((b0 & 0x07) << 18) | ((at(1) & 0x3F) << 12) | ((at(2) & 0x3F) << 6) |
                         (at(3) & 0x3F);
    // llama.cpp would throw later on a code point past U+10FFFF; we replace it.
    if (cpt <= 0x10FFFF) {
      *pos += 4;
      return cpt;
    }
  }
  *pos += 1;
  return 0xFFFD;
}

}  // namespace

std::vector<uint32_t> DecodeUtf8(std::string_view text) {
  std::vector<uint32_t> out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) out.push_back(DecodeOne(text, &pos));
  return out;
}

void AppendUtf8(uint32_t cpt, std::string* out) {
  if (cpt <= 0x7F) {
    out->push_back(static_cast<char>(cpt));
  } else if (cpt <= 0x7FF) {
    out->push_back(static_cast<char>(0xC0 | (cpt >> 6)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else if (cpt <= 0xFFFF) {
    out->push_back(static_cast<char>(0xE0 | (cpt >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cpt >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
  }
}

Utf8Scan ScanUtf8(std::string_view s) {
  // Strict well-formedness (RFC 3629): no overlongs, no surrogates, <= U+10FFFF.
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t b0 = static_cast<uint8_t>(s[i]);
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 < 0x80) {
      ++i;
      continue;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
      len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      len = 3;
      if (b0 == 0xE0) lo = 0xA0;
      if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      len = 4;
      if (b0 == 0xF0) lo = 0x90;
      if (b0 == 0xF4) hi = 0x8F;
    } else {
      return {i, true};
    }
    for (size_t k = 1; k < len; ++k) {
      if (i + k >= s.size()) return {i, false};  // cut, may still complete
      const uint8_t b = static_cast<uint8_t>(s[i + k]);
      const bool ok = k == 1 ? (b >= lo && b <= hi) : IsCont(b);
      if (!ok) return {i, true};
    }
    i += len;
  }
  return {i, false};
}

bool IsValidUtf8(std::string_view bytes) { return ScanUtf8(bytes).complete == bytes.size(); }

CptFlags FlagsOf(uint32_t cpt) {
  CptFlags f;
  f.in_range = true;
  const auto c = static_cast<UChar32>(cpt);
  switch (u_charType(c)) {
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      f.letter = true;
      break;
    case U_DECIMAL_DIGIT_NUMBER:
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER:
      f.number = true;
      break;
    case U_DASH_PUNCTUATION:
    case U_START_PUNCTUATION:
    case U_END_PUNCTUATION:
    case U_CONNECTOR_PUNCTUATION:
    case U_OTHER_PUNCTUATION:
    case U_INITIAL_PUNCTUATION:
    case U_FINAL_PUNCTUATION:
      f.punctuation = true;
      break;
    default:
      break;
  }
  f.whitespace = u_hasBinaryProperty(c, UCHAR_WHITE_SPACE) != 0;
  return f;
}

uint32_t ToLower(uint32_t cpt) { return static_cast<uint32_t>(u_tolower(static_cast<UChar32>(cpt))); }

namespace {

struct ByteMaps {
  std::array<std::string, 256> byte_to_utf8;
  std::array<int, 324> cpt_to_byte;  // mapped code points are all < 0x144
  ByteMaps() {
    cpt_to_byte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cpt = printable ? b : 256 + n++;
      AppendUtf8(cpt, &byte_to_utf8[b]);
      cpt_to_byte[cpt] = b;
    }
  }
};

const ByteMaps& Maps() {
  static const ByteMaps maps;
  return maps;
}

}  // namespace

const std::string& ByteToUnicode(uint8_t byte) { return Maps().byte_to_utf8[byte]; }

int UnicodeToByte(uint32_t cpt) {
  return cpt < Maps().cpt_to_byte.size() ? Maps().cpt_to_byte[cpt] : -1;
}

}  // namespace atrium::tok
