// Scalar reference of the quantization kernels: the test oracle. Plain loops
// that follow GGML's ggml-quants.c definitions; never optimized. The
// activation quantizers (Q8_0, Q8_1, Q8_K) reproduce what llama.cpp runs on
// x86 bit for bit (Q8_0/Q8_1: id = 127 / amax, round half to even; Q8_K:
// quantize_row_q8_K_ref), because end-to-end results are compared with it.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>

#include "kernels/cpu/variants.h"
#include "kernels/quant_blocks.h"
#include "runtime/status.h"

namespace atrium::kernels::ref {
namespace {

// Blocks may sit at any byte address (tests offset them on purpose), so
// multi-byte fields are read and written through memcpy.
float LoadF16(const void* p) {  // p may be misaligned (packed blocks)
  uint16_t h;
  std::memcpy(&h, p, 2);
  return F16ToF32(h);
}
void StoreF16(void* p, float f) {
  const uint16_t h = F32ToF16(f);
  std::memcpy(p, &h, 2);
}
template <typename T>
T Load(const T* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T>
void Store(T* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

// GGML's nearest_int: round half to even through the float mantissa.
int NearestInt(float f) {
  const float v = f + 12582912.f;
  int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block
// (GGML's get_scale_min_k4).
void ScaleMinK4(int j, const uint8_t* q, int* sc, int* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}
void PackScaleMinK4(int j, int sc, int m, uint8_t* q) {
  if (j < 4) {
    q[j] = static_cast<uint8_t>((q[j] & 0xC0) | sc);
    q[j + 4] = static_cast<uint8_t>((q[j + 4] & 0xC0) | m);
  } else {
    q[j + 4] = static_cast<uint8_t>((sc & 0xF) | ((m & 0xF) << 4));
    q[j - 4] = static_cast<uint8_t>((q[j - 4] & 0x3F) | ((sc >> 4) << 6));
    q[j] = static_cast<uint8_t>((q[j] & 0x3F) | ((m >> 4) << 6));
  }
}

uint32_t LoadQh(const uint8_t* qh) { return Load(reinterpret_cast<const uint32_t*>(qh)); }

// ---------------------------------------------------------------------------
// Dequantization.

void DequantQ4_0(float* y, const BlockQ4_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = LoadF16(&b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * ((b[i].qs[j] & 0xF) - 8);
      y[j + 16] = d * ((b[i].qs[j] >> 4) - 8);
    }
  }
}
void DequantQ4_1(float* y, const BlockQ4_1* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = LoadF16(&b[i].d), m = LoadF16(&b[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = d * (b[i].qs[j] & 0xF) + m;
      y[j + 16] = d * (b[i].qs[j] >> 4) + m;
    }
  }
}
void DequantQ5_0(float* y, const BlockQ5_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = LoadF16(&b[i].d);
    const uint32_t qh = LoadQh(b[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
      y[j] = d * (((b[i].qs[j] & 0xF) | (h0 << 4)) - 16);
      y[j + 16] = d * (((b[i].qs[j] >> 4) | (h1 << 4)) - 16);
    }
  }
}
void DequantQ5_1(float* y, const BlockQ5_1* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = LoadF16(&b[i].d), m = LoadF16(&b[i].m);
    const uint32_t qh = LoadQh(b[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int h0 = (qh >> j) & 1, h1 = (qh >> (j + 16)) & 1;
      y[j] = d * ((b[i].qs[j] & 0xF) | (h0 << 4)) + m;
      y[j + 16] = d * ((b[i].qs[j] >> 4) | (h1 << 4)) + m;
    }
  }
}
void DequantQ8_0(float* y, const BlockQ8_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = LoadF16(&b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = d * b[i].qs[j];
  }
}
void DequantQ8_1(float* y, const BlockQ8_1* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = LoadF16(&b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = d * b[i].qs[j];
  }
}
void DequantQ4_K(float* y, const BlockQ4_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = LoadF16(&b[i].d), dmin = LoadF16(&b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int p = 0; p < 4; ++p, q += 32) {
      int sc0, m0, sc1, m1;
      ScaleMinK4(2 * p, b[i].scales, &sc0, &m0);
      ScaleMinK4(2 * p + 1, b[i].scales, &sc1, &m1);
      for (int l = 0; l < 32; ++l) *y++ = d * sc0 * (q[l] & 0xF) - dmin * m0;
      for (int l = 0; l < 32; ++l) *y++ = d * sc1 * (q[l] >> 4) - dmin * m1;
    }
  }
}
void DequantQ5_K(float* y, const BlockQ5_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = LoadF16(&b[i].d), dmin = LoadF16(&b[i].dmin);
    const uint8_t* q = b[i].qs;
    for (int p = 0; p < 4; ++p, q += 32) {
      int sc0, m0, sc1, m1;
      ScaleMinK4(2 * p, b[i].scales, &sc0, &m0);
      ScaleMinK4(2 * p + 1, b[i].scales, &sc1, &m1);
      for (int l = 0; l < 32; ++l) {
        const int h = (b[i].qh[l] >> (2 * p)) & 1;
        *y++ = d * sc0 * ((q[l] & 0xF) | (h << 4)) - dmin * m0;
      }
      for (int l = 0; l < 32; ++l) {
        const int h = (b[i].qh[l] >> (2 * p + 1)) & 1;
        *y++ = d * sc1 * ((q[l] >> 4) | (h << 4)) - dmin * m1;
      }
    }
  }
}
// The 6-bit value of element e (0..255) of a Q6_K block, before the -32.
int Q6KValue(const BlockQ6_K& b, int e) {
  const int half = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
  const uint8_t* ql = b.ql + 64 * half;
  const uint8_t* qh = b.qh + 32 * half;
  // quarter 0: ql[l] low, 1: ql[l+32] low, 2: ql[l] high, 3: ql[l+32] high.
  const uint8_t byte = ql[l + 32 * (quarter & 1)];
  const int lo4 = quarter < 2 ? (byte & 0xF) : (byte >> 4);
  const int hi2 = (qh[l] >> (2 * quarter)) & 3;
  return lo4 | (hi2 << 4);
}
void DequantQ6_K(float* y, const BlockQ6_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = LoadF16(&b[i].d);
    for (int e = 0; e < kQK_K; ++e) y[e] = d * b[i].scales[e / 16] * (Q6KValue(b[i], e) - 32);
  }
}
void DequantQ8_K(float* y, const BlockQ8_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK_K) {
    const float d = b[i].d;
    for (int j = 0; j < kQK_K; ++j) y[j] = d * b[i].qs[j];
  }
}

void DequantizeRow(DType type, float* out, const void* src, int64_t n) {
  const int64_t bs = Info(type).block_size;
  ATRIUM_CHECK(n % bs == 0, "dequantize_row: n=%lld is not a multiple of %lld for %s",
               static_cast<long long>(n), static_cast<long long>(bs),
               std::string(DTypeName(type)).c_str());
  const int64_t nb = n / bs;
  switch (type) {
    case DType::kF32: std::memcpy(out, src, n * sizeof(float)); return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = LoadF16(static_cast<const uint16_t*>(src) + i);
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = BF16ToF32(Load(static_cast<const uint16_t*>(src) + i));
      return;
    case DType::kQ4_0: return DequantQ4_0(out, static_cast<const BlockQ4_0*>(src), nb);
    case DType::kQ4_1: return DequantQ4_1(out, static_cast<const BlockQ4_1*>(src), nb);
    case DType::kQ5_0: return DequantQ5_0(out, static_cast<const BlockQ5_0*>(src), nb);
    case DType::kQ5_1: return DequantQ5_1(out, static_cast<const BlockQ5_1*>(src), nb);
    case DType::kQ8_0: return DequantQ8_0(out, static_cast<const BlockQ8_0*>(src), nb);
    case DType::kQ8_1: return DequantQ8_1(out, static_cast<const BlockQ8_1*>(src), nb);
    case DType::kQ4_K: return DequantQ4_K(out, static_cast<const BlockQ4_K*>(src), nb);
    case DType::kQ5_K: return DequantQ5_K(out, static_cast<const BlockQ5_K*>(src), nb);
    case DType::kQ6_K: return DequantQ6_K(out, static_cast<const BlockQ6_K*>(src), nb);
    case DType::kQ8_K: return DequantQ8_K(out, static_cast<const BlockQ8_K*>(src), nb);
    default: break;
  }
  ATRIUM_CHECK(false, "dequantize_row: unsupported type %s", std::string(DTypeName(type)).c_str());
}

// ---------------------------------------------------------------------------
// Quantization. Q8_0 and Q8_1 follow GGML's x86 quantize_row_q8_0 / q8_1
// (id = 127 / amax, round half to even, as llama.cpp runs on x86, which we
// compare with end to end); Q8_K is GGML's quantize_row_q8_K_ref; Q4_0, Q4_1,
// Q5_0, Q5_1 follow GGML's simple reference quantizers; the K-quant ones are
// simple min/max quantizers for building test models (GGML searches scales).

void QuantQ8_0(BlockQ8_0* y, const float* x, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    StoreF16(&y[i].d, d);
    for (int j = 0; j < kQK; ++j) y[i].qs[j] = static_cast<int8_t>(std::nearbyintf(x[j] * id));
  }
}
void QuantQ8_1(BlockQ8_1* y, const float* x, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    StoreF16(&y[i].d, d);
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      y[i].qs[j] = static_cast<int8_t>(std::nearbyintf(x[j] * id));
      sum += y[i].qs[j];
    }
    StoreF16(&y[i].s, sum * d);
  }
}
void QuantQ8_K(BlockQ8_K* y, const float* x, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float max = 0.0f, amax = 0.0f;
    for (int j = 0; j < kQK_K; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      std::memset(static_cast<void*>(&y[i]), 0, sizeof(BlockQ8_K));
      continue;
    }
    // -127 (not -128) as in current GGML, so that every q is in [-127, 127].
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j) {
      y[i].qs[j] = static_cast<int8_t>(std::min(127, NearestInt(iscale * x[j])));
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += y[i].qs[16 * g + j];
      y[i].bsums[g] = static_cast<int16_t>(sum);
    }
    y[i].d = 1 / iscale;
  }
}
// GGML's quantize_row_q4_0_ref (n_max 8) and q5_0 (n_max 16): the signed
// value of largest magnitude maps to -n_max.
template <int kMax>
void QuantSymmetric(const float* x, float* d_out, int* q) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQK; ++j) {
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -kMax;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  *d_out = d;
  for (int j = 0; j < kQK; ++j) {
    q[j] = std::min(2 * kMax - 1, static_cast<int>(static_cast<int8_t>(x[j] * id + kMax + 0.5f)));
  }
}
// GGML's quantize_row_q4_1_ref (levels 15) and q5_1 (levels 31).
template <int kLevels>
void QuantAffine(const float* x, float* d_out, float* m_out, int* q) {
  float min = x[0], max = x[0];
  for (int j = 1; j < kQK; ++j) {
    min = std::min(min, x[j]);
    max = std::max(max, x[j]);
  }
  const float d = (max - min) / kLevels;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  *d_out = d;
  *m_out = min;
  for (int j = 0; j < kQK; ++j) {
    q[j] = std::min(kLevels, static_cast<int>(static_cast<int8_t>((x[j] - min) * id + 0.5f)));
  }
}
void PackNibbles(uint8_t* qs, const int* q) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
}
void PackHighBits(uint8_t* qh, const int* q) {
  uint32_t h = 0;
  for (int j = 0; j < kQK; ++j) h |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
  std::memcpy(qh, &h, 4);
}

// K-quant sub-block (scale, min) choice: x ~ scale * q - min with q in
// [0, levels] and min >= 0 (GGML stores -min times a positive dmin).
void SubBlockScaleMin(const float* x, int n, int levels, float* scale, float* min) {
  float lo = 0.0f, hi = 0.0f;
  for (int j = 0; j < n; ++j) {
    lo = std::min(lo, x[j]);
    hi = std::max(hi, x[j]);
  }
  *scale = (hi - lo) / levels;
  *min = -lo;
}
// Q4_K (levels 15, no qh) and Q5_K (levels 31).
template <int kLevels>
void QuantKAffine(const float* x, void* d_f16, void* dmin_f16, uint8_t* scales, uint8_t* qs,
                  uint8_t* qh) {
  float sub_scale[8], sub_min[8], max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    SubBlockScaleMin(x + 32 * j, 32, kLevels, &sub_scale[j], &sub_min[j]);
    max_scale = std::max(max_scale, sub_scale[j]);
    max_min = std::max(max_min, sub_min[j]);
  }
  StoreF16(d_f16, max_scale / 63);
  StoreF16(dmin_f16, max_min / 63);
  const float d = LoadF16(d_f16), dmin = LoadF16(dmin_f16);
  std::memset(scales, 0, 12);
  int q[kQK_K];
  for (int j = 0; j < 8; ++j) {
    const int sc = d != 0.0f ? std::clamp(static_cast<int>(std::lround(sub_scale[j] / d)), 0, 63) : 0;
    const int m = dmin != 0.0f ? std::clamp(static_cast<int>(std::lround(sub_min[j] / dmin)), 0, 63) : 0;
    PackScaleMinK4(j, sc, m, scales);
    const float step = d * sc, offset = dmin * m;
    for (int l = 0; l < 32; ++l) {
      const float v = step != 0.0f ? (x[32 * j + l] + offset) / step : 0.0f;
      q[32 * j + l] = std::clamp(static_cast<int>(std::lround(v)), 0, kLevels);
    }
  }
  if (qh != nullptr) std::memset(qh, 0, 32);
  for (int p = 0; p < 4; ++p) {
    for (int l = 0; l < 32; ++l) {
      const int a = q[64 * p + l], b = q[64 * p + 32 + l];
      qs[32 * p + l] = static_cast<uint8_t>((a & 0xF) | ((b & 0xF) << 4));
      if (qh != nullptr) qh[l] |= static_cast<uint8_t>(((a >> 4) << (2 * p)) | ((b >> 4) << (2 * p + 1)));
    }
  }
}
void QuantQ6_K(BlockQ6_K* y, const float* x, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK_K) {
    float sub_scale[16], max_abs_scale = 0.0f;
    for (int g = 0; g < 16; ++g) {
      float amax = 0.0f;
      for (int j = 0; j < 16; ++j) amax = std::max(amax, std::fabs(x[16 * g + j]));
      sub_scale[g] = amax / 31;
      max_abs_scale = std::max(max_abs_scale, sub_scale[g]);
    }
    StoreF16(&y[i].d, max_abs_scale / 127);
    const float d = LoadF16(&y[i].d);
    int q[kQK_K];
    for (int g = 0; g < 16; ++g) {
      const int sc = d != 0.0f ? std::clamp(static_cast<int>(std::lround(sub_scale[g] / d)), 0, 127) : 0;
      y[i].scales[g] = static_cast<int8_t>(sc);
      const float step = d * sc;
      for (int j = 0; j < 16; ++j) {
        const float v = step != 0.0f ? x[16 * g + j] / step : 0.0f;
        q[16 * g + j] = std::clamp(static_cast<int>(std::lround(v)), -32, 31) + 32;
      }
    }
    for (int half = 0; half < 2; ++half) {
      uint8_t* ql = y[i].ql + 64 * half;
      uint8_t* qh = y[i].qh + 32 * half;
      const int* L = q + 128 * half;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((L[l] & 0xF) | ((L[l + 64] & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((L[l + 32] & 0xF) | ((L[l + 96] & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((L[l] >> 4) | ((L[l + 32] >> 4) << 2) | ((L[l + 64] >> 4) << 4) |
                                     ((L[l + 96] >> 4) << 6));
      }
    }
  }
}

void QuantizeRow(DType type, void* dst, const float* x, int64_t n) {
  const int64_t bs = Info(type).block_size;
  ATRIUM_CHECK(n % bs == 0, "quantize_row: n=%lld is not a multiple of %lld for %s",
               static_cast<long long>(n), static_cast<long long>(bs),
               std::string(DTypeName(type)).c_str());
  const int64_t nb = n / bs;
  int q[kQK];
  float d, m;
  switch (type) {
    case DType::kF32: std::memcpy(dst, x, n * sizeof(float)); return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) StoreF16(static_cast<uint16_t*>(dst) + i, x[i]);
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) Store(static_cast<uint16_t*>(dst) + i, F32ToBF16(x[i]));
      return;
    case DType::kQ8_0: return QuantQ8_0(static_cast<BlockQ8_0*>(dst), x, nb);
    case DType::kQ8_1: return QuantQ8_1(static_cast<BlockQ8_1*>(dst), x, nb);
    case DType::kQ8_K: return QuantQ8_K(static_cast<BlockQ8_K*>(dst), x, nb);
    case DType::kQ4_0:
      for (int64_t i = 0; i < nb; ++i) {
        auto* b = static_cast<BlockQ4_0*>(dst) + i;
        QuantSymmetric<8>(x + i * kQK, &d, q);
        StoreF16(&b->d, d);
        PackNibbles(b->qs, q);
      }
      return;
    case DType::kQ5_0:
      for (int64_t i = 0; i < nb; ++i) {
        auto* b = static_cast<BlockQ5_0*>(dst) + i;
        QuantSymmetric<16>(x + i * kQK, &d, q);
        StoreF16(&b->d, d);
        PackNibbles(b->qs, q);
        PackHighBits(b->qh, q);
      }
      return;
    case DType::kQ4_1:
      for (int64_t i = 0; i < nb; ++i) {
        auto* b = static_cast<BlockQ4_1*>(dst) + i;
        QuantAffine<15>(x + i * kQK, &d, &m, q);
        StoreF16(&b->d, d);
        StoreF16(&b->m, m);
        PackNibbles(b->qs, q);
      }
      return;
    case DType::kQ5_1:
      for (int64_t i = 0; i < nb; ++i) {
        auto* b = static_cast<BlockQ5_1*>(dst) + i;
        QuantAffine<31>(x + i * kQK, &d, &m, q);
        StoreF16(&b->d, d);
        StoreF16(&b->m, m);
        PackNibbles(b->qs, q);
        PackHighBits(b->qh, q);
      }
      return;
    case DType::kQ4_K:
      for (int64_t i = 0; i < nb; ++i) {
        auto* b = static_cast<BlockQ4_K*>(dst) + i;
        QuantKAffine<15>(x + i * kQK_K, &b->d, &b->dmin, b->scales, b->qs, nullptr);
      }
      return;
    case DType::kQ5_K:
      for (int64_t i = 0; i < nb; ++i) {
        auto* b = static_cast<BlockQ5_K*>(dst) + i;
        QuantKAffine<31>(x + i * kQK_K, &b->d, &b->dmin, b->scales, b->qs, b->qh);
      }
      return;
    case DType::kQ6_K: return QuantQ6_K(static_cast<BlockQ6_K*>(dst), x, nb);
    default: break;
  }
  ATRIUM_CHECK(false, "quantize_row: unsupported type %s", std::string(DTypeName(type)).c_str());
}

// ---------------------------------------------------------------------------
// Dot products: integer sums per block, scaled in float as GGML does, and
// summed in double so the oracle itself adds little rounding.

double DotQ4_0(const BlockQ4_0* w, const BlockQ8_0* x, int64_t nb) {
  double sum = 0.0;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0;
    for (int j = 0; j < 16; ++j) {
      sumi += ((w[i].qs[j] & 0xF) - 8) * x[i].qs[j] + ((w[i].qs[j] >> 4) - 8) * x[i].qs[j + 16];
    }
    sum += sumi * LoadF16(&w[i].d) * LoadF16(&x[i].d);
  }
  return sum;
}
double DotQ4_1(const BlockQ4_1* w, const BlockQ8_1* x, int64_t nb) {
  double sum = 0.0;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0;
    for (int j = 0; j < 16; ++j) {
      sumi += (w[i].qs[j] & 0xF) * x[i].qs[j] + (w[i].qs[j] >> 4) * x[i].qs[j + 16];
    }
    sum += sumi * LoadF16(&w[i].d) * LoadF16(&x[i].d) + LoadF16(&w[i].m) * LoadF16(&x[i].s);
  }
  return sum;
}
double DotQ5_0(const BlockQ5_0* w, const BlockQ8_0* x, int64_t nb) {
  double sum = 0.0;
  for (int64_t i = 0; i < nb; ++i) {
    const uint32_t qh = LoadQh(w[i].qh);
    int sumi = 0;
    for (int j = 0; j < 16; ++j) {
      const int v0 = ((w[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4)) - 16;
      const int v1 = ((w[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
      sumi += v0 * x[i].qs[j] + v1 * x[i].qs[j + 16];
    }
    sum += sumi * LoadF16(&w[i].d) * LoadF16(&x[i].d);
  }
  return sum;
}
double DotQ5_1(const BlockQ5_1* w, const BlockQ8_1* x, int64_t nb) {
  double sum = 0.0;
  for (int64_t i = 0; i < nb; ++i) {
    const uint32_t qh = LoadQh(w[i].qh);
    int sumi = 0;
    for (int j = 0; j < 16; ++j) {
      const int v0 = (w[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4);
      const int v1 = (w[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      sumi += v0 * x[i].qs[j] + v1 * x[i].qs[j + 16];
    }
    sum += sumi * LoadF16(&w[i].d) * LoadF16(&x[i].d) + LoadF16(&w[i].m) * LoadF16(&x[i].s);
  }
  return sum;
}
double DotQ8_0(const BlockQ8_0* w, const BlockQ8_0* x, int64_t nb) {
  double sum = 0.0;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += w[i].qs[j] * x[i].qs[j];
    sum += sumi * LoadF16(&w[i].d) * LoadF16(&x[i].d);
  }
  return sum;
}
// sum = d_x * (d * sum_j sc_j * dot_j - dmin * sum_j m_j * sum(x in sub-block j)).
double DotQ4_K(const BlockQ4_K* w, const BlockQ8_K* x, int64_t nb) {
  double sum = 0.0;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      ScaleMinK4(j, w[i].scales, &sc, &m);
      const uint8_t* q = w[i].qs + 32 * (j / 2);
      int dot = 0;
      for (int l = 0; l < 32; ++l) {
        dot += (j % 2 == 0 ? (q[l] & 0xF) : (q[l] >> 4)) * x[i].qs[32 * j + l];
      }
      sumi += sc * dot;
      summ += m * (x[i].bsums[2 * j] + x[i].bsums[2 * j + 1]);
    }
    const float dx = x[i].d;
    sum += dx * LoadF16(&w[i].d) * sumi - dx * LoadF16(&w[i].dmin) * summ;
  }
  return sum;
}
double DotQ5_K(const BlockQ5_K* w, const BlockQ8_K* x, int64_t nb) {
  double sum = 0.0;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; ++j) {
      int sc, m;
      ScaleMinK4(j, w[i].scales, &sc, &m);
      const uint8_t* q = w[i].qs + 32 * (j / 2);
      int dot = 0;
      for (int l = 0; l < 32; ++l) {
        const int lo = j % 2 == 0 ? (q[l] & 0xF) : (q[l] >> 4);
        const int hi = (w[i].qh[l] >> j) & 1;
        dot += (lo | (hi << 4)) * x[i].qs[32 * j + l];
      }
      sumi += sc * dot;
      summ += m * (x[i].bsums[2 * j] + x[i].bsums[2 * j + 1]);
    }
    const float dx = x[i].d;
    sum += dx * LoadF16(&w[i].d) * sumi - dx * LoadF16(&w[i].dmin) * summ;
  }
  return sum;
}
double DotQ6_K(const BlockQ6_K* w, const BlockQ8_K* x, int64_t nb) {
  double sum = 0.0;
  for (int64_t i = 0; i < nb; ++i) {
    int sumi = 0;
    for (int e = 0; e < kQK_K; ++e) {
      sumi += w[i].scales[e / 16] * (Q6KValue(w[i], e) - 32) * x[i].qs[e];
    }
    sum += x[i].d * LoadF16(&w[i].d) * sumi;
  }
  return sum;
}

float VecDot(DType wtype, const void* w, const void* x, int64_t n) {
  const int64_t bs = Info(wtype).block_size;
  ATRIUM_CHECK(n % bs == 0, "vec_dot: n=%lld is not a multiple of %lld for %s",
               static_cast<long long>(n), static_cast<long long>(bs),
               std::string(DTypeName(wtype)).c_str());
  const int64_t nb = n / bs;
  const float* xf = static_cast<const float*>(x);
  double sum = 0.0;
  switch (wtype) {
    case DType::kF32:
      for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(Load(static_cast<const float*>(w) + i)) * Load(xf + i);
      return static_cast<float>(sum);
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(LoadF16(static_cast<const uint16_t*>(w) + i)) * Load(xf + i);
      return static_cast<float>(sum);
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        sum += static_cast<double>(BF16ToF32(Load(static_cast<const uint16_t*>(w) + i))) * Load(xf + i);
      }
      return static_cast<float>(sum);
    case DType::kQ4_0: return DotQ4_0(static_cast<const BlockQ4_0*>(w), static_cast<const BlockQ8_0*>(x), nb);
    case DType::kQ4_1: return DotQ4_1(static_cast<const BlockQ4_1*>(w), static_cast<const BlockQ8_1*>(x), nb);
    case DType::kQ5_0: return DotQ5_0(static_cast<const BlockQ5_0*>(w), static_cast<const BlockQ8_0*>(x), nb);
    case DType::kQ5_1: return DotQ5_1(static_cast<const BlockQ5_1*>(w), static_cast<const BlockQ8_1*>(x), nb);
    case DType::kQ8_0: return DotQ8_0(static_cast<const BlockQ8_0*>(w), static_cast<const BlockQ8_0*>(x), nb);
    case DType::kQ4_K: return DotQ4_K(static_cast<const BlockQ4_K*>(w), static_cast<const BlockQ8_K*>(x), nb);
    case DType::kQ5_K: return DotQ5_K(static_cast<const BlockQ5_K*>(w), static_cast<const BlockQ8_K*>(x), nb);
    case DType::kQ6_K: return DotQ6_K(static_cast<const BlockQ6_K*>(w), static_cast<const BlockQ8_K*>(x), nb);
    default: break;
  }
  ATRIUM_CHECK(false, "vec_dot: unsupported weight type %s", std::string(DTypeName(wtype)).c_str());
  return 0.0f;
}

void MatmulRows(float* out, int64_t ldo, const void* w, DType wtype, int64_t n_in, const void* x,
                int64_t x_stride, int64_t n_tokens, int64_t row_begin, int64_t row_end) {
  const int64_t w_row_bytes = RowBytes(wtype, n_in);
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* xb = static_cast<const uint8_t*>(x);
  for (int64_t t = 0; t < n_tokens; ++t) {
    for (int64_t r = row_begin; r < row_end; ++r) {
      out[t * ldo + r] = VecDot(wtype, wb + r * w_row_bytes, xb + t * x_stride, n_in);
    }
  }
}

}  // namespace

void FillQuant(CpuKernels& t) {
  t.quantize_row = QuantizeRow;
  t.dequantize_row = DequantizeRow;
  t.vec_dot = VecDot;
  t.matmul_rows = MatmulRows;
  t.packed_bytes = [](DType, int64_t, int64_t) -> int64_t { return 0; };  // the reference keeps GGUF layouts
  t.pack_rows = [](void*, const void*, DType, int64_t, int64_t) {
    ATRIUM_CHECK(false, "pack_rows: this table packs nothing (packed_bytes is 0)");
  };
  t.matmul_packed = [](float*, int64_t, const void*, DType, int64_t, const void*, int64_t, int64_t, int64_t,
                       int64_t) { ATRIUM_CHECK(false, "matmul_packed: this table packs nothing"); };
  t.matmul_packed_claimed = [](float*, int64_t, const void*, DType, int64_t, const void*, int64_t, int64_t, int64_t,
                               WorkClaims&, bool) { ATRIUM_CHECK(false, "matmul_packed_claimed: this table packs nothing"); };
}

}  // namespace atrium::kernels::ref
