#include "models/gguf_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "kernels/kernels.h"

namespace atrium::gguf {
namespace {

template <typename T>
void Put(std::vector<uint8_t>& out, T v) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

void PutString(std::vector<uint8_t>& out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

void PutType(std::vector<uint8_t>& out, ValueType t) { Put<uint32_t>(out, static_cast<uint32_t>(t)); }

template <typename T>
std::vector<uint8_t> Scalar(ValueType t, T v) {
  std::vector<uint8_t> out;
  PutType(out, t);
  Put<T>(out, v);
  return out;
}

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

int64_t ElementCount(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

}  // namespace

void GgufWriter::PutKv(const std::string& key, std::vector<uint8_t> encoded) {
  for (Kv& kv : kvs_) {
    if (kv.key == key) {
      kv.encoded = std::move(encoded);
      return;
    }
  }
  kvs_.push_back({key, std::move(encoded)});
}

void GgufWriter::SetUint32(const std::string& key, uint32_t v) {
  PutKv(key, Scalar(ValueType::kUint32, v));
}
void GgufWriter::SetInt32(const std::string& key, int32_t v) {
  PutKv(key, Scalar(ValueType::kInt32, v));
}
void GgufWriter::SetUint64(const std::string& key, uint64_t v) {
  PutKv(key, Scalar(ValueType::kUint64, v));
}
void GgufWriter::SetFloat32(const std::string& key, float v) {
  PutKv(key, Scalar(ValueType::kFloat32, v));
}
void GgufWriter::SetBool(const std::string& key, bool v) {
  PutKv(key, Scalar<uint8_t>(ValueType::kBool, v ? 1 : 0));
}
void GgufWriter::SetString(const std::string& key, const std::string& v) {
  std::vector<uint8_t> e;
  PutType(e, ValueType::kString);
  PutString(e, v);
  PutKv(key, std::move(e));
}
void GgufWriter::SetStringArray(const std::string& key, const std::vector<std::string>& v) {
  std::vector<uint8_t> e;
  PutType(e, ValueType::kArray);
  PutType(e, ValueType::kString);
  Put<uint64_t>(e, v.size());
  for (const std::string& s : v) PutString(e, s);
  PutKv(key, std::move(e));
}
void GgufWriter::SetFloat32Array(const std::string& key, const std::vector<float>& v) {
  std::vector<uint8_t> e;
  PutType(e, ValueType::kArray);
  PutType(e, ValueType::kFloat32);
  Put<uint64_t>(e, v.size());
  for (float x : v) Put<float>(e, x);
  PutKv(key, std::move(e));
}
void GgufWriter::SetInt32Array(const std::string& key, const std::vector<int32_t>& v) {
  std::vector<uint8_t> e;
  PutType(e, ValueType::kArray);
  PutType(e, ValueType::kInt32);
  Put<uint64_t>(e, v.size());
  for (int32_t x : v) Put<int32_t>(e, x);
  PutKv(key, std::move(e));
}
void GgufWriter::SetRaw(const std::string& key, uint32_t type, std::vector<uint8_t> value) {
  std::vector<uint8_t> e;
  Put<uint32_t>(e, type);
  e.insert(e.end(), value.begin(), value.end());
  PutKv(key, std::move(e));
}

void GgufWriter::SetAlignment(uint32_t alignment) {
  ATRIUM_CHECK(alignment != 0 && (alignment & (alignment - 1)) == 0,
               "alignment %u is not a power of two", alignment);
  alignment_ = alignment;
  SetUint32("general.alignment", alignment);
}

void GgufWriter::AddTensor(const std::string& name, DType type, const std::vector<int64_t>& dims,
                           std::vector<uint8_t> data) {
  ATRIUM_CHECK(!dims.empty() && dims.size() <= 4, "tensor %s: %zu dims", name.c_str(),
               dims.size());
  for (int64_t d : dims) ATRIUM_CHECK(d > 0, "tensor %s: dim %lld", name.c_str(), (long long)d);
  const DTypeInfo& info = Info(type);
  ATRIUM_CHECK(dims[0] % info.block_size == 0, "tensor %s: dims[0] %lld not a multiple of %lld",
               name.c_str(), (long long)dims[0], (long long)info.block_size);
  const uint64_t expected = static_cast<uint64_t>(RowBytes(type, dims[0])) *
                            static_cast<uint64_t>(ElementCount(dims) / dims[0]);
  ATRIUM_CHECK(data.size() == expected, "tensor %s: %zu bytes of data, %s %lld elements need %llu",
               name.c_str(), data.size(), std::string(info.name).c_str(),
               (long long)ElementCount(dims), (unsigned long long)expected);
  tensors_.push_back({name, type, dims, std::move(data)});
}

void GgufWriter::AddTensorF32(const std::string& name, DType type,
                              const std::vector<int64_t>& dims, const std::vector<float>& values) {
  ATRIUM_CHECK(!dims.empty(), "tensor %s: no dims", name.c_str());
  const int64_t n = ElementCount(dims);
  ATRIUM_CHECK(static_cast<int64_t>(values.size()) == n, "tensor %s: %zu values for %lld elements",
               name.c_str(), values.size(), (long long)n);
  const int64_t row = dims[0];
  const int64_t rows = n / row;
  const int64_t row_bytes = RowBytes(type, row);
  std::vector<uint8_t> data(static_cast<size_t>(row_bytes * rows));
  if (type == DType::kF32) {
    std::memcpy(data.data(), values.data(), data.size());
  } else {
    // The scalar quantizer is the reference; rows are quantized one by one
    // so a K-quant super-block never spans two rows.
    const kernels::CpuKernels* cpu = kernels::CpuFor(kernels::Isa::kScalar);
    ATRIUM_CHECK(cpu != nullptr && cpu->quantize_row != nullptr, "no scalar quantizer");
    for (int64_t r = 0; r < rows; ++r) {
      cpu->quantize_row(type, data.data() + r * row_bytes, values.data() + r * row, row);
    }
  }
  AddTensor(name, type, dims, std::move(data));
}

std::vector<uint8_t> GgufWriter::Serialize() const {
  std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
  Put<uint32_t>(out, 3);
  Put<uint64_t>(out, tensors_.size());
  Put<uint64_t>(out, kvs_.size());
  for (const Kv& kv : kvs_) {
    PutString(out, kv.key);
    out.insert(out.end(), kv.encoded.begin(), kv.encoded.end());
  }
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const Tensor& t : tensors_) {
    PutString(out, t.name);
    Put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) Put<uint64_t>(out, static_cast<uint64_t>(d));
    Put<uint32_t>(out, static_cast<uint32_t>(t.type));
    Put<uint64_t>(out, offset);
    offsets.push_back(offset);
    offset = AlignUp(offset + t.data.size(), alignment_);
  }
  if (tensors_.empty()) return out;
  out.resize(AlignUp(out.size(), alignment_), 0);
  const size_t data_start = out.size();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    out.resize(data_start + offsets[i], 0);
    out.insert(out.end(), tensors_[i].data.begin(), tensors_[i].data.end());
  }
  // Pad the last tensor too, as GGML's writer does.
  out.resize(AlignUp(out.size(), alignment_), 0);
  return out;
}

Status GgufWriter::WriteFile(const std::string& path) const {
  const std::vector<uint8_t> bytes = Serialize();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return InvalidArgument(StrFormat("%s: cannot create: %s", path.c_str(), std::strerror(errno)));
  }
  const size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const bool ok = written == bytes.size() && std::fclose(f) == 0;
  if (!ok) {
    if (written != bytes.size()) std::fclose(f);
    return InvalidArgument(StrFormat("%s: write failed: %s", path.c_str(), std::strerror(errno)));
  }
  return OkStatus();
}

}  // namespace atrium::gguf
