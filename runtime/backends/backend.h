// Backend: compiles a specialized graph for one device and runs it (ONNX Runtime's execution
// provider, reduced to what parnet needs). Backends are created through registry.h.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"
#include "runtime/graph/graph.h"

namespace parnet {

// A graph compiled for one device and one set of input shapes.
// Thread-compatible: Run() may not be called concurrently on the same object.
class CompiledGraph {
 public:
  virtual ~CompiledGraph() = default;
  // `inputs` hold every runtime input with exactly the specialized types (the Engine checks);
  // returns the graph outputs, in graph order, as new plain (row-major) tensors.
  virtual StatusOr<std::vector<Tensor>> Run(const std::map<std::string, Tensor>& inputs) = 0;
  // Where the program keeps input `name` between runs, when it copies every Run()'s inputs into
  // buffers of its own: plain layout, the specialized type and shape. A caller that builds an
  // input from parts (a batch of requests) writes it there and calls RunOnInputBuffers(),
  // saving the copy. Null when the backend keeps no such buffer (then use Run()).
  virtual void* input_buffer(const std::string& name) { return nullptr; }
  // Run() on what the caller wrote into every input_buffer(). REQUIRES: each is non-null.
  virtual StatusOr<std::vector<Tensor>> RunOnInputBuffers() {
    return Status(StatusCode::kUnimplemented, "this backend has no input buffers");
  }
  // Nodes that run on the device's own kernels vs. on the reference fallback, for `inspect`-style
  // reports and tests that must prove the fast path is taken.
  virtual int64_t native_nodes() const = 0;
  virtual int64_t fallback_nodes() const = 0;
  // Bytes of intermediate storage the program holds (its planned arena), for reports.
  virtual size_t workspace_bytes() const { return 0; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Where it runs, for benchmark reports: library versions, the instruction set chosen, ...
  virtual std::string Describe() const { return name(); }
  // REQUIRES: graph.specialized. The graph must outlive nothing: the result owns what it needs.
  virtual StatusOr<std::unique_ptr<CompiledGraph>> Compile(const Graph& graph) = 0;
};

}  // namespace parnet
