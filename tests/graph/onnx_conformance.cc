// Runs ONNX backend test cases (model.onnx + test_data_set_N/{input,output}_K.pb) through parnet's
// importer, Specialize() and the reference kernels, and compares with the stored outputs.
//
// Two uses:
//  * Conformance over ONNX's own test data (Debian's libonnx-testdata):
//      parnet_onnx_conformance --root /usr/share/libonnx-testdata/data --suite node ...
//        --expected expected.txt --min-passed N
//    Prints PASS/FAIL/SKIP per case (with the reason for SKIP and FAIL) and a summary. Fails when
//    a case listed in --expected does not pass, or fewer than --min-passed cases pass.
//  * Whole-model parity with PyTorch on cases written by scripts/parnet_reference.py:
//      parnet_onnx_conformance --case DIR --logit-tolerance 1e-4
//    Logits must agree within tolerance x max|logit| and have the same top-1 per batch item.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>

#include "runtime/backends/registry.h"
#include "runtime/graph/interpreter.h"
#include "runtime/graph/kernel_util.h"
#include "runtime/graph/onnx_import.h"
#include "runtime/graph/ops.h"
#include "runtime/graph/passes.h"
#include "runtime/graph/specialize.h"

namespace fs = std::filesystem;
using namespace parnet;

namespace {

enum class Outcome { kPass, kFail, kSkip };

struct Result {
  Outcome outcome;
  std::string reason;
};

struct Tolerance {
  double rtol = 1e-3;  // ONNX's backend test defaults
  double atol = 1e-7;
  double logit = -1;  // > 0: whole-model mode, relative to max |expected|
};

std::vector<fs::path> SortedMatching(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> out;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
  }
  // input_10 must follow input_9: sort by the number after the prefix.
  std::sort(out.begin(), out.end(), [&](const fs::path& a, const fs::path& b) {
    auto num = [&](const fs::path& p) {
      return std::stoi(p.stem().string().substr(prefix.size()));
    };
    return num(a) < num(b);
  });
  return out;
}

// Whether AsDouble() can read elements of `dtype`.
bool Comparable(DType dtype) {
  return dtype == DType::kFloat16 || dtype == DType::kBFloat16 ||
         ops::VisitNumeric(dtype, [](auto) {}).ok();
}

// Element i as a double. REQUIRES: Comparable(t.dtype()).
double AsDouble(const Tensor& t, int64_t i) {
  uint16_t bits = 0;
  if (t.dtype() == DType::kFloat16 || t.dtype() == DType::kBFloat16) {
    std::memcpy(&bits, static_cast<const std::byte*>(t.raw_data()) + 2 * i, 2);
    return t.dtype() == DType::kFloat16 ? HalfToFloat(bits) : BFloat16ToFloat(bits);
  }
  double v = 0;
  [[maybe_unused]] const Status s = ops::VisitNumeric(
      t.dtype(), [&](auto tag) { v = static_cast<double>(t.data<decltype(tag)>()[i]); });
  assert(s.ok());
  return v;
}

std::string Compare(const Tensor& got, const Tensor& want, const Tolerance& tol) {
  if (got.dtype() != want.dtype() || got.shape() != want.shape()) {
    return "got " + got.TypeString() + ", expected " + want.TypeString();
  }
  if (!Comparable(want.dtype())) {
    return "cannot compare " + want.TypeString() + " values: teach AsDouble() this element type";
  }
  const int64_t n = want.num_elements();
  double scale = 0;
  for (int64_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(AsDouble(want, i)));
  double worst = 0;
  int64_t worst_at = -1;
  for (int64_t i = 0; i < n; ++i) {
    const double g = AsDouble(got, i), w = AsDouble(want, i);
    if (std::isnan(g) && std::isnan(w)) continue;
    const double err = std::fabs(g - w);
    const double allowed = tol.logit > 0 ? tol.logit * scale : tol.atol + tol.rtol * std::fabs(w);
    if (!(err <= allowed) && (worst_at < 0 || err > worst)) {
      worst = err;
      worst_at = i;
    }
  }
  if (worst_at >= 0) {
    return "element " + std::to_string(worst_at) + ": got " +
           std::to_string(AsDouble(got, worst_at)) + ", expected " +
           std::to_string(AsDouble(want, worst_at)) + " (max |expected| " + std::to_string(scale) +
           ")";
  }
  if (tol.logit > 0 && want.rank() == 2) {
    const int64_t rows = want.dim(0), cols = want.dim(1);
    for (int64_t r = 0; r < rows; ++r) {
      const float* g = got.data<float>() + r * cols;
      const float* w = want.data<float>() + r * cols;
      const auto ga = std::max_element(g, g + cols) - g, wa = std::max_element(w, w + cols) - w;
      if (ga != wa) {
        return "batch item " + std::to_string(r) + ": top-1 class " + std::to_string(ga) +
               ", PyTorch says " + std::to_string(wa);
      }
    }
  }
  return "";
}

// True when every reader of `value` takes it as a weight (Conv/Gemm/BatchNormalization inputs
// after the first): in exported models those are initializers, so the cases bind them as such.
bool IsWeight(const Graph& g, const std::string& value) {
  bool any = false;
  for (const Node& n : g.nodes) {
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      if (n.inputs[i] != value) continue;
      if (i == 0 ||
          (n.op_type != "Conv" && n.op_type != "Gemm" && n.op_type != "BatchNormalization")) {
        return false;
      }
      any = true;
    }
  }
  return any;
}

bool HasLoadTimeOp(const Graph& g) {
  return std::any_of(g.nodes.begin(), g.nodes.end(),
                     [](const Node& n) { return FindOp(n.op_type)->kind == OpKind::kLoadTime; });
}

// ONNX's test data stores FP16 and BF16 tensors as UINT16 bit patterns (numpy has no bfloat16).
Tensor AsDeclared(const Tensor& t, DType declared) {
  if (t.dtype() == DType::kUInt16 &&
      (declared == DType::kBFloat16 || declared == DType::kFloat16)) {
    Tensor out(declared, t.shape());
    std::memcpy(out.raw_data(), t.raw_data(), t.num_bytes());
    return out;
  }
  return t;
}

Result Classify(const Status& s) {
  return {s.code() == StatusCode::kUnimplemented ? Outcome::kSkip : Outcome::kFail, s.ToString()};
}

struct NodeStats {
  int64_t native = 0;    // nodes the backend ran on its own kernels
  int64_t fallback = 0;  // nodes it ran on reference fallbacks
  int64_t folded = 0;    // BatchNormalizations folded into convolutions (--optimize)
  int64_t merged = 0;    // 3x3 + 1x1 convolution pairs re-parameterized (--optimize)
};
std::string backend;    // from --backend; empty or "reference" = the reference interpreter
bool optimize = false;  // from --optimize: run the graph passes after Specialize()
NodeStats stats;

// Runs one test data set; an empty string means it matched.
Result RunDataSet(const Graph& graph, const fs::path& set, const Tolerance& tol) {
  std::map<std::string, Tensor> inputs;
  const auto input_files = SortedMatching(set, "input_");
  for (size_t k = 0; k < input_files.size(); ++k) {
    auto t = LoadTensorProto(input_files[k].string());
    if (!t.ok()) return {Outcome::kFail, t.status().ToString()};
    const bool named =
        std::find(graph.inputs.begin(), graph.inputs.end(), t->name) != graph.inputs.end();
    if (!named && k >= graph.inputs.size()) {
      return {Outcome::kFail, input_files[k].string() + " is input " + std::to_string(k) +
                                  " but the model has " + std::to_string(graph.inputs.size()) +
                                  " runtime inputs; the test data does not belong to this model"};
    }
    const std::string name = named ? t->name : graph.inputs[k];
    inputs[name] = AsDeclared(t->tensor, graph.FindType(name)->dtype);
  }
  // Load-time-only ops never see runtime data, integer inputs of the node tests are shapes, pads
  // or axes, and weights are initializers in real models: bind those as constants, which is
  // exactly the path they take in an exported model. Everything else stays a runtime input.
  SpecializeOptions options;
  // Whole-model cases (tol.logit > 0) never fold their image input: that would hide the runtime
  // path.
  const bool fold_all = tol.logit <= 0 && HasLoadTimeOp(graph);
  for (const auto& [name, t] : inputs) {
    if (fold_all || t.dtype() == DType::kInt64 || t.dtype() == DType::kInt32 ||
        IsWeight(graph, name)) {
      options.constant_inputs[name] = t;
    } else {
      options.input_shapes[name] = t.shape();
    }
  }
  for (const auto& [name, t] : options.constant_inputs) inputs.erase(name);
  auto specialized = Specialize(graph, options);
  if (!specialized.ok()) return Classify(specialized.status());
  if (optimize) {
    auto report = Optimize(*specialized);
    if (!report.ok()) return {Outcome::kFail, report.status().ToString()};
    stats.folded += report->batchnorms_folded;
    stats.merged += report->conv_pairs_merged;
  }
  StatusOr<std::vector<Tensor>> outputs = Internal("not run");
  if (backend.empty() || backend == "reference") {
    outputs = RunSpecialized(*specialized, inputs);
  } else {
    auto be = CreateBackend(backend);
    if (!be.ok()) return {Outcome::kFail, be.status().ToString()};
    auto program = (*be)->Compile(*specialized);
    if (!program.ok()) return Classify(program.status());
    outputs = (*program)->Run(inputs);
    stats.native += (*program)->native_nodes();
    stats.fallback += (*program)->fallback_nodes();
  }
  if (!outputs.ok()) return Classify(outputs.status());
  const auto output_files = SortedMatching(set, "output_");
  if (output_files.size() != outputs->size()) {
    return {Outcome::kFail, "model has " + std::to_string(outputs->size()) + " outputs, data " +
                                std::to_string(output_files.size())};
  }
  for (size_t k = 0; k < output_files.size(); ++k) {
    auto want = LoadTensorProto(output_files[k].string());
    if (!want.ok()) return {Outcome::kFail, want.status().ToString()};
    const std::string diff = Compare((*outputs)[k], want->tensor, tol);
    if (!diff.empty()) {
      return {Outcome::kFail,
              set.filename().string() + " output " + std::to_string(k) + ": " + diff};
    }
  }
  return {Outcome::kPass, ""};
}

Result RunCase(const fs::path& dir, const Tolerance& tol) {
  auto graph = LoadOnnxModel((dir / "model.onnx").string());
  if (!graph.ok()) return Classify(graph.status());
  const auto sets = SortedMatching(dir, "test_data_set_");
  if (sets.empty()) return {Outcome::kSkip, "no test_data_set_* folder"};
  for (const fs::path& set : sets) {
    Result r = RunDataSet(*graph, set, tol);
    if (r.outcome != Outcome::kPass) return r;
  }
  return {Outcome::kPass, ""};
}

// The ids listed in `path` (none when `path` is empty); nullopt when the file cannot be read,
// which must not pass as "nothing expected".
std::optional<std::set<std::string>> ReadExpected(const std::string& path) {
  std::set<std::string> ids;
  if (path.empty()) return ids;
  std::ifstream in(path);
  if (!in) return std::nullopt;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') ids.insert(line);
  }
  return ids;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ONNX backend test runner for parnet's reference kernels"};
  std::string root, expected_path, write_expected;
  std::vector<std::string> suites, cases;
  int min_passed = 0;
  bool quiet = false;
  Tolerance tol;
  app.add_option("--root", root, "libonnx-testdata data folder");
  app.add_option("--suite", suites, "subfolder of --root (repeatable)");
  app.add_option("--case", cases, "one case folder (repeatable)");
  app.add_option("--expected", expected_path, "cases that must pass, one id per line");
  app.add_option("--min-passed", min_passed, "fail when fewer cases pass");
  app.add_option("--write-expected", write_expected, "write the passing ids to this file");
  app.add_option("--logit-tolerance", tol.logit, "whole-model mode: max error / max |logit|");
  app.add_flag("--quiet", quiet, "print only failures and the summary");
  app.add_option("--backend", backend, "reference (default) or cpu (oneDNN)");
  app.add_flag("--optimize", optimize, "run the graph passes (BN folding, re-parameterization)");
  CLI11_PARSE(app, argc, argv);

  std::vector<std::pair<std::string, fs::path>> todo;
  for (const std::string& suite : suites) {
    const fs::path dir = fs::path(root) / suite;
    if (!fs::is_directory(dir)) {
      std::cerr << "suite folder " << dir << " does not exist; install libonnx-testdata "
                << "(scripts/setup.sh)\n";
      return 1;
    }
    std::vector<fs::path> entries;
    for (const auto& e : fs::directory_iterator(dir)) entries.push_back(e.path());
    std::sort(entries.begin(), entries.end());
    for (const auto& p : entries) todo.emplace_back(suite + "/" + p.filename().string(), p);
  }
  for (const std::string& c : cases) todo.emplace_back(fs::path(c).filename().string(), c);

  const auto expected_ids = ReadExpected(expected_path);
  if (!expected_ids) {
    std::cerr << "--expected file '" << expected_path
              << "' cannot be read: " << std::strerror(errno) << "; check the path\n";
    return 1;
  }
  const std::set<std::string>& expected = *expected_ids;
  std::vector<std::string> passed_ids, regressions;
  int passed = 0, failed = 0, skipped = 0;
  for (const auto& [id, dir] : todo) {
    const NodeStats before = stats;
    const Result r = RunCase(dir, tol);
    const std::string split =
        backend.empty() || backend == "reference"
            ? ""
            : " [" + std::to_string(stats.native - before.native) + " native, " +
                  std::to_string(stats.fallback - before.fallback) + " fallback]";
    const char* tag = r.outcome == Outcome::kPass   ? "PASS"
                      : r.outcome == Outcome::kFail ? "FAIL"
                                                    : "SKIP";
    if (r.outcome == Outcome::kPass) {
      ++passed;
      passed_ids.push_back(id);
    } else {
      (r.outcome == Outcome::kFail ? failed : skipped)++;
      if (expected.count(id)) regressions.push_back(id + ": " + r.reason);
    }
    if (!quiet || r.outcome == Outcome::kFail) {
      std::cout << tag << " " << id << split << (r.reason.empty() ? "" : ": " + r.reason)
                << std::endl;
    }
  }
  if (!write_expected.empty()) {
    std::ofstream out(write_expected);
    out << "# ONNX backend cases that parnet's reference kernels pass; written by\n"
        << "# parnet_onnx_conformance --write-expected. Every case listed here must keep "
           "passing.\n";
    for (const auto& id : passed_ids) out << id << "\n";
  }
  if (!backend.empty() && backend != "reference") {
    std::cout << "backend " << backend << ": " << stats.native << " nodes on its own kernels, "
              << stats.fallback << " on reference fallbacks\n";
  }
  if (optimize) {
    std::cout << "graph passes: " << stats.folded << " BatchNormalizations folded, " << stats.merged
              << " conv pairs merged\n";
  }
  // A case that must pass but was not run at all (renamed, or gone from the installed test data)
  // would otherwise vanish silently from the guarantee.
  std::set<std::string> ran;
  for (const auto& [id, dir] : todo) ran.insert(id);
  for (const std::string& id : expected) {
    if (!ran.count(id)) {
      regressions.push_back(id +
                            ": listed as expected to pass but not among the cases run; "
                            "check the --suite/--root options, or remove it from the list "
                            "if ONNX dropped the case");
    }
  }
  std::cout << "onnx conformance: " << passed << " passed, " << failed << " failed, " << skipped
            << " skipped (" << todo.size() << " cases)\n";
  int rc = 0;
  for (const auto& r : regressions) {
    std::cout << "REGRESSION (listed in " << expected_path << "): " << r << "\n";
    rc = 1;
  }
  if (passed < min_passed) {
    std::cout << "only " << passed << " cases passed; the floor is " << min_passed << "\n";
    rc = 1;
  }
  if (!cases.empty() && passed != static_cast<int>(cases.size())) rc = 1;
  return rc;
}
