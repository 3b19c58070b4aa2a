#include "models/tokenizer/bpe.h"

#include "models/tokenizer/unicode.h"

namespace atrium::tok {

StatusOr<std::unique_ptr<Tokenizer>> BpeTokenizer::Create(const gguf::GgufFile& file) {
  std::unique_ptr<BpeTokenizer> t(new BpeTokenizer());
  ASSIGN_OR_RETURN(std::string pre, file.GetStringOr("tokenizer.ggml.pre", "default"));
  ASSIGN_OR_RETURN(t->pre_, PreTokenizerFromName(pre));
  t->ignore_merges_ = t->pre_ == PreTokenizer::kLlama3;
  // llama.cpp's default for llama3-style vocabularies is to add BOS.
  RETURN_IF_ERROR(t->LoadVocab(file, /*default_add_bos=*/t->pre_ == PreTokenizer::kLlama3));

  ASSIGN_OR_RETURN(std::vector<std::string_view> merges,
                   file.GetStringArray("tokenizer.ggml.merges"));
  t->ranks_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string_view m = merges[i];
    const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string_view::npos;
    if (space == std::string_view::npos || space + 1 >= m.size()) {
      return InvalidArgument(StrFormat(
          "tokenizer.ggml.merges[%zu] = '%.*s' is not two tokens separated by a space", i,
          static_cast<int>(m.size()), m.data()));
    }
    // The first occurrence of a pair keeps its rank.
    t->ranks_.emplace(std::string(m), static_cast<int>(i));
  }
  return std::unique_ptr<Tokenizer>(std::move(t));
}

int BpeTokenizer::Rank(std::string_view left, std::string_view right) const {
  std::string key;
  key.reserve(left.size() + 1 + right.size());
  key.append(left).append(" ").append(right);
  const auto it = ranks_.find(key);
  return it == ranks_.end() ? -1 : it->second;
}

void BpeTokenizer::EncodeRaw(std::string_view text, bool /*after_special*/,
                             std::vector<int32_t>* out) const {
  for (const std::string& word : PreTokenize(pre_, text)) EncodeWord(word, out);
}

void BpeTokenizer::EncodeWord(const std::string& word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (const int32_t id = Lookup(word); id >= 0) {
      out->push_back(id);
      return;
    }
  }
  // Symbols start as single (byte-encoded) code points; the pair of lowest
  // rank merges first.
  const auto pieces = MergeSymbols(word, [&](std::string_view left, std::string_view right) {
    const int rank = Rank(left, right);
    return rank >= 0 ? std::optional<double>(-rank) : std::nullopt;
  });
  for (const std::string_view piece : pieces) {
    if (const int32_t id = Lookup(piece); id >= 0) {
      out->push_back(id);
      continue;
    }
    // Not in the vocabulary (merges that produce unknown text): llama.cpp
    // looks up each byte on its own and drops the ones it cannot find.
    for (char c : piece) {
      if (const int32_t id = Lookup(std::string_view(&c, 1)); id >= 0) out->push_back(id);
    }
  }
}

std::string BpeTokenizer::TokenToPiece(int32_t id, bool render_special) const {
  if (id < 0 || id >= vocab_size()) return "";
  const TokenType t = type(id);
  if (t == TokenType::kControl || t == TokenType::kUnknown) {
    return render_special ? text(id) : "";
  }
  if (t == TokenType::kUserDefined) return text(id);
  if (t != TokenType::kNormal) return "";
  std::string bytes;
  for (uint32_t cpt : DecodeUtf8(text(id))) {
    const int b = UnicodeToByte(cpt);
    if (b >= 0) {
      bytes.push_back(static_cast<char>(b));
    } else {
      AppendUtf8(cpt, &bytes);  // not byte-encoded: keep the character itself
    }
  }
  return bytes;
}

}  // namespace atrium::tok
