// The gateway's persistent state: tenants, their quotas and their API keys.
//
// Store is an interface so that one gateway can run on the embedded SQLite
// file (SqliteStore, the default under the data directory) and several
// replicas can later share PostgreSQL. Every method is safe to call from many
// threads at once, and every write is one transaction: a caller never sees
// half of a change. A change made by one call (a revoked key, a new quota) is
// seen by every later call on any thread.
//
// Errors: INVALID_ARGUMENT names the bad field; NOT_FOUND for a tenant or key
// that does not exist; ALREADY_EXISTS for a duplicate tenant; UNAUTHENTICATED
// from Authenticate only; DATA_LOSS when the backing file is corrupt;
// UNAVAILABLE when the database stays locked or cannot be written.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace atrium::gateway {

// Limits per tenant. 0 means unlimited, the default for a new tenant.
struct TenantQuota {
  int64_t requests_per_minute = 0;
  int64_t tokens_per_minute = 0;  // prompt + completion tokens
  int64_t concurrent_streams = 0;
  bool operator==(const TenantQuota&) const = default;
};

// Any limit above this is refused as INVALID_ARGUMENT: it keeps the
// limiter's fixed-point arithmetic far from overflow and is far beyond any
// real deployment.
inline constexpr int64_t kMaxQuotaValue = int64_t{1} << 40;

struct Tenant {
  std::string id;  // [a-z][a-z0-9-]{0,62}
  std::string display_name;
  int64_t create_time_ms = 0;  // Unix epoch milliseconds
  TenantQuota quota;
  // The resource name, "tenants/<id>".
  std::string name() const { return "tenants/" + id; }
};

struct ApiKey {
  std::string key_id;  // "key-<12 hex>"
  std::string tenant_id;
  bool admin = false;  // may call the Admin service
  int64_t create_time_ms = 0;
  int64_t revoke_time_ms = 0;  // 0 while the key is valid
  bool revoked() const { return revoke_time_ms != 0; }
};

// What IssueKey returns: the secret exists only here. The store keeps its
// SHA-256, so a lost secret cannot be shown again; issue a new key instead.
struct IssuedKey {
  ApiKey key;
  std::string secret;
};

// Who is calling, from a valid key. The tenant's quota comes along so the
// gateway admits a call with one lookup.
struct Principal {
  std::string tenant_id;
  std::string key_id;
  bool admin = false;
  TenantQuota quota;
};

struct TenantPage {
  std::vector<Tenant> tenants;
  std::string next_page_token;  // empty on the last page
};

struct KeyPage {
  std::vector<ApiKey> keys;
  std::string next_page_token;
};

// page_size as in Google's API guide (AIP-158): 0 picks the default, larger
// than the maximum is lowered to it, negative is INVALID_ARGUMENT.
inline constexpr int32_t kDefaultPageSize = 50;
inline constexpr int32_t kMaxPageSize = 1000;

class Store {
 public:
  virtual ~Store() = default;

  // ALREADY_EXISTS when the id is taken. display_name may be empty (then
  // it is the id); at most 256 bytes.
  virtual StatusOr<Tenant> CreateTenant(std::string_view tenant_id, std::string_view display_name) = 0;
  virtual StatusOr<Tenant> GetTenant(std::string_view tenant_id) = 0;
  // Tenants in id order. page_token is empty or a next_page_token from the
  // previous page; a token from another list is INVALID_ARGUMENT.
  virtual StatusOr<TenantPage> ListTenants(int32_t page_size, std::string_view page_token) = 0;
  // Changes the tenant's quota: `change` edits the current values inside
  // the write's transaction, so two partial updates at once never lose one
  // another. The new values are returned by the next Authenticate on any
  // thread. Negative or over kMaxQuotaValue is INVALID_ARGUMENT.
  virtual StatusOr<Tenant> UpdateQuota(std::string_view tenant_id,
                                       const std::function<void(TenantQuota&)>& change) = 0;
  // Replaces the tenant's quota.
  StatusOr<Tenant> SetQuota(std::string_view tenant_id, const TenantQuota& quota) {
    return UpdateQuota(tenant_id, [&](TenantQuota& q) { q = quota; });
  }

  // A new key for an existing tenant.
  virtual StatusOr<IssuedKey> IssueKey(std::string_view tenant_id, bool admin) = 0;
  // The tenant's keys (revoked ones too) in key id order.
  virtual StatusOr<KeyPage> ListKeys(std::string_view tenant_id, int32_t page_size,
                                     std::string_view page_token) = 0;
  // Marks the tenant's key revoked; Authenticate refuses it from this call
  // on. Revoking a revoked key is OK and keeps the first revoke time.
  // NOT_FOUND, worded the same, for a key that does not exist and for
  // another tenant's key (which stays as it is).
  virtual StatusOr<ApiKey> RevokeKey(std::string_view tenant_id, std::string_view key_id) = 0;

  // The caller of a secret as sent in "authorization: Bearer <secret>".
  // UNAUTHENTICATED for a malformed, unknown, wrong or revoked secret; the
  // message never contains the secret.
  virtual StatusOr<Principal> Authenticate(std::string_view secret) = 0;
};

// INVALID_ARGUMENT unless `id` matches [a-z][a-z0-9-]{0,62}.
Status ValidateTenantId(std::string_view id);
// "tenants/acme" -> "acme", validated.
StatusOr<std::string> TenantIdFromName(std::string_view name);
Status ValidateQuota(const TenantQuota& quota);
// The page size to use for a requested page_size (see kDefaultPageSize).
StatusOr<int32_t> EffectivePageSize(int32_t page_size);

// Page tokens are opaque to clients but carry which list they belong to
// (`kind`, e.g. "tenants" or "keys:acme") and where the page ended, so a
// token from one list is refused by another.
std::string EncodePageToken(std::string_view kind, std::string_view last);
// The `last` part, or INVALID_ARGUMENT when the token is not from `kind`.
StatusOr<std::string> DecodePageToken(std::string_view kind, std::string_view token);

}  // namespace atrium::gateway
