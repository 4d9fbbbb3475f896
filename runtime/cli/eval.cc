// `parnet eval`: accuracy, confusion matrix and speed of a classifier on a labelled test set.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "runtime/cli/commands.h"
#include "runtime/cli/plan_commands.h"
#include "runtime/exec/engine.h"
#include "runtime/io/file_util.h"
#include "runtime/io/idx.h"
#include "runtime/io/npy.h"

namespace parnet::cli {
namespace {

namespace fs = std::filesystem;

struct Dataset {
  Tensor images;  // UINT8 [N, H, W]
  Tensor labels;  // UINT8 [N]
};

StatusOr<Dataset> LoadFashionMnistTest(const EvalOptions& options) {
  if (options.dataset != "fashion-mnist") {
    return InvalidArgument("unknown dataset '" + options.dataset + "'; supported: fashion-mnist");
  }
  Dataset d;
  ASSIGN_OR_RETURN(d.images, io::ReadIdx(options.data_dir + "/t10k-images-idx3-ubyte.gz"));
  ASSIGN_OR_RETURN(d.labels, io::ReadIdx(options.data_dir + "/t10k-labels-idx1-ubyte.gz"));
  if (d.images.rank() != 3 || d.labels.rank() != 1 || d.images.dim(0) != d.labels.dim(0)) {
    return InvalidArgument("images " + d.images.TypeString() + " and labels " +
                           d.labels.TypeString() + " do not form a dataset");
  }
  return d;
}

// Images [first, first+n) as the model's input: pixel / 255, zero-padded (centered) to the
// model's H x W, gray replicated when the model takes 3 channels.
Tensor MakeBatch(const Dataset& d, int64_t first, int64_t n, const Shape& input) {
  const int64_t c = input[1], h = input[2], w = input[3];
  const int64_t ih = d.images.dim(1), iw = d.images.dim(2);
  const int64_t top = (h - ih) / 2, left = (w - iw) / 2;
  Tensor batch(DType::kFloat32, {n, c, h, w});
  float* out = batch.data<float>();
  const uint8_t* px = d.images.data<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t y = 0; y < ih; ++y) {
        for (int64_t x = 0; x < iw; ++x) {
          out[((i * c + ch) * h + y + top) * w + x + left] =
              px[((first + i) * ih + y) * iw + x] / 255.0f;
        }
      }
    }
  }
  return batch;
}

void Progress(int64_t done, int64_t total, bool tty) {
  const int width = 40;
  const int filled = static_cast<int>(width * done / std::max<int64_t>(total, 1));
  if (tty) {
    std::fprintf(stderr, "\r[%-*s] %lld/%lld", width, std::string(filled, '#').c_str(),
                 static_cast<long long>(done), static_cast<long long>(total));
    if (done == total) std::fprintf(stderr, "\n");
  } else if (done == total || (done * 10 / total) != ((done - 1) * 10 / total)) {
    std::fprintf(stderr, "progress: %lld/%lld images\n", static_cast<long long>(done),
                 static_cast<long long>(total));
  }
}

std::vector<std::string> DefaultLabels(const EvalOptions& options) {
  fs::path path = options.labels.empty()
                      ? fs::path(options.model).parent_path().parent_path() / "labels.txt"
                      : fs::path(options.labels);
  std::vector<std::string> labels;
  auto text = io::ReadFileBytes(path.string(), "labels file");
  if (!text.ok()) return labels;
  std::string line;
  for (char ch : *text) {
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

std::string LabelOf(int64_t c, const std::vector<std::string>& labels) {
  return c < static_cast<int64_t>(labels.size()) ? labels[c] : "class " + std::to_string(c);
}

void PrintSamples(const std::vector<float>& logits, int64_t classes, const Tensor& truth,
                  int64_t count, const std::vector<std::string>& labels) {
  std::printf("\nfirst %lld test images:\n", static_cast<long long>(count));
  for (int64_t i = 0; i < count; ++i) {
    const float* row = logits.data() + i * classes;
    const int64_t pred = std::max_element(row, row + classes) - row;
    double sum = 0;
    for (int64_t j = 0; j < classes; ++j) sum += std::exp(row[j] - row[pred]);
    const int64_t t = truth.data<uint8_t>()[i];
    std::printf("  image %4lld: predicted %-12s (p=%.3f)  true %-12s %s\n",
                static_cast<long long>(i), LabelOf(pred, labels).c_str(), 1.0 / sum,
                LabelOf(t, labels).c_str(), pred == t ? "ok" : "WRONG");
  }
}

void PrintConfusion(const std::vector<std::vector<int64_t>>& m,
                    const std::vector<std::string>& labels) {
  const size_t k = m.size();
  std::printf("\nconfusion matrix (rows: true class, columns: predicted)\n%-14s", "");
  for (size_t j = 0; j < k; ++j) std::printf("%6zu", j);
  std::printf("\n");
  for (size_t i = 0; i < k; ++i) {
    const std::string name = i < labels.size() ? labels[i].substr(0, 12) : std::to_string(i);
    std::printf("%2zu %-11s", i, name.c_str());
    for (size_t j = 0; j < k; ++j) std::printf("%6lld", static_cast<long long>(m[i][j]));
    std::printf("\n");
  }
}

Status Eval(const EvalOptions& options) {
  if (options.batch < 1) return InvalidArgument("--batch must be >= 1");
  EngineOptions engine_options;
  engine_options.backend = options.backend;
  engine_options.threads = options.threads;
  ASSIGN_OR_RETURN(auto engine, Engine::Load(options.model, engine_options));
  const std::string input = engine->input_names()[0];
  Shape shape = engine->input_type(input).shape;
  if (shape.size() != 4 || (shape[1] != 1 && shape[1] != 3)) {
    return InvalidArgument(
        "parnet eval needs an image classifier with an [N,1|3,H,W] input; "
        "the model takes " +
        engine->input_type(input).ToString());
  }
  ASSIGN_OR_RETURN(Dataset data, LoadFashionMnistTest(options));
  // Dynamic H, W: the smallest size that holds the images and that the model accepts.
  for (int d = 2; d < 4; ++d) {
    if (shape[d] >= 0) continue;
    shape[d] = data.images.dim(d - 1);
    while (shape[d] < 4 * data.images.dim(d - 1) &&
           !engine
                ->CheckInputShape(input, DType::kFloat32,
                                  {1, shape[1], shape[2] < 0 ? shape[d] : shape[2], shape[d]})
                .ok()) {
      ++shape[d];
    }
  }
  shape[0] = 1;
  RETURN_IF_ERROR(engine->CheckInputShape(input, DType::kFloat32, shape));
  if (data.images.dim(1) > shape[2] || data.images.dim(2) > shape[3]) {
    return InvalidArgument("dataset images are " +
                           ShapeToString({data.images.dim(1), data.images.dim(2)}) +
                           ", larger than the model's input " + ShapeToString(shape));
  }
  const int64_t total =
      options.limit > 0 ? std::min<int64_t>(options.limit, data.images.dim(0)) : data.images.dim(0);
  const std::vector<std::string> labels = DefaultLabels(options);
  const bool tty = isatty(STDERR_FILENO);
  std::unique_ptr<PlanRunner> runner;
  if (!options.plan.empty()) {
    ASSIGN_OR_RETURN(runner, MakePlanRunner(options.model, options.plan, options.batch,
                                            static_cast<int>(shape[2]), 60));
    if (!runner->is_leader()) return runner->Follow();  // under mpirun: rank 0 evaluates
  }
  int64_t correct = 0, classes = 0;
  std::vector<std::vector<int64_t>> confusion;
  std::vector<float> all_logits;
  double seconds = 0;
  for (int64_t first = 0; first < total; first += options.batch) {
    const int64_t n = std::min<int64_t>(options.batch, total - first);
    Tensor batch = MakeBatch(data, first, n, shape);
    const auto start = std::chrono::steady_clock::now();
    auto run = runner ? runner->Run({{input, batch}}) : engine->Run({{input, batch}});
    if (!run.ok() && runner && runner->distributed()) runner->Abort(run.status().ToString());
    ASSIGN_OR_RETURN(std::vector<Tensor> out, std::move(run));
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const Tensor& logits = out[0];
    classes = logits.dim(1);
    if (confusion.empty()) confusion.assign(classes, std::vector<int64_t>(classes, 0));
    for (int64_t i = 0; i < n; ++i) {
      const float* row = logits.data<float>() + i * classes;
      const int64_t pred = std::max_element(row, row + classes) - row;
      const int64_t truth = data.labels.data<uint8_t>()[first + i];
      if (truth < classes) ++confusion[truth][pred];
      correct += pred == truth;
    }
    all_logits.insert(all_logits.end(), logits.data<float>(), logits.data<float>() + n * classes);
    Progress(first + n, total, tty);
  }
  std::printf("top-1 accuracy: %.2f%% (%lld / %lld)\n", 100.0 * correct / total,
              static_cast<long long>(correct), static_cast<long long>(total));
  PrintConfusion(confusion, labels);
  PrintSamples(all_logits, classes, data.labels, std::min<int64_t>(options.show, total), labels);
  std::printf("\nspeed: %.1f images/s (%lld images, batch %d, %.2f s in the engine, backend %s)\n",
              total / seconds, static_cast<long long>(total), options.batch, seconds,
              runner ? ("plan " + options.plan).c_str() : options.backend.c_str());
  if (!options.predictions.empty()) {
    RETURN_IF_ERROR(
        io::WriteNpy(options.predictions, Tensor::FromVector<float>({total, classes}, all_logits)));
    std::printf("wrote logits FP32[%lld,%lld] to %s\n", static_cast<long long>(total),
                static_cast<long long>(classes), options.predictions.c_str());
  }
  return Status::Ok();
}

}  // namespace

int RunEval(const EvalOptions& options) {
  const Status status = Eval(options);
  if (!status.ok()) {
    std::cerr << "parnet eval: " << status.ToString() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace parnet::cli
