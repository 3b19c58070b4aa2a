// Scalar reference of the float ops: the oracle every SIMD version is tested
// against, so it stays plain and obviously correct. The numerics follow GGML's
// CPU backend (ggml-cpu ops.cpp / vec.h) where the order of operations changes
// the rounding, because end-to-end tests compare our logits with llama.cpp's.
// Built without FMA flags and with -std=c++20 (no FP contraction), so every
// product and sum below rounds exactly as written.
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/cpu/variants.h"
#include "kernels/kernels.h"
#include "kernels/kv_q8.h"
#include "kernels/quant_blocks.h"

namespace atrium::kernels::ref {
namespace {

// GGML squares in float and sums in double (ggml_float), then forms the scale
// in float. The weight is a separate multiply (llama.cpp: ggml_mul after
// ggml_rms_norm), so out = (x * scale) * w, rounded twice.
void RmsNorm(float* out, const float* x, const float* w, float eps, int64_t rows, int64_t dim) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = out + r * dim;
    double sum = 0.0;
    for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(xr[i] * xr[i]);
    const float mean = static_cast<float>(sum / static_cast<double>(dim));
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < dim; ++i) {
      float y = xr[i] * scale;
      if (w != nullptr) y *= w[i];
      yr[i] = y;
    }
  }
}

// Angles as ggml_rope_cache_init: theta starts at the position and is
// multiplied by theta_scale once per pair, in float; freq_scale is applied to
// each angle (rope_yarn without extrapolation), then cosf / sinf.
void Rope(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t row_stride,
          const int32_t* pos, int64_t rot_dim, float freq_base, float freq_scale,
          RopeLayout layout) {
  const float theta_scale = powf(freq_base, -2.0f / static_cast<float>(rot_dim));
  const int64_t half = rot_dim / 2;
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t h = 0; h < n_heads; ++h) {
      float* xh = x + t * row_stride + h * head_dim;
      float theta = static_cast<float>(pos[t]);
      for (int64_t i = 0; i < half; ++i) {
        const float angle = freq_scale * theta;
        const float c = cosf(angle);
        const float s = sinf(angle);
        theta *= theta_scale;
        float* a = layout == RopeLayout::kNeox ? xh + i : xh + 2 * i;
        float* b = layout == RopeLayout::kNeox ? xh + i + half : xh + 2 * i + 1;
        const float x0 = *a;
        const float x1 = *b;
        *a = x0 * c - x1 * s;
        *b = x0 * s + x1 * c;
      }
    }
  }
}

// As ggml_vec_soft_max_f32: exponentials in float, their sum in double, then
// one multiply by the float reciprocal. A row of only -inf becomes zeros.
void Softmax(float* x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * cols;
    float max = -INFINITY;
    for (int64_t i = 0; i < cols; ++i) max = xr[i] > max ? xr[i] : max;
    if (max == -INFINITY) {
      for (int64_t i = 0; i < cols; ++i) xr[i] = 0.0f;
      continue;
    }
    double sum = 0.0;
    for (int64_t i = 0; i < cols; ++i) {
      xr[i] = expf(xr[i] - max);
      sum += static_cast<double>(xr[i]);
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t i = 0; i < cols; ++i) xr[i] *= inv;
  }
}

// ggml_silu_f32 times up (ggml_vec_swiglu_f32).
void SiluMul(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

// ggml_gelu_f32 (the exact tanh formula; GGML's CPU path may instead read a
// 64K-entry f16 table, which is only about 1e-3 accurate) times up.
void GeluTanhMul(float* out, const float* gate, const float* up, int64_t n) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
  constexpr float kCoefA = 0.044715f;
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float gelu = 0.5f * g * (1.0f + tanhf(kSqrt2OverPi * g * (1.0f + kCoefA * g * g)));
    out[i] = gelu * up[i];
  }
}

// llama.cpp builds a soft cap as scale(1/cap) -> tanh -> scale(cap), so the
// argument is x * (1/cap), not x / cap.
void SoftCap(float* x, int64_t n, float cap) {
  const float inv = 1.0f / cap;
  for (int64_t i = 0; i < n; ++i) x[i] = cap * tanhf(x[i] * inv);
}

void Add(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void Scale(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

// Plain three-pass attention per (token, head): scores, softmax (sum in
// double), weighted sum of V scaled by the reciprocal of the sum (as the
// final step of ggml's flash attention). A query that sees no key gets zeros.
// A q8_0 cache (kernels/kv_q8.h) is read with the query in two q8_0 levels
// (KvQ8QuantizeQuery): a score is the sum over blocks and levels of d_q *
// d_k times the integer dot product of their quants; V's values are
// weighted in f32.
void Attention(float* out, int64_t out_stride, const float* q, int64_t q_stride, const void* k,
               const void* v, DType kv_type, int64_t kv_stride, const int32_t* blocks, int64_t block_tokens,
               int64_t n_tokens, int64_t q_pos0, int64_t n_kv,
               int64_t n_heads, int64_t n_kv_heads, int64_t head_dim, float scale, float softcap,
               int64_t window, int64_t head_begin, int64_t head_end, float* scratch, const AttentionNext*) {
  const int64_t group = n_heads / n_kv_heads;
  const bool q8 = kv_type == DType::kQ8_0;
  auto row = [&](int64_t j) { return blocks == nullptr ? j : blocks[j / block_tokens] * block_tokens + j % block_tokens; };
  // Element i of row r of a K or V array, as f32.
  auto at = [&](KvSide side, const void* base, int64_t r, int64_t i) {
    switch (kv_type) {
      case DType::kF16: return F16ToF32(static_cast<const uint16_t*>(base)[r * kv_stride + i]);
      case DType::kQ8_0: return KvQ8Element(side, base, kv_stride, r, i);
      default: return static_cast<const float*>(base)[r * kv_stride + i];
    }
  };
  std::vector<BlockQ8_0> q_hi(q8 ? static_cast<size_t>(head_dim / kQK) : 0), q_lo(q_hi.size());
  for (int64_t t = 0; t < n_tokens; ++t) {
    const int64_t p = q_pos0 + t;
    for (int64_t h = head_begin; h < head_end; ++h) {
      const float* qh = q + t * q_stride + h * head_dim;
      const int64_t kvh = (h / group) * head_dim;
      float* oh = out + t * out_stride + h * head_dim;
      if (q8) KvQ8QuantizeQuery(qh, head_dim, q_hi.data(), q_lo.data());

      float max = -INFINITY;
      for (int64_t j = 0; j < n_kv; ++j) {
        const bool visible = j <= p && (window == 0 || p - j < window);
        if (!visible) {
          scratch[j] = -INFINITY;
          continue;
        }
        float dot = 0.0f;
        if (q8) {
          for (int64_t b = 0; b < head_dim / kQK; ++b) {
            const BlockQ8_0 kb = KvQ8Block(KvSide::kKeys, k, kv_stride, row(j), kvh / kQK + b);
            int32_t hi = 0, lo = 0;
            for (int i = 0; i < kQK; ++i) {
              hi += static_cast<int32_t>(q_hi[b].qs[i]) * kb.qs[i];
              lo += static_cast<int32_t>(q_lo[b].qs[i]) * kb.qs[i];
            }
            dot += F16ToF32(q_hi[b].d) * F16ToF32(kb.d) * static_cast<float>(hi);
            dot += F16ToF32(q_lo[b].d) * F16ToF32(kb.d) * static_cast<float>(lo);
          }
        } else {
          for (int64_t d = 0; d < head_dim; ++d) dot += qh[d] * at(KvSide::kKeys, k, row(j), kvh + d);
        }
        float s = scale * dot;
        if (softcap > 0.0f) s = softcap * tanhf(s / softcap);
        scratch[j] = s;
        max = s > max ? s : max;
      }
      for (int64_t d = 0; d < head_dim; ++d) oh[d] = 0.0f;
      if (max == -INFINITY) continue;

      double sum = 0.0;
      for (int64_t j = 0; j < n_kv; ++j) {
        scratch[j] = expf(scratch[j] - max);  // -inf (masked) -> 0
        sum += static_cast<double>(scratch[j]);
      }
      for (int64_t j = 0; j < n_kv; ++j) {
        if (scratch[j] == 0.0f) continue;
        for (int64_t d = 0; d < head_dim; ++d) oh[d] += scratch[j] * at(KvSide::kValues, v, row(j), kvh + d);
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t d = 0; d < head_dim; ++d) oh[d] *= inv;
    }
  }
}

}  // namespace

void FillFloat(CpuKernels& t) {
  t.rms_norm = RmsNorm;
  t.rope = Rope;
  t.softmax = Softmax;
  t.silu_mul = SiluMul;
  t.gelu_tanh_mul = GeluTanhMul;
  t.soft_cap = SoftCap;
  t.add = Add;
  t.scale = Scale;
  t.attention = Attention;
}

}  // namespace atrium::kernels::ref
