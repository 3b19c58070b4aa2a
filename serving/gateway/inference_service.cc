#include "serving/gateway/inference_service.h"

#include "serving/gateway/forward_call.h"
#include "serving/gateway/generation_call.h"

namespace atrium::gateway {
namespace {

constexpr const char* kService = "/atrium.v1.Inference/";

std::string Method(const char* name) { return std::string(kService) + name; }

// The worker calls behind the public generation calls: the worker streams
// for both forms, Generate and GenerateUnary alike.
GenerationCall::StartFn WorkerGenerate(const v1::GenerateRequest* request) {
  return [request](internal::Worker::Stub* stub, grpc::ClientContext* c,
                   grpc::ClientReadReactor<v1::GenerateResponse>* r) { stub->async()->Generate(c, request, r); };
}

GenerationCall::StartFn WorkerChat(const v1::ChatRequest* request) {
  return [request](internal::Worker::Stub* stub, grpc::ClientContext* c,
                   grpc::ClientReadReactor<v1::GenerateResponse>* r) { stub->async()->Chat(c, request, r); };
}

}  // namespace

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceService::Generate(grpc::CallbackServerContext* ctx,
                                                                           const v1::GenerateRequest* request) {
  const RequestLimits limits = deps_.limits;
  return StreamingGenerationCall::Start(
      deps_, ctx, Method("Generate"), request->model(), [request, limits] { return ValidateGenerate(*request, limits); },
      WorkerGenerate(request));
}

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceService::Chat(grpc::CallbackServerContext* ctx,
                                                                       const v1::ChatRequest* request) {
  const RequestLimits limits = deps_.limits;
  return StreamingGenerationCall::Start(
      deps_, ctx, Method("Chat"), request->model(), [request, limits] { return ValidateChat(*request, limits); },
      WorkerChat(request));
}

grpc::ServerUnaryReactor* InferenceService::GenerateUnary(grpc::CallbackServerContext* ctx,
                                                          const v1::GenerateRequest* request,
                                                          v1::GenerateResponse* response) {
  const RequestLimits limits = deps_.limits;
  return UnaryGenerationCall::Start(
      deps_, ctx, Method("GenerateUnary"), request->model(),
      [request, limits] { return ValidateGenerate(*request, limits); }, WorkerGenerate(request), response);
}

grpc::ServerUnaryReactor* InferenceService::ChatUnary(grpc::CallbackServerContext* ctx, const v1::ChatRequest* request,
                                                      v1::GenerateResponse* response) {
  const RequestLimits limits = deps_.limits;
  return UnaryGenerationCall::Start(
      deps_, ctx, Method("ChatUnary"), request->model(), [request, limits] { return ValidateChat(*request, limits); },
      WorkerChat(request), response);
}

grpc::ServerUnaryReactor* InferenceService::Tokenize(grpc::CallbackServerContext* ctx,
                                                     const v1::TokenizeRequest* request,
                                                     v1::TokenizeResponse* response) {
  const RequestLimits limits = deps_.limits;
  return ForwardCall<v1::TokenizeRequest, v1::TokenizeResponse>::Start(
      deps_, ctx, Method("Tokenize"), request->model(), [request, limits] { return ValidateTokenize(*request, limits); },
      request, response,
      [](internal::Worker::Stub* stub, grpc::ClientContext* c, const v1::TokenizeRequest* q, v1::TokenizeResponse* a,
         std::function<void(grpc::Status)> done) { stub->async()->Tokenize(c, q, a, std::move(done)); });
}

grpc::ServerUnaryReactor* InferenceService::Detokenize(grpc::CallbackServerContext* ctx,
                                                       const v1::DetokenizeRequest* request,
                                                       v1::DetokenizeResponse* response) {
  const RequestLimits limits = deps_.limits;
  return ForwardCall<v1::DetokenizeRequest, v1::DetokenizeResponse>::Start(
      deps_, ctx, Method("Detokenize"), request->model(),
      [request, limits] { return ValidateDetokenize(*request, limits); }, request, response,
      [](internal::Worker::Stub* stub, grpc::ClientContext* c, const v1::DetokenizeRequest* q,
         v1::DetokenizeResponse* a,
         std::function<void(grpc::Status)> done) { stub->async()->Detokenize(c, q, a, std::move(done)); });
}

grpc::ServerUnaryReactor* InferenceService::CountTokens(grpc::CallbackServerContext* ctx,
                                                        const v1::CountTokensRequest* request,
                                                        v1::CountTokensResponse* response) {
  const RequestLimits limits = deps_.limits;
  return ForwardCall<v1::CountTokensRequest, v1::CountTokensResponse>::Start(
      deps_, ctx, Method("CountTokens"), request->model(),
      [request, limits] { return ValidateCountTokens(*request, limits); }, request, response,
      [](internal::Worker::Stub* stub, grpc::ClientContext* c, const v1::CountTokensRequest* q,
         v1::CountTokensResponse* a,
         std::function<void(grpc::Status)> done) { stub->async()->CountTokens(c, q, a, std::move(done)); });
}

}  // namespace atrium::gateway
