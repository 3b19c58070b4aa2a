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
  bool kv_lazy = false;  // commit the KV pool's pages as blocks fill, not at start
  std::string kv_type = "f16";
  uint64_t seed = 1;
  // Every request's sampling; temperature 0 (the default here) is greedy.
  // top_k and top_p default to SamplingParams' (and llama.cpp's).
  float temperature = 0;
  int32_t top_k = 40;
  float top_p = 0.95f;
};

struct ServeFlags {
  std::string data_dir = "atrium-data";
  std::string host = "0.0.0.0";
  int port = 50051;          // 0: a free port
  int metrics_port = 9464;   // 0: a free port; -1: no metrics endpoint
  std::string worker_binary;  // empty: atrium-worker next to atrium
  int64_t kv_mib = 256;
  std::string kv_type = "f16";
  int64_t budget_mib = 4096;
  double idle_timeout = 600;   // seconds a worker may idle before it is stopped
  double drain_timeout = 30;   // seconds in-flight calls may take after SIGTERM
  int64_t max_message_mib = 16;
  int64_t max_prompt_kib = 1024;
};

struct AdminFlags {
  std::string address = "localhost:50051";
  std::string key;  // the admin key; else $ATRIUM_API_KEY, else --key-file
  std::string key_file = "atrium-data/admin.key";
  double timeout = 30;  // seconds per call
  // The subcommand's arguments.
  std::string tenant;  // create-tenant, create-key, set-quota, list-keys, get-quota: "acme" or "tenants/acme"
  std::string display_name;
  std::string key_name;  // revoke-key: "tenants/acme/apiKeys/key-..."
  int64_t requests_per_minute = -1;  // set-quota: -1 leaves it unchanged
  int64_t tokens_per_minute = -1;
  int64_t concurrent_streams = -1;
  int32_t page_size = 0;
  std::string data_dir = "atrium-data";  // audit: read from the database there
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
// The gateway (serving/gateway): serves until SIGTERM or SIGINT, then drains.
int RunServe(const CommonFlags& common, const ServeFlags& flags);
// `atrium admin <command>`: one Admin API call with the admin key; prints
// the answer as JSON. command: create-tenant, create-key, revoke-key,
// set-quota, get-quota, list-tenants, list-keys; or audit, which reads the
// audit log from the data directory (JSON lines).
int RunAdmin(const std::string& command, const AdminFlags& flags);

}  // namespace atrium::cli
