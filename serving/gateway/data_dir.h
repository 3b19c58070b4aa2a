// The gateway's data directory (default ./atrium-data): the SQLite
// database (tenants, hashed keys, quotas, audit log), worker logs, and on
// the first run the operator's admin key.
//
// First run (no database yet, or one without tenants): creates the
// directory (0700), the database (0600), the operator tenant
// (tenants/admin) and one admin key, whose secret is written to
// <dir>/admin.key (0600, readable by this user only) and handed back once
// to be printed; it is never shown again (the store keeps its SHA-256).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "serving/gateway/sqlite_store.h"

namespace atrium::gateway {

// The SQLite database's file name inside the data directory.
inline constexpr const char* kDatabaseFile = "atrium.db";

struct DataDir {
  std::string path;
  std::unique_ptr<SqliteStore> store;
  std::string log_dir;  // <path>/logs
  // Set on the first run only: the new admin key and where it was written.
  std::optional<IssuedKey> new_admin_key;
  std::string admin_key_file;  // <path>/admin.key
  std::string packed_dir;      // <path>/packed: packed weights the workers share (models/packed_cache.h)
};

StatusOr<DataDir> OpenDataDir(const std::string& path);

}  // namespace atrium::gateway
