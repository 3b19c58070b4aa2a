// Who is calling, and what they may touch. Every public call carries
// `authorization: Bearer <secret>`; the secret goes to Store::Authenticate
// on every call (no cache of successes here, so a revoked key fails on the
// next call), and the Principal it returns decides the rest:
//  - Inference and ModelPlaza need any valid key; the call runs on the key's
//    tenant's worker, so a tenant never reaches another tenant's engine,
//    prefix cache or data.
//  - Admin methods that change state, and ListTenants, need an admin key:
//    PERMISSION_DENIED otherwise (answered before any lookup, so it says
//    nothing about what exists).
//  - A tenant's own key may read its own tenant, quota and keys; another
//    tenant's name gets NOT_FOUND with exactly the message a name that does
//    not exist gets, so a key is no oracle for other tenants.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include <grpcpp/support/string_ref.h>

#include "serving/gateway/store.h"
#include "serving/worker/rpc_status.h"

namespace atrium::gateway {

using Metadata = std::multimap<grpc::string_ref, grpc::string_ref>;

// The secret of the call's `authorization` metadata ("Bearer <secret>", the
// scheme in any case). UNAUTHENTICATED (reason API_KEY_MISSING or
// API_KEY_MALFORMED) when it is absent, repeated or not a bearer token; the
// message never repeats the header's value.
StatusOr<std::string> BearerSecret(const Metadata& metadata, rpc::ApiError* error);

// BearerSecret, then Store::Authenticate. A key the store refuses gets
// UNAUTHENTICATED with reason API_KEY_INVALID (the store's message says
// whether it was revoked); a store failure (UNAVAILABLE) passes through.
StatusOr<Principal> Authenticate(Store& store, const Metadata& metadata, rpc::ApiError* error);

// PERMISSION_DENIED (reason ADMIN_KEY_REQUIRED) unless an admin key calls.
rpc::ApiError RequireAdmin(const Principal& principal, std::string_view method);

// Whether `principal` may see tenant `tenant_id`: an admin key sees every
// tenant, any other key only its own.
bool CanSeeTenant(const Principal& principal, std::string_view tenant_id);

// The NOT_FOUND of a tenant that does not exist, or that the caller may not
// see: the same message either way.
rpc::ApiError TenantNotFound(std::string_view tenant_id);

}  // namespace atrium::gateway
