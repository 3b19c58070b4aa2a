// `atrium bench-serve` as bench/serve.py runs it: a real process on the real
// SmolLM2 file, its JSON parsed and checked for sense (not for speed).
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"

namespace atrium {
namespace {

// Runs the binary; returns (exit code, stdout). stderr goes to the test log.
std::pair<int, std::string> Atrium(const std::string& args) {
  const char* dir = std::getenv("ATRIUM_BINARY_DIR");
  const std::string cmd = std::string(dir != nullptr ? dir : "build") + "/atrium " + args;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {-1, ""};
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(BenchServeTest, FourClientsEightRequestsReportSaneFigures) {
  ATRIUM_REQUIRE_MODEL(path, kSmolLm2File);
  const auto [code, out] = Atrium("bench-serve -m " + path +
                                  " -t 2 --clients 4 --requests 8 --prompt-tokens 24:40 --output-tokens 4:12 "
                                  "--shared-prefix 16 --kv-mib 32 --seed 7");
  ASSERT_EQ(code, 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out);
  for (const char* key : {"requests", "failed", "prompt_tokens", "generated_tokens", "wall_seconds",
                          "output_tokens_per_second", "total_tokens_per_second", "ttft_ms", "itl_ms", "e2e_ms",
                          "kv_blocks_total", "kv_blocks_peak_used", "preemptions", "prefix_cache_hit_tokens"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["requests"], 8);
  EXPECT_EQ(j["failed"], 0);
  EXPECT_EQ(j["clients"], 4);
  const int64_t generated = j["generated_tokens"];
  EXPECT_GE(generated, 8 * 4);
  EXPECT_LE(generated, 8 * 12);
  EXPECT_GE(j["prompt_tokens"].get<int64_t>(), 8 * 24);
  EXPECT_LE(j["prompt_tokens"].get<int64_t>(), 8 * 40);
  EXPECT_GT(j["wall_seconds"].get<double>(), 0);
  EXPECT_GT(j["output_tokens_per_second"].get<double>(), 0);
  EXPECT_GT(j["total_tokens_per_second"].get<double>(), j["output_tokens_per_second"].get<double>());
  for (const char* m : {"ttft_ms", "itl_ms", "e2e_ms"}) {
    EXPECT_GT(j[m]["p50"].get<double>(), 0) << m;
    EXPECT_GE(j[m]["p90"].get<double>(), j[m]["p50"].get<double>()) << m;
    EXPECT_GE(j[m]["p99"].get<double>(), j[m]["p90"].get<double>()) << m;
  }
  EXPECT_GE(j["e2e_ms"]["p50"].get<double>(), j["ttft_ms"]["p50"].get<double>());
  // Steps with no prompt tokens: at most 4 tokens each (4 clients), each
  // after its request's first token; some exist (outputs of up to 12).
  const nlohmann::json& d = j["decode_only"];
  EXPECT_GT(d["steps"].get<int64_t>(), 0);
  EXPECT_LT(d["steps"].get<int64_t>(), j["engine_steps"].get<int64_t>());
  EXPECT_GE(d["tokens"].get<int64_t>(), d["steps"].get<int64_t>());
  EXPECT_LE(d["tokens"].get<int64_t>(), 4 * d["steps"].get<int64_t>());
  EXPECT_LE(d["tokens"].get<int64_t>(), generated - 8);
  EXPECT_GT(d["seconds"].get<double>(), 0);
  EXPECT_LT(d["seconds"].get<double>(), j["wall_seconds"].get<double>());
  EXPECT_NEAR(d["tokens_per_second"].get<double>(), d["tokens"].get<double>() / d["seconds"].get<double>(), 1e-6);
  EXPECT_GT(j["kv_blocks_peak_used"].get<int64_t>(), 0);
  EXPECT_LE(j["kv_blocks_peak_used"].get<int64_t>(), j["kv_blocks_total"].get<int64_t>());
  EXPECT_GE(j["peak_running"].get<int64_t>(), 1);
  EXPECT_LE(j["peak_running"].get<int64_t>(), 4);
  // The 16 shared tokens are one full block: every request after the first
  // to finish its prefill can take it from the cache.
  EXPECT_GT(j["prefix_cache_hit_tokens"].get<int64_t>(), 0);
  EXPECT_EQ(j["prefix_cache_hit_tokens"].get<int64_t>() % 16, 0);
}

// --kv-type q8_0: the same --kv-mib holds 1.8x f16's blocks (SmolLM2: 30
// layers x 16 tokens x 2 rows of 192, 384 bytes each in f16; in q8_0 per
// 16 rows (kernels/kv_q8.h) keys 6 x 576 bytes, values 16 x 192 + 192),
// and the requests run to the end on it.
TEST(BenchServeTest, Q8KvCacheHoldsNearlyTwiceTheBlocks) {
  ATRIUM_REQUIRE_MODEL(path, kSmolLm2File);
  const std::string run = "bench-serve -m " + path +
                          " -t 2 --clients 4 --requests 4 --prompt-tokens 24 --output-tokens 6 --kv-mib 32 --kv-type ";
  const auto [code16, out16] = Atrium(run + "f16");
  const auto [code8, out8] = Atrium(run + "q8_0");
  ASSERT_EQ(code16, 0) << out16;
  ASSERT_EQ(code8, 0) << out8;
  const nlohmann::json f16 = nlohmann::json::parse(out16), q8 = nlohmann::json::parse(out8);
  EXPECT_EQ(q8["kv_type"], "q8_0");
  EXPECT_EQ(f16["kv_blocks_total"].get<int64_t>(), (int64_t{32} << 20) / (30 * 16 * 2 * 384));
  EXPECT_EQ(q8["kv_blocks_total"].get<int64_t>(), (int64_t{32} << 20) / (30 * (6 * 576 + 16 * 192 + 192)));
  EXPECT_EQ(q8["failed"], 0);
  EXPECT_EQ(q8["generated_tokens"], 4 * 6);
  EXPECT_NE(Atrium(run + "q4_0 2>/dev/null").first, 0);
}

TEST(BenchServeTest, BadRangesAreRefused) {
  ATRIUM_REQUIRE_MODEL(path, kSmolLm2File);
  EXPECT_NE(Atrium("bench-serve -m " + path + " --prompt-tokens 9:3 2>/dev/null").first, 0);
  EXPECT_NE(Atrium("bench-serve -m " + path + " --output-tokens abc 2>/dev/null").first, 0);
  EXPECT_NE(Atrium("bench-serve -m " + path + " --prompt-tokens 8 --shared-prefix 8 2>/dev/null").first, 0);
}

}  // namespace
}  // namespace atrium
