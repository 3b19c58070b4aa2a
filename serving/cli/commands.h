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

struct BenchFlags {
  std::string model;
  int64_t prompt_tokens = 512;
  int64_t gen_tokens = 128;
  int repetitions = 3;
};

int RunModels(const CommonFlags& common, const ModelsFlags& flags);
int RunGenerate(const CommonFlags& common, GenerateFlags flags);
int RunChat(const CommonFlags& common, GenerateFlags flags);
int RunBench(const CommonFlags& common, const BenchFlags& flags);

}  // namespace atrium::cli
