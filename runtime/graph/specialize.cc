#include "runtime/graph/specialize.h"

#include <set>

#include "runtime/graph/ops.h"

namespace parnet {
namespace {

Status BindInputs(const Graph& graph, const SpecializeOptions& options, Graph& out) {
  out.inputs.clear();
  for (const std::string& name : graph.inputs) {
    const TensorType* declared = graph.FindType(name);
    auto constant = options.constant_inputs.find(name);
    if (constant != options.constant_inputs.end()) {
      if (constant->second.dtype() != declared->dtype) {
        return InvalidArgument("input '" + name + "' is declared " + declared->ToString() +
                               " but was given " + constant->second.TypeString());
      }
      out.constants[name] = constant->second;
      out.value_types[name] = {constant->second.dtype(), constant->second.shape()};
      continue;
    }
    auto given = options.input_shapes.find(name);
    TensorType bound = *declared;
    if (given == options.input_shapes.end()) {
      if (!declared->IsStatic()) {
        return InvalidArgument("input '" + name + "' has dynamic shape " + declared->ToString() +
                               "; give its shape, e.g. --shape " + name + "=1,3,224,224");
      }
    } else {
      bool fits = given->second.size() == declared->shape.size();
      for (size_t d = 0; fits && d < given->second.size(); ++d) {
        fits = given->second[d] >= 0 &&
               (declared->shape[d] < 0 || declared->shape[d] == given->second[d]);
      }
      if (!fits) {
        return InvalidArgument("input '" + name + "': the model takes " + declared->ToString() +
                               " (? = any size), got " +
                               TypeToString(declared->dtype, given->second));
      }
      bound.shape = given->second;
    }
    out.value_types[name] = bound;
    out.inputs.push_back(name);
  }
  for (const auto& [name, shape] : options.input_shapes) {
    if (graph.FindType(name) == nullptr || graph.IsConstant(name)) {
      return InvalidArgument("a shape was given for '" + name +
                             "', which is not an input of the "
                             "model; its inputs are listed by `parnet inspect`");
    }
  }
  return Status::Ok();
}

// ONNX's shape inference left hints in the imported graph; parnet's inference must agree with
// every dimension ONNX knew statically.
Status CrossCheck(const Node& node, const std::string& value, const TensorType& ours,
                  const TensorType* hint) {
  if (hint == nullptr) return Status::Ok();
  bool agree = hint->shape.size() == ours.shape.size() &&
               (hint->dtype == DType::kUndefined || hint->dtype == ours.dtype);
  for (size_t d = 0; agree && d < ours.shape.size(); ++d) {
    agree = hint->shape[d] < 0 || hint->shape[d] == ours.shape[d];
  }
  if (agree) return Status::Ok();
  return Internal(node.Describe() + ": parnet infers " + ours.ToString() + " for '" + value +
                  "' but ONNX's shape inference recorded " + hint->ToString() +
                  "; this is a bug in parnet, please report it with the model");
}

// Evaluates a node whose inputs are all known and stores its outputs as constants.
Status Fold(const OpDef& def, const OpContext& ctx, const std::vector<TensorType>& types,
            Graph& out) {
  std::vector<Tensor> results;
  for (const TensorType& t : types) results.emplace_back(t.dtype, t.shape);
  RETURN_IF_ERROR(def.run(ctx, results));
  for (size_t i = 0; i < ctx.node.outputs.size() && i < results.size(); ++i) {
    if (!ctx.node.outputs[i].empty()) out.constants[ctx.node.outputs[i]] = results[i];
  }
  return Status::Ok();
}

void DropUnusedConstants(Graph& g) {
  std::set<std::string> used(g.outputs.begin(), g.outputs.end());
  for (const Node& node : g.nodes) used.insert(node.inputs.begin(), node.inputs.end());
  for (auto it = g.constants.begin(); it != g.constants.end();) {
    it = used.count(it->first) ? std::next(it) : g.constants.erase(it);
  }
}

}  // namespace

StatusOr<Graph> Specialize(const Graph& graph, const SpecializeOptions& options) {
  Graph out;
  out.name = graph.name;
  out.opset = graph.opset;
  out.outputs = graph.outputs;
  out.constants = graph.constants;
  for (const auto& [name, t] : graph.constants) out.value_types[name] = {t.dtype(), t.shape()};
  RETURN_IF_ERROR(BindInputs(graph, options, out));

  for (const Node& node : graph.nodes) {
    const OpDef* def = FindOp(node.op_type);
    OpContext ctx{node, graph.opset, {}, {}};
    bool all_known = true;
    for (const std::string& in : node.inputs) {
      if (in.empty()) {
        ctx.in_types.emplace_back();
        ctx.in_values.push_back(nullptr);
        continue;
      }
      const TensorType* type = out.FindType(in);
      if (type == nullptr) return Internal(node.Describe() + ": input '" + in + "' has no type");
      ctx.in_types.push_back(*type);
      auto c = out.constants.find(in);
      ctx.in_values.push_back(c == out.constants.end() ? nullptr : &c->second);
      all_known = all_known && (c != out.constants.end() || def->types_only);
    }
    if (!all_known && def->kind == OpKind::kLoadTime) {
      return InvalidArgument(node.Describe() +
                             " cannot be folded at load: its input depends on runtime data. parnet "
                             "evaluates " +
                             node.op_type +
                             " only at load, to fold shape computations; export the "
                             "model so that this subgraph depends on input shapes only");
    }
    ASSIGN_OR_RETURN(std::vector<TensorType> types, def->infer(ctx));
    for (size_t i = 0; i < node.outputs.size() && i < types.size(); ++i) {
      if (node.outputs[i].empty()) continue;
      // Every value is allocated later (here when folded, by the backend otherwise): refuse a size
      // that overflows or no machine holds now, with the node that asks for it.
      if (auto bytes = CheckedNumBytes(types[i].dtype, types[i].shape); !bytes.ok()) {
        return Status(bytes.status().code(), node.Describe() + ": output '" + node.outputs[i] +
                                                 "': " + bytes.status().message());
      }
      RETURN_IF_ERROR(CrossCheck(node, node.outputs[i], types[i], graph.FindType(node.outputs[i])));
      out.value_types[node.outputs[i]] = types[i];
    }
    if (all_known) {
      RETURN_IF_ERROR(Fold(*def, ctx, types, out));
    } else {
      out.nodes.push_back(node);
    }
  }
  for (const std::string& name : out.outputs) {
    if (out.FindType(name) == nullptr) {
      return InvalidArgument("graph output '" + name + "' is not produced by any node");
    }
  }
  DropUnusedConstants(out);
  out.specialized = true;
  return out;
}

}  // namespace parnet
