#include "serving/gateway/store.h"

#include <algorithm>

#include "serving/gateway/keys.h"

namespace atrium::gateway {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

Status ValidateTenantId(std::string_view id) {
  bool ok = !id.empty() && id.size() <= 63 && id[0] >= 'a' && id[0] <= 'z';
  for (char c : id) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  if (!ok) {
    return InvalidArgument(StrFormat(
        "tenant id '%.*s' is not valid: use 1 to 63 characters, lowercase letters, digits "
        "and '-', starting with a letter",
        static_cast<int>(std::min<size_t>(id.size(), 80)), id.data()));
  }
  return OkStatus();
}

StatusOr<std::string> TenantIdFromName(std::string_view name) {
  constexpr std::string_view kPrefix = "tenants/";
  if (name.substr(0, kPrefix.size()) != kPrefix) {
    return InvalidArgument(StrFormat("tenant name '%.*s' must look like 'tenants/<id>'",
                                     static_cast<int>(std::min<size_t>(name.size(), 80)), name.data()));
  }
  std::string_view id = name.substr(kPrefix.size());
  RETURN_IF_ERROR(ValidateTenantId(id));
  return std::string(id);
}

Status ValidateQuota(const TenantQuota& q) {
  const struct {
    const char* field;
    int64_t value;
  } fields[] = {{"requests_per_minute", q.requests_per_minute},
                {"tokens_per_minute", q.tokens_per_minute},
                {"concurrent_streams", q.concurrent_streams}};
  for (const auto& f : fields) {
    if (f.value < 0 || f.value > kMaxQuotaValue) {
      return InvalidArgument(StrFormat("quota %s = %lld is out of range: use 0 (unlimited) to %lld",
                                       f.field, static_cast<long long>(f.value),
                                       static_cast<long long>(kMaxQuotaValue)));
    }
  }
  return OkStatus();
}

StatusOr<int32_t> EffectivePageSize(int32_t page_size) {
  if (page_size < 0) {
    return InvalidArgument(StrFormat("page_size = %d is negative; use 0 for the default (%d)",
                                     page_size, kDefaultPageSize));
  }
  if (page_size == 0) return kDefaultPageSize;
  return std::min(page_size, kMaxPageSize);
}

// The token is the hex of "<kind>\n<last>": opaque enough that clients do
// not build their own, and self-describing for debugging.
std::string EncodePageToken(std::string_view kind, std::string_view last) {
  std::string plain;
  plain.append(kind).append("\n").append(last);
  return HexEncode(plain.data(), plain.size());
}

StatusOr<std::string> DecodePageToken(std::string_view kind, std::string_view token) {
  const Status bad = InvalidArgument(
      "page_token is not valid for this list: pass the next_page_token of the previous page "
      "with the same filter, or an empty token for the first page");
  if (token.size() % 2 != 0) return bad;
  std::string plain;
  plain.reserve(token.size() / 2);
  for (size_t i = 0; i < token.size(); i += 2) {
    const int hi = HexValue(token[i]);
    const int lo = HexValue(token[i + 1]);
    if (hi < 0 || lo < 0) return bad;
    plain.push_back(static_cast<char>(hi * 16 + lo));
  }
  if (plain.size() <= kind.size() || plain.compare(0, kind.size(), kind) != 0 ||
      plain[kind.size()] != '\n') {
    return bad;
  }
  return plain.substr(kind.size() + 1);
}

}  // namespace atrium::gateway
