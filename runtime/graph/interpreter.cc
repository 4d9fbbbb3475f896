#include "runtime/graph/interpreter.h"

#include "runtime/graph/ops.h"
#include "runtime/graph/specialize.h"

namespace parnet {
namespace {

Status CheckInputs(const Graph& graph, const std::map<std::string, Tensor>& inputs) {
  for (const std::string& name : graph.inputs) {
    auto it = inputs.find(name);
    const TensorType& want = *graph.FindType(name);
    if (it == inputs.end()) {
      return InvalidArgument("input '" + name + "' (" + want.ToString() + ") is missing");
    }
    if (it->second.dtype() != want.dtype || it->second.shape() != want.shape) {
      return InvalidArgument("input '" + name + "': expected " + want.ToString() + ", got " +
                             it->second.TypeString());
    }
  }
  for (const auto& [name, tensor] : inputs) {
    if (std::find(graph.inputs.begin(), graph.inputs.end(), name) == graph.inputs.end()) {
      return InvalidArgument("'" + name + "' is not an input of the model");
    }
  }
  return Status::Ok();
}

// Index of the last node reading each value, so that intermediate tensors are released early.
std::map<std::string, size_t> LastUses(const Graph& graph) {
  std::map<std::string, size_t> last;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const std::string& in : graph.nodes[i].inputs) {
      if (!in.empty()) last[in] = i;
    }
  }
  for (const std::string& out : graph.outputs) last[out] = graph.nodes.size();
  return last;
}

}  // namespace

StatusOr<std::vector<Tensor>> RunSpecialized(const Graph& graph,
                                             const std::map<std::string, Tensor>& inputs) {
  assert(graph.specialized);
  RETURN_IF_ERROR(CheckInputs(graph, inputs));
  std::map<std::string, Tensor> values = graph.constants;
  for (const auto& [name, t] : inputs) values[name] = t;
  const auto last_use = LastUses(graph);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    const OpDef* def = FindOp(node.op_type);
    OpContext ctx{node, graph.opset, {}, {}};
    for (const std::string& in : node.inputs) {
      ctx.in_types.push_back(in.empty() ? TensorType{} : *graph.FindType(in));
      ctx.in_values.push_back(in.empty() ? nullptr : &values.at(in));
    }
    std::vector<Tensor> results;
    for (const std::string& out : node.outputs) {
      if (out.empty()) {  // an omitted optional output: nothing is kept
        results.emplace_back();
        continue;
      }
      const TensorType& t = *graph.FindType(out);
      results.emplace_back(t.dtype, t.shape);
    }
    RETURN_IF_ERROR(def->run(ctx, results));
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      if (!node.outputs[k].empty()) values[node.outputs[k]] = results[k];
    }
    for (const std::string& in : node.inputs) {
      if (!in.empty() && last_use.at(in) == i && !graph.IsConstant(in)) values.erase(in);
    }
  }
  std::vector<Tensor> outputs;
  for (const std::string& name : graph.outputs) outputs.push_back(values.at(name));
  return outputs;
}

StatusOr<std::vector<Tensor>> RunReference(const Graph& graph,
                                           const std::map<std::string, Tensor>& inputs) {
  SpecializeOptions options;
  for (const auto& [name, t] : inputs) options.input_shapes[name] = t.shape();
  ASSIGN_OR_RETURN(Graph specialized, Specialize(graph, options));
  return RunSpecialized(specialized, inputs);
}

}  // namespace parnet
