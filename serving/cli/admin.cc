// `atrium admin ...`: the Admin API over gRPC, with the admin key.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include "atrium/v1/admin.grpc.pb.h"
#include "serving/cli/commands.h"
#include "serving/gateway/data_dir.h"
#include "serving/worker/rpc_status.h"

namespace atrium::cli {
namespace {

// "acme" or "tenants/acme" -> "tenants/acme".
std::string TenantName(const std::string& tenant) {
  return tenant.rfind("tenants/", 0) == 0 ? tenant : "tenants/" + tenant;
}

// "acme" or "tenants/acme" -> "acme".
std::string TenantId(const std::string& tenant) {
  return tenant.rfind("tenants/", 0) == 0 ? tenant.substr(8) : tenant;
}

StatusOr<std::string> AdminKey(const AdminFlags& f) {
  if (!f.key.empty()) return f.key;
  if (const char* env = std::getenv("ATRIUM_API_KEY"); env != nullptr && *env != '\0') return std::string(env);
  std::ifstream in(f.key_file);
  std::string key;
  if (!in || !(in >> key) || key.empty()) {
    return FailedPrecondition("no admin key: pass --key, set $ATRIUM_API_KEY, or --key-file (" + f.key_file +
                              " cannot be read; `atrium serve` writes it on its first run)");
  }
  return key;
}

int Print(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(m, &json, o);
  std::fputs(json.c_str(), stdout);
  return 0;
}

int Failed(const grpc::Status& s) {
  std::fprintf(stderr, "atrium admin: %s\n", rpc::FromGrpc(s).ToString().c_str());
  return 1;
}

// One Admin call: prints the answer as JSON, or the error.
template <typename Request, typename Response>
int Call(grpc::Status (v1::Admin::Stub::*method)(grpc::ClientContext*, const Request&, Response*),
         v1::Admin::Stub& stub, grpc::ClientContext& ctx, const Request& request) {
  Response response;
  const grpc::Status s = (stub.*method)(&ctx, request, &response);
  return s.ok() ? Print(response) : Failed(s);
}

// The audit log has no API: it is read from the database file, which the
// running server keeps in WAL mode, so reading it never blocks the server.
int PrintAudit(const AdminFlags& f) {
  const std::string db = f.data_dir + "/" + gateway::kDatabaseFile;
  // Opening would create an empty database where there is none (a mistyped
  // --data-dir): say so instead.
  std::error_code ec;
  if (!std::filesystem::exists(db, ec)) {
    return Fail(NotFound(StrFormat("no audit log at %s: pass the --data-dir that `atrium serve` uses", db.c_str())));
  }
  StatusOr<std::unique_ptr<gateway::SqliteStore>> store = gateway::SqliteStore::Open(db);
  if (!store.ok()) return Fail(store.status());
  gateway::AuditQuery q;
  q.tenant_id = TenantId(f.tenant);
  q.page_size = gateway::kMaxPageSize;
  for (;;) {
    StatusOr<gateway::AuditPage> page = (*store)->Read(q);
    if (!page.ok()) return Fail(page.status());
    for (const gateway::AuditRecord& r : page->records) std::printf("%s\n", gateway::AuditRecordToJson(r).c_str());
    if (page->next_page_token.empty()) return 0;
    q.page_token = page->next_page_token;
  }
}

}  // namespace

int RunAdmin(const std::string& command, const AdminFlags& f) {
  if (command == "audit") return PrintAudit(f);
  StatusOr<std::string> key = AdminKey(f);
  if (!key.ok()) return Fail(key.status());
  auto channel = grpc::CreateChannel(f.address, grpc::InsecureChannelCredentials());
  auto stub = v1::Admin::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + *key);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(f.timeout * 1000)));
  if (command == "create-tenant") {
    v1::CreateTenantRequest req;
    req.set_tenant_id(TenantId(f.tenant));
    req.mutable_tenant()->set_display_name(f.display_name);
    return Call(&v1::Admin::Stub::CreateTenant, *stub, ctx, req);
  }
  if (command == "create-key") {
    v1::CreateApiKeyRequest req;
    req.set_parent(TenantName(f.tenant));
    req.mutable_api_key()->set_display_name(f.display_name);
    return Call(&v1::Admin::Stub::CreateApiKey, *stub, ctx, req);
  }
  if (command == "revoke-key") {
    v1::RevokeApiKeyRequest req;
    req.set_name(f.key_name);
    return Call(&v1::Admin::Stub::RevokeApiKey, *stub, ctx, req);
  }
  if (command == "set-quota") {
    v1::SetQuotaRequest req;
    req.mutable_quota()->set_name(TenantName(f.tenant) + "/quota");
    if (f.requests_per_minute >= 0) {
      req.mutable_quota()->set_requests_per_minute(static_cast<int32_t>(f.requests_per_minute));
      req.mutable_update_mask()->add_paths("requests_per_minute");
    }
    if (f.tokens_per_minute >= 0) {
      req.mutable_quota()->set_tokens_per_minute(f.tokens_per_minute);
      req.mutable_update_mask()->add_paths("tokens_per_minute");
    }
    if (f.concurrent_streams >= 0) {
      req.mutable_quota()->set_concurrent_streams(static_cast<int32_t>(f.concurrent_streams));
      req.mutable_update_mask()->add_paths("concurrent_streams");
    }
    if (req.update_mask().paths().empty()) {
      return Fail(InvalidArgument(
          "set-quota: give at least one of --requests-per-minute, --tokens-per-minute, --concurrent-streams (0 = "
          "unlimited)"));
    }
    return Call(&v1::Admin::Stub::SetQuota, *stub, ctx, req);
  }
  if (command == "get-quota") {
    v1::GetQuotaRequest req;
    req.set_name(TenantName(f.tenant) + "/quota");
    return Call(&v1::Admin::Stub::GetQuota, *stub, ctx, req);
  }
  if (command == "list-tenants") {
    v1::ListTenantsRequest req;
    req.set_page_size(f.page_size);
    return Call(&v1::Admin::Stub::ListTenants, *stub, ctx, req);
  }
  if (command == "list-keys") {
    v1::ListApiKeysRequest req;
    req.set_parent(TenantName(f.tenant));
    req.set_page_size(f.page_size);
    return Call(&v1::Admin::Stub::ListApiKeys, *stub, ctx, req);
  }
  return Fail(InvalidArgument("unknown admin command '" + command + "'"));
}

}  // namespace atrium::cli
