#include "partitioner/stages.h"

#include <algorithm>
#include <cassert>
#include <cctype>
#include <map>
#include <numeric>
#include <set>

#include "runtime/graph/ops.h"

namespace parnet::partition {
namespace {

// The node DAG with a virtual source (id 0, the request) and sink (id n + 1, the reply); graph
// node i has id i + 1, so ids follow the graph's topological order.
struct Dag {
  int count = 0;
  std::vector<std::vector<int>> preds, succs;

  int sink() const { return count - 1; }
  void Connect(int from, int to) {
    if (std::find(succs[from].begin(), succs[from].end(), to) != succs[from].end()) return;
    succs[from].push_back(to);
    preds[to].push_back(from);
  }
};

Dag BuildDag(const Graph& graph) {
  const int n = static_cast<int>(graph.nodes.size());
  Dag dag;
  dag.count = n + 2;
  dag.preds.resize(dag.count);
  dag.succs.resize(dag.count);
  std::map<std::string, int> producer;
  for (int i = 0; i < n; ++i) {
    for (const std::string& out : graph.nodes[i].outputs) {
      if (!out.empty()) producer[out] = i + 1;
    }
  }
  for (int i = 0; i < n; ++i) {
    for (const std::string& in : graph.nodes[i].inputs) {
      if (in.empty() || graph.IsConstant(in)) continue;
      auto it = producer.find(in);
      dag.Connect(it == producer.end() ? 0 : it->second, i + 1);
    }
    if (dag.preds[i + 1].empty()) dag.Connect(0, i + 1);
  }
  for (const std::string& out : graph.outputs) {
    auto it = producer.find(out);
    if (it != producer.end()) dag.Connect(it->second, dag.sink());
  }
  for (int id = 1; id < dag.sink(); ++id) {
    if (dag.succs[id].empty()) dag.Connect(id, dag.sink());
  }
  return dag;
}

// Immediate dominators of a DAG whose ids are a topological order with entry 0 (Cooper, Harvey
// and Kennedy's intersection, one pass because every predecessor has a smaller id).
std::vector<int> Dominators(const std::vector<std::vector<int>>& preds) {
  std::vector<int> idom(preds.size(), 0);
  for (size_t v = 1; v < preds.size(); ++v) {
    int d = -1;
    for (int p : preds[v]) {
      if (d < 0) {
        d = p;
        continue;
      }
      int a = d, b = p;
      while (a != b) {
        while (a > b) a = idom[a];
        while (b > a) b = idom[b];
      }
      d = a;
    }
    idom[v] = d < 0 ? 0 : d;
  }
  return idom;
}

// Immediate post-dominators, from the dominators of the reversed DAG.
std::vector<int> PostDominators(const Dag& dag) {
  const int last = dag.count - 1;
  std::vector<std::vector<int>> reversed(dag.count);
  for (int v = 0; v < dag.count; ++v) {
    for (int s : dag.succs[v]) reversed[last - v].push_back(last - s);
  }
  std::vector<int> rdom = Dominators(reversed);
  std::vector<int> ipdom(dag.count);
  for (int v = 0; v < dag.count; ++v) ipdom[v] = last - rdom[last - v];
  return ipdom;
}

bool Dominates(const std::vector<int>& idom, int a, int v) {
  while (v > a) v = idom[v];
  return v == a;
}

bool PostDominates(const std::vector<int>& ipdom, int b, int v) {
  while (v < b) v = ipdom[v];
  return v == b;
}

double ValueBytes(const Graph& graph, const std::string& value) {
  const TensorType* type = graph.FindType(value);
  if (type == nullptr) return 0;
  double elements = 1;
  for (int64_t d : type->shape) elements *= static_cast<double>(std::max<int64_t>(d, 0));
  return elements * static_cast<double>(DTypeSize(type->dtype));
}

struct NodeCost {
  double flops = 0;
  double bytes = 0;
  double work = 0;  // what region parallelism weighs: multiply-adds, or elements for the rest
};

std::vector<NodeCost> NodeCosts(const Graph& graph) {
  std::vector<NodeCost> costs(graph.nodes.size());
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    std::vector<TensorType> in, out;
    for (const std::string& name : node.inputs) {
      const TensorType* type = name.empty() ? nullptr : graph.FindType(name);
      in.push_back(type ? *type : TensorType{});
      if (!name.empty()) costs[i].bytes += ValueBytes(graph, name);
    }
    double out_bytes = 0;
    for (const std::string& name : node.outputs) {
      const TensorType* type = name.empty() ? nullptr : graph.FindType(name);
      out.push_back(type ? *type : TensorType{});
      if (!name.empty()) out_bytes += ValueBytes(graph, name);
    }
    const double macs = static_cast<double>(NodeMacs(node, in, out));
    costs[i].flops = 2 * macs;
    costs[i].bytes += out_bytes;
    costs[i].work = std::max(macs, out_bytes / 4);
  }
  return costs;
}

struct UnionFind {
  std::vector<int> parent;
  explicit UnionFind(int n) : parent(n) { std::iota(parent.begin(), parent.end(), 0); }
  int Find(int x) { return parent[x] == x ? x : parent[x] = Find(parent[x]); }
  void Union(int a, int b) {
    a = Find(a), b = Find(b);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);
  }
};

// Step 1: ids (graph node + 1) of the regions that collapse, merged in a union-find over ids.
void CollapseRegions(const Dag& dag, const std::vector<NodeCost>& costs, double min_parallelism,
                     UnionFind& units) {
  const std::vector<int> idom = Dominators(dag.preds);
  const std::vector<int> ipdom = PostDominators(dag);
  std::vector<std::vector<int>> regions;
  for (int b = 1; b < dag.sink(); ++b) {
    if (dag.preds[b].size() < 2) continue;
    const int a = idom[b];
    std::vector<int> region;
    std::vector<char> inside(dag.count, 0);
    for (int v = a + 1; v <= b; ++v) {
      if (Dominates(idom, a, v) && PostDominates(ipdom, b, v)) {
        region.push_back(v);
        inside[v] = 1;
      }
    }
    bool closed = true;  // entered only from a, left only from b
    for (int v : region) {
      for (int p : dag.preds[v]) closed &= (p == a || inside[p]);
      if (v != b) {
        for (int s : dag.succs[v]) closed &= static_cast<bool>(inside[s]);
      }
    }
    if (!closed) continue;
    double work = 0;
    std::vector<double> longest(dag.count, 0);
    for (int v : region) {  // ascending ids: a topological order
      double before = 0;
      for (int p : dag.preds[v]) {
        if (inside[p]) before = std::max(before, longest[p]);
      }
      longest[v] = before + costs[v - 1].work;
      work += costs[v - 1].work;
    }
    const double span = longest[b];
    if (span <= 0 || work / span < min_parallelism) regions.push_back(std::move(region));
  }
  std::sort(regions.begin(), regions.end(),
            [](const auto& x, const auto& y) { return x.size() < y.size(); });
  for (const auto& region : regions) {
    for (int v : region) units.Union(region.front(), v);
  }
}

// "/streams/streams.0/streams.0.1/block/Conv" -> {"streams", "streams.0", "streams.0.1", "block"}
std::vector<std::string> ModulePath(const std::string& node_name) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= node_name.size()) {
    size_t end = node_name.find('/', start);
    if (end == std::string::npos) break;  // the last part names the op, not a module
    if (end > start) parts.push_back(node_name.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

// The module a node belongs to, from torch's scoped names: "/streams/streams.0/streams.0.1/..."
// -> "streams.0", "/inits.1/block/..." -> "inits.1"; "" when the name has no scope.
std::string ModuleKey(const std::string& node_name) {
  const std::vector<std::string> path = ModulePath(node_name);
  if (path.empty()) return "";
  // "streams.2", "inits.0": an indexed module names itself; "streams", "combine": a container
  // whose indexed child ("combine.2") is the module.
  const size_t dot = path[0].rfind('.');
  const bool indexed = dot != std::string::npos && dot + 1 < path[0].size() &&
                       std::isdigit(static_cast<unsigned char>(path[0][dot + 1]));
  if (!indexed && path.size() > 1 && path[1].rfind(path[0] + ".", 0) == 0) return path[1];
  return path[0];
}

// Names a stage by the modules that hold at least 5% of its work, in order of appearance.
std::string StageName(const Graph& graph, const std::vector<int>& nodes,
                      const std::vector<NodeCost>& costs, size_t index) {
  std::vector<std::pair<std::string, double>> modules;
  double total = 0;
  for (int i : nodes) {
    const std::string key = ModuleKey(graph.nodes[i].name);
    auto it = std::find_if(modules.begin(), modules.end(),
                           [&](const auto& m) { return m.first == key; });
    if (it == modules.end()) it = modules.insert(modules.end(), {key, 0.0});
    it->second += costs[i].work;
    total += costs[i].work;
  }
  std::string name;
  for (const auto& [key, work] : modules) {
    if (key.empty() || work < 0.05 * total) continue;
    name += (name.empty() ? "" : "+") + key;
  }
  return name.empty() ? "stage" + std::to_string(index) : name;
}

}  // namespace

std::vector<int> StageGraph::Predecessors(int stage) const {
  std::set<int> out;
  for (const StageEdge& e : edges) {
    if (e.to == stage && e.from >= 0) out.insert(e.from);
  }
  return {out.begin(), out.end()};
}

std::vector<int> StageGraph::Successors(int stage) const {
  std::set<int> out;
  for (const StageEdge& e : edges) {
    if (e.from == stage && e.to >= 0) out.insert(e.to);
  }
  return {out.begin(), out.end()};
}

StatusOr<StageGraph> DiscoverStages(const Graph& graph, const StageOptions& options) {
  if (!graph.specialized) {
    return FailedPrecondition("DiscoverStages: the graph must be specialized first (Specialize())");
  }
  if (graph.nodes.empty()) {
    return InvalidArgument("model '" + graph.name + "' has no compute nodes to place");
  }
  const Dag dag = BuildDag(graph);
  const std::vector<NodeCost> costs = NodeCosts(graph);
  UnionFind units(dag.count);
  CollapseRegions(dag, costs, options.min_parallelism, units);

  // Step 2: chains of units. Units are named by their smallest id; the virtual source and sink
  // count as neighbours, so a unit fed by the request or feeding the reply starts or ends a chain.
  std::map<int, std::set<int>> unit_preds, unit_succs;
  for (int v = 0; v < dag.count; ++v) {
    for (int s : dag.succs[v]) {
      const int from = units.Find(v), to = units.Find(s);
      if (from == to) continue;
      unit_succs[from].insert(to);
      unit_preds[to].insert(from);
    }
  }
  std::map<int, int> chain_of;  // unit -> the unit that heads its chain
  for (int id = 1; id < dag.sink(); ++id) {
    const int unit = units.Find(id);
    if (unit != id) continue;  // not the unit's first node
    const std::set<int>& preds = unit_preds[unit];
    const int pred = preds.size() == 1 ? *preds.begin() : -1;
    if (pred > 0 && unit_succs[pred].size() == 1) {
      chain_of[unit] = chain_of.at(pred);
    } else {
      chain_of[unit] = unit;
    }
  }

  // Nodes of each chain, then a topological order of the chains (Kahn, ties by first node).
  std::map<int, std::vector<int>> chain_nodes;
  for (int id = 1; id < dag.sink(); ++id) {
    chain_nodes[chain_of.at(units.Find(id))].push_back(id - 1);
  }
  std::map<int, int> chain_index;
  std::vector<std::vector<int>> members;
  for (auto& [head, nodes] : chain_nodes) {
    chain_index[head] = static_cast<int>(members.size());
    members.push_back(nodes);
  }
  std::vector<int> node_chain(graph.nodes.size());
  for (size_t c = 0; c < members.size(); ++c) {
    for (int i : members[c]) node_chain[i] = static_cast<int>(c);
  }
  const size_t chains = members.size();
  std::vector<std::set<int>> chain_succs(chains);
  std::vector<int> indegree(chains, 0);
  for (int v = 1; v < dag.sink(); ++v) {
    for (int s : dag.succs[v]) {
      if (s == dag.sink()) continue;
      const int from = node_chain[v - 1], to = node_chain[s - 1];
      if (from != to && chain_succs[from].insert(to).second) ++indegree[to];
    }
  }
  std::set<std::pair<int, int>> ready;  // (first node, chain)
  for (size_t c = 0; c < chains; ++c) {
    if (indegree[c] == 0) ready.insert({members[c].front(), static_cast<int>(c)});
  }
  std::vector<int> stage_of_chain(chains, -1);
  StageGraph stages;
  while (!ready.empty()) {
    const int c = ready.begin()->second;
    ready.erase(ready.begin());
    stage_of_chain[c] = static_cast<int>(stages.stages.size());
    StageInfo info;
    info.nodes = members[c];
    info.name = StageName(graph, info.nodes, costs, stages.stages.size());
    for (int i : info.nodes) {
      info.node_names.push_back(graph.nodes[i].name);
      info.flops += costs[i].flops;
      info.bytes += costs[i].bytes;
    }
    stages.total_flops += info.flops;
    stages.stages.push_back(std::move(info));
    for (int s : chain_succs[c]) {
      if (--indegree[s] == 0) ready.insert({members[s].front(), s});
    }
  }
  if (stages.stages.size() != chains) {
    return Internal("DiscoverStages: the stages of model '" + graph.name + "' form a cycle");
  }

  // Values that cross stages, grouped into edges.
  std::map<std::string, int> producer_stage;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const std::string& out : graph.nodes[i].outputs) {
      if (!out.empty()) producer_stage[out] = stage_of_chain[node_chain[i]];
    }
  }
  std::map<std::pair<int, int>, std::set<std::string>> crossing;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const int to = stage_of_chain[node_chain[i]];
    for (const std::string& in : graph.nodes[i].inputs) {
      if (in.empty() || graph.IsConstant(in)) continue;
      auto it = producer_stage.find(in);
      const int from = it == producer_stage.end() ? StageEdge::kRequest : it->second;
      if (from != to) crossing[{from, to}].insert(in);
    }
  }
  for (const std::string& out : graph.outputs) {
    auto it = producer_stage.find(out);
    crossing[{it == producer_stage.end() ? StageEdge::kRequest : it->second, StageEdge::kReply}]
        .insert(out);
  }
  for (auto& [ends, values] : crossing) {
    StageEdge edge{ends.first, ends.second, {values.begin(), values.end()}, 0};
    for (const std::string& v : values) {
      stages.value_bytes[v] = ValueBytes(graph, v);
      edge.bytes += stages.value_bytes[v];
      if (edge.to >= 0) {
        auto& ins = stages.stages[edge.to].inputs;
        if (std::find(ins.begin(), ins.end(), v) == ins.end()) ins.push_back(v);
      }
      if (edge.from >= 0) {
        auto& outs = stages.stages[edge.from].outputs;
        if (std::find(outs.begin(), outs.end(), v) == outs.end()) outs.push_back(v);
      }
    }
    stages.edges.push_back(std::move(edge));
  }

  // The recomputable stem: a prefix, closed under predecessors, within the FLOP budget.
  double stem_flops = 0;
  for (size_t s = 0; s < stages.stages.size(); ++s) {
    StageInfo& info = stages.stages[s];
    bool preds_recomputable = true;
    for (int p : stages.Predecessors(static_cast<int>(s))) {
      preds_recomputable &= stages.stages[p].recomputable;
    }
    bool feeds_reply = false;
    for (const StageEdge& e : stages.edges) feeds_reply |= (e.from == (int)s && e.to < 0);
    if (preds_recomputable && !feeds_reply &&
        stem_flops + info.flops <= options.max_recompute_share * stages.total_flops) {
      info.recomputable = true;
      stem_flops += info.flops;
    }
  }
  return stages;
}

Graph ExtractStage(const Graph& graph, const StageInfo& stage) {
  Graph sub;
  sub.name = graph.name + ":" + stage.name;
  sub.opset = graph.opset;
  sub.inputs = stage.inputs;
  sub.outputs = stage.outputs;
  for (int i : stage.nodes) {
    const Node& node = graph.nodes[i];
    sub.nodes.push_back(node);
    for (const std::string& name : node.inputs) {
      if (name.empty()) continue;
      auto constant = graph.constants.find(name);
      if (constant != graph.constants.end()) sub.constants.insert(*constant);
      if (const TensorType* type = graph.FindType(name)) sub.value_types[name] = *type;
    }
    for (const std::string& name : node.outputs) {
      if (const TensorType* type = name.empty() ? nullptr : graph.FindType(name)) {
        sub.value_types[name] = *type;
      }
    }
  }
  return sub;
}

}  // namespace parnet::partition
