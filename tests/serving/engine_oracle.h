// What a worker must answer, computed by the batching engine in this
// process: the prompt ids as the worker builds them, and one request run to
// its end on a fresh engine with the worker's defaults (EngineOptions()).
// The worker and gateway model tests compare what they stream with it.
#pragma once

#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "models/model.h"
#include "models/tokenizer/tokenizer.h"
#include "serving/engine/engine.h"
#include "serving/engine/step_loop.h"

namespace atrium::testing {

// Runs `request` (its prompt and options set; on_done is set here) to its
// end on a fresh engine of `model`, stepped by a StepLoop on `ctx`.
inline GenerationResult RunOnFreshEngine(ops::Context& ctx, Model& model, const Tokenizer& tokenizer,
                                         std::unique_ptr<EngineRequest> request) {
  auto engine = Engine::Create(model, tokenizer, EngineOptions());
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  if (!engine.ok()) return {};
  StepLoop loop(ctx);
  loop.Add(engine->get());
  std::promise<std::pair<Status, GenerationResult>> done;
  request->on_done = [&done](const Status& s, const GenerationResult& g) { done.set_value({s, g}); };
  EXPECT_TRUE(loop.Submit(**engine, request).ok());
  auto [status, result] = done.get_future().get();
  loop.Remove(engine->get());
  EXPECT_TRUE(status.ok()) << status.ToString();
  return result;
}

}  // namespace atrium::testing
