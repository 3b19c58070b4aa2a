#include "serving/gateway/keys.h"

#include <set>

#include <gtest/gtest.h>

namespace atrium::gateway {
namespace {

TEST(KeysTest, KeyIdAndSecretHaveTheDocumentedForm) {
  StatusOr<std::string> id = NewKeyId();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_TRUE(IsValidKeyId(*id)) << *id;
  EXPECT_EQ(id->size(), 16u);  // "key-" + 12 hex

  StatusOr<std::string> secret = NewSecret(*id);
  ASSERT_TRUE(secret.ok());
  EXPECT_EQ(secret->size(), kSecretLength);
  EXPECT_EQ(secret->substr(0, 4), "atr_");
  EXPECT_EQ(secret->substr(4, id->size()), *id);

  StatusOr<std::string> parsed = KeyIdFromSecret(*secret);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed, *id);
}

TEST(KeysTest, FreshValuesDoNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    StatusOr<std::string> id = NewKeyId();
    ASSERT_TRUE(id.ok());
    EXPECT_TRUE(seen.insert(*NewSecret(*id)).second);
  }
}

TEST(KeysTest, MalformedSecretsAreUnauthenticatedWithoutEchoingThem) {
  const std::string good = *NewSecret(*NewKeyId());
  std::string upper = good;
  upper.back() = 'F';
  const std::string cases[] = {
      "",
      "Bearer " + good,
      good.substr(0, good.size() - 1),
      good + "0",
      "xtr_" + good.substr(4),
      upper,                                             // hex must be lowercase
      good.substr(0, 20) + "-" + good.substr(21),        // separator
      "atr_kez-" + good.substr(8),                       // key id prefix
  };
  for (const std::string& secret : cases) {
    StatusOr<std::string> id = KeyIdFromSecret(secret);
    ASSERT_FALSE(id.ok()) << secret;
    EXPECT_EQ(id.status().code(), StatusCode::kUnauthenticated);
    if (secret.size() > 8) {
      EXPECT_EQ(id.status().message().find(secret.substr(8)), std::string::npos);
    }
  }
}

TEST(KeysTest, HashIsSha256AndComparesExactly) {
  // SHA-256("abc"), FIPS 180-2 appendix B.1.
  const SecretHash h = HashSecret("abc");
  EXPECT_EQ(HexEncode(h.data(), h.size()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  SecretHash other = h;
  EXPECT_TRUE(SecretHashEquals(h, other.data(), other.size()));
  other[31] ^= 1;
  EXPECT_FALSE(SecretHashEquals(h, other.data(), other.size()));
  EXPECT_FALSE(SecretHashEquals(h, h.data(), 31));  // a damaged row
  EXPECT_FALSE(SecretHashEquals(h, nullptr, 32));
}

TEST(KeysTest, KeyIdValidation) {
  EXPECT_TRUE(IsValidKeyId("key-0123456789ab"));
  EXPECT_FALSE(IsValidKeyId("key-0123456789a"));
  EXPECT_FALSE(IsValidKeyId("key-0123456789abc"));
  EXPECT_FALSE(IsValidKeyId("key-0123456789AB"));
  EXPECT_FALSE(IsValidKeyId("kee-0123456789ab"));
  EXPECT_FALSE(IsValidKeyId(""));
}

}  // namespace
}  // namespace atrium::gateway
