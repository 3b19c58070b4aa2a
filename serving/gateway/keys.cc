#include "serving/gateway/keys.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include <openssl/crypto.h>
#include <openssl/evp.h>

namespace atrium::gateway {
namespace {

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

StatusOr<std::string> RandomHex(size_t n_bytes) {
  uint8_t buf[64];
  ATRIUM_CHECK(n_bytes <= sizeof(buf), "RandomHex(%zu) over the buffer", n_bytes);
  RETURN_IF_ERROR(FillRandom(buf, n_bytes));
  std::string hex = HexEncode(buf, n_bytes);
  OPENSSL_cleanse(buf, sizeof(buf));
  return hex;
}

}  // namespace

Status FillRandom(void* out, size_t n) {
  auto* p = static_cast<uint8_t*>(out);
  while (n > 0) {
    // Blocks only until the kernel's pool is initialized at boot, then never.
    const ssize_t got = getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return Internal(StrFormat("getrandom failed: %s (the kernel cannot supply random bytes "
                                "for API keys)", std::strerror(errno)));
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
  return OkStatus();
}

std::string HexEncode(const void* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  const auto* b = static_cast<const uint8_t*>(data);
  std::string out(2 * n, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[b[i] >> 4];
    out[2 * i + 1] = kDigits[b[i] & 15];
  }
  return out;
}

StatusOr<std::string> NewKeyId() {
  ASSIGN_OR_RETURN(std::string hex, RandomHex(kKeyIdHexDigits / 2));
  return std::string(kKeyIdPrefix) + hex;
}

StatusOr<std::string> NewSecret(std::string_view key_id) {
  ATRIUM_CHECK(IsValidKeyId(key_id), "NewSecret for an invalid key id");
  ASSIGN_OR_RETURN(std::string hex, RandomHex(kSecretRandomBytes));
  std::string secret;
  secret.reserve(kSecretLength);
  secret.append(kSecretPrefix).append(key_id).append("_").append(hex);
  return secret;
}

bool IsValidKeyId(std::string_view key_id) {
  return key_id.size() == kKeyIdPrefix.size() + kKeyIdHexDigits &&
         key_id.substr(0, kKeyIdPrefix.size()) == kKeyIdPrefix &&
         IsLowerHex(key_id.substr(kKeyIdPrefix.size()));
}

StatusOr<std::string> KeyIdFromSecret(std::string_view secret) {
  const size_t id_len = kKeyIdPrefix.size() + kKeyIdHexDigits;
  const size_t sep = kSecretPrefix.size() + id_len;
  if (secret.size() != kSecretLength || secret.substr(0, kSecretPrefix.size()) != kSecretPrefix ||
      secret[sep] != '_' || !IsLowerHex(secret.substr(sep + 1))) {
    return Status(StatusCode::kUnauthenticated,
                  "malformed API key: expected 'atr_key-<12 hex>_<64 hex>' as issued by "
                  "the admin API");
  }
  std::string_view key_id = secret.substr(kSecretPrefix.size(), id_len);
  if (!IsValidKeyId(key_id)) {
    return Status(StatusCode::kUnauthenticated, "malformed API key: bad key id part");
  }
  return std::string(key_id);
}

SecretHash HashSecret(std::string_view secret) {
  SecretHash digest;
  unsigned int len = 0;
  const int ok = EVP_Digest(secret.data(), secret.size(), digest.data(), &len, EVP_sha256(), nullptr);
  ATRIUM_CHECK(ok == 1 && len == digest.size(), "EVP_Digest(SHA-256) failed");
  return digest;
}

bool SecretHashEquals(const SecretHash& computed, const void* stored, size_t n) {
  if (stored == nullptr || n != computed.size()) return false;
  return CRYPTO_memcmp(computed.data(), stored, computed.size()) == 0;
}

}  // namespace atrium::gateway
