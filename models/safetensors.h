// safetensors reader over a memory map. Open() validates everything before
// use: the 8-byte little-endian header length (capped at 100 MiB), the JSON
// header, each tensor's dtype, shape and data_offsets, and that the offsets
// tile the data section exactly (no gaps, no overlap, nothing past the end).
// Tensor data is used in place; note that it is only byte-aligned (the data
// section starts at 8 + header length), so read it with memcpy or convert.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/mapped_file.h"
#include "runtime/status.h"

namespace atrium::safetensors {

// The safetensors header is a JSON object; more than this is not a model.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct Tensor {
  std::string name;
  DType type = DType::kF32;  // F32, F16 or BF16
  // GGUF order, i.e. safetensors' row-major shape reversed: dims[0] is the
  // contiguous length. A scalar (shape []) has no dims and one element.
  std::vector<int64_t> dims;
  int64_t n_elements = 0;
  const uint8_t* data = nullptr;  // into the map; byte-aligned only
  uint64_t n_bytes = 0;
  uint64_t offset = 0;  // data_offsets[0], relative to the data section
};

class SafetensorsFile {
 public:
  static StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  // Validates an in-memory image; `data` must outlive the result. `name` is
  // used in messages.
  static StatusOr<std::unique_ptr<SafetensorsFile>> FromBuffer(std::string name,
                                                               const uint8_t* data, size_t size);

  const std::string& name() const { return name_; }
  const std::shared_ptr<MappedFile>& mapped() const { return map_; }  // null for FromBuffer
  // Tensors in data order (by offset).
  const std::vector<Tensor>& tensors() const { return tensors_; }
  const Tensor* Find(std::string_view name) const;
  // The optional "__metadata__" string map.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Where the data section starts in the file (8 + header length).
  uint64_t data_start() const { return data_start_; }

 private:
  SafetensorsFile() = default;
  Status Parse(const uint8_t* data, size_t size);

  std::string name_;
  std::shared_ptr<MappedFile> map_;
  uint64_t data_start_ = 0;
  std::vector<Tensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace atrium::safetensors
