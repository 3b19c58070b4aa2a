#include "models/tokenizer/tokenizer.h"

#include "models/tokenizer/bpe.h"
#include "models/tokenizer/spm.h"
#include "models/tokenizer/unicode.h"

namespace atrium {

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const gguf::GgufFile& file) {
  ASSIGN_OR_RETURN(std::string model, file.GetString("tokenizer.ggml.model"));
  StatusOr<std::unique_ptr<Tokenizer>> result =
      model == "gpt2"    ? tok::BpeTokenizer::Create(file)
      : model == "llama" ? tok::SpmTokenizer::Create(file)
                         : StatusOr<std::unique_ptr<Tokenizer>>(InvalidArgument(StrFormat(
                               "unsupported tokenizer.ggml.model = '%s' (supported: 'gpt2' "
                               "byte-level BPE, 'llama' SentencePiece)",
                               model.c_str())));
  if (!result.ok()) return result.status().WithContext(file.name() + ": tokenizer");
  return result;
}

std::vector<int32_t> Tokenizer::EncodePrompt(std::string_view text) const {
  bool add_special = true;
  if (bos_id() >= 0 && add_bos()) {
    const std::string bos_text = TokenToPiece(bos_id(), /*render_special=*/true);
    if (!bos_text.empty() && text.substr(0, bos_text.size()) == bos_text) add_special = false;
  }
  return Encode(text, add_special, /*parse_special=*/true);
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string piece = TokenToPiece(ids[i], render_special);
    if (i == 0 && StripLeadingSpaceOnDecode() && !piece.empty() && piece[0] == ' ') {
      piece.erase(0, 1);
    }
    text += piece;
  }
  return text;
}

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
}  // namespace

std::string StreamDecoder::Push(int32_t id) {
  pending_ += tokenizer_.TokenToPiece(id, render_special_);
  std::string out;
  size_t pos = 0;
  while (pos < pending_.size()) {
    const tok::Utf8Scan scan = tok::ScanUtf8(std::string_view(pending_).substr(pos));
    out.append(pending_, pos, scan.complete);
    pos += scan.complete;
    if (!scan.invalid) break;  // the rest is a cut character: hold it back
    // A byte that can never start a character: replace it and go on.
    out += kReplacement;
    ++pos;
  }
  pending_.erase(0, pos);
  return out;
}

std::string StreamDecoder::Flush() {
  std::string out;
  if (!pending_.empty()) out = std::string(kReplacement);
  pending_.clear();
  return out;
}

}  // namespace atrium
