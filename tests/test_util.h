// Helpers shared by tests: where test data and the real model files are.
#pragma once

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace atrium::testing {

// tests/data in the source tree (set by CMake for every test).
inline std::string TestDataDir() {
  const char* dir = std::getenv("ATRIUM_TEST_DATA");
  return dir != nullptr ? dir : "tests/data";
}

// The directory scripts/setup.sh links the real model files into.
inline std::string ModelsDir() {
  if (const char* dir = std::getenv("ATRIUM_MODELS_DIR")) return dir;
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : "/root") + "/.cache/atrium/models";
}

// Path of a real model file, e.g. "SmolLM2-135M-Instruct.Q4_1.gguf", or ""
// when it is not installed.
inline std::string RealModelPath(const std::string& file) {
  const std::string path = ModelsDir() + "/" + file;
  return std::filesystem::exists(path) ? path : "";
}

inline bool ModelsRequired() {
  const char* v = std::getenv("ATRIUM_REQUIRE_MODELS");
  return v != nullptr && std::string(v) == "1";
}

// The atrium-worker binary built beside the tests (ATRIUM_BINARY_DIR).
inline std::string WorkerBinary() {
  const char* dir = std::getenv("ATRIUM_BINARY_DIR");
  return std::string(dir != nullptr ? dir : ".") + "/atrium-worker";
}

// A fresh private directory, removed with the object. Short and under
// /tmp: a Unix socket path in it must fit in 107 bytes.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/atrium-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace atrium::testing

constexpr const char* kSmolLm2File = "SmolLM2-135M-Instruct.Q4_1.gguf";
constexpr const char* kGemma3File = "gemma-3-270m-q4_k_m.gguf";

// In a model test: skip when the model is not installed, but fail when CI
// requires models (ATRIUM_REQUIRE_MODELS=1, set by .ci/run).
#define ATRIUM_REQUIRE_MODEL(path_var, file)                                        \
  const std::string path_var = ::atrium::testing::RealModelPath(file);              \
  if (path_var.empty()) {                                                           \
    if (::atrium::testing::ModelsRequired()) FAIL() << "model not installed: " << file \
                                                    << " (run scripts/setup.sh)";  \
    GTEST_SKIP() << "model not installed: " << file << " (run scripts/setup.sh)";   \
  }
