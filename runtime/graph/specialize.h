// Specialize: binds concrete input shapes to a Graph and folds everything that can be computed at
// load, so that what runs per request is only compute ops on runtime data.
#pragma once

#include <map>
#include <string>

#include "runtime/core/status.h"
#include "runtime/graph/graph.h"

namespace parnet {

struct SpecializeOptions {
  // Shapes of runtime inputs. An input whose declared shape is fully static may be left out.
  std::map<std::string, Shape> input_shapes;
  // Runtime inputs to treat as constants with these values (tests of load-time folding).
  std::map<std::string, Tensor> constant_inputs;
};

// Returns a graph with `specialized` set in which
//  - every value has a static type, inferred by parnet's op table and cross-checked against the
//    static dimensions ONNX's shape inference recorded (a disagreement is an INTERNAL error);
//  - every node whose inputs are all known at load (constants, or Shape of a known shape) has been
//    evaluated with the reference kernels and replaced by its constant outputs;
//  - only compute ops remain, each with at least one runtime input.
// A load-time-only op (Shape aside) that depends on runtime data cannot be folded: the model is
// refused with a message naming the node.
StatusOr<Graph> Specialize(const Graph& graph, const SpecializeOptions& options);

}  // namespace parnet
