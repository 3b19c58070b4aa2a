#include "serving/gateway/audit.h"

#include <sqlite3.h>

#include <set>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "serving/gateway/sqlite_store.h"
#include "tests/test_util.h"

namespace atrium::gateway {
namespace {

AuditRecord Record(const std::string& tenant, int64_t time_ms, StatusCode code = StatusCode::kOk) {
  AuditRecord r;
  r.time_ms = time_ms;
  r.tenant_id = tenant;
  r.key_id = "key-0123456789ab";
  r.method = "/atrium.v1.Inference/Chat";
  r.model = "smollm2-135m-instruct";
  r.prompt_tokens = 12;
  r.completion_tokens = 34;
  r.code = code;
  r.latency_ms = 56;
  return r;
}

class AuditLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(path_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }

  // All records a query returns, following page tokens.
  std::vector<AuditRecord> ReadAll(AuditQuery q, int* pages = nullptr) {
    std::vector<AuditRecord> out;
    int n = 0;
    do {
      StatusOr<AuditPage> page = store_->Read(q);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok()) break;
      out.insert(out.end(), page->records.begin(), page->records.end());
      q.page_token = page->next_page_token;
      ++n;
    } while (!q.page_token.empty());
    if (pages != nullptr) *pages = n;
    return out;
  }

  ::atrium::testing::TempDir dir_;
  std::string path_ = dir_.File("atrium.db");
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(AuditLogTest, AppendThenReadBackEveryField) {
  std::vector<AuditRecord> written = {
      Record("acme", 1'700'000'000'000),
      Record("beta", 1'700'000'001'000, StatusCode::kResourceExhausted),
      Record("acme", 1'700'000'002'000, StatusCode::kCancelled),
      Record("", 1'700'000'003'000, StatusCode::kUnauthenticated),  // no tenant: bad key
      Record("acme", 1'700'000'004'000),
  };
  written[3].key_id.clear();
  written[3].model.clear();
  int64_t last_seq = 0;
  for (AuditRecord& r : written) {
    StatusOr<int64_t> seq = store_->Append(r);
    ASSERT_TRUE(seq.ok()) << seq.status().ToString();
    EXPECT_GT(*seq, last_seq);
    last_seq = r.seq = *seq;
  }

  EXPECT_EQ(ReadAll({}), written);

  // By tenant, and by time window [since, until).
  std::vector<AuditRecord> acme = ReadAll({.tenant_id = "acme"});
  ASSERT_EQ(acme.size(), 3u);
  EXPECT_EQ(acme[1], written[2]);
  std::vector<AuditRecord> window = ReadAll({.since_ms = 1'700'000'001'000, .until_ms = 1'700'000'003'000});
  ASSERT_EQ(window.size(), 2u);
  EXPECT_EQ(window[0], written[1]);
  EXPECT_EQ(window[1], written[2]);

  // Paging: 2 + 2 + 1, and a token works only with its own filter.
  int pages = 0;
  EXPECT_EQ(ReadAll({.page_size = 2}, &pages), written);
  EXPECT_EQ(pages, 3);
  StatusOr<AuditPage> first = store_->Read({.tenant_id = "acme", .page_size = 1});
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(first->next_page_token.empty());
  EXPECT_EQ(store_->Read({.tenant_id = "beta", .page_size = 1, .page_token = first->next_page_token})
                .status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Read({.tenant_id = "Bad!"}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Read({.since_ms = -1}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(AuditLogTest, RecordsPersistAcrossReopen) {
  ASSERT_TRUE(store_->Append(Record("acme", 1'700'000'000'000)).ok());
  store_.reset();
  SetUp();
  std::vector<AuditRecord> got = ReadAll({});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].tenant_id, "acme");
  // seq keeps growing after a reopen.
  StatusOr<int64_t> seq = store_->Append(Record("acme", 1'700'000'000'001));
  ASSERT_TRUE(seq.ok());
  EXPECT_GT(*seq, got[0].seq);
}

TEST_F(AuditLogTest, TableHasNoTextOfPromptsAndIsAppendOnly) {
  ASSERT_TRUE(store_->Append(Record("acme", 1'700'000'000'000)).ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  std::set<std::string> columns;
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info('audit_log')", -1, &st, nullptr), SQLITE_OK);
  while (sqlite3_step(st) == SQLITE_ROW) columns.insert(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  sqlite3_finalize(st);
  // Exactly these: counts and identifiers, no column that could hold the
  // text of a prompt or a completion.
  EXPECT_EQ(columns, (std::set<std::string>{"seq", "time_ms", "tenant_id", "key_id", "method", "model",
                                            "prompt_tokens", "completion_tokens", "status_code", "latency_ms"}));

  // The triggers refuse changes from any writer, not only through our API.
  for (const char* sql : {"UPDATE audit_log SET prompt_tokens = 0", "DELETE FROM audit_log"}) {
    char* err = nullptr;
    EXPECT_NE(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << sql;
    EXPECT_NE(std::string(err != nullptr ? err : "").find("append-only"), std::string::npos) << sql;
    sqlite3_free(err);
  }
  sqlite3_close(db);
  EXPECT_EQ(store_->Read({})->records.size(), 1u);
}

TEST(AuditRecordTest, NormalizeCutsAndChecks) {
  AuditRecord r = Record("acme", 0);
  r.model = std::string(300, 'm');
  StatusOr<AuditRecord> n = NormalizeAuditRecord(r);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(n->model.size(), kMaxAuditFieldBytes);
  EXPECT_GT(n->time_ms, 1'600'000'000'000);  // 0 became now

  // A cut never splits a UTF-8 character: "é" is 2 bytes, straddling 256.
  r.model = std::string(255, 'm') + "\xC3\xA9" + "tail";
  EXPECT_EQ(NormalizeAuditRecord(r)->model, std::string(255, 'm'));

  AuditRecord bad = Record("acme", 1);
  bad.method.clear();
  EXPECT_EQ(NormalizeAuditRecord(bad).status().code(), StatusCode::kInvalidArgument);
  bad = Record("acme", 1);
  bad.completion_tokens = -1;
  EXPECT_EQ(NormalizeAuditRecord(bad).status().code(), StatusCode::kInvalidArgument);
  bad = Record("acme", 1);
  bad.code = static_cast<StatusCode>(42);
  EXPECT_EQ(NormalizeAuditRecord(bad).status().code(), StatusCode::kInvalidArgument);
}

TEST(AuditRecordTest, JsonLineHasExactlyTheDocumentedFields) {
  AuditRecord r = Record("acme", 1'700'000'000'123, StatusCode::kResourceExhausted);
  r.seq = 7;
  r.model = "bad \xFF utf8";  // from a client; must not throw
  const std::string line = AuditRecordToJson(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const nlohmann::json j = nlohmann::json::parse(line);
  std::set<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.insert(it.key());
  EXPECT_EQ(keys, (std::set<std::string>{"seq", "time", "tenant", "key_id", "method", "model", "prompt_tokens",
                                         "completion_tokens", "code", "latency_ms"}));
  EXPECT_EQ(j["time"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(j["code"], "RESOURCE_EXHAUSTED");
  EXPECT_EQ(j["seq"], 7);
  EXPECT_EQ(j["completion_tokens"], 34);
}

}  // namespace
}  // namespace atrium::gateway
