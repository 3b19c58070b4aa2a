// Writes GGUF v3 files. Tests use it to build tiny random models and, with
// the raw hooks, malformed files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/gguf.h"
#include "runtime/dtype.h"
#include "runtime/status.h"

namespace atrium::gguf {

class GgufWriter {
 public:
  void SetUint32(const std::string& key, uint32_t v);
  void SetInt32(const std::string& key, int32_t v);
  void SetUint64(const std::string& key, uint64_t v);
  void SetFloat32(const std::string& key, float v);
  void SetBool(const std::string& key, bool v);
  void SetString(const std::string& key, const std::string& v);
  void SetStringArray(const std::string& key, const std::vector<std::string>& v);
  void SetFloat32Array(const std::string& key, const std::vector<float>& v);
  void SetInt32Array(const std::string& key, const std::vector<int32_t>& v);
  // Raw hook for malformed-file tests: `type` is written as is, followed by
  // `value` (the encoded value bytes, unchecked).
  void SetRaw(const std::string& key, uint32_t type, std::vector<uint8_t> value);
  // general.alignment (default 32).
  void SetAlignment(uint32_t alignment);

  // dims in GGUF order (dims[0] = row length). data.size() must equal the
  // byte size the type and dims imply (ATRIUM_CHECK: a test bug otherwise).
  void AddTensor(const std::string& name, DType type, const std::vector<int64_t>& dims,
                 std::vector<uint8_t> data);
  // Convenience: f32 values, stored as `type` (converted with the scalar
  // quantizer of kernels/ for quantized types).
  void AddTensorF32(const std::string& name, DType type, const std::vector<int64_t>& dims,
                    const std::vector<float>& values);

  std::vector<uint8_t> Serialize() const;
  Status WriteFile(const std::string& path) const;

 private:
  struct Kv {
    std::string key;
    std::vector<uint8_t> encoded;  // type + value, already serialized
  };
  struct Tensor {
    std::string name;
    DType type;
    std::vector<int64_t> dims;
    std::vector<uint8_t> data;
  };
  void PutKv(const std::string& key, std::vector<uint8_t> encoded);
  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
  uint32_t alignment_ = 32;
};

}  // namespace atrium::gguf
