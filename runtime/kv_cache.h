// The KV cache of one sequence: per layer, K and V rows of f32 for positions
// 0..capacity-1. Memory is reserved up front but pages are only touched as
// positions fill, so a long context costs what is used. The batching issue
// turns this into a paged block pool; models see it only through k()/v().
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace atrium {

class KvCache {
 public:
  KvCache(int64_t n_layers, int64_t capacity, int64_t k_dim, int64_t v_dim);

  int64_t n_layers() const { return n_layers_; }
  int64_t capacity() const { return capacity_; }
  int64_t k_dim() const { return k_dim_; }
  int64_t v_dim() const { return v_dim_; }
  // Positions 0..size()-1 hold valid keys and values.
  int64_t size() const { return size_; }
  void set_size(int64_t n);
  void Clear() { size_ = 0; }

  float* k(int64_t layer) { return k_[layer].get(); }  // [capacity, k_dim]
  float* v(int64_t layer) { return v_[layer].get(); }  // [capacity, v_dim]
  int64_t bytes() const { return n_layers_ * capacity_ * (k_dim_ + v_dim_) * 4; }

 private:
  struct Free {
    void operator()(float* p) const;
  };
  int64_t n_layers_, capacity_, k_dim_, v_dim_;
  int64_t size_ = 0;
  std::vector<std::unique_ptr<float, Free>> k_, v_;
};

}  // namespace atrium
