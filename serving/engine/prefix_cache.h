// Reuse of computed keys and values across requests that start with the same
// tokens (a shared system prompt, the earlier turns of a chat). The cache
// keeps full KV blocks alive after their sequence ends and hands them to the
// next sequence whose prompt starts with the same tokens under the same
// namespace.
//
// A cached block is keyed by the chain of full blocks before it: its hash
// covers (namespace, parent block hash, its block_tokens token ids). The
// hash only picks candidates; a match also needs equal token ids and the very
// same parent entry, so a hash collision can never return a wrong block.
//
// The namespace must name everything besides the tokens that decides the
// keys and values (model, adapter) and the isolation boundary (tenant): the
// same tokens under another namespace never hit.
//
// The cache holds one pool reference per cached block. A block that only the
// cache references is evictable, least recently used first. Not thread-safe;
// the pool must outlive the cache.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/kv_pool.h"

namespace atrium {

// Hash of one block given its parent's hash (0 for the first block).
using BlockHashFn = std::function<uint64_t(std::string_view ns, uint64_t parent_hash, std::span<const int32_t> tokens)>;
uint64_t DefaultBlockHash(std::string_view ns, uint64_t parent_hash, std::span<const int32_t> tokens);

struct PrefixHit {
  std::vector<int32_t> blocks;  // each already Ref'd for the caller
  int64_t n_tokens = 0;         // tokens covered: blocks.size() * block_tokens
};

// What Lookup would return, without taking references (for the scheduler).
struct PrefixPeek {
  int64_t n_tokens = 0;
  // Of the matched blocks, those only the cache references: the scheduler
  // counts them as free now, and taking them for a request stops that.
  int32_t evictable_blocks = 0;
};

struct PrefixCacheStats {
  int64_t lookups = 0;        // Lookup calls
  int64_t lookup_tokens = 0;  // tokens asked for in them
  int64_t hit_tokens = 0;     // tokens served from the cache
  int64_t inserted_blocks = 0;
  int64_t evicted_blocks = 0;
};

class PrefixCache {
 public:
  explicit PrefixCache(KvPool& pool, BlockHashFn hash = DefaultBlockHash);
  ~PrefixCache();  // drops the cache's references
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  // The longest run of cached full blocks that prefixes `tokens`. Touches
  // them (LRU). Pass the prompt without its last token, so at least one token
  // is computed to give logits and no shared block is ever written.
  PrefixHit Lookup(std::string_view ns, std::span<const int32_t> tokens);
  PrefixPeek Peek(std::string_view ns, std::span<const int32_t> tokens) const;

  // Records the full blocks of a sequence: tokens are its token ids, of
  // which the first table.n_tokens have keys and values in table.blocks.
  // Blocks already cached under the same chain are kept (and touched); the
  // partial last block is never cached. Returns the number of blocks added.
  int32_t Insert(std::string_view ns, std::span<const int32_t> tokens, const BlockTable& table);

  // Evicts least recently used blocks that only the cache references until
  // the pool has n_free free blocks or nothing more is evictable. Returns
  // the number evicted.
  int32_t EvictUntilFree(int32_t n_free);
  // Blocks EvictUntilFree could free now (O(cached blocks)).
  int32_t EvictableBlocks() const;
  // Of a sequence's blocks, those its release would make free or evictable:
  // referenced by nobody else but possibly the cache. Preempting it frees
  // this many for the scheduler.
  int32_t ReleasableBlocks(const BlockTable& table) const;

  void Clear();
  int64_t cached_blocks() const { return static_cast<int64_t>(entries_.size()); }
  const PrefixCacheStats& stats() const { return stats_; }

 private:
  struct Entry {
    uint64_t hash = 0;
    // Serial of the parent entry; 0 for a first block. Serials are never
    // reused, so children of an evicted entry can never match again.
    uint64_t parent = 0;
    int32_t block = -1;
    std::string ns;  // only for first blocks; the parent chain fixes it for the rest
    std::vector<int32_t> tokens;
    std::list<uint64_t>::iterator lru;
  };

  // The serial of the entry for block `tokens` under `parent`, or 0.
  uint64_t Find(std::string_view ns, uint64_t parent, uint64_t hash, std::span<const int32_t> tokens) const;
  // Matched entry serials, first block first.
  std::vector<uint64_t> Match(std::string_view ns, std::span<const int32_t> tokens) const;
  // Marks a chain used, deepest block first, so that a chain's tail ages
  // before its head and eviction cuts chains from the end.
  void Touch(const std::vector<uint64_t>& chain);
  void Remove(uint64_t serial);

  KvPool& pool_;
  BlockHashFn hash_;
  int32_t block_tokens_;
  uint64_t next_serial_ = 1;
  std::unordered_map<uint64_t, Entry> entries_;           // by serial
  std::unordered_multimap<uint64_t, uint64_t> by_hash_;   // hash -> serial
  std::vector<uint64_t> serial_of_block_;                 // per pool block; 0 = not cached
  std::list<uint64_t> lru_;                               // serials, least recently used first
  PrefixCacheStats stats_;
};

}  // namespace atrium
