#include "models/safetensors_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

namespace atrium::safetensors {
namespace {

const char* DTypeString(DType type) {
  switch (type) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    default: return nullptr;
  }
}

}  // namespace

void SafetensorsWriter::Add(const std::string& name, DType type, const std::vector<int64_t>& dims,
                            std::vector<uint8_t> data) {
  ATRIUM_CHECK(DTypeString(type) != nullptr, "safetensors: unsupported dtype for %s", name.c_str());
  int64_t n = 1;
  for (int64_t d : dims) {
    ATRIUM_CHECK(d >= 0, "%s: negative dim", name.c_str());
    n *= d;
  }
  ATRIUM_CHECK(data.size() == static_cast<size_t>(n * Info(type).block_bytes),
               "%s: %zu bytes for %lld elements", name.c_str(), data.size(), (long long)n);
  entries_.push_back({name, type, dims, std::move(data)});
}

void SafetensorsWriter::AddF32(const std::string& name, DType type,
                               const std::vector<int64_t>& dims, const std::vector<float>& values) {
  std::vector<uint8_t> data(values.size() * Info(type).block_bytes);
  for (size_t i = 0; i < values.size(); ++i) {
    if (type == DType::kF32) {
      std::memcpy(data.data() + 4 * i, &values[i], 4);
    } else {
      const uint16_t h = type == DType::kF16 ? F32ToF16(values[i]) : F32ToBF16(values[i]);
      std::memcpy(data.data() + 2 * i, &h, 2);
    }
  }
  Add(name, type, dims, std::move(data));
}

std::vector<uint8_t> SafetensorsWriter::Serialize() const {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    std::vector<int64_t> shape(e.dims.rbegin(), e.dims.rend());
    header[e.name] = {{"dtype", DTypeString(e.type)},
                      {"shape", shape},
                      {"data_offsets", {offset, offset + e.data.size()}}};
    offset += e.data.size();
  }
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  const uint64_t len = text.size();
  std::vector<uint8_t> out(8 + len + offset);
  std::memcpy(out.data(), &len, 8);
  std::memcpy(out.data() + 8, text.data(), len);
  size_t at = 8 + len;
  for (const Entry& e : entries_) {
    if (!e.data.empty()) std::memcpy(out.data() + at, e.data.data(), e.data.size());
    at += e.data.size();
  }
  return out;
}

Status SafetensorsWriter::WriteFile(const std::string& path) const {
  const std::vector<uint8_t> bytes = Serialize();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    return InvalidArgument(StrFormat("%s: cannot create: %s", path.c_str(), std::strerror(errno)));
  }
  const size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
  const int closed = std::fclose(f);
  if (written != bytes.size() || closed != 0) {
    return InvalidArgument(StrFormat("%s: write failed: %s", path.c_str(), std::strerror(errno)));
  }
  return OkStatus();
}

}  // namespace atrium::safetensors
