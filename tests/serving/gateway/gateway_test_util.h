// Helpers for the gateway state tests: raw access to database files.
#pragma once

#include <fstream>
#include <iterator>
#include <string>

namespace atrium::gateway::testing {

// The whole file, or "" when it does not exist.
inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace atrium::gateway::testing
