#include "serving/engine/step_loop.h"

#include <algorithm>

namespace atrium {

StepLoop::StepLoop(ops::Context& ctx) : ctx_(ctx), thread_([this] { Run(); }) {}

StepLoop::~StepLoop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void StepLoop::Add(Engine* engine) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    engines_.push_back(engine);
  }
  Wake();
}

void StepLoop::Remove(Engine* engine) {
  std::lock_guard<std::mutex> step(step_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  engines_.erase(std::remove(engines_.begin(), engines_.end(), engine), engines_.end());
}

StatusOr<int64_t> StepLoop::Submit(Engine& engine, std::unique_ptr<EngineRequest>& request) {
  StatusOr<int64_t> id = engine.Submit(request);
  if (id.ok()) Wake();
  return id;
}

void StepLoop::Cancel(Engine& engine, int64_t id) {
  engine.Cancel(id);
  Wake();
}

void StepLoop::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake_ = true;
  }
  cv_.notify_one();
}

void StepLoop::Run() {
  for (;;) {
    std::vector<Engine*> engines;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        if (stop_ || wake_) return true;
        return std::any_of(engines_.begin(), engines_.end(), [](Engine* e) { return e->HasWork(); });
      });
      if (stop_) return;
      wake_ = false;
      engines = engines_;
    }
    bool worked = false;
    for (Engine* e : engines) {
      std::lock_guard<std::mutex> step(step_mu_);
      {
        // Removed meanwhile?
        std::lock_guard<std::mutex> lock(mu_);
        if (std::find(engines_.begin(), engines_.end(), e) == engines_.end()) continue;
      }
      worked |= e->Step(ctx_);
    }
    if (!worked) {
      // Nothing ran: sleep until a submit or cancel wakes the loop.
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || wake_; });
    }
  }
}

}  // namespace atrium
