#include "serving/gateway/admin_service.h"

#include "serving/gateway/auth.h"
#include "serving/gateway/errors.h"
#include "serving/worker/text.h"

namespace atrium::gateway {
namespace {

std::string Method(const char* name) { return std::string("/atrium.v1.Admin/") + name; }

// A client's name, fit for a message: valid UTF-8, at most 200 bytes.
std::string Clip(std::string_view name) { return worker::ValidUtf8(name.substr(0, 200)); }

void SetTimestamp(int64_t ms, google::protobuf::Timestamp* out) {
  out->set_seconds(ms / 1000);
  out->set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
}

void ToProto(const Tenant& t, v1::Tenant* out) {
  out->set_name(t.name());
  out->set_display_name(t.display_name);
  SetTimestamp(t.create_time_ms, out->mutable_create_time());
}

void ToProto(const ApiKey& k, v1::ApiKey* out) {
  out->set_name("tenants/" + k.tenant_id + "/apiKeys/" + k.key_id);
  out->set_state(k.revoked() ? v1::ApiKey::REVOKED : v1::ApiKey::ACTIVE);
  SetTimestamp(k.create_time_ms, out->mutable_create_time());
  if (k.revoked()) SetTimestamp(k.revoke_time_ms, out->mutable_revoke_time());
}

void ToProto(const Tenant& t, v1::Quota* out) {
  out->set_name(t.name() + "/quota");
  out->set_requests_per_minute(static_cast<int32_t>(std::min<int64_t>(t.quota.requests_per_minute, INT32_MAX)));
  out->set_tokens_per_minute(t.quota.tokens_per_minute);
  out->set_concurrent_streams(static_cast<int32_t>(std::min<int64_t>(t.quota.concurrent_streams, INT32_MAX)));
}

// "tenants/<t>/<suffix...>" -> <t> and the rest after the slash.
StatusOr<std::pair<std::string, std::string>> SplitTenantName(std::string_view name, std::string_view expected) {
  const Status bad = InvalidArgument(StrFormat("'%s' is not a name of the form \"%.*s\"", Clip(name).c_str(),
                                               static_cast<int>(expected.size()), expected.data()));
  constexpr std::string_view kPrefix = "tenants/";
  if (name.substr(0, kPrefix.size()) != kPrefix) return bad;
  name.remove_prefix(kPrefix.size());
  const size_t slash = name.find('/');
  if (slash == std::string_view::npos) return bad;
  std::string tenant(name.substr(0, slash));
  if (!ValidateTenantId(tenant).ok()) return bad;
  return std::make_pair(std::move(tenant), std::string(name.substr(slash + 1)));
}

// "tenants/<t>/quota" -> <t>.
StatusOr<std::string> TenantOfQuotaName(const std::string& name) {
  StatusOr<std::pair<std::string, std::string>> parts = SplitTenantName(name, "tenants/<tenant>/quota");
  if (!parts.ok() || parts->second != "quota") {
    return InvalidArgument(
        StrFormat("'%s' is not a name of the form \"tenants/<tenant>/quota\"", Clip(name).c_str()));
  }
  return std::move(parts->first);
}

// Authenticates the caller into `p`; with `admin`, an admin key only.
// False with `error` set when refused.
bool Authorize(Store& store, grpc::CallbackServerContext* ctx, CallRecord& record, bool admin, const char* method,
               Principal* p, grpc::Status* error) {
  rpc::ApiError e;
  StatusOr<Principal> principal = Authenticate(store, ctx->client_metadata(), &e);
  if (!principal.ok()) {
    *error = rpc::ToGrpc(e);
    return false;
  }
  *p = *principal;
  record.set_principal(*p);
  if (admin) {
    if (rpc::ApiError denied = RequireAdmin(*p, Method(method)); !denied.ok()) {
      *error = rpc::ToGrpc(denied);
      return false;
    }
  }
  return true;
}

// Where AdminService remembers an answer: "<method>\n<key id>\n<request id>".
std::string RequestIdKey(std::string_view method, const Principal& p, const std::string& request_id) {
  std::string key(method);
  key.append("\n").append(p.key_id).append("\n").append(request_id);
  return key;
}

// The store's NOT_FOUND for a tenant, worded as every tenant NOT_FOUND is.
grpc::Status TenantError(const Status& status, const std::string& tenant_id, std::string field) {
  if (status.code() == StatusCode::kNotFound) return rpc::ToGrpc(TenantNotFound(tenant_id));
  return FieldError(status, std::move(field));
}

}  // namespace

bool AdminService::Recall(std::string_view method, const Principal& p, const std::string& request_id,
                          google::protobuf::Message* response) {
  if (request_id.empty()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = request_ids_.find(RequestIdKey(method, p, request_id));
  if (it == request_ids_.end()) return false;
  if (std::chrono::steady_clock::now() - it->second.time > kRequestIdTtl) {
    request_ids_.erase(it);
    return false;
  }
  return response->ParseFromString(it->second.answer);
}

void AdminService::Remember(std::string_view method, const Principal& p, const std::string& request_id,
                            const google::protobuf::Message& response) {
  if (request_id.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (request_ids_.size() >= kMaxRequestIds) {
    std::erase_if(request_ids_, [&](const auto& e) { return now - e.second.time > kRequestIdTtl; });
    if (request_ids_.size() >= kMaxRequestIds) request_ids_.erase(request_ids_.begin());
  }
  request_ids_[RequestIdKey(method, p, request_id)] = {now, response.SerializeAsString()};
}

grpc::ServerUnaryReactor* AdminService::CreateTenant(grpc::CallbackServerContext* ctx,
                                                     const v1::CreateTenantRequest* request, v1::Tenant* response) {
  CallRecord record(sinks_, Method("CreateTenant"));
  Principal p;
  grpc::Status error;
  if (!Authorize(store_, ctx, record, true, "CreateTenant", &p, &error)) return FinishUnary(ctx, record, error);
  if (Recall("CreateTenant", p, request->request_id(), response)) return FinishUnary(ctx, record, grpc::Status::OK);
  StatusOr<Tenant> t = store_.CreateTenant(request->tenant_id(), request->tenant().display_name());
  if (!t.ok()) return FinishUnary(ctx, record, FieldError(t.status(), "tenant_id"));
  ToProto(*t, response);
  Remember("CreateTenant", p, request->request_id(), *response);
  return FinishUnary(ctx, record, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AdminService::GetTenant(grpc::CallbackServerContext* ctx,
                                                  const v1::GetTenantRequest* request, v1::Tenant* response) {
  CallRecord record(sinks_, Method("GetTenant"));
  Principal p;
  grpc::Status error;
  if (!Authorize(store_, ctx, record, false, "GetTenant", &p, &error)) return FinishUnary(ctx, record, error);
  StatusOr<std::string> tenant = TenantIdFromName(request->name());
  if (!tenant.ok()) return FinishUnary(ctx, record, FieldError(tenant.status(), "name"));
  if (!CanSeeTenant(p, *tenant)) return FinishUnary(ctx, record, rpc::ToGrpc(TenantNotFound(*tenant)));
  StatusOr<Tenant> t = store_.GetTenant(*tenant);
  if (!t.ok()) return FinishUnary(ctx, record, TenantError(t.status(), *tenant, "name"));
  ToProto(*t, response);
  return FinishUnary(ctx, record, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AdminService::ListTenants(grpc::CallbackServerContext* ctx,
                                                    const v1::ListTenantsRequest* request,
                                                    v1::ListTenantsResponse* response) {
  CallRecord record(sinks_, Method("ListTenants"));
  Principal p;
  grpc::Status error;
  if (!Authorize(store_, ctx, record, true, "ListTenants", &p, &error)) return FinishUnary(ctx, record, error);
  StatusOr<TenantPage> page = store_.ListTenants(request->page_size(), request->page_token());
  if (!page.ok()) return FinishUnary(ctx, record, FieldError(page.status(), "page_token"));
  for (const Tenant& t : page->tenants) ToProto(t, response->add_tenants());
  response->set_next_page_token(page->next_page_token);
  return FinishUnary(ctx, record, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AdminService::CreateApiKey(grpc::CallbackServerContext* ctx,
                                                     const v1::CreateApiKeyRequest* request,
                                                     v1::CreateApiKeyResponse* response) {
  CallRecord record(sinks_, Method("CreateApiKey"));
  Principal p;
  grpc::Status error;
  if (!Authorize(store_, ctx, record, true, "CreateApiKey", &p, &error)) return FinishUnary(ctx, record, error);
  StatusOr<std::string> tenant = TenantIdFromName(request->parent());
  if (!tenant.ok()) return FinishUnary(ctx, record, FieldError(tenant.status(), "parent"));
  if (Recall("CreateApiKey", p, request->request_id(), response)) return FinishUnary(ctx, record, grpc::Status::OK);
  StatusOr<IssuedKey> issued = store_.IssueKey(*tenant, /*admin=*/*tenant == kAdminTenant);
  if (!issued.ok()) return FinishUnary(ctx, record, TenantError(issued.status(), *tenant, "parent"));
  ToProto(issued->key, response->mutable_api_key());
  response->mutable_api_key()->set_display_name(request->api_key().display_name());
  response->set_secret(issued->secret);
  Remember("CreateApiKey", p, request->request_id(), *response);
  return FinishUnary(ctx, record, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AdminService::RevokeApiKey(grpc::CallbackServerContext* ctx,
                                                     const v1::RevokeApiKeyRequest* request, v1::ApiKey* response) {
  CallRecord record(sinks_, Method("RevokeApiKey"));
  Principal p;
  grpc::Status error;
  if (!Authorize(store_, ctx, record, true, "RevokeApiKey", &p, &error)) return FinishUnary(ctx, record, error);
  StatusOr<std::pair<std::string, std::string>> parts =
      SplitTenantName(request->name(), "tenants/<tenant>/apiKeys/<key>");
  constexpr std::string_view kKeys = "apiKeys/";
  if (!parts.ok() || parts->second.substr(0, kKeys.size()) != kKeys) {
    return FinishUnary(ctx, record,
                       FieldError(parts.ok() ? InvalidArgument(StrFormat("'%s' is not a name of the form "
                                                                         "\"tenants/<tenant>/apiKeys/<key>\"",
                                                                         Clip(request->name()).c_str()))
                                             : parts.status(),
                                  "name"));
  }
  // A key of another tenant, or a malformed key id, is not found under this name.
  StatusOr<ApiKey> revoked = store_.RevokeKey(parts->first, parts->second.substr(kKeys.size()));
  const StatusCode code = revoked.status().code();
  if (code == StatusCode::kNotFound || code == StatusCode::kInvalidArgument) {
    const Status not_found = NotFound(StrFormat("API key '%s' not found", Clip(request->name()).c_str()));
    return FinishUnary(ctx, record, rpc::ToGrpc(rpc::WithReason(not_found, "API_KEY_NOT_FOUND")));
  }
  if (!revoked.ok()) return FinishUnary(ctx, record, rpc::ToGrpc(revoked.status()));
  ToProto(*revoked, response);
  return FinishUnary(ctx, record, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AdminService::ListApiKeys(grpc::CallbackServerContext* ctx,
                                                    const v1::ListApiKeysRequest* request,
                                                    v1::ListApiKeysResponse* response) {
  CallRecord record(sinks_, Method("ListApiKeys"));
  Principal p;
  grpc::Status error;
  if (!Authorize(store_, ctx, record, false, "ListApiKeys", &p, &error)) return FinishUnary(ctx, record, error);
  StatusOr<std::string> tenant = TenantIdFromName(request->parent());
  if (!tenant.ok()) return FinishUnary(ctx, record, FieldError(tenant.status(), "parent"));
  if (!CanSeeTenant(p, *tenant)) return FinishUnary(ctx, record, rpc::ToGrpc(TenantNotFound(*tenant)));
  StatusOr<KeyPage> page = store_.ListKeys(*tenant, request->page_size(), request->page_token());
  if (!page.ok()) return FinishUnary(ctx, record, TenantError(page.status(), *tenant, "page_token"));
  for (const ApiKey& k : page->keys) ToProto(k, response->add_api_keys());
  response->set_next_page_token(page->next_page_token);
  return FinishUnary(ctx, record, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AdminService::SetQuota(grpc::CallbackServerContext* ctx, const v1::SetQuotaRequest* request,
                                                 v1::Quota* response) {
  CallRecord record(sinks_, Method("SetQuota"));
  Principal p;
  grpc::Status error;
  if (!Authorize(store_, ctx, record, true, "SetQuota", &p, &error)) return FinishUnary(ctx, record, error);
  StatusOr<std::string> tenant_id = TenantOfQuotaName(request->quota().name());
  if (!tenant_id.ok()) return FinishUnary(ctx, record, FieldError(tenant_id.status(), "quota.name"));
  const std::string& tenant = *tenant_id;
  const v1::Quota& in = request->quota();
  const auto& paths = request->update_mask().paths();
  auto wanted = [&](std::string_view field) {
    return paths.empty() || std::find(paths.begin(), paths.end(), field) != paths.end();
  };
  for (int i = 0; i < paths.size(); ++i) {
    if (paths[i] != "requests_per_minute" && paths[i] != "tokens_per_minute" && paths[i] != "concurrent_streams") {
      return FinishUnary(
          ctx, record,
          rpc::ToGrpc(rpc::BadField(StrFormat("update_mask.paths[%d]", i),
                                    "'" + paths[i] +
                                        "' is not a settable field; use requests_per_minute, tokens_per_minute or "
                                        "concurrent_streams")));
    }
  }
  StatusOr<Tenant> updated = store_.UpdateQuota(tenant, [&](TenantQuota& q) {
    if (wanted("requests_per_minute")) q.requests_per_minute = in.requests_per_minute();
    if (wanted("tokens_per_minute")) q.tokens_per_minute = in.tokens_per_minute();
    if (wanted("concurrent_streams")) q.concurrent_streams = in.concurrent_streams();
  });
  if (!updated.ok()) return FinishUnary(ctx, record, TenantError(updated.status(), tenant, "quota"));
  ToProto(*updated, response);
  return FinishUnary(ctx, record, grpc::Status::OK);
}

grpc::ServerUnaryReactor* AdminService::GetQuota(grpc::CallbackServerContext* ctx, const v1::GetQuotaRequest* request,
                                                 v1::Quota* response) {
  CallRecord record(sinks_, Method("GetQuota"));
  Principal p;
  grpc::Status error;
  if (!Authorize(store_, ctx, record, false, "GetQuota", &p, &error)) return FinishUnary(ctx, record, error);
  StatusOr<std::string> tenant_id = TenantOfQuotaName(request->name());
  if (!tenant_id.ok()) return FinishUnary(ctx, record, FieldError(tenant_id.status(), "name"));
  const std::string& tenant = *tenant_id;
  if (!CanSeeTenant(p, tenant)) return FinishUnary(ctx, record, rpc::ToGrpc(TenantNotFound(tenant)));
  StatusOr<Tenant> t = store_.GetTenant(tenant);
  if (!t.ok()) return FinishUnary(ctx, record, TenantError(t.status(), tenant, "name"));
  ToProto(*t, response);
  return FinishUnary(ctx, record, grpc::Status::OK);
}

}  // namespace atrium::gateway
