#include "runtime/tensor.h"

#include <cmath>

#include <gtest/gtest.h>

#include "runtime/dtype.h"
#include "runtime/kv_cache.h"

namespace atrium {
namespace {

TEST(TensorTest, ShapesStridesAndRows) {
  Tensor t = Tensor::Zeros(DType::kF32, {3, 5});
  EXPECT_EQ(t.numel(), 15);
  EXPECT_EQ(t.rows(), 3);
  EXPECT_EQ(t.cols(), 5);
  EXPECT_EQ(t.row_bytes(), 20);
  EXPECT_EQ(t.strides(), (std::vector<int64_t>{20, 4}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
  Tensor r = t.Rows(1, 3);
  EXPECT_EQ(r.rows(), 2);
  EXPECT_EQ(r.raw(), t.row(1));
  EXPECT_EQ(t.Reshape({15}).cols(), 15);
}

TEST(TensorTest, QuantizedRowsAreWholeBlocks) {
  Tensor t = Tensor::Empty(DType::kQ4_K, {4, 512});
  EXPECT_EQ(t.row_bytes(), 2 * 144);
  EXPECT_EQ(t.nbytes(), 4 * 2 * 144);
  EXPECT_EQ(t.ShapeString(), "[4, 512] q4_k");
}

TEST(TensorTest, ViewIsReadOnlyAndKeepsStorageAlive) {
  auto owner = std::make_shared<std::vector<float>>(8, 1.5f);
  Tensor v = Tensor::View(DType::kF32, {2, 4}, owner->data(), owner);
  std::weak_ptr<std::vector<float>> weak = owner;
  owner.reset();
  EXPECT_FALSE(weak.expired());
  EXPECT_TRUE(v.read_only());
  EXPECT_EQ(v.data<float>()[7], 1.5f);
  EXPECT_DEATH(v.mutable_raw(), "read-only");
}

TEST(DTypeTest, HalfConversionsRoundTrip) {
  for (float f : {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.1f}) {
    EXPECT_EQ(F16ToF32(F32ToF16(f)), F16ToF32(F32ToF16(F16ToF32(F32ToF16(f)))));
    EXPECT_NEAR(F16ToF32(F32ToF16(f)), f, std::fabs(f) * 1e-3 + 6e-8);
  }
  EXPECT_EQ(F32ToF16(1.0f), 0x3c00);
  EXPECT_EQ(F32ToF16(-2.0f), 0xc000);
  EXPECT_TRUE(std::isinf(F16ToF32(F32ToF16(1e6f))));
  EXPECT_EQ(BF16ToF32(F32ToBF16(3.0f)), 3.0f);
  EXPECT_EQ(F32ToBF16(1.0f), 0x3f80);
}

TEST(DTypeTest, UnknownTypeIdIsNotKnown) {
  EXPECT_FALSE(GetDTypeInfo(4).has_value());  // removed Q4_2
  EXPECT_FALSE(GetDTypeInfo(1000).has_value());
  EXPECT_EQ(GetDTypeInfo(12)->name, "q4_k");
}

TEST(KvCacheTest, SizeAndCapacity) {
  KvCache kv(2, 16, 8, 8);
  EXPECT_EQ(kv.size(), 0);
  kv.pool().k(1)[kv.pool().Slot(kv.table(), 15) * 8 + 7] = 1.0f;  // last float of the last layer's K is writable
  kv.set_size(16);
  EXPECT_EQ(kv.size(), 16);
  EXPECT_DEATH(kv.set_size(17), "capacity");
  kv.Clear();
  EXPECT_EQ(kv.size(), 0);
}

}  // namespace
}  // namespace atrium
