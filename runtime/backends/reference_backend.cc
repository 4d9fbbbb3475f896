#include "runtime/backends/reference_backend.h"

#include "runtime/graph/interpreter.h"

namespace parnet {
namespace {

class ReferenceProgram : public CompiledGraph {
 public:
  explicit ReferenceProgram(Graph graph) : graph_(std::move(graph)) {}
  StatusOr<std::vector<Tensor>> Run(const std::map<std::string, Tensor>& inputs) override {
    return RunSpecialized(graph_, inputs);
  }
  int64_t native_nodes() const override { return static_cast<int64_t>(graph_.nodes.size()); }
  int64_t fallback_nodes() const override { return 0; }

 private:
  Graph graph_;
};

}  // namespace

StatusOr<std::unique_ptr<CompiledGraph>> ReferenceBackend::Compile(const Graph& graph) {
  return std::unique_ptr<CompiledGraph>(new ReferenceProgram(graph));
}

}  // namespace parnet
