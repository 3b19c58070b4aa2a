// Packed weights in a file that every process maps read-only.
//
// Why. Packing a model's matrices at load (Model::PackMatrices) makes them
// faster to read but private to the process: N per-tenant workers would
// hold N copies. Written once to a cache file and mapped MAP_SHARED, the
// packed weights sit once in the page cache, shared like the GGUF file
// itself.
//
// The file: a 4 KiB header (magic, payload size, the key that says what was
// packed from what) and the payload. A file whose header or size does not
// match the key (another model file, another mtime, another packed format,
// a truncated write) is rebuilt. Builds go to a temporary file renamed into
// place, so a reader never maps a half-written one; two processes building
// at once both end with a complete file.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "runtime/status.h"

namespace atrium {

struct PackedCacheMap {
  std::shared_ptr<const uint8_t> payload;  // mapped read-only; keeps the mapping alive
  std::string path;
  bool built = false;  // this call wrote the file
};

// Maps dir/name if its header holds `key` and `payload_bytes`, else builds
// it: `fill` writes the payload (payload_bytes, 64-byte aligned) into a
// writable mapping of a new file, which then replaces dir/name. Creates dir
// (0700) if missing.
StatusOr<PackedCacheMap> MapOrBuildPackedCache(const std::string& dir, const std::string& name,
                                               const std::string& key, int64_t payload_bytes,
                                               const std::function<void(uint8_t* payload)>& fill);

// The key of a model file's packed form: its identity (device, inode, size,
// modification time) and the packed format, so an edited or replaced file
// or a changed packer never matches an old cache. Empty when stat fails.
std::string PackedCacheKey(const std::string& model_path, const std::string& format);

}  // namespace atrium
