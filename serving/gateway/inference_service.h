// The public Inference service (proto/atrium/v1/inference.proto) at the
// gateway, on the callback API: every call is one reactor (generation_call.h,
// forward_call.h) that admits it and forwards it to the caller's tenant's
// worker. Nothing here blocks on a worker.
#pragma once

#include "atrium/v1/inference.grpc.pb.h"
#include "serving/gateway/inference_call.h"

namespace atrium::gateway {

class InferenceService final : public v1::Inference::CallbackService {
 public:
  explicit InferenceService(const InferenceDeps& deps) : deps_(deps) {}

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(grpc::CallbackServerContext* ctx,
                                                           const v1::GenerateRequest* request) override;
  grpc::ServerWriteReactor<v1::GenerateResponse>* Chat(grpc::CallbackServerContext* ctx,
                                                       const v1::ChatRequest* request) override;
  grpc::ServerUnaryReactor* GenerateUnary(grpc::CallbackServerContext* ctx, const v1::GenerateRequest* request,
                                          v1::GenerateResponse* response) override;
  grpc::ServerUnaryReactor* ChatUnary(grpc::CallbackServerContext* ctx, const v1::ChatRequest* request,
                                      v1::GenerateResponse* response) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* ctx, const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* ctx, const v1::DetokenizeRequest* request,
                                       v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* CountTokens(grpc::CallbackServerContext* ctx, const v1::CountTokensRequest* request,
                                        v1::CountTokensResponse* response) override;

 private:
  const InferenceDeps deps_;
};

}  // namespace atrium::gateway
