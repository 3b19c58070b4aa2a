#include "models/catalog.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <regex>

#include "models/gguf.h"
#include "models/tokenizer/chat_template.h"

namespace atrium {
namespace {

namespace fs = std::filesystem;

std::string FileTypeName(int64_t file_type) {
  switch (file_type) {
    case 0: return "F32";
    case 1: return "F16";
    case 2: return "Q4_0";
    case 3: return "Q4_1";
    case 7: return "Q8_0";
    case 8: return "Q5_0";
    case 9: return "Q5_1";
    case 10: return "Q2_K";
    case 11: return "Q3_K_S";
    case 12: return "Q3_K_M";
    case 13: return "Q3_K_L";
    case 14: return "Q4_K_S";
    case 15: return "Q4_K_M";
    case 16: return "Q5_K_S";
    case 17: return "Q5_K_M";
    case 18: return "Q6_K";
    case 32: return "BF16";
    default: return "mixed";
  }
}

std::string PublisherOf(const std::string& arch) {
  if (arch.rfind("gemma", 0) == 0) return "Google";
  if (arch.rfind("qwen", 0) == 0) return "Alibaba";
  if (arch == "mistral") return "Mistral AI";
  if (arch == "llama") return "Meta";
  return "unknown";
}

std::string NameFromFile(const std::string& path) {
  std::string stem = fs::path(path).stem().string();
  std::transform(stem.begin(), stem.end(), stem.begin(), [](unsigned char ch) { return std::tolower(ch); });
  static const std::regex kQuantSuffix(R"([.\-_](q[0-9][a-z0-9_]*|iq[0-9][a-z0-9_]*|f16|f32|bf16)$)");
  return std::regex_replace(stem, kQuantSuffix, "");
}

}  // namespace

std::vector<std::string> Catalog::SearchDirs(const std::string& flag_dir) {
  std::vector<std::string> dirs;
  if (!flag_dir.empty()) dirs.push_back(flag_dir);
  if (const char* env = std::getenv("ATRIUM_MODELS_DIR")) {
    std::string list = env;
    size_t start = 0;
    while (start <= list.size()) {
      const size_t end = std::min(list.find(':', start), list.size());
      if (end > start) dirs.push_back(list.substr(start, end - start));
      start = end + 1;
    }
  }
  const char* home = std::getenv("HOME");
  dirs.push_back(std::string(home != nullptr ? home : "/root") + "/.cache/atrium/models");
  return dirs;
}

StatusOr<CatalogEntry> Catalog::Describe(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> f, gguf::GgufFile::Open(path));
  CatalogEntry e;
  e.path = path;
  e.file_bytes = f->size();
  e.name = NameFromFile(path);
  ASSIGN_OR_RETURN(e.architecture, f->GetString("general.architecture"));
  ASSIGN_OR_RETURN(std::string org, f->GetStringOr("general.organization", ""));
  e.provider = org.empty() ? PublisherOf(e.architecture) : org;
  for (const gguf::TensorInfo& t : f->tensors()) e.parameters += t.n_elements;
  ASSIGN_OR_RETURN(int64_t file_type, f->GetIntOr("general.file_type", -1));
  e.quantization = FileTypeName(file_type);
  ASSIGN_OR_RETURN(e.context_length, f->GetIntOr(e.architecture + ".context_length", 0));
  // Descriptive keys only: a malformed one is left empty, not a reason to skip the model.
  auto optional = [&](const char* key) {
    StatusOr<std::string> v = f->GetStringOr(key, "");
    return v.ok() ? *v : std::string();
  };
  e.display_name = optional("general.name");
  e.family = optional("general.basename");
  e.license = optional("general.license");
  e.version = optional("general.version");
  e.chat = ChatTemplate::FromGguf(*f).ok();
  return e;
}

Catalog Catalog::Scan(const std::vector<std::string>& dirs) {
  Catalog c;
  std::vector<std::string> seen;
  for (const std::string& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<std::string> files;
    for (const fs::directory_entry& de : fs::directory_iterator(dir, ec)) {
      if (de.path().extension() == ".gguf") files.push_back(de.path().string());
    }
    std::sort(files.begin(), files.end());
    for (const std::string& file : files) {
      const std::string canonical = fs::weakly_canonical(file, ec).string();
      if (std::find(seen.begin(), seen.end(), canonical) != seen.end()) continue;
      seen.push_back(canonical);
      StatusOr<CatalogEntry> e = Describe(file);
      if (!e.ok()) {
        c.warnings_.push_back(e.status().ToString());
        continue;
      }
      bool clash = false;
      for (const CatalogEntry& other : c.entries_) clash |= other.name == e->name;
      if (clash) e->name += "-" + e->quantization;  // same model, another quantization
      c.entries_.push_back(std::move(*e));
    }
  }
  return c;
}

StatusOr<std::string> Catalog::Resolve(const std::string& name_or_path) const {
  for (const CatalogEntry& e : entries_) {
    if (e.name == name_or_path) return e.path;
  }
  std::error_code ec;
  if (fs::is_regular_file(name_or_path, ec)) return name_or_path;
  std::string names;
  for (const CatalogEntry& e : entries_) names += (names.empty() ? "" : ", ") + e.name;
  return NotFound(StrFormat("model '%s' is neither a catalog name nor a GGUF file; installed models: %s "
                            "(see `atrium models`, or run scripts/setup.sh)",
                            name_or_path.c_str(), names.empty() ? "none" : names.c_str()));
}

StatusOr<std::string> Catalog::DefaultModel() const {
  for (const CatalogEntry& e : entries_) {
    if (e.name.find("smollm2") != std::string::npos) return e.path;
  }
  if (!entries_.empty()) return entries_.front().path;
  return NotFound("no models installed: run scripts/setup.sh, or pass --model PATH.gguf");
}

}  // namespace atrium
