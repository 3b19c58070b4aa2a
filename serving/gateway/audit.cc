#include "serving/gateway/audit.h"

#include <chrono>
#include <ctime>

#include <nlohmann/json.hpp>

namespace atrium::gateway {

int64_t UnixNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
namespace {

// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence: a cut
// inside one would make the JSON output carry a replacement character.
void CutUtf8(std::string& s, size_t max) {
  if (s.size() <= max) return;
  size_t end = max;
  // Step back over continuation bytes (10xxxxxx) to the start of the cut
  // character, which is then dropped whole.
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  s.resize(end);
}

std::string Rfc3339Utc(int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];  // room for any int year, so the format never truncates
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace

StatusOr<AuditRecord> NormalizeAuditRecord(AuditRecord r) {
  if (r.method.empty()) return InvalidArgument("audit record without a method");
  if (r.prompt_tokens < 0 || r.completion_tokens < 0 || r.latency_ms < 0 || r.time_ms < 0) {
    return InvalidArgument(StrFormat(
        "audit record for %s has a negative count (prompt_tokens %lld, completion_tokens %lld, "
        "latency_ms %lld, time_ms %lld)",
        r.method.c_str(), static_cast<long long>(r.prompt_tokens),
        static_cast<long long>(r.completion_tokens), static_cast<long long>(r.latency_ms),
        static_cast<long long>(r.time_ms)));
  }
  const int code = static_cast<int>(r.code);
  if (code < 0 || code > static_cast<int>(StatusCode::kUnauthenticated)) {
    return InvalidArgument(StrFormat("audit record for %s has status code %d, not a canonical code",
                                     r.method.c_str(), code));
  }
  if (r.time_ms == 0) r.time_ms = UnixNowMs();
  for (std::string* s : {&r.tenant_id, &r.key_id, &r.method, &r.model}) CutUtf8(*s, kMaxAuditFieldBytes);
  r.seq = 0;
  return r;
}

std::string AuditPageTokenKind(const AuditQuery& q) {
  return StrFormat("audit:%s:%lld:%lld", q.tenant_id.c_str(), static_cast<long long>(q.since_ms),
                   static_cast<long long>(q.until_ms));
}

std::string AuditRecordToJson(const AuditRecord& r) {
  nlohmann::ordered_json j;
  j["seq"] = r.seq;
  j["time"] = Rfc3339Utc(r.time_ms);
  j["tenant"] = r.tenant_id;
  j["key_id"] = r.key_id;
  j["method"] = r.method;
  j["model"] = r.model;
  j["prompt_tokens"] = r.prompt_tokens;
  j["completion_tokens"] = r.completion_tokens;
  j["code"] = std::string(StatusCodeName(r.code));
  j["latency_ms"] = r.latency_ms;
  // Stored strings came from clients; invalid UTF-8 must not throw here.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace atrium::gateway
