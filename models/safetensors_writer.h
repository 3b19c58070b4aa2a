// Writes safetensors files: tests build tiny checkpoints with it, and adapter
// export (PEFT safetensors) can reuse it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/status.h"

namespace atrium::safetensors {

class SafetensorsWriter {
 public:
  // dims in GGUF order (dims[0] contiguous); written reversed as the
  // row-major shape. type is F32, F16 or BF16; data.size() must match
  // (ATRIUM_CHECK: a caller bug otherwise).
  void Add(const std::string& name, DType type, const std::vector<int64_t>& dims,
           std::vector<uint8_t> data);
  // f32 values stored as `type` (F32, F16 or BF16).
  void AddF32(const std::string& name, DType type, const std::vector<int64_t>& dims,
              const std::vector<float>& values);
  void SetMetadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  // Tensors are laid out in the order added; the header is padded with
  // spaces to a multiple of 8 bytes, as the reference writer does.
  std::vector<uint8_t> Serialize() const;
  Status WriteFile(const std::string& path) const;

 private:
  struct Entry {
    std::string name;
    DType type;
    std::vector<int64_t> dims;
    std::vector<uint8_t> data;
  };
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace atrium::safetensors
