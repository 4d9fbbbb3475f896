// `parnet profile`: measure every stage of a model on this machine's CPU, and the CPU's peak, so
// that `parnet partition --profile` predicts from measured times instead of a roofline.
#include <google/protobuf/text_format.h>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <random>

#include "partitioner/cluster.h"
#include "partitioner/cost.h"
#include "partitioner/stages.h"
#include "runtime/cli/commands.h"
#include "runtime/cli/plan_commands.h"
#include "runtime/exec/engine.h"
#include "runtime/graph/onnx_import.h"
#include "runtime/graph/specialize.h"

namespace parnet::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct Timing {
  double median_ms = 0, p90_ms = 0;
};

Tensor RandomTensor(const TensorType& type, std::mt19937& rng) {
  Tensor t(type.dtype, type.shape);
  std::normal_distribution<float> normal;
  if (type.dtype == DType::kFloat32) {
    for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = normal(rng);
  }
  return t;
}

// Runs `engine` on random inputs: warm-up, then at least `seconds` and 5 runs.
StatusOr<Timing> TimeEngine(Engine& engine, const Graph& model, double seconds) {
  std::mt19937 rng(0);
  std::map<std::string, Tensor> inputs;
  for (const std::string& name : model.inputs) {
    inputs[name] = RandomTensor(*model.FindType(name), rng);
  }
  for (int i = 0; i < 2; ++i) RETURN_IF_ERROR(engine.Run(inputs).status());
  std::vector<double> ms;
  const auto begin = Clock::now();
  while (ms.size() < 5 || std::chrono::duration<double>(Clock::now() - begin).count() < seconds) {
    const auto t0 = Clock::now();
    RETURN_IF_ERROR(engine.Run(inputs).status());
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return Timing{ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 9 / 10)]};
}

// A one-node model: a 3x3 convolution 128->128 at 56x56 (the GFLOP/s peak), or an Add of two
// 64 MB tensors (the memory bandwidth).
Graph OneOpModel(bool conv) {
  Graph g;
  g.name = conv ? "peak-conv" : "peak-add";
  g.opset = 13;
  g.inputs = {"x"};
  g.outputs = {"y"};
  Node node;
  node.name = conv ? "conv" : "add";
  node.op_type = conv ? "Conv" : "Add";
  node.inputs = {"x", "w"};
  node.outputs = {"y"};
  const Shape x = conv ? Shape{1, 128, 56, 56} : Shape{4096, 4096};
  const Shape w = conv ? Shape{128, 128, 3, 3} : Shape{4096, 4096};
  if (conv) {
    Attribute pads;
    pads.kind = Attribute::Kind::kInts;
    pads.ints = {1, 1, 1, 1};
    node.attributes["pads"] = pads;
  }
  g.nodes.push_back(node);
  Tensor weights(DType::kFloat32, w);
  for (int64_t i = 0; i < weights.num_elements(); ++i) weights.data<float>()[i] = 0.01f;
  g.constants["w"] = weights;
  g.value_types["x"] = {DType::kFloat32, x};
  g.value_types["w"] = {DType::kFloat32, w};
  g.value_types["y"] = {DType::kFloat32, x};
  return g;
}


Status Measure(const ProfileOptions& options, Profile& profile) {
  ASSIGN_OR_RETURN(Graph graph, LoadOnnxModel(options.model));
  ASSIGN_OR_RETURN(std::string sha, partition::Sha256OfFile(options.model));
  profile.set_model_sha256(sha);
  profile.set_device_kind("cpu");
  profile.set_cpu_model(CpuModel());
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  profile.set_host(host);
  for (const auto& [name, shape] : ModelInputShapes(graph, 1, options.size)) {
    std::string dims;
    for (size_t d = 1; d < shape.size(); ++d) dims += (d > 1 ? "," : "") + std::to_string(shape[d]);
    (*profile.mutable_input_shapes())[name] = dims;
  }
  for (int threads : options.threads) {
    EngineOptions engine_options;
    engine_options.threads = threads;
    ASSIGN_OR_RETURN(auto peak, MeasurePeak(threads));
    (*profile.mutable_peak_gflops())[threads] = peak.first;
    (*profile.mutable_memory_gbps())[threads] = peak.second;
    std::cout << "threads " << threads << ": conv peak " << profile.peak_gflops().at(threads)
              << " GFLOP/s, memory " << profile.memory_gbps().at(threads) << " GB/s\n";
    for (int batch : options.batches) {
      SpecializeOptions spec;
      spec.input_shapes = ModelInputShapes(graph, batch, options.size);
      ASSIGN_OR_RETURN(Graph specialized, Specialize(graph, spec));
      ASSIGN_OR_RETURN(partition::StageGraph stages, partition::DiscoverStages(specialized));
      for (const partition::StageInfo& stage : stages.stages) {
        Graph sub = partition::ExtractStage(specialized, stage);
        ASSIGN_OR_RETURN(auto engine, Engine::Create(sub, engine_options));
        ASSIGN_OR_RETURN(Timing t, TimeEngine(*engine, sub, options.seconds));
        StageTiming* timing = profile.add_timings();
        timing->set_stage(stage.name);
        for (int i : stage.nodes) timing->add_nodes(specialized.nodes[i].name);
        timing->set_batch(batch);
        timing->set_threads(threads);
        timing->set_median_ms(t.median_ms);
        timing->set_p90_ms(t.p90_ms);
        std::cout << "  batch " << batch << " " << stage.name << ": " << t.median_ms << " ms ("
                  << stage.flops / (t.median_ms * 1e6) << " GFLOP/s)\n";
      }
      // The whole model as one Engine: what a plan with every stage on one device runs.
      ASSIGN_OR_RETURN(auto whole, Engine::Create(graph, engine_options));
      Graph shaped = graph;
      for (const auto& [name, shape] : spec.input_shapes) shaped.value_types[name].shape = shape;
      ASSIGN_OR_RETURN(Timing t, TimeEngine(*whole, shaped, options.seconds));
      StageTiming* timing = profile.add_timings();
      timing->set_stage(partition::kWholeModel);
      timing->set_batch(batch);
      timing->set_threads(threads);
      timing->set_median_ms(t.median_ms);
      timing->set_p90_ms(t.p90_ms);
      std::cout << "  batch " << batch << " whole model: " << t.median_ms << " ms ("
                << stages.total_flops / (t.median_ms * 1e6) << " GFLOP/s)\n";
    }
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::pair<double, double>> MeasurePeak(int threads) {
  EngineOptions engine_options;
  engine_options.threads = threads;
  std::pair<double, double> peak;
  for (bool conv : {true, false}) {
    Graph one = OneOpModel(conv);
    ASSIGN_OR_RETURN(auto engine, Engine::Create(one, engine_options));
    ASSIGN_OR_RETURN(Timing t, TimeEngine(*engine, one, 0.5));
    if (conv) {
      peak.first = 2.0 * 128 * 128 * 9 * 56 * 56 / (t.median_ms * 1e6);
    } else {
      peak.second = 3.0 * 4096 * 4096 * 4 / (t.median_ms * 1e6);
    }
  }
  return peak;
}

int RunProfile(const ProfileOptions& options) {
  Profile profile;
  if (Status status = Measure(options, profile); !status.ok()) {
    std::cerr << "parnet profile: " << status.message() << "\n";
    return 1;
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(profile, &text);
  std::ofstream out(options.out);
  out << text;
  if (!out) {
    std::cerr << "parnet profile: cannot write '" << options.out << "'\n";
    return 1;
  }
  std::cout << "wrote " << options.out << "\n";
  return 0;
}

}  // namespace parnet::cli
