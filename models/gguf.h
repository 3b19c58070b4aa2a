// GGUF reader over a memory map. Open() validates the whole header before
// anything is used: magic, version, counts, string and array lengths, value
// types, duplicate keys, general.alignment, every tensor's n_dims, shape,
// type, offset, alignment, overlap and byte size against the file size, with
// overflow-safe arithmetic. Errors name the field and its byte offset.
// Tensor data is used in place (no copy).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/mapped_file.h"
#include "runtime/status.h"

namespace atrium::gguf {

// Stored in files: values are fixed by the GGUF spec.
enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
std::string_view ValueTypeName(ValueType t);

// One metadata value. Scalars are decoded; strings and arrays point into the
// mapped file (valid while the GgufFile lives).
struct Value {
  ValueType type = ValueType::kUint8;
  uint64_t u = 0;        // unsigned integer types and bool
  int64_t i = 0;         // signed integer types
  double f = 0;          // float types
  std::string_view str;  // kString
  // kArray: element type, count, and for non-string arrays the packed
  // little-endian elements; for string arrays the decoded views.
  ValueType array_type = ValueType::kUint8;
  uint64_t array_count = 0;
  const uint8_t* array_data = nullptr;
  std::vector<std::string_view> array_strings;
  uint64_t file_offset = 0;  // where the value starts, for messages
};

struct TensorInfo {
  std::string name;
  DType type = DType::kF32;
  // GGUF order: dims[0] is the contiguous (row) length; a 2-D weight of
  // n_out rows by n_in columns is dims = {n_in, n_out}.
  std::vector<int64_t> dims;
  int64_t n_elements = 0;
  uint64_t offset = 0;           // relative to the data section, as stored
  const uint8_t* data = nullptr;  // into the map
  uint64_t n_bytes = 0;
};

class GgufFile {
 public:
  // mmaps and validates `path`.
  static StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Validates an in-memory image; `data` must outlive the result. `name` is
  // used in messages. For tests and fuzzing.
  static StatusOr<std::unique_ptr<GgufFile>> FromBuffer(std::string name, const uint8_t* data,
                                                        size_t size);

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const uint8_t* base() const { return base_; }
  size_t size() const { return size_; }
  // The map, shared with tensors and models that keep pointers into it
  // (null for FromBuffer).
  const std::shared_ptr<MappedFile>& mapped() const { return map_; }

  // ---- Metadata. Typed getters give NOT_FOUND for a missing key and
  // INVALID_ARGUMENT ("key 'x' at byte N is a string, expected an integer")
  // for a wrong type.
  const std::vector<std::string>& keys() const { return key_order_; }
  const Value* Find(std::string_view key) const;
  bool Has(std::string_view key) const { return Find(key) != nullptr; }
  StatusOr<std::string> GetString(std::string_view key) const;
  // Any integer type whose value fits; bool is not an integer.
  StatusOr<int64_t> GetInt(std::string_view key) const;
  // float32 / float64, or an integer type.
  StatusOr<double> GetFloat(std::string_view key) const;
  StatusOr<bool> GetBool(std::string_view key) const;
  StatusOr<std::vector<std::string_view>> GetStringArray(std::string_view key) const;
  StatusOr<std::vector<float>> GetFloatArray(std::string_view key) const;
  // Any integer element type.
  StatusOr<std::vector<int64_t>> GetIntArray(std::string_view key) const;
  // Defaults when the key is absent (a wrong type is still an error).
  StatusOr<std::string> GetStringOr(std::string_view key, std::string fallback) const;
  StatusOr<int64_t> GetIntOr(std::string_view key, int64_t fallback) const;
  StatusOr<double> GetFloatOr(std::string_view key, double fallback) const;
  StatusOr<bool> GetBoolOr(std::string_view key, bool fallback) const;

  // ---- Tensors, in file order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* FindTensor(std::string_view name) const;

 private:
  GgufFile() = default;
  Status Parse();

  std::string name_;
  std::shared_ptr<MappedFile> map_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  std::vector<std::string> key_order_;
  std::unordered_map<std::string, Value> values_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace atrium::gguf
