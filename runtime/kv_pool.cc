#include "runtime/kv_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "kernels/kv_q8.h"

namespace atrium {
namespace {

// Each layer's K and V region starts on its own page, so the kernels see
// 4 KiB-aligned arrays and a region's pages are touched independently.
constexpr size_t kRegionAlign = 4096;

size_t AlignUp(size_t n, size_t a) { return (n + a - 1) / a * a; }

// Bytes of `rows` rows of `dim` elements of one side of a cache: rows of
// dtype, or q8_0's groups of 16 rows (kernels/kv_q8.h).
int64_t SideBytes(DType dtype, kernels::KvSide side, int64_t rows, int64_t dim) {
  if (dtype == DType::kQ8_0) return rows / kernels::kKvQ8Rows * kernels::KvQ8GroupBytes(side, dim);
  return rows * RowBytes(dtype, dim);
}

}  // namespace

int64_t KvPool::BytesPerBlock(int64_t n_layers, int64_t k_dim, int64_t v_dim, int32_t block_tokens, DType dtype) {
  return n_layers * (SideBytes(dtype, kernels::KvSide::kKeys, block_tokens, k_dim) +
                     SideBytes(dtype, kernels::KvSide::kValues, block_tokens, v_dim));
}

StatusOr<std::unique_ptr<KvPool>> KvPool::Create(int64_t n_layers, int64_t k_dim, int64_t v_dim,
                                                 int32_t block_tokens, int64_t budget_bytes, DType dtype) {
  if (dtype != DType::kF32 && dtype != DType::kF16 && dtype != DType::kQ8_0) {
    return InvalidArgument(StrFormat("kv pool: keys and values are f32, f16 or q8_0, not %s",
                                     std::string(DTypeName(dtype)).c_str()));
  }
  if (n_layers <= 0 || k_dim <= 0 || v_dim <= 0 || block_tokens <= 0) {
    return InvalidArgument(StrFormat("kv pool: n_layers, k_dim, v_dim and block_tokens must be > 0, got %lld, "
                                     "%lld, %lld, %d",
                                     static_cast<long long>(n_layers), static_cast<long long>(k_dim),
                                     static_cast<long long>(v_dim), block_tokens));
  }
  const int64_t quant_block = Info(dtype).block_size;
  if (k_dim % quant_block != 0 || v_dim % quant_block != 0) {
    return InvalidArgument(StrFormat("kv pool: a %s cache needs key and value rows in blocks of %lld, got %lld "
                                     "and %lld; use an f16 cache",
                                     std::string(DTypeName(dtype)).c_str(), static_cast<long long>(quant_block),
                                     static_cast<long long>(k_dim), static_cast<long long>(v_dim)));
  }
  if (dtype == DType::kQ8_0 && block_tokens % kernels::kKvQ8Rows != 0) {
    return InvalidArgument(StrFormat("kv pool: a q8_0 cache keeps keys in groups of %lld, so its blocks need a "
                                     "multiple of %lld tokens, got %d",
                                     static_cast<long long>(kernels::kKvQ8Rows),
                                     static_cast<long long>(kernels::kKvQ8Rows), block_tokens));
  }
  const int64_t per_block = BytesPerBlock(n_layers, k_dim, v_dim, block_tokens, dtype);
  const int64_t n_blocks = std::min<int64_t>(budget_bytes / per_block, INT32_MAX);
  if (n_blocks < 1) {
    return InvalidArgument(StrFormat("kv pool: a budget of %lld bytes holds no block of %d tokens "
                                     "(%lld bytes each for %lld layers)",
                                     static_cast<long long>(budget_bytes), block_tokens,
                                     static_cast<long long>(per_block), static_cast<long long>(n_layers)));
  }
  std::unique_ptr<KvPool> pool(
      new KvPool(n_layers, k_dim, v_dim, block_tokens, static_cast<int32_t>(n_blocks), dtype));

  const size_t rows = static_cast<size_t>(n_blocks) * block_tokens;
  const size_t k_bytes =
      AlignUp(static_cast<size_t>(SideBytes(dtype, kernels::KvSide::kKeys, static_cast<int64_t>(rows), k_dim)),
              kRegionAlign);
  const size_t v_bytes =
      AlignUp(static_cast<size_t>(SideBytes(dtype, kernels::KvSide::kValues, static_cast<int64_t>(rows), v_dim)),
              kRegionAlign);
  const size_t total = (k_bytes + v_bytes) * n_layers;
  // MAP_NORESERVE: the budget is a ceiling, not a commitment; pages are
  // charged as blocks are first written.
  void* base = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) {
    return ResourceExhausted(StrFormat("kv pool: cannot reserve %zu bytes for %lld blocks: %s", total,
                                       static_cast<long long>(n_blocks), std::strerror(errno)));
  }
  pool->base_ = base;
  pool->mapped_bytes_ = total;
  char* p = static_cast<char*>(base);
  for (int64_t l = 0; l < n_layers; ++l) {
    pool->k_.push_back(p);
    p += k_bytes;
    pool->v_.push_back(p);
    p += v_bytes;
  }
  return pool;
}

Status KvPool::Commit() {
  // A committed pool is on 2 MiB pages where the kernel allows: attention
  // walks every sequence's blocks each step, and 4 KiB pages cost a TLB
  // miss per 64 lines (16 streams of SmolLM2: +9% decode). A lazy pool
  // keeps 4 KiB pages, so that memory is charged a block at a time.
  ::madvise(base_, mapped_bytes_, MADV_HUGEPAGE);  // advice only
  // MADV_POPULATE_WRITE (Linux 5.14) faults the pages in one call, several
  // times faster than touching them; older kernels get a write per page.
  constexpr int kPopulateWrite = 23;
  if (::madvise(base_, mapped_bytes_, kPopulateWrite) == 0) return OkStatus();
  if (errno != EINVAL) {
    return ResourceExhausted(StrFormat("kv pool: cannot commit %zu bytes: %s; give the KV cache less memory "
                                       "(--kv-mib)",
                                       mapped_bytes_, std::strerror(errno)));
  }
  const long page = ::sysconf(_SC_PAGESIZE);
  auto* p = static_cast<volatile char*>(base_);
  for (size_t off = 0; off < mapped_bytes_; off += static_cast<size_t>(page)) p[off] = 0;
  return OkStatus();
}

KvPool::KvPool(int64_t n_layers, int64_t k_dim, int64_t v_dim, int32_t block_tokens, int32_t n_blocks, DType dtype)
    : n_layers_(n_layers),
      k_dim_(k_dim),
      v_dim_(v_dim),
      block_tokens_(block_tokens),
      n_blocks_(n_blocks),
      dtype_(dtype),
      refcount_(n_blocks, 0) {
  free_.reserve(n_blocks);
  // Pushed in reverse so block 0 is handed out first (easier to read in tests and dumps).
  for (int32_t b = n_blocks - 1; b >= 0; --b) free_.push_back(b);
}

KvPool::~KvPool() {
  if (base_ != nullptr) munmap(base_, mapped_bytes_);
}

void KvPool::CheckBlock(int32_t block) const {
  ATRIUM_CHECK(block >= 0 && block < n_blocks_, "kv block %d out of range [0, %d)", block, n_blocks_);
}

StatusOr<int32_t> KvPool::Allocate() {
  if (free_.empty()) {
    return ResourceExhausted(StrFormat("kv pool: all %d blocks are in use", n_blocks_));
  }
  const int32_t b = free_.back();
  free_.pop_back();
  refcount_[b] = 1;
  return b;
}

Status KvPool::AllocateN(int32_t n, std::vector<int32_t>* out) {
  ATRIUM_CHECK(n >= 0, "negative block count %d", n);
  if (n > free_blocks()) {
    return ResourceExhausted(
        StrFormat("kv pool: %d blocks wanted, %d of %d free", n, free_blocks(), n_blocks_));
  }
  for (int32_t i = 0; i < n; ++i) {
    const int32_t b = free_.back();
    free_.pop_back();
    refcount_[b] = 1;
    out->push_back(b);
  }
  return OkStatus();
}

void KvPool::Ref(int32_t block) {
  CheckBlock(block);
  ATRIUM_CHECK(refcount_[block] > 0, "Ref of free kv block %d", block);
  ++refcount_[block];
}

void KvPool::Unref(int32_t block) {
  CheckBlock(block);
  ATRIUM_CHECK(refcount_[block] > 0, "Unref of free kv block %d", block);
  if (--refcount_[block] == 0) free_.push_back(block);
}

int32_t KvPool::refcount(int32_t block) const {
  CheckBlock(block);
  return refcount_[block];
}

void KvPool::CopyBlock(int32_t dst, int32_t src) {
  CheckBlock(dst);
  CheckBlock(src);
  if (dst == src) return;
  const size_t k_bytes = static_cast<size_t>(SideBytes(dtype_, kernels::KvSide::kKeys, block_tokens_, k_dim_));
  const size_t v_bytes = static_cast<size_t>(SideBytes(dtype_, kernels::KvSide::kValues, block_tokens_, v_dim_));
  for (int64_t l = 0; l < n_layers_; ++l) {
    std::memcpy(k_[l] + dst * k_bytes, k_[l] + src * k_bytes, k_bytes);
    std::memcpy(v_[l] + dst * v_bytes, v_[l] + src * v_bytes, v_bytes);
  }
}

int32_t KvPool::BlocksNeeded(const BlockTable& table, int64_t n_new_tokens) const {
  ATRIUM_CHECK(n_new_tokens >= 0 && table.n_tokens >= 0, "negative token count");
  if (n_new_tokens == 0) return 0;
  const int64_t have = static_cast<int64_t>(table.blocks.size());
  const int64_t want = BlocksFor(table.n_tokens + n_new_tokens, block_tokens_);
  int64_t needed = std::max<int64_t>(0, want - have);
  // The blocks that will be written and already exist: copied if shared.
  for (int64_t i = table.n_tokens / block_tokens_; i < std::min(want, have); ++i) {
    if (refcount(table.blocks[i]) > 1) ++needed;
  }
  return static_cast<int32_t>(needed);
}

Status KvPool::Reserve(BlockTable& table, int64_t n_new_tokens) {
  const int32_t needed = BlocksNeeded(table, n_new_tokens);
  if (needed > free_blocks()) {
    return ResourceExhausted(StrFormat("kv pool: %lld more tokens need %d blocks, %d of %d free",
                                       static_cast<long long>(n_new_tokens), needed, free_blocks(), n_blocks_));
  }
  if (needed == 0) return OkStatus();
  // From here on nothing can fail: the count above covers every allocation.
  const int64_t have = static_cast<int64_t>(table.blocks.size());
  const int64_t want = BlocksFor(table.n_tokens + n_new_tokens, block_tokens_);
  for (int64_t i = table.n_tokens / block_tokens_; i < std::min(want, have); ++i) {
    const int32_t old = table.blocks[i];
    if (refcount_[old] > 1) {
      const int32_t copy = *Allocate();
      CopyBlock(copy, old);
      Unref(old);
      table.blocks[i] = copy;
    }
  }
  if (want > have) RETURN_IF_ERROR(AllocateN(static_cast<int32_t>(want - have), &table.blocks));
  return OkStatus();
}

void KvPool::Release(BlockTable& table) {
  for (int32_t b : table.blocks) Unref(b);
  table.blocks.clear();
  table.n_tokens = 0;
}

BlockTable KvPool::Fork(const BlockTable& table) {
  for (int32_t b : table.blocks) Ref(b);
  return table;
}

}  // namespace atrium
