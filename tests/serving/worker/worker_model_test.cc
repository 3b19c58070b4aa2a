// The real atrium-worker process serving SmolLM2, called with a real gRPC
// stub over its Unix socket: what it streams equals the engine's own greedy
// output in this process; cancel, deadline and drain free the request; bad
// requests get INVALID_ARGUMENT (or NOT_FOUND, RESOURCE_EXHAUSTED) naming
// what to fix, and the worker keeps serving.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "models/tokenizer/chat_template.h"
#include "serving/worker/rpc_status.h"
#include "tests/serving/engine_oracle.h"
#include "tests/serving/smollm2_fixture.h"
#include "tests/serving/worker/worker_test_util.h"

namespace atrium::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kModel = "models/smollm2-135m-instruct";

// Everything one stream gave.
struct Streamed {
  std::string text;
  std::vector<int32_t> tokens;
  std::vector<v1::TokenLogprob> logprobs;
  v1::GenerateResponse last;
  int messages = 0;
  grpc::Status status;
  std::map<std::string, std::string> trailers;  // copied: the context owns the originals
};

template <typename Reader>
void ReadAll(Reader& reader, Streamed& out, int stop_after = -1) {
  v1::GenerateResponse msg;
  while ((stop_after < 0 || out.messages < stop_after) && reader.Read(&msg)) {
    ++out.messages;
    out.text += msg.text();
    out.tokens.insert(out.tokens.end(), msg.token_ids().begin(), msg.token_ids().end());
    out.logprobs.insert(out.logprobs.end(), msg.logprobs().begin(), msg.logprobs().end());
    out.last = msg;
  }
}

v1::GenerationConfig GreedyConfig(int max_tokens, bool ignore_eos = false) {
  v1::GenerationConfig c;
  c.set_temperature(0);
  c.set_max_tokens(max_tokens);
  c.set_ignore_eos(ignore_eos);
  return c;
}

class WorkerModelTest : public SmolLm2Test {
 protected:
  void SetUp() override {
    SmolLm2Test::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // One worker for the suite: it loads the model once. A 16 MiB message
    // limit lets a test send an oversized message cheaply.
    if (worker_ == nullptr) worker_ = StartWorker({"--threads", "2", "--max-message-mib", "16"});
    ASSERT_NE(worker_, nullptr);
  }
  static void TearDownTestSuite() { worker_.reset(); }

  internal::Worker::Stub& stub() { return *worker_->stub; }

  Streamed Generate(const v1::GenerateRequest& req, milliseconds timeout = milliseconds(60000)) {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(timeout));
    Streamed out;
    auto reader = stub().Generate(&ctx, req);
    ReadAll(*reader, out);
    out.status = reader->Finish();
    for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
      out.trailers[std::string(k.data(), k.size())] = std::string(v.data(), v.size());
    }
    return out;
  }
  Streamed Chat(const v1::ChatRequest& req) {
    grpc::ClientContext ctx;
    ctx.set_deadline(In(milliseconds(60000)));
    Streamed out;
    auto reader = stub().Chat(&ctx, req);
    ReadAll(*reader, out);
    out.status = reader->Finish();
    return out;
  }

  // The same request run by the engine in this process (the worker's
  // defaults: f16 KV pool of 256 MiB).
  GenerationResult EngineRun(std::vector<int32_t> prompt, const GenerationOptions& options, int32_t logprobs = -1,
                             bool echo = false) {
    auto r = std::make_unique<EngineRequest>();
    r->ns = "tenants/test";
    r->prompt = std::move(prompt);
    r->options = options;
    r->logprobs = logprobs;
    r->echo = echo;
    return RunOnFreshEngine(ctx_, *model_, *tokenizer_, std::move(r));
  }

  std::vector<int32_t> PromptIds(const std::string& text) { return tokenizer_->EncodePrompt(text); }

  // Polls Health until no stream is open and no engine runs a request.
  milliseconds WaitUntilIdle(milliseconds limit = milliseconds(5000)) {
    const Clock::time_point t0 = Clock::now();
    while (Clock::now() - t0 < limit) {
      grpc::ClientContext ctx;
      internal::HealthResponse h;
      if (stub().Health(&ctx, internal::HealthRequest(), &h).ok()) {
        bool busy = h.streams() > 0;
        for (const internal::EngineLoad& e : h.engines()) busy |= e.running() > 0 || e.waiting() > 0;
        if (!busy) return std::chrono::duration_cast<milliseconds>(Clock::now() - t0);
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
    return limit;
  }

  static std::unique_ptr<TestWorker> worker_;
};

std::unique_ptr<TestWorker> WorkerModelTest::worker_;

TEST_F(WorkerModelTest, GreedyGenerateStreamsTheEnginesOutput) {
  const std::string prompt = "The capital of France is";
  v1::GenerateRequest req;
  req.set_model(kModel);
  req.set_prompt(prompt);
  *req.mutable_config() = GreedyConfig(32);
  const Streamed got = Generate(req);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();
  const std::vector<int32_t> ids = PromptIds(prompt);
  const GenerationResult want = EngineRun(ids, Greedy(32));
  EXPECT_EQ(got.text, want.text);
  EXPECT_EQ(got.tokens, want.tokens);
  EXPECT_GT(got.messages, 2) << "streamed, not sent at the end";
  EXPECT_EQ(got.last.finish_reason(), want.finish_reason == "length" ? v1::FINISH_REASON_LENGTH : v1::FINISH_REASON_STOP);
  EXPECT_EQ(got.last.usage().prompt_tokens(), static_cast<int32_t>(ids.size()));
  EXPECT_EQ(got.last.usage().completion_tokens(), static_cast<int32_t>(want.tokens.size()));
  EXPECT_EQ(got.last.usage().total_tokens(), static_cast<int32_t>(ids.size() + want.tokens.size()));
  auto trailer = [&](const char* key) {
    auto it = got.trailers.find(key);
    return it == got.trailers.end() ? std::string("missing") : it->second;
  };
  EXPECT_EQ(trailer("atrium-prompt-tokens"), std::to_string(ids.size()));
  EXPECT_EQ(trailer("atrium-completion-tokens"), std::to_string(want.tokens.size()));
}

TEST_F(WorkerModelTest, GreedyChatStreamsTheEnginesOutput) {
  v1::ChatRequest req;
  req.set_model(kModel);
  v1::ChatMessage* m = req.add_messages();
  m->set_role("user");
  m->set_content("What is the capital of France?");
  *req.mutable_config() = GreedyConfig(48);
  const Streamed got = Chat(req);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();

  auto tmpl = ChatTemplate::FromGguf(model_->file());
  ASSERT_TRUE(tmpl.ok()) << tmpl.status().ToString();
  auto text = tmpl->Apply({{"user", "What is the capital of France?"}}, true);
  ASSERT_TRUE(text.ok());
  const GenerationResult want = EngineRun(PromptIds(*text), Greedy(48));
  EXPECT_EQ(got.text, want.text);
  EXPECT_FALSE(got.text.empty());
  EXPECT_EQ(got.tokens, want.tokens);
}

TEST_F(WorkerModelTest, ConcurrentStreamsEachMatchTheEngine) {
  const std::vector<std::string> prompts = {"Once upon a time", "The three primary colors are",
                                            "def fibonacci(n):"};
  std::vector<std::future<Streamed>> running;
  for (const std::string& p : prompts) {
    running.push_back(std::async(std::launch::async, [this, p] {
      v1::GenerateRequest req;
      req.set_model(kModel);
      req.set_prompt(p);
      *req.mutable_config() = GreedyConfig(24, /*ignore_eos=*/true);
      return Generate(req);
    }));
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Streamed got = running[i].get();
    ASSERT_TRUE(got.status.ok()) << got.status.error_message();
    const GenerationResult want = EngineRun(PromptIds(prompts[i]), Greedy(24, /*ignore_eos=*/true));
    EXPECT_EQ(got.text, want.text) << prompts[i];
    EXPECT_EQ(got.tokens.size(), 24u);
  }
}

TEST_F(WorkerModelTest, LogprobsAndEchoMatchTheEngine) {
  const std::string prompt = "The quick brown fox";
  v1::GenerateRequest req;
  req.set_model(kModel);
  req.set_prompt(prompt);
  *req.mutable_config() = GreedyConfig(6, /*ignore_eos=*/true);
  req.mutable_config()->set_logprobs(true);
  req.mutable_config()->set_top_logprobs(3);
  req.mutable_config()->set_echo(true);
  const Streamed got = Generate(req);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();
  const std::vector<int32_t> ids = PromptIds(prompt);
  const GenerationResult want = EngineRun(ids, Greedy(6, true), /*logprobs=*/3, /*echo=*/true);
  ASSERT_EQ(got.logprobs.size(), want.logprobs.size());
  for (size_t i = 0; i < want.logprobs.size(); ++i) {
    EXPECT_EQ(got.logprobs[i].token_id(), want.logprobs[i].token);
    EXPECT_NEAR(got.logprobs[i].logprob(), want.logprobs[i].logprob, 1e-6);
    ASSERT_EQ(got.logprobs[i].top_logprobs_size(), 3);
    // Greedy: the token taken is the most likely one.
    EXPECT_EQ(got.logprobs[i].top_logprobs(0).token_id(), got.logprobs[i].token_id());
    EXPECT_EQ(got.logprobs[i].token(), tokenizer_->TokenToPiece(want.logprobs[i].token, true));
  }
  ASSERT_EQ(got.last.prompt_logprobs_size(), static_cast<int>(ids.size()));
  EXPECT_EQ(got.last.prompt_logprobs(0).logprob(), 0.0f) << "the first prompt token has no context";
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(got.last.prompt_logprobs(static_cast<int>(i)).token_id(), ids[i]);
    EXPECT_NEAR(got.last.prompt_logprobs(static_cast<int>(i)).logprob(), want.prompt_logprobs[i].logprob, 1e-6);
  }

  // Scoring alone: no tokens generated.
  req.mutable_config()->set_max_tokens(0);
  const Streamed scored = Generate(req);
  ASSERT_TRUE(scored.status.ok()) << scored.status.error_message();
  EXPECT_TRUE(scored.tokens.empty());
  EXPECT_EQ(scored.last.prompt_logprobs_size(), static_cast<int>(ids.size()));
}

TEST_F(WorkerModelTest, ClientCancelMidStreamFreesTheRequest) {
  v1::GenerateRequest req;
  req.set_model(kModel);
  req.set_prompt("Count from one to a thousand:");
  *req.mutable_config() = GreedyConfig(4000, /*ignore_eos=*/true);
  grpc::ClientContext ctx;
  Streamed got;
  auto reader = stub().Generate(&ctx, req);
  ReadAll(*reader, got, /*stop_after=*/3);
  ASSERT_EQ(got.messages, 3);
  ctx.TryCancel();
  ReadAll(*reader, got);
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  const milliseconds freed = WaitUntilIdle();
  EXPECT_LT(freed, milliseconds(1000)) << "the engine request ends at its next step";
}

TEST_F(WorkerModelTest, ShortDeadlineEndsWithDeadlineExceeded) {
  v1::GenerateRequest req;
  req.set_model(kModel);
  req.set_prompt("Write a very long story about a lighthouse keeper.");
  *req.mutable_config() = GreedyConfig(4000, /*ignore_eos=*/true);
  const Clock::time_point t0 = Clock::now();
  const Streamed got = Generate(req, milliseconds(400));
  EXPECT_EQ(got.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << got.status.error_message();
  EXPECT_LT(Clock::now() - t0, milliseconds(3000));
  EXPECT_LT(WaitUntilIdle(), milliseconds(1000));
}

TEST_F(WorkerModelTest, MalformedRequestsGetClearErrorsAndTheWorkerKeepsServing) {
  struct Case {
    const char* what;
    v1::GenerateRequest req;
    grpc::StatusCode code;
    std::string field;  // the BadRequest field, if any
  };
  auto make = [](const std::string& prompt, const v1::GenerationConfig& c) {
    v1::GenerateRequest r;
    r.set_model(kModel);
    r.set_prompt(prompt);
    *r.mutable_config() = c;
    return r;
  };
  v1::GenerationConfig nan_temp;
  nan_temp.set_temperature(std::nanf(""));
  v1::GenerationConfig negative;
  negative.set_max_tokens(-5);
  v1::GenerationConfig bad_top;
  bad_top.set_logprobs(true);
  bad_top.set_top_logprobs(50);
  std::vector<Case> cases;
  cases.push_back({"empty prompt", make("", {}), grpc::StatusCode::INVALID_ARGUMENT, "prompt"});
  cases.push_back({"NaN temperature", make("hi", nan_temp), grpc::StatusCode::INVALID_ARGUMENT, "config.temperature"});
  cases.push_back({"negative max tokens", make("hi", negative), grpc::StatusCode::INVALID_ARGUMENT,
                   "config.max_tokens"});
  cases.push_back({"too many top logprobs", make("hi", bad_top), grpc::StatusCode::INVALID_ARGUMENT,
                   "config.top_logprobs"});
  cases.push_back({"10 MB prompt", make(std::string(10 << 20, 'a'), {}), grpc::StatusCode::INVALID_ARGUMENT, "prompt"});
  cases.push_back({"message over the limit", make(std::string(17 << 20, 'a'), {}),
                   grpc::StatusCode::RESOURCE_EXHAUSTED, ""});
  v1::GenerateRequest unknown = make("hi", {});
  unknown.set_model("models/not-installed");
  cases.push_back({"unknown model", unknown, grpc::StatusCode::NOT_FOUND, ""});
  for (const Case& c : cases) {
    const Clock::time_point t0 = Clock::now();
    const Streamed got = Generate(c.req);
    EXPECT_EQ(got.status.error_code(), c.code) << c.what << ": " << got.status.error_message();
    EXPECT_FALSE(got.status.error_message().empty()) << c.what;
    EXPECT_EQ(got.messages, 0) << c.what;
    EXPECT_LT(Clock::now() - t0, milliseconds(3000)) << c.what << " is refused quickly";
    if (!c.field.empty()) {
      const rpc::DecodedDetails d = rpc::DecodeDetails(got.status);
      ASSERT_EQ(d.bad_fields.size(), 1u) << c.what;
      EXPECT_EQ(d.bad_fields[0], c.field) << c.what;
    }
  }
  v1::ChatRequest empty_chat;
  empty_chat.set_model(kModel);
  EXPECT_EQ(Chat(empty_chat).status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // Still serving.
  const Streamed ok = Generate(make("Hello", GreedyConfig(4)));
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
  EXPECT_EQ(ok.last.usage().completion_tokens(), static_cast<int32_t>(ok.tokens.size()));
}

TEST_F(WorkerModelTest, TokenizeDetokenizeAndCountAgreeWithTheTokenizer) {
  const std::string text = "Hello world, this is Atrium.";
  grpc::ClientContext c1;
  v1::TokenizeRequest tr;
  tr.set_model(kModel);
  tr.set_text(text);
  v1::TokenizeResponse tokens;
  ASSERT_TRUE(stub().Tokenize(&c1, tr, &tokens).ok());
  const std::vector<int32_t> want = PromptIds(text);
  EXPECT_EQ(std::vector<int32_t>(tokens.token_ids().begin(), tokens.token_ids().end()), want);
  EXPECT_EQ(tokens.tokens_size(), tokens.token_ids_size());

  grpc::ClientContext c2;
  v1::DetokenizeRequest dr;
  dr.set_model(kModel);
  *dr.mutable_token_ids() = tokens.token_ids();
  v1::DetokenizeResponse back;
  ASSERT_TRUE(stub().Detokenize(&c2, dr, &back).ok());
  EXPECT_EQ(back.text(), text);

  grpc::ClientContext c3;
  dr.add_token_ids(1 << 30);
  EXPECT_EQ(stub().Detokenize(&c3, dr, &back).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext c4;
  v1::CountTokensRequest cr;
  cr.set_model(kModel);
  cr.set_prompt(text);
  v1::CountTokensResponse count;
  ASSERT_TRUE(stub().CountTokens(&c4, cr, &count).ok());
  EXPECT_EQ(count.total_tokens(), static_cast<int32_t>(want.size()));
  EXPECT_EQ(count.context_length(), model_->config().context_length);

  grpc::ClientContext c5;
  cr.add_messages()->set_role("user");
  EXPECT_EQ(stub().CountTokens(&c5, cr, &count).error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << "prompt and messages together";
}

TEST_F(WorkerModelTest, SigtermCancelsStreamsPastTheDrainTimeoutThenExits) {
  // A worker of its own: this one exits.
  auto w = StartWorker({"--threads", "2", "--drain-timeout", "0.3"});
  ASSERT_NE(w, nullptr);
  v1::GenerateRequest req;
  req.set_model(kModel);
  req.set_prompt("Tell me everything about the sea.");
  *req.mutable_config() = GreedyConfig(4000, /*ignore_eos=*/true);
  grpc::ClientContext stream_ctx;
  stream_ctx.set_deadline(In(milliseconds(60000)));
  auto reader = w->stub->Generate(&stream_ctx, req);
  Streamed got;
  ReadAll(*reader, got, /*stop_after=*/1);  // it is running
  ASSERT_EQ(got.messages, 1);

  ASSERT_EQ(::kill(w->process.pid, SIGTERM), 0);
  std::this_thread::sleep_for(milliseconds(50));
  {
    // No new streams meanwhile.
    grpc::ClientContext ctx;
    auto refused = w->stub->Generate(&ctx, req);
    v1::GenerateResponse msg;
    EXPECT_FALSE(refused->Read(&msg));
    const grpc::Status s = refused->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(rpc::DecodeDetails(s).reason, "WORKER_DRAINING");
  }
  ReadAll(*reader, got);
  const grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(rpc::DecodeDetails(s).reason, "WORKER_DRAINED");
  EXPECT_TRUE(ControlClosesWithin(w->process.control_fd, 10000));
  const int status = w->Stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace atrium::testing
