#include "serving/worker/model_registry.h"

#include <algorithm>
#include <cstdio>

#include "models/catalog.h"
#include "serving/worker/text.h"

namespace atrium::worker {
namespace {

using Clock = std::chrono::steady_clock;
// A request for an unknown name rescans the directories at most this often,
// so a flood of bad names cannot keep the worker reading model headers.
constexpr auto kRescanInterval = std::chrono::seconds(5);

// The public description of one catalog entry.
ModelInfo Describe(const CatalogEntry& e) {
  ModelInfo info;
  info.id = e.name;
  info.path = e.path;
  v1::Model& m = info.model;
  m.set_name("models/" + e.name);
  m.set_provider(ValidUtf8(e.provider));
  m.set_architecture(ValidUtf8(e.architecture));
  m.set_parameter_count(e.parameters);
  m.set_quantization(e.quantization);
  m.set_context_length(e.context_length);
  m.set_size_bytes(static_cast<int64_t>(e.file_bytes));
  m.set_display_name(ValidUtf8(e.display_name));
  m.set_family(ValidUtf8(e.family.empty() ? e.architecture : e.family));
  m.set_license(ValidUtf8(e.license));
  m.set_version(ValidUtf8(e.version));
  m.add_capabilities(v1::CAPABILITY_GENERATE);
  if (e.chat) m.add_capabilities(v1::CAPABILITY_CHAT);
  m.add_capabilities(v1::CAPABILITY_TOKENIZE);
  m.add_capabilities(v1::CAPABILITY_LOGPROBS);
  return info;
}

}  // namespace

bool ModelRegistry::ValidId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(id[0])) return false;
  return std::all_of(id.begin(), id.end(),
                     [&](char c) { return lower_or_digit(c) || c == '.' || c == '-' || c == '_'; });
}

ModelRegistry::ModelRegistry(std::string models_dir) : models_dir_(std::move(models_dir)) {
  std::lock_guard<std::mutex> lock(mu_);
  Rescan();
}

void ModelRegistry::Rescan() {
  last_scan_ = Clock::now();
  const Catalog catalog = Catalog::Scan(Catalog::SearchDirs(models_dir_));
  for (const std::string& w : catalog.warnings()) std::fprintf(stderr, "atrium-worker: skipped %s\n", w.c_str());
  std::map<std::string, ModelInfo> models;
  for (const CatalogEntry& e : catalog.entries()) {
    if (!ValidId(e.name)) {
      std::fprintf(stderr, "atrium-worker: skipped %s: its name '%s' is not a valid model id ([a-z0-9._-])\n",
                   e.path.c_str(), e.name.c_str());
      continue;
    }
    models.emplace(e.name, Describe(e));
  }
  models_ = std::move(models);
}

std::vector<ModelInfo> ModelRegistry::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ModelInfo> out;
  for (const auto& [id, info] : models_) out.push_back(info);
  return out;
}

StatusOr<ModelInfo> ModelRegistry::Find(std::string_view name, std::string_view field, rpc::ApiError* error) {
  const std::string f(field);
  if (name.empty()) {
    *error = rpc::BadField(f, "name a model as \"models/<id>\" (see ListModels)", "MODEL_REQUIRED");
    return error->status;
  }
  constexpr std::string_view kPrefix = "models/";
  if (name.substr(0, kPrefix.size()) != kPrefix || !ValidId(name.substr(kPrefix.size()))) {
    // (StrFormat: GCC 12 warns falsely about "'" + std::string&&.)
    *error = rpc::BadField(f,
                           StrFormat("'%s' is not a model name; expected \"models/<id>\" with <id> of [a-z0-9._-]",
                                     ValidUtf8(name.substr(0, 200)).c_str()),
                           "INVALID_MODEL_NAME");
    return error->status;
  }
  const std::string id(name.substr(kPrefix.size()));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = models_.find(id);
  if (it == models_.end() && Clock::now() - last_scan_ >= kRescanInterval) {
    Rescan();
    it = models_.find(id);
  }
  if (it == models_.end()) {
    std::string names;
    for (const auto& [other, info] : models_) {
      names.append(names.empty() ? "models/" : ", models/").append(other);
    }
    *error = rpc::WithReason(NotFound(StrFormat("model '%s' is not installed; installed: %s", std::string(name).c_str(),
                                                names.empty() ? "none" : names.c_str())),
                             "MODEL_NOT_FOUND");
    error->metadata.emplace_back("model", std::string(name));
    return error->status;
  }
  return it->second;
}

StatusOr<std::shared_ptr<const TextModel>> ModelRegistry::Text(const ModelInfo& info) {
  // Built under the lock: two first requests for a model must not both pay
  // for its tokenizer, and later ones find it at once.
  std::lock_guard<std::mutex> lock(text_mu_);
  if (auto it = text_.find(info.path); it != text_.end()) return it->second;
  auto t = std::make_shared<TextModel>();
  // Only the metadata is read: the tokenizer and template keep copies, so the
  // file is not kept mapped.
  ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> file, gguf::GgufFile::Open(info.path));
  ASSIGN_OR_RETURN(t->tokenizer, Tokenizer::FromGguf(*file));
  StatusOr<ChatTemplate> chat = ChatTemplate::FromGguf(*file);
  if (chat.ok()) {
    t->chat = std::move(*chat);
  } else {
    t->chat_error = chat.status();
  }
  t->context_length = info.model.context_length();
  for (int32_t id = 0; id < t->tokenizer->vocab_size(); ++id) {
    t->max_piece_bytes = std::max(t->max_piece_bytes, t->tokenizer->TokenToPiece(id, true).size());
  }
  text_[info.path] = t;
  return std::shared_ptr<const TextModel>(t);
}

StatusOr<std::shared_ptr<const Tokenizer>> ModelRegistry::TokenizerOf(const std::string& path) {
  std::optional<ModelInfo> info;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, m] : models_) {
      if (m.path == path) info = m;
    }
  }
  if (!info) return std::shared_ptr<const Tokenizer>();
  ASSIGN_OR_RETURN(std::shared_ptr<const TextModel> text, Text(*info));
  return text->tokenizer;
}

std::string ModelRegistry::NameOfPath(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, info] : models_) {
    if (info.path == path) return info.model.name();
  }
  return "";
}

}  // namespace atrium::worker
