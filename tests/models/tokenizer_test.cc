// Tokenizers on tiny vocabularies built with the GGUF writer: merges, the
// pre-tokenizers, special-token splitting, byte fallback, streaming decode
// and the errors for files we cannot tokenize.
#include <random>

#include "models/gguf.h"
#include "models/gguf_writer.h"
#include "models/tokenizer/pretokenize.h"
#include "models/tokenizer/tokenizer.h"
#include "models/tokenizer/unicode.h"
#include "tests/test_util.h"

namespace atrium {
namespace {

struct Loaded {
  std::vector<uint8_t> bytes;
  std::unique_ptr<gguf::GgufFile> file;
  std::unique_ptr<Tokenizer> tok;
};

StatusOr<std::unique_ptr<Tokenizer>> Load(const gguf::GgufWriter& w, Loaded* keep) {
  keep->bytes = w.Serialize();
  ASSIGN_OR_RETURN(keep->file, gguf::GgufFile::FromBuffer("tiny.gguf", keep->bytes.data(),
                                                          keep->bytes.size()));
  return Tokenizer::FromGguf(*keep->file);
}

// Byte-level BPE: the 256 byte symbols, a few merges, and specials.
gguf::GgufWriter BpeWriter(const std::string& pre) {
  gguf::GgufWriter w;
  std::vector<std::string> tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tool>"};
  std::vector<int32_t> types = {3, 3, 3, 4};
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(tok::ByteToUnicode(static_cast<uint8_t>(b)));
    types.push_back(1);
  }
  const std::vector<std::string> merges = {"l l", "h e", "he ll", "hell o", "Ġ w", "Ġw o",
                                           "r l", "Ġwo rl", "Ġworl d", "1 2", "12 3"};
  for (const std::string& m : merges) {
    tokens.push_back(m.substr(0, m.find(' ')) + m.substr(m.find(' ') + 1));
    types.push_back(1);
  }
  w.SetString("general.architecture", "llama");
  w.SetString("tokenizer.ggml.model", "gpt2");
  w.SetString("tokenizer.ggml.pre", pre);
  w.SetStringArray("tokenizer.ggml.tokens", tokens);
  w.SetInt32Array("tokenizer.ggml.token_type", types);
  w.SetStringArray("tokenizer.ggml.merges", merges);
  w.SetUint32("tokenizer.ggml.bos_token_id", 1);
  w.SetUint32("tokenizer.ggml.eos_token_id", 2);
  w.SetBool("tokenizer.ggml.add_bos_token", false);
  return w;
}

TEST(TokenizerTest, BpeMergesByRank) {
  Loaded l;
  auto t = Load(BpeWriter("gpt2"), &l);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const Tokenizer& tk = **t;
  const int32_t hello = *tk.TokenId("hello");
  const int32_t world = *tk.TokenId("Ġworld");
  EXPECT_EQ(tk.Encode("hello world", false, false), (std::vector<int32_t>{hello, world}));
  EXPECT_EQ(tk.Decode({hello, world}), "hello world");
  // "hel" cannot use "he ll": h+e merges first, then "l" stays alone.
  EXPECT_EQ(tk.Encode("hel", false, false),
            (std::vector<int32_t>{*tk.TokenId("he"), *tk.TokenId("l")}));
  EXPECT_FALSE(tk.add_bos());
  EXPECT_EQ(tk.Encode("hello", true, false), std::vector<int32_t>{hello});
}

TEST(TokenizerTest, BpeSpecialTokens) {
  Loaded l;
  auto t = Load(BpeWriter("gpt2"), &l);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const Tokenizer& tk = **t;
  const std::string text = "<|im_start|>hello<|im_end|><tool>";
  const std::vector<int32_t> parsed = tk.Encode(text, false, true);
  EXPECT_EQ(parsed, (std::vector<int32_t>{1, *tk.TokenId("hello"), 2, 3}));
  // Without parse_special control tokens are plain text; user-defined ones
  // are still split out, as in llama.cpp.
  const std::vector<int32_t> plain = tk.Encode(text, false, false);
  EXPECT_GT(plain.size(), 6u);
  EXPECT_EQ(plain.back(), 3);
  EXPECT_EQ(tk.Decode(plain), text);
  EXPECT_EQ(tk.Decode(parsed), "hello<tool>");
  EXPECT_EQ(tk.Decode(parsed, /*render_special=*/true), text);
  EXPECT_TRUE(tk.IsEndOfGeneration(2));  // eos and <|im_end|>
  EXPECT_TRUE(tk.IsEndOfGeneration(0));  // <|endoftext|>
  EXPECT_FALSE(tk.IsEndOfGeneration(1));
  EXPECT_TRUE(tk.IsControl(1));
  EXPECT_FALSE(tk.IsControl(3));
}

TEST(TokenizerTest, BpeRoundTripsAnyValidUtf8) {
  for (const char* pre : {"gpt2", "smollm", "llama-bpe", "qwen2", "default"}) {
    Loaded l;
    auto t = Load(BpeWriter(pre), &l);
    ASSERT_TRUE(t.ok()) << pre << ": " << t.status().ToString();
    std::mt19937 rng(7);
    const uint32_t pool[] = {'a', 'Z', '0', '9', ' ', '\n', '\t', '\'', 's', '!', 0xE9, 0x4E2D,
                             0x1F600, 0x200D, 0x3000, 0x0301, 0xFFFD, 0x10FFFF};
    for (int i = 0; i < 300; ++i) {
      std::string s;
      const int n = static_cast<int>(rng() % 20);
      for (int k = 0; k < n; ++k) tok::AppendUtf8(pool[rng() % std::size(pool)], &s);
      EXPECT_EQ((*t)->Decode((*t)->Encode(s, false, false)), s) << pre;
    }
  }
}

std::vector<std::string> Words(tok::PreTokenizer p, const std::string& s) {
  std::vector<std::string> out;
  for (const std::string& w : tok::PreTokenize(p, s)) {
    std::string raw;
    for (uint32_t c : tok::DecodeUtf8(w)) raw.push_back(static_cast<char>(tok::UnicodeToByte(c)));
    out.push_back(raw);
  }
  return out;
}

TEST(TokenizerTest, PreTokenizers) {
  using V = std::vector<std::string>;
  using tok::PreTokenizer;
  EXPECT_EQ(Words(PreTokenizer::kGpt2, "I'm  fine, 123 ok\n"),
            (V{"I", "'m", " ", " fine", ",", " 123", " ok", "\n"}));
  EXPECT_EQ(Words(PreTokenizer::kSmolLm, "abc 123"), (V{"abc", " ", "1", "2", "3"}));
  EXPECT_EQ(Words(PreTokenizer::kLlama3, "abc 12345 DON'T\n\n  x"),
            (V{"abc", " ", "123", "45", " DON", "'T", "\n\n", " ", " x"}));
  EXPECT_EQ(Words(PreTokenizer::kQwen2, "a12"), (V{"a", "1", "2"}));
  EXPECT_EQ(Words(PreTokenizer::kDefault, "x+=12345!"), (V{"x", "+=", "123", "45", "!"}));
  // Invalid UTF-8 becomes U+FFFD, byte by byte, as in llama.cpp.
  EXPECT_EQ(Words(PreTokenizer::kGpt2, "a\xFF"), (V{"a", "\xEF\xBF\xBD"}));
}

TEST(TokenizerTest, UnknownPreTokenizerAndModelFail) {
  Loaded l;
  auto t = Load(BpeWriter("no-such-pre"), &l);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("unknown pre-tokenizer"), std::string::npos);
  EXPECT_NE(t.status().message().find("no-such-pre"), std::string::npos);

  gguf::GgufWriter w = BpeWriter("gpt2");
  w.SetString("tokenizer.ggml.model", "bert");
  Loaded l2;
  auto t2 = Load(w, &l2);
  ASSERT_FALSE(t2.ok());
  EXPECT_NE(t2.status().message().find("unsupported tokenizer.ggml.model = 'bert'"), std::string::npos)
      << t2.status().ToString();
}

TEST(TokenizerTest, InconsistentVocabFails) {
  gguf::GgufWriter w = BpeWriter("gpt2");
  w.SetInt32Array("tokenizer.ggml.token_type", {1, 1, 1});
  Loaded l;
  auto t = Load(w, &l);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("token_type has 3 entries"), std::string::npos)
      << t.status().ToString();

  gguf::GgufWriter w2 = BpeWriter("gpt2");
  w2.SetUint32("tokenizer.ggml.eos_token_id", 100000);
  Loaded l2;
  auto t2 = Load(w2, &l2);
  ASSERT_FALSE(t2.ok());
  EXPECT_NE(t2.status().message().find("eos_token_id"), std::string::npos);
}

// SentencePiece: byte fallback tokens, "▁" for spaces, scores decide merges.
gguf::GgufWriter SpmWriter(bool add_space_prefix) {
  gguf::GgufWriter w;
  std::vector<std::string> tokens = {"<pad>", "<eos>", "<bos>", "<unk>", "<end_of_turn>", "\n\n"};
  std::vector<float> scores = {0, 0, 0, 0, 0, 0};
  std::vector<int32_t> types = {3, 3, 3, 2, 3, 4};
  static const char* kHex = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">");
    scores.push_back(0);
    types.push_back(6);
  }
  const std::vector<std::pair<std::string, float>> pieces = {
      {"\xE2\x96\x81", -1}, {"a", -2}, {"b", -2}, {"ab", -3}, {"\xE2\x96\x81" "a", -4},
      {"\xE2\x96\x81" "ab", -1}, {"ba", -0.5f}};
  for (const auto& [p, s] : pieces) {
    tokens.push_back(p);
    scores.push_back(s);
    types.push_back(1);
  }
  w.SetString("general.architecture", "gemma3");
  w.SetString("tokenizer.ggml.model", "llama");
  w.SetStringArray("tokenizer.ggml.tokens", tokens);
  w.SetFloat32Array("tokenizer.ggml.scores", scores);
  w.SetInt32Array("tokenizer.ggml.token_type", types);
  w.SetUint32("tokenizer.ggml.bos_token_id", 2);
  w.SetUint32("tokenizer.ggml.eos_token_id", 1);
  w.SetUint32("tokenizer.ggml.unknown_token_id", 3);
  w.SetBool("tokenizer.ggml.add_space_prefix", add_space_prefix);
  return w;
}

TEST(TokenizerTest, SpmScoresByteFallbackAndSpecials) {
  Loaded l;
  auto t = Load(SpmWriter(false), &l);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const Tokenizer& tk = **t;
  const int32_t sp_ab = *tk.TokenId("\xE2\x96\x81" "ab");
  // "aba": "ba" (-0.5) beats "ab" (-3), leaving "a" + "ba".
  EXPECT_EQ(tk.Encode("aba", false, false),
            (std::vector<int32_t>{*tk.TokenId("a"), *tk.TokenId("ba")}));
  EXPECT_EQ(tk.Encode(" ab", false, false), std::vector<int32_t>{sp_ab});
  // No token covers 'é': its two UTF-8 bytes.
  EXPECT_EQ(tk.Encode("\xC3\xA9", false, false),
            (std::vector<int32_t>{*tk.TokenId("<0xC3>"), *tk.TokenId("<0xA9>")}));
  EXPECT_TRUE(tk.add_bos());
  EXPECT_EQ(tk.Encode("a<end_of_turn>\n\nb", true, true),
            (std::vector<int32_t>{2, *tk.TokenId("a"), 4, 5, *tk.TokenId("b")}));
  EXPECT_TRUE(tk.IsEndOfGeneration(4));
  EXPECT_TRUE(tk.IsEndOfGeneration(1));
  for (const std::string s : {"a b  ab\n\n\xC3\xA9\xF0\x9F\x98\x80", " lead", "tail ", ""}) {
    EXPECT_EQ(tk.Decode(tk.Encode(s, false, false)), s);
  }
}

TEST(TokenizerTest, SpmSpacePrefix) {
  Loaded l;
  auto t = Load(SpmWriter(true), &l);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const std::vector<int32_t> ids = (*t)->Encode("ab", false, false);
  EXPECT_EQ(ids, std::vector<int32_t>{*(*t)->TokenId("\xE2\x96\x81" "ab")});
  EXPECT_EQ((*t)->Decode(ids), "ab");
}

TEST(TokenizerTest, StreamDecoderNeverSplitsAUtf8Character) {
  Loaded l;
  auto t = Load(SpmWriter(false), &l);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const Tokenizer& tk = **t;
  const std::string emoji = "\xF0\x9F\x98\x80";  // U+1F600, four byte tokens
  const std::vector<int32_t> ids = tk.Encode("a" + emoji + "b", false, false);
  ASSERT_EQ(ids.size(), 6u);
  StreamDecoder dec(tk);
  std::vector<std::string> parts;
  for (int32_t id : ids) parts.push_back(dec.Push(id));
  EXPECT_EQ(parts, (std::vector<std::string>{"a", "", "", "", emoji, "b"}));
  EXPECT_EQ(dec.Flush(), "");

  // A cut character at the end comes out of Flush as U+FFFD; a byte that can
  // never start a character is replaced at once.
  StreamDecoder cut(tk);
  EXPECT_EQ(cut.Push(*tk.TokenId("<0xF0>")), "");
  EXPECT_EQ(cut.Push(*tk.TokenId("<0x9F>")), "");
  EXPECT_EQ(cut.Flush(), "\xEF\xBF\xBD");
  StreamDecoder bad(tk);
  EXPECT_EQ(bad.Push(*tk.TokenId("<0xFF>")), "\xEF\xBF\xBD");
  EXPECT_EQ(bad.Push(*tk.TokenId("<0xC3>")), "");
  EXPECT_EQ(bad.Push(*tk.TokenId("a")), "\xEF\xBF\xBD" "a");
}

}  // namespace
}  // namespace atrium
