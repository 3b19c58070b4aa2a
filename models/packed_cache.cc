#include "models/packed_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>

namespace atrium {
namespace {

constexpr char kMagic[16] = "ATRIUM-PACKED-1";
constexpr int64_t kHeaderBytes = 4096;
constexpr size_t kMaxKey = 2048;

// The header: magic, payload bytes, key length, key.
struct Header {
  char magic[16];
  int64_t payload_bytes;
  uint32_t key_bytes;
};

Status Errno(const std::string& what, const std::string& path) {
  return Unavailable(StrFormat("packed-weight cache: %s %s: %s", what.c_str(), path.c_str(), std::strerror(errno)));
}

// A read-only shared mapping of the whole file, payload at kHeaderBytes, at
// a 2 MiB-aligned address with MADV_HUGEPAGE: where the filesystem keeps
// large folios (ext4 and xfs on recent kernels), the first faults read the
// file in 2 MiB folios and every worker maps them with one TLB entry each,
// as the private copy's anonymous huge pages are. Elsewhere, 4 KiB pages.
StatusOr<std::shared_ptr<const uint8_t>> MapReadOnly(int fd, const std::string& path, int64_t file_bytes) {
  const size_t n = static_cast<size_t>(file_bytes);
  constexpr size_t kHuge = size_t{2} << 20;
  // Reserve n + 2 MiB of address space, map the file at its first 2 MiB
  // boundary, give back the rest.
  void* span = ::mmap(nullptr, n + kHuge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (span == MAP_FAILED) return Errno("cannot reserve address space for", path);
  const uintptr_t base = reinterpret_cast<uintptr_t>(span);
  const uintptr_t aligned = (base + kHuge - 1) / kHuge * kHuge;
  void* p = ::mmap(reinterpret_cast<void*>(aligned), n, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
  if (p == MAP_FAILED) {
    const Status s = Errno("cannot map", path);
    ::munmap(span, n + kHuge);
    return s;
  }
  if (aligned > base) ::munmap(span, aligned - base);
  const uintptr_t end = base + n + kHuge, mapped_end = (aligned + n + 4095) / 4096 * 4096;
  if (end > mapped_end) ::munmap(reinterpret_cast<void*>(mapped_end), end - mapped_end);
  ::madvise(p, n, MADV_HUGEPAGE);  // advice only
  return std::shared_ptr<const uint8_t>(static_cast<const uint8_t*>(p) + kHeaderBytes,
                                        [p, n](const uint8_t*) { ::munmap(p, n); });
}

// dir/name, if it holds exactly this key and payload size.
StatusOr<std::shared_ptr<const uint8_t>> TryMap(const std::string& path, const std::string& key,
                                                int64_t payload_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NotFound(path);
  struct stat st{};
  Header h{};
  char stored_key[kMaxKey];
  const bool match = ::fstat(fd, &st) == 0 && st.st_size == kHeaderBytes + payload_bytes &&
                     ::pread(fd, &h, sizeof(h), 0) == static_cast<ssize_t>(sizeof(h)) &&
                     std::memcmp(h.magic, kMagic, sizeof(kMagic)) == 0 && h.payload_bytes == payload_bytes &&
                     h.key_bytes == key.size() &&
                     ::pread(fd, stored_key, key.size(), sizeof(h)) == static_cast<ssize_t>(key.size()) &&
                     std::memcmp(stored_key, key.data(), key.size()) == 0;
  StatusOr<std::shared_ptr<const uint8_t>> mapped =
      match ? MapReadOnly(fd, path, kHeaderBytes + payload_bytes) : StatusOr<std::shared_ptr<const uint8_t>>(NotFound(path));
  ::close(fd);
  return mapped;
}

Status Build(const std::string& dir, const std::string& path, const std::string& key, int64_t payload_bytes,
             const std::function<void(uint8_t*)>& fill) {
  std::string tmp = path + ".tmp.XXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) return Errno("cannot create a file in", dir);
  const int64_t file_bytes = kHeaderBytes + payload_bytes;
  auto fail = [&](const std::string& what) {
    Status s = Errno(what, tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  };
  // posix_fallocate reserves the blocks, so a full disk fails here rather
  // than as SIGBUS while the payload is written through the mapping.
  if (const int err = ::posix_fallocate(fd, 0, file_bytes); err != 0) {
    errno = err;
    return fail("cannot allocate " + std::to_string(file_bytes) + " bytes for");
  }
  void* p = ::mmap(nullptr, static_cast<size_t>(file_bytes), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return fail("cannot map");
  auto* base = static_cast<uint8_t*>(p);
  fill(base + kHeaderBytes);
  // The header last: a file without it is never taken for a cache.
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.payload_bytes = payload_bytes;
  h.key_bytes = static_cast<uint32_t>(key.size());
  std::memcpy(base, &h, sizeof(h));
  std::memcpy(base + sizeof(h), key.data(), key.size());
  const bool synced = ::msync(p, static_cast<size_t>(file_bytes), MS_SYNC) == 0;
  ::munmap(p, static_cast<size_t>(file_bytes));
  if (!synced) return fail("cannot write");
  // Drops the file's cached pages, written a 4 KiB page at a time through
  // the mapping: read back through MapReadOnly's mapping they come in
  // 2 MiB folios where the filesystem allows.
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  if (::fchmod(fd, 0644) != 0) return fail("cannot set the mode of");
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = Errno("cannot rename into place", path);
    ::unlink(tmp.c_str());
    return s;
  }
  return OkStatus();
}

}  // namespace

std::string PackedCacheKey(const std::string& model_path, const std::string& format) {
  struct stat st{};
  if (::stat(model_path.c_str(), &st) != 0) return "";
  std::error_code ec;
  const std::filesystem::path canonical = std::filesystem::weakly_canonical(model_path, ec);
  return StrFormat("file=%s dev=%llu ino=%llu size=%lld mtime=%lld.%09ld format=%s",
                   (ec ? model_path : canonical.string()).c_str(), static_cast<unsigned long long>(st.st_dev),
                   static_cast<unsigned long long>(st.st_ino), static_cast<long long>(st.st_size),
                   static_cast<long long>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec, format.c_str());
}

StatusOr<PackedCacheMap> MapOrBuildPackedCache(const std::string& dir, const std::string& name,
                                               const std::string& key, int64_t payload_bytes,
                                               const std::function<void(uint8_t* payload)>& fill) {
  if (key.empty() || key.size() > kMaxKey) return InvalidArgument("packed-weight cache: bad key for " + name);
  if (payload_bytes <= 0) return InvalidArgument("packed-weight cache: nothing to pack for " + name);
  std::error_code ec;
  const bool created = std::filesystem::create_directories(dir, ec);
  if (ec) return Unavailable(StrFormat("packed-weight cache: cannot create %s: %s", dir.c_str(), ec.message().c_str()));
  if (created) ::chmod(dir.c_str(), 0700);
  const std::string path = (std::filesystem::path(dir) / name).string();
  PackedCacheMap out;
  out.path = path;
  if (auto mapped = TryMap(path, key, payload_bytes); mapped.ok()) {
    out.payload = *std::move(mapped);
    return out;
  }
  RETURN_IF_ERROR(Build(dir, path, key, payload_bytes, fill));
  ASSIGN_OR_RETURN(out.payload, TryMap(path, key, payload_bytes));
  out.built = true;
  return out;
}

}  // namespace atrium
