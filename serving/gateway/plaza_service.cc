#include "serving/gateway/plaza_service.h"

#include <algorithm>

#include "serving/gateway/auth.h"
#include "serving/gateway/errors.h"

namespace atrium::gateway {
namespace {

constexpr std::string_view kModelsPageKind = "models";

}  // namespace

grpc::ServerUnaryReactor* PlazaService::ListModels(grpc::CallbackServerContext* ctx,
                                                   const v1::ListModelsRequest* request,
                                                   v1::ListModelsResponse* response) {
  CallRecord record(sinks_, "/atrium.v1.ModelPlaza/ListModels");
  rpc::ApiError error;
  StatusOr<Principal> principal = Authenticate(store_, ctx->client_metadata(), &error);
  if (!principal.ok()) return FinishUnary(ctx, record, rpc::ToGrpc(error));
  record.set_principal(*principal);
  StatusOr<int32_t> size = EffectivePageSize(request->page_size());
  if (!size.ok()) return FinishUnary(ctx, record, FieldError(size.status(), "page_size"));
  // The token holds the last id of the previous page; a model removed since
  // does not break paging.
  std::string after;
  if (!request->page_token().empty()) {
    StatusOr<std::string> last = DecodePageToken(kModelsPageKind, request->page_token());
    if (!last.ok()) return FinishUnary(ctx, record, FieldError(last.status(), "page_token"));
    after = *last;
  }
  const std::vector<worker::ModelInfo> models = models_.List();  // ordered by id
  auto it = after.empty() ? models.begin()
                          : std::upper_bound(models.begin(), models.end(), after,
                                             [](const std::string& a, const worker::ModelInfo& m) { return a < m.id; });
  for (int32_t n = 0; it != models.end() && n < *size; ++it, ++n) *response->add_models() = it->model;
  if (it != models.end() && response->models_size() > 0) {
    response->set_next_page_token(EncodePageToken(kModelsPageKind, std::prev(it)->id));
  }
  return FinishUnary(ctx, record, grpc::Status::OK);
}

grpc::ServerUnaryReactor* PlazaService::GetModel(grpc::CallbackServerContext* ctx, const v1::GetModelRequest* request,
                                                 v1::Model* response) {
  CallRecord record(sinks_, "/atrium.v1.ModelPlaza/GetModel");
  rpc::ApiError error;
  StatusOr<Principal> principal = Authenticate(store_, ctx->client_metadata(), &error);
  if (!principal.ok()) return FinishUnary(ctx, record, rpc::ToGrpc(error));
  record.set_principal(*principal);
  StatusOr<worker::ModelInfo> info = models_.Find(request->name(), "name", &error);
  if (!info.ok()) return FinishUnary(ctx, record, rpc::ToGrpc(error));
  record.set_model(info->model.name());
  *response = info->model;
  return FinishUnary(ctx, record, grpc::Status::OK);
}

}  // namespace atrium::gateway
