// Store and AuditLog over one SQLite file, the embedded default
// (<data dir>/atrium.db).
//
// The file is in WAL mode, so readers never wait for a writer, with a busy
// timeout for the rare write-write overlap (a second process, such as an
// `atrium admin` command, on the same file). It is marked as ours with
// PRAGMA application_id and versioned with PRAGMA user_version; Open refuses
// a foreign SQLite file, a newer schema, or a corrupt file with a Status that
// names the path, and never modifies such a file.
//
// One connection serves all threads behind one mutex. Every call is a few
// microseconds of SQLite work (Authenticate is a primary-key lookup), so the
// lock is not where a gateway's time goes; several replicas use PostgreSQL.
#pragma once

#include <memory>
#include <string>

#include "serving/gateway/audit.h"
#include "serving/gateway/store.h"

namespace atrium::gateway {

struct SqliteStoreOptions {
  // How long a write waits for another process's lock before UNAVAILABLE.
  int busy_timeout_ms = 5000;
};

class SqliteStore final : public Store, public AuditLog {
 public:
  // The schema version this build writes; Open migrates older files.
  static constexpr int kSchemaVersion = 1;
  // PRAGMA application_id of our files: "ATR1".
  static constexpr int32_t kApplicationId = 0x41545231;

  // Opens the database at `path`, creating it (mode 0600) with the current
  // schema when it does not exist or is empty. The directory must exist.
  // ":memory:" gives a private in-memory database, for tests.
  static StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& path,
                                                     const SqliteStoreOptions& options = {});
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  const std::string& path() const;

  // Store.
  StatusOr<Tenant> CreateTenant(std::string_view tenant_id, std::string_view display_name) override;
  StatusOr<Tenant> GetTenant(std::string_view tenant_id) override;
  StatusOr<TenantPage> ListTenants(int32_t page_size, std::string_view page_token) override;
  StatusOr<Tenant> UpdateQuota(std::string_view tenant_id,
                               const std::function<void(TenantQuota&)>& change) override;
  StatusOr<IssuedKey> IssueKey(std::string_view tenant_id, bool admin) override;
  StatusOr<KeyPage> ListKeys(std::string_view tenant_id, int32_t page_size,
                             std::string_view page_token) override;
  StatusOr<ApiKey> RevokeKey(std::string_view tenant_id, std::string_view key_id) override;
  StatusOr<Principal> Authenticate(std::string_view secret) override;

  // AuditLog.
  StatusOr<int64_t> Append(const AuditRecord& record) override;
  StatusOr<AuditPage> Read(const AuditQuery& query) override;

 private:
  struct Db;
  explicit SqliteStore(std::unique_ptr<Db> db);
  std::unique_ptr<Db> db_;
};

}  // namespace atrium::gateway
