#include "runtime/backends/registry.h"

#include "runtime/backends/cpu/cpu_backend.h"
#include "runtime/backends/reference_backend.h"

namespace parnet {

std::vector<std::string> AvailableBackends() { return {"cpu", "reference"}; }

StatusOr<std::unique_ptr<Backend>> CreateBackend(const std::string& name) {
  if (name == "cpu") return std::unique_ptr<Backend>(new cpu::CpuBackend());
  if (name == "reference") return std::unique_ptr<Backend>(new ReferenceBackend());
  std::string names;
  for (const auto& n : AvailableBackends()) names += (names.empty() ? "" : ", ") + n;
  return NotFound("backend '" + name + "' is not available in this build; available: " + names);
}

}  // namespace parnet
