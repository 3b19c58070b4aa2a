// The append-only audit log: one record per gateway call, saying who called
// what and how it ended. A record has no field for prompt or completion text,
// by design: the log is kept for accounting and abuse review, and must be
// safe to hand to an operator who may not read tenants' data.
//
// Where it is stored: in the same SQLite database as tenants and keys
// (SqliteStore implements AuditLog), not in a JSONL file, because
//  - an append is a transaction, so a crash never leaves a torn line;
//  - `atrium admin audit` filters by tenant and time with an index instead of
//    scanning a file;
//  - one file to back up, and the PostgreSQL store for several replicas
//    takes the log along through the same interface;
//  - append-only holds twice: this interface has no update or delete, and
//    the table has triggers that abort any UPDATE or DELETE.
// Durability: audit appends commit with synchronous=NORMAL in WAL mode. A
// committed record survives a crash of the gateway at once (it is in the
// WAL, in the OS page cache) and survives power loss from the next
// checkpoint or the next admin write (those commit with FULL, which syncs
// the WAL up to them). An fsync per call would cost each call milliseconds
// on a slow disk for records whose loss in a power cut is acceptable.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace atrium::gateway {

// The wall clock in Unix epoch milliseconds (audit times, store timestamps).
int64_t UnixNowMs();

struct AuditRecord {
  int64_t seq = 0;      // assigned by Append, increasing; ignored on input
  int64_t time_ms = 0;  // when the call started, Unix epoch ms; 0 on input: now
  std::string tenant_id;  // empty when the call was not authenticated
  std::string key_id;     // likewise
  std::string method;     // the full gRPC method, "/atrium.v1.Inference/Generate"
  std::string model;      // empty when the call names no model
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  StatusCode code = StatusCode::kOk;  // how the call ended
  int64_t latency_ms = 0;             // start to the last message
  bool operator==(const AuditRecord&) const = default;
};

// Client-controlled strings (a model name, a method) are cut to this many
// bytes, so a 10 MB model name cannot grow the log by 10 MB per call.
inline constexpr size_t kMaxAuditFieldBytes = 256;

struct AuditQuery {
  std::string tenant_id{};  // empty: every tenant
  int64_t since_ms = 0;   // time_ms >= since_ms; 0: no lower bound
  int64_t until_ms = 0;   // time_ms < until_ms; 0: no upper bound
  int32_t page_size = 0;  // as in store.h: 0 is kDefaultPageSize
  std::string page_token{};
};

struct AuditPage {
  std::vector<AuditRecord> records;  // in seq (append) order
  std::string next_page_token;       // empty on the last page
};

class AuditLog {
 public:
  virtual ~AuditLog() = default;
  // Appends one record and returns its seq. Safe from many threads.
  virtual StatusOr<int64_t> Append(const AuditRecord& record) = 0;
  // Records matching the query, oldest first.
  virtual StatusOr<AuditPage> Read(const AuditQuery& query) = 0;
};

// What Append stores for `record`: time_ms 0 becomes now, strings are cut to
// kMaxAuditFieldBytes at a UTF-8 boundary. INVALID_ARGUMENT for an empty
// method or negative counts or latency (a gateway bug, not a client's).
StatusOr<AuditRecord> NormalizeAuditRecord(AuditRecord record);

// The page-token kind of a query: a token is valid only for the same filter.
std::string AuditPageTokenKind(const AuditQuery& query);

// One JSON object per record for `atrium admin audit`: seq, time (RFC 3339
// UTC), tenant, key_id, method, model, prompt_tokens, completion_tokens,
// code (the canonical name, "OK"), latency_ms.
std::string AuditRecordToJson(const AuditRecord& record);

}  // namespace atrium::gateway
