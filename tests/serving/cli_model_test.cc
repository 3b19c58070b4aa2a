// The `atrium` binary as a user runs it: a real process, real model files.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "serving/engine/session.h"
#include "tests/test_util.h"

namespace atrium {
namespace {

struct CliRun {
  int exit_code;
  std::string out;
};

// Runs the binary with `args`; stdout captured, stderr to `err_file` (or dropped).
// `env` is prepended as VAR=value assignments.
CliRun Atrium(const std::string& args, const std::string& err_file = "/dev/null", const std::string& env = "") {
  const char* dir = std::getenv("ATRIUM_BINARY_DIR");
  const std::string cmd = env + " " + std::string(dir != nullptr ? dir : "build") + "/atrium " + args + " 2>" + err_file;
  FILE* p = popen(cmd.c_str(), "r");
  CliRun r{-1, ""};
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST(CliTest, ModelsJsonListsBothModels) {
  ATRIUM_REQUIRE_MODEL(smol, kSmolLm2File);
  ATRIUM_REQUIRE_MODEL(gemma, kGemma3File);
  const CliRun r = Atrium("models --json");
  ASSERT_EQ(r.exit_code, 0);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  std::map<std::string, nlohmann::json> by_arch;
  for (const auto& e : j) {
    for (const char* key : {"name", "provider", "architecture", "parameters", "quantization", "context_length", "path"}) {
      EXPECT_TRUE(e.contains(key)) << key;
    }
    by_arch[e["architecture"]] = e;
  }
  ASSERT_TRUE(by_arch.count("llama") && by_arch.count("gemma3"));
  EXPECT_EQ(by_arch["llama"]["quantization"], "Q4_1");
  EXPECT_EQ(by_arch["llama"]["context_length"], 8192);
  EXPECT_NEAR(by_arch["llama"]["parameters"].get<double>(), 134.5e6, 1e6);
  EXPECT_EQ(by_arch["gemma3"]["quantization"], "Q4_K_M");
  EXPECT_EQ(by_arch["gemma3"]["context_length"], 32768);
  EXPECT_NEAR(by_arch["gemma3"]["parameters"].get<double>(), 268e6, 2e6);
}

TEST(CliTest, GenerateStdoutIsExactlyTheGreedyText) {
  ATRIUM_REQUIRE_MODEL(path, kSmolLm2File);
  const CliRun r = Atrium("generate -m " + path + " --prompt 'The capital of France is' --temperature 0 -n 16 -t 2");
  ASSERT_EQ(r.exit_code, 0);
  auto model = Model::Load(path);
  ASSERT_TRUE(model.ok());
  auto tok = Tokenizer::FromGguf((*model)->file());
  ASSERT_TRUE(tok.ok());
  ops::Context ctx(2);
  Session s(**model, **tok, ctx, 64);
  GenerationOptions o;
  o.sampling.temperature = 0;
  o.max_tokens = 16;
  auto g = s.Generate((*tok)->Encode("The capital of France is", true, true), o);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(r.out, g->text);
}

// A machine without AVX-512 (or without AVX2) must still work: ATRIUM_ISA
// lowers the kernel choice, and the high-margin first tokens stay the same.
TEST(CliTest, EveryIsaGenerates) {
  ATRIUM_REQUIRE_MODEL(path, kSmolLm2File);
  const std::string args = "generate -m " + path + " --prompt 'The capital of France is' --temperature 0 -n 2";
  const CliRun best = Atrium(args);
  ASSERT_EQ(best.exit_code, 0);
  EXPECT_EQ(best.out, " Paris.");
  for (const char* isa : {"scalar", "avx2"}) {
    const CliRun r = Atrium(args, "/dev/null", std::string("ATRIUM_ISA=") + isa);
    EXPECT_EQ(r.exit_code, 0) << isa;
    EXPECT_EQ(r.out, best.out) << isa;
  }
}

TEST(CliTest, ChatModeOnBothModels) {
  ATRIUM_REQUIRE_MODEL(smol, kSmolLm2File);
  ATRIUM_REQUIRE_MODEL(gemma, kGemma3File);
  for (const std::string& m : {smol, gemma}) {
    const CliRun r = Atrium("generate -m " + m + " --chat --prompt 'What is 2+2?' --temperature 0 -n 24");
    EXPECT_EQ(r.exit_code, 0) << m;
    EXPECT_FALSE(r.out.empty()) << m;
    EXPECT_EQ(r.out.find("<|im_start|>"), std::string::npos);
    EXPECT_EQ(r.out.find("<start_of_turn>"), std::string::npos);
  }
}

TEST(CliTest, InteractiveChatAnswersEachLine) {
  ATRIUM_REQUIRE_MODEL(path, kSmolLm2File);
  const CliRun r = Atrium("chat -m " + path + " --temperature 0 -n 16 <<'EOF'\nHello!\n/reset\nWhat is the capital of Italy?\n/exit\nEOF");
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_GE(std::count(r.out.begin(), r.out.end(), '\n'), 2);
}

TEST(CliTest, ErrorsSayWhatToDo) {
  const std::string err = ::testing::TempDir() + "/atrium_err.txt";
  CliRun r = Atrium("generate -m no-such-model --prompt hi", err);
  EXPECT_EQ(r.exit_code, 1);
  std::string msg;
  if (FILE* f = fopen(err.c_str(), "r")) {
    char buf[1024];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) msg.append(buf, n);
    fclose(f);
  }
  EXPECT_NE(msg.find("no-such-model"), std::string::npos) << msg;
  EXPECT_NE(msg.find("atrium models"), std::string::npos) << msg;
  r = Atrium("generate --prompt hi --temperature nan");
  EXPECT_EQ(r.exit_code, 1);
  r = Atrium("generate --prompt hi --max-tokens -3");
  EXPECT_EQ(r.exit_code, 1);
  const std::string bad = ::testing::TempDir() + "/not_a_model.gguf";
  if (FILE* f = fopen(bad.c_str(), "w")) {
    fputs("this is not a gguf file", f);
    fclose(f);
  }
  r = Atrium("generate -m " + bad + " --prompt hi", err);
  EXPECT_EQ(r.exit_code, 1);
}

TEST(CliTest, BenchPrintsJson) {
  ATRIUM_REQUIRE_MODEL(path, kSmolLm2File);
  const CliRun r = Atrium("bench -m " + path + " --prompt-tokens 16 --gen-tokens 4 -r 1 -t 2");
  ASSERT_EQ(r.exit_code, 0);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["prefill_tokens_per_second"].get<double>(), 0);
  EXPECT_GT(j["decode_tokens_per_second"].get<double>(), 0);
  EXPECT_GT(j["peak_rss_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(j["threads"], 2);
  // Tied embeddings: every matrix is read once per token, the file is mostly that.
  EXPECT_GT(j["weight_bytes_per_token"].get<double>(), 0.9 * j["model_file_bytes"].get<double>());
  EXPECT_NE(Atrium("bench -m " + path + " --prompt-tokens 0").exit_code, 0);
}

TEST(CliTest, HelpTeaches) {
  const CliRun r = Atrium("generate --help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag : {"--max-tokens", "--temperature", "--top-k", "--top-p", "--min-p", "--repeat-penalty",
                           "--presence-penalty", "--frequency-penalty", "--seed", "--stop", "--ignore-eos", "--chat"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace atrium
