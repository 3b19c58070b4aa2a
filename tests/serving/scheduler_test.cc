#include "serving/engine/scheduler.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <random>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "runtime/kv_pool.h"
#include "serving/engine/prefix_cache.h"

namespace atrium {
namespace {

RunningSequence Running(int64_t id, int64_t computed, int64_t known, int32_t held, int32_t releasable = -1) {
  return {id, computed, known, held, releasable < 0 ? held : releasable};
}

WaitingRequest Wait(int64_t id, int64_t n_tokens, int64_t cached = 0, int32_t evictable = 0, bool preempted = false) {
  return {id, n_tokens, cached, evictable, preempted};
}

// "decode 1@10:1+0s | prefill 2@8:8+2 | admit 3@0:7+2 | preempt 4 | reject 5":
// id@start:n_tokens+new_blocks, s when the chunk samples.
std::string Describe(const StepPlan& p) {
  std::ostringstream os;
  auto chunks = [&](const char* name, const std::vector<ScheduledChunk>& list) {
    os << name;
    for (const ScheduledChunk& c : list) {
      os << " " << c.id << "@" << c.start << ":" << c.n_tokens << "+" << c.new_blocks << (c.samples ? "s" : "");
    }
  };
  chunks("decode", p.decode);
  chunks(" | prefill", p.prefill);
  chunks(" | admit", p.admit);
  os << " | preempt";
  for (int64_t id : p.preempt) os << " " << id;
  os << " | reject";
  for (const Rejection& r : p.reject) os << " " << r.id;
  return os.str();
}

struct Case {
  const char* name;
  SchedulerInput input;
  std::string want;
  SchedulerConfig config = {16, 4, 8};  // max_step_tokens, max_running, prefill_chunk
};

// One step per case; blocks hold 4 tokens and the pool 100 blocks unless a
// case says otherwise.
TEST(SchedulerTest, OneStepTable) {
  const std::vector<Case> cases = {
      {"decodes, then in-flight prefill chunks, then FIFO admissions within the token budget",
       {{Running(1, 10, 11, 3), Running(2, 8, 30, 2)}, {Wait(3, 20), Wait(4, 5)}, 50, 100, 4},
       "decode 1@10:1+0s | prefill 2@8:8+2 | admit 3@0:7+2 | preempt | reject"},
      {"a decode crossing a block boundary takes a block; a chunk that ends the prompt samples",
       {{Running(1, 12, 13, 3), Running(2, 8, 11, 2)}, {}, 5, 100, 4},
       "decode 1@12:1+1s | prefill 2@8:3+1s | admit | preempt | reject"},
      {"admission counts blocks promised earlier in the step, and nobody overtakes a request that waits",
       {{Running(1, 12, 13, 3)}, {Wait(2, 8), Wait(3, 5), Wait(4, 1)}, 4, 100, 4},
       "decode 1@12:1+1s | prefill | admit 2@0:8+2s | preempt | reject"},
      {"max_running caps admissions",
       {{Running(1, 4, 5, 2)}, {Wait(2, 4), Wait(3, 4)}, 50, 100, 4},
       "decode 1@4:1+0s | prefill | admit 2@0:4+1s | preempt | reject",
       {16, 2, 8}},
      {"the token budget caps a prefill chunk and leaves nothing to admit",
       {{Running(1, 4, 5, 2), Running(2, 4, 14, 1)}, {Wait(3, 4)}, 10, 100, 4},
       "decode 1@4:1+0s | prefill 2@4:3+1 | admit | preempt | reject",
       {4, 4, 8}},
      {"a decode short of blocks preempts the newest unscheduled sequence; nothing is admitted",
       {{Running(1, 8, 9, 2), Running(2, 4, 20, 1), Running(3, 5, 6, 2)}, {Wait(5, 4)}, 0, 100, 4},
       "decode 1@8:1+1s | prefill 2@4:4+1 | admit | preempt 3 | reject"},
      {"the newest decode short of blocks preempts itself",
       {{Running(1, 5, 6, 2), Running(2, 8, 9, 2)}, {}, 0, 100, 4},
       "decode 1@5:1+0s | prefill | admit | preempt 2 | reject"},
      {"preempting frees only blocks nobody else shares",
       {{Running(1, 8, 9, 2), Running(2, 5, 6, 2, 1), Running(3, 5, 6, 2, 0)}, {}, 0, 100, 4},
       "decode 1@8:1+1s | prefill | admit | preempt 3 2 | reject"},
      {"an in-flight prefill takes blocks from a newer unscheduled prefill",
       {{Running(1, 4, 40, 1), Running(2, 8, 40, 2)}, {}, 0, 100, 4},
       "decode | prefill 1@4:8+2 | admit | preempt 2 | reject"},
      {"a prefill with no block to take waits and keeps its blocks",
       {{Running(1, 4, 40, 1), Running(2, 7, 8, 2)}, {Wait(3, 4)}, 0, 100, 4},
       "decode 2@7:1+0s | prefill | admit | preempt | reject"},
      {"a preempted request at the front is admitted first",
       {{}, {Wait(7, 12, 0, 0, true), Wait(8, 4)}, 3, 100, 4},
       "decode | prefill | admit 7@0:12+3s | preempt | reject",
       {16, 4, 16}},
      {"cached prefix tokens are skipped, and pinning cached blocks counts against free (short)",
       {{}, {Wait(1, 20, 16, 2)}, 2, 100, 4},
       "decode | prefill | admit | preempt | reject"},
      {"cached prefix tokens are skipped, and pinning cached blocks counts against free (enough)",
       {{}, {Wait(1, 20, 16, 2), Wait(2, 4)}, 3, 100, 4},
       "decode | prefill | admit 1@16:4+1s | preempt | reject"},
      {"a waiting request that can never fit is rejected without blocking the queue",
       {{}, {Wait(2, 17), Wait(3, 4)}, 4, 4, 4},
       "decode | prefill | admit 3@0:4+1s | preempt | reject 2"},
      {"a running sequence that outgrew the pool is rejected; nothing is admitted that step",
       {{Running(1, 16, 17, 4)}, {Wait(2, 17), Wait(3, 4)}, 0, 4, 4},
       "decode | prefill | admit | preempt | reject 1 2"},
      {"nothing to do",
       {{}, {}, 10, 10, 16},
       "decode | prefill | admit | preempt | reject"},
  };
  for (const Case& c : cases) {
    ASSERT_TRUE(c.config.Validate().ok()) << c.name;
    const StepPlan plan = Schedule(c.input, c.config);
    EXPECT_EQ(Describe(plan), c.want) << c.name;
    EXPECT_LE(plan.n_tokens, c.config.max_step_tokens) << c.name;
    int64_t tokens = 0, blocks = 0;
    for (const auto* list : {&plan.decode, &plan.prefill, &plan.admit}) {
      for (const ScheduledChunk& chunk : *list) {
        tokens += chunk.n_tokens;
        blocks += chunk.new_blocks;
      }
    }
    EXPECT_EQ(plan.n_tokens, tokens) << c.name;
    EXPECT_EQ(plan.n_new_blocks, blocks) << c.name;
    for (const Rejection& r : plan.reject) {
      EXPECT_EQ(r.status.code(), StatusCode::kResourceExhausted) << c.name;
      EXPECT_NE(r.status.message().find("KV blocks"), std::string::npos) << r.status.message();
    }
  }
}

TEST(SchedulerTest, ConfigValidation) {
  EXPECT_TRUE(SchedulerConfig{}.Validate().ok());
  EXPECT_EQ(SchedulerConfig({0, 1, 1}).Validate().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SchedulerConfig({8, 0, 1}).Validate().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(SchedulerConfig({8, 1, 0}).Validate().code(), StatusCode::kInvalidArgument);
  const Status s = SchedulerConfig({8, 16, 8}).Validate();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("max_running"), std::string::npos);
}

// The bound on waiting requests is the engine's (FullQueueRefusesAtOnce in
// engine_model_test); the queue keeps their order.
TEST(SchedulerTest, RequestQueueKeepsOrderWithPreemptedFirst) {
  RequestQueue<int> q;
  q.Push(std::make_unique<int>(1));
  q.Push(std::make_unique<int>(2));
  // A preempted request goes back at the front.
  q.PushFront(std::make_unique<int>(0));
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(q[0], 0);
  EXPECT_EQ(*q.Take(1), 1);
  EXPECT_EQ(*q.PopFront(), 0);
  EXPECT_EQ(*q.PopFront(), 2);
  EXPECT_TRUE(q.empty());
}

// Steps a whole workload through the scheduler with plain block counting (no
// sharing), applying each plan as an engine would, and checks: the token
// budget holds, blocks never go negative and tables never overflow, admission
// is FIFO with preempted requests first, and every request finishes.
TEST(SchedulerTest, SimulatedWorkloadFinishesWithinLimits) {
  constexpr int32_t kB = 4, kTotalBlocks = 40;
  const SchedulerConfig config = {32, 8, 16};
  int64_t total_preemptions = 0;
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    struct Req {
      int64_t id, prompt, max_new, arrival;
      int64_t generated = 0;
      bool preempted = false;
      int64_t computed = 0;
      int32_t held = 0;
      int64_t known() const { return prompt + generated; }
    };
    std::vector<Req> future;
    for (int64_t id = 1; id <= 60; ++id) {
      future.push_back({id, std::uniform_int_distribution<int64_t>(1, 60)(rng),
                        std::uniform_int_distribution<int64_t>(1, 40)(rng),
                        std::uniform_int_distribution<int64_t>(0, 100)(rng)});
    }
    future.push_back({999, kTotalBlocks * kB + 1, 1, 5});  // can never fit
    std::stable_sort(future.begin(), future.end(), [](const Req& a, const Req& b) { return a.arrival < b.arrival; });
    std::deque<Req> waiting;
    std::vector<Req> running;
    std::set<int64_t> finished, rejected;
    int64_t free = kTotalBlocks;
    size_t next = 0;

    int64_t step = 0;
    for (; step < 5000 && (next < future.size() || !waiting.empty() || !running.empty()); ++step) {
      while (next < future.size() && future[next].arrival <= step) waiting.push_back(future[next++]);
      SchedulerInput in;
      in.free_blocks = static_cast<int32_t>(free);
      in.total_blocks = kTotalBlocks;
      in.block_tokens = kB;
      for (const Req& r : running) in.running.push_back(Running(r.id, r.computed, r.known(), r.held));
      for (const Req& r : waiting) in.waiting.push_back(Wait(r.id, r.known(), 0, 0, r.preempted));
      const StepPlan plan = Schedule(in, config);
      ASSERT_LE(plan.n_tokens, config.max_step_tokens);

      // Rejections: only the one that can never fit.
      for (const Rejection& rej : plan.reject) {
        ASSERT_EQ(rej.id, 999);
        rejected.insert(rej.id);
        waiting.erase(std::find_if(waiting.begin(), waiting.end(), [&](const Req& r) { return r.id == rej.id; }));
      }
      // Admissions are the front of the queue, in order.
      for (size_t k = 0; k < plan.admit.size(); ++k) ASSERT_EQ(plan.admit[k].id, waiting[k].id);
      // No request is admitted ahead of a preempted one still waiting.
      for (size_t j = plan.admit.size(); j < waiting.size(); ++j) {
        if (!waiting[j].preempted) continue;
        for (size_t k = 0; k < plan.admit.size(); ++k) ASSERT_TRUE(waiting[k].preempted);
      }
      for (int64_t id : plan.preempt) {
        auto it = std::find_if(running.begin(), running.end(), [&](const Req& r) { return r.id == id; });
        ASSERT_NE(it, running.end());
        Req r = *it;
        running.erase(it);
        free += r.held;
        r.held = 0;
        r.computed = 0;
        r.preempted = true;
        waiting.push_front(r);
        ++total_preemptions;
      }
      ASSERT_LE(plan.n_new_blocks, free);
      std::vector<Req> admitted;
      for (size_t k = 0; k < plan.admit.size(); ++k) {
        admitted.push_back(waiting.front());
        waiting.pop_front();
      }
      // The preempted requests are now at the front, oldest first.
      for (size_t k = 0; k < plan.preempt.size(); ++k) {
        ASSERT_EQ(waiting[k].id, plan.preempt[plan.preempt.size() - 1 - k]);
      }
      auto apply = [&](Req& r, const ScheduledChunk& c) {
        ASSERT_EQ(c.start, r.computed);
        r.held += c.new_blocks;
        free -= c.new_blocks;
        ASSERT_GE(free, 0);
        r.computed += c.n_tokens;
        ASSERT_EQ(r.held, (r.computed + kB - 1) / kB);  // exactly the blocks needed
        ASSERT_LE(r.computed, r.known());
        ASSERT_EQ(c.samples, r.computed == r.known());
        if (c.samples) ++r.generated;
      };
      for (const auto* list : {&plan.decode, &plan.prefill}) {
        for (const ScheduledChunk& c : *list) {
          auto it = std::find_if(running.begin(), running.end(), [&](const Req& r) { return r.id == c.id; });
          ASSERT_NE(it, running.end());
          apply(*it, c);
        }
      }
      for (size_t k = 0; k < admitted.size(); ++k) {
        apply(admitted[k], plan.admit[k]);
        running.push_back(admitted[k]);
      }
      for (auto it = running.begin(); it != running.end();) {
        if (it->generated == it->max_new) {
          free += it->held;
          finished.insert(it->id);
          it = running.erase(it);
        } else {
          ++it;
        }
      }
      ASSERT_LE(static_cast<int32_t>(running.size()), config.max_running);
    }
    EXPECT_EQ(finished.size(), 60u) << "seed " << seed << " after " << step << " steps";
    EXPECT_EQ(rejected, std::set<int64_t>{999});
    EXPECT_EQ(free, kTotalBlocks);
  }
  EXPECT_GT(total_preemptions, 0) << "the workload never ran short of blocks; make the pool smaller";
}

// The engine's step recipe end to end on a real KvPool and PrefixCache:
// Peek for waiting requests, Schedule, release preempted, Lookup for
// admissions, EvictUntilFree, Reserve, "forward" (write a value that depends
// on the namespace and every token up to the position), sample, Insert,
// release finished. Every Reserve must succeed with exactly the planned
// blocks, and every position a sequence reads (its own or from the cache)
// must hold the value for its own tokens.
TEST(SchedulerTest, EngineRecipeOnRealPoolAndPrefixCache) {
  constexpr int32_t kB = 4, kBlocks = 30;
  const SchedulerConfig config = {24, 6, 8};
  auto pool = std::move(KvPool::Create(1, 1, 1, kB, kBlocks * KvPool::BytesPerBlock(1, 1, 1, kB))).value();
  PrefixCache cache(*pool);

  auto mix = [](uint64_t x) {
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ull;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dull;
    return x ^ (x >> 33);
  };
  auto value_at = [&](const std::string& ns, const std::vector<int32_t>& tokens, int64_t pos) {
    uint64_t h = std::hash<std::string>{}(ns);
    for (int64_t p = 0; p <= pos; ++p) h = mix(h ^ static_cast<uint32_t>(tokens[p]));
    return static_cast<float>(h >> 40);  // 24 bits: exact in a float
  };

  struct Seq {
    int64_t id;
    std::string ns;
    std::vector<int32_t> tokens;  // prompt + generated
    int64_t max_new, generated = 0, arrival;
    bool preempted = false;
    BlockTable table;
  };
  std::mt19937 rng(7);
  const std::vector<std::vector<int32_t>> systems = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, {5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5}};
  std::vector<Seq> future;
  for (int64_t id = 1; id <= 50; ++id) {
    Seq s;
    s.id = id;
    s.ns = (id % 3 == 0) ? "tenants/b/models/m" : "tenants/a/models/m";
    s.tokens = systems[id % 2];
    const int n_suffix = std::uniform_int_distribution<int>(0, 12)(rng);
    for (int k = 0; k < n_suffix; ++k) s.tokens.push_back(std::uniform_int_distribution<int32_t>(20, 23)(rng));
    s.max_new = std::uniform_int_distribution<int64_t>(1, 20)(rng);
    s.arrival = std::uniform_int_distribution<int64_t>(0, 60)(rng);
    future.push_back(s);
  }
  std::stable_sort(future.begin(), future.end(), [](const Seq& a, const Seq& b) { return a.arrival < b.arrival; });

  std::deque<Seq> waiting;
  std::vector<Seq> running;
  int64_t finished = 0, preemptions = 0;
  size_t next = 0;
  auto all_but_last = [](const Seq& s) { return std::span<const int32_t>(s.tokens).first(s.tokens.size() - 1); };

  for (int64_t step = 0; step < 3000 && (next < future.size() || !waiting.empty() || !running.empty()); ++step) {
    while (next < future.size() && future[next].arrival <= step) waiting.push_back(future[next++]);
    SchedulerInput in;
    in.block_tokens = kB;
    in.total_blocks = pool->total_blocks();
    in.free_blocks = pool->free_blocks() + cache.EvictableBlocks();
    for (const Seq& s : running) {
      in.running.push_back(Running(s.id, s.table.n_tokens, static_cast<int64_t>(s.tokens.size()),
                               static_cast<int32_t>(s.table.blocks.size()), cache.ReleasableBlocks(s.table)));
    }
    for (const Seq& s : waiting) {
      const PrefixPeek peek = cache.Peek(s.ns, all_but_last(s));
      in.waiting.push_back(
          Wait(s.id, static_cast<int64_t>(s.tokens.size()), peek.n_tokens, peek.evictable_blocks, s.preempted));
    }
    const StepPlan plan = Schedule(in, config);
    ASSERT_TRUE(plan.reject.empty());
    ASSERT_LE(plan.n_tokens, config.max_step_tokens);

    for (int64_t id : plan.preempt) {
      auto it = std::find_if(running.begin(), running.end(), [&](const Seq& s) { return s.id == id; });
      ASSERT_NE(it, running.end());
      Seq s = std::move(*it);
      running.erase(it);
      pool->Release(s.table);
      s.preempted = true;
      waiting.push_front(std::move(s));
      ++preemptions;
    }
    for (const ScheduledChunk& c : plan.admit) {
      ASSERT_EQ(waiting.front().id, c.id);
      Seq s = std::move(waiting.front());
      waiting.pop_front();
      PrefixHit hit = cache.Lookup(s.ns, all_but_last(s));
      ASSERT_EQ(hit.n_tokens, c.start);
      s.table.blocks = std::move(hit.blocks);
      s.table.n_tokens = hit.n_tokens;
      running.push_back(std::move(s));
    }
    ASSERT_GE(pool->free_blocks() + cache.EvictableBlocks(), plan.n_new_blocks);
    if (pool->free_blocks() < plan.n_new_blocks) cache.EvictUntilFree(plan.n_new_blocks);
    ASSERT_GE(pool->free_blocks(), plan.n_new_blocks);

    for (const auto* list : {&plan.decode, &plan.prefill, &plan.admit}) {
      for (const ScheduledChunk& c : *list) {
        auto it = std::find_if(running.begin(), running.end(), [&](const Seq& s) { return s.id == c.id; });
        ASSERT_NE(it, running.end());
        Seq& s = *it;
        ASSERT_EQ(s.table.n_tokens, c.start);
        ASSERT_EQ(pool->BlocksNeeded(s.table, c.n_tokens), c.new_blocks);
        ASSERT_TRUE(pool->Reserve(s.table, c.n_tokens).ok());
        for (int64_t p = 0; p < c.start; ++p) {
          ASSERT_EQ(pool->k(0)[pool->Slot(s.table, p)], value_at(s.ns, s.tokens, p)) << "seq " << s.id << " pos " << p;
        }
        for (int64_t p = c.start; p < c.start + c.n_tokens; ++p) {
          pool->k(0)[pool->Slot(s.table, p)] = value_at(s.ns, s.tokens, p);
        }
        s.table.n_tokens += c.n_tokens;
        if (c.samples) {
          const int64_t last = static_cast<int64_t>(s.tokens.size()) - 1;
          s.tokens.push_back(30 + static_cast<int32_t>(static_cast<uint32_t>(value_at(s.ns, s.tokens, last)) % 4));
          ++s.generated;
        }
        cache.Insert(s.ns, s.tokens, s.table);
      }
    }
    for (auto it = running.begin(); it != running.end();) {
      if (it->generated == it->max_new) {
        pool->Release(it->table);
        ++finished;
        it = running.erase(it);
      } else {
        ++it;
      }
    }
  }
  EXPECT_EQ(finished, 50);
  EXPECT_GT(cache.stats().hit_tokens, 0);
  EXPECT_GT(cache.stats().evicted_blocks, 0) << "the pool never ran short; make it smaller";
  std::printf("preemptions %lld, cache hit tokens %lld of %lld, evicted blocks %lld\n",
              static_cast<long long>(preemptions), static_cast<long long>(cache.stats().hit_tokens),
              static_cast<long long>(cache.stats().lookup_tokens),
              static_cast<long long>(cache.stats().evicted_blocks));
  cache.Clear();
  EXPECT_EQ(pool->free_blocks(), kBlocks);
}

}  // namespace
}  // namespace atrium
