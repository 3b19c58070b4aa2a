#include "runtime/kv_cache.h"

#include <cstdlib>

#include "runtime/status.h"

namespace atrium {

void KvCache::Free::operator()(float* p) const { std::free(p); }

KvCache::KvCache(int64_t n_layers, int64_t capacity, int64_t k_dim, int64_t v_dim)
    : n_layers_(n_layers), capacity_(capacity), k_dim_(k_dim), v_dim_(v_dim) {
  ATRIUM_CHECK(n_layers > 0 && capacity > 0 && k_dim > 0 && v_dim > 0, "bad kv cache shape");
  auto alloc = [](int64_t floats) {
    const size_t bytes = (static_cast<size_t>(floats) * 4 + 63) / 64 * 64;
    float* p = static_cast<float*>(std::aligned_alloc(64, bytes));
    ATRIUM_CHECK(p != nullptr, "out of memory for the kv cache (%zu bytes)", bytes);
    return p;
  };
  for (int64_t l = 0; l < n_layers; ++l) {
    k_.emplace_back(alloc(capacity * k_dim));
    v_.emplace_back(alloc(capacity * v_dim));
  }
}

void KvCache::set_size(int64_t n) {
  ATRIUM_CHECK(n >= 0 && n <= capacity_, "kv size %lld beyond capacity %lld", static_cast<long long>(n),
               static_cast<long long>(capacity_));
  size_ = n;
}

}  // namespace atrium
