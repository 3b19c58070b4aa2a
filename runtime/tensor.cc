#include "runtime/tensor.h"

#include <cstdlib>
#include <cstring>

namespace atrium {

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

void Tensor::SetContiguousStrides() {
  strides_.assign(shape_.size(), 0);
  if (shape_.empty()) return;
  int64_t stride = RowBytes(dtype_, shape_.back());
  strides_.back() = Info(dtype_).block_bytes / Info(dtype_).block_size;
  for (int i = static_cast<int>(shape_.size()) - 2; i >= 0; --i) {
    strides_[i] = stride;
    stride *= shape_[i];
  }
}

bool Tensor::contiguous() const {
  if (shape_.empty()) return true;
  int64_t stride = RowBytes(dtype_, shape_.back());
  for (int i = static_cast<int>(shape_.size()) - 2; i >= 0; --i) {
    if (strides_[i] != stride) return false;
    stride *= shape_[i];
  }
  return true;
}

Tensor Tensor::Empty(DType dtype, std::vector<int64_t> shape, Device device) {
  ATRIUM_CHECK(device == Device::kCpu, "only CPU storage is allocated here");
  Tensor t;
  t.dtype_ = dtype;
  t.device_ = device;
  t.shape_ = std::move(shape);
  for (int64_t d : t.shape_) ATRIUM_CHECK(d >= 0, "negative dimension");
  ATRIUM_CHECK(t.cols() % Info(dtype).block_size == 0, "row of %lld is not whole blocks",
               static_cast<long long>(t.cols()));
  t.SetContiguousStrides();
  const size_t bytes = static_cast<size_t>(t.nbytes());
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  ATRIUM_CHECK(p != nullptr, "out of memory allocating %zu bytes", rounded);
  t.storage_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  t.data_ = p;
  return t;
}

Tensor Tensor::Zeros(DType dtype, std::vector<int64_t> shape) {
  Tensor t = Empty(dtype, std::move(shape));
  std::memset(t.data_, 0, static_cast<size_t>(t.nbytes()));
  return t;
}

Tensor Tensor::View(DType dtype, std::vector<int64_t> shape, const void* data,
                    std::shared_ptr<const void> keepalive, Device device) {
  Tensor t;
  t.dtype_ = dtype;
  t.device_ = device;
  t.shape_ = std::move(shape);
  t.SetContiguousStrides();
  t.data_ = const_cast<void*>(data);
  t.read_only_ = true;
  t.storage_ = std::move(keepalive);
  return t;
}

Tensor Tensor::Wrap(DType dtype, std::vector<int64_t> shape, void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.SetContiguousStrides();
  t.data_ = data;
  return t;
}

Tensor Tensor::Rows(int64_t begin, int64_t end) const {
  ATRIUM_CHECK(0 <= begin && begin <= end && end <= rows(), "rows [%lld, %lld) of %lld",
               static_cast<long long>(begin), static_cast<long long>(end),
               static_cast<long long>(rows()));
  Tensor t = *this;
  t.shape_ = {end - begin, cols()};
  t.SetContiguousStrides();
  t.data_ = static_cast<uint8_t*>(data_) + begin * row_bytes();
  return t;
}

Tensor Tensor::Reshape(std::vector<int64_t> shape) const {
  ATRIUM_CHECK(contiguous(), "reshape of a strided tensor");
  Tensor t = *this;
  t.shape_ = std::move(shape);
  ATRIUM_CHECK(t.numel() == numel(), "reshape changes the element count");
  t.SetContiguousStrides();
  return t;
}

std::string Tensor::ShapeString() const {
  std::string s = "[";
  for (size_t i = 0; i < shape_.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape_[i]);
  }
  s += "] ";
  s += DTypeName(dtype_);
  return s;
}

}  // namespace atrium
