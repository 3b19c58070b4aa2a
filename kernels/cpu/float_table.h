// Internal: the float part of one ISA's CpuKernels table, the ops of
// float_simd.h and attention_simd.h over that ISA's vector interface V.
// Included only by float_avx2.cc and float_avx512.cc; internal linkage for
// the reason float_simd.h gives.
#pragma once

#include "kernels/cpu/attention_simd.h"
#include "kernels/cpu/float_simd.h"
#include "kernels/kernels.h"

namespace atrium::kernels {
namespace {

template <class V>
void FillFloatTable(CpuKernels& t) {
  t.rms_norm = RmsNormT<V>;
  t.rope = RopeT<V>;
  t.softmax = SoftmaxT<V>;
  t.silu_mul = SiluMulT<V>;
  t.gelu_tanh_mul = GeluTanhMulT<V>;
  t.soft_cap = SoftCapT<V>;
  t.add = AddT<V>;
  t.scale = ScaleT<V>;
  t.attention = AttentionT<V>;
}

}  // namespace
}  // namespace atrium::kernels
