#include "serving/worker/worker_service.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "serving/worker/generate_reactor.h"
#include "serving/worker/request.h"
#include "serving/worker/rpc_status.h"
#include "serving/worker/text.h"

namespace atrium::worker {
namespace {

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx, const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// The call's deadline on the engine's clock (none: time_point::max()).
std::chrono::steady_clock::time_point EngineDeadline(const grpc::CallbackServerContext& ctx) {
  const auto deadline = ctx.deadline();
  const auto now = std::chrono::system_clock::now();
  // "No deadline" is a far-future time point; converting it would overflow.
  if (deadline >= now + std::chrono::hours(24 * 365)) return std::chrono::steady_clock::time_point::max();
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(deadline - now);
}

// The text side of the model a unary call names. On failure `error` holds
// the answer: the registry's for a bad or unknown name, else why the model
// could not be read.
StatusOr<std::shared_ptr<const TextModel>> FindText(ModelRegistry& registry, const std::string& model,
                                                    rpc::ApiError* error) {
  StatusOr<ModelInfo> info = registry.Find(model, "model", error);
  if (!info.ok()) return info.status();
  StatusOr<std::shared_ptr<const TextModel>> text = registry.Text(*info);
  if (!text.ok()) *error = text.status();
  return text;
}

}  // namespace

WorkerService::WorkerService(ModelRegistry& registry, ModelPool& pool, std::string tenant)
    : registry_(registry), pool_(pool), tenant_(std::move(tenant)) {
  Touch();
}

void WorkerService::Touch() { last_activity_.store(Clock::now().time_since_epoch().count()); }

WorkerService::Clock::time_point WorkerService::last_activity() const {
  return Clock::time_point(Clock::duration(last_activity_.load()));
}

bool WorkerService::Admit(GenerateReactor* reactor) {
  std::lock_guard<std::mutex> lock(mu_);
  if (draining_) return false;
  streams_.insert(reactor);
  return true;
}

void WorkerService::StreamEnded(GenerateReactor* reactor) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    streams_.erase(reactor);
  }
  Touch();
}

bool WorkerService::draining() const {
  std::lock_guard<std::mutex> lock(mu_);
  return draining_;
}

int64_t WorkerService::streams() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(streams_.size());
}

grpc::ServerWriteReactor<v1::GenerateResponse>* WorkerService::Generate(grpc::CallbackServerContext* ctx,
                                                                        const v1::GenerateRequest* request) {
  return Stream(ctx, request->model(), request->config(), [request](const TextModel& text, rpc::ApiError* error) {
    return PromptTokens(text, request->prompt(), "prompt", error);
  });
}

grpc::ServerWriteReactor<v1::GenerateResponse>* WorkerService::Chat(grpc::CallbackServerContext* ctx,
                                                                    const v1::ChatRequest* request) {
  return Stream(ctx, request->model(), request->config(),
                [request](const TextModel& text, rpc::ApiError* error) -> StatusOr<std::vector<int32_t>> {
                  StatusOr<std::string> prompt = ChatPrompt(text, request->messages(), request->model(), error);
                  if (!prompt.ok()) return prompt.status();
                  return PromptTokens(text, *prompt, "messages", error);
                });
}

grpc::ServerWriteReactor<v1::GenerateResponse>* WorkerService::Stream(grpc::CallbackServerContext* ctx,
                                                                      const std::string& model,
                                                                      const v1::GenerationConfig& config,
                                                                      const PromptFn& build_prompt) {
  Touch();
  auto* reactor = new GenerateReactor(*this, ctx);
  if (!Admit(reactor)) {
    reactor->Reject(rpc::ToGrpc(rpc::WithReason(Unavailable("the worker is draining; retry the call"),
                                                "WORKER_DRAINING")));
    return reactor;
  }
  rpc::ApiError error;
  StatusOr<ModelInfo> info = registry_.Find(model, "model", &error);
  if (!info.ok()) {
    reactor->Reject(rpc::ToGrpc(error));
    return reactor;
  }
  StatusOr<std::shared_ptr<const TextModel>> text = registry_.Text(*info);
  if (!text.ok()) {
    reactor->Reject(rpc::ToGrpc(rpc::WithReason(text.status().WithContext(model), "MODEL_LOAD_FAILED")));
    return reactor;
  }
  StatusOr<std::vector<int32_t>> prompt = build_prompt(**text, &error);
  if (!prompt.ok()) {
    reactor->Reject(rpc::ToGrpc(error));
    return reactor;
  }
  auto request = std::make_unique<EngineRequest>();
  request->ns = tenant_;
  request->prompt = std::move(*prompt);
  if (rpc::ApiError e = ApplyConfig(config, request.get()); !e.ok()) {
    reactor->Reject(rpc::ToGrpc(e));
    return reactor;
  }
  request->deadline = EngineDeadline(*ctx);
  reactor->Start(pool_, info->path, std::move(*text), std::move(request));
  return reactor;
}

grpc::ServerUnaryReactor* WorkerService::Tokenize(grpc::CallbackServerContext* ctx,
                                                  const v1::TokenizeRequest* request,
                                                  v1::TokenizeResponse* response) {
  Touch();
  rpc::ApiError error;
  StatusOr<std::shared_ptr<const TextModel>> text = FindText(registry_, request->model(), &error);
  if (!text.ok()) return Answer(ctx, rpc::ToGrpc(error));
  const bool add_special = !request->has_add_special_tokens() || request->add_special_tokens();
  const std::vector<int32_t> ids = add_special ? (*text)->tokenizer->EncodePrompt(request->text())
                                               : (*text)->tokenizer->Encode(request->text(), false, true);
  for (int32_t id : ids) {
    response->add_token_ids(id);
    response->add_tokens(ValidUtf8((*text)->tokenizer->TokenToPiece(id, /*render_special=*/true)));
  }
  return Answer(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* WorkerService::Detokenize(grpc::CallbackServerContext* ctx,
                                                    const v1::DetokenizeRequest* request,
                                                    v1::DetokenizeResponse* response) {
  Touch();
  rpc::ApiError error;
  StatusOr<std::shared_ptr<const TextModel>> text = FindText(registry_, request->model(), &error);
  if (!text.ok()) return Answer(ctx, rpc::ToGrpc(error));
  const Tokenizer& tok = *(*text)->tokenizer;
  std::vector<int32_t> ids(request->token_ids().begin(), request->token_ids().end());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= tok.vocab_size()) {
      return Answer(ctx, rpc::ToGrpc(rpc::BadField(StrFormat("token_ids[%zu]", i),
                                                   StrFormat("%d is outside the vocabulary [0, %d)", ids[i],
                                                             tok.vocab_size()),
                                                   "TOKEN_OUT_OF_VOCABULARY")));
    }
  }
  response->set_text(ValidUtf8(tok.Decode(ids, request->render_special_tokens())));
  return Answer(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* WorkerService::CountTokens(grpc::CallbackServerContext* ctx,
                                                     const v1::CountTokensRequest* request,
                                                     v1::CountTokensResponse* response) {
  Touch();
  rpc::ApiError error;
  StatusOr<ModelInfo> info = registry_.Find(request->model(), "model", &error);
  if (!info.ok()) return Answer(ctx, rpc::ToGrpc(error));
  const bool has_prompt = !request->prompt().empty();
  const bool has_messages = request->messages_size() > 0;
  if (has_prompt == has_messages) {
    return Answer(ctx, rpc::ToGrpc(rpc::BadField(has_prompt ? "messages" : "prompt",
                                                 "give exactly one of prompt (as Generate) and messages (as Chat)")));
  }
  StatusOr<std::shared_ptr<const TextModel>> text = registry_.Text(*info);
  if (!text.ok()) return Answer(ctx, rpc::ToGrpc(text.status()));
  std::string prompt = request->prompt();
  if (has_messages) {
    StatusOr<std::string> chat = ChatPrompt(**text, request->messages(), request->model(), &error);
    if (!chat.ok()) return Answer(ctx, rpc::ToGrpc(error));
    prompt = std::move(*chat);
  }
  response->set_total_tokens(static_cast<int32_t>((*text)->tokenizer->EncodePrompt(prompt).size()));
  response->set_context_length((*text)->context_length);
  return Answer(ctx, grpc::Status::OK);
}

grpc::ServerUnaryReactor* WorkerService::Health(grpc::CallbackServerContext* ctx, const internal::HealthRequest*,
                                                internal::HealthResponse* response) {
  // Not an activity: a gateway's health checks must not keep an idle worker alive.
  response->set_state(draining() ? internal::HealthResponse::DRAINING : internal::HealthResponse::SERVING);
  response->set_tenant(tenant_);
  response->set_pid(::getpid());
  response->set_streams(streams());
  for (const ResidentModel& m : pool_.Resident()) {
    internal::EngineLoad* e = response->add_engines();
    const std::string name = registry_.NameOfPath(m.path);
    e->set_model(name.empty() ? m.name : name);
    e->set_waiting(m.stats.waiting);
    e->set_running(m.stats.running);
    e->set_kv_blocks_total(m.stats.kv_blocks_total);
    e->set_kv_blocks_used(m.stats.kv_blocks_used);
    e->set_kv_blocks_cached(m.stats.kv_blocks_cached);
    e->set_steps(m.stats.steps);
    e->set_preemptions(m.stats.preemptions);
    e->set_prefix_hit_tokens(m.stats.prefix.hit_tokens);
  }
  const auto up = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_).count();
  response->mutable_uptime()->set_seconds(up / 1000);
  response->mutable_uptime()->set_nanos(static_cast<int32_t>(up % 1000) * 1000000);
  return Answer(ctx, grpc::Status::OK);
}

void WorkerService::StartDrain(std::chrono::milliseconds timeout, bool exit) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    draining_ = true;
    drains_.push_back({Clock::now() + timeout, exit, static_cast<int64_t>(streams_.size()), -1});
  }
  Tick();  // done at once when nothing is in flight
}

void WorkerService::Tick() {
  std::vector<std::pair<std::string, int64_t>> cancels;
  bool exit = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Clock::time_point now = Clock::now();
    for (auto d = drains_.begin(); d != drains_.end();) {
      if (streams_.empty()) {
        const int64_t cancelled = std::max<int64_t>(d->cancelled, 0);
        std::fprintf(stderr, "atrium-worker: drained: %lld streams finished, %lld cancelled at the timeout\n",
                     static_cast<long long>(std::max<int64_t>(d->streams_at_start - cancelled, 0)),
                     static_cast<long long>(cancelled));
        exit |= d->exit;
        d = drains_.erase(d);
        continue;
      }
      if (d->cancelled < 0 && now >= d->deadline) {
        d->cancelled = static_cast<int64_t>(streams_.size());
        // Under mu_, so no reactor is deleted meanwhile (StreamEnded waits).
        for (GenerateReactor* r : streams_) {
          std::string model;
          int64_t id = -1;
          if (r->Abort(Unavailable("the worker drained before this stream finished; retry the call"), &model, &id)) {
            cancels.emplace_back(std::move(model), id);
          }
        }
      }
      ++d;
    }
  }
  // Outside mu_: a cancel may end a request at once, and its reactor's
  // OnDone takes mu_.
  for (const auto& [model, id] : cancels) pool_.Cancel(model, id);
  if (exit) exit_wanted_.store(true);
}

}  // namespace atrium::worker
