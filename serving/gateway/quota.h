// Per-tenant admission limits: requests per minute, tokens per minute and
// concurrent streams (TenantQuota, 0 = unlimited).
//
// Both rates are token buckets that hold one minute's allowance and refill
// continuously at limit/60 per second, so a tenant may burst up to a
// minute's worth and then proceeds at the limit. A request is charged at
// admission. Tokens (prompt + completion) are known only after the call, so
// they are charged afterwards and may drive the bucket into debt; a tenant
// in debt (less than one token left) is refused until the debt is repaid at
// the refill rate. Over any long period a tenant therefore gets no more than
// its limits, while a single call is never cut off half-way.
//
// Each tenant has its own state and lock: one tenant's traffic, refusals or
// debt never change another tenant's admission, and never wait on its lock.
// Time comes from an injected Clock, so tests step it by hand.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "runtime/status.h"
#include "serving/gateway/store.h"

namespace atrium::gateway {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::steady_clock::time_point Now() const = 0;
  // The process's monotonic clock.
  static const Clock& Steady();
};

// A clock that moves only when told to, for deterministic tests.
class ManualClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point Now() const override {
    return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(ns_.load()));
  }
  void Advance(std::chrono::nanoseconds d) { ns_ += d.count(); }

 private:
  std::atomic<int64_t> ns_{int64_t{1} << 40};  // not 0, to catch "unset" time points
};

struct QuotaOptions {
  // The retry delay suggested when the concurrency limit refuses a call:
  // when one of the tenant's streams will end is not known.
  std::chrono::milliseconds stream_retry_after{1000};
};

// One tenant's limiter state; defined in quota.cc.
struct TenantLimiterState;

// An admitted call's hold on one of its tenant's concurrent-stream slots.
// Release it (or destroy it) when the call ends. Move-only. It keeps the
// tenant's state alive by itself, but the Clock must outlive it.
class QuotaPermit {
 public:
  QuotaPermit() = default;
  QuotaPermit(QuotaPermit&& other) noexcept;
  QuotaPermit& operator=(QuotaPermit&& other) noexcept;
  ~QuotaPermit() { Release(); }

  // Charges tokens used by this call to its tenant's tokens-per-minute
  // budget; call as often as counts become known (prompt, then completion).
  void ChargeTokens(int64_t tokens);
  // Frees the stream slot; later calls do nothing. Charging still works.
  void Release();
  bool holds_slot() const { return holds_slot_; }

 private:
  friend class QuotaLimiter;
  std::shared_ptr<TenantLimiterState> state_;
  bool holds_slot_ = false;
};

struct Admission {
  // OK, or RESOURCE_EXHAUSTED naming the tenant and each limit it is over.
  Status status;
  // When refused: the wait after which the rate limits that refused will
  // admit a call (the longest of them), or QuotaOptions::stream_retry_after
  // when only the stream limit refused. 0 when admitted.
  std::chrono::milliseconds retry_after{0};
  QuotaPermit permit;  // holds the stream slot when admitted
};

// What a tenant has left, for metrics and tests.
struct QuotaUsage {
  int64_t active_streams = 0;
  double requests_available = 0;  // in the bucket now; 0 when unlimited
  double tokens_available = 0;    // may be negative (debt); 0 when unlimited
};

class QuotaLimiter {
 public:
  explicit QuotaLimiter(const Clock& clock = Clock::Steady(), QuotaOptions options = {});
  ~QuotaLimiter();
  QuotaLimiter(const QuotaLimiter&) = delete;
  QuotaLimiter& operator=(const QuotaLimiter&) = delete;

  // Admits one call of `tenant_id` under `quota` (as the store has it now:
  // a changed quota takes effect here, keeping what the tenant already
  // used). On admission takes one request, and a stream slot when `stream`
  // (Generate and Chat; a unary call neither needs a free slot nor holds
  // one); on refusal takes nothing. Safe from many threads.
  Admission Admit(std::string_view tenant_id, const TenantQuota& quota, bool stream = true);
  QuotaUsage Usage(std::string_view tenant_id) const;

 private:
  // The tenant's state; created on first use when `create`, else null.
  std::shared_ptr<TenantLimiterState> StateOf(std::string_view tenant_id, bool create) const;

  const Clock& clock_;
  const QuotaOptions options_;
  mutable std::mutex mu_;  // guards the map only, never held with a tenant's lock
  mutable std::unordered_map<std::string, std::shared_ptr<TenantLimiterState>> tenants_;
};

}  // namespace atrium::gateway
