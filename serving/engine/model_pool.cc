#include "serving/engine/model_pool.h"

#include <algorithm>
#include <cctype>
#include <deque>
#include <filesystem>
#include <utility>

#include "models/catalog.h"

namespace atrium {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct ModelPool::Entry {
  // kAbsent -> kLoading -> kResident -> kUnloading -> kAbsent. Only a
  // resident entry has an engine; requests for any other wait in `pending`.
  enum class State { kAbsent, kLoading, kResident, kUnloading };
  std::string name;  // as first asked for
  std::string path;  // the file to load
  std::string key;
  State state = State::kAbsent;
  int64_t bytes = 0;  // counted in used_bytes_ while loading or resident
  std::unique_ptr<Model> model;
  std::shared_ptr<const Tokenizer> tokenizer;
  std::unique_ptr<Engine> engine;
  std::deque<std::pair<int64_t, std::unique_ptr<EngineRequest>>> pending;  // (pool id, request)
  // Requests submitted and not yet finished, waiting or in the engine. The
  // pool's own count decides idleness rather than Engine::HasWork(): on_done
  // runs inside a step, before the engine forgets the sequence, and the pool
  // would not hear when HasWork() turned false. Unloading is still safe then,
  // since StepLoop::Remove waits for that step to end.
  int64_t outstanding = 0;
  Clock::time_point last_used{};
  Clock::time_point wanted_since{};  // when pending last became non-empty: load order
};

namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Mib(int64_t bytes) { return StrFormat("%.1f MiB", bytes / 1048576.0); }

struct LoadedModel {
  std::unique_ptr<Model> model;
  std::shared_ptr<const Tokenizer> tokenizer;
  std::unique_ptr<Engine> engine;
};

StatusOr<LoadedModel> LoadFiles(const std::string& path, const ModelPoolOptions& pool) {
  LoadedModel l;
  LoadOptions load;
  load.packed_cache_dir = pool.packed_cache_dir;
  ASSIGN_OR_RETURN(l.model, Model::Load(path, load));
  if (!l.model->has_gguf()) {
    return Unimplemented(StrFormat("%s is a HF checkpoint directory; the pool reads the tokenizer from a GGUF file",
                                   path.c_str()));
  }
  if (pool.tokenizer_for) {
    ASSIGN_OR_RETURN(l.tokenizer, pool.tokenizer_for(path));
  }
  if (l.tokenizer == nullptr) {
    ASSIGN_OR_RETURN(l.tokenizer, Tokenizer::FromGguf(l.model->file()));
  }
  ASSIGN_OR_RETURN(l.engine, Engine::Create(*l.model, *l.tokenizer, pool.engine));
  return l;
}

}  // namespace

ModelPool::ModelPool(ops::Context& ctx, ModelPoolOptions options)
    : ctx_(ctx), options_(std::move(options)), loop_(ctx_), loader_([this] { LoaderLoop(); }) {}

ModelPool::~ModelPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  loader_.join();
  // The loader is gone, so no entry changes state any more. Callbacks (the
  // pending requests' and the engines' own, through Finished) take mu_, so
  // they run without it.
  std::vector<Ending> endings;
  std::vector<Entry*> resident;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [key, e] : entries_) {
      TakePending(*e, Unavailable("the model pool shut down before the model '" + e->name + "' was loaded"),
                  endings);
      if (e->engine != nullptr) resident.push_back(e.get());
    }
  }
  End(endings);
  for (Entry* e : resident) {
    loop_.Remove(e->engine.get());
    e->engine.reset();  // ends its requests with UNAVAILABLE
    e->tokenizer.reset();
    e->model.reset();
  }
}

StatusOr<ModelPool::Resolved> ModelPool::Resolve(const std::string& model, bool scan) {
  std::error_code ec;
  if (fs::is_regular_file(model, ec)) {
    const fs::path canonical = fs::canonical(model, ec);
    return Resolved{ec ? model : canonical.string(), model};
  }
  {
    std::lock_guard<std::mutex> lock(resolve_mu_);
    if (auto it = names_.find(model); it != names_.end()) return it->second;
  }
  if (!scan) return NotFound("model '" + model + "' was never submitted to this pool");
  // Read the directories again: the model may have been installed since.
  const Catalog catalog = Catalog::Scan(Catalog::SearchDirs(options_.models_dir));
  StatusOr<std::string> path = catalog.Resolve(model);
  if (!path.ok()) {
    // A file by that name that failed validation is the likelier story.
    std::string message = path.status().message();
    for (const std::string& w : catalog.warnings()) {
      if (Lower(w).find(Lower(model)) != std::string::npos) message += "; skipped " + w;
    }
    return Status(path.status().code(), message);
  }
  const fs::path canonical = fs::canonical(*path, ec);
  Resolved r{ec ? *path : canonical.string(), *path};
  std::lock_guard<std::mutex> lock(resolve_mu_);
  names_[model] = r;
  return r;
}

StatusOr<int64_t> ModelPool::Submit(const std::string& model, std::unique_ptr<EngineRequest>& request) {
  if (request == nullptr) return InvalidArgument("no request");
  RETURN_IF_ERROR(request->options.Validate());
  if (request->prompt.empty()) return InvalidArgument("the prompt has no tokens");
  ASSIGN_OR_RETURN(Resolved resolved, Resolve(model, /*scan=*/true));

  std::lock_guard<std::mutex> lock(mu_);
  if (stop_) return Unavailable("the model pool is shutting down");
  std::unique_ptr<Entry>& slot = entries_[resolved.key];
  if (slot == nullptr) {
    slot = std::make_unique<Entry>();
    slot->name = model;
    slot->path = resolved.path;
    slot->key = resolved.key;
  }
  Entry& e = *slot;
  const int64_t id = next_id_++;
  // The pool hears of every end through on_done; on a refusal the caller
  // gets its own callback back.
  using DoneFn = std::function<void(const Status&, const GenerationResult&)>;
  auto user_done = std::make_shared<DoneFn>(std::move(request->on_done));
  request->on_done = [this, id, user_done](const Status& s, const GenerationResult& g) {
    Finished(id);
    if (*user_done) (*user_done)(s, g);
  };
  auto refuse = [&](const Status& s) -> Status {
    DoneFn f = std::move(*user_done);
    request->on_done = std::move(f);
    return s;
  };
  e.last_used = Clock::now();
  if (e.state == Entry::State::kResident) {
    // The step thread may finish it before this returns; Finished waits for mu_.
    StatusOr<int64_t> engine_id = loop_.Submit(*e.engine, request);
    if (!engine_id.ok()) return refuse(engine_id.status().WithContext("model '" + model + "'"));
    tickets_[id] = Ticket{&e, *engine_id};
  } else {
    if (e.pending.size() >= options_.engine.max_queue) {
      return refuse(ResourceExhausted(StrFormat("model '%s': %zu requests already wait for it to load; retry later",
                                                model.c_str(), e.pending.size())));
    }
    if (e.pending.empty()) e.wanted_since = e.last_used;
    e.pending.emplace_back(id, std::move(request));
    tickets_[id] = Ticket{&e, -1};
    cv_.notify_all();
  }
  ++e.outstanding;
  return id;
}

void ModelPool::Cancel(const std::string& model, int64_t id) {
  StatusOr<Resolved> resolved = Resolve(model, /*scan=*/false);
  if (!resolved.ok()) return;
  std::vector<Ending> endings;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = tickets_.find(id);
    if (it == tickets_.end() || it->second.entry->key != resolved->key) return;
    Entry& e = *it->second.entry;
    if (it->second.engine_id >= 0) {
      // Its engine stays resident while the request is outstanding.
      loop_.Cancel(*e.engine, it->second.engine_id);
      return;
    }
    for (auto p = e.pending.begin(); p != e.pending.end(); ++p) {
      if (p->first != id) continue;
      endings.push_back({std::move(p->second), Cancelled("cancelled while the model '" + e.name + "' loaded")});
      e.pending.erase(p);
      break;
    }
  }
  End(endings);
}

std::vector<ResidentModel> ModelPool::Resident() const {
  std::vector<ResidentModel> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, e] : entries_) {
    if (e->state != Entry::State::kResident) continue;
    out.push_back({e->name, e->path, e->bytes, e->last_used, e->outstanding, e->engine->stats()});
  }
  std::sort(out.begin(), out.end(),
            [](const ResidentModel& a, const ResidentModel& b) { return a.last_used < b.last_used; });
  return out;
}

void ModelPool::Finished(int64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tickets_.find(id);
  if (it == tickets_.end()) return;
  Entry& e = *it->second.entry;
  tickets_.erase(it);
  e.last_used = Clock::now();
  if (--e.outstanding == 0) cv_.notify_all();  // it may be unloaded now
}

void ModelPool::TakePending(Entry& e, const Status& status, std::vector<Ending>& out) {
  // Their tickets and the outstanding count go in Finished, when the
  // wrapped on_done runs.
  for (auto& [id, request] : e.pending) out.push_back({std::move(request), status});
  e.pending.clear();
}

void ModelPool::End(std::vector<Ending>& endings) {
  for (Ending& x : endings) {
    GenerationResult r;
    r.prompt_tokens = static_cast<int64_t>(x.request->prompt.size());
    r.finish_reason = "cancelled";
    if (x.request->on_done) x.request->on_done(x.status, r);
  }
  endings.clear();
}

void ModelPool::LoaderLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    // Requests past their deadline while they wait for a load end here.
    const Clock::time_point now = Clock::now();
    Clock::time_point next_deadline = Clock::time_point::max();
    std::vector<Ending> endings;
    std::vector<Entry*> wanting;  // absent models with waiting requests
    for (auto& [key, e] : entries_) {
      for (auto p = e->pending.begin(); p != e->pending.end();) {
        if (p->second->deadline <= now) {
          endings.push_back({std::move(p->second), DeadlineExceeded("the deadline passed while the model '" +
                                                                    e->name + "' waited to load")});
          p = e->pending.erase(p);
        } else {
          next_deadline = std::min(next_deadline, p->second->deadline);
          ++p;
        }
      }
      if (e->state == Entry::State::kAbsent && !e->pending.empty()) wanting.push_back(e.get());
    }
    std::sort(wanting.begin(), wanting.end(),
              [](const Entry* a, const Entry* b) { return a->wanted_since < b->wanted_since; });

    // The longest-waiting model that fits (after unloading idle ones) loads
    // next; one that must wait for busy models lets smaller ones go first.
    Entry* chosen = nullptr;
    int64_t cost = 0;
    bool changed = false;
    for (Entry* e : wanting) {
      std::error_code ec;
      const uintmax_t file_bytes = fs::file_size(e->path, ec);  // a missing file fails in the loader
      const int64_t c = (ec ? 0 : static_cast<int64_t>(file_bytes)) + options_.engine.kv_budget_bytes;
      if (c > options_.budget_bytes) {
        TakePending(*e, ResourceExhausted(StrFormat(
                            "model '%s' needs %s (file %s + KV %s), more than the pool's whole budget of %s",
                            e->name.c_str(), Mib(c).c_str(), Mib(c - options_.engine.kv_budget_bytes).c_str(),
                            Mib(options_.engine.kv_budget_bytes).c_str(), Mib(options_.budget_bytes).c_str())),
                    endings);
        continue;
      }
      if (used_bytes_ + c <= options_.budget_bytes) {
        chosen = e;
        cost = c;
        break;
      }
      if (MakeRoom(lock, c)) {
        changed = true;  // mu_ was released: look again
        break;
      }
    }
    if (!endings.empty()) {
      lock.unlock();
      End(endings);
      lock.lock();
      continue;
    }
    if (changed) continue;
    if (chosen != nullptr) {
      Load(lock, *chosen, cost);
      continue;
    }
    // Nothing can go now: sleep until a submit, a model turning idle, a
    // cancellation or the next deadline.
    if (next_deadline == Clock::time_point::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, next_deadline);
    }
  }
}

bool ModelPool::MakeRoom(std::unique_lock<std::mutex>& lock, int64_t cost) {
  std::vector<Entry*> idle;
  int64_t idle_bytes = 0;
  for (auto& [key, e] : entries_) {
    if (e->state == Entry::State::kResident && e->outstanding == 0) {
      idle.push_back(e.get());
      idle_bytes += e->bytes;
    }
  }
  // Unload nothing unless unloading every idle model would make room.
  if (idle.empty() || used_bytes_ - idle_bytes + cost > options_.budget_bytes) return false;
  Entry* lru = *std::min_element(idle.begin(), idle.end(),
                                 [](const Entry* a, const Entry* b) { return a->last_used < b->last_used; });
  Unload(lock, *lru);
  return true;
}

void ModelPool::Unload(std::unique_lock<std::mutex>& lock, Entry& e) {
  // Requests that arrive meanwhile wait in pending, and reload it.
  e.state = Entry::State::kUnloading;
  std::unique_ptr<Engine> engine = std::move(e.engine);
  std::shared_ptr<const Tokenizer> tokenizer = std::move(e.tokenizer);
  std::unique_ptr<Model> model = std::move(e.model);
  lock.unlock();
  loop_.Remove(engine.get());
  engine.reset();
  tokenizer.reset();
  model.reset();  // unmaps the weights
  lock.lock();
  used_bytes_ -= e.bytes;
  e.bytes = 0;
  e.state = Entry::State::kAbsent;
}

void ModelPool::Load(std::unique_lock<std::mutex>& lock, Entry& e, int64_t cost) {
  e.state = Entry::State::kLoading;
  e.bytes = cost;
  used_bytes_ += cost;  // reserved while it loads
  const std::string name = e.name;
  const std::string path = e.path;
  lock.unlock();
  StatusOr<LoadedModel> loaded = LoadFiles(path, options_);
  lock.lock();
  std::vector<Ending> endings;
  if (!loaded.ok()) {
    used_bytes_ -= cost;
    e.bytes = 0;
    e.state = Entry::State::kAbsent;  // the next request tries again
    const std::string what = name == path ? "'" + name + "'" : "'" + name + "' (" + path + ")";
    TakePending(e, Status(loaded.status().code(), "model " + what + " failed to load: " + loaded.status().message()),
                endings);
  } else {
    e.model = std::move(loaded->model);
    e.tokenizer = std::move(loaded->tokenizer);
    e.engine = std::move(loaded->engine);
    e.state = Entry::State::kResident;
    e.last_used = Clock::now();
    loop_.Add(e.engine.get());
    while (!e.pending.empty()) {
      auto [id, request] = std::move(e.pending.front());
      e.pending.pop_front();
      StatusOr<int64_t> engine_id = loop_.Submit(*e.engine, request);
      if (engine_id.ok()) {
        tickets_[id].engine_id = *engine_id;
      } else {
        // Only now checkable: the prompt against this model's vocabulary and context.
        endings.push_back({std::move(request), engine_id.status().WithContext("model '" + name + "'")});
      }
    }
  }
  if (!endings.empty()) {
    lock.unlock();
    End(endings);
    lock.lock();
  }
}

}  // namespace atrium
