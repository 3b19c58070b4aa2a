// Tensor: shape, strides, dtype, device and storage. Storage is either owned
// (64-byte aligned, allocated here) or a read-only view into memory that
// something else keeps alive (a memory-mapped model file). No math here.
//
// Shapes are row-major, outermost first: a weight matrix of n_out rows by
// n_in columns is shape {n_out, n_in}, the reverse of GGUF's dims order.
// Strides are in bytes; a quantized row is one unit (it cannot be sliced).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/status.h"

namespace atrium {

// Stored in checkpoints and sent between processes: append-only.
enum class Device : int { kCpu = 0, kCuda = 1 };

class Tensor {
 public:
  Tensor() = default;

  // Owned, uninitialized storage (pages are not touched until written).
  static Tensor Empty(DType dtype, std::vector<int64_t> shape, Device device = Device::kCpu);
  static Tensor Zeros(DType dtype, std::vector<int64_t> shape);
  // Read-only view of contiguous data kept alive by `keepalive`.
  static Tensor View(DType dtype, std::vector<int64_t> shape, const void* data,
                     std::shared_ptr<const void> keepalive, Device device = Device::kCpu);

  // Writable, non-owning view of memory that outlives the tensor (a KV
  // cache row block, a caller's buffer).
  static Tensor Wrap(DType dtype, std::vector<int64_t> shape, void* data);

  bool defined() const { return data_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  const std::vector<int64_t>& strides() const { return strides_; }  // bytes
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_[i < 0 ? shape_.size() + i : i]; }
  int64_t numel() const;
  // Last dimension and the product of the others: the 2-D view every op uses.
  int64_t cols() const { return shape_.empty() ? 1 : shape_.back(); }
  int64_t rows() const { return cols() == 0 ? 0 : numel() / cols(); }
  int64_t row_bytes() const { return RowBytes(dtype_, cols()); }
  int64_t nbytes() const { return rows() * row_bytes(); }
  bool read_only() const { return read_only_; }
  bool contiguous() const;

  const void* raw() const { return data_; }
  void* mutable_raw() {
    ATRIUM_CHECK(!read_only_, "write access to a read-only tensor");
    return data_;
  }
  template <typename T>
  const T* data() const { return static_cast<const T*>(data_); }
  template <typename T>
  T* mutable_data() { return static_cast<T*>(mutable_raw()); }
  // Pointer to row r of the 2-D view.
  const uint8_t* row(int64_t r) const { return static_cast<const uint8_t*>(data_) + r * row_bytes(); }

  // A view of rows [begin, end) of the 2-D view, sharing storage.
  Tensor Rows(int64_t begin, int64_t end) const;
  // Same storage, new shape with the same number of elements (contiguous only).
  Tensor Reshape(std::vector<int64_t> shape) const;

  std::string ShapeString() const;  // "[576, 1536] q4_1"

  // A weight matrix may carry a copy packed once for this CPU's kernels
  // (kernels' pack_rows): same values, a layout the matmul reads faster.
  const void* packed() const { return packed_.get(); }
  void set_packed(std::shared_ptr<const void> packed) { packed_ = std::move(packed); }

 private:
  void SetContiguousStrides();

  DType dtype_ = DType::kF32;
  Device device_ = Device::kCpu;
  std::vector<int64_t> shape_;
  std::vector<int64_t> strides_;
  void* data_ = nullptr;
  std::shared_ptr<const void> packed_;
  bool read_only_ = false;
  std::shared_ptr<const void> storage_;
};

}  // namespace atrium
