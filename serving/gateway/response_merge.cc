#include "serving/gateway/response_merge.h"

namespace atrium::gateway {

void MergeGenerateResponse(v1::GenerateResponse& next, v1::GenerateResponse* into) {
  into->mutable_text()->append(next.text());
  into->mutable_token_ids()->MergeFrom(next.token_ids());
  into->mutable_logprobs()->MergeFrom(next.logprobs());
  into->mutable_prompt_logprobs()->MergeFrom(next.prompt_logprobs());
  if (next.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) into->set_finish_reason(next.finish_reason());
  if (next.has_usage()) into->mutable_usage()->Swap(next.mutable_usage());
  if (next.seed() != 0) into->set_seed(next.seed());
}

}  // namespace atrium::gateway
