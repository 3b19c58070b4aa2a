#include "serving/gateway/sqlite_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include <sqlite3.h>

#include "serving/gateway/keys.h"

namespace atrium::gateway {
namespace {

// Schema version 1. A later version adds a migration step from the previous
// one in Migrate(); a step that has shipped never changes.
//
// The audit_log triggers make the table append-only for every writer,
// including a person with the sqlite3 shell who has not read this comment.
// AUTOINCREMENT keeps seq strictly increasing over the file's life.
constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE tenants (
  id TEXT PRIMARY KEY NOT NULL,
  display_name TEXT NOT NULL,
  create_time_ms INTEGER NOT NULL,
  requests_per_minute INTEGER NOT NULL DEFAULT 0,
  tokens_per_minute INTEGER NOT NULL DEFAULT 0,
  concurrent_streams INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE api_keys (
  key_id TEXT PRIMARY KEY NOT NULL,
  tenant_id TEXT NOT NULL REFERENCES tenants (id),
  secret_sha256 BLOB NOT NULL CHECK (length(secret_sha256) = 32),
  admin INTEGER NOT NULL,
  create_time_ms INTEGER NOT NULL,
  revoke_time_ms INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, key_id);
CREATE TABLE audit_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  time_ms INTEGER NOT NULL,
  tenant_id TEXT NOT NULL,
  key_id TEXT NOT NULL,
  method TEXT NOT NULL,
  model TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  status_code INTEGER NOT NULL,
  latency_ms INTEGER NOT NULL
);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, seq);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
)sql";

// Every table Open checks for, so a file whose schema was damaged is refused
// at start rather than at the first call that touches it.
constexpr const char* kProbes[] = {
    "SELECT id, display_name, create_time_ms, requests_per_minute, tokens_per_minute, "
    "concurrent_streams FROM tenants LIMIT 0",
    "SELECT key_id, tenant_id, secret_sha256, admin, create_time_ms, revoke_time_ms "
    "FROM api_keys LIMIT 0",
    "SELECT seq, time_ms, tenant_id, key_id, method, model, prompt_tokens, completion_tokens, "
    "status_code, latency_ms FROM audit_log LIMIT 0",
};

constexpr const char* kTenantColumns =
    "id, display_name, create_time_ms, requests_per_minute, tokens_per_minute, concurrent_streams";
constexpr const char* kKeyColumns = "key_id, tenant_id, admin, create_time_ms, revoke_time_ms";
constexpr const char* kAuditColumns =
    "seq, time_ms, tenant_id, key_id, method, model, prompt_tokens, completion_tokens, "
    "status_code, latency_ms";

Status AlreadyExists(std::string m) { return Status(StatusCode::kAlreadyExists, std::move(m)); }

// A cached prepared statement; resets itself at scope exit so the next user
// finds it ready, and so no statement is left running at COMMIT.
class Stmt {
 public:
  explicit Stmt(sqlite3_stmt* s) : s_(s) {}
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& Text(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Int(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& Blob(int i, const void* data, size_t n) {
    sqlite3_bind_blob(s_, i, data, static_cast<int>(n), SQLITE_TRANSIENT);
    return *this;
  }
  int Step() { return sqlite3_step(s_); }

  std::string ColText(int c) {
    const unsigned char* p = sqlite3_column_text(s_, c);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, c));
  }
  int64_t ColInt(int c) { return sqlite3_column_int64(s_, c); }
  const void* ColBlob(int c, size_t* n) {
    const void* p = sqlite3_column_blob(s_, c);
    *n = static_cast<size_t>(sqlite3_column_bytes(s_, c));
    return p;
  }

 private:
  sqlite3_stmt* s_;
};

Tenant ReadTenantRow(Stmt& st) {
  Tenant t;
  t.id = st.ColText(0);
  t.display_name = st.ColText(1);
  t.create_time_ms = st.ColInt(2);
  t.quota.requests_per_minute = st.ColInt(3);
  t.quota.tokens_per_minute = st.ColInt(4);
  t.quota.concurrent_streams = st.ColInt(5);
  return t;
}

ApiKey ReadKeyRow(Stmt& st) {
  ApiKey k;
  k.key_id = st.ColText(0);
  k.tenant_id = st.ColText(1);
  k.admin = st.ColInt(2) != 0;
  k.create_time_ms = st.ColInt(3);
  k.revoke_time_ms = st.ColInt(4);
  return k;
}

AuditRecord ReadAuditRow(Stmt& st) {
  AuditRecord r;
  r.seq = st.ColInt(0);
  r.time_ms = st.ColInt(1);
  r.tenant_id = st.ColText(2);
  r.key_id = st.ColText(3);
  r.method = st.ColText(4);
  r.model = st.ColText(5);
  r.prompt_tokens = st.ColInt(6);
  r.completion_tokens = st.ColInt(7);
  r.code = static_cast<StatusCode>(st.ColInt(8));
  r.latency_ms = st.ColInt(9);
  return r;
}

Status ValidateDisplayName(std::string_view name) {
  if (name.size() > 256) {
    return InvalidArgument(StrFormat("display_name is %zu bytes; at most 256", name.size()));
  }
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20) {
      return InvalidArgument("display_name contains a control character");
    }
  }
  return OkStatus();
}

Status ValidateKeyId(std::string_view key_id) {
  if (IsValidKeyId(key_id)) return OkStatus();
  return InvalidArgument(StrFormat("'%.*s' is not an API key id (expected key-<12 hex digits>)",
                                   static_cast<int>(std::min<size_t>(key_id.size(), 80)), key_id.data()));
}

// SQLite itself creates the file with the process umask (often 0644). The
// hashes are not secrets, but tenants and the audit log are nobody else's
// business, so the file is created 0600 first; SQLite gives its -wal and
// -shm files the same mode.
Status CreatePrivateFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    const bool hint = errno == ENOENT || errno == EACCES;
    return FailedPrecondition(StrFormat("%s: cannot open the database file for writing: %s%s",
                                        path.c_str(), std::strerror(errno),
                                        hint ? " (does its directory exist and is it writable?)" : ""));
  }
  ::close(fd);
  return OkStatus();
}

}  // namespace

struct SqliteStore::Db {
  enum class Sync { kNormal, kFull };

  std::string path;
  sqlite3* db = nullptr;
  std::mutex mu;  // guards everything below and every use of `db`
  std::unordered_map<const char*, sqlite3_stmt*> stmts;  // keyed by the SQL literal
  Sync sync = Sync::kFull;  // what PRAGMA synchronous is now

  ~Db() {
    for (auto& [sql, s] : stmts) sqlite3_finalize(s);
    // The last connection to close checkpoints the WAL into the main file
    // and removes the -wal file.
    if (db != nullptr) sqlite3_close_v2(db);
  }

  // A Status for SQLite result `rc`, naming the file and what was being done.
  Status Error(int rc, std::string_view what) const {
    const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    std::string m = StrFormat("%s: %.*s: %s", path.c_str(), static_cast<int>(what.size()),
                              what.data(), detail);
    switch (rc & 0xff) {
      case SQLITE_CORRUPT:
      case SQLITE_NOTADB:
        return DataLoss(m + " (the file is damaged or is not a database: restore it from a "
                            "backup, or move it away to start with an empty store)");
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
        return Unavailable(m + " (another process holds the database lock)");
      case SQLITE_FULL:
        return ResourceExhausted(m + " (the disk is full)");
      case SQLITE_READONLY:
      case SQLITE_PERM:
      case SQLITE_CANTOPEN:
      case SQLITE_AUTH:
      case SQLITE_CONSTRAINT:
        return FailedPrecondition(m);
      case SQLITE_IOERR:
        return Unavailable(m);
      default:
        return Internal(m);
    }
  }

  Status Prepare(const char* sql, sqlite3_stmt** out) {
    auto it = stmts.find(sql);
    if (it != stmts.end()) {
      *out = it->second;
      return OkStatus();
    }
    const int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, nullptr);
    if (rc != SQLITE_OK) return Error(rc, "preparing a statement");
    stmts.emplace(sql, *out);
    return OkStatus();
  }

  Status Exec(const char* sql, std::string_view what) {
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    return rc == SQLITE_OK ? OkStatus() : Error(rc, what);
  }

  // One integer from a single-row query (a PRAGMA or a count).
  StatusOr<int64_t> QueryInt(const char* sql, std::string_view what) {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, nullptr);
    int64_t v = 0;
    if (rc == SQLITE_OK) {
      rc = sqlite3_step(s);
      if (rc == SQLITE_ROW) {
        v = sqlite3_column_int64(s, 0);
        rc = SQLITE_OK;
      }
    }
    Status status = rc == SQLITE_OK ? OkStatus() : Error(rc, what);
    sqlite3_finalize(s);
    RETURN_IF_ERROR(status);
    return v;
  }

  // Runs `body` between BEGIN IMMEDIATE and COMMIT, rolling back when the
  // body or the commit fails. IMMEDIATE takes the write lock up front, so a
  // transaction never fails half-way on a lock upgrade. The caller holds mu.
  template <typename F>
  Status Transaction(Sync want, F&& body) {
    if (want != sync) {
      RETURN_IF_ERROR(Exec(want == Sync::kFull ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                           "setting the sync mode"));
      sync = want;
    }
    RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE", "starting a write transaction"));
    Status s = body();
    if (s.ok()) s = Exec("COMMIT", "committing");
    if (!s.ok() && !sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return s;
  }

  // Sets journal_mode=WAL and returns the mode SQLite reports afterwards.
  StatusOr<std::string> SwitchToWal() {
    sqlite3_stmt* s = nullptr;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &s, nullptr);
    std::string mode;
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
      mode = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
      rc = SQLITE_OK;
    }
    Status status = rc == SQLITE_OK ? OkStatus() : Error(rc, "switching to WAL mode");
    sqlite3_finalize(s);
    RETURN_IF_ERROR(status);
    return mode;
  }

  Status Open(const SqliteStoreOptions& options);
  Status CreateSchema();
  StatusOr<Tenant> ReadTenant(std::string_view id);
  StatusOr<ApiKey> ReadKey(std::string_view key_id);
};

// Declares a Stmt `var` for `sql` or returns the preparation error.
#define ATRIUM_PREPARE(db, var, sql)                 \
  sqlite3_stmt* var##_raw = nullptr;                 \
  RETURN_IF_ERROR((db).Prepare((sql), &var##_raw)); \
  Stmt var(var##_raw)

Status SqliteStore::Db::Open(const SqliteStoreOptions& options) {
  const bool in_memory = path == ":memory:";
  if (!in_memory) RETURN_IF_ERROR(CreatePrivateFile(path));
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) return Error(rc, "opening");
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, options.busy_timeout_ms);

  // Identify the file before changing anything in it: a foreign or newer
  // file is refused untouched (not even switched to WAL).
  ASSIGN_OR_RETURN(const int64_t app_id, QueryInt("PRAGMA application_id", "reading the file header"));
  ASSIGN_OR_RETURN(const int64_t version, QueryInt("PRAGMA user_version", "reading the file header"));
  ASSIGN_OR_RETURN(const int64_t n_objects,
                   QueryInt("SELECT count(*) FROM sqlite_schema", "reading the schema"));
  const bool empty = app_id == 0 && version == 0 && n_objects == 0;
  if (!empty && app_id != kApplicationId) {
    return FailedPrecondition(StrFormat(
        "%s is not an Atrium database (SQLite application_id 0x%08llx, user_version %lld, %lld "
        "schema objects); it was left untouched: move it away or use another data directory",
        path.c_str(), static_cast<unsigned long long>(app_id) & 0xffffffffull,
        static_cast<long long>(version), static_cast<long long>(n_objects)));
  }
  if (version > kSchemaVersion) {
    return FailedPrecondition(StrFormat(
        "%s has schema version %lld, written by a newer Atrium; this build reads up to version %d",
        path.c_str(), static_cast<long long>(version), kSchemaVersion));
  }
  if (!empty && version < 1) {
    return DataLoss(StrFormat("%s is marked as an Atrium database but has no schema version; the "
                              "file is damaged: restore it from a backup or move it away",
                              path.c_str()));
  }

  ASSIGN_OR_RETURN(const std::string mode, SwitchToWal());
  if (mode != "wal" && !(in_memory && mode == "memory")) {
    return FailedPrecondition(StrFormat("%s: cannot use WAL mode (journal_mode stays '%s'); keep the "
                                        "data directory on a local file system",
                                        path.c_str(), mode.c_str()));
  }
  RETURN_IF_ERROR(Exec("PRAGMA foreign_keys=ON", "enabling foreign keys"));
  if (empty) RETURN_IF_ERROR(CreateSchema());
  // Migrations from older versions go here, each in its own transaction.

  for (const char* probe : kProbes) {
    sqlite3_stmt* s = nullptr;
    rc = sqlite3_prepare_v2(db, probe, -1, &s, nullptr);
    sqlite3_finalize(s);
    if (rc != SQLITE_OK) {
      return DataLoss(StrFormat("%s: the schema is damaged (%s); restore the file from a backup or "
                                "move it away", path.c_str(), sqlite3_errmsg(db)));
    }
  }
  return OkStatus();
}

Status SqliteStore::Db::CreateSchema() {
  return Transaction(Sync::kFull, [&]() -> Status {
    // Another process may have created the schema since we looked.
    ASSIGN_OR_RETURN(const int64_t app_id, QueryInt("PRAGMA application_id", "reading the file header"));
    if (app_id == kApplicationId) return OkStatus();
    RETURN_IF_ERROR(Exec(kSchemaV1, "creating the schema"));
    RETURN_IF_ERROR(Exec(StrFormat("PRAGMA application_id=%d", kApplicationId).c_str(), "marking the file"));
    return Exec(StrFormat("PRAGMA user_version=%d", kSchemaVersion).c_str(), "marking the file");
  });
}

StatusOr<Tenant> SqliteStore::Db::ReadTenant(std::string_view id) {
  static const std::string sql = StrFormat("SELECT %s FROM tenants WHERE id = ?1", kTenantColumns);
  ATRIUM_PREPARE(*this, st, sql.c_str());
  st.Text(1, id);
  const int rc = st.Step();
  if (rc == SQLITE_ROW) return ReadTenantRow(st);
  if (rc == SQLITE_DONE) {
    return NotFound(StrFormat("tenant 'tenants/%.*s' not found", static_cast<int>(id.size()), id.data()));
  }
  return Error(rc, "reading a tenant");
}

StatusOr<ApiKey> SqliteStore::Db::ReadKey(std::string_view key_id) {
  static const std::string sql = StrFormat("SELECT %s FROM api_keys WHERE key_id = ?1", kKeyColumns);
  ATRIUM_PREPARE(*this, st, sql.c_str());
  st.Text(1, key_id);
  const int rc = st.Step();
  if (rc == SQLITE_ROW) return ReadKeyRow(st);
  if (rc == SQLITE_DONE) {
    return NotFound(StrFormat("API key '%.*s' not found", static_cast<int>(key_id.size()), key_id.data()));
  }
  return Error(rc, "reading an API key");
}

SqliteStore::SqliteStore(std::unique_ptr<Db> db) : db_(std::move(db)) {}
SqliteStore::~SqliteStore() = default;

const std::string& SqliteStore::path() const { return db_->path; }

StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path,
                                                         const SqliteStoreOptions& options) {
  if (path.empty()) return InvalidArgument("the database path is empty");
  if (sqlite3_threadsafe() == 0) {
    return FailedPrecondition("the SQLite library was built without thread support");
  }
  auto db = std::make_unique<Db>();
  db->path = path;
  RETURN_IF_ERROR(db->Open(options));
  return std::unique_ptr<SqliteStore>(new SqliteStore(std::move(db)));
}

StatusOr<Tenant> SqliteStore::CreateTenant(std::string_view tenant_id, std::string_view display_name) {
  RETURN_IF_ERROR(ValidateTenantId(tenant_id));
  RETURN_IF_ERROR(ValidateDisplayName(display_name));
  Tenant t;
  t.id = tenant_id;
  t.display_name = display_name.empty() ? tenant_id : display_name;
  t.create_time_ms = UnixNowMs();
  std::lock_guard<std::mutex> lock(db_->mu);
  RETURN_IF_ERROR(db_->Transaction(Db::Sync::kFull, [&]() -> Status {
    ATRIUM_PREPARE(*db_, st, "INSERT INTO tenants (id, display_name, create_time_ms) VALUES (?1, ?2, ?3)");
    st.Text(1, t.id).Text(2, t.display_name).Int(3, t.create_time_ms);
    const int rc = st.Step();
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
      return AlreadyExists(StrFormat("tenant '%s' already exists", t.name().c_str()));
    }
    return rc == SQLITE_DONE ? OkStatus() : db_->Error(rc, "creating a tenant");
  }));
  return t;
}

StatusOr<Tenant> SqliteStore::GetTenant(std::string_view tenant_id) {
  RETURN_IF_ERROR(ValidateTenantId(tenant_id));
  std::lock_guard<std::mutex> lock(db_->mu);
  return db_->ReadTenant(tenant_id);
}

StatusOr<TenantPage> SqliteStore::ListTenants(int32_t page_size, std::string_view page_token) {
  ASSIGN_OR_RETURN(const int32_t size, EffectivePageSize(page_size));
  std::string after;
  if (!page_token.empty()) {
    ASSIGN_OR_RETURN(after, DecodePageToken("tenants", page_token));
  }
  static const std::string sql =
      StrFormat("SELECT %s FROM tenants WHERE id > ?1 ORDER BY id LIMIT ?2", kTenantColumns);
  TenantPage page;
  std::lock_guard<std::mutex> lock(db_->mu);
  ATRIUM_PREPARE(*db_, st, sql.c_str());
  // One row more than the page tells whether there is a next page.
  st.Text(1, after).Int(2, int64_t{size} + 1);
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) page.tenants.push_back(ReadTenantRow(st));
  if (rc != SQLITE_DONE) return db_->Error(rc, "listing tenants");
  if (page.tenants.size() > static_cast<size_t>(size)) {
    page.tenants.pop_back();
    page.next_page_token = EncodePageToken("tenants", page.tenants.back().id);
  }
  return page;
}

StatusOr<Tenant> SqliteStore::UpdateQuota(std::string_view tenant_id,
                                          const std::function<void(TenantQuota&)>& change) {
  RETURN_IF_ERROR(ValidateTenantId(tenant_id));
  std::lock_guard<std::mutex> lock(db_->mu);
  StatusOr<Tenant> result = Internal("unset");
  RETURN_IF_ERROR(db_->Transaction(Db::Sync::kFull, [&]() -> Status {
    result = db_->ReadTenant(tenant_id);  // NOT_FOUND for no such tenant
    if (!result.ok()) return result.status();
    TenantQuota& quota = result->quota;
    change(quota);
    RETURN_IF_ERROR(ValidateQuota(quota));
    ATRIUM_PREPARE(*db_, st,
                   "UPDATE tenants SET requests_per_minute = ?2, tokens_per_minute = ?3, "
                   "concurrent_streams = ?4 WHERE id = ?1");
    st.Text(1, tenant_id).Int(2, quota.requests_per_minute).Int(3, quota.tokens_per_minute)
        .Int(4, quota.concurrent_streams);
    const int rc = st.Step();
    return rc == SQLITE_DONE ? OkStatus() : db_->Error(rc, "setting a quota");
  }));
  return result;
}

StatusOr<IssuedKey> SqliteStore::IssueKey(std::string_view tenant_id, bool admin) {
  RETURN_IF_ERROR(ValidateTenantId(tenant_id));
  IssuedKey issued;
  issued.key.tenant_id = tenant_id;
  issued.key.admin = admin;
  issued.key.create_time_ms = UnixNowMs();
  std::lock_guard<std::mutex> lock(db_->mu);
  RETURN_IF_ERROR(db_->Transaction(Db::Sync::kFull, [&]() -> Status {
    RETURN_IF_ERROR(db_->ReadTenant(tenant_id).status());
    // 48 random bits make a collision of key ids rare, not impossible: a
    // few fresh draws make failing for that reason practically never.
    for (int attempt = 0; attempt < 4; ++attempt) {
      ASSIGN_OR_RETURN(issued.key.key_id, NewKeyId());
      ASSIGN_OR_RETURN(issued.secret, NewSecret(issued.key.key_id));
      const SecretHash hash = HashSecret(issued.secret);
      ATRIUM_PREPARE(*db_, st,
                     "INSERT INTO api_keys (key_id, tenant_id, secret_sha256, admin, create_time_ms) "
                     "VALUES (?1, ?2, ?3, ?4, ?5)");
      st.Text(1, issued.key.key_id).Text(2, tenant_id).Blob(3, hash.data(), hash.size())
          .Int(4, admin ? 1 : 0).Int(5, issued.key.create_time_ms);
      const int rc = st.Step();
      if (rc == SQLITE_DONE) return OkStatus();
      if (rc != SQLITE_CONSTRAINT_PRIMARYKEY) return db_->Error(rc, "issuing an API key");
    }
    return Internal("could not draw an unused API key id in 4 attempts");
  }));
  return issued;
}

StatusOr<KeyPage> SqliteStore::ListKeys(std::string_view tenant_id, int32_t page_size,
                                        std::string_view page_token) {
  RETURN_IF_ERROR(ValidateTenantId(tenant_id));
  ASSIGN_OR_RETURN(const int32_t size, EffectivePageSize(page_size));
  const std::string kind = "keys:" + std::string(tenant_id);
  std::string after;
  if (!page_token.empty()) {
    ASSIGN_OR_RETURN(after, DecodePageToken(kind, page_token));
  }
  static const std::string sql = StrFormat(
      "SELECT %s FROM api_keys WHERE tenant_id = ?1 AND key_id > ?2 ORDER BY key_id LIMIT ?3", kKeyColumns);
  KeyPage page;
  std::lock_guard<std::mutex> lock(db_->mu);
  RETURN_IF_ERROR(db_->ReadTenant(tenant_id).status());
  ATRIUM_PREPARE(*db_, st, sql.c_str());
  st.Text(1, tenant_id).Text(2, after).Int(3, int64_t{size} + 1);
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) page.keys.push_back(ReadKeyRow(st));
  if (rc != SQLITE_DONE) return db_->Error(rc, "listing API keys");
  if (page.keys.size() > static_cast<size_t>(size)) {
    page.keys.pop_back();
    page.next_page_token = EncodePageToken(kind, page.keys.back().key_id);
  }
  return page;
}

StatusOr<ApiKey> SqliteStore::RevokeKey(std::string_view tenant_id, std::string_view key_id) {
  RETURN_IF_ERROR(ValidateKeyId(key_id));
  std::lock_guard<std::mutex> lock(db_->mu);
  StatusOr<ApiKey> result = Internal("unset");
  RETURN_IF_ERROR(db_->Transaction(Db::Sync::kFull, [&]() -> Status {
    {
      ATRIUM_PREPARE(*db_, st,
                     "UPDATE api_keys SET revoke_time_ms = ?3 "
                     "WHERE key_id = ?1 AND tenant_id = ?2 AND revoke_time_ms = 0");
      st.Text(1, key_id).Text(2, tenant_id).Int(3, UnixNowMs());
      const int rc = st.Step();
      if (rc != SQLITE_DONE) return db_->Error(rc, "revoking an API key");
    }
    result = db_->ReadKey(key_id);
    if (result.ok() && result->tenant_id != tenant_id) {
      result = NotFound(StrFormat("API key '%.*s' not found", static_cast<int>(key_id.size()), key_id.data()));
    }
    return result.status();
  }));
  return result;
}

StatusOr<Principal> SqliteStore::Authenticate(std::string_view secret) {
  const Status invalid(StatusCode::kUnauthenticated,
                       "the API key is not valid: send 'authorization: Bearer <key>' with a key "
                       "issued by the admin API");
  ASSIGN_OR_RETURN(const std::string key_id, KeyIdFromSecret(secret));
  // Hashing outside the lock keeps the critical section to the lookup.
  const SecretHash hash = HashSecret(secret);
  std::lock_guard<std::mutex> lock(db_->mu);
  ATRIUM_PREPARE(*db_, st,
                 "SELECT k.secret_sha256, k.tenant_id, k.admin, k.revoke_time_ms, "
                 "t.requests_per_minute, t.tokens_per_minute, t.concurrent_streams "
                 "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_id = ?1");
  st.Text(1, key_id);
  const int rc = st.Step();
  if (rc == SQLITE_DONE) {
    // Compare anyway, so an unknown key id costs the same as a wrong secret.
    static const SecretHash kNoKey{};
    (void)SecretHashEquals(hash, kNoKey.data(), kNoKey.size());
    return invalid;
  }
  if (rc != SQLITE_ROW) return db_->Error(rc, "authenticating");
  size_t n = 0;
  const void* stored = st.ColBlob(0, &n);
  if (!SecretHashEquals(hash, stored, n)) return invalid;
  // Said only to a caller who holds the real secret.
  if (st.ColInt(3) != 0) {
    return Status(StatusCode::kUnauthenticated,
                  StrFormat("API key %s was revoked; ask an admin for a new key", key_id.c_str()));
  }
  Principal p;
  p.key_id = key_id;
  p.tenant_id = st.ColText(1);
  p.admin = st.ColInt(2) != 0;
  p.quota.requests_per_minute = st.ColInt(4);
  p.quota.tokens_per_minute = st.ColInt(5);
  p.quota.concurrent_streams = st.ColInt(6);
  return p;
}

StatusOr<int64_t> SqliteStore::Append(const AuditRecord& record) {
  ASSIGN_OR_RETURN(const AuditRecord r, NormalizeAuditRecord(record));
  std::lock_guard<std::mutex> lock(db_->mu);
  int64_t seq = 0;
  RETURN_IF_ERROR(db_->Transaction(Db::Sync::kNormal, [&]() -> Status {
    ATRIUM_PREPARE(*db_, st,
                   "INSERT INTO audit_log (time_ms, tenant_id, key_id, method, model, prompt_tokens, "
                   "completion_tokens, status_code, latency_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    st.Int(1, r.time_ms).Text(2, r.tenant_id).Text(3, r.key_id).Text(4, r.method).Text(5, r.model)
        .Int(6, r.prompt_tokens).Int(7, r.completion_tokens).Int(8, static_cast<int64_t>(r.code))
        .Int(9, r.latency_ms);
    const int rc = st.Step();
    if (rc != SQLITE_DONE) return db_->Error(rc, "appending to the audit log");
    seq = sqlite3_last_insert_rowid(db_->db);
    return OkStatus();
  }));
  return seq;
}

StatusOr<AuditPage> SqliteStore::Read(const AuditQuery& query) {
  ASSIGN_OR_RETURN(const int32_t size, EffectivePageSize(query.page_size));
  if (!query.tenant_id.empty()) RETURN_IF_ERROR(ValidateTenantId(query.tenant_id));
  if (query.since_ms < 0 || query.until_ms < 0) {
    return InvalidArgument("audit query: since_ms and until_ms must be >= 0 (0: no bound)");
  }
  const std::string kind = AuditPageTokenKind(query);
  int64_t after = 0;
  if (!query.page_token.empty()) {
    ASSIGN_OR_RETURN(const std::string last, DecodePageToken(kind, query.page_token));
    const auto [end, ec] = std::from_chars(last.data(), last.data() + last.size(), after);
    if (ec != std::errc() || end != last.data() + last.size()) {
      return InvalidArgument("page_token is not valid for this list");
    }
  }
  // Two statements, so the tenant filter can use its index.
  static const std::string all_sql = StrFormat(
      "SELECT %s FROM audit_log WHERE seq > ?1 AND (?3 = 0 OR time_ms >= ?3) AND "
      "(?4 = 0 OR time_ms < ?4) AND ?2 = '' ORDER BY seq LIMIT ?5", kAuditColumns);
  static const std::string tenant_sql = StrFormat(
      "SELECT %s FROM audit_log WHERE tenant_id = ?2 AND seq > ?1 AND (?3 = 0 OR time_ms >= ?3) AND "
      "(?4 = 0 OR time_ms < ?4) ORDER BY seq LIMIT ?5", kAuditColumns);
  AuditPage page;
  std::lock_guard<std::mutex> lock(db_->mu);
  ATRIUM_PREPARE(*db_, st, query.tenant_id.empty() ? all_sql.c_str() : tenant_sql.c_str());
  st.Int(1, after).Text(2, query.tenant_id).Int(3, query.since_ms).Int(4, query.until_ms)
      .Int(5, int64_t{size} + 1);
  int rc;
  while ((rc = st.Step()) == SQLITE_ROW) page.records.push_back(ReadAuditRow(st));
  if (rc != SQLITE_DONE) return db_->Error(rc, "reading the audit log");
  if (page.records.size() > static_cast<size_t>(size)) {
    page.records.pop_back();
    page.next_page_token = EncodePageToken(kind, std::to_string(page.records.back().seq));
  }
  return page;
}

}  // namespace atrium::gateway
