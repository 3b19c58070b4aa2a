#include "models/tokenizer/vocab.h"

#include <algorithm>
#include <bitset>
#include <queue>

#include "models/tokenizer/unicode.h"

namespace atrium::tok {

namespace {

// Texts that llama.cpp (the version tests/data/gen_tokenizer_golden.py ran)
// treats as end of generation, forcing them to control type whatever the
// file's token types say.
constexpr const char* kEogTexts[] = {
    "<|eot_id|>",    "<|im_end|>",       "<|end|>",           "<|return|>", "<|call|>",
    "<|flush|>",     "<|calls|>",        "<end_of_turn>",     "<|endoftext|>", "</s>",
    "<|eom_id|>",    "<EOT>",            "_<EOT>",            "[EOT]",      "[EOS]",
    "<|end_of_text|>", "<end_of_utterance>", "<eos>",         "<turn|>",    "<|tool_response>",
    "<｜end▁of▁sentence｜>", "[e~["};

// Fill-in-the-middle groups: the metadata key, or else any of the texts,
// forced to control type; pad / repo / file-separator ones end generation.
struct FimGroup {
  const char* key;
  bool eog;
  std::vector<const char*> texts;
};
const std::vector<FimGroup>& FimGroups() {
  static const std::vector<FimGroup> groups = {
      {"tokenizer.ggml.fim_pre_token_id", false,
       {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
        "<|code_prefix|>", "<|prefix|>"}},
      {"tokenizer.ggml.fim_suf_token_id", false,
       {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
        "<|code_suffix|>", "<|suffix|>"}},
      {"tokenizer.ggml.fim_mid_token_id", false,
       {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
        "<|code_middle|>", "<|middle|>"}},
      {"tokenizer.ggml.fim_pad_token_id", true,
       {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}},
      {"tokenizer.ggml.fim_rep_token_id", true,
       {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}},
      {"tokenizer.ggml.fim_sep_token_id", true, {"<|file_sep|>"}},
  };
  return groups;
}

}  // namespace

Status VocabTokenizer::LoadVocab(const gguf::GgufFile& file, bool default_add_bos) {
  ASSIGN_OR_RETURN(std::vector<std::string_view> tokens,
                   file.GetStringArray("tokenizer.ggml.tokens"));
  if (tokens.empty()) return InvalidArgument("tokenizer.ggml.tokens is empty");
  if (tokens.size() > static_cast<size_t>(INT32_MAX)) {
    return InvalidArgument("tokenizer.ggml.tokens has too many entries");
  }
  const size_t n = tokens.size();
  texts_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    // llama.cpp renames empty tokens so that every text maps to one id.
    texts_.push_back(tokens[i].empty() ? StrFormat("[EMPTY_%zu]", i) : std::string(tokens[i]));
  }

  scores_.assign(n, 0.0f);
  if (file.Has("tokenizer.ggml.scores")) {
    ASSIGN_OR_RETURN(scores_, file.GetFloatArray("tokenizer.ggml.scores"));
    if (scores_.size() != n) {
      return InvalidArgument(StrFormat("tokenizer.ggml.scores has %zu entries, tokens has %zu",
                                       scores_.size(), n));
    }
  }
  types_.assign(n, TokenType::kNormal);
  if (file.Has("tokenizer.ggml.token_type")) {
    ASSIGN_OR_RETURN(std::vector<int64_t> types, file.GetIntArray("tokenizer.ggml.token_type"));
    if (types.size() != n) {
      return InvalidArgument(StrFormat(
          "tokenizer.ggml.token_type has %zu entries, tokens has %zu", types.size(), n));
    }
    for (size_t i = 0; i < n; ++i) {
      types_[i] = types[i] >= 1 && types[i] <= 6 ? static_cast<TokenType>(types[i])
                                                 : TokenType::kUndefined;
    }
  }

  ids_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    auto [it, inserted] = ids_.emplace(texts_[i], static_cast<int32_t>(i));
    if (!inserted) {
      return InvalidArgument(StrFormat("tokenizer.ggml.tokens: token %zu repeats the text of token %d",
                                       i, it->second));
    }
  }

  auto special_id = [&](const char* key, int32_t* id) -> Status {
    if (!file.Has(key)) return OkStatus();
    ASSIGN_OR_RETURN(int64_t v, file.GetInt(key));
    if (v < 0 || v >= static_cast<int64_t>(n)) {
      return InvalidArgument(StrFormat("%s = %lld is outside the vocabulary of %zu tokens", key,
                                       static_cast<long long>(v), n));
    }
    *id = static_cast<int32_t>(v);
    return OkStatus();
  };
  RETURN_IF_ERROR(special_id("tokenizer.ggml.bos_token_id", &bos_id_));
  RETURN_IF_ERROR(special_id("tokenizer.ggml.eos_token_id", &eos_id_));
  int32_t eot_id = -1, eom_id = -1;
  RETURN_IF_ERROR(special_id("tokenizer.ggml.eot_token_id", &eot_id));
  RETURN_IF_ERROR(special_id("tokenizer.ggml.eom_token_id", &eom_id));
  ASSIGN_OR_RETURN(add_bos_, file.GetBoolOr("tokenizer.ggml.add_bos_token", default_add_bos));
  ASSIGN_OR_RETURN(add_eos_, file.GetBoolOr("tokenizer.ggml.add_eos_token", false));
  if (add_bos_ && bos_id_ < 0) {
    return InvalidArgument("tokenizer.ggml.add_bos_token is set but the file has no bos_token_id");
  }
  if (add_eos_ && eos_id_ < 0) {
    return InvalidArgument("tokenizer.ggml.add_eos_token is set but the file has no eos_token_id");
  }

  auto force_control = [&](std::string_view text, bool eog) {
    const int32_t id = Lookup(text);
    if (id < 0) return;
    types_[id] = TokenType::kControl;
    if (eog) eog_ids_.insert(id);
  };
  for (const FimGroup& g : FimGroups()) {
    int32_t id = -1;
    RETURN_IF_ERROR(special_id(g.key, &id));
    if (id >= 0) {
      if (g.eog) eog_ids_.insert(id);
      continue;
    }
    for (const char* t : g.texts) force_control(t, g.eog);
  }
  for (const char* t : kEogTexts) force_control(t, true);
  for (int32_t id : {eos_id_, eot_id, eom_id}) {
    if (id >= 0) eog_ids_.insert(id);
  }
  // llama.cpp's workarounds: gpt-oss style vocabularies keep <|end|> as an
  // ordinary user-defined token, and gemma4 / paddleocr keep </s> normal.
  auto eog_has = [&](const char* text) {
    const int32_t id = Lookup(text);
    return id >= 0 && eog_ids_.count(id) > 0;
  };
  if (eog_has("<|end|>") && ((eog_has("<|return|>") && eog_has("<|call|>")) ||
                             (eog_has("<|calls|>") && eog_has("<|flush|>")))) {
    eog_ids_.erase(Lookup("<|end|>"));
    types_[Lookup("<|end|>")] = TokenType::kUserDefined;
  }
  if (eog_has("<|tool_response>") && eog_has("</s>")) {
    eog_ids_.erase(Lookup("</s>"));
    types_[Lookup("</s>")] = TokenType::kNormal;
  }
  for (const char* t : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}) {
    if (const int32_t id = Lookup(t); id >= 0) types_[id] = TokenType::kUserDefined;
  }

  for (size_t i = 0; i < n; ++i) {
    const TokenType t = types_[i];
    if (t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) {
      specials_.push_back(static_cast<int32_t>(i));
    }
  }
  std::stable_sort(specials_.begin(), specials_.end(), [&](int32_t a, int32_t b) {
    return texts_[a].size() > texts_[b].size();
  });
  return OkStatus();
}

int32_t VocabTokenizer::Lookup(std::string_view text) const {
  const auto it = ids_.find(text);
  return it == ids_.end() ? -1 : it->second;
}

bool VocabTokenizer::IsControl(int32_t id) const {
  return id >= 0 && id < vocab_size() && types_[id] == TokenType::kControl;
}

std::optional<int32_t> VocabTokenizer::TokenId(std::string_view piece) const {
  const int32_t id = Lookup(piece);
  if (id < 0) return std::nullopt;
  return id;
}

// Each special token in turn, longest first, claims all its occurrences in the
// raw fragments left by the longer ones (llama.cpp's order, which differs from
// a leftmost-longest scan when specials overlap).
std::vector<Fragment> VocabTokenizer::Partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, text});
  std::bitset<256> present;
  for (char c : text) present.set(static_cast<uint8_t>(c));

  std::vector<Fragment> next;
  for (int32_t id : specials_) {
    if (!parse_special && types_[id] != TokenType::kUserDefined) continue;
    const std::string& tok = texts_[id];
    if (!present.test(static_cast<uint8_t>(tok[0]))) continue;
    bool found = false;
    for (const Fragment& f : frags) {
      if (f.token < 0 && f.text.find(tok) != std::string_view::npos) {
        found = true;
        break;
      }
    }
    if (!found) continue;
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      std::string_view rest = f.text;
      for (size_t at; (at = rest.find(tok)) != std::string_view::npos;) {
        if (at > 0) next.push_back({-1, rest.substr(0, at)});
        next.push_back({id, {}});
        rest.remove_prefix(at + tok.size());
      }
      if (!rest.empty()) next.push_back({-1, rest});
    }
    frags.swap(next);
  }
  return frags;
}

std::vector<int32_t> VocabTokenizer::Encode(std::string_view text, bool add_special,
                                            bool parse_special) const {
  std::vector<int32_t> out;
  if (add_special && add_bos_) out.push_back(bos_id_);
  bool after_special = true;
  for (const Fragment& f : Partition(text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
    } else {
      EncodeRaw(f.text, after_special, &out);
      after_special = false;
    }
  }
  if (add_special && add_eos_) out.push_back(eos_id_);
  return out;
}

std::vector<std::string_view> VocabTokenizer::MergeSymbols(std::string_view text,
                                                         const MergePriority& priority) {
  // Symbols are contiguous ranges of text in a linked list; a merged-away
  // symbol keeps len 0.
  struct Symbol {
    int prev, next;
    size_t begin, len;
  };
  std::vector<Symbol> syms;
  for (size_t off = 0; off < text.size();) {
    const size_t len = std::min(text.size() - off, Utf8SeqLen(static_cast<uint8_t>(text[off])));
    const int idx = static_cast<int>(syms.size());
    syms.push_back({idx - 1, off + len == text.size() ? -1 : idx + 1, off, len});
    off += len;
  }
  auto view = [&](const Symbol& s) { return text.substr(s.begin, s.len); };

  struct Bigram {
    int left, right;
    double priority;
    size_t len;  // bytes of the merged text, to detect stale entries
  };
  auto worse = [](const Bigram& a, const Bigram& b) {
    return a.priority < b.priority || (a.priority == b.priority && a.left > b.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  auto add_bigram = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::optional<double> p = priority(view(syms[left]), view(syms[right]));
    if (p.has_value()) queue.push({left, right, *p, syms[left].len + syms[right].len});
  };
  for (size_t i = 1; i < syms.size(); ++i) add_bigram(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = syms[b.left];
    Symbol& r = syms[b.right];
    // Stale: one side was merged away or grew since the pair was queued.
    // Symbols are contiguous, so adjacency plus total length identifies the text.
    if (l.len == 0 || r.len == 0 || l.next != b.right || l.len + r.len != b.len) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    add_bigram(l.prev, b.left);
    add_bigram(b.left, l.next);
  }

  std::vector<std::string_view> pieces;
  if (syms.empty()) return pieces;
  for (int i = 0; i != -1; i = syms[i].next) pieces.push_back(view(syms[i]));
  return pieces;
}

}  // namespace atrium::tok
