#include "serving/gateway/auth.h"

#include <cctype>

namespace atrium::gateway {
namespace {

constexpr std::string_view kHeader = "authorization";
constexpr std::string_view kScheme = "bearer";
constexpr const char* kHowTo = "send the metadata 'authorization: Bearer <API key>'";

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

rpc::ApiError Unauthenticated(std::string message, std::string reason) {
  return rpc::WithReason(Status(StatusCode::kUnauthenticated, std::move(message)), std::move(reason));
}

}  // namespace

StatusOr<std::string> BearerSecret(const Metadata& metadata, rpc::ApiError* error) {
  auto [begin, end] = metadata.equal_range(grpc::string_ref(kHeader.data(), kHeader.size()));
  if (begin == end) {
    *error = Unauthenticated(StrFormat("no API key: %s", kHowTo), "API_KEY_MISSING");
    return error->status;
  }
  if (std::next(begin) != end) {
    *error = Unauthenticated(StrFormat("more than one authorization header; %s once", kHowTo), "API_KEY_MALFORMED");
    return error->status;
  }
  std::string_view value(begin->second.data(), begin->second.size());
  while (!value.empty() && IsSpace(value.front())) value.remove_prefix(1);
  while (!value.empty() && IsSpace(value.back())) value.remove_suffix(1);
  bool scheme_ok = value.size() > kScheme.size() && IsSpace(value[kScheme.size()]);
  for (size_t i = 0; scheme_ok && i < kScheme.size(); ++i) {
    scheme_ok = std::tolower(static_cast<unsigned char>(value[i])) == kScheme[i];
  }
  if (!scheme_ok) {
    *error = Unauthenticated(StrFormat("the authorization header is not a bearer token; %s", kHowTo),
                             "API_KEY_MALFORMED");
    return error->status;
  }
  value.remove_prefix(kScheme.size());
  // Never empty: the trailing blanks are gone and the scheme ends in one.
  while (!value.empty() && IsSpace(value.front())) value.remove_prefix(1);
  return std::string(value);
}

StatusOr<Principal> Authenticate(Store& store, const Metadata& metadata, rpc::ApiError* error) {
  StatusOr<std::string> secret = BearerSecret(metadata, error);
  if (!secret.ok()) return secret.status();
  StatusOr<Principal> principal = store.Authenticate(*secret);
  if (!principal.ok()) {
    *error = principal.status().code() == StatusCode::kUnauthenticated
                 ? rpc::WithReason(principal.status(), "API_KEY_INVALID")
                 : rpc::ApiError(principal.status());
    return error->status;
  }
  return principal;
}

rpc::ApiError RequireAdmin(const Principal& principal, std::string_view method) {
  if (principal.admin) return rpc::Ok();
  return rpc::WithReason(
      Status(StatusCode::kPermissionDenied,
             StrFormat("%.*s needs an admin API key; key %s of tenants/%s is not one", static_cast<int>(method.size()),
                       method.data(), principal.key_id.c_str(), principal.tenant_id.c_str())),
      "ADMIN_KEY_REQUIRED");
}

bool CanSeeTenant(const Principal& principal, std::string_view tenant_id) {
  return principal.admin || principal.tenant_id == tenant_id;
}

rpc::ApiError TenantNotFound(std::string_view tenant_id) {
  rpc::ApiError e = rpc::WithReason(
      NotFound(StrFormat("tenant 'tenants/%.*s' not found", static_cast<int>(tenant_id.size()), tenant_id.data())),
      "TENANT_NOT_FOUND");
  e.metadata.emplace_back("tenant", "tenants/" + std::string(tenant_id));
  return e;
}

}  // namespace atrium::gateway
