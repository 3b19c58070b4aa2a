// The thread that drives engines: it steps every engine with work, round
// robin, on one shared ops::Context (one thread pool, never oversubscribed),
// and sleeps when all are idle. Submit through the loop so it wakes up.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "serving/engine/engine.h"

namespace atrium {

class StepLoop {
 public:
  explicit StepLoop(ops::Context& ctx);
  // Stops the thread; engines are not destroyed (their owners do that).
  ~StepLoop();
  StepLoop(const StepLoop&) = delete;
  StepLoop& operator=(const StepLoop&) = delete;

  // Engines must be removed (or the loop destroyed) before they are.
  void Add(Engine* engine);
  // Returns after any step of this engine in progress has ended. Never call
  // it from an engine callback (on_delta, on_done): that runs inside a step,
  // and Remove would wait for itself.
  void Remove(Engine* engine);

  // engine.Submit, then wakes the loop.
  StatusOr<int64_t> Submit(Engine& engine, std::unique_ptr<EngineRequest>& request);
  void Cancel(Engine& engine, int64_t id);

 private:
  void Run();
  void Wake();

  ops::Context& ctx_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Engine*> engines_;
  bool stop_ = false;
  bool wake_ = false;
  std::mutex step_mu_;  // held while an engine steps, so Remove can wait for it
  std::thread thread_;
};

}  // namespace atrium
