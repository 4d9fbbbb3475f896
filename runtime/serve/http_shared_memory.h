// Internal to the HTTP front end: Triton's system shared-memory extension in its REST form
// (shared_memory.h has the extension itself).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "runtime/serve/shared_memory.h"

namespace httplib {
class Server;
}

namespace parnet::serve {

// /v2/systemsharedmemory[/region/<name>]/{status,register,unregister}, and the CUDA forms
// (no region to list or drop; registering one is refused). `regions` must outlive the server.
void AddSharedMemoryRoutes(httplib::Server& server, SharedMemoryRegions* regions);

// The shared memory parameters in a tensor's JSON "parameters" object (null: it has none).
StatusOr<std::optional<SharedMemoryRef>> SharedMemoryRefOfJson(const nlohmann::json* params,
                                                               const std::string& what);

}  // namespace parnet::serve
