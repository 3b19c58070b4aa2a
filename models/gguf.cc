#include "models/gguf.h"

#include <algorithm>
#include <cinttypes>
#include <cstring>
#include <limits>

namespace atrium::gguf {
namespace {

constexpr uint32_t kMinVersion = 2;
constexpr uint32_t kMaxVersion = 3;
constexpr int kMaxDims = 4;
// The fewest bytes one header record can take, used to bound the counts by
// what the rest of the file can hold before anything is reserved.
// key: u64 length + >= 1 byte + u32 type + >= 1 byte of value.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
// tensor: u64 name length + >= 1 byte + u32 n_dims + >= 1 u64 dim + u32 type + u64 offset.
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

// Bytes of one element of a scalar value type; 0 for string, array and
// unknown types.
uint64_t ScalarSize(uint32_t t) {
  switch (static_cast<ValueType>(t)) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kBool: return 1;
    case ValueType::kUint16:
    case ValueType::kInt16: return 2;
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kFloat32: return 4;
    case ValueType::kUint64:
    case ValueType::kInt64:
    case ValueType::kFloat64: return 8;
    case ValueType::kString:
    case ValueType::kArray: return 0;
  }
  return 0;
}

bool IsKnownType(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::kFloat64); }

bool IsIntegerType(ValueType t) {
  switch (t) {
    case ValueType::kUint8:
    case ValueType::kInt8:
    case ValueType::kUint16:
    case ValueType::kInt16:
    case ValueType::kUint32:
    case ValueType::kInt32:
    case ValueType::kUint64:
    case ValueType::kInt64: return true;
    default: return false;
  }
}

bool IsUnsignedType(ValueType t) {
  return t == ValueType::kUint8 || t == ValueType::kUint16 || t == ValueType::kUint32 ||
         t == ValueType::kUint64 || t == ValueType::kBool;
}

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Decodes a scalar of type t at p (ScalarSize(t) bytes available).
void DecodeScalar(ValueType t, const uint8_t* p, Value* v) {
  switch (t) {
    case ValueType::kUint8: v->u = Load<uint8_t>(p); break;
    case ValueType::kBool: v->u = Load<uint8_t>(p); break;
    case ValueType::kInt8: v->i = Load<int8_t>(p); break;
    case ValueType::kUint16: v->u = Load<uint16_t>(p); break;
    case ValueType::kInt16: v->i = Load<int16_t>(p); break;
    case ValueType::kUint32: v->u = Load<uint32_t>(p); break;
    case ValueType::kInt32: v->i = Load<int32_t>(p); break;
    case ValueType::kFloat32: v->f = Load<float>(p); break;
    case ValueType::kUint64: v->u = Load<uint64_t>(p); break;
    case ValueType::kInt64: v->i = Load<int64_t>(p); break;
    case ValueType::kFloat64: v->f = Load<double>(p); break;
    default: break;
  }
}

// Integer element `idx` of a packed array as int64; false when an unsigned
// value does not fit.
bool IntElement(ValueType t, const uint8_t* data, uint64_t idx, int64_t* out) {
  Value v;
  DecodeScalar(t, data + idx * ScalarSize(static_cast<uint32_t>(t)), &v);
  if (IsUnsignedType(t)) {
    if (v.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    *out = static_cast<int64_t>(v.u);
  } else {
    *out = v.i;
  }
  return true;
}

std::string Quote(std::string_view s) {
  // Names come from the file: show at most 80 bytes, printable ASCII only.
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += StrFormat("\\x%02x", c);
    }
  }
  if (s.size() > 80) out += "...";
  return out + "'";
}

// Sequential reader over the image. Every read checks the bytes remain and
// produces "<file>: <context>: <field> at byte N: <problem>".
class Parser {
 public:
  Parser(const std::string& file, const uint8_t* data, size_t size)
      : file_(file), data_(data), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }
  const uint8_t* at(uint64_t off) const { return data_ + off; }

  // ctx names the record ("key #3 'foo'"), field the part being read.
  Status Error(std::string_view ctx, std::string_view field, uint64_t at,
               const std::string& msg) const {
    std::string m = file_ + ": ";
    if (!ctx.empty()) {
      m.append(ctx);
      m += field.empty() ? "" : ": ";
    }
    m.append(field);
    m += StrFormat(" at byte %" PRIu64 ": ", at);
    return InvalidArgument(m + msg);
  }

  Status Need(uint64_t n, std::string_view ctx, std::string_view field) const {
    if (n > remaining()) {
      return Error(ctx, field, pos_,
                   StrFormat("needs %" PRIu64 " bytes but the file ends at byte %zu", n, size_));
    }
    return OkStatus();
  }

  template <typename T>
  Status Read(std::string_view ctx, std::string_view field, T* out) {
    RETURN_IF_ERROR(Need(sizeof(T), ctx, field));
    *out = Load<T>(data_ + pos_);
    pos_ += sizeof(T);
    return OkStatus();
  }

  Status ReadString(std::string_view ctx, std::string_view field, std::string_view* out) {
    const uint64_t start = pos_;
    uint64_t len = 0;
    RETURN_IF_ERROR(Read(ctx, field, &len));
    if (len > remaining()) {
      pos_ = start;
      return Error(ctx, field, start,
                   StrFormat("string length %" PRIu64 " runs past the end of the file (%" PRIu64
                             " bytes left, file size %zu)",
                             len, remaining(), size_));
    }
    *out = std::string_view(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return OkStatus();
  }

  void Skip(uint64_t n) { pos_ += n; }

 private:
  const std::string& file_;
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

std::string KvContext(uint64_t index, std::string_view key) {
  return StrFormat("key #%" PRIu64 " ", index) + Quote(key);
}

// Reads a value of type `type` (already read) into v. Arrays of arrays are
// rejected: no known model uses them and they would make depth unbounded.
Status ReadValue(Parser& p, const std::string& ctx, ValueType type, Value* v) {
  v->type = type;
  v->file_offset = p.pos();
  if (type == ValueType::kString) return p.ReadString(ctx, "string value", &v->str);
  if (type != ValueType::kArray) {
    const uint64_t n = ScalarSize(static_cast<uint32_t>(type));
    RETURN_IF_ERROR(p.Need(n, ctx, "value"));
    DecodeScalar(type, p.at(p.pos()), v);
    if (type == ValueType::kBool && v->u > 1) {
      return p.Error(ctx, "bool value", p.pos(),
                     StrFormat("must be 0 or 1, got %" PRIu64, v->u));
    }
    p.Skip(n);
    return OkStatus();
  }
  uint32_t elem_type = 0;
  const uint64_t elem_type_at = p.pos();
  RETURN_IF_ERROR(p.Read(ctx, "array element type", &elem_type));
  if (!IsKnownType(elem_type)) {
    return p.Error(ctx, "array element type", elem_type_at,
                   StrFormat("%u is not a GGUF value type (0..12)", elem_type));
  }
  if (static_cast<ValueType>(elem_type) == ValueType::kArray) {
    return p.Error(ctx, "array element type", elem_type_at,
                   "arrays of arrays are not supported");
  }
  v->array_type = static_cast<ValueType>(elem_type);
  const uint64_t count_at = p.pos();
  RETURN_IF_ERROR(p.Read(ctx, "array length", &v->array_count));
  const uint64_t count = v->array_count;
  if (v->array_type != ValueType::kString) {
    const uint64_t elem = ScalarSize(elem_type);
    if (count > p.remaining() / elem) {
      return p.Error(ctx, "array length", count_at,
                     StrFormat("%" PRIu64 " elements of %" PRIu64
                               " bytes run past the end of the file (%" PRIu64 " bytes left)",
                               count, elem, p.remaining()));
    }
    v->array_data = p.at(p.pos());
    if (v->array_type == ValueType::kBool) {
      for (uint64_t i = 0; i < count; ++i) {
        if (v->array_data[i] > 1) {
          return p.Error(ctx, StrFormat("array element %" PRIu64, i), p.pos() + i,
                         StrFormat("bool must be 0 or 1, got %u", v->array_data[i]));
        }
      }
    }
    p.Skip(count * elem);
    return OkStatus();
  }
  // Each string takes at least its 8-byte length, which bounds the reserve.
  if (count > p.remaining() / 8) {
    return p.Error(ctx, "array length", count_at,
                   StrFormat("%" PRIu64 " strings cannot fit in the %" PRIu64
                             " bytes left in the file",
                             count, p.remaining()));
  }
  v->array_data = p.at(p.pos());
  v->array_strings.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    std::string_view s;
    RETURN_IF_ERROR(p.ReadString(ctx, StrFormat("array string #%" PRIu64, i), &s));
    v->array_strings.push_back(s);
  }
  return OkStatus();
}

}  // namespace

std::string_view ValueTypeName(ValueType t) {
  switch (t) {
    case ValueType::kUint8: return "uint8";
    case ValueType::kInt8: return "int8";
    case ValueType::kUint16: return "uint16";
    case ValueType::kInt16: return "int16";
    case ValueType::kUint32: return "uint32";
    case ValueType::kInt32: return "int32";
    case ValueType::kFloat32: return "float32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kUint64: return "uint64";
    case ValueType::kInt64: return "int64";
    case ValueType::kFloat64: return "float64";
  }
  return "unknown";
}

StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> map, MappedFile::Open(path));
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->name_ = path;
  f->base_ = map->data();
  f->size_ = map->size();
  f->map_ = std::move(map);
  RETURN_IF_ERROR(f->Parse());
  return f;
}

StatusOr<std::unique_ptr<GgufFile>> GgufFile::FromBuffer(std::string name, const uint8_t* data,
                                                         size_t size) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->name_ = std::move(name);
  f->base_ = data;
  f->size_ = size;
  RETURN_IF_ERROR(f->Parse());
  return f;
}

Status GgufFile::Parse() {
  Parser p(name_, base_, size_);

  // ---- Header.
  uint32_t magic = 0;
  RETURN_IF_ERROR(p.Read("", "magic", &magic));
  if (std::memcmp(base_, "GGUF", 4) != 0) {
    return p.Error("", "magic", 0,
                   StrFormat("expected \"GGUF\", got %02x %02x %02x %02x (not a GGUF file)",
                             base_[0], base_[1], base_[2], base_[3]));
  }
  RETURN_IF_ERROR(p.Read("", "version", &version_));
  if (version_ == 1) {
    return p.Error("", "version", 4,
                   "GGUF version 1 is not supported (it used 32-bit counts); re-convert the "
                   "model with a current converter");
  }
  if (version_ < kMinVersion || version_ > kMaxVersion) {
    std::string hint;
    if (version_ > 0xffff && (version_ >> 24) >= kMinVersion && (version_ >> 24) <= kMaxVersion) {
      hint = " (the bytes look byte-swapped: a big-endian file?)";
    }
    return p.Error("", "version", 4,
                   StrFormat("unsupported GGUF version %u; this reader supports 2 and 3%s",
                             version_, hint.c_str()));
  }
  uint64_t n_tensors = 0;
  uint64_t n_kv = 0;
  const uint64_t n_tensors_at = p.pos();
  RETURN_IF_ERROR(p.Read("", "tensor count", &n_tensors));
  const uint64_t n_kv_at = p.pos();
  RETURN_IF_ERROR(p.Read("", "metadata key count", &n_kv));
  if (n_kv > p.remaining() / kMinKvBytes) {
    return p.Error("", "metadata key count", n_kv_at,
                   StrFormat("%" PRIu64 " keys cannot fit in the %" PRIu64
                             " bytes left in the file (each takes at least %" PRIu64 ")",
                             n_kv, p.remaining(), kMinKvBytes));
  }
  if (n_tensors > p.remaining() / kMinTensorInfoBytes) {
    return p.Error("", "tensor count", n_tensors_at,
                   StrFormat("%" PRIu64 " tensors cannot fit in the %" PRIu64
                             " bytes left in the file (each takes at least %" PRIu64 ")",
                             n_tensors, p.remaining(), kMinTensorInfoBytes));
  }

  // ---- Metadata.
  key_order_.reserve(n_kv);
  values_.reserve(n_kv);
  for (uint64_t k = 0; k < n_kv; ++k) {
    const uint64_t key_at = p.pos();
    const std::string index_ctx = StrFormat("key #%" PRIu64, k);
    std::string_view key;
    RETURN_IF_ERROR(p.ReadString(index_ctx, "name", &key));
    if (key.empty()) return p.Error(index_ctx, "name", key_at, "key name is empty");
    const std::string ctx = KvContext(k, key);
    uint32_t raw_type = 0;
    const uint64_t type_at = p.pos();
    RETURN_IF_ERROR(p.Read(ctx, "value type", &raw_type));
    if (!IsKnownType(raw_type)) {
      return p.Error(ctx, "value type", type_at,
                     StrFormat("%u is not a GGUF value type (0..12)", raw_type));
    }
    Value v;
    RETURN_IF_ERROR(ReadValue(p, ctx, static_cast<ValueType>(raw_type), &v));
    std::string key_str(key);
    auto [it, inserted] = values_.emplace(key_str, std::move(v));
    if (!inserted) {
      return p.Error(ctx, "", key_at, "duplicate key (first defined at byte " +
                                          std::to_string(it->second.file_offset) + ")");
    }
    key_order_.push_back(std::move(key_str));
  }

  if (const Value* a = Find("general.alignment")) {
    const std::string ctx = "key 'general.alignment'";
    if (a->type != ValueType::kUint32) {
      return p.Error(ctx, "value", a->file_offset,
                     StrFormat("must be a uint32, got %s",
                               std::string(ValueTypeName(a->type)).c_str()));
    }
    if (a->u == 0 || (a->u & (a->u - 1)) != 0) {
      return p.Error(ctx, "value", a->file_offset,
                     StrFormat("must be a nonzero power of two, got %" PRIu64, a->u));
    }
    alignment_ = a->u;
  }

  // ---- Tensor infos.
  tensors_.reserve(n_tensors);
  tensor_index_.reserve(n_tensors);
  std::vector<uint64_t> tensor_at(n_tensors);
  for (uint64_t t = 0; t < n_tensors; ++t) {
    const uint64_t info_at = p.pos();
    tensor_at[t] = info_at;
    const std::string index_ctx = StrFormat("tensor #%" PRIu64, t);
    std::string_view name;
    RETURN_IF_ERROR(p.ReadString(index_ctx, "name", &name));
    if (name.empty()) return p.Error(index_ctx, "name", info_at, "tensor name is empty");
    const std::string ctx = index_ctx + " " + Quote(name);
    TensorInfo info;
    info.name = std::string(name);
    uint32_t n_dims = 0;
    const uint64_t n_dims_at = p.pos();
    RETURN_IF_ERROR(p.Read(ctx, "n_dims", &n_dims));
    if (n_dims < 1 || n_dims > kMaxDims) {
      return p.Error(ctx, "n_dims", n_dims_at,
                     StrFormat("must be 1..%d, got %u", kMaxDims, n_dims));
    }
    info.dims.reserve(n_dims);
    int64_t n_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = 0;
      const std::string field = StrFormat("dims[%u]", d);
      const uint64_t dim_at = p.pos();
      RETURN_IF_ERROR(p.Read(ctx, field, &dim));
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return p.Error(ctx, field, dim_at,
                       StrFormat("must be positive and fit int64, got %" PRIu64, dim));
      }
      if (__builtin_mul_overflow(n_elements, static_cast<int64_t>(dim), &n_elements)) {
        return p.Error(ctx, field, dim_at,
                       StrFormat("element count overflows int64 (dims[%u] = %" PRIu64 ")", d,
                                 dim));
      }
      info.dims.push_back(static_cast<int64_t>(dim));
    }
    info.n_elements = n_elements;
    uint32_t raw_type = 0;
    const uint64_t type_at = p.pos();
    RETURN_IF_ERROR(p.Read(ctx, "type", &raw_type));
    const std::optional<DTypeInfo> ti = GetDTypeInfo(raw_type);
    if (!ti) {
      return p.Error(ctx, "type", type_at,
                     StrFormat("unknown tensor type %u (a newer file, or corruption)", raw_type));
    }
    info.type = ti->type;
    if (info.dims[0] % ti->block_size != 0) {
      return p.Error(ctx, "dims[0]", n_dims_at + 4,
                     StrFormat("%" PRId64 " is not a multiple of the %s block size %" PRId64,
                               info.dims[0], std::string(ti->name).c_str(), ti->block_size));
    }
    uint64_t n_bytes = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(n_elements / ti->block_size),
                               static_cast<uint64_t>(ti->block_bytes), &n_bytes)) {
      return p.Error(ctx, "type", type_at,
                     StrFormat("byte size of %" PRId64 " %s elements overflows", n_elements,
                               std::string(ti->name).c_str()));
    }
    info.n_bytes = n_bytes;
    const uint64_t offset_at = p.pos();
    RETURN_IF_ERROR(p.Read(ctx, "offset", &info.offset));
    if (info.offset % alignment_ != 0) {
      return p.Error(ctx, "offset", offset_at,
                     StrFormat("%" PRIu64 " is not a multiple of the alignment %" PRIu64,
                               info.offset, alignment_));
    }
    auto [it, inserted] = tensor_index_.emplace(info.name, tensors_.size());
    if (!inserted) {
      return p.Error(ctx, "", info_at,
                     StrFormat("duplicate tensor name (first is tensor #%zu at byte %" PRIu64 ")",
                               it->second, tensor_at[it->second]));
    }
    tensors_.push_back(std::move(info));
  }

  // ---- Data section: starts at the next multiple of the alignment.
  const uint64_t header_end = p.pos();
  const uint64_t data_start = (header_end + alignment_ - 1) / alignment_ * alignment_;
  if (n_tensors == 0) return OkStatus();
  if (data_start > size_) {
    return p.Error("", "data section", data_start,
                   StrFormat("starts past the end of the file (size %zu)", size_));
  }
  const uint64_t data_size = size_ - data_start;
  for (size_t t = 0; t < tensors_.size(); ++t) {
    TensorInfo& info = tensors_[t];
    if (info.offset > data_size || info.n_bytes > data_size - info.offset) {
      return p.Error(StrFormat("tensor #%zu ", t) + Quote(info.name), "", tensor_at[t],
                     StrFormat("offset %" PRIu64 " + %" PRIu64
                               " bytes runs past the end of the file (data section at byte "
                               "%" PRIu64 ", file size %zu)",
                               info.offset, info.n_bytes, data_start, size_));
    }
    info.data = base_ + data_start + info.offset;
  }
  // Overlap: sort by offset and compare neighbours.
  std::vector<size_t> order(tensors_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return tensors_[a].offset < tensors_[b].offset;
  });
  for (size_t i = 1; i < order.size(); ++i) {
    const TensorInfo& prev = tensors_[order[i - 1]];
    const TensorInfo& cur = tensors_[order[i]];
    if (cur.offset < prev.offset + prev.n_bytes) {
      return p.Error(StrFormat("tensor #%zu ", order[i]) + Quote(cur.name), "",
                     tensor_at[order[i]],
                     StrFormat("data [%" PRIu64 ", %" PRIu64 ") overlaps tensor #%zu %s [%" PRIu64
                               ", %" PRIu64 ")",
                               cur.offset, cur.offset + cur.n_bytes, order[i - 1],
                               Quote(prev.name).c_str(), prev.offset,
                               prev.offset + prev.n_bytes));
    }
  }
  return OkStatus();
}

// ---- Metadata getters.

const Value* GgufFile::Find(std::string_view key) const {
  auto it = values_.find(std::string(key));
  return it == values_.end() ? nullptr : &it->second;
}

const TensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

Status Missing(const std::string& file, std::string_view key) {
  return NotFound(StrFormat("%s: key '%.*s' not found", file.c_str(),
                            static_cast<int>(key.size()), key.data()));
}

Status WrongType(const std::string& file, std::string_view key, const Value& v,
                 const char* expected) {
  std::string got(ValueTypeName(v.type));
  if (v.type == ValueType::kArray) got = "array of " + std::string(ValueTypeName(v.array_type));
  return InvalidArgument(StrFormat("%s: key '%.*s' at byte %" PRIu64 " is %s %s, expected %s",
                                   file.c_str(), static_cast<int>(key.size()), key.data(),
                                   v.file_offset,
                                   (got[0] == 'a' || got[0] == 'i' || got[0] == 'u') ? "an" : "a",
                                   got.c_str(), expected));
}

}  // namespace

StatusOr<std::string> GgufFile::GetString(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(name_, key);
  if (v->type != ValueType::kString) return WrongType(name_, key, *v, "a string");
  return std::string(v->str);
}

StatusOr<int64_t> GgufFile::GetInt(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(name_, key);
  if (!IsIntegerType(v->type)) return WrongType(name_, key, *v, "an integer");
  if (IsUnsignedType(v->type)) {
    if (v->u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidArgument(StrFormat("%s: key '%.*s' at byte %" PRIu64
                                       ": value %" PRIu64 " does not fit in int64",
                                       name_.c_str(), static_cast<int>(key.size()), key.data(),
                                       v->file_offset, v->u));
    }
    return static_cast<int64_t>(v->u);
  }
  return v->i;
}

StatusOr<double> GgufFile::GetFloat(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(name_, key);
  if (v->type == ValueType::kFloat32 || v->type == ValueType::kFloat64) return v->f;
  if (IsIntegerType(v->type)) {
    return IsUnsignedType(v->type) ? static_cast<double>(v->u) : static_cast<double>(v->i);
  }
  return WrongType(name_, key, *v, "a number");
}

StatusOr<bool> GgufFile::GetBool(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(name_, key);
  if (v->type != ValueType::kBool) return WrongType(name_, key, *v, "a bool");
  return v->u != 0;
}

StatusOr<std::vector<std::string_view>> GgufFile::GetStringArray(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(name_, key);
  if (v->type != ValueType::kArray || v->array_type != ValueType::kString) {
    return WrongType(name_, key, *v, "an array of strings");
  }
  return v->array_strings;
}

StatusOr<std::vector<float>> GgufFile::GetFloatArray(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(name_, key);
  if (v->type != ValueType::kArray ||
      (v->array_type != ValueType::kFloat32 && v->array_type != ValueType::kFloat64)) {
    return WrongType(name_, key, *v, "an array of floats");
  }
  std::vector<float> out(v->array_count);
  for (uint64_t i = 0; i < v->array_count; ++i) {
    out[i] = v->array_type == ValueType::kFloat32
                 ? Load<float>(v->array_data + 4 * i)
                 : static_cast<float>(Load<double>(v->array_data + 8 * i));
  }
  return out;
}

StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  const Value* v = Find(key);
  if (v == nullptr) return Missing(name_, key);
  if (v->type != ValueType::kArray || !IsIntegerType(v->array_type)) {
    return WrongType(name_, key, *v, "an array of integers");
  }
  std::vector<int64_t> out(v->array_count);
  for (uint64_t i = 0; i < v->array_count; ++i) {
    if (!IntElement(v->array_type, v->array_data, i, &out[i])) {
      return InvalidArgument(StrFormat("%s: key '%.*s' at byte %" PRIu64
                                       ": element %" PRIu64 " does not fit in int64",
                                       name_.c_str(), static_cast<int>(key.size()), key.data(),
                                       v->file_offset, i));
    }
  }
  return out;
}

StatusOr<std::string> GgufFile::GetStringOr(std::string_view key, std::string fallback) const {
  if (!Has(key)) return fallback;
  return GetString(key);
}

StatusOr<int64_t> GgufFile::GetIntOr(std::string_view key, int64_t fallback) const {
  if (!Has(key)) return fallback;
  return GetInt(key);
}

StatusOr<double> GgufFile::GetFloatOr(std::string_view key, double fallback) const {
  if (!Has(key)) return fallback;
  return GetFloat(key);
}

StatusOr<bool> GgufFile::GetBoolOr(std::string_view key, bool fallback) const {
  if (!Has(key)) return fallback;
  return GetBool(key);
}

}  // namespace atrium::gguf
