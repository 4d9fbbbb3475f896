// The reference interpreter: runs a graph with the naive reference kernels of ops.h. It is the
// oracle that every backend is compared with, not a fast path.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"
#include "runtime/graph/graph.h"

namespace parnet {

// Runs a specialized graph. `inputs` must hold every runtime input with exactly its specialized
// type. Returns the graph outputs in graph order. Thread-compatible: concurrent calls on the same
// graph are safe; the kernels use OpenMP internally.
StatusOr<std::vector<Tensor>> RunSpecialized(const Graph& graph,
                                             const std::map<std::string, Tensor>& inputs);

// Specializes `graph` for the shapes of `inputs`, then runs it.
StatusOr<std::vector<Tensor>> RunReference(const Graph& graph,
                                           const std::map<std::string, Tensor>& inputs);

}  // namespace parnet
