// models/packed_cache: packed weights in a file every process maps
// read-only. The file is built once, mapped after that, rebuilt whenever it
// does not match what it claims to hold, and a model mapped from it computes
// exactly what a privately packed one does.
#include "models/packed_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/kernels.h"
#include "models/model.h"
#include "tests/models/tiny_model.h"
#include "tests/test_util.h"

namespace atrium {
namespace {

namespace fs = std::filesystem;

class PackedCacheTest : public ::testing::Test {
 protected:
  ::atrium::testing::TempDir dir_;
  const std::string root_ = dir_.path();
};

// KiB of the mapping that holds `addr` mapped with PMDs (2 MiB entries), from
// /proc/self/smaps; -1 when no mapping holds it.
int64_t FilePmdMappedKib(const void* addr) {
  std::ifstream smaps("/proc/self/smaps");
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long begin = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &begin, &end) == 2 && line.find(':') > line.find(' ')) {
      inside = a >= begin && a < end;
      continue;
    }
    long kib = 0;
    if (inside && std::sscanf(line.c_str(), "FilePmdMapped: %ld kB", &kib) == 1) return kib;
  }
  return -1;
}

// Whether this kernel and the filesystem under `dir` map a file read back
// from disk with PMDs at all (large folios in the page cache): a 4 MiB file
// written, dropped from the cache and read back through a 2 MiB-aligned
// MADV_HUGEPAGE mapping.
bool FilesCanBePmdMapped(const std::string& dir) {
  const std::string path = dir + "/probe";
  constexpr size_t kBytes = size_t{4} << 20, kHuge = size_t{2} << 20;
  const std::vector<uint8_t> data(kBytes, 7);
  const int fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
  if (fd < 0) return false;
  bool ok = ::write(fd, data.data(), kBytes) == static_cast<ssize_t>(kBytes) && ::fsync(fd) == 0 &&
            ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0;
  void* span = ok ? ::mmap(nullptr, kBytes + kHuge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : MAP_FAILED;
  if (span != MAP_FAILED) {
    void* at = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(span) + kHuge - 1) / kHuge * kHuge);
    void* p = ::mmap(at, kBytes, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
    ok = p != MAP_FAILED && ::madvise(p, kBytes, MADV_HUGEPAGE) == 0;
    volatile uint8_t sum = 0;
    for (size_t i = 0; ok && i < kBytes; i += 4096) sum = sum + static_cast<const uint8_t*>(p)[i];
    ok = ok && FilePmdMappedKib(p) > 0;
    ::munmap(span, kBytes + kHuge);
  } else {
    ok = false;
  }
  ::close(fd);
  ::unlink(path.c_str());
  return ok;
}

std::vector<uint8_t> Payload(int64_t n, uint8_t seed) {
  std::vector<uint8_t> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

TEST_F(PackedCacheTest, BuildsOnceThenMaps) {
  const std::string dir = root_ + "/packed";
  const std::vector<uint8_t> want = Payload(10000, 3);
  int fills = 0;
  auto fill = [&](uint8_t* p) {
    ++fills;
    std::memcpy(p, want.data(), want.size());
  };
  auto first = MapOrBuildPackedCache(dir, "m.packed", "key-a", 10000, fill);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->built);
  EXPECT_EQ(std::memcmp(first->payload.get(), want.data(), want.size()), 0);
  EXPECT_EQ(fs::status(dir).permissions() & fs::perms::all, fs::perms::owner_all);  // created 0700

  auto second = MapOrBuildPackedCache(dir, "m.packed", "key-a", 10000, fill);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_FALSE(second->built);
  EXPECT_EQ(fills, 1);
  EXPECT_EQ(std::memcmp(second->payload.get(), want.data(), want.size()), 0);
  // No temporary file is left behind.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST_F(PackedCacheTest, MappedWithHugePagesWhereTheKernelCan) {
  // A decode step walks every packed weight: on 4 KiB pages each 64 lines
  // cost a TLB miss (SmolLM2 decode +8-20% on huge pages). The cache's
  // mapping gets them wherever a plain file read back can.
  if (!FilesCanBePmdMapped(root_)) GTEST_SKIP() << "this kernel or filesystem maps files with 4 KiB pages only";
  const int64_t n = int64_t{8} << 20;
  const std::vector<uint8_t> want = Payload(n, 5);
  auto fill = [&](uint8_t* p) { std::memcpy(p, want.data(), want.size()); };
  for (bool built : {true, false}) {  // as its builder maps it, then as another process would
    auto mapped = MapOrBuildPackedCache(root_ + "/packed", "big.packed", "key", n, fill);
    ASSERT_TRUE(mapped.ok()) << mapped.status().ToString();
    EXPECT_EQ(mapped->built, built);
    EXPECT_EQ(std::memcmp(mapped->payload.get(), want.data(), want.size()), 0);
    EXPECT_GE(FilePmdMappedKib(mapped->payload.get()), 4096) << (built ? "as built" : "mapped again");
  }
}

TEST_F(PackedCacheTest, RebuildsWhatDoesNotMatch) {
  const std::string dir = root_;
  const std::vector<uint8_t> a = Payload(5000, 1), b = Payload(5000, 2);
  int fills = 0;
  auto filler = [&](const std::vector<uint8_t>& v) {
    return [&fills, &v](uint8_t* p) {
      ++fills;
      std::memcpy(p, v.data(), v.size());
    };
  };
  ASSERT_TRUE(MapOrBuildPackedCache(dir, "m.packed", "key-a", 5000, filler(a)).ok());
  // Another key (the model file changed): rebuilt with the new contents.
  auto other = MapOrBuildPackedCache(dir, "m.packed", "key-b", 5000, filler(b));
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->built);
  EXPECT_EQ(std::memcmp(other->payload.get(), b.data(), b.size()), 0);
  // A truncated file (a crash mid-copy, a full disk elsewhere): rebuilt.
  fs::resize_file(dir + "/m.packed", 3000);
  auto truncated = MapOrBuildPackedCache(dir, "m.packed", "key-b", 5000, filler(b));
  ASSERT_TRUE(truncated.ok());
  EXPECT_TRUE(truncated->built);
  // A damaged header: rebuilt.
  {
    std::fstream f(dir + "/m.packed", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2);
    f.put('X');
  }
  auto damaged = MapOrBuildPackedCache(dir, "m.packed", "key-b", 5000, filler(b));
  ASSERT_TRUE(damaged.ok());
  EXPECT_TRUE(damaged->built);
  EXPECT_EQ(fills, 4);
}

TEST_F(PackedCacheTest, ClearErrorWhenTheDirectoryCannotBeMade) {
  const std::string file = root_ + "/a-file";
  std::ofstream(file) << "not a directory";
  auto r = MapOrBuildPackedCache(file + "/packed", "m.packed", "key", 100, [](uint8_t*) {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(file), std::string::npos) << r.status().ToString();
}

TEST_F(PackedCacheTest, KeyFollowsTheModelFile) {
  const std::string path = root_ + "/model.gguf";
  std::ofstream(path) << "one";
  const std::string k1 = PackedCacheKey(path, "fmt");
  EXPECT_NE(k1.find("format=fmt"), std::string::npos);
  EXPECT_NE(PackedCacheKey(path, "fmt2"), k1);
  std::ofstream(path) << "longer contents";  // another size and mtime
  EXPECT_NE(PackedCacheKey(path, "fmt"), k1);
  EXPECT_EQ(PackedCacheKey(root_ + "/missing.gguf", "fmt"), "");
}

// A tiny Q4_1 model loaded three ways: packed privately, packed into a new
// cache file, and mapped from that file by a second load. All three give
// the same logits bit for bit, and the second load writes nothing.
TEST_F(PackedCacheTest, ModelMappedFromTheCacheEqualsPrivatePacking) {
  if (kernels::Cpu().packed_bytes(DType::kQ4_1, 16, 64) == 0) GTEST_SKIP() << "no packed layout on this CPU";
  testing::TinySpec spec;
  spec.matrix_type = DType::kQ4_1;
  const std::string path = root_ + "/tiny.gguf";
  ASSERT_TRUE(testing::TinyModelWriter(spec).WriteFile(path).ok());
  const std::string cache = root_ + "/packed";

  auto logits_of = [&](const Model& m) {
    ops::Context ctx(2);
    const std::vector<int32_t> tokens = {1, 5, 9, 17, 33, 2, 60, 7};
    auto kv = m.NewKvCache(static_cast<int64_t>(tokens.size()));
    Tensor logits = Tensor::Empty(DType::kF32, {static_cast<int64_t>(tokens.size()), spec.n_vocab});
    EXPECT_TRUE(const_cast<Model&>(m).Forward(ctx, tokens.data(), static_cast<int64_t>(tokens.size()), *kv, logits,
                                              true).ok());
    const float* d = logits.data<float>();
    return std::vector<float>(d, d + logits.numel());
  };
  auto privately = Model::Load(path);
  ASSERT_TRUE(privately.ok()) << privately.status().ToString();
  EXPECT_EQ((*privately)->packed_cache_path(), "");

  LoadOptions shared;
  shared.packed_cache_dir = cache;
  auto builder = Model::Load(path, shared);
  ASSERT_TRUE(builder.ok()) << builder.status().ToString();
  const std::string file = (*builder)->packed_cache_path();
  ASSERT_FALSE(file.empty());
  ASSERT_TRUE(fs::exists(file));
  const auto written = fs::last_write_time(file);

  auto mapper = Model::Load(path, shared);
  ASSERT_TRUE(mapper.ok()) << mapper.status().ToString();
  EXPECT_EQ((*mapper)->packed_cache_path(), file);
  EXPECT_EQ(fs::last_write_time(file), written);

  // The packed matrices live in a shared mapping of the cache file.
  std::ifstream maps("/proc/self/maps");
  const std::string all((std::istreambuf_iterator<char>(maps)), std::istreambuf_iterator<char>());
  EXPECT_NE(all.find(file), std::string::npos);

  const std::vector<float> want = logits_of(**privately);
  EXPECT_EQ(logits_of(**builder), want);
  EXPECT_EQ(logits_of(**mapper), want);
}

}  // namespace
}  // namespace atrium
