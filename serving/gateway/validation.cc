#include "serving/gateway/validation.h"

#include "serving/worker/request.h"

namespace atrium::gateway {
namespace {

rpc::ApiError TooLong(const std::string& field, size_t bytes, size_t limit) {
  rpc::ApiError e = rpc::BadField(field,
                                  StrFormat("is %zu bytes; at most %zu bytes are accepted (far more than any served "
                                            "model's context holds): shorten it",
                                            bytes, limit),
                                  "PROMPT_TOO_LONG");
  e.metadata.emplace_back("limit_bytes", std::to_string(limit));
  return e;
}

rpc::ApiError CheckPrompt(const std::string& prompt, const char* field, const RequestLimits& limits) {
  if (prompt.empty()) return rpc::BadField(field, "must not be empty", "PROMPT_EMPTY");
  if (prompt.size() > limits.max_prompt_bytes) return TooLong(field, prompt.size(), limits.max_prompt_bytes);
  return rpc::Ok();
}

rpc::ApiError CheckMessages(const google::protobuf::RepeatedPtrField<v1::ChatMessage>& messages,
                            const RequestLimits& limits) {
  if (messages.empty()) return rpc::BadField("messages", "must hold at least one message", "MESSAGES_EMPTY");
  if (messages.size() > limits.max_messages) {
    return rpc::BadField("messages", StrFormat("holds %d messages; at most %d are accepted", messages.size(),
                                               limits.max_messages),
                         "TOO_MANY_MESSAGES");
  }
  size_t bytes = 0;
  for (int i = 0; i < messages.size(); ++i) {
    const v1::ChatMessage& m = messages[i];
    if (m.role().empty()) {
      return rpc::BadField(StrFormat("messages[%d].role", i), "must be set (\"system\", \"user\" or \"assistant\")",
                           "INVALID_MESSAGE");
    }
    bytes += m.content().size() + m.role().size();
  }
  if (bytes > limits.max_prompt_bytes) return TooLong("messages", bytes, limits.max_prompt_bytes);
  return rpc::Ok();
}

}  // namespace

rpc::ApiError ValidateConfig(const v1::GenerationConfig& config) {
  EngineRequest scratch;
  return worker::ApplyConfig(config, &scratch);
}

rpc::ApiError ValidateGenerate(const v1::GenerateRequest& request, const RequestLimits& limits) {
  if (rpc::ApiError e = CheckPrompt(request.prompt(), "prompt", limits); !e.ok()) return e;
  return ValidateConfig(request.config());
}

rpc::ApiError ValidateChat(const v1::ChatRequest& request, const RequestLimits& limits) {
  if (rpc::ApiError e = CheckMessages(request.messages(), limits); !e.ok()) return e;
  return ValidateConfig(request.config());
}

rpc::ApiError ValidateTokenize(const v1::TokenizeRequest& request, const RequestLimits& limits) {
  // An empty text is fine: it has no tokens (or just BOS).
  if (request.text().size() > limits.max_prompt_bytes) {
    return TooLong("text", request.text().size(), limits.max_prompt_bytes);
  }
  return rpc::Ok();
}

rpc::ApiError ValidateDetokenize(const v1::DetokenizeRequest& request, const RequestLimits& limits) {
  if (request.token_ids_size() > limits.max_token_ids) {
    return rpc::BadField("token_ids", StrFormat("holds %d ids; at most %d are accepted", request.token_ids_size(),
                                                limits.max_token_ids),
                         "TOO_MANY_TOKENS");
  }
  for (int i = 0; i < request.token_ids_size(); ++i) {
    if (request.token_ids(i) < 0) {
      return rpc::BadField(StrFormat("token_ids[%d]", i), StrFormat("must be >= 0, got %d", request.token_ids(i)),
                           "TOKEN_OUT_OF_VOCABULARY");
    }
  }
  return rpc::Ok();
}

rpc::ApiError ValidateCountTokens(const v1::CountTokensRequest& request, const RequestLimits& limits) {
  const bool has_prompt = !request.prompt().empty();
  const bool has_messages = request.messages_size() > 0;
  if (has_prompt == has_messages) {
    return rpc::BadField(has_prompt ? "messages" : "prompt",
                         "give exactly one of prompt (as Generate) and messages (as Chat)");
  }
  if (has_prompt) return CheckPrompt(request.prompt(), "prompt", limits);
  return CheckMessages(request.messages(), limits);
}

}  // namespace atrium::gateway
