#include "models/tokenizer/spm.h"

#include "models/tokenizer/unicode.h"

namespace atrium::tok {

namespace {
constexpr std::string_view kEscapedSpace = "\xE2\x96\x81";  // U+2581
}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> SpmTokenizer::Create(const gguf::GgufFile& file) {
  std::unique_ptr<SpmTokenizer> t(new SpmTokenizer());
  RETURN_IF_ERROR(t->LoadVocab(file, /*default_add_bos=*/true));
  ASSIGN_OR_RETURN(t->add_space_prefix_, file.GetBoolOr("tokenizer.ggml.add_space_prefix", true));
  if (file.Has("tokenizer.ggml.unknown_token_id")) {
    ASSIGN_OR_RETURN(int64_t unk, file.GetInt("tokenizer.ggml.unknown_token_id"));
    if (unk < 0 || unk >= t->vocab_size()) {
      return InvalidArgument(StrFormat("tokenizer.ggml.unknown_token_id = %lld is outside the vocabulary",
                                       static_cast<long long>(unk)));
    }
    t->unk_id_ = static_cast<int32_t>(unk);
  }
  static const char* kHex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const char name[] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
    int32_t id = t->Lookup(std::string_view(name, sizeof(name)));
    if (id < 0) {
      const char raw = static_cast<char>(b);
      id = t->Lookup(std::string_view(&raw, 1));
    }
    t->byte_ids_[b] = id >= 0 ? id : t->unk_id_;
  }
  return std::unique_ptr<Tokenizer>(std::move(t));
}

int32_t SpmTokenizer::ByteToken(uint8_t byte) const { return byte_ids_[byte]; }

void SpmTokenizer::EncodeRaw(std::string_view raw, bool after_special,
                             std::vector<int32_t>* out) const {
  std::string text;
  if (add_space_prefix_ && after_special) text = kEscapedSpace;
  for (char c : raw) {
    if (c == ' ') {
      text += kEscapedSpace;
    } else {
      text.push_back(c);
    }
  }
  // Adjacent symbols merge into the token of highest score.
  const auto pieces = MergeSymbols(text, [&](std::string_view left, std::string_view right) {
    // left and right are adjacent in text.
    const int32_t id = Lookup(std::string_view(left.data(), left.size() + right.size()));
    return id >= 0 ? std::optional<double>(score(id)) : std::nullopt;
  });

  // Merges only ever form tokens, so a final symbol is a token or a single
  // character no token covers, which falls back to one token per byte.
  // (llama.cpp's resegment also consults the pairs that formed a merged text;
  // that path cannot be reached because a merged text is always a token.)
  for (const std::string_view piece : pieces) {
    if (const int32_t id = Lookup(piece); id >= 0) {
      out->push_back(id);
    } else {
      for (char c : piece) {
        if (const int32_t id = ByteToken(static_cast<uint8_t>(c)); id >= 0) out->push_back(id);
      }
    }
  }
}

std::string SpmTokenizer::TokenToPiece(int32_t id, bool render_special) const {
  if (id < 0 || id >= vocab_size()) return "";
  const TokenType t = type(id);
  if (t == TokenType::kControl || t == TokenType::kUnknown) {
    return render_special ? text(id) : "";
  }
  if (t == TokenType::kUserDefined) return text(id);
  if (t == TokenType::kByte) {
    const std::string& name = text(id);  // "<0xXX>"
    const auto hex = [](char c) {
      return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    if (name.size() == 6 && name.compare(0, 3, "<0x") == 0 && hex(name[3]) >= 0 && hex(name[4]) >= 0) {
      return std::string(1, static_cast<char>(hex(name[3]) * 16 + hex(name[4])));
    }
    return name;  // a byte-type token not named <0xXX>: its text
  }
  if (t != TokenType::kNormal) return "";
  std::string piece;
  const std::string& s = text(id);
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, kEscapedSpace.size(), kEscapedSpace) == 0) {
      piece.push_back(' ');
      i += kEscapedSpace.size();
    } else {
      piece.push_back(s[i++]);
    }
  }
  return piece;
}

}  // namespace atrium::tok
