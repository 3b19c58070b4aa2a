// The `atrium` subcommands: thin, they parse flags and call the libraries.
#pragma once

#include <string>
#include <vector>

#include "serving/engine/session.h"

namespace atrium::cli {

struct CommonFlags {
  std::string models_dir;
  int threads = 0;  // 0 = one per core
};

struct ModelsFlags {
  bool json = false;
};

struct GenerateFlags {
  std::string model;  // catalog name or GGUF path; empty = the default model
  std::string prompt;
  std::string system;
  bool chat = false;
  int64_t context = 4096;
  bool quiet = false;  // no stats on stderr
  GenerationOptions gen;
  bool seed_given = false;
};

int RunModels(const CommonFlags& common, const ModelsFlags& flags);
int RunGenerate(const CommonFlags& common, GenerateFlags flags);
int RunChat(const CommonFlags& common, GenerateFlags flags);

}  // namespace atrium::cli
