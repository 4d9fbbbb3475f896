#include "runtime/exec/engine.h"

#include <omp.h>

#include <algorithm>
#include <limits>
#include <new>
#include <utility>

#include "runtime/backends/registry.h"
#include "runtime/core/log_internal.h"
#include "runtime/graph/input_rules.h"
#include "runtime/graph/onnx_import.h"
#include "runtime/graph/passes.h"
#include "runtime/graph/specialize.h"

namespace parnet {

struct Engine::Compiled {
  std::map<std::string, Shape> shapes;
  Graph graph;  // specialized for `shapes`
  std::unique_ptr<CompiledGraph> program;
};

Engine::Engine(Graph model, EngineOptions options, std::unique_ptr<Backend> backend)
    : model_(std::move(model)), options_(std::move(options)), backend_(std::move(backend)) {
  for (const std::string& name : model_.inputs) {
    const SpatialRule rule = SpatialRuleFor(model_, name);
    spatial_multiples_[name] = {rule.multiple_h, rule.multiple_w};
  }
}

Engine::~Engine() = default;

template <typename Body>
Status Engine::OutOfMemoryAsStatus(const char* what, const Body& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return ResourceExhausted(std::string("out of memory while ") + what +
                             "; use smaller inputs (batch or image size), fewer cached shapes "
                             "(max_cached_shapes), or a machine with more memory");
  }
}

StatusOr<std::unique_ptr<Engine>> Engine::Load(const std::string& model_path,
                                               const EngineOptions& options) {
  ASSIGN_OR_RETURN(Graph model, LoadOnnxModel(model_path));
  return Create(std::move(model), options);
}

StatusOr<std::unique_ptr<Engine>> Engine::Create(Graph model, const EngineOptions& options) {
  if (model.specialized) {
    return InvalidArgument("Engine::Create takes the imported model, not a specialized graph");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, CreateBackend(options.backend));
  if (options.threads < 0) {
    return InvalidArgument("threads must be >= 0 (0 keeps the OpenMP default), got " +
                           std::to_string(options.threads));
  }
  return std::unique_ptr<Engine>(new Engine(std::move(model), options, std::move(backend)));
}

Status Engine::CheckInputShape(const std::string& name, DType dtype, const Shape& shape) const {
  const TensorType* want = model_.FindType(name);
  if (want == nullptr ||
      std::find(model_.inputs.begin(), model_.inputs.end(), name) == model_.inputs.end()) {
    std::string names;
    for (const auto& n : model_.inputs) names += (names.empty() ? "'" : ", '") + n + "'";
    return InvalidArgument("'" + name + "' is not an input of the model; its inputs: " + names);
  }
  // Built only on failure: a request that passes allocates nothing here.
  const auto head = [&] {
    return "input '" + name + "': expected " + want->ToString() + " (? = any), got " +
           TypeToString(dtype, shape);
  };
  if (dtype != want->dtype)
    return InvalidArgument(head() + "; convert the data to " + DTypeName(want->dtype));
  if (shape.size() != want->shape.size()) {
    return InvalidArgument(head() + "; the rank must be " + std::to_string(want->shape.size()));
  }
  if (!shape.empty() && shape[0] < 1)
    return InvalidArgument(head() + "; the batch size must be >= 1");
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 1 || (want->shape[d] >= 0 && want->shape[d] != shape[d])) {
      return InvalidArgument(head() + "; dimension " + std::to_string(d) + " must be " +
                             (want->shape[d] >= 0 ? std::to_string(want->shape[d]) : ">= 1"));
    }
  }
  const auto [multiple_h, multiple_w] = spatial_multiples_.at(name);
  const int64_t mh = std::max<int64_t>(multiple_h, 1), mw = std::max<int64_t>(multiple_w, 1);
  if (shape.size() == 4 && (shape[2] % mh != 0 || shape[3] % mw != 0)) {
    std::string examples;
    if (mh <= std::numeric_limits<int64_t>::max() / 8 &&
        mw <= std::numeric_limits<int64_t>::max() / 8) {
      examples = ", e.g. " + std::to_string(mh * 7) + "x" + std::to_string(mw * 7) + " or " +
                 std::to_string(mh * 8) + "x" + std::to_string(mw * 8);
    }
    return InvalidArgument(head() + "; this model needs H divisible by " + std::to_string(mh) +
                           " and W divisible by " + std::to_string(mw) +
                           " (its strides multiply to that)" + examples);
  }
  return Status::Ok();
}

Engine::Compiled* Engine::FindCompiled(const std::map<std::string, Tensor>& inputs) {
  for (auto it = cache_.begin(); it != cache_.end(); ++it) {
    const auto& shapes = (*it)->shapes;
    // Both maps are ordered by name: compare them pairwise.
    const bool same =
        shapes.size() == inputs.size() &&
        std::equal(shapes.begin(), shapes.end(), inputs.begin(), [](const auto& a, const auto& b) {
          return a.first == b.first && a.second == b.second.shape();
        });
    if (same) {
      std::rotate(it, it + 1, cache_.end());  // most recently used last
      return cache_.back().get();
    }
  }
  return nullptr;
}

StatusOr<Engine::Compiled*> Engine::GetOrCompile(const std::map<std::string, Shape>& shapes) {
  for (auto it = cache_.begin(); it != cache_.end(); ++it) {
    if ((*it)->shapes == shapes) {
      std::rotate(it, it + 1, cache_.end());  // most recently used last
      return cache_.back().get();
    }
  }
  SpecializeOptions spec;
  spec.input_shapes = shapes;
  auto entry = std::make_unique<Compiled>();
  entry->shapes = shapes;
  ASSIGN_OR_RETURN(entry->graph, Specialize(model_, spec));
  if (options_.optimize) RETURN_IF_ERROR(Optimize(entry->graph).status());
  ASSIGN_OR_RETURN(entry->program, backend_->Compile(entry->graph));
  last_split_ = {entry->program->native_nodes(), entry->program->fallback_nodes()};
  Logger("exec")->info(
      "compiled for new input shapes on {}: {} nodes native, {} on fallback, {:.1f} MB workspace",
      backend_->name(), last_split_.first, last_split_.second,
      entry->program->workspace_bytes() / 1048576.0);
  if (cache_.size() >= std::max<size_t>(options_.max_cached_shapes, 1))
    cache_.erase(cache_.begin());
  cache_.push_back(std::move(entry));
  return cache_.back().get();
}

std::string Engine::backend_description() const { return backend_->Describe(); }

StatusOr<Graph> Engine::SpecializedFor(const std::map<std::string, Shape>& shapes) {
  std::lock_guard<std::mutex> lock(mu_);
  ApplyThreadCount();
  Graph graph;
  RETURN_IF_ERROR(OutOfMemoryAsStatus("specializing the model", [&]() -> Status {
    ASSIGN_OR_RETURN(Compiled * compiled, GetOrCompile(shapes));
    graph = compiled->graph;
    return Status::Ok();
  }));
  return graph;
}

Status Engine::Prepare(const std::map<std::string, Shape>& shapes) {
  for (const auto& [name, shape] : shapes) {
    // An unknown name has no declared type: CheckInputShape names it and the model's inputs.
    const TensorType* type = model_.FindType(name);
    RETURN_IF_ERROR(CheckInputShape(name, type ? type->dtype : DType::kUndefined, shape));
  }
  std::lock_guard<std::mutex> lock(mu_);
  ApplyThreadCount();
  return OutOfMemoryAsStatus("preparing the model",
                             [&]() -> Status { return GetOrCompile(shapes).status(); });
}

template <typename Value>
Status Engine::CheckAllInputsGiven(const std::map<std::string, Value>& given) const {
  for (const std::string& name : model_.inputs) {
    if (!given.count(name)) {
      return InvalidArgument("input '" + name + "' (" + input_type(name).ToString() +
                             ") is missing");
    }
  }
  return Status::Ok();
}

StatusOr<std::vector<Tensor>> Engine::RunWritten(const std::map<std::string, Shape>& shapes,
                                                 const InputWriter& write) {
  for (const auto& [name, shape] : shapes) {
    const TensorType* type = model_.FindType(name);
    RETURN_IF_ERROR(CheckInputShape(name, type ? type->dtype : DType::kFloat32, shape));
  }
  RETURN_IF_ERROR(CheckAllInputsGiven(shapes));
  std::lock_guard<std::mutex> lock(mu_);
  ApplyThreadCount();
  std::vector<Tensor> outputs;
  RETURN_IF_ERROR(OutOfMemoryAsStatus("running the model", [&]() -> Status {
    ASSIGN_OR_RETURN(Compiled * compiled, GetOrCompile(shapes));
    CompiledGraph& program = *compiled->program;
    bool in_place = true;
    for (const auto& [name, shape] : shapes) in_place = in_place && program.input_buffer(name);
    if (in_place) {
      for (const auto& [name, shape] : shapes) {
        write(name, program.input_buffer(name),
              static_cast<size_t>(NumElements(shape)) * DTypeSize(input_type(name).dtype));
      }
      ASSIGN_OR_RETURN(outputs, program.RunOnInputBuffers());
      return Status::Ok();
    }
    std::map<std::string, Tensor> inputs;
    for (const auto& [name, shape] : shapes) {
      Tensor t(input_type(name).dtype, shape);
      write(name, t.raw_data(), t.num_bytes());
      inputs.emplace(name, std::move(t));
    }
    ASSIGN_OR_RETURN(outputs, program.Run(inputs));
    return Status::Ok();
  }));
  return outputs;
}

StatusOr<std::vector<Tensor>> Engine::Run(const std::map<std::string, Tensor>& inputs) {
  for (const auto& [name, t] : inputs) RETURN_IF_ERROR(CheckInputShape(name, t.dtype(), t.shape()));
  RETURN_IF_ERROR(CheckAllInputsGiven(inputs));
  std::lock_guard<std::mutex> lock(mu_);
  ApplyThreadCount();
  // A repeated shape reaches the program without allocating; only a new one builds the key.
  Compiled* compiled = FindCompiled(inputs);
  std::vector<Tensor> outputs;
  RETURN_IF_ERROR(OutOfMemoryAsStatus("running the model", [&]() -> Status {
    if (compiled == nullptr) {
      std::map<std::string, Shape> shapes;
      for (const auto& [name, t] : inputs) shapes[name] = t.shape();
      ASSIGN_OR_RETURN(compiled, GetOrCompile(shapes));
    }
    ASSIGN_OR_RETURN(outputs, compiled->program->Run(inputs));
    return Status::Ok();
  }));
  return outputs;
}

std::pair<int64_t, int64_t> Engine::last_node_split() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_split_;
}

void Engine::ApplyThreadCount() const {
  // omp_set_num_threads() sets the calling thread's count only, and each request may arrive on
  // another thread: set it on this one, before anything here starts a parallel region.
  if (options_.threads > 0) omp_set_num_threads(options_.threads);
}

}  // namespace parnet
