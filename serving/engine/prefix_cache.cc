#include "serving/engine/prefix_cache.h"

#include <algorithm>
#include <utility>

namespace atrium {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64 finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace

uint64_t DefaultBlockHash(std::string_view ns, uint64_t parent_hash, std::span<const int32_t> tokens) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the namespace
  for (unsigned char c : ns) h = (h ^ c) * 0x100000001b3ull;
  h = Mix(h ^ Mix(parent_hash + 0x9e3779b97f4a7c15ull));
  for (int32_t t : tokens) h = Mix(h ^ static_cast<uint32_t>(t)) + 0x9e3779b97f4a7c15ull;
  return h;
}

PrefixCache::PrefixCache(KvPool& pool, BlockHashFn hash)
    : pool_(pool), hash_(std::move(hash)), block_tokens_(pool.block_tokens()),
      serial_of_block_(pool.total_blocks(), 0) {}

PrefixCache::~PrefixCache() { Clear(); }

uint64_t PrefixCache::Find(std::string_view ns, uint64_t parent, uint64_t hash,
                           std::span<const int32_t> tokens) const {
  auto [begin, end] = by_hash_.equal_range(hash);
  for (auto it = begin; it != end; ++it) {
    const Entry& e = entries_.at(it->second);
    if (e.parent != parent) continue;
    if (parent == 0 && e.ns != ns) continue;
    if (!std::equal(e.tokens.begin(), e.tokens.end(), tokens.begin(), tokens.end())) continue;
    return it->second;
  }
  return 0;
}

std::vector<uint64_t> PrefixCache::Match(std::string_view ns, std::span<const int32_t> tokens) const {
  std::vector<uint64_t> chain;
  const size_t n_full = tokens.size() / block_tokens_;
  uint64_t parent = 0, parent_hash = 0;
  for (size_t i = 0; i < n_full; ++i) {
    const auto block_tokens = tokens.subspan(i * block_tokens_, block_tokens_);
    const uint64_t h = hash_(ns, parent_hash, block_tokens);
    const uint64_t serial = Find(ns, parent, h, block_tokens);
    if (serial == 0) break;
    chain.push_back(serial);
    parent = serial;
    parent_hash = h;
  }
  return chain;
}

void PrefixCache::Touch(const std::vector<uint64_t>& chain) {
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    Entry& e = entries_.at(*it);
    lru_.splice(lru_.end(), lru_, e.lru);
  }
}

PrefixHit PrefixCache::Lookup(std::string_view ns, std::span<const int32_t> tokens) {
  const std::vector<uint64_t> chain = Match(ns, tokens);
  Touch(chain);
  PrefixHit hit;
  for (uint64_t serial : chain) {
    const int32_t b = entries_.at(serial).block;
    pool_.Ref(b);
    hit.blocks.push_back(b);
  }
  hit.n_tokens = static_cast<int64_t>(chain.size()) * block_tokens_;
  ++stats_.lookups;
  stats_.lookup_tokens += static_cast<int64_t>(tokens.size());
  stats_.hit_tokens += hit.n_tokens;
  return hit;
}

PrefixPeek PrefixCache::Peek(std::string_view ns, std::span<const int32_t> tokens) const {
  const std::vector<uint64_t> chain = Match(ns, tokens);
  PrefixPeek peek;
  peek.n_tokens = static_cast<int64_t>(chain.size()) * block_tokens_;
  for (uint64_t serial : chain) {
    if (pool_.refcount(entries_.at(serial).block) == 1) ++peek.evictable_blocks;
  }
  return peek;
}

int32_t PrefixCache::Insert(std::string_view ns, std::span<const int32_t> tokens, const BlockTable& table) {
  const int64_t n_valid = std::min<int64_t>(static_cast<int64_t>(tokens.size()), table.n_tokens);
  const int64_t n_full = std::min<int64_t>(n_valid / block_tokens_, static_cast<int64_t>(table.blocks.size()));
  std::vector<uint64_t> chain;
  uint64_t parent = 0, parent_hash = 0;
  int32_t added = 0;
  for (int64_t i = 0; i < n_full; ++i) {
    const auto block_tokens = tokens.subspan(i * block_tokens_, block_tokens_);
    const uint64_t h = hash_(ns, parent_hash, block_tokens);
    uint64_t serial = Find(ns, parent, h, block_tokens);
    if (serial == 0) {
      const int32_t b = table.blocks[i];
      if (const uint64_t old = serial_of_block_[b]; old != 0) {
        // The block is cached under another key: an entry whose parent was
        // evicted (unreachable), or the caller inserted it under another
        // namespace. Its contents belong to this chain now; a block in the
        // chain being built would be a table that repeats a block.
        if (std::find(chain.begin(), chain.end(), old) != chain.end()) break;
        Remove(old);
      }
      serial = next_serial_++;
      Entry e;
      e.hash = h;
      e.parent = parent;
      e.block = b;
      if (parent == 0) e.ns = std::string(ns);
      e.tokens.assign(block_tokens.begin(), block_tokens.end());
      e.lru = lru_.insert(lru_.end(), serial);
      entries_.emplace(serial, std::move(e));
      by_hash_.emplace(h, serial);
      serial_of_block_[b] = serial;
      pool_.Ref(b);
      ++added;
    }
    chain.push_back(serial);
    parent = serial;
    parent_hash = h;
  }
  Touch(chain);
  stats_.inserted_blocks += added;
  return added;
}

void PrefixCache::Remove(uint64_t serial) {
  auto it = entries_.find(serial);
  ATRIUM_CHECK(it != entries_.end(), "prefix cache: no entry %llu", static_cast<unsigned long long>(serial));
  Entry& e = it->second;
  auto [begin, end] = by_hash_.equal_range(e.hash);
  for (auto h = begin; h != end; ++h) {
    if (h->second == serial) {
      by_hash_.erase(h);
      break;
    }
  }
  lru_.erase(e.lru);
  serial_of_block_[e.block] = 0;
  const int32_t block = e.block;
  entries_.erase(it);
  pool_.Unref(block);
}

int32_t PrefixCache::EvictUntilFree(int32_t n_free) {
  int32_t evicted = 0;
  for (auto it = lru_.begin(); it != lru_.end() && pool_.free_blocks() < n_free;) {
    const uint64_t serial = *it++;  // advance first: Remove erases this node
    if (pool_.refcount(entries_.at(serial).block) == 1) {
      Remove(serial);
      ++evicted;
    }
  }
  stats_.evicted_blocks += evicted;
  return evicted;
}

int32_t PrefixCache::EvictableBlocks() const {
  int32_t n = 0;
  for (const auto& [serial, e] : entries_) {
    if (pool_.refcount(e.block) == 1) ++n;
  }
  return n;
}

int32_t PrefixCache::ReleasableBlocks(const BlockTable& table) const {
  int32_t n = 0;
  for (int32_t b : table.blocks) {
    const int32_t others = pool_.refcount(b) - 1 - (serial_of_block_[b] != 0 ? 1 : 0);
    if (others == 0) ++n;
  }
  return n;
}

void PrefixCache::Clear() {
  while (!lru_.empty()) Remove(lru_.front());
}

}  // namespace atrium
