// Internal: the float part of one ISA's CpuKernels table, the ops of
// float_simd.h, attention_simd.h and attention_q8.h over that ISA's vector
// interface V and q8_0 attention Ops. Included only by float_avx2.cc and
// float_avx512.cc (after their Ops); internal linkage for the reason
// float_simd.h gives.
#pragma once

#include "kernels/cpu/attention_q8.h"
#include "kernels/cpu/attention_simd.h"
#include "kernels/cpu/float_simd.h"
#include "kernels/kernels.h"

namespace atrium::kernels {
namespace {

// The table's attention: a q8_0 cache through attention_q8.h with the ISA's
// Ops (heads longer than its accumulators through the scalar kernel), f16
// and f32 caches through attention_simd.h.
template <class V, class Q8Ops>
void AttentionAnyT(float* out, int64_t out_stride, const float* q, int64_t q_stride, const void* k, const void* v,
                   DType kv_type, int64_t kv_stride, const int32_t* blocks, int64_t block_tokens, int64_t n_tokens,
                   int64_t q_pos0, int64_t n_kv, int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale,
                   float softcap, int64_t window, int64_t head_begin, int64_t head_end, float* scratch,
                   const AttentionNext* next) {
  if (kv_type == DType::kQ8_0 && head_dim > kQ8MaxHeadDim) {
    return CpuFor(Isa::kScalar)->attention(out, out_stride, q, q_stride, k, v, kv_type, kv_stride, blocks,
                                           block_tokens, n_tokens, q_pos0, n_kv, n_heads, n_kv_heads, head_dim, scale,
                                           softcap, window, head_begin, head_end, scratch, next);
  }
  if (kv_type == DType::kQ8_0) {
    return AttentionQ8<V, Q8Ops>(out, out_stride, q, q_stride, k, v, kv_stride, blocks, block_tokens, n_tokens,
                                 q_pos0, n_kv, n_heads, n_kv_heads, head_dim, scale, softcap, window, head_begin,
                                 head_end, next);
  }
  AttentionT<V>(out, out_stride, q, q_stride, k, v, kv_type, kv_stride, blocks, block_tokens, n_tokens, q_pos0, n_kv,
                n_heads, n_kv_heads, head_dim, scale, softcap, window, head_begin, head_end, scratch, next);
}

template <class V, class Q8Ops>
void FillFloatTable(CpuKernels& t) {
  t.rms_norm = RmsNormT<V>;
  t.rope = RopeT<V>;
  t.softmax = SoftmaxT<V>;
  t.silu_mul = SiluMulT<V>;
  t.gelu_tanh_mul = GeluTanhMulT<V>;
  t.soft_cap = SoftCapT<V>;
  t.add = AddT<V>;
  t.scale = ScaleT<V>;
  t.attention = AttentionAnyT<V, Q8Ops>;
}

}  // namespace
}  // namespace atrium::kernels
