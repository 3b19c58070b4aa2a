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

struct BenchServeFlags {
  std::string model;
  int clients = 16;
  int64_t requests = 64;  // <= 0: until --duration
  double duration = 0;    // seconds; 0 = until --requests
  std::string prompt_tokens = "32:512";  // N or MIN:MAX
  std::string output_tokens = "16:256";
  int64_t shared_prefix = 0;
  int64_t kv_mib = 256;
  uint64_t seed = 1;
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
int RunBenchServe(const CommonFlags& common, const BenchServeFlags& flags);

}  // namespace atrium::cli
