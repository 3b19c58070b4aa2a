#include "serving/gateway/quota.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace atrium::gateway {
namespace {

using std::chrono::milliseconds;

// One step of a scenario: at `at_ms` after the start, do `op` `repeat` times.
struct Step {
  enum Op { kAdmit, kCharge, kRelease };
  int64_t at_ms;
  Op op;
  int64_t arg = 0;  // kCharge: tokens (through the last permit); kRelease: index of the permit (in admission order)
  StatusCode want = StatusCode::kOk;  // kAdmit only
  int64_t want_retry_ms = 0;          // kAdmit refused only
  int repeat = 1;
};

struct Scenario {
  const char* name;
  TenantQuota quota;
  std::vector<Step> steps;
};

constexpr StatusCode kOk = StatusCode::kOk;
constexpr StatusCode kExhausted = StatusCode::kResourceExhausted;

const Scenario kScenarios[] = {
    {"unlimited admits everything", {}, {{0, Step::kAdmit, 0, kOk, 0, 1000}, {0, Step::kCharge, 1'000'000}, {0, Step::kAdmit}}},
    {"60 rpm: a minute's burst, then one per second",
     {.requests_per_minute = 60},
     {{0, Step::kAdmit, 0, kOk, 0, 60},
      {0, Step::kAdmit, 0, kExhausted, 1000},
      {500, Step::kAdmit, 0, kExhausted, 500},
      {999, Step::kAdmit, 0, kExhausted, 1},
      {1000, Step::kAdmit},
      {1000, Step::kAdmit, 0, kExhausted, 1000},
      {3500, Step::kAdmit, 0, kOk, 0, 2},  // 2.5 s refilled 2.5 requests
      {3500, Step::kAdmit, 0, kExhausted, 500},
      {600'000, Step::kAdmit, 0, kOk, 0, 60},  // refill stops at one minute's worth
      {600'000, Step::kAdmit, 0, kExhausted, 1000}}},
    {"7 rpm: retry-after rounds up to the millisecond",
     {.requests_per_minute = 7},
     {{0, Step::kAdmit, 0, kOk, 0, 7},
      {0, Step::kAdmit, 0, kExhausted, 8572},  // 60/7 s = 8571.43 ms
      {8571, Step::kAdmit, 0, kExhausted, 1},
      {8572, Step::kAdmit}}},
    {"100 tpm: charged after the call, debt repaid before the next",
     {.tokens_per_minute = 100},
     {{0, Step::kAdmit},
      {0, Step::kCharge, 99},
      {0, Step::kAdmit},  // 1 token left is enough to start
      {0, Step::kCharge, 1},
      {0, Step::kAdmit, 0, kExhausted, 600},  // 1 token at 100/min
      {0, Step::kCharge, 50},                 // a call admitted earlier ends late
      {0, Step::kAdmit, 0, kExhausted, 30'600},  // 51 tokens of debt + 1
      {30'599, Step::kAdmit, 0, kExhausted, 1},
      {30'600, Step::kAdmit}}},
    {"2 concurrent streams: a slot frees on release",
     {.concurrent_streams = 2},
     {{0, Step::kAdmit, 0, kOk, 0, 2},
      {0, Step::kAdmit, 0, kExhausted, 1000},  // QuotaOptions::stream_retry_after
      {0, Step::kRelease, 0},
      {0, Step::kAdmit},
      {10, Step::kAdmit, 0, kExhausted, 1000},
      {10, Step::kRelease, 1},
      {10, Step::kRelease, 2},
      {10, Step::kAdmit, 0, kOk, 0, 2}}},
    {"token debt: the wait is for one whole token",
     {.requests_per_minute = 60, .tokens_per_minute = 60},
     {{0, Step::kAdmit},
      {0, Step::kCharge, 66},                 // 6 tokens of debt -> 7 s to one token
      {0, Step::kAdmit, 0, kExhausted, 7000},
      {6000, Step::kAdmit, 0, kExhausted, 1000},
      {7000, Step::kAdmit}}},
    {"refused by two rates: the longer wait",
     {.requests_per_minute = 1, .tokens_per_minute = 60},
     {{0, Step::kAdmit},
      {0, Step::kCharge, 66},
      {0, Step::kAdmit, 0, kExhausted, 60'000},  // tokens alone: 7 s; requests: 60 s
      {7000, Step::kAdmit, 0, kExhausted, 53'000},
      {60'000, Step::kAdmit}}},
    {"a refusal takes nothing",
     {.requests_per_minute = 2, .concurrent_streams = 1},
     {{0, Step::kAdmit},
      {0, Step::kAdmit, 0, kExhausted, 1000, 100},  // refused by the stream limit
      {0, Step::kRelease, 0},
      {0, Step::kAdmit},  // the 100 refusals spent no requests
      {0, Step::kRelease, 1},
      {0, Step::kAdmit, 0, kExhausted, 30'000}}},
};

class QuotaScenarioTest : public ::testing::TestWithParam<Scenario> {};

TEST_P(QuotaScenarioTest, Runs) {
  const Scenario& sc = GetParam();
  SCOPED_TRACE(sc.name);
  ManualClock clock;
  QuotaLimiter limiter(clock);
  std::vector<QuotaPermit> permits;
  int64_t now_ms = 0;
  for (size_t i = 0; i < sc.steps.size(); ++i) {
    const Step& step = sc.steps[i];
    ASSERT_GE(step.at_ms, now_ms) << "steps go forward in time";
    clock.Advance(milliseconds(step.at_ms - now_ms));
    now_ms = step.at_ms;
    for (int r = 0; r < step.repeat; ++r) {
      SCOPED_TRACE(::testing::Message() << "step " << i << " repeat " << r << " at " << step.at_ms << " ms");
      switch (step.op) {
        case Step::kAdmit: {
          Admission a = limiter.Admit("acme", sc.quota);
          ASSERT_EQ(a.status.code(), step.want) << a.status.ToString();
          if (a.status.ok()) {
            EXPECT_TRUE(a.permit.holds_slot());
            EXPECT_EQ(a.retry_after.count(), 0);
            permits.push_back(std::move(a.permit));
          } else {
            EXPECT_FALSE(a.permit.holds_slot());
            EXPECT_EQ(a.retry_after.count(), step.want_retry_ms);
            EXPECT_NE(a.status.message().find("acme"), std::string::npos);
          }
          break;
        }
        case Step::kCharge:
          // As a call's end does: through its permit, released or not.
          ASSERT_FALSE(permits.empty()) << "a charge needs an admitted call first";
          permits.back().ChargeTokens(step.arg);
          break;
        case Step::kRelease:
          ASSERT_LT(static_cast<size_t>(step.arg), permits.size());
          permits[step.arg].Release();
          break;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Table, QuotaScenarioTest, ::testing::ValuesIn(kScenarios),
                         [](const ::testing::TestParamInfo<Scenario>& info) {
                           return "Scenario" + std::to_string(info.index);
                         });

TEST(QuotaLimiterTest, TenantsAreIsolated) {
  ManualClock clock;
  QuotaLimiter limiter(clock);
  const TenantQuota tight{.requests_per_minute = 1, .tokens_per_minute = 10, .concurrent_streams = 1};
  Admission a = limiter.Admit("a", tight);
  ASSERT_TRUE(a.status.ok());
  a.permit.ChargeTokens(1000);  // deep in debt, stream held, request spent
  Admission refused = limiter.Admit("a", tight);
  EXPECT_EQ(refused.status.code(), StatusCode::kResourceExhausted);
  // The message names a's limits and nothing of anybody else.
  EXPECT_NE(refused.status.message().find("'a'"), std::string::npos) << refused.status.message();
  EXPECT_NE(refused.status.message().find("1 concurrent streams"), std::string::npos);
  EXPECT_NE(refused.status.message().find("1 requests per minute"), std::string::npos);
  EXPECT_NE(refused.status.message().find("10 tokens per minute"), std::string::npos);

  // b has the same quota and is untouched by all of a's state.
  Admission b = limiter.Admit("b", tight);
  EXPECT_TRUE(b.status.ok()) << b.status.ToString();
  EXPECT_EQ(limiter.Usage("b").active_streams, 1);
  EXPECT_DOUBLE_EQ(limiter.Usage("b").tokens_available, 10.0);
  EXPECT_DOUBLE_EQ(limiter.Usage("a").tokens_available, -990.0);
  // And an unlimited tenant is admitted whatever the others did.
  EXPECT_TRUE(limiter.Admit("c", {}).status.ok());
}

// A unary call (Tokenize, CountTokens) takes a request but no stream slot:
// admitted at the stream limit, it leaves the slots as they were; the
// request-rate limit still applies to it.
TEST(QuotaLimiterTest, UnaryCallsNeedNoStreamSlot) {
  ManualClock clock;
  QuotaLimiter limiter(clock);
  const TenantQuota q{.requests_per_minute = 2, .concurrent_streams = 1};
  Admission stream = limiter.Admit("a", q);
  ASSERT_TRUE(stream.status.ok());
  EXPECT_EQ(limiter.Admit("a", q).status.code(), StatusCode::kResourceExhausted);  // the slot is taken
  Admission unary = limiter.Admit("a", q, /*stream=*/false);
  ASSERT_TRUE(unary.status.ok()) << unary.status.ToString();
  EXPECT_FALSE(unary.permit.holds_slot());
  EXPECT_EQ(limiter.Usage("a").active_streams, 1);
  unary.permit.Release();
  EXPECT_EQ(limiter.Usage("a").active_streams, 1);
  // Two requests spent: a third, even unary, waits for the rate.
  EXPECT_EQ(limiter.Admit("a", q, /*stream=*/false).status.code(), StatusCode::kResourceExhausted);
}

TEST(QuotaLimiterTest, ChangedQuotaKeepsWhatWasUsed) {
  ManualClock clock;
  QuotaLimiter limiter(clock);
  for (int i = 0; i < 60; ++i) ASSERT_TRUE(limiter.Admit("a", {.requests_per_minute = 60}).status.ok());
  // Raising the limit does not refill the bucket; it refills faster.
  Admission a = limiter.Admit("a", {.requests_per_minute = 120});
  EXPECT_EQ(a.status.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(a.retry_after, milliseconds(500));
  // Removing the limit admits at once; a new limit later starts full.
  EXPECT_TRUE(limiter.Admit("a", {}).status.ok());
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Admit("a", {.requests_per_minute = 3}).status.ok());
  EXPECT_FALSE(limiter.Admit("a", {.requests_per_minute = 3}).status.ok());
  // Lowering the limit cuts the balance to the new capacity.
  clock.Advance(std::chrono::minutes(5));
  EXPECT_DOUBLE_EQ(limiter.Usage("a").requests_available, 3.0);
  EXPECT_TRUE(limiter.Admit("a", {.requests_per_minute = 1}).status.ok());
  EXPECT_FALSE(limiter.Admit("a", {.requests_per_minute = 1}).status.ok());
}

TEST(QuotaLimiterTest, PermitReleasesOnceAndOutlivesTheLimiter) {
  ManualClock clock;
  QuotaPermit kept;
  {
    QuotaLimiter limiter(clock);
    const TenantQuota q{.tokens_per_minute = 100, .concurrent_streams = 1};
    Admission a = limiter.Admit("a", q);
    ASSERT_TRUE(a.status.ok());
    QuotaPermit moved = std::move(a.permit);
    EXPECT_FALSE(a.permit.holds_slot());
    EXPECT_TRUE(moved.holds_slot());
    EXPECT_EQ(limiter.Usage("a").active_streams, 1);
    moved.Release();
    moved.Release();  // a second release does nothing
    EXPECT_EQ(limiter.Usage("a").active_streams, 0);
    moved.ChargeTokens(40);  // charging after release still counts
    EXPECT_DOUBLE_EQ(limiter.Usage("a").tokens_available, 60.0);
    {
      Admission scoped = limiter.Admit("a", q);
      ASSERT_TRUE(scoped.status.ok());
    }  // destroyed: slot freed
    Admission last = limiter.Admit("a", q);
    ASSERT_TRUE(last.status.ok());
    kept = std::move(last.permit);
  }
  kept.ChargeTokens(5);
  kept.Release();  // the limiter is gone; the permit's tenant state is not
}

TEST(QuotaLimiterTest, StreamLimitHoldsUnderThreads) {
  QuotaLimiter limiter;  // the real clock
  const TenantQuota q{.concurrent_streams = 3};
  std::atomic<int> inside{0};
  std::atomic<int> max_inside{0};
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        Admission a = limiter.Admit("a", q);
        if (!a.status.ok()) continue;
        ++admitted;
        const int now = ++inside;
        int seen = max_inside.load();
        while (now > seen && !max_inside.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::yield();  // hold the permit while others try
        --inside;
      }  // each permit is released at the end of its iteration
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_LE(max_inside.load(), 3);
  EXPECT_GT(admitted.load(), 0);
  EXPECT_EQ(limiter.Usage("a").active_streams, 0);
}

}  // namespace
}  // namespace atrium::gateway
