// The model pool on the real SmolLM2 and Gemma 3 files: two models resident
// and serving at once (each as greedy as a dedicated engine), a budget for
// one model (the idle least recently used one is unloaded, and comes back),
// a corrupt file that fails only its own requests, and cancellation.
#include "serving/engine/model_pool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "tests/test_util.h"

namespace atrium {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// What the pool reports for a set of requests, by key.
struct Outcomes {
  struct Done {
    Status status;
    GenerationResult result;
    Clock::time_point first_token{}, done{};
  };
  std::mutex mu;
  std::condition_variable cv;
  std::map<int, Done> done;
  std::map<int, Clock::time_point> first_token;
  std::map<int, int> n_tokens;

  std::unique_ptr<EngineRequest> Request(int key, std::vector<int32_t> prompt, int max_tokens) {
    auto r = std::make_unique<EngineRequest>();
    r->prompt = std::move(prompt);
    r->options.sampling.temperature = 0;
    r->options.max_tokens = max_tokens;
    r->options.ignore_eos = true;
    r->on_delta = [this, key](const StreamDelta& d) {
      std::lock_guard<std::mutex> lock(mu);
      if (!d.tokens.empty() && n_tokens[key]++ == 0) first_token[key] = Clock::now();
      cv.notify_all();
      return true;
    };
    r->on_done = [this, key](const Status& s, const GenerationResult& g) {
      std::lock_guard<std::mutex> lock(mu);
      done[key] = {s, g, first_token.count(key) ? first_token[key] : Clock::time_point{}, Clock::now()};
      cv.notify_all();
    };
    return r;
  }
  void WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done.size() >= n; });
  }
  void WaitForTokens(int key, int n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return n_tokens[key] >= n || done.count(key) > 0; });
  }
};

constexpr const char* kTexts[] = {
    "The capital of France is",
    "Write a short note about bees. Mention one fact that a child would find surprising.",
    "Once upon a time, in a small village by the sea,",
};

// A model loaded on its own, for prompts and reference outputs.
struct Reference {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<int32_t>> outputs;  // greedy, from a dedicated engine
};

Reference MakeReference(const std::string& path, ops::Context& ctx, int max_tokens) {
  Reference ref;
  auto model = Model::Load(path);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return ref;
  ref.model = std::move(*model);
  ref.tokenizer = std::move(*Tokenizer::FromGguf(ref.model->file()));
  for (const char* t : kTexts) ref.prompts.push_back(ref.tokenizer->Encode(t, true, false));
  auto engine = Engine::Create(*ref.model, *ref.tokenizer, EngineOptions{});
  EXPECT_TRUE(engine.ok());
  StepLoop loop(ctx);
  loop.Add(engine->get());
  Outcomes out;
  for (size_t i = 0; i < ref.prompts.size(); ++i) {
    auto r = out.Request(static_cast<int>(i), ref.prompts[i], max_tokens);
    EXPECT_TRUE(loop.Submit(**engine, r).ok());
  }
  out.WaitFor(ref.prompts.size());
  for (size_t i = 0; i < ref.prompts.size(); ++i) ref.outputs.push_back(out.done[static_cast<int>(i)].result.tokens);
  loop.Remove(engine->get());
  return ref;
}

int64_t FileBytes(const std::string& path) { return static_cast<int64_t>(fs::file_size(path)); }

std::vector<std::string> ResidentPaths(const ModelPool& pool) {
  std::vector<std::string> out;
  for (const ResidentModel& m : pool.Resident()) out.push_back(fs::canonical(m.path).string());
  return out;
}

// The engines' stats catch up at the end of the step that called on_done.
std::vector<ResidentModel> SettledResident(const ModelPool& pool) {
  for (int i = 0; i < 500; ++i) {
    std::vector<ResidentModel> r = pool.Resident();
    auto settled = [](const ResidentModel& m) { return m.stats.running + m.stats.waiting == 0; };
    if (std::all_of(r.begin(), r.end(), settled)) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pool.Resident();
}

class ModelPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ATRIUM_REQUIRE_MODEL(smol, kSmolLm2File);
    ATRIUM_REQUIRE_MODEL(gemma, kGemma3File);
    smol_ = smol;
    gemma_ = gemma;
  }

  ModelPoolOptions Options(int64_t budget) const {
    ModelPoolOptions o;
    o.budget_bytes = budget;
    o.engine.kv_budget_bytes = kKvBytes;
    return o;
  }
  int64_t Cost(const std::string& path) const { return FileBytes(path) + kKvBytes; }

  static constexpr int64_t kKvBytes = int64_t{32} << 20;
  std::string smol_, gemma_;
  ops::Context ctx_{2};
};

TEST_F(ModelPoolTest, TwoModelsServeAtOnceAsTheirOwnEnginesWould) {
  constexpr int kTokens = 24;
  const Reference smol = MakeReference(smol_, ctx_, kTokens);
  const Reference gemma = MakeReference(gemma_, ctx_, kTokens);
  ModelPool pool(ctx_, Options(int64_t{4} << 30));
  // SmolLM2 by catalog name, Gemma by path.
  const std::string smol_name = "smollm2-135m-instruct";
  {
    Outcomes warm;
    auto a = warm.Request(0, smol.prompts[0], 2);
    auto b = warm.Request(1, gemma.prompts[0], 2);
    ASSERT_TRUE(pool.Submit(smol_name, a).ok());
    ASSERT_TRUE(pool.Submit(gemma_, b).ok());
    warm.WaitFor(2);
    ASSERT_TRUE(warm.done[0].status.ok()) << warm.done[0].status.ToString();
    ASSERT_TRUE(warm.done[1].status.ok()) << warm.done[1].status.ToString();
  }
  ASSERT_EQ(pool.Resident().size(), 2u);

  // Both resident: interleaved requests, smol keys 0..2, gemma keys 10..12.
  Outcomes out;
  for (int i = 0; i < 3; ++i) {
    auto s = out.Request(i, smol.prompts[static_cast<size_t>(i)], kTokens);
    auto g = out.Request(10 + i, gemma.prompts[static_cast<size_t>(i)], kTokens);
    ASSERT_TRUE(pool.Submit(smol_name, s).ok());
    ASSERT_TRUE(pool.Submit(gemma_, g).ok());
  }
  out.WaitFor(6);
  for (int i = 0; i < 3; ++i) {
    const auto& s = out.done[i];
    const auto& g = out.done[10 + i];
    ASSERT_TRUE(s.status.ok()) << s.status.ToString();
    ASSERT_TRUE(g.status.ok()) << g.status.ToString();
    EXPECT_EQ(s.result.tokens, smol.outputs[static_cast<size_t>(i)]) << "smollm2 prompt " << i;
    EXPECT_EQ(g.result.tokens, gemma.outputs[static_cast<size_t>(i)]) << "gemma prompt " << i;
  }
  // They ran at the same time: some request of each model streamed while
  // one of the other was between its first token and its end.
  Clock::time_point smol_last_first{}, gemma_last_first{}, smol_first_done = Clock::time_point::max(),
                    gemma_first_done = Clock::time_point::max();
  for (int i = 0; i < 3; ++i) {
    smol_last_first = std::max(smol_last_first, out.done[i].first_token);
    smol_first_done = std::min(smol_first_done, out.done[i].done);
    gemma_last_first = std::max(gemma_last_first, out.done[10 + i].first_token);
    gemma_first_done = std::min(gemma_first_done, out.done[10 + i].done);
  }
  EXPECT_LT(smol_last_first, gemma_first_done);
  EXPECT_LT(gemma_last_first, smol_first_done);

  const std::vector<ResidentModel> resident = SettledResident(pool);
  ASSERT_EQ(resident.size(), 2u);
  int64_t bytes = 0;
  for (const ResidentModel& m : resident) {
    EXPECT_EQ(m.outstanding, 0);
    EXPECT_EQ(m.stats.finished, 4);  // warm-up + 3
    EXPECT_EQ(m.stats.running, 0);
    bytes += m.bytes;
  }
  EXPECT_EQ(bytes, Cost(smol_) + Cost(gemma_));
}

// The owner's tokenizer (a worker's, built for Tokenize) is the one the
// engine uses: the pool builds no second copy, and the output is the same.
TEST_F(ModelPoolTest, UsesTheOwnersTokenizer) {
  const Reference smol = MakeReference(smol_, ctx_, 8);
  auto gguf = gguf::GgufFile::Open(smol_);
  ASSERT_TRUE(gguf.ok());
  std::shared_ptr<const Tokenizer> owned = std::move(*Tokenizer::FromGguf(**gguf));
  std::vector<std::string> asked;
  ModelPoolOptions o = Options(int64_t{4} << 30);
  o.tokenizer_for = [&](const std::string& path) -> StatusOr<std::shared_ptr<const Tokenizer>> {
    asked.push_back(path);
    return owned;
  };
  ModelPool pool(ctx_, o);
  Outcomes out;
  auto r = out.Request(0, smol.prompts[0], 8);
  ASSERT_TRUE(pool.Submit(smol_, r).ok());
  out.WaitFor(1);
  ASSERT_TRUE(out.done[0].status.ok()) << out.done[0].status.ToString();
  EXPECT_EQ(out.done[0].result.tokens, smol.outputs[0]);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(fs::canonical(asked[0]), fs::canonical(smol_));
  EXPECT_GE(owned.use_count(), 2) << "the resident engine holds the owner's tokenizer";
}

TEST_F(ModelPoolTest, BudgetForOneUnloadsTheIdleLeastRecentlyUsed) {
  const int64_t budget = std::max(Cost(smol_), Cost(gemma_)) + (int64_t{1} << 20);
  ASSERT_LT(budget, Cost(smol_) + Cost(gemma_));
  ModelPool pool(ctx_, Options(budget));
  const Reference smol = MakeReference(smol_, ctx_, 8);
  const Reference gemma = MakeReference(gemma_, ctx_, 8);
  const std::string smol_key = fs::canonical(smol_).string(), gemma_key = fs::canonical(gemma_).string();
  auto ask = [&](const std::string& model, const std::vector<int32_t>& prompt) {
    Outcomes out;
    auto r = out.Request(0, prompt, 8);
    EXPECT_TRUE(pool.Submit(model, r).ok());
    out.WaitFor(1);
    EXPECT_TRUE(out.done[0].status.ok()) << out.done[0].status.ToString();
    return out.done[0].result.tokens;
  };
  EXPECT_EQ(ask(smol_, smol.prompts[0]), smol.outputs[0]);
  EXPECT_EQ(ResidentPaths(pool), std::vector<std::string>{smol_key});
  EXPECT_EQ(ask(gemma_, gemma.prompts[0]), gemma.outputs[0]);
  EXPECT_EQ(ResidentPaths(pool), std::vector<std::string>{gemma_key});
  EXPECT_EQ(ask(smol_, smol.prompts[1]), smol.outputs[1]);  // back again
  EXPECT_EQ(ResidentPaths(pool), std::vector<std::string>{smol_key});

  // SmolLM2 busy: Gemma waits for it to finish instead of unloading it, and
  // a waiting request whose deadline passes ends with DEADLINE_EXCEEDED.
  Outcomes out;
  auto busy = out.Request(0, smol.prompts[2], 64);
  ASSERT_TRUE(pool.Submit(smol_, busy).ok());
  out.WaitForTokens(0, 1);
  auto late = out.Request(1, gemma.prompts[1], 8);
  auto hurried = out.Request(2, gemma.prompts[2], 8);
  hurried->deadline = Clock::now() + std::chrono::milliseconds(20);
  ASSERT_TRUE(pool.Submit(gemma_, late).ok());
  ASSERT_TRUE(pool.Submit(gemma_, hurried).ok());
  out.WaitFor(3);
  ASSERT_TRUE(out.done[0].status.ok()) << out.done[0].status.ToString();
  ASSERT_TRUE(out.done[1].status.ok()) << out.done[1].status.ToString();
  EXPECT_EQ(out.done[0].result.tokens.size(), 64u);
  EXPECT_GT(out.done[1].first_token, out.done[0].done);
  EXPECT_EQ(out.done[1].result.tokens, gemma.outputs[1]);
  EXPECT_EQ(out.done[2].status.code(), StatusCode::kDeadlineExceeded) << out.done[2].status.ToString();
  EXPECT_EQ(ResidentPaths(pool), std::vector<std::string>{gemma_key});

  // A model that alone exceeds the budget fails its requests at once.
  ModelPool tiny(ctx_, Options(kKvBytes + (int64_t{1} << 20)));
  Outcomes refused;
  auto r = refused.Request(0, smol.prompts[0], 4);
  ASSERT_TRUE(tiny.Submit(smol_, r).ok());
  refused.WaitFor(1);
  const Status& s = refused.done[0].status;
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_NE(s.message().find(kSmolLm2File), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("budget"), std::string::npos) << s.ToString();
  EXPECT_TRUE(tiny.Resident().empty());
}

TEST_F(ModelPoolTest, CorruptFileFailsOnlyItsOwnRequests) {
  char dir_template[] = "/tmp/atrium_pool_XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string broken = dir + "/broken.gguf";
  {
    std::ofstream f(broken, std::ios::binary);
    for (int i = 0; i < 4096; ++i) f.put(static_cast<char>((i * 131 + 7) & 0xff));
  }
  ModelPoolOptions o = Options(int64_t{4} << 30);
  o.models_dir = dir;
  ModelPool pool(ctx_, o);
  auto smol_model = Model::Load(smol_);
  ASSERT_TRUE(smol_model.ok());
  auto tok = Tokenizer::FromGguf((*smol_model)->file());
  ASSERT_TRUE(tok.ok());
  const std::vector<int32_t> prompt = (*tok)->Encode(kTexts[0], true, false);

  Outcomes out;
  for (int i = 0; i < 2; ++i) {
    auto bad = out.Request(i, prompt, 4);
    auto good = out.Request(10 + i, prompt, 4);
    ASSERT_TRUE(pool.Submit(broken, bad).ok());
    ASSERT_TRUE(pool.Submit(smol_, good).ok());
  }
  out.WaitFor(4);
  for (int i = 0; i < 2; ++i) {
    const Status& bad = out.done[i].status;
    EXPECT_FALSE(bad.ok());
    EXPECT_NE(bad.message().find("broken.gguf"), std::string::npos) << bad.ToString();
    EXPECT_NE(bad.message().find("failed to load"), std::string::npos) << bad.ToString();
    std::printf("corrupt file: %s\n", bad.ToString().c_str());
    EXPECT_TRUE(out.done[10 + i].status.ok()) << out.done[10 + i].status.ToString();
    EXPECT_EQ(out.done[10 + i].result.tokens.size(), 4u);
  }
  EXPECT_EQ(pool.Resident().size(), 1u);

  // By catalog name: the scan skipped the file, and the refusal says why.
  Outcomes named;
  auto by_name = named.Request(0, prompt, 4);
  const StatusOr<int64_t> refused = pool.Submit("broken", by_name);
  EXPECT_EQ(refused.status().code(), StatusCode::kNotFound);
  EXPECT_NE(refused.status().message().find("broken.gguf"), std::string::npos) << refused.status().ToString();
  EXPECT_NE(by_name, nullptr);  // still the caller's

  // Fixed on disk: the next request loads it (the same file as SmolLM2, so
  // it shares that resident model).
  fs::remove(broken);
  fs::create_symlink(smol_, broken);
  Outcomes retry;
  auto again = retry.Request(0, prompt, 4);
  ASSERT_TRUE(pool.Submit(broken, again).ok());
  retry.WaitFor(1);
  EXPECT_TRUE(retry.done[0].status.ok()) << retry.done[0].status.ToString();
  EXPECT_EQ(retry.done[0].result.tokens, out.done[10].result.tokens);
  EXPECT_EQ(pool.Resident().size(), 1u);
  fs::remove_all(dir);
}

TEST_F(ModelPoolTest, CancelThroughThePool) {
  ModelPool pool(ctx_, Options(int64_t{4} << 30));
  auto smol_model = Model::Load(smol_);
  ASSERT_TRUE(smol_model.ok());
  auto tok = Tokenizer::FromGguf((*smol_model)->file());
  ASSERT_TRUE(tok.ok());
  const std::vector<int32_t> prompt = (*tok)->Encode(kTexts[2], true, false);

  // While its model loads: ends at once.
  Outcomes loading;
  auto first = loading.Request(0, prompt, 400);
  const StatusOr<int64_t> first_id = pool.Submit(smol_, first);
  ASSERT_TRUE(first_id.ok());
  pool.Cancel(smol_, *first_id);
  loading.WaitFor(1);
  EXPECT_EQ(loading.done[0].status.code(), StatusCode::kCancelled) << loading.done[0].status.ToString();

  // Running: ends at the next step. A wrong model name does nothing.
  Outcomes out;
  auto r = out.Request(0, prompt, 400);
  const StatusOr<int64_t> id = pool.Submit(smol_, r);
  ASSERT_TRUE(id.ok());
  out.WaitForTokens(0, 3);
  pool.Cancel(gemma_, *id);
  pool.Cancel("no-such-model", *id);
  out.WaitForTokens(0, 6);
  EXPECT_EQ(out.done.count(0), 0u);
  pool.Cancel(smol_, *id);
  out.WaitFor(1);
  EXPECT_EQ(out.done[0].status.code(), StatusCode::kCancelled) << out.done[0].status.ToString();
  EXPECT_LT(out.done[0].result.tokens.size(), 400u);
  const std::vector<ResidentModel> resident = SettledResident(pool);
  ASSERT_EQ(resident.size(), 1u);
  EXPECT_EQ(resident[0].outstanding, 0);
  EXPECT_EQ(resident[0].stats.kv_blocks_used, resident[0].stats.kv_blocks_cached);

  // Unknown models and bad requests are refused at once; the request stays.
  auto unknown = out.Request(1, prompt, 4);
  EXPECT_EQ(pool.Submit("no-such-model", unknown).status().code(), StatusCode::kNotFound);
  EXPECT_NE(unknown, nullptr);
  auto empty = out.Request(2, {}, 4);
  EXPECT_EQ(pool.Submit(smol_, empty).status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(empty, nullptr);
}

TEST_F(ModelPoolTest, DestructionEndsWaitingAndRunningRequests) {
  auto smol_model = Model::Load(smol_);
  ASSERT_TRUE(smol_model.ok());
  auto tok = Tokenizer::FromGguf((*smol_model)->file());
  ASSERT_TRUE(tok.ok());
  const std::vector<int32_t> prompt = (*tok)->Encode(kTexts[1], true, false);
  Outcomes out;
  {
    ModelPool pool(ctx_, Options(int64_t{4} << 30));
    for (int i = 0; i < 4; ++i) {
      auto r = out.Request(i, prompt, 1000);
      ASSERT_TRUE(pool.Submit(i % 2 == 0 ? smol_ : gemma_, r).ok());
    }
    out.WaitForTokens(0, 1);
  }
  ASSERT_EQ(out.done.size(), 4u);  // every on_done ran before the pool was gone
  for (auto& [key, d] : out.done) EXPECT_EQ(d.status.code(), StatusCode::kUnavailable) << d.status.ToString();
}

}  // namespace
}  // namespace atrium
