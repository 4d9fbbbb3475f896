// `parnet inspect`: the graph after import and folding, for one input shape.
#include <cstdio>
#include <iostream>
#include <sstream>

#include "runtime/cli/commands.h"
#include "runtime/graph/onnx_import.h"
#include "runtime/graph/ops.h"
#include "runtime/graph/specialize.h"
#include "runtime/graph/stats.h"

namespace parnet::cli {
namespace {

StatusOr<std::map<std::string, Shape>> ParseShapes(const std::vector<std::string>& specs) {
  std::map<std::string, Shape> shapes;
  for (const std::string& spec : specs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) {
      return InvalidArgument("--shape '" + spec + "' must look like name=1,3,224,224");
    }
    Shape shape;
    std::stringstream dims(spec.substr(eq + 1));
    std::string dim;
    while (std::getline(dims, dim, ',')) {
      try {
        size_t used = 0;
        shape.push_back(std::stoll(dim, &used));
        if (used != dim.size() || shape.back() < 0) throw std::invalid_argument(dim);
      } catch (const std::exception&) {
        return InvalidArgument("--shape '" + spec + "': '" + dim + "' is not a dimension >= 0");
      }
    }
    shapes[spec.substr(0, eq)] = shape;
  }
  return shapes;
}

// Dynamic batch becomes 1; dynamic H and W of a 4-D input become 224 (ImageNet's size).
void FillDefaultShapes(const Graph& graph, std::map<std::string, Shape>& shapes) {
  for (const std::string& name : graph.inputs) {
    if (shapes.count(name)) continue;
    Shape shape = graph.FindType(name)->shape;
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] >= 0) continue;
      shape[d] = (d == 0) ? 1 : (shape.size() == 4 && d >= 2) ? 224 : -1;
      if (d >= 2 && shape[d] == 224) {
        std::cout << "note: input '" << name << "' has a dynamic dim " << d
                  << "; using 224 (pass --shape " << name << "=N,C,H,W)\n";
      }
    }
    shapes[name] = shape;
  }
}

std::string Human(double v) {
  char buf[32];
  if (v >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.2f G", v / 1e9);
  } else if (v >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2f M", v / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  }
  return buf;
}

void PrintNodes(const Graph& g) {
  std::printf("\n%-40s %-20s %s\n", "node", "op", "output");
  for (const Node& node : g.nodes) {
    std::string outs;
    for (const std::string& o : node.outputs) {
      if (!o.empty()) outs += (outs.empty() ? "" : " ") + g.FindType(o)->ToString();
    }
    std::printf("%-40s %-20s %s\n", node.name.c_str(), node.op_type.c_str(), outs.c_str());
  }
}

// torch.onnx.export names nodes by module path ("/streams.0/streams.0.1/block/rbr_dense/Conv").
// A block is the path up to its second component ("/streams.0/streams.0.1"); nodes without a
// path form their own group.
std::string BlockOf(const std::string& node_name) {
  if (node_name.empty() || node_name[0] != '/') return "(top level)";
  const size_t second = node_name.find('/', 1);
  if (second == std::string::npos) return "(top level)";
  const size_t third = node_name.find('/', second + 1);
  return third == std::string::npos ? node_name.substr(0, second) : node_name.substr(0, third);
}

void PrintBlocks(const Graph& g) {
  struct Block {
    std::map<std::string, int> ops;
    std::string output;
  };
  std::vector<std::string> order;
  std::map<std::string, Block> blocks;
  for (const Node& node : g.nodes) {
    const std::string name = BlockOf(node.name);
    if (!blocks.count(name)) order.push_back(name);
    Block& b = blocks[name];
    ++b.ops[node.op_type];
    b.output = g.FindType(node.outputs[0])->ToString();
  }
  std::printf("\n%-34s %-22s %s\n", "block", "output", "ops");
  for (const std::string& name : order) {
    std::string ops;
    for (const auto& [op, n] : blocks[name].ops) ops += op + "x" + std::to_string(n) + " ";
    std::printf("%-34s %-22s %s\n", name.c_str(), blocks[name].output.c_str(), ops.c_str());
  }
}

}  // namespace

int RunInspect(const InspectOptions& options) {
  auto fail = [](const Status& s) {
    std::cerr << "parnet inspect: " << s.ToString() << "\n";
    return 1;
  };
  auto graph = LoadOnnxModel(options.model);
  if (!graph.ok()) return fail(graph.status());
  auto shapes = ParseShapes(options.shapes);
  if (!shapes.ok()) return fail(shapes.status());
  FillDefaultShapes(*graph, *shapes);
  SpecializeOptions spec;
  spec.input_shapes = *shapes;
  auto specialized = Specialize(*graph, spec);
  if (!specialized.ok()) return fail(specialized.status());

  std::map<std::string, int64_t> imported;
  for (const Node& n : graph->nodes) ++imported[n.op_type];
  std::cout << "model: " << options.model << " (graph '" << graph->name << "', opset "
            << graph->opset << ")\n";
  for (const std::string& in : graph->inputs) {
    std::cout << "input:  " << in << " " << graph->FindType(in)->ToString() << " -> "
              << specialized->FindType(in)->ToString() << "\n";
  }
  for (const std::string& out : specialized->outputs) {
    std::cout << "output: " << out << " " << specialized->FindType(out)->ToString() << "\n";
  }
  std::cout << "imported nodes: " << graph->nodes.size() << "; after folding load-time "
            << "computations: " << specialized->nodes.size() << " compute nodes\n";
  const GraphStats stats = ComputeStats(*specialized);
  std::cout << "\nops by type (imported -> run per request):\n";
  for (const auto& [op, count] : imported) {
    auto it = stats.ops_by_type.find(op);
    std::printf("  %-20s %5lld -> %lld\n", op.c_str(), static_cast<long long>(count),
                static_cast<long long>(it == stats.ops_by_type.end() ? 0 : it->second));
  }
  if (options.blocks) PrintBlocks(*specialized);
  if (!options.summary_only) PrintNodes(*specialized);
  std::cout << "\nparameters: " << stats.parameters << " (" << Human(stats.parameters) << ")\n";
  std::cout << "FLOPs: " << stats.flops() << " (" << Human(static_cast<double>(stats.flops()))
            << "; 2 x multiply-adds of Conv, Gemm and MatMul)\n";
  return 0;
}

}  // namespace parnet::cli
