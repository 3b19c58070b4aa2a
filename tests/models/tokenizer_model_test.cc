// The real SmolLM2 (byte-level BPE) and Gemma 3 (SentencePiece) vocabularies
// against llama.cpp's ids for the same files, recorded by
// tests/data/gen_tokenizer_golden.py.
#include <algorithm>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "models/gguf.h"
#include "models/tokenizer/chat_template.h"
#include "models/tokenizer/tokenizer.h"
#include "tests/test_util.h"

namespace atrium {
namespace {

std::string Show(const std::vector<int32_t>& ids) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < ids.size(); ++i) s << (i ? "," : "") << ids[i];
  s << "]";
  return s.str();
}

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

nlohmann::json LoadGolden(const std::string& name) {
  const std::string path = testing::TestDataDir() + "/tokenizer/" + name + ".json";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "missing golden file " << path;
  return nlohmann::json::parse(in);
}

// Runs every golden string through Encode (both parse_special settings) and
// back through Decode.
void CheckModel(const std::string& path, const std::string& golden_name) {
  auto file = gguf::GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto tok = Tokenizer::FromGguf(**file);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  const nlohmann::json golden = LoadGolden(golden_name);

  int compared = 0, failed = 0, roundtrips = 0;
  for (const auto& c : golden["cases"]) {
    // Invalid UTF-8 comes as hex; it cannot round-trip (bad bytes become U+FFFD).
    const bool is_hex = c.contains("hex");
    const std::string text = is_hex ? FromHex(c["hex"]) : c["text"].get<std::string>();
    for (const bool parse_special : {true, false}) {
      const std::vector<int32_t> want = c[parse_special ? "special" : "plain"];
      const std::vector<int32_t> got = (*tok)->Encode(text, /*add_special=*/false, parse_special);
      ++compared;
      if (got != want) {
        if (++failed <= 20) {
          ADD_FAILURE() << golden_name << " parse_special=" << parse_special << " text="
                        << nlohmann::json(text).dump() << "\n  want " << Show(want) << "\n  got  "
                        << Show(got);
        }
        continue;
      }
      // SentencePiece escapes ' ' as U+2581 and unescapes every U+2581 on
      // decode, so a text that already holds U+2581 cannot come back as is.
      if (is_hex) continue;
      if (text.find("\xE2\x96\x81") != std::string::npos && golden_name == "gemma3") continue;
      const std::string back = (*tok)->Decode(got, /*render_special=*/true);
      EXPECT_EQ(back, text) << golden_name << " decode(encode(s)) parse_special=" << parse_special;
      ++roundtrips;
    }
  }
  EXPECT_EQ(failed, 0);
  std::printf("%s: %d of %d encodings match llama.cpp (%zu strings x 2 parse_special), %d round trips\n",
              golden_name.c_str(), compared - failed, compared, golden["cases"].size(), roundtrips);

  const std::string hello = golden["with_special"]["text"];
  const std::vector<int32_t> want = golden["with_special"]["ids"];
  EXPECT_EQ((*tok)->Encode(hello, /*add_special=*/true, /*parse_special=*/true), want);
}

TEST(TokenizerModelTest, SmolLm2MatchesLlamaCpp) {
  ATRIUM_REQUIRE_MODEL(path, kSmolLm2File);
  CheckModel(path, "smollm2");
}

TEST(TokenizerModelTest, Gemma3MatchesLlamaCpp) {
  ATRIUM_REQUIRE_MODEL(path, kGemma3File);
  CheckModel(path, "gemma3");
}

TEST(TokenizerModelTest, SpecialIdsAndEndOfGeneration) {
  {
    ATRIUM_REQUIRE_MODEL(path, kSmolLm2File);
    auto file = gguf::GgufFile::Open(path);
    ASSERT_TRUE(file.ok());
    auto tok = Tokenizer::FromGguf(**file);
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    const Tokenizer& t = **tok;
    EXPECT_EQ(t.vocab_size(), 49152);
    EXPECT_FALSE(t.add_bos());
    EXPECT_EQ(t.eos_id(), 2);
    EXPECT_TRUE(t.IsEndOfGeneration(*t.TokenId("<|im_end|>")));
    EXPECT_TRUE(t.IsEndOfGeneration(*t.TokenId("<|endoftext|>")));
    EXPECT_FALSE(t.IsEndOfGeneration(*t.TokenId("<|im_start|>")));
    EXPECT_TRUE(t.IsControl(*t.TokenId("<|im_start|>")));
    EXPECT_EQ(t.TokenToPiece(*t.TokenId("<|im_start|>")), "");
    EXPECT_EQ(t.TokenToPiece(*t.TokenId("<|im_start|>"), true), "<|im_start|>");
    EXPECT_EQ(t.TokenToPiece(*t.TokenId("Ġworld")), " world");
  }
  {
    ATRIUM_REQUIRE_MODEL(path, kGemma3File);
    auto file = gguf::GgufFile::Open(path);
    ASSERT_TRUE(file.ok());
    auto tok = Tokenizer::FromGguf(**file);
    ASSERT_TRUE(tok.ok()) << tok.status().ToString();
    const Tokenizer& t = **tok;
    EXPECT_EQ(t.vocab_size(), 262144);
    EXPECT_TRUE(t.add_bos());
    EXPECT_EQ(t.bos_id(), 2);
    EXPECT_EQ(t.eos_id(), 1);
    EXPECT_TRUE(t.IsEndOfGeneration(1));
    EXPECT_TRUE(t.IsEndOfGeneration(*t.TokenId("<end_of_turn>")));
    EXPECT_FALSE(t.IsEndOfGeneration(*t.TokenId("<start_of_turn>")));
    EXPECT_EQ(t.TokenToPiece(*t.TokenId("<0x41>")), "A");
    EXPECT_EQ(t.TokenToPiece(*t.TokenId("▁the")), " the");
    EXPECT_EQ(t.TokenToPiece(*t.TokenId("\n\n")), "\n\n");
    // Streaming a 4-byte emoji that only byte tokens cover never splits it.
    const std::vector<int32_t> ids = t.Encode("\xF0\x9F\xAB\xA8 x", false, false);
    StreamDecoder dec(t);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string part = dec.Push(id);
      streamed += part;
    }
    streamed += dec.Flush();
    EXPECT_EQ(streamed, "\xF0\x9F\xAB\xA8 x");
    // A prompt gets one BOS, also when its text (a template's) starts with
    // one; "<start_of_turn>" is read as the control token.
    const std::vector<int32_t> plain = t.EncodePrompt("<start_of_turn>user\nhi");
    ASSERT_GE(plain.size(), 2u);
    EXPECT_EQ(plain[0], 2);
    EXPECT_EQ(plain[1], *t.TokenId("<start_of_turn>"));
    EXPECT_EQ(t.EncodePrompt("<bos><start_of_turn>user\nhi"), plain);
  }
}

TEST(TokenizerModelTest, ChatPromptsEncodeToTurnTokens) {
  {
    ATRIUM_REQUIRE_MODEL(path, kSmolLm2File);
    auto file = gguf::GgufFile::Open(path);
    ASSERT_TRUE(file.ok());
    auto tok = Tokenizer::FromGguf(**file);
    auto tpl = ChatTemplate::FromGguf(**file);
    ASSERT_TRUE(tok.ok() && tpl.ok()) << tpl.status().ToString();
    auto prompt = tpl->Apply({{"user", "Hi"}}, true);
    ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
    EXPECT_EQ(*prompt,
              "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
              "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    const std::vector<int32_t> ids = (*tok)->Encode(*prompt, true, true);
    EXPECT_EQ(ids.front(), 1);  // <|im_start|>
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 2);  // two <|im_end|>
  }
  {
    ATRIUM_REQUIRE_MODEL(path, kGemma3File);
    auto file = gguf::GgufFile::Open(path);
    ASSERT_TRUE(file.ok());
    auto tok = Tokenizer::FromGguf(**file);
    auto tpl = ChatTemplate::FromGguf(**file);  // the file has none: Gemma 3's published one
    ASSERT_TRUE(tok.ok() && tpl.ok()) << tpl.status().ToString();
    auto prompt = tpl->Apply({{"system", "Be brief."}, {"user", "Hi"}}, true);
    ASSERT_TRUE(prompt.ok()) << prompt.status().ToString();
    EXPECT_EQ(*prompt, "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
    // The template writes <bos> itself, so encode without adding another.
    const std::vector<int32_t> ids = (*tok)->Encode(*prompt, /*add_special=*/false, true);
    EXPECT_EQ(ids[0], 2);
    EXPECT_EQ(ids[1], *(*tok)->TokenId("<start_of_turn>"));
  }
}

}  // namespace
}  // namespace atrium
