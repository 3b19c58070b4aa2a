// Authentication and access at the gRPC edge: the bearer header, the store's
// verdict mapped to UNAUTHENTICATED with a stable reason, admin-only
// methods, and NOT_FOUND that says nothing about other tenants.
#include "serving/gateway/auth.h"

#include <gtest/gtest.h>

#include "serving/gateway/sqlite_store.h"

namespace atrium::gateway {
namespace {

Metadata With(std::initializer_list<std::pair<const char*, const char*>> headers) {
  Metadata m;
  for (const auto& [k, v] : headers) m.emplace(grpc::string_ref(k), grpc::string_ref(v));
  return m;
}

TEST(BearerSecretTest, ReadsTheTokenOfOneBearerHeader) {
  rpc::ApiError e;
  for (const char* value : {"Bearer abc", "bearer abc", "BEARER  abc ", "  Bearer\tabc"}) {
    StatusOr<std::string> s = BearerSecret(With({{"authorization", value}}), &e);
    ASSERT_TRUE(s.ok()) << value << ": " << s.status().ToString();
    EXPECT_EQ(*s, "abc") << value;
  }
}

TEST(BearerSecretTest, RefusesMissingRepeatedAndMalformedHeaders) {
  struct Case {
    Metadata metadata;
    std::string reason;
  };
  const Case cases[] = {
      {With({}), "API_KEY_MISSING"},
      {With({{"x-other", "Bearer abc"}}), "API_KEY_MISSING"},
      {With({{"authorization", "Bearer "}}), "API_KEY_MALFORMED"},
      {With({{"authorization", "Bearer"}}), "API_KEY_MALFORMED"},
      {With({{"authorization", "Basic dXNlcjpwYXNz"}}), "API_KEY_MALFORMED"},
      {With({{"authorization", "Bearerabc"}}), "API_KEY_MALFORMED"},
      {With({{"authorization", "Bearer a"}, {"authorization", "Bearer b"}}), "API_KEY_MALFORMED"},
  };
  for (const Case& c : cases) {
    rpc::ApiError e;
    StatusOr<std::string> s = BearerSecret(c.metadata, &e);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), StatusCode::kUnauthenticated);
    EXPECT_EQ(e.reason, c.reason) << s.status().message();
    EXPECT_NE(s.status().message().find("authorization: Bearer"), std::string::npos) << "says how to fix it";
    EXPECT_EQ(s.status().message().find("dXNlcjpwYXNz"), std::string::npos) << "never repeats the credential";
  }
}

class AuthenticateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(":memory:");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    ASSERT_TRUE(store_->CreateTenant("acme", "").ok());
    ASSERT_TRUE(store_->CreateTenant("globex", "").ok());
    StatusOr<IssuedKey> k = store_->IssueKey("acme", false);
    ASSERT_TRUE(k.ok());
    key_ = *k;
  }

  StatusOr<Principal> Auth(const std::string& secret, rpc::ApiError* e) {
    const std::string header = "Bearer " + secret;
    Metadata m;
    m.emplace(grpc::string_ref("authorization"), grpc::string_ref(header));
    return Authenticate(*store_, m, e);
  }

  std::unique_ptr<SqliteStore> store_;
  IssuedKey key_;
};

TEST_F(AuthenticateTest, ValidKeyGivesItsTenant) {
  rpc::ApiError e;
  StatusOr<Principal> p = Auth(key_.secret, &e);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->tenant_id, "acme");
  EXPECT_EQ(p->key_id, key_.key.key_id);
  EXPECT_FALSE(p->admin);
}

TEST_F(AuthenticateTest, BadAndRevokedKeysAreUnauthenticatedAtOnce) {
  rpc::ApiError e;
  StatusOr<Principal> bad = Auth("atr_key-000000000000_" + std::string(64, '0'), &e);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(e.reason, "API_KEY_INVALID");
  rpc::ApiError e2;
  EXPECT_FALSE(Auth("not-a-key", &e2).ok());
  EXPECT_EQ(e2.reason, "API_KEY_INVALID");

  rpc::ApiError e3;
  ASSERT_TRUE(Auth(key_.secret, &e3).ok());
  ASSERT_TRUE(store_->RevokeKey("acme", key_.key.key_id).ok());
  rpc::ApiError e4;
  StatusOr<Principal> revoked = Auth(key_.secret, &e4);
  ASSERT_FALSE(revoked.ok()) << "no cached success survives a revoke";
  EXPECT_EQ(revoked.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(e4.reason, "API_KEY_INVALID");
  EXPECT_NE(revoked.status().message().find("revoked"), std::string::npos);
  EXPECT_EQ(revoked.status().message().find(key_.secret), std::string::npos);
}

TEST(AccessTest, AdminMethodsNeedAnAdminKey) {
  Principal tenant{"acme", "key-0123456789ab", false, {}};
  Principal admin{"admin", "key-ba9876543210", true, {}};
  rpc::ApiError denied = RequireAdmin(tenant, "/atrium.v1.Admin/CreateTenant");
  EXPECT_EQ(denied.status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.reason, "ADMIN_KEY_REQUIRED");
  EXPECT_TRUE(RequireAdmin(admin, "/atrium.v1.Admin/CreateTenant").ok());
}

// A tenant key sees its own tenant only, an admin key every tenant. That
// the Admin handlers then answer a hidden tenant exactly as a missing one is
// checked over gRPC (gateway_serve_model_test.py, tenant isolation).
TEST(AccessTest, TenantKeysSeeOnlyTheirTenant) {
  Principal acme{"acme", "key-0123456789ab", false, {}};
  Principal admin{"admin", "key-ba9876543210", true, {}};
  EXPECT_TRUE(CanSeeTenant(acme, "acme"));
  EXPECT_FALSE(CanSeeTenant(acme, "globex"));
  EXPECT_TRUE(CanSeeTenant(admin, "globex"));
  const rpc::ApiError hidden = TenantNotFound("globex");
  EXPECT_EQ(hidden.status.code(), StatusCode::kNotFound);
  EXPECT_EQ(hidden.status.message(), "tenant 'tenants/globex' not found");
}

}  // namespace
}  // namespace atrium::gateway
