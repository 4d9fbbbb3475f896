// Engine: the public entry point for running a model.
//
//   auto engine = parnet::Engine::Load("model.onnx");          // StatusOr<unique_ptr<Engine>>
//   auto logits = (*engine)->Run({{"input", images}});          // StatusOr<vector<Tensor>>
//
// The Engine checks every request against the model (names, element types, ranks, batch >= 1,
// and the spatial sizes the graph's strides allow), specializes the model for each new set of
// input shapes, compiles it on its backend and caches the result, so that repeated shapes pay
// nothing but the run. Thread-safe: concurrent Run() calls are serialized. Run(), Prepare() and
// SpecializedFor() set the calling thread's OpenMP thread count to EngineOptions::threads (when
// > 0) and report running out of memory as RESOURCE_EXHAUSTED.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"
#include "runtime/graph/graph.h"

namespace parnet {

class Backend;
class CompiledGraph;

struct EngineOptions {
  std::string backend = "cpu";   // "cpu" (oneDNN), or "reference" (the naive oracle kernels)
  int threads = 0;               // OpenMP threads for the backend; 0 keeps the runtime's default
  size_t max_cached_shapes = 8;  // compiled programs kept (least recently used dropped)
  bool optimize = true;          // graph passes (passes.h): BN folding, re-parameterization
};

class Engine {
 public:
  static StatusOr<std::unique_ptr<Engine>> Load(const std::string& model_path,
                                                const EngineOptions& options = {});
  static StatusOr<std::unique_ptr<Engine>> Create(Graph model, const EngineOptions& options = {});
  ~Engine();

  // Runs the model on `inputs` (by input name); returns the outputs in model order.
  StatusOr<std::vector<Tensor>> Run(const std::map<std::string, Tensor>& inputs);
  // Writes input `name` to `dst`: `bytes` bytes of the model's declared element type, row-major.
  using InputWriter = std::function<void(const std::string& name, void* dst, size_t bytes)>;
  // Run() for inputs the caller assembles from parts (a batch joined from requests): `write`
  // puts each input, of the shape in `shapes` and the model's element type, straight into the
  // program's own input buffer where the backend keeps one (CompiledGraph::input_buffer), which
  // saves the copy Run() makes; otherwise into a fresh tensor. The same checks and errors as
  // Run(); `write` runs under the engine's lock, so it must not call into this engine.
  StatusOr<std::vector<Tensor>> RunWritten(const std::map<std::string, Shape>& shapes,
                                           const InputWriter& write);
  // Compiles for these input shapes now (warm-up), so the first Run() with them is fast.
  Status Prepare(const std::map<std::string, Shape>& shapes);

  const std::vector<std::string>& input_names() const { return model_.inputs; }
  const std::vector<std::string>& output_names() const { return model_.outputs; }
  // The declared type of an input (dimensions of -1 are dynamic).
  const TensorType& input_type(const std::string& name) const { return *model_.FindType(name); }
  // Why a shape would be refused, or OK; also used by Run().
  Status CheckInputShape(const std::string& name, DType dtype, const Shape& shape) const;
  const std::string& backend_name() const { return options_.backend; }
  // The backend's own description (library versions, instruction set).
  std::string backend_description() const;
  // The model specialized for `shapes`, as the last Prepare()/Run() with them compiled it.
  StatusOr<Graph> SpecializedFor(const std::map<std::string, Shape>& shapes);
  // Nodes of the last compiled program on the backend's own kernels / on reference fallbacks.
  std::pair<int64_t, int64_t> last_node_split() const;

 private:
  struct Compiled;
  Engine(Graph model, EngineOptions options, std::unique_ptr<Backend> backend);
  // REQUIRES: mu_ held.
  StatusOr<Compiled*> GetOrCompile(const std::map<std::string, Shape>& shapes);
  // The cached program for exactly these inputs' shapes, or null; allocates nothing. REQUIRES: mu_.
  Compiled* FindCompiled(const std::map<std::string, Tensor>& inputs);
  // Every model input present in `shapes`/`inputs` (by name), or why not.
  template <typename Value>
  Status CheckAllInputsGiven(const std::map<std::string, Value>& given) const;
  void ApplyThreadCount() const;
  // body(), with std::bad_alloc turned into RESOURCE_EXHAUSTED naming `what`. A template, not a
  // std::function, so that Run() allocates nothing for it.
  template <typename Body>
  static Status OutOfMemoryAsStatus(const char* what, const Body& body);

  Graph model_;
  // The multiples of (H, W) each input allows (input_rules.h), computed once: it walks the graph.
  std::map<std::string, std::pair<int64_t, int64_t>> spatial_multiples_;
  EngineOptions options_;
  std::unique_ptr<Backend> backend_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Compiled>> cache_;  // most recently used last; guarded by mu_
  std::pair<int64_t, int64_t> last_split_{0, 0};  // guarded by mu_
};

}  // namespace parnet
