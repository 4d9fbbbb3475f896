// The Open Inference Protocol over gRPC (service inference.GRPCInferenceService). The service
// object serves a ModelRepository that outlives it; the server (server.h) registers it.
#pragma once

#include <memory>

#include "runtime/serve/model_repository.h"

namespace grpc {
class Service;
}

namespace parnet::serve {

// `ready` is read on every ServerReady call. The repository must outlive the service.
std::unique_ptr<grpc::Service> MakeGrpcService(const ModelRepository* repository,
                                               const std::atomic<bool>* ready);

}  // namespace parnet::serve
