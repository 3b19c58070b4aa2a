#include "runtime/kv_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <random>

#include <gtest/gtest.h>

namespace atrium {
namespace {

std::unique_ptr<KvPool> MakePool(int32_t n_blocks, int64_t n_layers = 2, int64_t k_dim = 4, int64_t v_dim = 3,
                                 int32_t block_tokens = 4) {
  auto pool = KvPool::Create(n_layers, k_dim, v_dim, block_tokens,
                             n_blocks * KvPool::BytesPerBlock(n_layers, k_dim, v_dim, block_tokens));
  EXPECT_TRUE(pool.ok()) << pool.status().ToString();
  return std::move(pool).value();
}

// Writes `value` into every K and V element of position pos, all layers.
void WritePos(KvPool& pool, const BlockTable& t, int64_t pos, float value) {
  const int64_t slot = pool.Slot(t, pos);
  for (int64_t l = 0; l < pool.n_layers(); ++l) {
    for (int64_t i = 0; i < pool.k_dim(); ++i) pool.k(l)[slot * pool.k_dim() + i] = value + l;
    for (int64_t i = 0; i < pool.v_dim(); ++i) pool.v(l)[slot * pool.v_dim() + i] = -value - l;
  }
}

bool PosHolds(const KvPool& pool, const BlockTable& t, int64_t pos, float value) {
  const int64_t slot = pool.Slot(t, pos);
  for (int64_t l = 0; l < pool.n_layers(); ++l) {
    for (int64_t i = 0; i < pool.k_dim(); ++i) {
      if (pool.k(l)[slot * pool.k_dim() + i] != value + l) return false;
    }
    for (int64_t i = 0; i < pool.v_dim(); ++i) {
      if (pool.v(l)[slot * pool.v_dim() + i] != -value - l) return false;
    }
  }
  return true;
}

TEST(KvPoolTest, BudgetGivesBlockCount) {
  // 2 layers * 16 tokens * (64 + 32) floats * 4 bytes = 12288 bytes per block.
  EXPECT_EQ(KvPool::BytesPerBlock(2, 64, 32, 16), 12288);
  auto pool = KvPool::Create(2, 64, 32, 16, 12288 * 10 + 12287);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  EXPECT_EQ((*pool)->total_blocks(), 10);
  EXPECT_EQ((*pool)->free_blocks(), 10);
  EXPECT_EQ((*pool)->bytes_per_block(), 12288);
  // Each layer's arrays are page-aligned and far enough apart for all blocks.
  EXPECT_EQ(reinterpret_cast<uintptr_t>((*pool)->k(1)) % 4096, 0u);
  EXPECT_GE((*pool)->v(0) - (*pool)->k(0), 10 * 16 * 64);

  auto too_small = KvPool::Create(2, 64, 32, 16, 12287);
  ASSERT_FALSE(too_small.ok());
  EXPECT_EQ(too_small.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(too_small.status().message().find("12287"), std::string::npos) << too_small.status().message();
  EXPECT_EQ(KvPool::Create(0, 64, 32, 16, 1 << 20).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(KvPool::Create(2, 64, 32, 0, 1 << 20).status().code(), StatusCode::kInvalidArgument);
}

// A q8_0 pool: rows of 34-byte blocks of 32, so a block of 16 tokens of
// 2 layers x (64 + 32) elements is 2 * 16 * (68 + 34) = 3264 bytes, 0.53x
// f16's; CopyBlock moves whole rows (every byte of a block's quants and
// scales); and rows that are not whole blocks are refused.
TEST(KvPoolTest, Q8PoolSizesGroupsInBlocksAndCopiesThem) {
  // Per layer and 16 rows (kernels/kv_q8.h): keys 2 chunks x (512 quants +
  // 32 scales + 32 sums), values 16 x 32 quants + 16 scales, padded to 576.
  EXPECT_EQ(KvPool::BytesPerBlock(2, 64, 32, 16, DType::kQ8_0), 2 * (1152 + 576));
  EXPECT_EQ(KvPool::BytesPerBlock(2, 64, 32, 32, DType::kQ8_0), 4 * (1152 + 576));
  EXPECT_EQ(KvPool::BytesPerBlock(2, 64, 32, 16, DType::kF16), 6144);
  auto pool = KvPool::Create(2, 64, 32, 16, 3456 * 4, DType::kQ8_0);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  KvPool& p = **pool;
  EXPECT_EQ(p.total_blocks(), 4);
  const int64_t k_block = 1152, v_block = 576;  // bytes of a block in one layer
  // Block 1's bytes in layer 1, then copied to block 3.
  auto* k = static_cast<uint8_t*>(p.k_data(1));
  auto* v = static_cast<uint8_t*>(p.v_data(1));
  for (int64_t i = 0; i < k_block; ++i) k[k_block + i] = static_cast<uint8_t>(i * 7 + 1);
  for (int64_t i = 0; i < v_block; ++i) v[v_block + i] = static_cast<uint8_t>(i * 5 + 3);
  p.CopyBlock(3, 1);
  for (int64_t i = 0; i < k_block; ++i) ASSERT_EQ(k[3 * k_block + i], static_cast<uint8_t>(i * 7 + 1)) << i;
  for (int64_t i = 0; i < v_block; ++i) ASSERT_EQ(v[3 * v_block + i], static_cast<uint8_t>(i * 5 + 3)) << i;
  EXPECT_EQ(k[2 * k_block], 0);  // block 2 untouched

  auto ragged = KvPool::Create(2, 48, 32, 16, 1 << 20, DType::kQ8_0);
  ASSERT_FALSE(ragged.ok());
  EXPECT_EQ(ragged.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ragged.status().message().find("48"), std::string::npos) << ragged.status().message();
  auto short_pages = KvPool::Create(2, 64, 32, 8, 1 << 20, DType::kQ8_0);
  ASSERT_FALSE(short_pages.ok());
  EXPECT_EQ(short_pages.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(short_pages.status().message().find("multiple of 16 tokens"), std::string::npos)
      << short_pages.status().message();
  EXPECT_EQ(KvPool::Create(2, 64, 32, 16, 1 << 20, DType::kQ4_0).status().code(), StatusCode::kInvalidArgument);
}

TEST(KvPoolTest, AllocateUntilExhaustedThenFreeRestores) {
  auto pool = MakePool(5);
  std::vector<int32_t> got;
  for (int i = 0; i < 5; ++i) {
    auto b = pool->Allocate();
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(pool->refcount(*b), 1);
    got.push_back(*b);
  }
  EXPECT_EQ(pool->free_blocks(), 0);
  auto none = pool->Allocate();
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kResourceExhausted);
  for (int32_t b : got) pool->Unref(b);
  EXPECT_EQ(pool->free_blocks(), 5);

  // Bulk allocation is all or nothing.
  std::vector<int32_t> out = {99};
  EXPECT_EQ(pool->AllocateN(6, &out).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(out, std::vector<int32_t>{99});
  EXPECT_EQ(pool->free_blocks(), 5);
  ASSERT_TRUE(pool->AllocateN(5, &out).ok());
  EXPECT_EQ(out.size(), 6u);
  EXPECT_EQ(pool->free_blocks(), 0);
}

TEST(KvPoolTest, RefKeepsBlockUntilLastUnref) {
  auto pool = MakePool(2);
  const int32_t b = *pool->Allocate();
  pool->Ref(b);
  EXPECT_EQ(pool->refcount(b), 2);
  pool->Unref(b);
  EXPECT_EQ(pool->free_blocks(), 1);
  pool->Unref(b);
  EXPECT_EQ(pool->free_blocks(), 2);
  EXPECT_DEATH(pool->Unref(b), "free kv block");
}

TEST(KvPoolTest, ReserveAllocatesWholeBlocksAllOrNothing) {
  auto pool = MakePool(4);  // 4 tokens per block
  BlockTable t;
  ASSERT_TRUE(pool->Reserve(t, 5).ok());
  EXPECT_EQ(t.blocks.size(), 2u);
  t.n_tokens = 5;
  ASSERT_TRUE(pool->Reserve(t, 3).ok());  // fills the second block
  EXPECT_EQ(t.blocks.size(), 2u);
  t.n_tokens = 8;
  EXPECT_EQ(pool->BlocksNeeded(t, 9), 3);
  const Status s = pool->Reserve(t, 9);  // needs 3 more, 2 free
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(t.blocks.size(), 2u);
  EXPECT_EQ(pool->free_blocks(), 2);
  pool->Release(t);
  EXPECT_TRUE(t.blocks.empty());
  EXPECT_EQ(t.n_tokens, 0);
  EXPECT_EQ(pool->free_blocks(), 4);
}

TEST(KvPoolTest, CopyOnWriteCopiesDataAndLeavesSharedBlockIntact) {
  auto pool = MakePool(8);
  BlockTable a;
  ASSERT_TRUE(pool->Reserve(a, 6).ok());  // blocks: [0..3] full, [4..5] partial
  for (int64_t p = 0; p < 6; ++p) WritePos(*pool, a, p, 10.0f + p);
  a.n_tokens = 6;

  BlockTable b = pool->Fork(a);
  EXPECT_EQ(b.blocks, a.blocks);
  EXPECT_EQ(pool->refcount(a.blocks[1]), 2);
  const int32_t shared_last = a.blocks[1];

  // b appends into the shared partial block: it must get its own copy.
  EXPECT_EQ(pool->BlocksNeeded(b, 1), 1);
  ASSERT_TRUE(pool->Reserve(b, 1).ok());
  EXPECT_EQ(b.blocks[0], a.blocks[0]);  // the full block stays shared
  EXPECT_NE(b.blocks[1], shared_last);
  EXPECT_EQ(a.blocks[1], shared_last);
  EXPECT_EQ(pool->refcount(shared_last), 1);
  EXPECT_EQ(pool->refcount(a.blocks[0]), 2);
  WritePos(*pool, b, 6, 99.0f);
  b.n_tokens = 7;

  // The copy holds a's data for positions 4, 5; a's block is untouched.
  for (int64_t p = 0; p < 6; ++p) {
    EXPECT_TRUE(PosHolds(*pool, b, p, 10.0f + p)) << p;
    EXPECT_TRUE(PosHolds(*pool, a, p, 10.0f + p)) << p;
  }
  EXPECT_TRUE(PosHolds(*pool, b, 6, 99.0f));
  EXPECT_FALSE(PosHolds(*pool, a, 6, 99.0f));

  // Now a is the only owner of its last block: no copy.
  EXPECT_EQ(pool->BlocksNeeded(a, 2), 0);
  pool->Release(a);
  pool->Release(b);
  EXPECT_EQ(pool->free_blocks(), 8);
}

TEST(KvPoolTest, ReserveCopiesASharedFullBlockThatWillBeRewritten) {
  // A table holding more blocks than n_tokens needs (a prefix hit covering the
  // whole prompt) rewrites its last shared block: that one is copied too.
  auto pool = MakePool(4);
  BlockTable a;
  ASSERT_TRUE(pool->Reserve(a, 8).ok());
  a.n_tokens = 8;
  BlockTable b = pool->Fork(a);
  b.n_tokens = 7;  // recompute position 7
  EXPECT_EQ(pool->BlocksNeeded(b, 1), 1);
  ASSERT_TRUE(pool->Reserve(b, 1).ok());
  EXPECT_EQ(b.blocks[0], a.blocks[0]);
  EXPECT_NE(b.blocks[1], a.blocks[1]);
  pool->Release(a);
  pool->Release(b);
  EXPECT_EQ(pool->free_blocks(), 4);
}

// Random Reserve / Fork / Release / write sequences against a model of who
// owns what. After every operation: free + used == total, each block's
// refcount equals its number of holders, and every sequence still reads back
// exactly what it wrote (copy-on-write never lets one sequence clobber
// another's data).
TEST(KvPoolTest, RandomizedOperationsKeepInvariants) {
  constexpr int32_t kBlocks = 24;
  auto pool = MakePool(kBlocks, 1, 2, 1, 4);
  std::mt19937 rng(1234);
  struct Seq {
    BlockTable table;
    std::vector<float> values;  // per written position
  };
  std::vector<Seq> seqs;
  float next_value = 1.0f;
  int exhausted = 0, copies = 0;

  auto check = [&] {
    std::map<int32_t, int32_t> holders;
    for (const Seq& s : seqs) {
      for (int32_t b : s.table.blocks) ++holders[b];
      for (size_t p = 0; p < s.values.size(); ++p) ASSERT_TRUE(PosHolds(*pool, s.table, p, s.values[p]));
    }
    int32_t used = 0;
    for (int32_t b = 0; b < kBlocks; ++b) {
      const int32_t want = holders.count(b) ? holders[b] : 0;
      ASSERT_EQ(pool->refcount(b), want) << "block " << b;
      used += want > 0;
    }
    ASSERT_EQ(pool->free_blocks() + used, pool->total_blocks());
    ASSERT_EQ(pool->used_blocks(), used);
  };

  for (int step = 0; step < 5000; ++step) {
    const int op = std::uniform_int_distribution<int>(0, 9)(rng);
    if (op == 0 || seqs.empty()) {
      seqs.push_back({});
    } else {
      const size_t i = std::uniform_int_distribution<size_t>(0, seqs.size() - 1)(rng);
      if (op <= 3) {
        pool->Release(seqs[i].table);
        seqs.erase(seqs.begin() + i);
      } else if (op <= 5) {
        Seq copy{pool->Fork(seqs[i].table), seqs[i].values};
        seqs.push_back(std::move(copy));
      } else {
        Seq& s = seqs[i];
        const int64_t n_new = std::uniform_int_distribution<int64_t>(1, 7)(rng);
        const std::vector<int32_t> before = s.table.blocks;
        const int32_t free_before = pool->free_blocks();
        const int32_t needed = pool->BlocksNeeded(s.table, n_new);
        const Status st = pool->Reserve(s.table, n_new);
        if (!st.ok()) {
          ASSERT_EQ(st.code(), StatusCode::kResourceExhausted);
          ASSERT_GT(needed, free_before);
          ASSERT_EQ(s.table.blocks, before);
          ASSERT_EQ(pool->free_blocks(), free_before);
          ++exhausted;
        } else {
          ASSERT_EQ(pool->free_blocks(), free_before - needed);
          for (size_t k = 0; k < before.size(); ++k) copies += s.table.blocks[k] != before[k];
          for (int64_t k = 0; k < n_new; ++k) {
            const int64_t pos = s.table.n_tokens + k;
            // Every block written to is now private to this sequence.
            ASSERT_EQ(pool->refcount(s.table.blocks[pos / 4]), 1);
            WritePos(*pool, s.table, pos, next_value);
            s.values.push_back(next_value);
            next_value += 1.0f;
          }
          s.table.n_tokens += n_new;
        }
      }
    }
    check();
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_GT(exhausted, 0) << "the test never ran the pool dry; make it smaller";
  EXPECT_GT(copies, 0) << "the test never copied a shared block";
  std::printf("reserve failures %d, copies %d\n", exhausted, copies);
  for (Seq& s : seqs) pool->Release(s.table);
  EXPECT_EQ(pool->free_blocks(), kBlocks);
}

// Resident pages of [p, p + bytes) (p page aligned), by mincore.
int64_t ResidentPages(void* p, size_t bytes) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in((bytes + page - 1) / page);
  EXPECT_EQ(::mincore(p, bytes, in.data()), 0);
  int64_t n = 0;
  for (unsigned char c : in) n += c & 1;
  return n;
}

// Commit() makes every page of the pool resident (no page fault later in a
// decode step); before it, none of a fresh pool's pages is.
TEST(KvPoolTest, CommitMakesEveryPageResident) {
  auto pool = KvPool::Create(3, 64, 64, 16, int64_t{6} << 20, DType::kF16);
  ASSERT_TRUE(pool.ok()) << pool.status().ToString();
  KvPool& p = **pool;
  const size_t k_bytes = static_cast<size_t>(p.total_blocks()) * 16 * 64 * 2;
  EXPECT_EQ(ResidentPages(p.k_data(0), k_bytes), 0);
  ASSERT_TRUE(p.Commit().ok());
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  for (int64_t l = 0; l < 3; ++l) {
    EXPECT_EQ(ResidentPages(p.k_data(l), k_bytes), static_cast<int64_t>((k_bytes + page - 1) / page)) << "layer " << l;
    EXPECT_EQ(ResidentPages(p.v_data(l), k_bytes), static_cast<int64_t>((k_bytes + page - 1) / page)) << "layer " << l;
  }
}

}  // namespace
}  // namespace atrium
