// `parnet run`: one batch through the model on this machine; prints the top classes per item and
// optionally writes the logits.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <numeric>

#include "runtime/cli/commands.h"
#include "runtime/cli/plan_commands.h"
#include "runtime/exec/engine.h"
#include "runtime/io/file_util.h"
#include "runtime/io/image.h"
#include "runtime/io/npy.h"
#include "runtime/transport/mpi_transport.h"

namespace parnet::cli {
namespace {

bool LooksLikeNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[6] = {};
  in.read(magic, sizeof magic);
  return in.gcount() == 6 && std::string(magic, 6) == "\x93NUMPY";
}

StatusOr<std::vector<std::string>> ReadLabels(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, io::ReadFileBytes(path, "labels file"));
  std::vector<std::string> labels;
  std::string line;
  for (char ch : text) {
    if (ch == '\n') {
      labels.push_back(line);
      line.clear();
    } else if (ch != '\r') {
      line += ch;
    }
  }
  if (!line.empty()) labels.push_back(line);
  return labels;
}

// The batch: a .npy as it is, or images with the ImageNet evaluation preprocessing.
StatusOr<Tensor> LoadBatch(const RunOptions& options, const Engine& engine) {
  if (options.inputs.size() == 1 && LooksLikeNpy(options.inputs[0])) {
    return io::ReadNpy(options.inputs[0]);
  }
  for (const std::string& path : options.inputs) {
    if (LooksLikeNpy(path)) {
      return InvalidArgument("'" + path +
                             "' is a .npy file; give either one .npy batch or "
                             "images (PNG/JPEG), not both");
    }
  }
  io::PreprocessOptions pre;
  const Shape& declared = engine.input_type(engine.input_names()[0]).shape;
  pre.size = options.image_size > 0                      ? options.image_size
             : (declared.size() == 4 && declared[2] > 0) ? declared[2]
                                                         : 224;
  return io::LoadImageBatch(options.inputs, pre);
}

void PrintTop(const Tensor& logits, const std::vector<std::string>& labels, int top) {
  const int64_t rows = logits.rank() >= 1 ? logits.dim(0) : 1;
  const int64_t cols = logits.num_elements() / std::max<int64_t>(rows, 1);
  const float* data = logits.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = data + r * cols;
    const float mx = *std::max_element(row, row + cols);
    double sum = 0;
    for (int64_t j = 0; j < cols; ++j) sum += std::exp(row[j] - mx);
    std::vector<int64_t> order(cols);
    std::iota(order.begin(), order.end(), 0);
    const int64_t k = std::min<int64_t>(top, cols);
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [&](int64_t a, int64_t b) { return row[a] > row[b]; });
    std::printf("item %lld:\n", static_cast<long long>(r));
    for (int64_t i = 0; i < k; ++i) {
      const int64_t c = order[i];
      const std::string name = c < static_cast<int64_t>(labels.size()) ? labels[c] : "";
      std::printf("  %5lld  p=%.4f  logit=%9.4f  %s\n", static_cast<long long>(c),
                  std::exp(row[c] - mx) / sum, row[c], name.c_str());
    }
  }
}

Status Run(const RunOptions& options) {
  if (options.top < 1) return InvalidArgument("--top must be >= 1");
  EngineOptions engine_options;
  engine_options.backend = options.backend;
  engine_options.threads = options.threads;
  ASSIGN_OR_RETURN(auto engine, Engine::Load(options.model, engine_options));
  if (engine->input_names().size() != 1) {
    return InvalidArgument("parnet run feeds one input; this model has " +
                           std::to_string(engine->input_names().size()));
  }
  std::vector<std::string> labels;
  if (!options.labels.empty()) {
    ASSIGN_OR_RETURN(labels, ReadLabels(options.labels));
  }
  ASSIGN_OR_RETURN(Tensor batch, LoadBatch(options, *engine));
  ASSIGN_OR_RETURN(std::vector<Tensor> outputs, engine->Run({{engine->input_names()[0], batch}}));
  const Tensor& logits = outputs[0];
  if (logits.dtype() != DType::kFloat32) {
    return Unimplemented("output 0 is " + logits.TypeString() + "; parnet run prints FP32 scores");
  }
  PrintTop(logits, labels, options.top);
  if (!options.output.empty()) {
    RETURN_IF_ERROR(io::WriteNpy(options.output, logits));
    std::printf("wrote %s %s\n", logits.TypeString().c_str(), options.output.c_str());
  }
  return Status::Ok();
}

}  // namespace

int RunRun(const RunOptions& options) {
  if (!options.plan.empty() || transport::LaunchedByMpirun()) return RunOnPlan(options);
  const Status status = Run(options);
  if (!status.ok()) {
    std::cerr << "parnet run: " << status.ToString() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace parnet::cli
