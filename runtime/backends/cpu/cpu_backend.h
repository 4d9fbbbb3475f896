// The CPU backend: oneDNN 2.x primitives in fp32, layouts chosen by oneDNN (format_tag::any),
// weights reordered once at compile time, activations fused into convolutions as post-ops. Ops or
// attribute combinations oneDNN does not cover run on the reference kernels in plain layout.
#pragma once

#include "runtime/backends/backend.h"

namespace parnet::cpu {

class CpuBackend : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  std::string Describe() const override;
  StatusOr<std::unique_ptr<CompiledGraph>> Compile(const Graph& graph) override;
};

}  // namespace parnet::cpu
