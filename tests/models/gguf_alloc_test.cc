// Parsing a corrupt file never allocates more than the file size implies: a
// corrupt count must not turn into a huge reserve(). This binary replaces
// the global operator new/delete to record the allocations made while a
// parse runs (its own binary, so no other test is affected).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <random>

#include "models/gguf.h"
#include "models/gguf_writer.h"
#include "models/safetensors.h"
#include "models/safetensors_writer.h"

namespace {
bool g_tracking = false;
size_t g_largest = 0;
size_t g_total = 0;

void* Allocate(size_t n) {
  if (g_tracking) {
    g_largest = std::max(g_largest, n);
    g_total += n;
  }
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(size_t n) { return Allocate(n); }
void* operator new[](size_t n) { return Allocate(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  try { return Allocate(n); } catch (...) { return nullptr; }
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  try { return Allocate(n); } catch (...) { return nullptr; }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

namespace atrium::gguf {
namespace {

std::vector<uint8_t> SmallGguf() {
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetStringArray("tokens", {"a", "b", "c", "d"});
  w.SetFloat32Array("scores", {1, 2, 3, 4});
  w.SetInt32Array("types", {1, 1, 1, 1});
  w.AddTensor("a", DType::kF32, {4, 2}, std::vector<uint8_t>(32, 1));
  w.AddTensor("b", DType::kQ8_0, {32}, std::vector<uint8_t>(34, 2));
  return w.Serialize();
}

// Largest single allocation and total bytes allocated must stay within a
// small multiple of the input size (plus a constant for messages).
void ExpectBounded(const std::vector<uint8_t>& base, bool safetensors, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const uint64_t big[] = {1ull << 20, 1ull << 32, 1ull << 40, 1ull << 62, ~0ull, 0x7fffffffffffffffull};
  for (int iter = 0; iter < 5000; ++iter) {
    std::vector<uint8_t> bytes = base;
    // Overwrite an 8-byte field (a count or length, likely) with a big value.
    const size_t pos = rng() % (bytes.size() - 8);
    const uint64_t v = big[rng() % std::size(big)];
    std::memcpy(bytes.data() + pos, &v, 8);
    g_largest = 0;
    g_total = 0;
    g_tracking = true;
    bool ok;
    if (safetensors) {
      ok = safetensors::SafetensorsFile::FromBuffer("x", bytes.data(), bytes.size()).ok();
    } else {
      ok = GgufFile::FromBuffer("x", bytes.data(), bytes.size()).ok();
    }
    g_tracking = false;
    (void)ok;
    ASSERT_LE(g_largest, 16 * bytes.size() + 4096) << "offset " << pos << " value " << v;
    ASSERT_LE(g_total, 64 * bytes.size() + 65536) << "offset " << pos << " value " << v;
  }
}

TEST(GgufAllocTest, CorruptCountsDoNotAllocateBeyondFileSize) {
  ExpectBounded(SmallGguf(), /*safetensors=*/false, 1);
}

TEST(GgufAllocTest, CorruptSafetensorsHeaderLengthDoesNotAllocate) {
  safetensors::SafetensorsWriter w;
  w.AddF32("a", DType::kF32, {4, 2}, std::vector<float>(8, 1.0f));
  w.AddF32("b", DType::kBF16, {8}, std::vector<float>(8, 2.0f));
  ExpectBounded(w.Serialize(), /*safetensors=*/true, 2);
}

TEST(GgufAllocTest, HugeCountsInHeader) {
  std::vector<uint8_t> bytes = SmallGguf();
  for (size_t field : {8, 16}) {  // tensor count, kv count
    std::vector<uint8_t> b = bytes;
    const uint64_t v = 1ull << 50;
    std::memcpy(b.data() + field, &v, 8);
    g_largest = 0;
    g_tracking = true;
    const bool ok = GgufFile::FromBuffer("x", b.data(), b.size()).ok();
    g_tracking = false;
    EXPECT_FALSE(ok);
    EXPECT_LE(g_largest, 4096u);
    EXPECT_GT(g_largest, 0u);  // the replacement operator new is in use
  }
}

}  // namespace
}  // namespace atrium::gguf
