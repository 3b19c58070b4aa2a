// The KV cache of one sequence: a KvPool holding a single block of
// `capacity` positions, and that sequence's table. Memory is reserved up
// front but pages are only touched as positions fill, so a long context costs
// what is used. Many sequences share one paged KvPool instead (the engine).
#pragma once

#include <cstdint>
#include <memory>

#include "runtime/kv_pool.h"

namespace atrium {

class KvCache {
 public:
  KvCache(int64_t n_layers, int64_t capacity, int64_t k_dim, int64_t v_dim);

  int64_t capacity() const { return pool_->block_tokens(); }
  // Positions 0..size()-1 hold valid keys and values.
  int64_t size() const { return table_.n_tokens; }
  void set_size(int64_t n);
  void Clear() { table_.n_tokens = 0; }
  int64_t bytes() const { return pool_->bytes_per_block(); }

  KvPool& pool() { return *pool_; }
  BlockTable& table() { return table_; }

 private:
  std::unique_ptr<KvPool> pool_;
  BlockTable table_;
};

}  // namespace atrium
