// The Open Inference Protocol over gRPC (service inference.GRPCInferenceService). The service
// object serves a ModelRepository that outlives it; the server (server.h) registers it.
#pragma once

#include <memory>

#include "runtime/serve/model_repository.h"
#include "runtime/serve/shared_memory.h"

namespace grpc {
class Service;
}

namespace parnet::serve {

// `ready` is read on every ServerReady call. The repository and the shared memory regions must
// outlive the service.
std::unique_ptr<grpc::Service> MakeGrpcService(const ModelRepository* repository,
                                               const std::atomic<bool>* ready,
                                               SharedMemoryRegions* regions);

}  // namespace parnet::serve
