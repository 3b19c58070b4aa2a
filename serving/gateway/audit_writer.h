// Appends audit records on a thread of its own, so a call's reactor never
// waits for a database write (the SQLite append is a transaction; on a slow
// disk a checkpoint can take milliseconds). Records are appended in the
// order they were handed in. The queue is bounded: past kMaxQueued records
// (the database is stuck), new ones are dropped and counted, and the drop
// is reported on stderr, since refusing calls because the audit log is slow
// would let a disk problem take the service down.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

#include "serving/gateway/audit.h"

namespace atrium::gateway {

class AuditWriter {
 public:
  static constexpr size_t kMaxQueued = 100000;

  explicit AuditWriter(AuditLog& log);
  // Appends everything still queued, then stops.
  ~AuditWriter();
  AuditWriter(const AuditWriter&) = delete;
  AuditWriter& operator=(const AuditWriter&) = delete;

  void Add(AuditRecord record);
  // Waits until every record added so far is appended (or dropped).
  void Flush();
  int64_t dropped() const;

 private:
  void Run();

  AuditLog& log_;
  mutable std::mutex mu_;
  std::condition_variable cv_;       // work arrived, or stop
  std::condition_variable idle_cv_;  // the queue became empty
  std::deque<AuditRecord> queue_;
  bool busy_ = false;  // a record is being appended
  bool stop_ = false;
  int64_t dropped_ = 0;
  int64_t failed_ = 0;
  std::thread thread_;
};

}  // namespace atrium::gateway
