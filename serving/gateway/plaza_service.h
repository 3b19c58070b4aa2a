// The public ModelPlaza service: the models installed on this server, from
// the local catalog (the same ModelRegistry the workers describe models
// with, so the plaza and a worker never disagree about a model). Any valid
// API key may list them. Answered in the handler: listing reads memory
// (the registry rescans at most every few seconds, for an unknown name).
#pragma once

#include "atrium/v1/plaza.grpc.pb.h"
#include "serving/gateway/call_record.h"
#include "serving/gateway/store.h"
#include "serving/worker/model_registry.h"

namespace atrium::gateway {

class PlazaService final : public v1::ModelPlaza::CallbackService {
 public:
  PlazaService(Store& store, worker::ModelRegistry& models, CallSinks sinks)
      : store_(store), models_(models), sinks_(sinks) {}

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* ctx, const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* ctx, const v1::GetModelRequest* request,
                                     v1::Model* response) override;

 private:
  Store& store_;
  worker::ModelRegistry& models_;
  const CallSinks sinks_;
};

}  // namespace atrium::gateway
