// Chat templates against Python jinja2 (tests/data/gen_chat_golden.py), and
// the Jinja subset's refusals.
#include <fstream>

#include <nlohmann/json.hpp>

#include "models/gguf.h"
#include "models/gguf_writer.h"
#include "models/tokenizer/chat_template.h"
#include "tests/test_util.h"

namespace atrium {
namespace {

nlohmann::json LoadGolden(const std::string& name) {
  const std::string path = testing::TestDataDir() + "/chat/" + name + ".json";
  std::ifstream in(path);
  if (!in.good()) {
    ADD_FAILURE() << "missing golden file " << path;
    return nlohmann::json::object();
  }
  return nlohmann::json::parse(in);
}

std::vector<ChatMessage> Messages(const nlohmann::json& j) {
  std::vector<ChatMessage> out;
  for (const auto& m : j) out.push_back({m["role"], m["content"]});
  return out;
}

void CheckGolden(const std::string& name) {
  const nlohmann::json g = LoadGolden(name);
  ASSERT_TRUE(g.contains("cases"));
  auto t = ChatTemplate::FromSource(g["source"], g["bos_token"], g["eos_token"]);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  int n = 0;
  for (const auto& c : g["cases"]) {
    auto got = t->Apply(Messages(c["messages"]), c["add_generation_prompt"]);
    if (c.contains("error")) {
      ASSERT_FALSE(got.ok()) << "expected an error, rendered: " << *got;
      EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
      EXPECT_NE(got.status().message().find(c["error"].get<std::string>()), std::string::npos)
          << got.status().ToString();
    } else {
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(*got, c["expected"].get<std::string>()) << name << " case " << n;
    }
    ++n;
  }
  std::printf("%s: %d cases match jinja2\n", name.c_str(), n);
}

TEST(ChatTemplateTest, SmolLm2MatchesJinja2) { CheckGolden("smollm2"); }
TEST(ChatTemplateTest, Gemma3MatchesJinja2) { CheckGolden("gemma3"); }

TEST(ChatTemplateTest, SubsetFeaturesMatchJinja2) {
  const nlohmann::json g = LoadGolden("features");
  ASSERT_TRUE(g.contains("cases"));
  for (const auto& c : g["cases"]) {
    const std::string source = c["source"];
    auto t = ChatTemplate::FromSource(source, g["bos_token"], g["eos_token"]);
    ASSERT_TRUE(t.ok()) << source << ": " << t.status().ToString();
    auto got = t->Apply(Messages(g["messages"]), true);
    ASSERT_TRUE(got.ok()) << source << ": " << got.status().ToString();
    EXPECT_EQ(*got, c["expected"].get<std::string>()) << source;
  }
}

std::vector<uint8_t> TinyGguf(const std::string& arch, const std::string* chat_template) {
  gguf::GgufWriter w;
  w.SetString("general.architecture", arch);
  w.SetStringArray("tokenizer.ggml.tokens", {"<pad>", "<eos>", "<bos>", "a"});
  w.SetUint32("tokenizer.ggml.bos_token_id", 2);
  w.SetUint32("tokenizer.ggml.eos_token_id", 1);
  if (chat_template) w.SetString("tokenizer.chat_template", *chat_template);
  return w.Serialize();
}

TEST(ChatTemplateTest, Gemma3FallbackIsThePublishedTemplate) {
  const std::vector<uint8_t> bytes = TinyGguf("gemma3", nullptr);
  auto file = gguf::GgufFile::FromBuffer("tiny-gemma3.gguf", bytes.data(), bytes.size());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto t = ChatTemplate::FromGguf(**file);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const nlohmann::json g = LoadGolden("gemma3");
  EXPECT_EQ(t->source(), g["source"].get<std::string>());
  auto p = t->Apply({{"system", "Be brief."}, {"user", "Hi"}}, true);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(*p, "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplateTest, FileTemplateAndMissingTemplate) {
  const std::string source = "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}";
  std::vector<uint8_t> bytes = TinyGguf("llama", &source);
  auto file = gguf::GgufFile::FromBuffer("tiny.gguf", bytes.data(), bytes.size());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto t = ChatTemplate::FromGguf(**file);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(*t->Apply({{"user", "x"}, {"assistant", "y"}}, false), "<bos>xy<eos>");

  std::vector<uint8_t> none = TinyGguf("llama", nullptr);
  auto file2 = gguf::GgufFile::FromBuffer("no-template.gguf", none.data(), none.size());
  ASSERT_TRUE(file2.ok());
  auto missing = ChatTemplate::FromGguf(**file2);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(missing.status().message().find("ships no chat template"), std::string::npos)
      << missing.status().ToString();
}

TEST(ChatTemplateTest, UnsupportedConstructsFailAtParseTime) {
  struct Case {
    const char* source;
    const char* message;
  };
  const Case cases[] = {
      {"hello\n\n{% macro greet(x) %}hi{% endmacro %}", "unsupported Jinja construct 'macro' at line 3"},
      {"{% include 'x.j2' %}", "unsupported Jinja construct 'include' at line 1"},
      {"{% for m in messages %}{{ m }}{% else %}none{% endfor %}", "'for ... else'"},
      {"{% for m in messages if m.role == 'user' %}{% endfor %}", "'for ... if filter'"},
      {"{% for k, v in x %}{% endfor %}", "'for with several targets'"},
      {"{% set ns = namespace(a=1) %}", "'function 'namespace''"},
      {"{% set ns.a = 1 %}", "set of an attribute"},
      {"{% set x %}block{% endset %}", "'set block'"},
      {"{{ messages | tojson }}", "'filter 'tojson''"},
      {"{{ messages[0].content.strip() }}", "'method call .strip()'"},
      {"{{ x is divisibleby(3) }}", "'test 'divisibleby''"},
      {"{{ {'a': 1} }}", "'dict literal'"},
      {"{{ 1.5 }}", "'floating-point literal'"},
      {"{{ 3 / 2 }}", "'operator /'"},
      {"{% raw %}{{ x }}{% endraw %}", "'raw'"},
      {"{{ x", "'{{' is never closed at line 1"},
      {"{% if x %}open", "missing 'endif'"},
      {"{% endfor %}", "unexpected 'endfor'"},
  };
  for (const Case& c : cases) {
    auto t = ChatTemplate::FromSource(c.source, "", "");
    ASSERT_FALSE(t.ok()) << c.source;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << c.source;
    EXPECT_NE(t.status().message().find(c.message), std::string::npos)
        << c.source << " -> " << t.status().message();
  }
}

TEST(ChatTemplateTest, RuntimeErrorsAreStatuses) {
  auto t = ChatTemplate::FromSource("{{ raise_exception('no system role, please') }}", "", "");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  auto r = t->Apply({}, true);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("no system role, please"), std::string::npos);

  auto sum = ChatTemplate::FromSource("{{ 'a' + 1 }}", "", "");
  ASSERT_TRUE(sum.ok());
  EXPECT_FALSE(sum->Apply({}, true).ok());

  auto list = ChatTemplate::FromSource("{{ messages }}", "", "");
  ASSERT_TRUE(list.ok());
  EXPECT_FALSE(list->Apply({{"user", "x"}}, true).ok());  // printing a list is refused

  auto undefined_attr = ChatTemplate::FromSource("{{ nothing.role }}", "", "");
  ASSERT_TRUE(undefined_attr.ok());
  EXPECT_FALSE(undefined_attr->Apply({}, true).ok());
}

}  // namespace
}  // namespace atrium
