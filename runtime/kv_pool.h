// The paged KV cache: one pool of fixed-size blocks shared by every sequence
// of a model, and per sequence a BlockTable that lists its blocks in position
// order. Sequences that share a prompt prefix share its blocks (reference
// counted); a shared block is copied before anyone writes into it, so no
// sequence ever sees another's keys and values.
//
// Layout: per layer one contiguous array K [n_blocks, block_tokens, k_dim]
// and V [n_blocks, block_tokens, v_dim] of f32, of f16 (half the memory and
// half the attention's reads, llama.cpp's default), or of q8_0 (GGML's
// 32-element blocks, about half of f16 again, llama.cpp's
// --cache-type-k/v q8_0; laid out in groups of 16 rows for decode, see
// kernels/kv_q8.h, so blocks hold a multiple of 16 tokens). Position t of
// a sequence lives at slot (row) table.blocks[t / block_tokens] *
// block_tokens + t % block_tokens of k_data(layer) and v_data(layer).
// Memory is reserved up front (anonymous mmap); its pages are committed by
// Commit(), or else as blocks first fill.
//
// Not thread-safe: the engine's step loop is the only user.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/status.h"

namespace atrium {

// The blocks of one sequence, in position order.
struct BlockTable {
  std::vector<int32_t> blocks;
  // Positions 0..n_tokens-1 hold valid keys and values. The engine advances
  // it after a forward writes the reserved positions; it may hold more
  // blocks than n_tokens needs (a prefix-cache hit that covers it).
  int64_t n_tokens = 0;
};

class KvPool {
 public:
  // n_blocks = budget_bytes / bytes_per_block(); INVALID_ARGUMENT for a bad
  // shape or a budget below one block, RESOURCE_EXHAUSTED if the address
  // space cannot be reserved.
  // dtype: kF32, kF16 or kQ8_0 (k_dim and v_dim multiples of 32, block_tokens of 16).
  static StatusOr<std::unique_ptr<KvPool>> Create(int64_t n_layers, int64_t k_dim, int64_t v_dim,
                                                  int32_t block_tokens, int64_t budget_bytes,
                                                  DType dtype = DType::kF32);
  // Bytes of one block over all layers, K and V: n_layers * (block_tokens rows of k_dim + of v_dim).
  static int64_t BytesPerBlock(int64_t n_layers, int64_t k_dim, int64_t v_dim, int32_t block_tokens,
                               DType dtype = DType::kF32);
  // Blocks that hold n_tokens positions.
  static int64_t BlocksFor(int64_t n_tokens, int32_t block_tokens) {
    return (n_tokens + block_tokens - 1) / block_tokens;
  }

  ~KvPool();
  KvPool(const KvPool&) = delete;
  KvPool& operator=(const KvPool&) = delete;

  // Commits every page of the pool now (they are zero either way), as
  // llama.cpp and vLLM allocate their caches up front: a decode step then
  // never takes a page fault writing a new block's first keys (with 16
  // streams, about 90 a step, on the thread that runs the step), and a
  // host short of memory fails here rather than mid-request.
  // RESOURCE_EXHAUSTED when the memory is not there.
  Status Commit();

  int64_t n_layers() const { return n_layers_; }
  int64_t k_dim() const { return k_dim_; }
  int64_t v_dim() const { return v_dim_; }
  int32_t block_tokens() const { return block_tokens_; }
  DType dtype() const { return dtype_; }
  int64_t bytes_per_block() const { return BytesPerBlock(n_layers_, k_dim_, v_dim_, block_tokens_, dtype_); }
  int32_t total_blocks() const { return n_blocks_; }
  int32_t free_blocks() const { return static_cast<int32_t>(free_.size()); }
  int32_t used_blocks() const { return n_blocks_ - free_blocks(); }

  // [n_blocks * block_tokens, k_dim] / [.., v_dim] of dtype() (q8_0: in kernels/kv_q8.h's layout).
  void* k_data(int64_t layer) const { return k_[layer]; }
  void* v_data(int64_t layer) const { return v_[layer]; }
  // The same for an f32 pool.
  float* k(int64_t layer) const { return F32(k_[layer]); }
  float* v(int64_t layer) const { return F32(v_[layer]); }
  // Row index of position `pos` of a sequence in the k()/v() arrays.
  int64_t Slot(const BlockTable& table, int64_t pos) const {
    return static_cast<int64_t>(table.blocks[pos / block_tokens_]) * block_tokens_ + pos % block_tokens_;
  }

  // One block with reference count 1, or RESOURCE_EXHAUSTED.
  StatusOr<int32_t> Allocate();
  // n blocks appended to *out, all or none (RESOURCE_EXHAUSTED leaves *out as it was).
  Status AllocateN(int32_t n, std::vector<int32_t>* out);
  void Ref(int32_t block);
  // Drops one reference; at zero the block returns to the free list.
  void Unref(int32_t block);
  int32_t refcount(int32_t block) const;
  // Copies keys and values of every layer from src to dst.
  void CopyBlock(int32_t dst, int32_t src);

  // Blocks Reserve(table, n_new_tokens) would take from the free list: the
  // missing ones plus a copy of each shared block it would write into.
  int32_t BlocksNeeded(const BlockTable& table, int64_t n_new_tokens) const;
  // Makes positions n_tokens .. n_tokens + n_new_tokens - 1 writable: appends
  // blocks, and replaces every block in that range whose refcount is > 1 by a
  // private copy (copy-on-write), so a shared prefix block is never written
  // by two sequences. All or nothing: RESOURCE_EXHAUSTED changes nothing.
  // Does not advance table.n_tokens.
  Status Reserve(BlockTable& table, int64_t n_new_tokens);
  // Drops the table's references and empties it.
  void Release(BlockTable& table);
  // A second table sharing all of this one's blocks (each refcount + 1).
  BlockTable Fork(const BlockTable& table);

 private:
  KvPool(int64_t n_layers, int64_t k_dim, int64_t v_dim, int32_t block_tokens, int32_t n_blocks, DType dtype);
  float* F32(void* p) const {
    ATRIUM_CHECK(dtype_ == DType::kF32, "kv pool: float access to a %s pool", std::string(DTypeName(dtype_)).c_str());
    return static_cast<float*>(p);
  }
  void CheckBlock(int32_t block) const;

  int64_t n_layers_, k_dim_, v_dim_;
  int32_t block_tokens_;
  int32_t n_blocks_;
  DType dtype_;
  void* base_ = nullptr;  // one anonymous mapping holding every layer's K and V
  size_t mapped_bytes_ = 0;
  std::vector<char*> k_, v_;
  std::vector<int32_t> refcount_;  // per block; 0 = free
  // Free block ids, popped from the back: recently freed blocks are reused
  // first, their pages are likely resident already.
  std::vector<int32_t> free_;
};

}  // namespace atrium
