// GGML quantization block layouts, bit for bit (ggml-common.h). Scales are
// IEEE half floats stored as raw uint16_t; convert with F16ToF32. Sizes must
// equal runtime/dtype.cc's table, which the static_asserts pin.
//
// Blocks are packed (alignment 1): rows of a GGUF tensor, of a safetensors
// file or of a caller's buffer may start at any byte, and reading a field of
// a misaligned struct is undefined behaviour otherwise. The packing adds no
// bytes (the layouts have no padding) and x86 loads are unaligned anyway.
#pragma once

#include <cstdint>

namespace atrium::kernels {

constexpr int kQK = 32;    // elements per block of the 32-element types
constexpr int kQK_K = 256; // elements per super-block of the K-quants

// x = d * (q - 8), q a nibble; qs[j] low nibble is element j, high nibble j+16.
struct __attribute__((packed)) BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// x = d * q + m.
struct __attribute__((packed)) BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
// x = d * ((q | h << 4) - 16); bit j of qh (little-endian uint32) is h of element j.
struct __attribute__((packed)) BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// x = d * (q | h << 4) + m.
struct __attribute__((packed)) BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct __attribute__((packed)) BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
// s = d * sum(qs), stored to save the sum in Q4_1/Q5_1 dot products.
struct __attribute__((packed)) BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQK];
};
// 8 sub-blocks of 32: x = d * sc * q - dmin * m, with 6-bit sc and m packed
// in scales[12] (see DecodeScalesQ4K in kernels/ref/quant.cc). qs[32*p + l]
// holds element 64p + l (low nibble) and 64p + 32 + l (high nibble).
struct __attribute__((packed)) BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
// As Q4_K; bit 2p of qh[l] is the fifth bit of element 64p + l, bit 2p+1 of
// element 64p + 32 + l.
struct __attribute__((packed)) BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
// 16 sub-blocks of 16: x = d * scales[i] * (q - 32), q six bits split into
// ql (low four) and qh (high two).
struct __attribute__((packed)) BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
// The activation partner of the K-quants: d is a float, bsums[i] the sum of
// qs[16i .. 16i+15].
struct __attribute__((packed)) BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

}  // namespace atrium::kernels
