#include "models/hf_config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace atrium {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxConfigBytes = 16ull << 20;

constexpr const char* kSupported = "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM";

std::string Show(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

class Reader {
 public:
  Reader(const json& j, std::string_view name) : j_(j), name_(name) {}

  Status Error(const std::string& field, const std::string& msg) const {
    return InvalidArgument(std::string(name_) + ": field '" + field + "' " + msg);
  }
  // The value of `field`, or nullptr when absent or null (HF writes null for
  // "use the default").
  const json* Get(const std::string& field) const {
    auto it = j_.find(field);
    if (it == j_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  // A positive integer; `fallback` (when set) if absent.
  StatusOr<int64_t> PositiveInt(const std::string& field, std::optional<int64_t> fallback) const {
    const json* v = Get(field);
    if (v == nullptr) {
      if (fallback) return *fallback;
      return Error(field, "is missing (expected a positive integer)");
    }
    if (v->is_number_unsigned() && v->get<uint64_t>() > 0 &&
        v->get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)) {
      return static_cast<int64_t>(v->get<uint64_t>());
    }
    if (v->is_number_integer() && !v->is_number_unsigned() && v->get<int64_t>() > 0) {
      return v->get<int64_t>();
    }
    return Error(field, "must be a positive integer, got " + Show(*v));
  }

  StatusOr<double> PositiveNumber(const std::string& field, std::optional<double> fallback) const {
    const json* v = Get(field);
    if (v == nullptr) {
      if (fallback) return *fallback;
      return Error(field, "is missing (expected a positive number)");
    }
    if (v->is_number() && std::isfinite(v->get<double>()) && v->get<double>() > 0) {
      return v->get<double>();
    }
    return Error(field, "must be a positive number, got " + Show(*v));
  }

  StatusOr<bool> Bool(const std::string& field, bool fallback) const {
    const json* v = Get(field);
    if (v == nullptr) return fallback;
    if (!v->is_boolean()) return Error(field, "must be true or false, got " + Show(*v));
    return v->get<bool>();
  }

  StatusOr<std::string> String(const std::string& field, std::string fallback) const {
    const json* v = Get(field);
    if (v == nullptr) return fallback;
    if (!v->is_string()) return Error(field, "must be a string, got " + Show(*v));
    return v->get<std::string>();
  }

  // A token id (non-negative integer).
  static bool TokenId(const json& v, int64_t* out) {
    if (!v.is_number_integer()) return false;
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return false;
      *out = static_cast<int64_t>(v.get<uint64_t>());
      return true;
    }
    *out = v.get<int64_t>();
    return *out >= 0;
  }

 private:
  const json& j_;
  std::string_view name_;
};

std::string ArchitectureForModelType(const std::string& model_type) {
  if (model_type == "llama") return "LlamaForCausalLM";
  if (model_type == "mistral") return "MistralForCausalLM";
  if (model_type == "qwen2") return "Qwen2ForCausalLM";
  return "";
}

}  // namespace

StatusOr<HfConfig> ParseHfConfig(std::string_view json_text, std::string_view name) {
  const std::string prefix = std::string(name) + ": ";
  json j;
  try {
    j = json::parse(json_text.begin(), json_text.end());
  } catch (const json::parse_error& e) {
    return InvalidArgument(prefix + StrFormat("not valid JSON (at byte %zu): ", e.byte) + e.what());
  } catch (const json::exception& e) {
    return InvalidArgument(prefix + "not valid JSON: " + e.what());
  }
  if (!j.is_object()) return InvalidArgument(prefix + "must be a JSON object, got " + Show(j));
  const Reader r(j, name);
  HfConfig c;

  ASSIGN_OR_RETURN(c.model_type, r.String("model_type", ""));
  if (const json* archs = r.Get("architectures")) {
    if (!archs->is_array() || archs->empty() || !(*archs)[0].is_string()) {
      return r.Error("architectures", "must be a non-empty list of strings, got " + Show(*archs));
    }
    c.architecture = (*archs)[0].get<std::string>();
  } else {
    c.architecture = ArchitectureForModelType(c.model_type);
    if (c.architecture.empty()) {
      return r.Error("architectures", std::string("is missing (expected one of ") + kSupported +
                                          ")");
    }
  }
  const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
  const bool mistral = c.architecture == "MistralForCausalLM";
  if (!qwen2 && !mistral && c.architecture != "LlamaForCausalLM") {
    return r.Error("architectures", "'" + c.architecture + "' is not supported (expected one of " +
                                        kSupported + ")");
  }

  ASSIGN_OR_RETURN(c.hidden_size, r.PositiveInt("hidden_size", std::nullopt));
  ASSIGN_OR_RETURN(c.intermediate_size, r.PositiveInt("intermediate_size", std::nullopt));
  ASSIGN_OR_RETURN(c.num_hidden_layers, r.PositiveInt("num_hidden_layers", std::nullopt));
  ASSIGN_OR_RETURN(c.num_attention_heads, r.PositiveInt("num_attention_heads", std::nullopt));
  ASSIGN_OR_RETURN(c.num_key_value_heads,
                   r.PositiveInt("num_key_value_heads", c.num_attention_heads));
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return r.Error("num_key_value_heads",
                   StrFormat("(%lld) must divide num_attention_heads (%lld)",
                             (long long)c.num_key_value_heads, (long long)c.num_attention_heads));
  }
  if (r.Get("head_dim") == nullptr && c.hidden_size % c.num_attention_heads != 0) {
    return r.Error("head_dim",
                   StrFormat("is missing and hidden_size (%lld) is not a multiple of "
                             "num_attention_heads (%lld)",
                             (long long)c.hidden_size, (long long)c.num_attention_heads));
  }
  ASSIGN_OR_RETURN(c.head_dim, r.PositiveInt("head_dim", c.hidden_size / c.num_attention_heads));
  ASSIGN_OR_RETURN(c.vocab_size, r.PositiveInt("vocab_size", std::nullopt));
  ASSIGN_OR_RETURN(c.rms_norm_eps, r.PositiveNumber("rms_norm_eps", std::nullopt));
  ASSIGN_OR_RETURN(c.rope_theta, r.PositiveNumber("rope_theta", 10000.0));
  ASSIGN_OR_RETURN(c.max_position_embeddings, r.PositiveInt("max_position_embeddings", 2048));
  ASSIGN_OR_RETURN(c.tie_word_embeddings, r.Bool("tie_word_embeddings", false));
  ASSIGN_OR_RETURN(c.hidden_act, r.String("hidden_act", "silu"));
  if (c.hidden_act != "silu") {
    return r.Error("hidden_act", "'" + c.hidden_act + "' is not supported (expected \"silu\")");
  }
  ASSIGN_OR_RETURN(c.torch_dtype, r.String("torch_dtype", ""));

  if (qwen2) {
    c.attention_bias = true;  // Qwen2's q/k/v projections always have biases
    ASSIGN_OR_RETURN(const bool use_sw, r.Bool("use_sliding_window", false));
    if (use_sw) {
      ASSIGN_OR_RETURN(c.sliding_window, r.PositiveInt("sliding_window", std::nullopt));
    }
  } else {
    ASSIGN_OR_RETURN(c.attention_bias, r.Bool("attention_bias", false));
    if (r.Get("sliding_window") != nullptr) {
      ASSIGN_OR_RETURN(c.sliding_window, r.PositiveInt("sliding_window", std::nullopt));
    }
  }

  if (const json* rs = r.Get("rope_scaling")) {
    if (!rs->is_object()) return r.Error("rope_scaling", "must be an object, got " + Show(*rs));
    const json* type = nullptr;
    if (rs->contains("rope_type")) type = &(*rs)["rope_type"];
    else if (rs->contains("type")) type = &(*rs)["type"];
    if (type == nullptr || !type->is_string()) {
      return r.Error("rope_scaling", "must have a string 'rope_type', got " + Show(*rs));
    }
    c.rope_scaling_type = type->get<std::string>();
    if (rs->contains("factor")) {
      const json& f = (*rs)["factor"];
      if (!f.is_number() || !(f.get<double>() > 0)) {
        return r.Error("rope_scaling.factor", "must be a positive number, got " + Show(f));
      }
      c.rope_scaling_factor = f.get<double>();
    }
  }

  if (const json* bos = r.Get("bos_token_id")) {
    int64_t id = 0;
    if (!Reader::TokenId(*bos, &id)) {
      return r.Error("bos_token_id", "must be a non-negative integer, got " + Show(*bos));
    }
    c.bos_token_id = id;
  }
  if (const json* eos = r.Get("eos_token_id")) {
    const bool list = eos->is_array();
    if (list && eos->size() > 1024) {
      return r.Error("eos_token_id", "lists more than 1024 ids");
    }
    for (const json& e : list ? *eos : json::array({*eos})) {
      int64_t id = 0;
      if (!Reader::TokenId(e, &id)) {
        return r.Error("eos_token_id",
                       "must be a non-negative integer or a list of them, got " + Show(*eos));
      }
      c.eos_token_ids.push_back(id);
    }
  }
  return c;
}

StatusOr<HfConfig> LoadHfConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot open");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0 || static_cast<uint64_t>(size) > kMaxConfigBytes) {
    return InvalidArgument(StrFormat("%s: %lld bytes is not a config.json (limit %llu MiB)",
                                     path.c_str(), (long long)size,
                                     (unsigned long long)(kMaxConfigBytes >> 20)));
  }
  in.seekg(0);
  std::string text(static_cast<size_t>(size), '\0');
  if (!in.read(text.data(), size)) return InvalidArgument(path + ": read failed");
  return ParseHfConfig(text, path);
}

}  // namespace atrium
