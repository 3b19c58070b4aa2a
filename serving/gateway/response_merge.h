// Joining consecutive GenerateResponse messages of one stream into one, as
// the worker's reactor does: text and tokens concatenate, and the fields
// only the last message carries (finish_reason, usage, prompt_logprobs,
// seed) come from the later message. Used where the gateway cannot write as
// fast as the worker streams (a slow client gets fewer, larger messages and
// the worker is never held up), and to answer the unary forms.
#pragma once

#include "atrium/v1/inference.pb.h"

namespace atrium::gateway {

// Appends `next` to `into`; `next` is left in an unspecified state.
void MergeGenerateResponse(v1::GenerateResponse& next, v1::GenerateResponse* into);

}  // namespace atrium::gateway
