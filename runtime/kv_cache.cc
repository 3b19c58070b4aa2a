#include "runtime/kv_cache.h"

#include <climits>

#include "runtime/status.h"

namespace atrium {

KvCache::KvCache(int64_t n_layers, int64_t capacity, int64_t k_dim, int64_t v_dim) {
  ATRIUM_CHECK(capacity > 0 && capacity <= INT32_MAX, "kv cache capacity %lld", static_cast<long long>(capacity));
  StatusOr<std::unique_ptr<KvPool>> pool = KvPool::Create(
      n_layers, k_dim, v_dim, static_cast<int32_t>(capacity),
      KvPool::BytesPerBlock(n_layers, k_dim, v_dim, static_cast<int32_t>(capacity)));
  ATRIUM_CHECK(pool.ok(), "kv cache: %s", pool.status().ToString().c_str());
  pool_ = std::move(pool).value();
  StatusOr<int32_t> block = pool_->Allocate();
  ATRIUM_CHECK(block.ok(), "kv cache: %s", block.status().ToString().c_str());
  table_.blocks.push_back(*block);
}

void KvCache::set_size(int64_t n) {
  ATRIUM_CHECK(n >= 0 && n <= capacity(), "kv size %lld beyond capacity %lld", static_cast<long long>(n),
               static_cast<long long>(capacity()));
  table_.n_tokens = n;
}

}  // namespace atrium
