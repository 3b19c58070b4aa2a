// Element types. Values are the GGML type ids, so a GGUF tensor's type field
// maps to DType without a table; they are stored on disk, so append-only.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace atrium {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

struct DTypeInfo {
  DType type;
  std::string_view name;  // "q4_k", as GGUF tools print it
  int64_t block_size;     // elements per block (1 for plain types)
  int64_t block_bytes;    // bytes per block
  bool quantized;
};

// Info for a known type; nullopt for an id this build does not know (a file
// from a newer writer, or corruption).
std::optional<DTypeInfo> GetDTypeInfo(uint32_t raw_type);
const DTypeInfo& Info(DType type);  // type must be known (ATRIUM_CHECK)
std::string_view DTypeName(DType type);

// Bytes of a row of n elements; n must be a multiple of the block size.
inline int64_t RowBytes(DType type, int64_t n) {
  const DTypeInfo& info = Info(type);
  return n / info.block_size * info.block_bytes;
}

// IEEE half and bfloat16 conversions (round to nearest even).
float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);
inline float BF16ToF32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
uint16_t F32ToBF16(float f);

}  // namespace atrium
