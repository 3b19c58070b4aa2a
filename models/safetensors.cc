#include "models/safetensors.h"

#include <algorithm>
#include <cinttypes>
#include <cstring>
#include <limits>
#include <unordered_set>

#include <nlohmann/json.hpp>

namespace atrium::safetensors {
namespace {

using nlohmann::json;

// Thrown from the JSON parser callback to stop at the first structural
// problem (before the DOM grows): caught in Parse().
struct HeaderError {
  std::string message;
};

// A shape of more dims than this is not a model weight; also bounds the
// arrays the parser builds.
constexpr size_t kMaxArrayValues = 16;

std::string Short(const json& v) {
  std::string s = v.dump(-1, ' ', true, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

std::optional<DType> ParseDType(const std::string& s) {
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  return std::nullopt;
}

// Non-negative integer that fits int64 (JSON numbers may be unsigned,
// signed or float; only integers count).
bool AsCount(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
  } else if (v.is_number_integer()) {
    const int64_t i = v.get<int64_t>();
    if (i < 0) return false;
    *out = static_cast<uint64_t>(i);
  } else {
    return false;
  }
  return *out <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
}

}  // namespace

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> map, MappedFile::Open(path));
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->name_ = path;
  RETURN_IF_ERROR(f->Parse(map->data(), map->size()));
  f->map_ = std::move(map);
  return f;
}

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::FromBuffer(std::string name,
                                                                       const uint8_t* data,
                                                                       size_t size) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->name_ = std::move(name);
  RETURN_IF_ERROR(f->Parse(data, size));
  return f;
}

const Tensor* SafetensorsFile::Find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Status SafetensorsFile::Parse(const uint8_t* data, size_t size) {
  auto error = [&](const std::string& msg) { return InvalidArgument(name_ + ": " + msg); };
  if (size < 8) {
    return error(StrFormat("header length at byte 0: needs 8 bytes but the file has %zu "
                           "(not a safetensors file)",
                           size));
  }
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);
  if (header_len > kMaxHeaderBytes) {
    return error(StrFormat("header length at byte 0: %" PRIu64
                           " bytes is over the %" PRIu64 " MiB limit (not a safetensors file?)",
                           header_len, kMaxHeaderBytes >> 20));
  }
  if (header_len > size - 8) {
    return error(StrFormat("header length at byte 0: %" PRIu64
                           " bytes runs past the end of the file (size %zu)",
                           header_len, size));
  }
  if (header_len < 2 || data[8] != '{') {
    return error("header at byte 8: must be a JSON object starting with '{'");
  }
  data_start_ = 8 + header_len;
  const uint64_t data_size = size - data_start_;

  // Parse with a callback that rejects duplicate keys (plain json::parse
  // keeps the last one silently), nesting deeper than the format needs, and
  // long arrays, so a hostile header cannot grow a large DOM.
  std::unordered_set<std::string> top_keys;
  std::unordered_set<std::string> entry_keys;
  size_t array_values = 0;
  std::string current_top;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::key:
        if (depth == 1) {
          current_top = parsed.get<std::string>();
          if (!top_keys.insert(current_top).second) {
            throw HeaderError{"duplicate tensor name '" + current_top + "'"};
          }
        } else if (depth == 2 && !entry_keys.insert(parsed.get<std::string>()).second) {
          throw HeaderError{"'" + current_top + "': duplicate field '" +
                            parsed.get<std::string>() + "'"};
        }
        break;
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (depth >= 3) {
          throw HeaderError{"'" + current_top + "': nested deeper than the format allows"};
        }
        if (depth == 1) entry_keys.clear();
        array_values = 0;
        break;
      case json::parse_event_t::value:
        if (depth == 3 && ++array_values > kMaxArrayValues) {
          throw HeaderError{"'" + current_top + "': array longer than " +
                            std::to_string(kMaxArrayValues) + " values"};
        }
        break;
      default: break;
    }
    return true;
  };
  json header;
  const char* begin = reinterpret_cast<const char*>(data + 8);
  try {
    header = json::parse(begin, begin + header_len, callback);
  } catch (const HeaderError& e) {
    return error("header at byte 8: " + e.message);
  } catch (const json::parse_error& e) {
    return error(StrFormat("header JSON at byte %" PRIu64 ": %s",
                           static_cast<uint64_t>(8 + (e.byte > 0 ? e.byte - 1 : 0)), e.what()));
  } catch (const json::exception& e) {
    return error(std::string("header at byte 8: ") + e.what());
  }
  if (!header.is_object()) return error("header at byte 8: must be a JSON object");

  tensors_.reserve(header.size());
  for (auto& [key, entry] : header.items()) {
    const std::string ctx = "header at byte 8: ";
    if (key == "__metadata__") {
      if (!entry.is_object()) return error(ctx + "'__metadata__' must be an object");
      for (auto& [mk, mv] : entry.items()) {
        if (!mv.is_string()) {
          return error(ctx + "'__metadata__' value '" + mk + "' must be a string, got " +
                       Short(mv));
        }
        metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    const std::string where = ctx + "tensor '" + key + "': ";
    if (key.empty()) return error(ctx + "empty tensor name");
    if (!entry.is_object()) return error(where + "must be an object, got " + Short(entry));
    Tensor t;
    t.name = key;
    const auto dtype_it = entry.find("dtype");
    if (dtype_it == entry.end() || !dtype_it->is_string()) {
      return error(where + "field 'dtype' must be a string");
    }
    const std::optional<DType> type = ParseDType(dtype_it->get<std::string>());
    if (!type) {
      return error(where + "dtype " + Short(*dtype_it) +
                   " is not supported (F32, F16 or BF16)");
    }
    t.type = *type;
    const auto shape_it = entry.find("shape");
    if (shape_it == entry.end() || !shape_it->is_array()) {
      return error(where + "field 'shape' must be an array of non-negative integers");
    }
    int64_t n = 1;
    for (const json& d : *shape_it) {
      uint64_t dim = 0;
      if (!AsCount(d, &dim)) {
        return error(where + "shape " + Short(*shape_it) +
                     " must hold non-negative integers, got " + Short(d));
      }
      if (__builtin_mul_overflow(n, static_cast<int64_t>(dim), &n)) {
        return error(where + "shape " + Short(*shape_it) + ": element count overflows");
      }
      t.dims.push_back(static_cast<int64_t>(dim));
    }
    std::reverse(t.dims.begin(), t.dims.end());
    t.n_elements = n;
    const auto off_it = entry.find("data_offsets");
    uint64_t off_begin = 0, off_end = 0;
    if (off_it == entry.end() || !off_it->is_array() || off_it->size() != 2 ||
        !AsCount((*off_it)[0], &off_begin) || !AsCount((*off_it)[1], &off_end)) {
      return error(where + "field 'data_offsets' must be [begin, end] non-negative integers");
    }
    if (off_begin > off_end) {
      return error(where + StrFormat("data_offsets [%" PRIu64 ", %" PRIu64 "] end before begin",
                                     off_begin, off_end));
    }
    uint64_t n_bytes = 0;
    const uint64_t elem = static_cast<uint64_t>(Info(t.type).block_bytes);
    if (__builtin_mul_overflow(static_cast<uint64_t>(n), elem, &n_bytes)) {
      return error(where + StrFormat("byte size of %" PRId64 " %s elements overflows", n,
                                     std::string(DTypeName(t.type)).c_str()));
    }
    if (n_bytes != off_end - off_begin) {
      return error(where + StrFormat("data_offsets [%" PRIu64 ", %" PRIu64 "] hold %" PRIu64
                                     " bytes, but %" PRId64 " %s elements need %" PRIu64,
                                     off_begin, off_end, off_end - off_begin, n,
                                     std::string(DTypeName(t.type)).c_str(), n_bytes));
    }
    if (off_end > data_size) {
      return error(where + StrFormat("data_offsets [%" PRIu64 ", %" PRIu64
                                     "] run past the end of the data section (%" PRIu64
                                     " bytes at byte %" PRIu64 ", file size %zu)",
                                     off_begin, off_end, data_size, data_start_, size));
    }
    t.offset = off_begin;
    t.n_bytes = n_bytes;
    t.data = data + data_start_ + off_begin;
    tensors_.push_back(std::move(t));
  }

  // The offsets must tile the data section: sorted, each begins where the
  // previous ended, the last ends at the end of the file.
  std::sort(tensors_.begin(), tensors_.end(), [](const Tensor& a, const Tensor& b) {
    return a.offset != b.offset ? a.offset < b.offset : a.n_bytes < b.n_bytes;
  });
  uint64_t expected = 0;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    if (t.offset != expected) {
      const std::string prev = i == 0 ? "the start of the data section"
                                      : "tensor '" + tensors_[i - 1].name + "'";
      return error(StrFormat("header at byte 8: tensor '%s': data_offsets begin at %" PRIu64
                             " but %s ends at %" PRIu64 " (%s)",
                             t.name.c_str(), t.offset, prev.c_str(), expected,
                             t.offset > expected ? "a gap" : "overlap"));
    }
    expected = t.offset + t.n_bytes;
    index_.emplace(t.name, i);
  }
  if (expected != data_size) {
    return error(StrFormat("data section at byte %" PRIu64 ": tensors cover %" PRIu64
                           " bytes but it holds %" PRIu64 " (trailing bytes)",
                           data_start_, expected, data_size));
  }
  return OkStatus();
}

}  // namespace atrium::safetensors
