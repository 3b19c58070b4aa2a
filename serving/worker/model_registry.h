// The models a worker serves: the local catalog, described as public
// resources ("models/<id>"), and per model the text side of a request
// (tokenizer, chat template) that the engine's ModelPool keeps to itself.
//
// Requests name models by catalog id only, never by path: a tenant must not
// make its worker open arbitrary files. The pool is then given the file's
// path, so a name cannot be confused with a file in the working directory.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "atrium/v1/plaza.pb.h"
#include "models/gguf.h"
#include "models/tokenizer/chat_template.h"
#include "models/tokenizer/tokenizer.h"
#include "serving/worker/rpc_status.h"

namespace atrium::worker {

struct ModelInfo {
  std::string id;    // "smollm2-135m-instruct"
  std::string path;  // the GGUF file
  v1::Model model;   // name "models/<id>"
};

// What requests for one model need besides its engine. Immutable once built.
struct TextModel {
  std::shared_ptr<const Tokenizer> tokenizer;  // shared with the model pool's engine
  std::optional<ChatTemplate> chat;  // absent: Chat gets FAILED_PRECONDITION
  Status chat_error;                 // why it is absent
  int64_t context_length = 0;
  // The longest token's bytes: a text of n bytes has at least
  // n / max_piece_bytes tokens, so a prompt far too long for the context is
  // refused before it is tokenized.
  size_t max_piece_bytes = 1;
};

class ModelRegistry {
 public:
  // models_dir: searched first (see Catalog::SearchDirs). Scans now.
  explicit ModelRegistry(std::string models_dir);

  // Ordered by name.
  std::vector<ModelInfo> List() const;
  // "models/<id>" -> the model. INVALID_ARGUMENT for a malformed name;
  // NOT_FOUND (after a rescan, at most one per few seconds: models may be
  // installed while the worker runs) for an unknown one. `field` names the
  // request field in the error.
  StatusOr<ModelInfo> Find(std::string_view name, std::string_view field, rpc::ApiError* error);
  // Builds the model's tokenizer and template on first use, then shares them.
  StatusOr<std::shared_ptr<const TextModel>> Text(const ModelInfo& info);
  // "models/<id>" for a file path the pool reports, or "" if unknown.
  std::string NameOfPath(const std::string& path) const;
  // The tokenizer of the model at `path` (Text's), for the model pool: one
  // per model in the worker. Null for a path no listed model has.
  StatusOr<std::shared_ptr<const Tokenizer>> TokenizerOf(const std::string& path);

  // [a-z0-9][a-z0-9._-]*, at most 128 characters.
  static bool ValidId(std::string_view id);

 private:
  void Rescan();  // under mu_

  const std::string models_dir_;
  mutable std::mutex mu_;
  std::map<std::string, ModelInfo> models_;  // by id
  std::chrono::steady_clock::time_point last_scan_{};
  std::mutex text_mu_;  // guards text_; never held with mu_
  std::map<std::string, std::shared_ptr<const TextModel>> text_;  // by path
};

}  // namespace atrium::worker
