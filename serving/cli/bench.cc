// `atrium bench`: single-request speed of one model, as JSON, for bench/
// scripts that put Atrium and its peers side by side. Never run as a test.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "models/model.h"
#include "models/tokenizer/tokenizer.h"
#include "runtime/sampler.h"
#include "serving/cli/commands.h"

namespace atrium::cli {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// A prompt of exactly n tokens: ordinary English text, repeated.
std::vector<int32_t> PromptOf(const Tokenizer& tok, int64_t n) {
  const std::string text =
      "The printing press changed how knowledge moved through Europe. Before it, books were copied by hand, "
      "slowly and at great cost; after it, pamphlets, maps and scientific papers spread within weeks. ";
  std::vector<int32_t> ids = tok.Encode("", true, false);
  const std::vector<int32_t> chunk = tok.Encode(text, false, false);
  while (static_cast<int64_t>(ids.size()) < n) ids.insert(ids.end(), chunk.begin(), chunk.end());
  ids.resize(n);
  return ids;
}

}  // namespace

int RunBench(const CommonFlags& common, const BenchFlags& f) {
  StatusOr<Loaded> loaded = LoadModel(common, f.model);
  if (!loaded.ok()) return Fail(loaded.status());
  Model& m = *loaded->model;
  const Tokenizer& tok = *loaded->tokenizer;
  const int64_t n_vocab = m.config().n_vocab;
  ops::Context ctx(common.threads);
  const int64_t context = f.prompt_tokens + f.gen_tokens + 16;
  Tensor logits = Tensor::Empty(DType::kF32, {1, n_vocab});
  auto argmax = [&] { return Argmax(logits.data<float>(), static_cast<int32_t>(n_vocab)); };

  // Prefill: the whole prompt in one forward, fresh cache each repetition.
  const std::vector<int32_t> long_prompt = PromptOf(tok, f.prompt_tokens);
  std::vector<double> prefill_tps;
  for (int r = 0; r < f.repetitions; ++r) {
    auto kv = m.NewKvCache(context);
    const auto t0 = Clock::now();
    if (Status s = m.Forward(ctx, long_prompt.data(), f.prompt_tokens, *kv, logits, false); !s.ok()) {
      return Fail(s);
    }
    prefill_tps.push_back(f.prompt_tokens / Seconds(t0));
  }

  // Decode: a short prompt, then gen_tokens greedy tokens (end-of-sequence ignored).
  const std::vector<int32_t> short_prompt = PromptOf(tok, 8);
  std::vector<double> decode_tps, ttft_ms;
  int64_t kv_bytes = 0;
  for (int r = 0; r < f.repetitions; ++r) {
    auto kv = m.NewKvCache(context);
    kv_bytes = kv->bytes();
    const auto t0 = Clock::now();
    if (Status s = m.Forward(ctx, short_prompt.data(), 8, *kv, logits, false); !s.ok()) {
      return Fail(s);
    }
    int32_t t = argmax();
    ttft_ms.push_back(Seconds(t0) * 1e3);
    const auto t1 = Clock::now();
    for (int64_t i = 0; i < f.gen_tokens; ++i) {
      if (Status s = m.Forward(ctx, &t, 1, *kv, logits, false); !s.ok()) {
        return Fail(s);
      }
      t = argmax();
    }
    decode_tps.push_back(f.gen_tokens / Seconds(t1));
  }

  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  const nlohmann::json out = {
      {"engine", "atrium"},
      {"model", loaded->path},
      {"architecture", m.config().architecture},
      {"threads", ctx.n_threads()},
      {"kernels", kernels::Cpu().name},
      {"prompt_tokens", f.prompt_tokens},
      {"gen_tokens", f.gen_tokens},
      {"repetitions", f.repetitions},
      {"prefill_tokens_per_second", Median(prefill_tps)},
      {"decode_tokens_per_second", Median(decode_tps)},
      {"time_to_first_token_ms", Median(ttft_ms)},
      {"prefill_runs", prefill_tps},
      {"decode_runs", decode_tps},
      {"load_seconds", loaded->load_seconds},
      {"peak_rss_bytes", static_cast<int64_t>(usage.ru_maxrss) * 1024},
      {"model_file_bytes", m.file().size()},
      {"weight_bytes_per_token", m.weight_bytes()},
      {"kv_cache_bytes_reserved", kv_bytes},  // pages are touched only as used
  };
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

}  // namespace atrium::cli
