// models/packed_cache: packed weights in a file every process maps
// read-only. The file is built once, mapped after that, rebuilt whenever it
// does not match what it claims to hold, and a model mapped from it computes
// exactly what a privately packed one does.
#include "models/packed_cache.h"

#include <sys/stat.h>
#include <unistd.h>

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
