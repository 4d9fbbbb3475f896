#include "runtime/graph/stats.h"

#include <cassert>
#include <set>

#include "runtime/graph/ops.h"

namespace parnet {

GraphStats ComputeStats(const Graph& graph) {
  assert(graph.specialized);
  GraphStats stats;
  std::set<std::string> weights;
  for (const Node& node : graph.nodes) {
    ++stats.ops_by_type[node.op_type];
    std::vector<TensorType> in, out;
    for (const std::string& name : node.inputs) {
      in.push_back(name.empty() ? TensorType{} : *graph.FindType(name));
      if (graph.IsConstant(name)) weights.insert(name);
    }
    for (const std::string& name : node.outputs) out.push_back(*graph.FindType(name));
    stats.macs += NodeMacs(node, in, out);
  }
  for (const std::string& name : weights) {
    const Tensor& t = graph.constants.at(name);
    if (t.dtype() == DType::kFloat32 || t.dtype() == DType::kFloat64 ||
        t.dtype() == DType::kFloat16 || t.dtype() == DType::kBFloat16) {
      stats.parameters += t.num_elements();
    }
  }
  return stats;
}

}  // namespace parnet
