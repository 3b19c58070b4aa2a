// The `atrium` subcommands: thin, they parse flags and call the libraries.
#pragma once

#include <string>
#include <vector>

#include <memory>

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

// A model loaded for a command: weights, tokenizer, where it came from.
struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::string path;
  double load_seconds = 0;  // resolving the name included
};
// A catalog name, a path to a GGUF file, or "" (the default model) -> the
// loaded model, with a progress bar when loading takes a while.
StatusOr<Loaded> LoadModel(const CommonFlags& common, const std::string& name);
// Prints "atrium: <status>" to stderr; returns the exit code 1.
int Fail(const Status& s);

int RunModels(const CommonFlags& common, const ModelsFlags& flags);
int RunGenerate(const CommonFlags& common, GenerateFlags flags);
int RunChat(const CommonFlags& common, GenerateFlags flags);
int RunBench(const CommonFlags& common, const BenchFlags& flags);

}  // namespace atrium::cli
