// Plans (proto/plan.proto): made from a search result, checked against the model and cluster
// they are used with, validated, explained against alternatives, and drawn as a Gantt chart.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "partitioner/schedule.h"
#include "partitioner/stages.h"
#include "proto/cluster.pb.h"
#include "proto/plan.pb.h"
#include "runtime/core/status.h"
#include "runtime/graph/graph.h"

namespace parnet::partition {

// What a plan is made for.
struct PlanTarget {
  std::string model_path;
  std::string model_sha256;
  Cluster cluster;
  std::map<std::string, Shape> input_shapes;
  int batch = 1;
  std::string cost_source;  // "roofline" or "profile <file>"
};

// REQUIRES: `graph` is the specialized model the stage graph came from.
Plan MakePlan(const PlanTarget& target, const Graph& graph, const StageGraph& stages,
              const Schedule& schedule);

// Refuses a plan made for another model (file hash) or another cluster (its devices and links).
Status CheckPlanFor(const Plan& plan, const std::string& model_sha256, const Cluster& cluster);

// Every compute node of `graph` in exactly one stage; stages in a topological order; every stage
// run on a device, once, or on several devices only when recomputable; every input of a run
// present on its device (produced there earlier, the request on device 0, or carried there by a
// transfer that ends before the run starts, from a device where its producer ran); transfers
// carry values of the types the model gives them; the reply reaches device 0.
Status ValidatePlan(const Plan& plan, const Graph& graph);

StatusOr<Plan> LoadPlan(const std::string& path);
Status SavePlan(const Plan& plan, const std::string& path);

// A placement the chosen plan is compared with.
struct Alternative {
  std::string name;
  Schedule schedule;
  int devices_used = 0;
};

// The best one-device plan; the authors' 3-device layout (the shared stem recomputed on devices
// 0-2, the three heaviest mutually parallel stages one per device, the rest on device 0) when
// there are 3 or more devices; the best plan with one device fewer (each device but the first
// left out in turn) when there are 3 or more (with 2, that is the one-device plan).
std::vector<Alternative> Alternatives(const StageGraph& stages, const CostModel& costs);

// The table `parnet partition --explain` prints.
std::string ExplainTable(const Plan& plan, const std::vector<Alternative>& alternatives);

// An SVG Gantt chart of the plan's schedule: one row per device and per link direction used.
std::string GanttSvg(const Plan& plan, const std::string& title);

}  // namespace parnet::partition
