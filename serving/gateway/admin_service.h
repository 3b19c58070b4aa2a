// The public Admin service: tenants, API keys and quotas, over the Store.
//
// Who may call what (auth.h):
//  - CreateTenant, ListTenants, CreateApiKey, RevokeApiKey, SetQuota need
//    an admin key (PERMISSION_DENIED otherwise, before any lookup);
//  - GetTenant, GetQuota and ListApiKeys also serve a tenant's own key for
//    its own tenant; another tenant's name is NOT_FOUND, worded exactly as
//    for a tenant that does not exist.
// Keys issued for the operator tenant (the one `atrium serve` creates on
// first run, kAdminTenant) are admin keys; keys of every other tenant are
// not.
//
// request_id makes CreateTenant and CreateApiKey idempotent: a retry with
// the same request_id from the same key within kRequestIdTtl gets the first
// call's answer (for a key, the same secret) instead of a second tenant or
// key. The memory of request ids is this process's; a restart forgets it.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "atrium/v1/admin.grpc.pb.h"
#include "serving/gateway/call_record.h"
#include "serving/gateway/store.h"

namespace atrium::gateway {

// The operator's tenant, created with the first admin key.
inline constexpr std::string_view kAdminTenant = "admin";

class AdminService final : public v1::Admin::CallbackService {
 public:
  static constexpr std::chrono::minutes kRequestIdTtl{10};
  static constexpr size_t kMaxRequestIds = 10000;

  AdminService(Store& store, CallSinks sinks) : store_(store), sinks_(sinks) {}

  grpc::ServerUnaryReactor* CreateTenant(grpc::CallbackServerContext* ctx, const v1::CreateTenantRequest* request,
                                         v1::Tenant* response) override;
  grpc::ServerUnaryReactor* GetTenant(grpc::CallbackServerContext* ctx, const v1::GetTenantRequest* request,
                                      v1::Tenant* response) override;
  grpc::ServerUnaryReactor* ListTenants(grpc::CallbackServerContext* ctx, const v1::ListTenantsRequest* request,
                                        v1::ListTenantsResponse* response) override;
  grpc::ServerUnaryReactor* CreateApiKey(grpc::CallbackServerContext* ctx, const v1::CreateApiKeyRequest* request,
                                         v1::CreateApiKeyResponse* response) override;
  grpc::ServerUnaryReactor* RevokeApiKey(grpc::CallbackServerContext* ctx, const v1::RevokeApiKeyRequest* request,
                                         v1::ApiKey* response) override;
  grpc::ServerUnaryReactor* ListApiKeys(grpc::CallbackServerContext* ctx, const v1::ListApiKeysRequest* request,
                                        v1::ListApiKeysResponse* response) override;
  grpc::ServerUnaryReactor* SetQuota(grpc::CallbackServerContext* ctx, const v1::SetQuotaRequest* request,
                                     v1::Quota* response) override;
  grpc::ServerUnaryReactor* GetQuota(grpc::CallbackServerContext* ctx, const v1::GetQuotaRequest* request,
                                     v1::Quota* response) override;

 private:
  struct Remembered {
    std::chrono::steady_clock::time_point time;
    std::string answer;  // the serialized response
  };
  // Parses into `response` the answer of an earlier `method` call by the
  // same key with `request_id`; false when there is none (or no id).
  bool Recall(std::string_view method, const Principal& p, const std::string& request_id,
              google::protobuf::Message* response);
  // Keeps `response` as the answer to later calls with `request_id`, if any.
  void Remember(std::string_view method, const Principal& p, const std::string& request_id,
                const google::protobuf::Message& response);

  Store& store_;
  const CallSinks sinks_;
  std::mutex mu_;
  std::map<std::string, Remembered> request_ids_;  // "<method>\n<key id>\n<request id>"
};

}  // namespace atrium::gateway
