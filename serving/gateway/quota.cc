#include "serving/gateway/quota.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace atrium::gateway {
namespace {

using std::chrono::nanoseconds;
using std::chrono::steady_clock;

// Bucket arithmetic is exact integer arithmetic in units of 1/60e9 of a
// request or token: in those units a limit of L per minute refills exactly L
// units per nanosecond, so refill and retry-after need no rounding beyond
// the final ceiling to milliseconds. 128 bits hold a full bucket of
// kMaxQuotaValue (2^40 * 6e10 < 2^76) with room to spare.
using Units = __int128;
constexpr Units kUnitsPerToken = 60'000'000'000;  // nanoseconds per minute

class Bucket {
 public:
  // Applies a (possibly changed) limit. Becoming limited starts with a full
  // bucket; a changed limit keeps the balance, cut to the new capacity.
  void SetLimit(int64_t limit, steady_clock::time_point now) {
    if (limit == limit_) return;
    if (limit_ == 0) {
      balance_ = Units{limit} * kUnitsPerToken;
      last_ = now;
    }
    limit_ = limit;
    balance_ = std::min(balance_, capacity());
  }

  void Refill(steady_clock::time_point now) {
    if (limit_ == 0) return;
    const int64_t elapsed = std::chrono::duration_cast<nanoseconds>(now - last_).count();
    if (elapsed <= 0) return;
    last_ = now;
    balance_ = std::min(capacity(), balance_ + Units{elapsed} * limit_);
  }

  bool limited() const { return limit_ != 0; }
  int64_t limit() const { return limit_; }

  // How long until `need` units are in the bucket; 0 when they are now.
  nanoseconds WaitFor(Units need) const {
    if (limit_ == 0 || balance_ >= need) return nanoseconds(0);
    const Units missing = need - balance_;
    return nanoseconds(static_cast<int64_t>((missing + limit_ - 1) / limit_));
  }

  void Take(Units units) {
    if (limit_ != 0) balance_ -= units;
  }

  double available() const {
    return limit_ == 0 ? 0.0 : static_cast<double>(balance_) / static_cast<double>(kUnitsPerToken);
  }

 private:
  Units capacity() const { return Units{limit_} * kUnitsPerToken; }

  int64_t limit_ = 0;  // per minute; 0 = unlimited
  Units balance_ = 0;
  steady_clock::time_point last_;
};

std::chrono::milliseconds CeilMs(nanoseconds d) {
  return std::chrono::ceil<std::chrono::milliseconds>(d);
}

}  // namespace

struct TenantLimiterState {
  TenantLimiterState(std::string id, const Clock& c) : tenant_id(std::move(id)), clock(c) {}

  void Charge(int64_t tokens) {
    if (tokens <= 0) return;
    std::lock_guard<std::mutex> lock(mu);
    tokens_bucket.Refill(clock.Now());
    tokens_bucket.Take(Units{tokens} * kUnitsPerToken);
  }

  void ReleaseStream() {
    std::lock_guard<std::mutex> lock(mu);
    ATRIUM_CHECK(active_streams > 0, "stream slot released twice for tenant %s", tenant_id.c_str());
    --active_streams;
  }

  const std::string tenant_id;
  const Clock& clock;
  std::mutex mu;  // guards everything below
  Bucket requests;
  Bucket tokens_bucket;
  int64_t stream_limit = 0;
  int64_t active_streams = 0;
};

const Clock& Clock::Steady() {
  struct SteadyClock final : Clock {
    steady_clock::time_point Now() const override { return steady_clock::now(); }
  };
  static const SteadyClock clock;
  return clock;
}

QuotaPermit::QuotaPermit(QuotaPermit&& other) noexcept
    : state_(std::move(other.state_)), holds_slot_(std::exchange(other.holds_slot_, false)) {}

QuotaPermit& QuotaPermit::operator=(QuotaPermit&& other) noexcept {
  if (this != &other) {
    Release();
    state_ = std::move(other.state_);
    holds_slot_ = std::exchange(other.holds_slot_, false);
  }
  return *this;
}

void QuotaPermit::ChargeTokens(int64_t tokens) {
  if (state_ != nullptr) state_->Charge(tokens);
}

void QuotaPermit::Release() {
  if (!holds_slot_) return;
  holds_slot_ = false;
  state_->ReleaseStream();
}

QuotaLimiter::QuotaLimiter(const Clock& clock, QuotaOptions options) : clock_(clock), options_(options) {}
QuotaLimiter::~QuotaLimiter() = default;

std::shared_ptr<TenantLimiterState> QuotaLimiter::StateOf(std::string_view tenant_id, bool create) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tenants_.find(std::string(tenant_id));
  if (it != tenants_.end()) return it->second;
  if (!create) return nullptr;
  auto state = std::make_shared<TenantLimiterState>(std::string(tenant_id), clock_);
  tenants_.emplace(std::string(tenant_id), state);
  return state;
}

Admission QuotaLimiter::Admit(std::string_view tenant_id, const TenantQuota& quota, bool stream) {
  std::shared_ptr<TenantLimiterState> state = StateOf(tenant_id, /*create=*/true);
  Admission out;
  std::vector<std::string> over;  // one phrase per limit that refuses
  nanoseconds wait(0);
  bool rate_refused = false;
  {
    std::lock_guard<std::mutex> lock(state->mu);
    const steady_clock::time_point now = clock_.Now();
    state->requests.SetLimit(quota.requests_per_minute, now);
    state->tokens_bucket.SetLimit(quota.tokens_per_minute, now);
    state->stream_limit = quota.concurrent_streams;
    state->requests.Refill(now);
    state->tokens_bucket.Refill(now);

    if (stream && state->stream_limit != 0 && state->active_streams >= state->stream_limit) {
      over.push_back(StrFormat("%lld concurrent streams", static_cast<long long>(state->stream_limit)));
    }
    // One whole request must be in the bucket, and at least one token: a
    // tenant in token debt waits until it is repaid.
    for (const Bucket* b : {&state->requests, &state->tokens_bucket}) {
      const nanoseconds w = b->WaitFor(kUnitsPerToken);
      if (w.count() == 0) continue;
      over.push_back(StrFormat("%lld %s per minute", static_cast<long long>(b->limit()),
                               b == &state->requests ? "requests" : "tokens"));
      wait = std::max(wait, w);
      rate_refused = true;
    }
    if (over.empty()) {
      state->requests.Take(kUnitsPerToken);
      if (stream) ++state->active_streams;
      out.permit.state_ = state;
      out.permit.holds_slot_ = stream;
      return out;
    }
  }
  out.retry_after = rate_refused ? CeilMs(wait) : options_.stream_retry_after;
  std::string limits;
  for (size_t i = 0; i < over.size(); ++i) limits += (i == 0 ? "" : ", ") + over[i];
  out.status = ResourceExhausted(StrFormat(
      "tenant '%s' is over its quota (%s); retry after %.3f s", state->tenant_id.c_str(),
      limits.c_str(), static_cast<double>(out.retry_after.count()) / 1000.0));
  return out;
}

QuotaUsage QuotaLimiter::Usage(std::string_view tenant_id) const {
  QuotaUsage usage;
  std::shared_ptr<TenantLimiterState> state = StateOf(tenant_id, /*create=*/false);
  if (state == nullptr) return usage;
  std::lock_guard<std::mutex> lock(state->mu);
  const steady_clock::time_point now = clock_.Now();
  state->requests.Refill(now);
  state->tokens_bucket.Refill(now);
  usage.active_streams = state->active_streams;
  usage.requests_available = state->requests.available();
  usage.tokens_available = state->tokens_bucket.available();
  return usage;
}

}  // namespace atrium::gateway
