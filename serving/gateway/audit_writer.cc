#include "serving/gateway/audit_writer.h"

#include <chrono>
#include <cstdio>

namespace atrium::gateway {

AuditWriter::AuditWriter(AuditLog& log) : log_(log), thread_([this] { Run(); }) {}

AuditWriter::~AuditWriter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void AuditWriter::Add(AuditRecord record) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= kMaxQueued) {
      if (dropped_++ % 10000 == 0) {
        std::fprintf(stderr, "atrium: the audit log is not keeping up; %lld records dropped so far\n",
                     static_cast<long long>(dropped_));
      }
      return;
    }
    queue_.push_back(std::move(record));
  }
  cv_.notify_one();
}

void AuditWriter::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

int64_t AuditWriter::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

void AuditWriter::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) {
      if (stop_) return;
      continue;
    }
    AuditRecord record = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    StatusOr<int64_t> seq = log_.Append(record);
    lock.lock();
    busy_ = false;
    if (!seq.ok() && failed_++ % 1000 == 0) {
      std::fprintf(stderr, "atrium: audit append failed (%lld so far): %s\n", static_cast<long long>(failed_),
                   seq.status().ToString().c_str());
    }
    if (queue_.empty()) idle_cv_.notify_all();
  }
}

}  // namespace atrium::gateway
