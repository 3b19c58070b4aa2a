// The local model catalog: every GGUF file in the models directories, with
// the facts a user picks a model by. Wherever a model is asked for, a
// catalog name or a path to a GGUF file is accepted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace atrium {

struct CatalogEntry {
  std::string name;          // "smollm2-135m-instruct": the file name, lower case, quantization dropped
  std::string provider;      // general.organization, or the architecture's publisher
  std::string architecture;  // general.architecture as the file names it
  int64_t parameters = 0;    // total elements of all tensors
  std::string quantization;  // "Q4_1", "Q4_K_M" (general.file_type)
  int64_t context_length = 0;
  std::string path;
  uint64_t file_bytes = 0;
  // What the file says of itself, "" where it says nothing (or not a string).
  std::string display_name;  // general.name
  std::string family;        // general.basename
  std::string license;       // general.license
  std::string version;       // general.version
  bool chat = false;         // it has a chat template that parses
};

class Catalog {
 public:
  // Directories searched, in order: `flag_dir` (if not empty), each entry of
  // $ATRIUM_MODELS_DIR (colon-separated), then ~/.cache/atrium/models, where
  // scripts/setup.sh links the installed models.
  static std::vector<std::string> SearchDirs(const std::string& flag_dir);
  // Reads every *.gguf in the directories. A file that fails validation is
  // left out and reported in warnings(); the others are still listed.
  static Catalog Scan(const std::vector<std::string>& dirs);

  const std::vector<CatalogEntry>& entries() const { return entries_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  // A catalog name, or a path to a GGUF file -> the file's path. NOT_FOUND
  // lists the names that exist.
  StatusOr<std::string> Resolve(const std::string& name_or_path) const;
  // The model used when none is named: SmolLM2 if installed, else the first.
  StatusOr<std::string> DefaultModel() const;

  // Describes one GGUF file (also for a path given directly).
  static StatusOr<CatalogEntry> Describe(const std::string& path);

 private:
  std::vector<CatalogEntry> entries_;
  std::vector<std::string> warnings_;
};

}  // namespace atrium
