// Requests are checked at the gateway before a worker is started or called,
// so a malformed request costs no worker time, never starts a worker, and
// gets INVALID_ARGUMENT naming its field ("config.temperature") with a
// BadRequest detail. The generation config is checked by the worker's own
// rules (worker::ApplyConfig), so both processes refuse exactly the same
// requests with the same words; the worker checks again, as it must not
// trust its caller.
//
// Size limits come in two layers:
//  - the server's max receive message size (GatewayOptions): a message over
//    it is refused by gRPC itself with RESOURCE_EXHAUSTED before it is
//    parsed;
//  - RequestLimits here, far below it: a prompt that fits in a message but
//    not in any model's context gets INVALID_ARGUMENT PROMPT_TOO_LONG with
//    the limit in the message.
// Whether the named model exists is the caller's check (ModelRegistry::Find,
// NOT_FOUND), done before these.
#pragma once

#include <cstddef>
#include <cstdint>

#include "atrium/v1/inference.pb.h"
#include "serving/worker/rpc_status.h"

namespace atrium::gateway {

struct RequestLimits {
  // A prompt (Generate, CountTokens) or text (Tokenize) at most; also the
  // chat messages' contents together. 1 MiB is above 128k tokens of text,
  // more than the context of any model served.
  size_t max_prompt_bytes = size_t{1} << 20;
  int max_messages = 4096;
  int max_token_ids = 1 << 20;  // Detokenize
};

rpc::ApiError ValidateGenerate(const v1::GenerateRequest& request, const RequestLimits& limits);
rpc::ApiError ValidateChat(const v1::ChatRequest& request, const RequestLimits& limits);
rpc::ApiError ValidateTokenize(const v1::TokenizeRequest& request, const RequestLimits& limits);
rpc::ApiError ValidateDetokenize(const v1::DetokenizeRequest& request, const RequestLimits& limits);
rpc::ApiError ValidateCountTokens(const v1::CountTokensRequest& request, const RequestLimits& limits);

// The generation config alone (see worker::ApplyConfig).
rpc::ApiError ValidateConfig(const v1::GenerationConfig& config);

}  // namespace atrium::gateway
