#include "runtime/graph/passes.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <map>
#include <optional>
#include <set>

namespace parnet {
namespace {

// Readers of each value (graph outputs count as a reader with no node).
std::map<std::string, int> UseCounts(const Graph& g) {
  std::map<std::string, int> uses;
  for (const Node& n : g.nodes) {
    for (const std::string& in : n.inputs) {
      if (!in.empty()) ++uses[in];
    }
  }
  for (const std::string& out : g.outputs) ++uses[out];
  return uses;
}

std::map<std::string, size_t> Producers(const Graph& g) {
  std::map<std::string, size_t> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (const std::string& out : g.nodes[i].outputs) {
      if (!out.empty()) producer[out] = i;
    }
  }
  return producer;
}

void Rename(Graph& g, const std::string& from, const std::string& to) {
  for (Node& n : g.nodes) {
    for (std::string& in : n.inputs) {
      if (in == from) in = to;
    }
  }
}

void EraseNodes(Graph& g, const std::set<size_t>& dead) {
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!dead.count(i)) kept.push_back(std::move(g.nodes[i]));
  }
  g.nodes = std::move(kept);
}

std::vector<int64_t> Ints(const Node& n, const char* key, size_t count, int64_t fallback) {
  return n.IntsAttr(key, std::vector<int64_t>(count, fallback));
}

bool ConstantFloat(const Graph& g, const Node& n, size_t i) {
  return i < n.inputs.size() && !n.inputs[i].empty() && g.IsConstant(n.inputs[i]) &&
         g.constants.at(n.inputs[i]).dtype() == DType::kFloat32;
}

// A 2-D Conv with constant weights (and bias, if any), explicit padding and no dilation.
bool PlainConv2d(const Graph& g, const Node& n) {
  if (n.op_type != "Conv" || !ConstantFloat(g, n, 1) ||
      g.FindType(n.inputs[1])->shape.size() != 4) {
    return false;
  }
  if (n.NumInputs() > 2 && !ConstantFloat(g, n, 2)) return false;
  const std::string pad = n.StringAttr("auto_pad", "NOTSET");
  return pad == "NOTSET" && Ints(n, "dilations", 2, 1) == std::vector<int64_t>{1, 1};
}

Tensor BiasOf(const Graph& g, const Node& conv) {
  const int64_t m = g.FindType(conv.inputs[1])->shape[0];
  return conv.NumInputs() > 2 ? g.constants.at(conv.inputs[2]).Clone()
                              : Tensor(DType::kFloat32, {m});
}

std::string NewConstant(Graph& g, const std::string& base, Tensor t) {
  std::string name = base;
  for (int i = 1; g.value_types.count(name); ++i) name = base + "." + std::to_string(i);
  g.value_types[name] = {t.dtype(), t.shape()};
  g.constants[name] = std::move(t);
  return name;
}

}  // namespace

StatusOr<int64_t> RemoveIdentityOps(Graph& graph) {
  assert(graph.specialized);
  std::set<size_t> dead;
  const std::set<std::string> outputs(graph.outputs.begin(), graph.outputs.end());
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    bool identity = n.op_type == "Identity";
    if (n.op_type == "Pad") {
      identity = graph.opset < 11 ? true : n.inputs.size() > 1 && graph.IsConstant(n.inputs[1]);
      std::vector<int64_t> pads = n.IntsAttr("pads");
      if (identity && graph.opset >= 11)
        pads = graph.constants.at(n.inputs[1]).ToInt64Vector().value();
      for (int64_t p : pads) identity = identity && p == 0;
    }
    if (!identity || outputs.count(n.outputs[0]) || graph.IsConstant(n.inputs[0])) continue;
    Rename(graph, n.outputs[0], n.inputs[0]);
    dead.insert(i);
  }
  EraseNodes(graph, dead);
  return static_cast<int64_t>(dead.size());
}

StatusOr<int64_t> FoldBatchNormIntoConv(Graph& graph) {
  assert(graph.specialized);
  const auto uses = UseCounts(graph);
  const auto producer = Producers(graph);
  std::set<size_t> dead;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    Node& bn = graph.nodes[i];
    if (bn.op_type != "BatchNormalization" || !producer.count(bn.inputs[0])) continue;
    Node& conv = graph.nodes[producer.at(bn.inputs[0])];
    bool constant = PlainConv2d(graph, conv) && uses.at(bn.inputs[0]) == 1;
    for (size_t k = 1; k < 5; ++k) constant = constant && ConstantFloat(graph, bn, k);
    if (!constant) continue;
    const Tensor& w = graph.constants.at(conv.inputs[1]);
    // A convolution without output channels (or inputs) has nothing to scale: leave the pair.
    if (w.num_elements() == 0) continue;
    const int64_t m = w.dim(0), per = w.num_elements() / m;
    const float eps = bn.FloatAttr("epsilon", 1e-5f);
    const float* gamma = graph.constants.at(bn.inputs[1]).data<float>();
    const float* beta = graph.constants.at(bn.inputs[2]).data<float>();
    const float* mean = graph.constants.at(bn.inputs[3]).data<float>();
    const float* var = graph.constants.at(bn.inputs[4]).data<float>();
    Tensor nw = w.Clone(), nb = BiasOf(graph, conv);
    for (int64_t oc = 0; oc < m; ++oc) {
      const double k = gamma[oc] / std::sqrt(static_cast<double>(var[oc]) + eps);
      for (int64_t j = 0; j < per; ++j) nw.data<float>()[oc * per + j] *= static_cast<float>(k);
      nb.data<float>()[oc] = static_cast<float>((nb.data<float>()[oc] - mean[oc]) * k + beta[oc]);
    }
    conv.inputs.resize(3);
    conv.inputs[1] = NewConstant(graph, conv.name + ".folded_w", std::move(nw));
    conv.inputs[2] = NewConstant(graph, conv.name + ".folded_b", std::move(nb));
    conv.outputs[0] = bn.outputs[0];
    dead.insert(i);
  }
  EraseNodes(graph, dead);
  return static_cast<int64_t>(dead.size());
}

namespace {

struct Branches {
  size_t big = 0, small = 0;   // node indices of the 3x3 and the 1x1 Conv
  std::optional<size_t> pool;  // the AvgPool before the 1x1, when the block downsamples
};

// Recognizes the two re-parameterizable branch pairs feeding an Add.
std::optional<Branches> MatchBranches(const Graph& g, const Node& add,
                                      const std::map<std::string, size_t>& producer,
                                      const std::map<std::string, int>& uses) {
  for (int order = 0; order < 2; ++order) {
    const std::string& a = add.inputs[order];
    const std::string& b = add.inputs[1 - order];
    if (!producer.count(a) || !producer.count(b) || uses.at(a) != 1 || uses.at(b) != 1) continue;
    const Node& big = g.nodes[producer.at(a)];
    const Node& small = g.nodes[producer.at(b)];
    if (!PlainConv2d(g, big) || !PlainConv2d(g, small)) continue;
    const Shape& wb = g.FindType(big.inputs[1])->shape;
    const Shape& ws = g.FindType(small.inputs[1])->shape;
    if (wb[2] != 3 || wb[3] != 3 || ws[2] != 1 || ws[3] != 1 || wb[0] != ws[0] || wb[1] != ws[1] ||
        big.IntAttr("group", 1) != small.IntAttr("group", 1) ||
        Ints(big, "pads", 4, 0) != std::vector<int64_t>{1, 1, 1, 1} ||
        Ints(small, "pads", 4, 0) != std::vector<int64_t>{0, 0, 0, 0}) {
      continue;
    }
    const auto sb = Ints(big, "strides", 2, 1), ss = Ints(small, "strides", 2, 1);
    if (small.inputs[0] == big.inputs[0] && sb == ss)
      return Branches{producer.at(a), producer.at(b), {}};
    // Downsampling form: 1x1/s1 after AvgPool 2x2/s2 of the same input, 3x3 with stride 2.
    if (!producer.count(small.inputs[0]) || uses.at(small.inputs[0]) != 1 ||
        sb != std::vector<int64_t>{2, 2} || ss != std::vector<int64_t>{1, 1}) {
      continue;
    }
    const size_t p = producer.at(small.inputs[0]);
    const Node& pool = g.nodes[p];
    if (pool.op_type == "AveragePool" && pool.inputs[0] == big.inputs[0] &&
        pool.IntsAttr("kernel_shape") == std::vector<int64_t>{2, 2} &&
        Ints(pool, "strides", 2, 1) == std::vector<int64_t>{2, 2} &&
        Ints(pool, "pads", 4, 0) == std::vector<int64_t>{0, 0, 0, 0} &&
        pool.StringAttr("auto_pad", "NOTSET") == "NOTSET" && pool.IntAttr("ceil_mode", 0) == 0 &&
        g.FindType(big.inputs[0])->shape[2] % 2 == 0 &&
        g.FindType(big.inputs[0])->shape[3] % 2 == 0) {
      return Branches{producer.at(a), producer.at(b), p};
    }
  }
  return std::nullopt;
}

}  // namespace

StatusOr<int64_t> MergeParallelConvs(Graph& graph) {
  assert(graph.specialized);
  const auto uses = UseCounts(graph);
  const auto producer = Producers(graph);
  std::set<size_t> dead;
  int64_t merged = 0;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& add = graph.nodes[i];
    if (add.op_type != "Add") continue;
    auto match = MatchBranches(graph, add, producer, uses);
    if (!match || dead.count(match->big) || dead.count(match->small)) continue;
    Node& big = graph.nodes[match->big];
    const Node& small = graph.nodes[match->small];
    Tensor w = graph.constants.at(big.inputs[1]).Clone();
    Tensor b = BiasOf(graph, big);
    const Tensor& ws = graph.constants.at(small.inputs[1]);
    const Tensor bs = BiasOf(graph, small);
    const int64_t planes = w.dim(0) * w.dim(1);
    float* pw = w.data<float>();
    for (int64_t p = 0; p < planes; ++p) {
      const float v = ws.data<float>()[p];
      if (match->pool) {
        for (int64_t tap : {4, 5, 7, 8}) pw[p * 9 + tap] += v / 4;  // rows 1-2, cols 1-2
      } else {
        pw[p * 9 + 4] += v;  // centre
      }
    }
    for (int64_t oc = 0; oc < b.num_elements(); ++oc) b.data<float>()[oc] += bs.data<float>()[oc];
    big.inputs.resize(3);
    big.inputs[1] = NewConstant(graph, big.name + ".merged_w", std::move(w));
    big.inputs[2] = NewConstant(graph, big.name + ".merged_b", std::move(b));
    // The merged conv takes the Add's place: move it there so its readers still follow it.
    big.outputs[0] = add.outputs[0];
    std::swap(graph.nodes[match->big], graph.nodes[i]);
    dead.insert(match->big);
    dead.insert(match->small);
    if (match->pool) dead.insert(*match->pool);
    ++merged;
  }
  EraseNodes(graph, dead);
  return merged;
}

namespace {

// y[c] = x[perm[c]] for the channel shuffle that ends at node `last` (the final Reshape), or
// nullopt. `nodes` receives the shuffle's three nodes.
std::optional<std::vector<int64_t>> MatchShuffle(const Graph& g, size_t last,
                                                 const std::map<std::string, size_t>& producer,
                                                 const std::map<std::string, int>& uses,
                                                 std::vector<size_t>& nodes) {
  const Node& back = g.nodes[last];
  if (back.op_type != "Reshape" || !producer.count(back.inputs[0])) return std::nullopt;
  const size_t t = producer.at(back.inputs[0]);
  const Node& transpose = g.nodes[t];
  if (transpose.op_type != "Transpose" || uses.at(back.inputs[0]) != 1 ||
      !producer.count(transpose.inputs[0]) ||
      transpose.IntsAttr("perm", {}) != std::vector<int64_t>{0, 2, 1, 3, 4}) {
    return std::nullopt;
  }
  const size_t f = producer.at(transpose.inputs[0]);
  const Node& front = g.nodes[f];
  if (front.op_type != "Reshape" || uses.at(transpose.inputs[0]) != 1) return std::nullopt;
  const Shape& x = g.FindType(front.inputs[0])->shape;
  const Shape& split = g.FindType(front.outputs[0])->shape;
  const Shape& y = g.FindType(back.outputs[0])->shape;
  if (x.size() != 4 || x != y || split.size() != 5 || split[0] != x[0] ||
      split[1] * split[2] != x[1] || split[3] != x[2] || split[4] != x[3]) {
    return std::nullopt;
  }
  // y viewed as [N, b, a] over channels holds x's [N, a, b] transposed.
  const int64_t a = split[1], b = split[2];
  std::vector<int64_t> perm(static_cast<size_t>(x[1]));
  for (int64_t c = 0; c < x[1]; ++c) perm[c] = (c % a) * b + c / a;
  nodes = {f, t, last};
  return perm;
}

// The nodes that must change to read a value whose channels are permuted by `perm` (value[c] =
// permuted[perm[c]]), following per-channel ops; false when some reader cannot absorb it.
bool CollectAbsorbers(const Graph& g, const std::string& value, const std::vector<int64_t>& perm,
                      const std::map<std::string, std::vector<size_t>>& readers,
                      const std::set<std::string>& outputs, std::vector<size_t>& absorbers) {
  if (outputs.count(value) || !readers.count(value)) return false;
  for (size_t i : readers.at(value)) {
    const Node& n = g.nodes[i];
    for (size_t k = 1; k < n.inputs.size(); ++k) {
      if (n.inputs[k] == value) return false;  // read as weights or a second operand
    }
    if (n.op_type == "Conv") {
      const Shape& w = g.FindType(n.inputs[1])->shape;
      if (!ConstantFloat(g, n, 1) || w.size() != 4) return false;
      const int64_t per_group = w[1];  // input channels per group
      for (size_t c = 0; c < perm.size(); ++c) {
        if (perm[c] / per_group != static_cast<int64_t>(c) / per_group) return false;
      }
    } else if (n.op_type == "BatchNormalization") {
      for (size_t k = 1; k < 5; ++k) {
        if (!ConstantFloat(g, n, k)) return false;
      }
      if (!CollectAbsorbers(g, n.outputs[0], perm, readers, outputs, absorbers)) return false;
    } else if (n.op_type == "GlobalAveragePool" || n.op_type == "Relu" || n.op_type == "Sigmoid") {
      if (!CollectAbsorbers(g, n.outputs[0], perm, readers, outputs, absorbers)) return false;
    } else {
      return false;
    }
    absorbers.push_back(i);
  }
  return true;
}

// Rewrites `n` (a Conv or BatchNormalization) to read the channels in permuted order.
void PermuteInputChannels(Graph& g, Node& n, const std::vector<int64_t>& perm) {
  if (n.op_type == "Conv") {
    const Tensor& w = g.constants.at(n.inputs[1]);
    const int64_t out = w.dim(0), per_group = w.dim(1), taps = w.num_elements() / (out * per_group);
    const int64_t groups = static_cast<int64_t>(perm.size()) / per_group;
    const int64_t out_per_group = out / groups;
    Tensor nw = w.Clone();
    for (int64_t o = 0; o < out; ++o) {
      const int64_t base = (o / out_per_group) * per_group;  // the group's first input channel
      for (int64_t j = 0; j < per_group; ++j) {
        const int64_t to = perm[base + j] - base;
        std::copy_n(w.data<float>() + (o * per_group + j) * taps, taps,
                    nw.data<float>() + (o * per_group + to) * taps);
      }
    }
    n.inputs[1] = NewConstant(g, n.name + ".permuted_w", std::move(nw));
    return;
  }
  for (size_t k = 1; k < 5; ++k) {  // BatchNormalization: scale, bias, mean, variance
    const Tensor& p = g.constants.at(n.inputs[k]);
    Tensor np = p.Clone();
    for (size_t c = 0; c < perm.size(); ++c) np.data<float>()[perm[c]] = p.data<float>()[c];
    n.inputs[k] = NewConstant(g, n.name + ".permuted_" + std::to_string(k), std::move(np));
  }
}

}  // namespace

StatusOr<int64_t> FoldChannelShuffles(Graph& graph) {
  assert(graph.specialized);
  std::set<size_t> dead;
  int64_t folded = 0;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    // Recomputed per candidate: an earlier fold renames readers.
    const auto uses = UseCounts(graph);
    const auto producer = Producers(graph);
    std::vector<size_t> shuffle;
    auto perm = MatchShuffle(graph, i, producer, uses, shuffle);
    if (!perm || dead.count(i)) continue;
    std::map<std::string, std::vector<size_t>> readers;
    for (size_t k = 0; k < graph.nodes.size(); ++k) {
      if (dead.count(k)) continue;
      for (const std::string& in : graph.nodes[k].inputs) {
        if (!in.empty()) readers[in].push_back(k);
      }
    }
    const std::set<std::string> outputs(graph.outputs.begin(), graph.outputs.end());
    const std::string& shuffled = graph.nodes[i].outputs[0];
    std::vector<size_t> absorbers;
    if (!CollectAbsorbers(graph, shuffled, *perm, readers, outputs, absorbers)) continue;
    const std::string source = graph.nodes[shuffle[0]].inputs[0];
    std::set<size_t> done;  // a node reached twice (through two paths) is rewritten once
    for (size_t k : absorbers) {
      Node& n = graph.nodes[k];
      if (!done.insert(k).second) continue;
      if (n.op_type == "Conv" || n.op_type == "BatchNormalization")
        PermuteInputChannels(graph, n, *perm);
      if (n.inputs[0] == shuffled) n.inputs[0] = source;
    }
    dead.insert(shuffle.begin(), shuffle.end());
    ++folded;
  }
  EraseNodes(graph, dead);
  return folded;
}

StatusOr<OptimizeReport> Optimize(Graph& graph) {
  OptimizeReport report;
  ASSIGN_OR_RETURN(report.identities_removed, RemoveIdentityOps(graph));
  ASSIGN_OR_RETURN(report.batchnorms_folded, FoldBatchNormIntoConv(graph));
  ASSIGN_OR_RETURN(report.conv_pairs_merged, MergeParallelConvs(graph));
  ASSIGN_OR_RETURN(report.channel_shuffles_folded, FoldChannelShuffles(graph));
  // Constants that no node reads any more (the unfolded weights) are dropped.
  std::set<std::string> used(graph.outputs.begin(), graph.outputs.end());
  for (const Node& n : graph.nodes) used.insert(n.inputs.begin(), n.inputs.end());
  for (auto it = graph.constants.begin(); it != graph.constants.end();) {
    it = used.count(it->first) ? std::next(it) : graph.constants.erase(it);
  }
  return report;
}

}  // namespace parnet
