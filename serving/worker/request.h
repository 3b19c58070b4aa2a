// Public requests -> engine requests. Every field is checked here, before
// anything reaches the engine, so a bad request gets INVALID_ARGUMENT naming
// its field ("config.temperature") and the engine only sees valid ones.
#pragma once

#include <cstdint>
#include <memory>

#include "atrium/v1/inference.pb.h"
#include "serving/engine/engine.h"
#include "serving/worker/rpc_status.h"

namespace atrium::worker {

// Limits of a request beyond what the engine checks.
inline constexpr int kMaxStopStrings = 16;
inline constexpr size_t kMaxStopBytes = 256;
inline constexpr int32_t kMaxTopLogprobs = 20;

// config -> options, logprobs and echo of `out` (its prompt and callbacks are
// left alone). An unset seed draws a random one; out->options.sampling.seed
// holds the seed used either way.
rpc::ApiError ApplyConfig(const v1::GenerationConfig& config, EngineRequest* out);

}  // namespace atrium::worker
