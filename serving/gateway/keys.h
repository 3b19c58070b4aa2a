// API key material: ids, secrets and their hashes. Pure functions, no
// storage: the Store keeps only what SecretHash returns, never a secret.
//
// A key id is "key-" + 12 lowercase hex digits (48 random bits). The secret a
// client sends is "atr_<key id>_<64 hex digits>" (32 random bytes from
// getrandom). The key id inside the secret lets the store find the one row to
// compare against, so authentication is a primary-key lookup plus one
// constant-time compare of SHA-256 digests.
//
// Why a fast hash and not bcrypt/argon2: the secret carries 256 random bits,
// so guessing it from the digest is out of reach whatever the hash costs, and
// a fast hash keeps authentication of every RPC at a few microseconds.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "runtime/status.h"

namespace atrium::gateway {

inline constexpr std::string_view kKeyIdPrefix = "key-";
inline constexpr int kKeyIdHexDigits = 12;
inline constexpr std::string_view kSecretPrefix = "atr_";
inline constexpr int kSecretRandomBytes = 32;
// "atr_" + "key-" + 12 hex + "_" + 64 hex.
inline constexpr size_t kSecretLength = 4 + 4 + kKeyIdHexDigits + 1 + 2 * kSecretRandomBytes;

using SecretHash = std::array<uint8_t, 32>;  // SHA-256 digest

// Fills `out` with bytes from the kernel's CSPRNG (getrandom). Fails only when
// the kernel refuses, which no caller can fix; the message says so.
Status FillRandom(void* out, size_t n);

// A fresh random key id, "key-" + 12 hex digits.
StatusOr<std::string> NewKeyId();
// A fresh secret for `key_id` (which must be a valid key id).
StatusOr<std::string> NewSecret(std::string_view key_id);

bool IsValidKeyId(std::string_view key_id);
// The key id inside a secret, or UNAUTHENTICATED when the secret is not of
// the form above. The message never repeats the secret.
StatusOr<std::string> KeyIdFromSecret(std::string_view secret);

// SHA-256 of the whole secret string.
SecretHash HashSecret(std::string_view secret);
// Compares in time independent of where the bytes differ; false when `n` is
// not the digest size (a damaged row), without reading past `stored`.
bool SecretHashEquals(const SecretHash& computed, const void* stored, size_t n);

std::string HexEncode(const void* data, size_t n);

}  // namespace atrium::gateway
