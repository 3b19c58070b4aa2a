#include "serving/engine/prefix_cache.h"

#include <numeric>

#include <gtest/gtest.h>

namespace atrium {
namespace {

constexpr int32_t kB = 4;  // tokens per block

class PrefixCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { pool_ = NewPool(16); }

  static std::unique_ptr<KvPool> NewPool(int32_t n_blocks) {
    return std::move(KvPool::Create(1, 2, 2, kB, n_blocks * KvPool::BytesPerBlock(1, 2, 2, kB))).value();
  }

  // A sequence that has computed all of `tokens` into fresh blocks.
  BlockTable Computed(const std::vector<int32_t>& tokens) {
    BlockTable t;
    EXPECT_TRUE(pool_->Reserve(t, static_cast<int64_t>(tokens.size())).ok());
    t.n_tokens = static_cast<int64_t>(tokens.size());
    return t;
  }

  static std::vector<int32_t> Range(int32_t first, int32_t n) {
    std::vector<int32_t> v(n);
    std::iota(v.begin(), v.end(), first);
    return v;
  }

  std::unique_ptr<KvPool> pool_;
};

TEST_F(PrefixCacheTest, HitsSharedPrefixOfFullBlocks) {
  PrefixCache cache(*pool_);
  const std::vector<int32_t> a = Range(100, 3 * kB + 2);  // 3 full blocks + 2
  BlockTable ta = Computed(a);
  EXPECT_EQ(cache.Insert("m", a, ta), 3);  // the partial block is not cached
  EXPECT_EQ(cache.cached_blocks(), 3);
  EXPECT_EQ(pool_->refcount(ta.blocks[0]), 2);
  EXPECT_EQ(pool_->refcount(ta.blocks[3]), 1);
  // Inserting again adds nothing.
  EXPECT_EQ(cache.Insert("m", a, ta), 0);

  // Same first 2 blocks, then different tokens.
  std::vector<int32_t> b = Range(100, 2 * kB);
  b.insert(b.end(), {7, 7, 7, 7, 7});
  PrefixHit hit = cache.Lookup("m", b);
  EXPECT_EQ(hit.n_tokens, 2 * kB);
  ASSERT_EQ(hit.blocks.size(), 2u);
  EXPECT_EQ(hit.blocks[0], ta.blocks[0]);
  EXPECT_EQ(hit.blocks[1], ta.blocks[1]);
  EXPECT_EQ(pool_->refcount(ta.blocks[0]), 3);  // a, the cache, the caller
  EXPECT_EQ(cache.stats().lookups, 1);
  EXPECT_EQ(cache.stats().lookup_tokens, static_cast<int64_t>(b.size()));
  EXPECT_EQ(cache.stats().hit_tokens, 2 * kB);

  // The whole of a (all 3 full blocks) hits too.
  PrefixHit all = cache.Lookup("m", a);
  EXPECT_EQ(all.n_tokens, 3 * kB);
  for (int32_t blk : all.blocks) pool_->Unref(blk);
  for (int32_t blk : hit.blocks) pool_->Unref(blk);
  pool_->Release(ta);
  cache.Clear();
  EXPECT_EQ(pool_->free_blocks(), 16);
}

TEST_F(PrefixCacheTest, PartialBlockPrefixesDoNotMatch) {
  PrefixCache cache(*pool_);
  const std::vector<int32_t> a = Range(0, 2 * kB);
  BlockTable ta = Computed(a);
  cache.Insert("m", a, ta);
  // Fewer than one full block of matching tokens: nothing.
  EXPECT_EQ(cache.Lookup("m", Range(0, kB - 1)).n_tokens, 0);
  // One full block and a part of the next: only the full block.
  PrefixHit hit = cache.Lookup("m", Range(0, 2 * kB - 1));
  EXPECT_EQ(hit.n_tokens, kB);
  for (int32_t blk : hit.blocks) pool_->Unref(blk);
  // A difference inside the first block: nothing, even if later blocks match.
  std::vector<int32_t> c = a;
  c[1] = -5;
  EXPECT_EQ(cache.Lookup("m", c).n_tokens, 0);
  // A sequence with only n_tokens computed caches only those full blocks.
  PrefixCache other(*pool_);
  BlockTable half = Computed(Range(50, 2 * kB));
  half.n_tokens = 2 * kB - 1;
  EXPECT_EQ(other.Insert("m", Range(50, 2 * kB), half), 1);
  pool_->Release(half);
  pool_->Release(ta);
}

// Paired: the same tokens hit under the namespace they were inserted in and
// miss under another.
TEST_F(PrefixCacheTest, NamespaceIsPartOfTheKey) {
  PrefixCache cache(*pool_);
  const std::vector<int32_t> a = Range(0, 2 * kB);
  BlockTable ta = Computed(a);
  cache.Insert("tenants/acme/models/m", a, ta);

  PrefixHit same = cache.Lookup("tenants/acme/models/m", a);
  EXPECT_EQ(same.n_tokens, 2 * kB);
  for (int32_t blk : same.blocks) pool_->Unref(blk);
  PrefixHit other = cache.Lookup("tenants/evil/models/m", a);
  EXPECT_EQ(other.n_tokens, 0);
  EXPECT_TRUE(other.blocks.empty());
  EXPECT_EQ(cache.Peek("tenants/evil/models/m", a).n_tokens, 0);
  EXPECT_EQ(cache.Peek("tenants/acme/models/m", a).n_tokens, 2 * kB);
  pool_->Release(ta);
}

TEST_F(PrefixCacheTest, EvictsOnlyUnreferencedBlocksInLruOrder) {
  PrefixCache cache(*pool_);
  // Three single-block prompts, inserted in order x, y, z; then x is used again.
  const auto x = Range(0, kB), y = Range(10, kB), z = Range(20, kB);
  BlockTable tx = Computed(x), ty = Computed(y), tz = Computed(z);
  cache.Insert("m", x, tx);
  cache.Insert("m", y, ty);
  cache.Insert("m", z, tz);
  const int32_t bx = tx.blocks[0], by = ty.blocks[0], bz = tz.blocks[0];
  pool_->Release(tx);
  pool_->Release(ty);
  // z is still referenced by its sequence.
  PrefixHit hx = cache.Lookup("m", x);  // x is now most recently used...
  for (int32_t blk : hx.blocks) pool_->Unref(blk);  // ...and unreferenced again
  EXPECT_EQ(pool_->free_blocks(), 16 - 3);
  EXPECT_EQ(cache.EvictableBlocks(), 2);  // x, y; not z
  EXPECT_EQ(cache.Peek("m", x).evictable_blocks, 1);
  EXPECT_EQ(cache.Peek("m", z).evictable_blocks, 0);
  EXPECT_EQ(cache.ReleasableBlocks(tz), 1);

  // One more free block: y goes (least recently used), x stays.
  EXPECT_EQ(cache.EvictUntilFree(16 - 2), 1);
  EXPECT_EQ(pool_->refcount(by), 0);
  EXPECT_EQ(pool_->refcount(bx), 1);
  EXPECT_EQ(cache.Peek("m", y).n_tokens, 0);
  EXPECT_EQ(cache.Peek("m", x).n_tokens, kB);
  // Asking for everything frees x but never z.
  EXPECT_EQ(cache.EvictUntilFree(16), 1);
  EXPECT_EQ(pool_->refcount(bz), 2);
  EXPECT_EQ(cache.Peek("m", z).n_tokens, kB);
  EXPECT_EQ(cache.stats().evicted_blocks, 2);
  pool_->Release(tz);
  EXPECT_EQ(cache.EvictUntilFree(16), 1);
  EXPECT_EQ(pool_->free_blocks(), 16);
  EXPECT_EQ(cache.cached_blocks(), 0);
}

TEST_F(PrefixCacheTest, EvictionCutsChainsFromTheTail) {
  PrefixCache cache(*pool_);
  const auto a = Range(0, 3 * kB);
  BlockTable ta = Computed(a);
  cache.Insert("m", a, ta);
  pool_->Release(ta);
  // One block evicted: the last one, so the first two still hit.
  EXPECT_EQ(cache.EvictUntilFree(16 - 2), 1);
  EXPECT_EQ(cache.Peek("m", a).n_tokens, 2 * kB);
  cache.Clear();
  EXPECT_EQ(pool_->free_blocks(), 16);
}

TEST_F(PrefixCacheTest, HashCollisionNeverReturnsAWrongBlock) {
  // Every block hashes alike: only token and parent comparison tell them apart.
  PrefixCache cache(*pool_, [](std::string_view, uint64_t, std::span<const int32_t>) { return uint64_t{42}; });
  const auto a = Range(0, 2 * kB);
  std::vector<int32_t> b = Range(100, kB);  // other first block
  const std::vector<int32_t> a_second(a.begin() + kB, a.end());
  b.insert(b.end(), a_second.begin(), a_second.end());  // same second block tokens as a
  BlockTable ta = Computed(a), tb = Computed(b);
  EXPECT_EQ(cache.Insert("m", a, ta), 2);
  EXPECT_EQ(cache.Insert("m", b, tb), 2);

  PrefixHit ha = cache.Lookup("m", a);
  ASSERT_EQ(ha.blocks.size(), 2u);
  EXPECT_EQ(ha.blocks, ta.blocks);
  PrefixHit hb = cache.Lookup("m", b);
  ASSERT_EQ(hb.blocks.size(), 2u);
  EXPECT_EQ(hb.blocks, tb.blocks);  // the second block follows b's parent, not a's
  // Colliding hash, different namespace or tokens: no hit.
  EXPECT_EQ(cache.Peek("n", a).n_tokens, 0);
  EXPECT_EQ(cache.Peek("m", Range(200, 2 * kB)).n_tokens, 0);
  // A second block whose tokens match a's under a first block nobody cached.
  std::vector<int32_t> c = Range(300, kB);
  c.insert(c.end(), a_second.begin(), a_second.end());
  EXPECT_EQ(cache.Peek("m", c).n_tokens, 0);

  for (int32_t blk : ha.blocks) pool_->Unref(blk);
  for (int32_t blk : hb.blocks) pool_->Unref(blk);
  pool_->Release(ta);
  pool_->Release(tb);
  cache.Clear();
  EXPECT_EQ(pool_->free_blocks(), 16);
}

TEST_F(PrefixCacheTest, OrphanedBlockIsUnreachableAndRehomedOnInsert) {
  // All hashes collide, so only the parent identity keeps chains apart.
  PrefixCache cache(*pool_, [](std::string_view, uint64_t, std::span<const int32_t>) { return uint64_t{7}; });
  const auto p = Range(0, 2 * kB);
  const std::vector<int32_t> p_first(p.begin(), p.begin() + kB);
  // x caches the first block; y computed both blocks itself, so its second
  // block is cached as the child of x's first block.
  BlockTable tx = Computed(p_first), ty = Computed(p);
  EXPECT_EQ(cache.Insert("m", p_first, tx), 1);
  EXPECT_EQ(cache.Insert("m", p, ty), 1);
  EXPECT_EQ(pool_->refcount(ty.blocks[0]), 1);
  EXPECT_EQ(pool_->refcount(ty.blocks[1]), 2);
  // x ends; its block is evicted, leaving y's cached block without a parent:
  // unreachable, so no lookup can pair it with a different first block.
  pool_->Release(tx);
  EXPECT_EQ(cache.EvictableBlocks(), 1);
  EXPECT_EQ(cache.EvictUntilFree(pool_->free_blocks() + 1), 1);
  EXPECT_EQ(cache.Peek("m", p).n_tokens, 0);
  // A new first block with the same tokens (and hash) does not make the
  // orphan reachable again.
  BlockTable tz = Computed(p_first);
  EXPECT_EQ(cache.Insert("m", p_first, tz), 1);
  EXPECT_EQ(cache.Peek("m", p).n_tokens, kB);
  pool_->Release(tz);
  EXPECT_EQ(cache.EvictUntilFree(pool_->free_blocks() + 1), 1);
  // y's insert caches its own chain; its second block moves there.
  EXPECT_EQ(cache.Insert("m", p, ty), 2);
  EXPECT_EQ(cache.cached_blocks(), 2);
  EXPECT_EQ(pool_->refcount(ty.blocks[1]), 2);
  PrefixHit h = cache.Lookup("m", p);
  EXPECT_EQ(h.blocks, ty.blocks);
  for (int32_t blk : h.blocks) pool_->Unref(blk);
  pool_->Release(ty);
  cache.Clear();
  EXPECT_EQ(pool_->free_blocks(), 16);
}

TEST_F(PrefixCacheTest, ClearAndDestructorDropOnlyTheCacheReferences) {
  const auto a = Range(0, 2 * kB);
  BlockTable ta = Computed(a);
  {
    PrefixCache cache(*pool_);
    cache.Insert("m", a, ta);
    EXPECT_EQ(pool_->refcount(ta.blocks[0]), 2);
  }
  EXPECT_EQ(pool_->refcount(ta.blocks[0]), 1);
  pool_->Release(ta);
  EXPECT_EQ(pool_->free_blocks(), 16);
}

}  // namespace
}  // namespace atrium
