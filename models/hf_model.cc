// Loading a HF llama-family checkpoint (config.json + safetensors). HF stores
// q/k projections for "rotate half" RoPE, which is the NeoX layout; GGUF
// converters permute them for the interleaved layout instead, so the same
// weights run with RopeLayout::kNeox here.
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "kernels/kernels.h"
#include "models/hf_config.h"
#include "models/model.h"
#include "models/safetensors.h"

namespace atrium {
namespace {

namespace fs = std::filesystem;

StatusOr<ModelConfig> ConfigFromHf(const HfConfig& h, int64_t n_vocab, const std::string& name) {
  ModelConfig c;
  if (h.architecture == "LlamaForCausalLM" || h.architecture == "MistralForCausalLM") {
    c.architecture = h.model_type.empty() ? "llama" : h.model_type;
    c.arch = Arch::kLlama;
  } else if (h.architecture == "Qwen2ForCausalLM") {
    c.architecture = "qwen2";
    c.arch = Arch::kQwen2;
  } else {
    return Unimplemented(StrFormat("%s: architecture '%s' is not supported (supported: LlamaForCausalLM, "
                                   "MistralForCausalLM, Qwen2ForCausalLM)",
                                   name.c_str(), h.architecture.c_str()));
  }
  c.n_vocab = n_vocab;
  c.dim = h.hidden_size;
  c.n_layers = h.num_hidden_layers;
  c.n_heads = h.num_attention_heads;
  c.n_kv_heads = h.num_key_value_heads;
  c.head_dim = h.head_dim;
  c.head_dim_v = h.head_dim;
  c.ffn_dim = h.intermediate_size;
  c.context_length = h.max_position_embeddings;
  c.rms_eps = static_cast<float>(h.rms_norm_eps);
  c.rope_layout = kernels::RopeLayout::kNeox;
  c.rope_dim = h.head_dim;
  c.rope_base = static_cast<float>(h.rope_theta);
  if (h.rope_scaling_type == "linear") {
    c.rope_scale = static_cast<float>(1.0 / h.rope_scaling_factor);
  } else if (!h.rope_scaling_type.empty() && h.rope_scaling_type != "default") {
    return Unimplemented(StrFormat("%s: rope_scaling '%s' is not supported (supported: linear)", name.c_str(),
                                   h.rope_scaling_type.c_str()));
  }
  c.activation = Activation::kSilu;
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  c.has_qkv_bias = h.attention_bias || c.arch == Arch::kQwen2;
  c.layer_is_swa.assign(c.n_layers, false);
  if (h.sliding_window && *h.sliding_window < c.context_length) {
    c.sliding_window = *h.sliding_window;
    c.layer_is_swa.assign(c.n_layers, true);
  }
  RETURN_IF_ERROR(ValidateConfig(c).WithContext(name));
  return c;
}

// The safetensors files of a checkpoint directory.
StatusOr<std::vector<std::string>> ShardPaths(const std::string& dir) {
  const std::string single = dir + "/model.safetensors";
  const std::string index = dir + "/model.safetensors.index.json";
  std::error_code ec;
  if (fs::exists(single, ec)) return std::vector<std::string>{single};
  if (!fs::exists(index, ec)) {
    return NotFound(StrFormat("%s: neither model.safetensors nor model.safetensors.index.json is there", dir.c_str()));
  }
  std::ifstream in(index);
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
    return InvalidArgument(StrFormat("%s: not a JSON object with a 'weight_map' object", index.c_str()));
  }
  std::set<std::string> files;
  for (const auto& [tensor, file] : j["weight_map"].items()) {
    if (!file.is_string() || file.get<std::string>().find('/') != std::string::npos) {
      return InvalidArgument(StrFormat("%s: weight_map['%s'] must be a file name in the same directory",
                                       index.c_str(), tensor.c_str()));
    }
    files.insert(file.get<std::string>());
  }
  std::vector<std::string> paths;
  for (const std::string& f : files) paths.push_back(dir + "/" + f);
  return paths;
}

}  // namespace

StatusOr<std::unique_ptr<Model>> Model::LoadHf(const std::string& dir, const LoadOptions& options) {
  ASSIGN_OR_RETURN(HfConfig hf, LoadHfConfig(dir + "/config.json"));
  ASSIGN_OR_RETURN(std::vector<std::string> paths, ShardPaths(dir));
  std::unique_ptr<Model> m(new Model());
  std::vector<std::shared_ptr<const safetensors::SafetensorsFile>> shards;
  std::map<std::string, std::pair<const safetensors::Tensor*, std::shared_ptr<const void>>> by_name;
  for (const std::string& p : paths) {
    ASSIGN_OR_RETURN(std::unique_ptr<safetensors::SafetensorsFile> f, safetensors::SafetensorsFile::Open(p));
    std::shared_ptr<const safetensors::SafetensorsFile> shared(std::move(f));
    for (const safetensors::Tensor& t : shared->tensors()) by_name[t.name] = {&t, shared};
    m->keepalive_.push_back(shared);
  }
  const auto embd = by_name.find(HfName(WeightRole::kTokenEmbd, -1));
  if (embd == by_name.end() || embd->second.first->dims.size() != 2) {
    return InvalidArgument(StrFormat("%s: tensor 'model.embed_tokens.weight' is missing or not 2-D", dir.c_str()));
  }
  ASSIGN_OR_RETURN(m->config_, ConfigFromHf(hf, embd->second.first->dims[1], dir + "/config.json"));

  Status status;
  uint64_t total = 0;
  const kernels::CpuKernels& k = kernels::Cpu();
  ForEachWeight(m->config_, m->weights_, [&](WeightRole role, int layer, Tensor& slot) {
    if (!status.ok()) return;
    const std::string name = HfName(role, layer);
    const auto it = by_name.find(name);
    if (it == by_name.end()) {
      if (NeedOf(m->config_, role) == Need::kRequired) {
        status = InvalidArgument(StrFormat("%s: required tensor '%s' is missing", dir.c_str(), name.c_str()));
      }
      return;
    }
    const safetensors::Tensor& t = *it->second.first;
    const std::vector<int64_t> shape(t.dims.rbegin(), t.dims.rend());
    const std::vector<int64_t> expected = ExpectedShape(m->config_, role);
    if (shape != expected) {
      status = InvalidArgument(StrFormat("%s: tensor '%s' has %zu dims [%lld, ...], expected %zu dims [%lld, ...] "
                                         "from config.json",
                                         dir.c_str(), name.c_str(), shape.size(),
                                         static_cast<long long>(shape.empty() ? 0 : shape[0]), expected.size(),
                                         static_cast<long long>(expected[0])));
      return;
    }
    if (expected.size() == 1) {
      // Norms and biases run as f32: convert once.
      slot = Tensor::Empty(DType::kF32, shape);
      k.dequantize_row(t.type, slot.mutable_data<float>(), t.data, t.n_elements);
    } else {
      slot = Tensor::View(t.type, shape, t.data, it->second.second);
      total += t.n_bytes;
    }
  });
  RETURN_IF_ERROR(status);
  m->TieAndCount(total);
  if (options.progress) options.progress(total, total);
  return m;
}

}  // namespace atrium
