#include "models/tokenizer/pretokenize.h"

#include <cstdint>

#include "models/tokenizer/unicode.h"

namespace atrium::tok {

StatusOr<PreTokenizer> PreTokenizerFromName(std::string_view name) {
  if (name == "default") return PreTokenizer::kDefault;
  if (name == "gpt2" || name == "gpt-2" || name == "phi-2" || name == "roberta-bpe" ||
      name == "mpt" || name == "olmo" || name == "jais") {
    return PreTokenizer::kGpt2;
  }
  if (name == "smollm" || name == "starcoder" || name == "refact" || name == "command-r" ||
      name == "codeshell" || name == "exaone" || name == "minerva-7b") {
    return PreTokenizer::kSmolLm;
  }
  if (name == "llama3" || name == "llama-v3" || name == "llama-bpe" || name == "falcon3" ||
      name == "dbrx" || name == "smaug-bpe") {
    return PreTokenizer::kLlama3;
  }
  if (name == "qwen2" || name == "stablelm2" || name == "megrez") return PreTokenizer::kQwen2;
  return InvalidArgument(StrFormat(
      "unknown pre-tokenizer tokenizer.ggml.pre = '%.*s' (supported: default, gpt2, smollm, "
      "starcoder, llama3, llama-bpe, qwen2 and their aliases)",
      static_cast<int>(name.size()), name.data()));
}

namespace {

// A split is a list of chunk lengths in code points over the whole text; each
// pass refines every chunk independently, as llama.cpp's unicode_regex_split.
using Lengths = std::vector<size_t>;

// Per-chunk view with llama.cpp's "out of range" semantics at chunk edges.
class Chunk {
 public:
  Chunk(const std::vector<uint32_t>& cpts, const std::vector<CptFlags>& flags, size_t begin,
        size_t end, Lengths* out)
      : cpts_(cpts), flags_(flags), begin_(begin), end_(end), prev_end_(begin), out_(out) {}

  static constexpr uint32_t kOutOfRange = 0xFFFFFFFF;
  size_t begin() const { return begin_; }
  size_t end() const { return end_; }
  uint32_t Cpt(size_t pos) const { return pos >= begin_ && pos < end_ ? cpts_[pos] : kOutOfRange; }
  CptFlags Flags(size_t pos) const { return pos >= begin_ && pos < end_ ? flags_[pos] : CptFlags{}; }
  // Ends the current word at `end`; returns its length (0 emits nothing).
  size_t Emit(size_t end) {
    const size_t len = end - prev_end_;
    if (len > 0) out_->push_back(len);
    prev_end_ = end;
    return len;
  }

 private:
  const std::vector<uint32_t>& cpts_;
  const std::vector<CptFlags>& flags_;
  size_t begin_, end_, prev_end_;
  Lengths* out_;
};

bool IsNotSpaceLetterNumber(const CptFlags& f) {
  return f.in_range && !(f.whitespace || f.letter || f.number);
}

// 's|'t|'re|'ve|'m|'ll|'d, optionally case-insensitive; returns the match length.
size_t MatchContraction(const Chunk& c, size_t pos, bool ignore_case) {
  if (c.Cpt(pos) != '\'' || pos + 1 >= c.end()) return 0;
  auto lower = [&](size_t p) { return ignore_case ? ToLower(c.Cpt(p)) : c.Cpt(p); };
  const uint32_t n1 = lower(pos + 1);
  if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') return 2;
  if (pos + 2 >= c.end()) return 0;
  const uint32_t n2 = lower(pos + 2);
  if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l')) return 3;
  return 0;
}

// The last alternatives of the GPT-2 and llama3 patterns, \s+(?!\S)|\s+,
// else any one code point, at pos where n_ws whitespace code points start.
// Emits the match and returns where it ends.
size_t EmitWhitespaceOrOne(Chunk& c, size_t pos, size_t n_ws) {
  if (n_ws > 1 && c.Cpt(pos + n_ws) != Chunk::kOutOfRange) {  // \s+(?!\S)
    pos += n_ws - 1;
  } else if (n_ws > 0) {  // \s+
    pos += n_ws;
  } else {
    ++pos;
  }
  c.Emit(pos);
  return pos;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void SplitGpt2(Chunk& c) {
  for (size_t pos = c.begin(); pos < c.end();) {
    const uint32_t cpt = c.Cpt(pos);
    if (const size_t n = MatchContraction(c, pos, false)) {
      pos += c.Emit(pos + n);
      continue;
    }
    CptFlags f2 = cpt == ' ' ? c.Flags(pos + 1) : c.Flags(pos);
    if (f2.letter) {
      pos += cpt == ' ';
      while (c.Flags(pos).letter) ++pos;
      c.Emit(pos);
      continue;
    }
    if (f2.number) {
      pos += cpt == ' ';
      while (c.Flags(pos).number) ++pos;
      c.Emit(pos);
      continue;
    }
    if (IsNotSpaceLetterNumber(f2)) {
      pos += cpt == ' ';
      while (IsNotSpaceLetterNumber(c.Flags(pos))) ++pos;
      c.Emit(pos);
      continue;
    }
    size_t n_ws = 0;
    while (c.Flags(pos + n_ws).whitespace) ++n_ws;
    pos = EmitWhitespaceOrOne(c, pos, n_ws);
  }
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
void SplitLlama3(Chunk& c, size_t max_digits) {
  for (size_t pos = c.begin(); pos < c.end();) {
    const uint32_t cpt = c.Cpt(pos);
    const CptFlags flags = c.Flags(pos);
    if (const size_t n = MatchContraction(c, pos, true)) {
      pos += c.Emit(pos + n);
      continue;
    }
    if (!(cpt == '\r' || cpt == '\n' || flags.number) &&
        (flags.letter || c.Flags(pos + 1).letter)) {
      ++pos;
      while (c.Flags(pos).letter) ++pos;
      c.Emit(pos);
      continue;
    }
    if (flags.number) {
      size_t start = pos;
      while (c.Flags(pos).number) {
        if (++pos - start >= max_digits) {
          c.Emit(pos);
          start = pos;
        }
      }
      c.Emit(pos);
      continue;
    }
    CptFlags f2 = cpt == ' ' ? c.Flags(pos + 1) : flags;
    // llama.cpp tests the current code point's flags here, not f2's.
    if (!(f2.whitespace || f2.letter || f2.number) && flags.in_range) {
      pos += cpt == ' ';
      while (IsNotSpaceLetterNumber(f2)) f2 = c.Flags(++pos);
      while (c.Cpt(pos) == '\r' || c.Cpt(pos) == '\n') ++pos;
      c.Emit(pos);
      continue;
    }
    size_t n_ws = 0;
    size_t last_newline_end = 0;
    while (c.Flags(pos + n_ws).whitespace) {
      const uint32_t w = c.Cpt(pos + n_ws);
      if (w == '\r' || w == '\n') last_newline_end = pos + n_ws + 1;
      ++n_ws;
    }
    if (last_newline_end > 0) {  // \s*[\r\n]+
      pos = last_newline_end;
      c.Emit(pos);
      continue;
    }
    pos = EmitWhitespaceOrOne(c, pos, n_ws);
  }
}

// A regex matching single code points (or runs of them when `runs`): matches
// and the gaps between them become chunks, like a std::regex split pass.
template <typename Pred>
void SplitMatches(Chunk& c, bool runs, Pred pred) {
  for (size_t pos = c.begin(); pos < c.end();) {
    if (!pred(pos)) {
      ++pos;
      continue;
    }
    c.Emit(pos);
    ++pos;
    if (runs) {
      while (pos < c.end() && pred(pos)) ++pos;
    }
    c.Emit(pos);
  }
  c.Emit(c.end());
}

// [0-9][0-9][0-9]: non-overlapping triples of ASCII digits, left to right.
void SplitDigitTriples(Chunk& c) {
  auto digit = [&](size_t p) { return c.Cpt(p) >= '0' && c.Cpt(p) <= '9'; };
  for (size_t pos = c.begin(); pos < c.end();) {
    if (digit(pos) && digit(pos + 1) && digit(pos + 2)) {
      c.Emit(pos);
      pos += 3;
      c.Emit(pos);
    } else {
      ++pos;
    }
  }
  c.Emit(c.end());
}

enum class Pass { kGpt2, kLlama3, kQwen2, kEachNumber, kNumberRuns, kPunctRuns, kDigitTriples };

Lengths RunPass(Pass pass, const std::vector<uint32_t>& cpts, const std::vector<CptFlags>& flags,
                const Lengths& in) {
  Lengths out;
  out.reserve(in.size());
  size_t start = 0;
  for (size_t len : in) {
    Chunk c(cpts, flags, start, start + len, &out);
    switch (pass) {
      case Pass::kGpt2: SplitGpt2(c); break;
      case Pass::kLlama3: SplitLlama3(c, 3); break;
      case Pass::kQwen2: SplitLlama3(c, 1); break;
      case Pass::kEachNumber:
        SplitMatches(c, false, [&](size_t p) { return flags[p].number; });
        break;
      case Pass::kNumberRuns:
        SplitMatches(c, true, [&](size_t p) { return flags[p].number; });
        break;
      case Pass::kPunctRuns:
        // [\p{P}\$\+<=>\^~\|]+ ; llama.cpp's collapsed form of \p{P} treats
        // non-ASCII whitespace as whitespace first, which never is \p{P}.
        SplitMatches(c, true, [&](size_t p) {
          const uint32_t x = cpts[p];
          return (flags[p].punctuation && !flags[p].whitespace) || x == '$' || x == '+' ||
                 x == '<' || x == '=' || x == '>' || x == '^' || x == '~' || x == '|';
        });
        break;
      case Pass::kDigitTriples: SplitDigitTriples(c); break;
    }
    start += len;
  }
  return out;
}

std::vector<Pass> PassesOf(PreTokenizer kind) {
  switch (kind) {
    case PreTokenizer::kDefault:
      return {Pass::kPunctRuns, Pass::kGpt2, Pass::kNumberRuns, Pass::kDigitTriples};
    case PreTokenizer::kGpt2: return {Pass::kGpt2};
    case PreTokenizer::kSmolLm: return {Pass::kEachNumber, Pass::kGpt2};
    case PreTokenizer::kLlama3: return {Pass::kLlama3};
    case PreTokenizer::kQwen2: return {Pass::kQwen2};
  }
  return {};
}

}  // namespace

std::vector<std::string> PreTokenize(PreTokenizer kind, std::string_view text) {
  const std::vector<uint32_t> cpts = DecodeUtf8(text);
  std::vector<CptFlags> flags(cpts.size());
  for (size_t i = 0; i < cpts.size(); ++i) flags[i] = FlagsOf(cpts[i]);

  Lengths lengths = {cpts.size()};
  for (Pass pass : PassesOf(kind)) lengths = RunPass(pass, cpts, flags, lengths);

  std::vector<std::string> words;
  words.reserve(lengths.size());
  size_t start = 0;
  std::string utf8;
  for (size_t len : lengths) {
    std::string word;
    for (size_t i = start; i < start + len; ++i) {
      utf8.clear();
      AppendUtf8(cpts[i], &utf8);
      for (char b : utf8) word += ByteToUnicode(static_cast<uint8_t>(b));
    }
    words.push_back(std::move(word));
    start += len;
  }
  return words;
}

}  // namespace atrium::tok
