// Internal: the SIMD float ops, written once over a small vector interface V
// and instantiated by float_avx2.cc (V = 8 floats in a __m256) and
// float_avx512.cc (V = 16 floats in a __m512), each compiled with its own ISA
// flags. Include only from those files, after defining V.
//
// Everything here has internal linkage (anonymous namespace) on purpose: an
// inline function with external linkage compiled in both files could be
// merged by the linker, and the AVX-512 copy could then run on an AVX2 CPU.
//
// V provides: T (vector), M (lane mask), kLanes; Zero, Set1, Load, Store,
// TailMask(n) (first n lanes, n < kLanes), LoadTail (masked-out lanes read 0,
// never fault), StoreTail; Add, Sub, Mul, Div, Min, Max, Fma(a,b,c) = a*b+c,
// Fnma(a,b,c) = c-a*b; CmpLt, CmpGt, IsNan, Select(m, if_true, if_false);
// Abs, OrSign(mag, x) (mag >= 0 gets the sign of x); Pow2FromShifted (see
// Exp); SwapPairs (lanes 2i <-> 2i+1); ReduceAdd, ReduceMax; Reduce4(a, b,
// c, d, out[4]); SumSquares(x, n) (n a multiple of kLanes; squares in float,
// sum in double).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/kernels.h"

namespace atrium::kernels {
namespace {

// exp(x), a Cody-Waite range reduction x = n*ln2 + r, |r| <= ln2/2, and a
// degree-6 polynomial for exp(r) (the classic Cephes expf coefficients).
// Measured against double exp on every float in [-87.33, 88.37]: max
// relative error 1.19e-7 (1.26 ulp), AVX2 and AVX-512 alike. x < -87.3365
// gives 0 (no denormals), x > 88.376 gives +inf (a little early: exp
// overflows float at 88.72), NaN stays NaN.
template <class V>
inline typename V::T Exp(typename V::T x) {
  using T = typename V::T;
  const T hi = V::Set1(88.3762626647949f);
  const T lo = V::Set1(-87.3365478515625f);
  const T xc = V::Min(V::Max(x, lo), hi);
  // Adding 1.5 * 2^23 rounds x/ln2 to the integer n and leaves n in the low
  // mantissa bits of z, from which V::Pow2FromShifted builds 2^n.
  const T shifter = V::Set1(0x1.8p23f);
  const T z = V::Fma(xc, V::Set1(1.44269504088896341f), shifter);
  const T n = V::Sub(z, shifter);
  T r = V::Fnma(n, V::Set1(0.693359375f), xc);
  r = V::Fnma(n, V::Set1(-2.12194440e-4f), r);
  T p = V::Set1(1.9875691500e-4f);
  p = V::Fma(p, r, V::Set1(1.3981999507e-3f));
  p = V::Fma(p, r, V::Set1(8.3334519073e-3f));
  p = V::Fma(p, r, V::Set1(4.1665795894e-2f));
  p = V::Fma(p, r, V::Set1(1.6666665459e-1f));
  p = V::Fma(p, r, V::Set1(5.0000001201e-1f));
  T y = V::Fma(p, V::Mul(r, r), V::Add(r, V::Set1(1.0f)));
  y = V::Mul(y, V::Pow2FromShifted(z));
  y = V::Select(V::CmpLt(x, lo), V::Zero(), y);
  y = V::Select(V::CmpGt(x, hi), V::Set1(INFINITY), y);
  return V::Select(V::IsNan(x), x, y);
}

// tanh(x): for |x| < 0.625 an odd polynomial (Cephes tanhf), which keeps the
// relative error small near 0; above, 1 - 2 / (exp(2|x|) + 1) with the sign
// of x. Measured against double tanh on every float with 1e-30 <= |x| <= 20:
// max relative error 1.45e-7 (1.36 ulp, near the 0.625 switch point).
template <class V>
inline typename V::T Tanh(typename V::T x) {
  using T = typename V::T;
  const T ax = V::Abs(x);
  const T z = V::Mul(x, x);
  T p = V::Set1(-5.70498872745e-3f);
  p = V::Fma(p, z, V::Set1(2.06390887954e-2f));
  p = V::Fma(p, z, V::Set1(-5.37397155531e-2f));
  p = V::Fma(p, z, V::Set1(1.33314422036e-1f));
  p = V::Fma(p, z, V::Set1(-3.33332819422e-1f));
  const T small = V::Fma(V::Mul(p, z), x, x);
  const T one = V::Set1(1.0f);
  const T e = Exp<V>(V::Add(ax, ax));
  const T large = V::OrSign(V::Sub(one, V::Div(V::Set1(2.0f), V::Add(e, one))), x);
  return V::Select(V::CmpLt(ax, V::Set1(0.625f)), small, large);
}

// f(i, load, store) over [0, n) a vector at a time: whole vectors with
// V::Load / V::Store, then the tail with masked ones.
template <class V, typename F>
inline void ForVectors(int64_t n, F&& f) {
  int64_t i = 0;
  for (; i + V::kLanes <= n; i += V::kLanes) f(i, V::Load, V::Store);
  if (i < n) {
    const auto m = V::TailMask(n - i);
    f(i, [m](const float* p) { return V::LoadTail(p, m); }, [m](float* p, typename V::T v) { V::StoreTail(p, m, v); });
  }
}

// out = f(x) per vector (out may be x); the tail uses masked loads.
template <class V, class F>
inline void Map1(float* out, const float* x, int64_t n, F f) {
  ForVectors<V>(n, [&](int64_t i, auto load, auto store) { store(out + i, f(load(x + i))); });
}

// out = f(a, b) per vector. Each vector is loaded before it is stored, so out
// may alias a or b exactly.
template <class V, class F>
inline void Map2(float* out, const float* a, const float* b, int64_t n, F f) {
  ForVectors<V>(n, [&](int64_t i, auto load, auto store) { store(out + i, f(load(a + i), load(b + i))); });
}

template <class V>
void RmsNormT(float* out, const float* x, const float* w, float eps, int64_t rows, int64_t dim) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    const int64_t full = dim / V::kLanes * V::kLanes;
    double sum = V::SumSquares(xr, full);
    for (int64_t i = full; i < dim; ++i) sum += static_cast<double>(xr[i] * xr[i]);
    const float mean = static_cast<float>(sum / static_cast<double>(dim));
    const auto s = V::Set1(1.0f / sqrtf(mean + eps));
    if (w == nullptr) {
      Map1<V>(out + r * dim, xr, dim, [&](auto a) { return V::Mul(a, s); });
    } else {
      Map2<V>(out + r * dim, xr, w, dim, [&](auto a, auto b) { return V::Mul(V::Mul(a, s), b); });
    }
  }
}

// The cos and sin of one position's rope angles, laid out for the rotation:
// NeoX pairs (i, i + half) take cs[i], sn[i]; interleaved pairs (2i, 2i + 1)
// take both lanes, sn's first negated. Every layer ropes the q and k of the
// same positions, so each thread keeps the latest ones (a hashed table of
// kSlots): the cosf / sinf calls were most of a decode step's rope, and
// the serial part of the step. A hit holds the very floats a miss computes.
class RopeAngles {
 public:
  static constexpr int64_t kSlots = 256;

  // cs at the result, sn at the result + 2 * half.
  const float* Get(int32_t pos, int64_t half, float theta_scale, float freq_scale, bool neox) {
    const int64_t width = 4 * half;
    if (width != width_) {
      width_ = width;
      data_.assign(static_cast<size_t>(kSlots * width), 0.0f);
      keys_.assign(kSlots, Key{});
    }
    uint32_t ts, fs;
    std::memcpy(&ts, &theta_scale, 4);
    std::memcpy(&fs, &freq_scale, 4);
    const Key key{pos, ts, fs, neox, true};
    const uint32_t hash = (static_cast<uint32_t>(pos) * 0x9E3779B1u) ^ (ts * 0x85EBCA6Bu) ^ fs ^ (neox ? 1u : 0u);
    const int64_t slot = static_cast<int64_t>((hash ^ (hash >> 16)) % kSlots);
    float* cs = data_.data() + slot * width;
    if (keys_[static_cast<size_t>(slot)] == key) return cs;
    keys_[static_cast<size_t>(slot)] = key;
    float* sn = cs + 2 * half;
    float theta = static_cast<float>(pos);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = freq_scale * theta;
      const float c = cosf(angle);
      const float s = sinf(angle);
      theta *= theta_scale;
      if (neox) {
        cs[i] = c;
        sn[i] = s;
      } else {
        cs[2 * i] = c;
        cs[2 * i + 1] = c;
        sn[2 * i] = -s;
        sn[2 * i + 1] = s;
      }
    }
    return cs;
  }

 private:
  struct Key {
    int32_t pos = 0;
    uint32_t theta_scale = 0, freq_scale = 0;
    bool neox = false, valid = false;
    bool operator==(const Key& o) const {
      return valid && o.valid && pos == o.pos && theta_scale == o.theta_scale && freq_scale == o.freq_scale &&
             neox == o.neox;
    }
  };
  int64_t width_ = 0;
  std::vector<float> data_;
  std::vector<Key> keys_;
};

// Same angles as the reference (cosf / sinf of the float recurrence, the
// same calls), and the rotation is written as plain multiplies and adds. GCC
// may still fuse a multiply and an add into an FMA (C++ defaults to
// -ffp-contract=fast), so a result can differ from the reference by 1 ulp.
template <class V>
void RopeT(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t row_stride,
           const int32_t* pos, int64_t rot_dim, float freq_base, float freq_scale,
           RopeLayout layout) {
  thread_local RopeAngles angles;
  const float theta_scale = powf(freq_base, -2.0f / static_cast<float>(rot_dim));
  const int64_t half = rot_dim / 2;
  const bool neox = layout == RopeLayout::kNeox;
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* cs = angles.Get(pos[t], half, theta_scale, freq_scale, neox);
    const float* sn = cs + 2 * half;
    for (int64_t h = 0; h < n_heads; ++h) {
      float* xh = x + t * row_stride + h * head_dim;
      if (neox) {
        float* a = xh;
        float* b = xh + half;
        ForVectors<V>(half, [&](int64_t i, auto load, auto store) {
          const auto av = load(a + i), bv = load(b + i);
          const auto c = load(cs + i), s = load(sn + i);
          store(a + i, V::Sub(V::Mul(av, c), V::Mul(bv, s)));
          store(b + i, V::Add(V::Mul(av, s), V::Mul(bv, c)));
        });
      } else {
        ForVectors<V>(rot_dim, [&](int64_t i, auto load, auto store) {
          const auto xv = load(xh + i);
          store(xh + i, V::Add(V::Mul(xv, load(cs + i)), V::Mul(V::SwapPairs(xv), load(sn + i))));
        });
      }
    }
  }
}

// Max of x[0..n), -inf for n == 0.
template <class V>
inline float MaxOf(const float* x, int64_t n) {
  constexpr int64_t L = V::kLanes;
  const auto neg_inf = V::Set1(-INFINITY);
  auto m0 = neg_inf, m1 = neg_inf;
  int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    m0 = V::Max(m0, V::Load(x + i));
    m1 = V::Max(m1, V::Load(x + i + L));
  }
  for (; i + L <= n; i += L) m0 = V::Max(m0, V::Load(x + i));
  if (i < n) {
    const auto m = V::TailMask(n - i);
    m1 = V::Max(m1, V::Select(m, V::LoadTail(x + i, m), neg_inf));
  }
  return V::ReduceMax(V::Max(m0, m1));
}

// x = exp(x - max) in place; returns the sum of the results.
template <class V>
inline float ExpShiftSum(float* x, int64_t n, float max) {
  constexpr int64_t L = V::kLanes;
  const auto mv = V::Set1(max);
  auto s0 = V::Zero(), s1 = V::Zero();
  int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    const auto e0 = Exp<V>(V::Sub(V::Load(x + i), mv));
    const auto e1 = Exp<V>(V::Sub(V::Load(x + i + L), mv));
    V::Store(x + i, e0);
    V::Store(x + i + L, e1);
    s0 = V::Add(s0, e0);
    s1 = V::Add(s1, e1);
  }
  for (; i + L <= n; i += L) {
    const auto e = Exp<V>(V::Sub(V::Load(x + i), mv));
    V::Store(x + i, e);
    s0 = V::Add(s0, e);
  }
  if (i < n) {
    const auto m = V::TailMask(n - i);
    const auto e = V::Select(m, Exp<V>(V::Sub(V::LoadTail(x + i, m), mv)), V::Zero());
    V::StoreTail(x + i, m, e);
    s1 = V::Add(s1, e);
  }
  return V::ReduceAdd(V::Add(s0, s1));
}

template <class V>
void SoftmaxT(float* x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* xr = x + r * cols;
    const float max = MaxOf<V>(xr, cols);
    if (max == -INFINITY) {
      Map1<V>(xr, xr, cols, [](auto) { return V::Zero(); });
      continue;
    }
    const double sum = ExpShiftSum<V>(xr, cols, max);
    const auto inv = V::Set1(static_cast<float>(1.0 / sum));
    Map1<V>(xr, xr, cols, [&](auto v) { return V::Mul(v, inv); });
  }
}

template <class V>
void SiluMulT(float* out, const float* gate, const float* up, int64_t n) {
  const auto one = V::Set1(1.0f);
  Map2<V>(out, gate, up, n, [&](auto g, auto u) {
    const auto e = Exp<V>(V::Sub(V::Zero(), g));
    return V::Mul(V::Div(g, V::Add(one, e)), u);
  });
}

template <class V>
void GeluTanhMulT(float* out, const float* gate, const float* up, int64_t n) {
  const auto half = V::Set1(0.5f), one = V::Set1(1.0f);
  const auto k = V::Set1(0.79788456080286535587989211986876f), a = V::Set1(0.044715f);
  Map2<V>(out, gate, up, n, [&](auto g, auto u) {
    // Same grouping as the reference: ((k * g) * (1 + (a * g) * g)).
    const auto inner = V::Mul(V::Mul(k, g), V::Add(one, V::Mul(V::Mul(a, g), g)));
    const auto gelu = V::Mul(V::Mul(half, g), V::Add(one, Tanh<V>(inner)));
    return V::Mul(gelu, u);
  });
}

template <class V>
void SoftCapT(float* x, int64_t n, float cap) {
  const auto c = V::Set1(cap), inv = V::Set1(1.0f / cap);
  Map1<V>(x, x, n, [&](auto v) { return V::Mul(c, Tanh<V>(V::Mul(v, inv))); });
}

template <class V>
void AddT(float* out, const float* a, const float* b, int64_t n) {
  Map2<V>(out, a, b, n, [](auto x, auto y) { return V::Add(x, y); });
}

template <class V>
void ScaleT(float* x, int64_t n, float s) {
  const auto sv = V::Set1(s);
  Map1<V>(x, x, n, [&](auto v) { return V::Mul(v, sv); });
}

}  // namespace
}  // namespace atrium::kernels
