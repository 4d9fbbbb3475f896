#include "partitioner/plan.h"

#include <google/protobuf/text_format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <set>

#include "partitioner/cluster.h"
#include "partitioner/search.h"
#include "proto/text_proto.h"

namespace parnet::partition {
namespace {

std::string ShapeText(const Shape& shape) {
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + std::to_string(shape[i]);
  return out;
}

// Values crossing into / out of each stage, from node membership alone.
struct StageValues {
  std::set<std::string> inputs, outputs;
};

}  // namespace

Plan MakePlan(const PlanTarget& target, const Graph& graph, const StageGraph& stages,
              const Schedule& schedule) {
  Plan plan;
  plan.set_model(target.model_path);
  plan.set_model_sha256(target.model_sha256);
  *plan.mutable_cluster() = target.cluster;
  plan.set_cluster_sha256(Sha256OfMessage(target.cluster));
  for (const auto& [name, shape] : target.input_shapes) {
    (*plan.mutable_input_shapes())[name] = ShapeText(shape);
  }
  plan.set_batch(target.batch);
  plan.set_cost_source(target.cost_source);
  for (size_t s = 0; s < stages.stages.size(); ++s) {
    const StageInfo& info = stages.stages[s];
    Stage* stage = plan.add_stages();
    stage->set_id(static_cast<int>(s));
    stage->set_name(info.name);
    for (int i : info.nodes) stage->add_nodes(graph.nodes[i].name);
    for (const std::string& v : info.inputs) stage->add_inputs(v);
    for (const std::string& v : info.outputs) stage->add_outputs(v);
    stage->set_gflop(info.flops / 1e9);
    stage->set_mbytes(info.bytes / 1e6);
    stage->set_recomputable(info.recomputable);
  }
  for (int d = 0; d < target.cluster.devices_size(); ++d) {
    DeviceAssignment* assignment = plan.add_devices();
    assignment->set_device(target.cluster.devices(d).name());
    for (const StageRun& run : schedule.runs) {
      if (run.device != d) continue;
      parnet::StageRun* out = assignment->add_runs();
      out->set_stage(run.stage);
      out->set_start_ms(run.start_ms);
      out->set_finish_ms(run.finish_ms);
      out->set_cost_ms(run.finish_ms - run.start_ms);
    }
  }
  for (const TransferRun& t : schedule.transfers) {
    Transfer* out = plan.add_transfers();
    out->set_stage(t.stage);
    out->set_from_device(target.cluster.devices(t.from).name());
    out->set_to_device(target.cluster.devices(t.to).name());
    for (const std::string& v : t.values) {
      out->add_values(v);
      const TensorType* type = graph.FindType(v);
      out->add_types(type ? type->ToString() : "?");
    }
    out->set_mbytes(t.bytes / 1e6);
    out->set_start_ms(t.start_ms);
    out->set_finish_ms(t.finish_ms);
    out->set_reply(t.to_reply);
  }
  plan.set_predicted_latency_ms(schedule.latency_ms);
  return plan;
}

Status CheckPlanFor(const Plan& plan, const std::string& model_sha256, const Cluster& cluster) {
  if (plan.model_sha256() != model_sha256) {
    return FailedPrecondition("the plan was made for another model ('" + plan.model() +
                              "', sha256 " + plan.model_sha256().substr(0, 12) + "...; this one " +
                              model_sha256.substr(0, 12) + "...); run `parnet partition` for " +
                              "this model");
  }
  const std::string sha = Sha256OfMessage(cluster);
  if (plan.cluster_sha256() != sha) {
    std::string theirs;
    for (const Device& d : plan.cluster().devices()) theirs += (theirs.empty() ? "" : ",") + d.name();
    std::string ours;
    for (const Device& d : cluster.devices()) ours += (ours.empty() ? "" : ",") + d.name();
    return FailedPrecondition("the plan was made for another set of devices (" + theirs +
                              "; here: " + ours + ", or their speeds or links differ); run " +
                              "`parnet partition` for this cluster");
  }
  return Status::Ok();
}

Status ValidatePlan(const Plan& plan, const Graph& graph) {
  auto error = [](const std::string& m) { return InvalidArgument("invalid plan: " + m); };
  const int num_stages = plan.stages_size();
  RETURN_IF_ERROR(ValidateCluster(plan.cluster(), "in the plan"));
  if (plan.input_shapes().empty()) return error("it names no input shapes");
  for (const auto& [name, dims] : plan.input_shapes()) {
    if (std::find(graph.inputs.begin(), graph.inputs.end(), name) == graph.inputs.end()) {
      return error("its input '" + name + "' is not an input of the model");
    }
  }
  // Device assignments: one per cluster device, in the cluster's order (runners index them so).
  if (plan.devices_size() != plan.cluster().devices_size()) {
    return error("it assigns " + std::to_string(plan.devices_size()) + " devices but its cluster " +
                 "has " + std::to_string(plan.cluster().devices_size()));
  }
  for (int d = 0; d < plan.devices_size(); ++d) {
    if (plan.devices(d).device() != plan.cluster().devices(d).name()) {
      return error("assignment " + std::to_string(d) + " is for device '" +
                   plan.devices(d).device() + "', but the cluster's device " + std::to_string(d) +
                   " is '" + plan.cluster().devices(d).name() + "'");
    }
  }
  // 1. Every compute node in exactly one stage.
  std::map<std::string, int> stage_of_node;
  for (int i = 0; i < num_stages; ++i) {
    const Stage& stage = plan.stages(i);
    if (stage.id() != i) {
      return error("stage '" + stage.name() + "' has id " + std::to_string(stage.id()) +
                   "; ids must be the stages' positions");
    }
    for (const std::string& node : stage.nodes()) {
      if (!stage_of_node.emplace(node, stage.id()).second) {
        return error("node '" + node + "' is in two stages");
      }
    }
  }
  std::map<std::string, int> producer;  // value -> stage
  for (const Node& node : graph.nodes) {
    auto it = stage_of_node.find(node.name);
    if (it == stage_of_node.end()) return error(node.Describe() + " is in no stage");
    for (const std::string& out : node.outputs) producer[out] = it->second;
  }
  if (stage_of_node.size() != graph.nodes.size()) {
    return error("it names nodes the model does not have; was it made for another model?");
  }
  // 2. Stage inputs and outputs as the nodes imply, and stages in a topological order.
  std::vector<StageValues> values(num_stages);
  for (const Node& node : graph.nodes) {
    const int s = stage_of_node.at(node.name);
    for (const std::string& in : node.inputs) {
      if (in.empty() || graph.IsConstant(in)) continue;
      auto it = producer.find(in);
      if (it != producer.end() && it->second == s) continue;
      if (it != producer.end() && it->second > s) {
        return error("stage " + std::to_string(s) + " reads '" + in + "' from the later stage " +
                     std::to_string(it->second) + "; the stages must be in a topological order");
      }
      values[s].inputs.insert(in);
      if (it != producer.end()) values[it->second].outputs.insert(in);
    }
  }
  for (const std::string& out : graph.outputs) {
    if (producer.count(out)) values[producer.at(out)].outputs.insert(out);
  }
  for (const Stage& stage : plan.stages()) {
    const std::set<std::string> ins(stage.inputs().begin(), stage.inputs().end());
    const std::set<std::string> outs(stage.outputs().begin(), stage.outputs().end());
    if (ins != values[stage.id()].inputs || outs != values[stage.id()].outputs) {
      return error("stage '" + stage.name() + "' lists inputs or outputs its nodes do not imply");
    }
  }
  // 3. Runs: each stage once, or on several devices when recomputable; devices known.
  std::vector<std::map<std::string, double>> finish_on(num_stages);  // device -> finish
  for (const DeviceAssignment& assignment : plan.devices()) {
    if (DeviceIndex(plan.cluster(), assignment.device()) < 0) {
      return error("device '" + assignment.device() + "' is not in the plan's cluster");
    }
    double free_at = 0;
    for (const parnet::StageRun& run : assignment.runs()) {
      if (run.stage() < 0 || run.stage() >= num_stages) {
        return error("device '" + assignment.device() + "' runs unknown stage " +
                     std::to_string(run.stage()));
      }
      if (run.start_ms() + 1e-9 < free_at || run.finish_ms() < run.start_ms()) {
        return error("runs on device '" + assignment.device() + "' overlap or go backwards");
      }
      free_at = run.finish_ms();
      if (!finish_on[run.stage()].emplace(assignment.device(), run.finish_ms()).second) {
        return error("stage " + std::to_string(run.stage()) + " runs twice on device '" +
                     assignment.device() + "'");
      }
    }
  }
  for (const Stage& stage : plan.stages()) {
    const size_t runs = finish_on[stage.id()].size();
    if (runs == 0) return error("stage '" + stage.name() + "' is placed on no device");
    if (runs > 1 && !stage.recomputable()) {
      return error("stage '" + stage.name() + "' runs on " + std::to_string(runs) +
                   " devices but is not recomputable");
    }
  }
  // 4. Transfers: known stages and devices, values their stage produces (or the request's
  // inputs), of the model's types, each moved to a device once and read there, after it exists.
  const std::string first = plan.cluster().devices(0).name();
  std::set<std::pair<std::string, std::string>> moved;  // (value, to device)
  for (const Transfer& t : plan.transfers()) {
    const std::string what = "a transfer from '" + t.from_device() + "' to '" + t.to_device() + "'";
    if (t.stage() < -1 || t.stage() >= num_stages) {
      return error(what + " names stage " + std::to_string(t.stage()));
    }
    if (t.values().empty()) return error(what + " carries no values");
    if (t.types_size() != t.values_size()) return error(what + " lists types and values apart");
    const int from = DeviceIndex(plan.cluster(), t.from_device());
    const int to = DeviceIndex(plan.cluster(), t.to_device());
    if (from < 0 || to < 0 || from == to) {
      return error(what + " does not join two different devices of the cluster");
    }
    for (const std::string& v : t.values()) {
      const bool produced =
          t.stage() >= 0
              ? std::count(plan.stages(t.stage()).outputs().begin(),
                           plan.stages(t.stage()).outputs().end(), v) > 0
              : std::count(graph.inputs.begin(), graph.inputs.end(), v) > 0;
      if (!produced) return error(what + " carries '" + v + "', which its stage does not produce");
      if (!moved.insert({v, t.to_device()}).second) {
        return error("'" + v + "' is sent to device '" + t.to_device() + "' twice");
      }
      bool read = t.reply() && to == 0 &&
                  std::count(graph.outputs.begin(), graph.outputs.end(), v) > 0;
      for (const auto& run : plan.devices(to).runs()) {
        if (run.stage() < 0 || run.stage() >= num_stages) continue;  // refused below
        const auto& ins = plan.stages(run.stage()).inputs();
        read |= std::count(ins.begin(), ins.end(), v) > 0;
      }
      if (!read) return error(what + " carries '" + v + "', which nothing there reads");
    }
    if (t.stage() >= 0) {
      auto produced_at = finish_on[t.stage()].find(t.from_device());
      if (produced_at != finish_on[t.stage()].end() && t.start_ms() + 1e-9 < produced_at->second) {
        return error(what + " starts before its stage finishes there");
      }
    }
    for (int i = 0; i < t.values_size(); ++i) {
      const TensorType* type = graph.FindType(t.values(i));
      if (type == nullptr || type->ToString() != t.types(i)) {
        return error("transfer of '" + t.values(i) + "' says " + t.types(i) + " but the model " +
                     "has " + (type ? type->ToString() : "no such value"));
      }
    }
    const bool from_request = t.stage() < 0;
    if (from_request ? t.from_device() != first : !finish_on[t.stage()].count(t.from_device())) {
      return error("a transfer of '" + t.values(0) + "' leaves device '" + t.from_device() +
                   "', where it was never produced");
    }
  }
  // 5. Every input of every run is on its device in time.
  auto present = [&](const std::string& value, const std::string& device, double at) {
    auto it = producer.find(value);
    const int from = it == producer.end() ? -1 : it->second;
    if (from < 0 && device == first) return true;
    if (from >= 0) {
      auto local = finish_on[from].find(device);
      if (local != finish_on[from].end()) return local->second <= at + 1e-9;
    }
    for (const Transfer& t : plan.transfers()) {
      if (t.to_device() != device || t.finish_ms() > at + 1e-9) continue;
      if (std::find(t.values().begin(), t.values().end(), value) != t.values().end()) return true;
    }
    return false;
  };
  for (const DeviceAssignment& assignment : plan.devices()) {
    for (const parnet::StageRun& run : assignment.runs()) {
      for (const std::string& in : plan.stages(run.stage()).inputs()) {
        if (!present(in, assignment.device(), run.start_ms())) {
          return error("stage '" + plan.stages(run.stage()).name() + "' on device '" +
                       assignment.device() + "' reads '" + in + "', which no transfer brings " +
                       "there before it starts");
        }
      }
    }
  }
  for (const std::string& out : graph.outputs) {
    if (!present(out, first, plan.predicted_latency_ms())) {
      return error("output '" + out + "' does not reach device '" + first + "'");
    }
  }
  return Status::Ok();
}

StatusOr<Plan> LoadPlan(const std::string& path) {
  Plan plan;
  RETURN_IF_ERROR(LoadTextProto(path, "plan", "proto/plan.proto; write plans with `parnet " +
                                std::string("partition --out`"), &plan));
  if (plan.cluster().devices().empty()) {
    return InvalidArgument("plan '" + path + "' has no cluster; write it with `parnet partition`");
  }
  return plan;
}

Status SavePlan(const Plan& plan, const std::string& path) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(plan, &text);
  std::ofstream out(path);
  out << text;
  if (!out) return Status(StatusCode::kUnavailable, "cannot write plan '" + path + "'");
  return Status::Ok();
}

}  // namespace parnet::partition
