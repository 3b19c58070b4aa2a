// `atrium bench-serve`: the batching engine under load. Synthetic clients
// send requests back to back (each waits for its answer, then sends the
// next), with prompt and output lengths drawn from seeded ranges; the
// engine's callbacks timestamp every token. JSON on stdout, a summary on
// stderr. Never run as a test (its numbers depend on the machine).
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <future>
#include <limits>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "serving/cli/commands.h"
#include "serving/engine/engine.h"
#include "serving/engine/step_loop.h"

namespace atrium::cli {
namespace {

using Clock = std::chrono::steady_clock;
double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Range {
  int64_t lo = 0, hi = 0;
};

// "64" (fixed) or "32:512" (uniform between, both included).
StatusOr<Range> ParseRange(const std::string& text, const char* flag) {
  Range r;
  const size_t colon = text.find(':');
  try {
    size_t used = 0;
    r.lo = std::stoll(text.substr(0, colon), &used);
    if (used != (colon == std::string::npos ? text.size() : colon)) throw std::invalid_argument(text);
    r.hi = r.lo;
    if (colon != std::string::npos) {
      r.hi = std::stoll(text.substr(colon + 1), &used);
      if (used != text.size() - colon - 1) throw std::invalid_argument(text);
    }
  } catch (const std::exception&) {
    return InvalidArgument(StrFormat("%s: expected N or MIN:MAX, got '%s'", flag, text.c_str()));
  }
  if (r.lo < 1 || r.hi < r.lo) {
    return InvalidArgument(StrFormat("%s: need 1 <= MIN <= MAX, got '%s'", flag, text.c_str()));
  }
  return r;
}

// Ordinary English text, cycled to make prompts of any length out of the
// model's own tokens (so prefill sees realistic token ids).
constexpr const char* kParagraph =
    "The printing press changed how knowledge moved through Europe. Before it, books were copied by hand, slowly "
    "and at great cost; after it, pamphlets, maps and scientific papers spread within weeks. Merchants kept "
    "ledgers in a new double-entry style, sailors carried charts that were copied exactly rather than roughly, and "
    "students could own the texts they studied. Rivers carried the paper mills' output downstream to the fairs of "
    "Frankfurt and Lyon, where printers traded sheets by the bale. Within a century the number of books in print "
    "had grown from thousands to millions, and with them spread arguments about faith, medicine, astronomy and "
    "the shape of the world. Historians still debate how much of the scientific revolution would have happened "
    "without cheap type, but few doubt that it would have been slower. ";

// Request i's lengths: a pure function of (seed, i), so a run with the same
// flags sends the same requests whatever the timing.
struct Plan {
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
};
Plan PlanOf(uint64_t seed, int64_t i, Range prompt, Range output) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(i),
                    static_cast<uint32_t>(static_cast<uint64_t>(i) >> 32)};
  std::mt19937_64 rng(seq);
  Plan p;
  p.prompt_tokens = std::uniform_int_distribution<int64_t>(prompt.lo, prompt.hi)(rng);
  p.output_tokens = std::uniform_int_distribution<int64_t>(output.lo, output.hi)(rng);
  return p;
}

class PromptMaker {
 public:
  PromptMaker(const Tokenizer& tok, int64_t shared_prefix) : tok_(tok) {
    text_ = tok.Encode(kParagraph, false, false);
    prefix_ = tok.Encode("", true, false);  // BOS, where the model wants one
    while (static_cast<int64_t>(prefix_.size()) < shared_prefix) {
      prefix_.insert(prefix_.end(), text_.begin(), text_.end());
    }
    if (shared_prefix > 0) prefix_.resize(static_cast<size_t>(shared_prefix));
  }

  // Unlike every request: shares no cached block with them.
  std::vector<int32_t> WarmUp() const { return tok_.Encode("A warm-up request, not measured.", true, false); }

  // The shared prefix, then a marker unique to the request (so requests do
  // not share cached blocks by accident), then the text from an offset.
  std::vector<int32_t> Make(int64_t i, int64_t n) const {
    std::vector<int32_t> p = prefix_;
    const std::string marker_text = StrFormat("\n\nRequest %lld. ", static_cast<long long>(i));
    const std::vector<int32_t> marker = tok_.Encode(marker_text, false, false);
    p.insert(p.end(), marker.begin(), marker.end());
    size_t at = static_cast<size_t>(i * 37) % text_.size();
    while (static_cast<int64_t>(p.size()) < n) {
      p.push_back(text_[at]);
      at = (at + 1) % text_.size();
    }
    p.resize(static_cast<size_t>(n));
    return p;
  }

 private:
  const Tokenizer& tok_;
  std::vector<int32_t> text_;
  std::vector<int32_t> prefix_;
};

// One request's timeline, written by the step thread's callbacks.
struct Record {
  Clock::time_point submit, first, last, done;
  bool got_first = false;
  std::vector<double> gaps_ms;  // between consecutive tokens
  int64_t generated = 0;
  int64_t prompt_tokens = 0;
  Status status;
};

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, mean = 0;
};
Percentiles Summarize(std::vector<double> v) {
  Percentiles p;
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) {  // nearest rank
    const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
  };
  p.p50 = at(0.50);
  p.p90 = at(0.90);
  p.p99 = at(0.99);
  double sum = 0;
  for (double x : v) sum += x;
  p.mean = sum / static_cast<double>(v.size());
  return p;
}
nlohmann::ordered_json ToJson(const Percentiles& p) {
  return {{"p50", p.p50}, {"p90", p.p90}, {"p99", p.p99}, {"mean", p.mean}};
}

}  // namespace

int RunBenchServe(const CommonFlags& common, const BenchServeFlags& f) {
  StatusOr<Range> prompt_range = ParseRange(f.prompt_tokens, "--prompt-tokens");
  if (!prompt_range.ok()) return Fail(prompt_range.status());
  StatusOr<Range> output_range = ParseRange(f.output_tokens, "--output-tokens");
  if (!output_range.ok()) return Fail(output_range.status());
  if (f.shared_prefix < 0 || f.shared_prefix >= prompt_range->lo) {
    return Fail(InvalidArgument(StrFormat("--shared-prefix %lld must be below the shortest prompt (%lld tokens)",
                                          static_cast<long long>(f.shared_prefix),
                                          static_cast<long long>(prompt_range->lo))));
  }
  const int64_t limit = f.requests > 0 ? f.requests : std::numeric_limits<int64_t>::max();
  if (f.requests <= 0 && f.duration <= 0) return Fail(InvalidArgument("give --requests N or --duration SECONDS"));

  StatusOr<Loaded> loaded = LoadModel(common, f.model);
  if (!loaded.ok()) return Fail(loaded.status());
  const Model& model = *loaded->model;
  if (prompt_range->hi + output_range->hi > model.config().context_length) {
    return Fail(InvalidArgument(StrFormat("the longest prompt plus output (%lld tokens) exceeds the model's context "
                                          "of %lld", static_cast<long long>(prompt_range->hi + output_range->hi),
                                          static_cast<long long>(model.config().context_length))));
  }
  ops::Context ctx(common.threads);
  EngineOptions options;
  options.kv_budget_bytes = f.kv_mib << 20;
  options.kv_commit = !f.kv_lazy;
  StatusOr<DType> kv_type = KvTypeFromName(f.kv_type);
  if (!kv_type.ok()) return Fail(kv_type.status());
  options.kv_dtype = *kv_type;
  StatusOr<std::unique_ptr<Engine>> created = Engine::Create(*loaded->model, *loaded->tokenizer, options);
  if (!created.ok()) return Fail(created.status());
  Engine& engine = **created;
  StepLoop loop(ctx);
  loop.Add(&engine);
  const PromptMaker prompts(*loaded->tokenizer, f.shared_prefix);

  // Blocks in use include those the prefix cache keeps for later hits
  // (evictable), so with the cache on the peak climbs toward the total.
  std::atomic<int32_t> peak_used{0};
  std::atomic<int64_t> peak_running{0};
  auto note_peaks = [&] {
    const EngineStats s = engine.stats();
    const auto raise = [](auto& peak, auto v) {
      auto cur = peak.load();
      while (v > cur && !peak.compare_exchange_weak(cur, v)) {
      }
    };
    raise(peak_used, s.kv_blocks_used);
    raise(peak_running, s.running);
  };

  // Sends one request and waits for its end.
  GenerationOptions gen;
  gen.sampling.temperature = f.temperature;
  gen.sampling.top_k = f.top_k;
  gen.sampling.top_p = f.top_p;
  if (Status st = gen.sampling.Validate(); !st.ok()) return Fail(st);
  gen.ignore_eos = true;  // every output has its planned length
  auto run_one = [&](const std::vector<int32_t>& prompt, int64_t max_tokens, uint64_t seed, Record& rec) {
    // Shared: the client may wake and return while set_value is still running.
    auto finished = std::make_shared<std::promise<void>>();
    std::future<void> done = finished->get_future();
    auto r = std::make_unique<EngineRequest>();
    r->ns = "bench";
    r->prompt = prompt;
    r->options = gen;
    r->options.max_tokens = static_cast<int32_t>(max_tokens);
    r->options.sampling.seed = seed;
    r->on_delta = [&rec, &note_peaks](const StreamDelta& d) {
      if (d.tokens.empty()) return true;  // the held-back text at the end
      const Clock::time_point now = Clock::now();
      const size_t k = d.tokens.size();
      if (!rec.got_first) {
        rec.got_first = true;
        rec.first = now;
        for (size_t j = 1; j < k; ++j) rec.gaps_ms.push_back(0);
      } else {
        for (size_t j = 0; j < k; ++j) rec.gaps_ms.push_back(Ms(now - rec.last) / static_cast<double>(k));
      }
      rec.last = now;
      rec.generated += static_cast<int64_t>(k);
      note_peaks();
      return true;
    };
    r->on_done = [&rec, finished](const Status& s, const GenerationResult& g) {
      rec.done = Clock::now();
      rec.status = s;
      rec.prompt_tokens = g.prompt_tokens;
      finished->set_value();
    };
    rec.submit = Clock::now();
    StatusOr<int64_t> id = loop.Submit(engine, r);
    if (!id.ok()) {
      rec.done = Clock::now();
      rec.status = id.status();
      return;
    }
    done.wait();
  };

  // Warm-up, not counted: threads started, buffers grown.
  {
    Record warm;
    run_one(prompts.WarmUp(), 4, f.seed, warm);
    if (!warm.status.ok()) return Fail(warm.status.WithContext("warm-up request"));
  }
  const EngineStats before = engine.stats();

  const Clock::time_point t0 = Clock::now();
  const Clock::time_point stop_at =
      f.duration > 0 ? t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(f.duration))
                     : Clock::time_point::max();
  std::atomic<int64_t> next{0}, n_done{0};
  std::vector<std::deque<Record>> per_client(static_cast<size_t>(f.clients));
  std::vector<std::thread> clients;
  for (int c = 0; c < f.clients; ++c) {
    clients.emplace_back([&, c] {
      for (;;) {
        if (Clock::now() >= stop_at) return;
        const int64_t i = next.fetch_add(1);
        if (i >= limit) return;
        const Plan plan = PlanOf(f.seed, i, *prompt_range, *output_range);
        per_client[static_cast<size_t>(c)].emplace_back();
        run_one(prompts.Make(i, plan.prompt_tokens), plan.output_tokens, f.seed + static_cast<uint64_t>(i),
                per_client[static_cast<size_t>(c)].back());
        ++n_done;
      }
    });
  }
  // Progress on a terminal only: scripts read a clean stderr.
  std::atomic<bool> all_done{false};
  std::thread progress;
  if (::isatty(STDERR_FILENO) == 1) {
    progress = std::thread([&] {
      while (!all_done) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        if (f.requests > 0) {
          std::fprintf(stderr, "\r[bench-serve] %lld/%lld requests, %.0f s", static_cast<long long>(n_done.load()),
                       static_cast<long long>(f.requests), Ms(Clock::now() - t0) / 1e3);
        } else {
          std::fprintf(stderr, "\r[bench-serve] %lld requests, %.0f/%.0f s", static_cast<long long>(n_done.load()),
                       Ms(Clock::now() - t0) / 1e3, f.duration);
        }
      }
      std::fprintf(stderr, "\r\033[K");
    });
  }
  for (std::thread& t : clients) t.join();
  all_done = true;
  if (progress.joinable()) progress.join();
  const EngineStats after = engine.stats();
  loop.Remove(&engine);

  std::vector<double> ttft, itl, e2e;
  int64_t n_requests = 0, failed = 0, prompt_total = 0, generated_total = 0;
  Clock::time_point t_end = t0;
  Status first_error;
  for (const auto& records : per_client) {
    for (const Record& r : records) {
      ++n_requests;
      t_end = std::max(t_end, r.done);
      if (!r.status.ok()) {
        if (failed++ == 0) first_error = r.status;
        continue;
      }
      prompt_total += r.prompt_tokens;
      generated_total += r.generated;
      if (r.got_first) ttft.push_back(Ms(r.first - r.submit));
      itl.insert(itl.end(), r.gaps_ms.begin(), r.gaps_ms.end());
      e2e.push_back(Ms(r.done - r.submit));
    }
  }
  if (failed > 0) std::fprintf(stderr, "atrium: %lld requests failed, the first with %s\n",
                               static_cast<long long>(failed), first_error.ToString().c_str());
  if (n_requests == 0 || failed == n_requests) return 1;
  // From the engine: a preempted request's recomputation may hit the cache too.
  const int64_t cached_total = after.prefix.hit_tokens - before.prefix.hit_tokens;
  const double wall = std::max(Ms(t_end - t0) / 1e3, 1e-9);
  const Percentiles ttft_ms = Summarize(ttft), itl_ms = Summarize(itl), e2e_ms = Summarize(e2e);
  // Steps with no prompt tokens in them (llama.cpp batched-bench's S_TG).
  const int64_t decode_steps = after.decode_steps - before.decode_steps;
  const int64_t decode_tokens = after.decode_tokens - before.decode_tokens;
  const double decode_seconds = after.decode_seconds - before.decode_seconds;
  const double decode_tps = decode_seconds > 0 ? decode_tokens / decode_seconds : 0.0;

  const nlohmann::ordered_json out = {
      {"engine", "atrium"},
      {"model", loaded->path},
      {"architecture", model.config().architecture},
      {"threads", ctx.n_threads()},
      {"kernels", kernels::Cpu().name},
      {"clients", f.clients},
      {"prompt_tokens_range", {prompt_range->lo, prompt_range->hi}},
      {"output_tokens_range", {output_range->lo, output_range->hi}},
      {"shared_prefix", f.shared_prefix},
      {"seed", f.seed},
      {"sampling", {{"temperature", f.temperature}, {"top_k", f.top_k}, {"top_p", f.top_p}}},
      {"kv_mib", f.kv_mib},
      {"kv_lazy", f.kv_lazy},
      {"kv_type", f.kv_type},
      {"requests", n_requests},
      {"failed", failed},
      {"prompt_tokens", prompt_total},
      {"generated_tokens", generated_total},
      {"wall_seconds", wall},
      {"output_tokens_per_second", generated_total / wall},
      {"total_tokens_per_second", (prompt_total + generated_total) / wall},
      {"requests_per_second", (n_requests - failed) / wall},
      {"ttft_ms", ToJson(ttft_ms)},
      {"itl_ms", ToJson(itl_ms)},
      {"e2e_ms", ToJson(e2e_ms)},
      {"kv_blocks_total", after.kv_blocks_total},
      {"kv_blocks_peak_used", peak_used.load()},
      {"peak_running", peak_running.load()},
      {"preemptions", after.preemptions - before.preemptions},
      {"prefix_cache_hit_tokens", cached_total},
      {"engine_steps", after.steps - before.steps},
      {"decode_only", {{"steps", decode_steps},
                       {"tokens", decode_tokens},
                       {"seconds", decode_seconds},
                       {"tokens_per_second", decode_tps}}},
  };
  std::printf("%s\n", out.dump(2).c_str());

  std::fprintf(stderr,
               "[atrium bench-serve] %s, %d threads, %s kernels\n"
               "  %d clients, %lld requests (%lld failed) in %.2f s; prompts %lld:%lld, outputs %lld:%lld tokens\n"
               "  throughput  %.1f generated tok/s, %.1f total tok/s, %.2f req/s\n"
               "  decode      %.1f tok/s over the %lld steps that only decoded (%.2f s)\n"
               "  TTFT ms     p50 %.1f  p90 %.1f  p99 %.1f\n"
               "  ITL ms      p50 %.1f  p90 %.1f  p99 %.1f\n"
               "  E2E ms      p50 %.1f  p90 %.1f  p99 %.1f\n"
               "  KV blocks   peak %d/%d (prefix cache included), peak batch %lld, %lld preemptions, "
               "%lld prompt tokens from the prefix cache\n",
               loaded->path.c_str(), ctx.n_threads(), kernels::Cpu().name, f.clients,
               static_cast<long long>(n_requests), static_cast<long long>(failed), wall,
               static_cast<long long>(prompt_range->lo), static_cast<long long>(prompt_range->hi),
               static_cast<long long>(output_range->lo), static_cast<long long>(output_range->hi),
               generated_total / wall, (prompt_total + generated_total) / wall, (n_requests - failed) / wall,
               decode_tps, static_cast<long long>(decode_steps), decode_seconds, ttft_ms.p50, ttft_ms.p90,
               ttft_ms.p99, itl_ms.p50, itl_ms.p90, itl_ms.p99, e2e_ms.p50, e2e_ms.p90, e2e_ms.p99, peak_used.load(), after.kv_blocks_total, static_cast<long long>(peak_running.load()),
               static_cast<long long>(after.preemptions - before.preemptions), static_cast<long long>(cached_total));
  return failed > 0 ? 1 : 0;
}

}  // namespace atrium::cli
