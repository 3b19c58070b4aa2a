// The one list of CPU ops: math on raw pointers, sizes and strides. Outputs
// first, the caller allocates. Every op has a scalar reference (kernels/ref/)
// that is the test oracle, and AVX2 / AVX-512 versions (kernels/cpu/) chosen
// once at start-up by CPUID.
//
// Dimension names: n_tokens (rows of activations), dim / n_in (row length),
// n_heads, n_kv_heads, head_dim, n_kv (keys in the cache).
#pragma once

#include <cstdint>

#include "runtime/dtype.h"
#include "runtime/work_claims.h"

namespace atrium::kernels {

// kAmx: the AVX-512 table with packed matmuls on AMX int8 tiles.
enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAmx = 3 };
const char* IsaName(Isa isa);

// kNormal rotates pairs (2i, 2i+1) (GGML rope mode 0, llama);
// kNeox rotates pairs (i, i + rot_dim/2) (GGML mode 2, gemma, qwen2).
enum class RopeLayout : int { kNormal = 0, kNeox = 2 };

// The type activations are quantized to before a dot product with a row of
// weight type `weight` (GGML's vec_dot_type): Q4_0/Q5_0/Q8_0 -> Q8_0,
// Q4_1/Q5_1 -> Q8_1, K-quants -> Q8_K, F32/F16/BF16 -> F32 (no quantization).
DType DotPartner(DType weight);

// The attention call a thread makes next: kv head kv_head of a cache with
// the same kv_type, kv_stride, block_tokens and window as the current call
// (k and v its layer's arrays, as the call takes them), its first query
// position and its keys. The kernel prefetches the keys that query sees.
// Decode reads a few blocks of keys per call; without this hint the first
// block of each call comes from memory with nothing to overlap it.
struct AttentionNext {
  const void* k = nullptr;
  const void* v = nullptr;
  const int32_t* blocks = nullptr;  // null: contiguous
  int64_t q_pos0 = 0;
  int64_t n_kv = 0;  // 0: nothing follows
  int64_t kv_head = 0;
};

// Function table of one instruction set. Every entry is always set: an ISA
// table starts as a copy of the scalar one and overrides what it speeds up.
struct CpuKernels {
  Isa isa;
  const char* name;

  // ---- Quantization (GGML block layouts, bit for bit). n is a multiple of
  // the type's block size.
  // x [n] -> dst (a row of `type`). Supports at least the dot partners
  // (Q8_0, Q8_1, Q8_K), F32/F16/BF16, and Q4_0 Q4_1 Q5_0 Q8_0 Q4_K Q5_K Q6_K
  // (a simple quantizer: it need not match GGML's choice of scales).
  void (*quantize_row)(DType type, void* dst, const float* x, int64_t n);
  // src (a row of `type`) -> out [n]. Every type of kernels::DotPartner's domain.
  void (*dequantize_row)(DType type, float* out, const void* src, int64_t n);
  // Dot product of a weight row (type wtype) with an activation row already
  // converted to DotPartner(wtype).
  float (*vec_dot)(DType wtype, const void* w_row, const void* x_row, int64_t n);
  // out[t * ldo + r] = vec_dot(W row r, x row t) for r in [row_begin, row_end)
  // and t in [0, n_tokens). w: [n_out rows, n_in] of wtype, rows contiguous;
  // x: n_tokens rows of DotPartner(wtype), x_stride bytes apart.
  void (*matmul_rows)(float* out, int64_t ldo, const void* w, DType wtype, int64_t n_in,
                      const void* x, int64_t x_stride, int64_t n_tokens, int64_t row_begin,
                      int64_t row_end);

  // ---- Weights repacked once at load (optional per ISA and type). A
  // packed matrix gives bit-identical results to matmul_rows on the
  // original, for every batch size, and is no larger than the original.
  // Bytes of the packed form of [n_rows, n_in] of wtype; 0 = none here.
  int64_t (*packed_bytes)(DType wtype, int64_t n_rows, int64_t n_in);
  // dst (packed_bytes, 64-byte aligned) <- w.
  void (*pack_rows)(void* dst, const void* w, DType wtype, int64_t n_rows, int64_t n_in);
  // matmul_rows over a packed matrix; row_begin a multiple of 16.
  void (*matmul_packed)(float* out, int64_t ldo, const void* packed, DType wtype, int64_t n_in,
                        const void* x, int64_t x_stride, int64_t n_tokens, int64_t row_begin,
                        int64_t row_end);
  // matmul_packed over all n_rows rows, by every thread of a pool at once:
  // each calls it with the same claims, over the matrix's 16-row tiles, and
  // takes tiles from them until none are left. The activations are prepared
  // once per thread, not per chunk, and a thread prefetches its next chunk's
  // first tile. Results bit for bit as matmul_packed's. same_x: x holds
  // the same activations as this thread's previous call here (another
  // weight of one input, as q, k and v are), so what that call prepared
  // from them may serve again.
  void (*matmul_packed_claimed)(float* out, int64_t ldo, const void* packed, DType wtype, int64_t n_in,
                                const void* x, int64_t x_stride, int64_t n_tokens, int64_t n_rows,
                                WorkClaims& claims, bool same_x);

  // ---- Float ops.
  // out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w (w may be null: no weight).
  // Rows of `dim` contiguous floats; out may alias x.
  void (*rms_norm)(float* out, const float* x, const float* w, float eps, int64_t rows,
                   int64_t dim);
  // In place on x: [n_tokens][n_heads][head_dim], token rows `row_stride`
  // floats apart, heads head_dim apart. Token t has position pos[t]. The first
  // rot_dim dims of each head are rotated, the rest left alone. Angles follow
  // GGML exactly: theta_0 = pos * freq_scale, theta_{i+1} = theta_i *
  // powf(freq_base, -2.0f / rot_dim), in float.
  void (*rope)(float* x, int64_t n_tokens, int64_t n_heads, int64_t head_dim, int64_t row_stride,
               const int32_t* pos, int64_t rot_dim, float freq_base, float freq_scale,
               RopeLayout layout);
  // In place, each row: x = exp(x - max) / sum. -INFINITY entries become 0.
  void (*softmax)(float* x, int64_t rows, int64_t cols);
  // out = silu(gate) * up; out may alias gate or up.
  void (*silu_mul)(float* out, const float* gate, const float* up, int64_t n);
  // out = gelu_tanh(gate) * up (the tanh approximation); out may alias.
  void (*gelu_tanh_mul)(float* out, const float* gate, const float* up, int64_t n);
  // x = cap * tanh(x / cap), in place.
  void (*soft_cap)(float* x, int64_t n, float cap);
  // out = a + b; out may alias a or b.
  void (*add)(float* out, const float* a, const float* b, int64_t n);
  // x *= s, in place.
  void (*scale)(float* x, int64_t n, float s);
  // Causal grouped-query attention of n_tokens query tokens of one sequence,
  // at positions q_pos0, q_pos0+1, ..., over keys 0..n_kv-1 where key j has
  // position j. q: [n_tokens, n_heads * head_dim] rows q_stride floats apart;
  // k, v: rows of n_kv_heads * head_dim elements of kv_type (kF32, kF16, or
  // kQ8_0 in the layout of kernels/kv_q8.h, with head_dim and kv_stride
  // multiples of 32, block_tokens of 16, and a contiguous cache's rows in
  // whole groups of 16), kv_stride elements apart, where key j is row j
  // when blocks is null, else (a paged cache) row
  // blocks[j / block_tokens] * block_tokens + j % block_tokens;
  // out: [n_tokens, n_heads * head_dim] rows out_stride floats apart.
  // Query head h reads kv head h / (n_heads / n_kv_heads). Key j is visible to
  // a query at position p iff j <= p and (window == 0 || p - j < window).
  // score = scale * dot(q, k); if softcap > 0, score = softcap * tanh(score / softcap).
  // With a q8_0 cache q is quantized to q8_0 in two levels first
  // (kernels/kv_q8.h's KvQ8QuantizeQuery), and dot(q, k) is the sum over
  // blocks and levels of d_q d_k times the integer dot product of their quants.
  // Only heads [head_begin, head_end) are computed (threads split by head).
  // scratch: at least n_kv floats, owned by the calling thread.
  // next (may be null): the first keys of the call this thread makes next,
  // which the kernel may prefetch while it computes its own last keys.
  void (*attention)(float* out, int64_t out_stride, const float* q, int64_t q_stride,
                    const void* k, const void* v, DType kv_type, int64_t kv_stride,
                    const int32_t* blocks, int64_t block_tokens, int64_t n_tokens,
                    int64_t q_pos0, int64_t n_kv, int64_t n_heads, int64_t n_kv_heads,
                    int64_t head_dim, float scale, float softcap, int64_t window,
                    int64_t head_begin, int64_t head_end, float* scratch, const AttentionNext* next);
};

// The best table for this CPU, chosen once. The environment variable
// ATRIUM_ISA=scalar|avx2|avx512|amx may lower (never raise) the choice.
const CpuKernels& Cpu();
// The table of one ISA, or nullptr when it is not compiled in or this CPU
// lacks it. Tests use it to compare every ISA with the scalar one.
const CpuKernels* CpuFor(Isa isa);
// What this CPU supports (CPUID): kAmx needs kAvx512, AMX-TILE and
// AMX-INT8, and the kernel's leave to use the tile state (arch_prctl);
// kAvx512 needs F, BW, DQ, VL and VNNI; kAvx2 needs AVX2, FMA and F16C.
Isa DetectIsa();

}  // namespace atrium::kernels
