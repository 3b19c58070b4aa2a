#include "serving/gateway/sqlite_store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "serving/gateway/keys.h"
#include "tests/serving/gateway/gateway_test_util.h"
#include "tests/test_util.h"

namespace atrium::gateway {
namespace {

using testing::ReadBytes;
using ::atrium::testing::TempDir;
using testing::WriteBytes;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = OpenOk(path_); }

  static std::unique_ptr<SqliteStore> OpenOk(const std::string& path) {
    StatusOr<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(path);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  // Runs one SQL statement on the file with a separate raw connection and
  // returns the first column of the first row as text ("" when none).
  static std::string RawQuery(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_text(st, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
  }

  TempDir dir_;
  std::string path_ = dir_.File("atrium.db");
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(SqliteStoreTest, NewFileIsPrivateVersionedAndInWalMode) {
  ASSERT_NE(store_, nullptr);
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(RawQuery(path_, "PRAGMA application_id"), std::to_string(SqliteStore::kApplicationId));
  EXPECT_EQ(RawQuery(path_, "PRAGMA user_version"), std::to_string(SqliteStore::kSchemaVersion));
  EXPECT_EQ(RawQuery(path_, "PRAGMA journal_mode"), "wal");
}

TEST_F(SqliteStoreTest, CreateAndGetTenant) {
  StatusOr<Tenant> t = store_->CreateTenant("acme", "Acme Corp");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->name(), "tenants/acme");
  EXPECT_GT(t->create_time_ms, 1'600'000'000'000);
  EXPECT_EQ(t->quota, TenantQuota{});  // unlimited by default

  StatusOr<Tenant> got = store_->GetTenant("acme");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->display_name, "Acme Corp");
  EXPECT_EQ(got->create_time_ms, t->create_time_ms);

  EXPECT_EQ(store_->CreateTenant("acme", "again").status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->GetTenant("nobody").status().code(), StatusCode::kNotFound);
  // An empty display name defaults to the id.
  EXPECT_EQ(store_->CreateTenant("bare", "")->display_name, "bare");
  EXPECT_EQ(store_->CreateTenant("ctl", "a\nb").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, TenantIdsAreValidated) {
  const std::string max_len = "a" + std::string(62, 'z');
  for (const std::string& id : {std::string("a"), std::string("a-1"), std::string("x0-y"), max_len}) {
    EXPECT_TRUE(store_->CreateTenant(id, "").ok()) << id;
  }
  for (const std::string& id : {std::string(""), std::string("Acme"), std::string("1abc"), std::string("-a"),
                                std::string("a_b"), std::string("a/b"), std::string("a b"), max_len + "z"}) {
    StatusOr<Tenant> t = store_->CreateTenant(id, "");
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << "'" << id << "'";
    EXPECT_EQ(store_->GetTenant(id).status().code(), StatusCode::kInvalidArgument) << id;
  }
  EXPECT_EQ(*TenantIdFromName("tenants/acme"), "acme");
  EXPECT_EQ(TenantIdFromName("acme").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(TenantIdFromName("tenants/Acme").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, ListTenantsPagesInIdOrder) {
  const std::vector<std::string> ids = {"golf", "alpha", "echo", "charlie", "bravo", "foxtrot", "delta"};
  for (const std::string& id : ids) ASSERT_TRUE(store_->CreateTenant(id, "").ok());
  std::vector<std::string> sorted = ids;
  std::sort(sorted.begin(), sorted.end());

  std::vector<std::string> seen;
  std::vector<size_t> page_sizes;
  std::string token;
  do {
    StatusOr<TenantPage> page = store_->ListTenants(3, token);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    page_sizes.push_back(page->tenants.size());
    for (const Tenant& t : page->tenants) seen.push_back(t.id);
    token = page->next_page_token;
  } while (!token.empty());
  EXPECT_EQ(seen, sorted);
  EXPECT_EQ(page_sizes, (std::vector<size_t>{3, 3, 1}));

  // Exactly one full page: no next token.
  StatusOr<TenantPage> all = store_->ListTenants(7, "");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->tenants.size(), 7u);
  EXPECT_TRUE(all->next_page_token.empty());
  EXPECT_EQ(store_->ListTenants(0, "")->tenants.size(), 7u);  // 0: the default size

  EXPECT_EQ(store_->ListTenants(-1, "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ListTenants(3, "zz-not-a-token").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ListTenants(3, EncodePageToken("keys:alpha", "x")).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, IssuedKeyAuthenticatesAsItsTenant) {
  ASSERT_TRUE(store_->CreateTenant("acme", "").ok());
  StatusOr<IssuedKey> user = store_->IssueKey("acme", /*admin=*/false);
  ASSERT_TRUE(user.ok()) << user.status().ToString();
  EXPECT_TRUE(IsValidKeyId(user->key.key_id));
  EXPECT_EQ(user->key.tenant_id, "acme");
  EXPECT_FALSE(user->key.revoked());

  StatusOr<Principal> p = store_->Authenticate(user->secret);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->tenant_id, "acme");
  EXPECT_EQ(p->key_id, user->key.key_id);
  EXPECT_FALSE(p->admin);

  StatusOr<IssuedKey> admin = store_->IssueKey("acme", /*admin=*/true);
  ASSERT_TRUE(admin.ok());
  EXPECT_TRUE(store_->Authenticate(admin->secret)->admin);
  StatusOr<KeyPage> keys = store_->ListKeys("acme", 0, "");
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  for (const ApiKey& k : keys->keys) EXPECT_EQ(k.admin, k.key_id == admin->key.key_id) << k.key_id;

  EXPECT_EQ(store_->IssueKey("nobody", false).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->IssueKey("Bad", false).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, WrongAndUnknownKeysAreUnauthenticated) {
  ASSERT_TRUE(store_->CreateTenant("acme", "").ok());
  const std::string secret = store_->IssueKey("acme", false)->secret;
  std::string wrong = secret;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  const std::string unknown = *NewSecret(*NewKeyId());
  const std::string cases[] = {wrong, unknown, "", "atr_", "not a key at all"};
  for (const std::string& s : cases) {
    StatusOr<Principal> p = store_->Authenticate(s);
    ASSERT_FALSE(p.ok()) << s;
    EXPECT_EQ(p.status().code(), StatusCode::kUnauthenticated) << s;
    if (s.size() > 8) {  // the message may well mention "atr_"
      EXPECT_EQ(p.status().message().find(s), std::string::npos);
    }
  }
  // A wrong secret for a real key id and an unknown key id read the same.
  EXPECT_EQ(store_->Authenticate(wrong).status().message(), store_->Authenticate(unknown).status().message());
}

TEST_F(SqliteStoreTest, RevokedKeyFailsAtOnceEverywhere) {
  ASSERT_TRUE(store_->CreateTenant("acme", "").ok());
  const IssuedKey victim = *store_->IssueKey("acme", false);
  const IssuedKey other = *store_->IssueKey("acme", false);
  // A second store on the same file stands for another process or replica.
  std::unique_ptr<SqliteStore> second = OpenOk(path_);
  ASSERT_TRUE(second->Authenticate(victim.secret).ok());

  StatusOr<ApiKey> revoked = store_->RevokeKey("acme", victim.key.key_id);
  ASSERT_TRUE(revoked.ok()) << revoked.status().ToString();
  EXPECT_TRUE(revoked->revoked());

  for (SqliteStore* s : {store_.get(), second.get()}) {
    StatusOr<Principal> p = s->Authenticate(victim.secret);
    EXPECT_EQ(p.status().code(), StatusCode::kUnauthenticated);
    EXPECT_NE(p.status().message().find("revoked"), std::string::npos) << p.status().message();
    EXPECT_TRUE(s->Authenticate(other.secret).ok());
  }
  // Revoking again is fine and keeps the first time.
  StatusOr<ApiKey> again = second->RevokeKey("acme", victim.key.key_id);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->revoke_time_ms, revoked->revoke_time_ms);
  EXPECT_EQ(store_->RevokeKey("acme", "key-000000000000").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->RevokeKey("acme", "nonsense").status().code(), StatusCode::kInvalidArgument);
  // Another tenant's key: not found, and left alone.
  ASSERT_TRUE(store_->CreateTenant("globex", "").ok());
  const IssuedKey theirs = *store_->IssueKey("globex", false);
  StatusOr<ApiKey> cross = store_->RevokeKey("acme", theirs.key.key_id);
  EXPECT_EQ(cross.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(cross.status().message(), StrFormat("API key '%s' not found", theirs.key.key_id.c_str()));
  EXPECT_TRUE(store_->Authenticate(theirs.secret).ok());
}

TEST_F(SqliteStoreTest, ListKeysPagesAndShowsRevokedKeys) {
  ASSERT_TRUE(store_->CreateTenant("acme", "").ok());
  ASSERT_TRUE(store_->CreateTenant("other", "").ok());
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(store_->IssueKey("acme", i == 0)->key.key_id);
  ASSERT_TRUE(store_->IssueKey("other", false).ok());
  ASSERT_TRUE(store_->RevokeKey("acme", ids[2]).ok());
  std::sort(ids.begin(), ids.end());

  std::vector<std::string> seen;
  int revoked = 0;
  std::string token;
  std::string first_token;
  do {
    StatusOr<KeyPage> page = store_->ListKeys("acme", 2, token);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    EXPECT_LE(page->keys.size(), 2u);
    for (const ApiKey& k : page->keys) {
      seen.push_back(k.key_id);
      revoked += k.revoked();
      EXPECT_EQ(k.tenant_id, "acme");
    }
    token = page->next_page_token;
    if (first_token.empty()) first_token = token;
  } while (!token.empty());
  EXPECT_EQ(seen, ids);
  EXPECT_EQ(revoked, 1);
  // A token is bound to its tenant.
  EXPECT_EQ(store_->ListKeys("other", 2, first_token).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->ListKeys("nobody", 2, "").status().code(), StatusCode::kNotFound);
}

TEST_F(SqliteStoreTest, QuotaIsStoredAndComesWithAuthentication) {
  ASSERT_TRUE(store_->CreateTenant("acme", "").ok());
  const std::string secret = store_->IssueKey("acme", false)->secret;
  const TenantQuota q{.requests_per_minute = 60, .tokens_per_minute = 1000, .concurrent_streams = 2};
  StatusOr<Tenant> t = store_->SetQuota("acme", q);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->quota, q);
  EXPECT_EQ(store_->GetTenant("acme")->quota, q);
  EXPECT_EQ(store_->Authenticate(secret)->quota, q);

  EXPECT_EQ(store_->SetQuota("nobody", q).status().code(), StatusCode::kNotFound);
  TenantQuota bad = q;
  bad.tokens_per_minute = -1;
  EXPECT_EQ(store_->SetQuota("acme", bad).status().code(), StatusCode::kInvalidArgument);
  bad.tokens_per_minute = kMaxQuotaValue + 1;
  EXPECT_EQ(store_->SetQuota("acme", bad).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->GetTenant("acme")->quota, q);  // a refused change changes nothing

  // A partial update edits the stored values, not a copy read earlier: two
  // of them, each on its own field, both stay.
  ASSERT_TRUE(store_->UpdateQuota("acme", [](TenantQuota& c) { c.requests_per_minute = 7; }).ok());
  ASSERT_TRUE(store_->UpdateQuota("acme", [](TenantQuota& c) { c.concurrent_streams = 9; }).ok());
  const TenantQuota both{.requests_per_minute = 7, .tokens_per_minute = 1000, .concurrent_streams = 9};
  EXPECT_EQ(store_->GetTenant("acme")->quota, both);
}

TEST_F(SqliteStoreTest, SecretNeverReachesTheFile) {
  ASSERT_TRUE(store_->CreateTenant("acme", "").ok());
  std::vector<IssuedKey> keys;
  for (int i = 0; i < 4; ++i) keys.push_back(*store_->IssueKey("acme", i % 2 == 0));
  auto check = [&](const std::string& bytes) {
    for (const IssuedKey& k : keys) {
      EXPECT_EQ(bytes.find(k.secret), std::string::npos);
      // The random part alone must not be there either (in any encoding we write).
      EXPECT_EQ(bytes.find(k.secret.substr(k.secret.size() - 64)), std::string::npos);
    }
  };
  // While open the data sits in the WAL; after close, in the main file.
  check(ReadBytes(path_) + ReadBytes(path_ + "-wal"));
  store_.reset();
  const std::string bytes = ReadBytes(path_);
  ASSERT_FALSE(bytes.empty());
  check(bytes);
  // Sanity: what is stored is the hash, and it is in the bytes we searched.
  const SecretHash h = HashSecret(keys[0].secret);
  EXPECT_NE(bytes.find(std::string(reinterpret_cast<const char*>(h.data()), h.size())), std::string::npos);
}

TEST_F(SqliteStoreTest, DataPersistsAcrossReopen) {
  ASSERT_TRUE(store_->CreateTenant("acme", "Acme").ok());
  ASSERT_TRUE(store_->CreateTenant("beta", "").ok());
  const TenantQuota q{.requests_per_minute = 5, .tokens_per_minute = 0, .concurrent_streams = 1};
  ASSERT_TRUE(store_->SetQuota("beta", q).ok());
  const IssuedKey live = *store_->IssueKey("acme", true);
  const IssuedKey dead = *store_->IssueKey("beta", false);
  ASSERT_TRUE(store_->RevokeKey("beta", dead.key.key_id).ok());
  store_.reset();
  EXPECT_FALSE(std::filesystem::exists(path_ + "-wal"));  // checkpointed at close

  store_ = OpenOk(path_);
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(store_->GetTenant("acme")->display_name, "Acme");
  EXPECT_EQ(store_->GetTenant("beta")->quota, q);
  StatusOr<Principal> p = store_->Authenticate(live.secret);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_TRUE(p->admin);
  EXPECT_EQ(store_->Authenticate(dead.secret).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(store_->ListTenants(0, "")->tenants.size(), 2u);
}

TEST_F(SqliteStoreTest, BadFilesAreRefusedWithTheirPath) {
  store_.reset();
  const std::string valid = ReadBytes(path_);
  ASSERT_GE(valid.size(), 4096u);

  std::string damaged_page1 = valid;  // header intact, schema page overwritten
  std::fill(damaged_page1.begin() + 100, damaged_page1.begin() + 4096, '\xA5');
  std::string damaged_header = valid;
  damaged_header.replace(0, 16, "Not SQLite at al");

  struct Case {
    const char* what;
    std::string bytes;
    StatusCode code;
  } cases[] = {
      {"text", "this is not a database, just some text\n", StatusCode::kDataLoss},
      {"random", std::string(8192, '\x5c'), StatusCode::kDataLoss},
      {"damaged header", damaged_header, StatusCode::kDataLoss},
      {"damaged schema page", damaged_page1, StatusCode::kDataLoss},
  };
  for (const Case& c : cases) {
    const std::string path = dir_.File(std::string("bad-") + std::to_string(&c - cases) + ".db");
    WriteBytes(path, c.bytes);
    StatusOr<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(path);
    ASSERT_FALSE(s.ok()) << c.what;
    EXPECT_EQ(s.status().code(), c.code) << c.what << ": " << s.status().ToString();
    EXPECT_NE(s.status().message().find(path), std::string::npos) << s.status().message();
  }

  // Another program's SQLite file, and one from a newer Atrium: refused and
  // left exactly as they were.
  const std::string foreign = dir_.File("foreign.db");
  RawQuery(foreign, "CREATE TABLE notes (body TEXT)");
  const std::string newer = dir_.File("newer.db");
  WriteBytes(newer, valid);
  RawQuery(newer, "PRAGMA user_version = 99");
  for (const std::string& path : {foreign, newer}) {
    const std::string before = ReadBytes(path);
    StatusOr<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(path);
    ASSERT_FALSE(s.ok()) << path;
    EXPECT_EQ(s.status().code(), StatusCode::kFailedPrecondition) << s.status().ToString();
    EXPECT_NE(s.status().message().find(path), std::string::npos) << s.status().message();
    EXPECT_EQ(ReadBytes(path), before) << path;
  }
  EXPECT_NE(SqliteStore::Open(newer).status().message().find("newer"), std::string::npos);

  // A directory that does not exist, and a directory in place of the file.
  StatusOr<std::unique_ptr<SqliteStore>> missing = SqliteStore::Open(dir_.File("no/such/dir/atrium.db"));
  EXPECT_EQ(missing.status().code(), StatusCode::kFailedPrecondition) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find("no/such/dir"), std::string::npos);
  EXPECT_FALSE(SqliteStore::Open(dir_.path()).ok());
  EXPECT_EQ(SqliteStore::Open("").status().code(), StatusCode::kInvalidArgument);

  // The original file still opens: nothing above touched it.
  EXPECT_NE(OpenOk(path_), nullptr);
}

TEST_F(SqliteStoreTest, EmptyFileBecomesANewStore) {
  const std::string path = dir_.File("empty.db");
  WriteBytes(path, "");
  std::unique_ptr<SqliteStore> s = OpenOk(path);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->CreateTenant("acme", "").ok());
}

TEST_F(SqliteStoreTest, ManyThreadsAtOnce) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 20;
  for (int t = 0; t < kThreads; ++t) ASSERT_TRUE(store_->CreateTenant("t" + std::to_string(t), "").ok());
  std::unique_ptr<SqliteStore> second = OpenOk(path_);  // another connection writing too
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      SqliteStore* s = t % 2 == 0 ? store_.get() : second.get();
      const std::string tenant = "t" + std::to_string(t);
      for (int i = 0; i < kRounds; ++i) {
        StatusOr<IssuedKey> k = s->IssueKey(tenant, false);
        if (!k.ok()) { ++failures; continue; }
        StatusOr<Principal> p = s->Authenticate(k->secret);
        if (!p.ok() || p->tenant_id != tenant) ++failures;
        AuditRecord r;
        r.tenant_id = tenant;
        r.key_id = k->key.key_id;
        r.method = "/atrium.v1.Inference/Generate";
        if (!s->Append(r).ok()) ++failures;
        if (i % 5 == 0 && !s->RevokeKey(tenant, k->key.key_id).ok()) ++failures;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(store_->ListKeys("t" + std::to_string(t), 0, "")->keys.size(), static_cast<size_t>(kRounds));
  }
  EXPECT_EQ(store_->Read({.page_size = 1000})->records.size(), static_cast<size_t>(kThreads * kRounds));
}

TEST(SqliteStoreMemoryTest, InMemoryStoreWorks) {
  StatusOr<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(":memory:");
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_TRUE((*s)->CreateTenant("acme", "").ok());
  const IssuedKey k = *(*s)->IssueKey("acme", false);
  EXPECT_TRUE((*s)->Authenticate(k.secret).ok());
}

}  // namespace
}  // namespace atrium::gateway
