// The reference backend: runs the naive kernels of the op table (the numerical oracle).
#pragma once

#include "runtime/backends/backend.h"

namespace parnet {

class ReferenceBackend : public Backend {
 public:
  std::string name() const override { return "reference"; }
  StatusOr<std::unique_ptr<CompiledGraph>> Compile(const Graph& graph) override;
};

}  // namespace parnet
