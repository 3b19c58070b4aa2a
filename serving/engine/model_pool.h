// Several models resident at once within a memory budget. Each resident
// model has its own batching Engine; one StepLoop steps them all on one
// shared ops::Context, so models take turns on the same cores.
//
// A model is loaded on its first request, on the pool's loader thread: the
// caller, the step thread and the other models never wait for a load.
// Requests for a model that is not resident yet wait in the pool (bounded by
// EngineOptions::max_queue) and go to its engine once it is loaded. When a
// load would exceed the budget, the least recently used idle model (no
// request queued or running) is unloaded first; when no model is idle, the
// load waits until one is. A model whose load fails (missing file, corrupt
// GGUF, unsupported architecture) fails only its own waiting requests, and
// the next request for it tries again.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "serving/engine/engine.h"
#include "serving/engine/step_loop.h"

namespace atrium {

struct ModelPoolOptions {
  // What the resident models may hold together. A model costs its file size
  // (the weights are mapped from it) plus engine.kv_budget_bytes.
  int64_t budget_bytes = int64_t{4} << 30;
  EngineOptions engine;    // every model's engine
  std::string models_dir;  // searched first for catalog names (see Catalog::SearchDirs)
  // Packed weights in files here, mapped read-only and shared with every
  // other process that loads the same model (LoadOptions::packed_cache_dir);
  // empty: each load packs into private memory.
  std::string packed_cache_dir;
  // A model file's tokenizer, when the pool's owner already has one (the
  // worker builds it for Tokenize and prompt checks before any load); null,
  // or no function: the pool builds it from the GGUF.
  std::function<StatusOr<std::shared_ptr<const Tokenizer>>(const std::string& path)> tokenizer_for;
};

struct ResidentModel {
  std::string name;   // as first asked for
  std::string path;   // the GGUF file
  int64_t bytes = 0;  // file size + KV budget: what it counts against the budget
  std::chrono::steady_clock::time_point last_used;  // last request submitted or finished
  int64_t outstanding = 0;  // requests queued or running
  EngineStats stats;
};

class ModelPool {
 public:
  ModelPool(ops::Context& ctx, ModelPoolOptions options);
  // Requests still waiting for a load, queued or running end with UNAVAILABLE
  // (a load in progress is finished first, then dropped).
  ~ModelPool();
  ModelPool(const ModelPool&) = delete;
  ModelPool& operator=(const ModelPool&) = delete;

  // `model` is a catalog name (as `atrium models` prints it) or a path to a
  // GGUF file; names of the same file share one resident model. Takes the
  // request on success and returns its id, unique in the pool. The request
  // stays with the caller, its callbacks never called, on NOT_FOUND (no such
  // model; a catalog name not yet seen rescans the models directories),
  // INVALID_ARGUMENT (a bad request) or RESOURCE_EXHAUSTED (queue full).
  // Errors found later (the model fails to load, or alone exceeds the
  // budget; the prompt does not fit the loaded model) reach on_done, with a
  // message that names the model.
  StatusOr<int64_t> Submit(const std::string& model, std::unique_ptr<EngineRequest>& request);
  // Ends the request `id` submitted to `model` (the same name or file): at
  // once with CANCELLED while it waits for its model's load, else at its
  // engine's next step. Unknown or finished ids are ignored.
  void Cancel(const std::string& model, int64_t id);

  // The loaded models, least recently used first.
  std::vector<ResidentModel> Resident() const;
  int64_t budget_bytes() const { return options_.budget_bytes; }

 private:
  struct Entry;
  struct Ticket {
    Entry* entry = nullptr;
    int64_t engine_id = -1;  // < 0 while the request waits for its model
  };
  struct Resolved {
    std::string key;   // the file's canonical path: one entry per file
    std::string path;  // as resolved, for loading and messages
  };
  // A request that ends in the pool, its callback run outside mu_.
  struct Ending {
    std::unique_ptr<EngineRequest> request;
    Status status;
  };

  // Name -> file; `scan` allows reading the models directories again.
  StatusOr<Resolved> Resolve(const std::string& model, bool scan);
  // From the wrapped on_done: the request left its engine.
  void Finished(int64_t id);
  // The loader thread: loads, unloads and expires waiting requests.
  void LoaderLoop();
  // Under mu_ (released meanwhile): makes room for `cost` bytes by unloading
  // idle models, least recently used first. False when it cannot yet.
  bool MakeRoom(std::unique_lock<std::mutex>& lock, int64_t cost);
  void Unload(std::unique_lock<std::mutex>& lock, Entry& e);
  void Load(std::unique_lock<std::mutex>& lock, Entry& e, int64_t cost);
  // Under mu_: takes e's waiting requests out, to end with `status`.
  void TakePending(Entry& e, const Status& status, std::vector<Ending>& out);
  static void End(std::vector<Ending>& endings);

  ops::Context& ctx_;
  const ModelPoolOptions options_;
  StepLoop loop_;

  std::mutex resolve_mu_;  // guards names_; never held with mu_
  std::map<std::string, Resolved> names_;  // catalog names seen

  mutable std::mutex mu_;  // everything below
  std::condition_variable cv_;  // wakes the loader
  std::map<std::string, std::unique_ptr<Entry>> entries_;  // by Resolved::key
  std::map<int64_t, Ticket> tickets_;  // requests submitted and not yet finished
  int64_t next_id_ = 1;
  int64_t used_bytes_ = 0;  // resident and loading models
  bool stop_ = false;
  std::thread loader_;
};

}  // namespace atrium
