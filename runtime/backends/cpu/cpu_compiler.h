// Internal to the CPU backend: the compiler that lowers a specialized graph to a list of steps
// (oneDNN primitives, reorders, reference fallbacks) over dnnl::memory objects.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "runtime/backends/backend.h"
#include "runtime/graph/ops.h"

namespace parnet::cpu {

// One step of a program: a oneDNN primitive with its arguments prepared for the C API (so a run
// builds no argument list), or a host function (reference fallbacks).
struct Step {
  dnnl::primitive primitive;
  std::vector<dnnl_exec_arg_t> args;        // point into memories the program keeps alive
  std::function<void(dnnl::stream&)> host;  // set instead of `primitive` for host steps
};

// Plain (row-major) descriptor of an FP32 tensor; a scalar becomes [1].
dnnl::memory::desc PlainDesc(const Shape& shape);
dnnl::memory::dims Dims(const Shape& shape);
// Attributes with scratchpad_mode::user: every primitive the compiler adds must be created with
// them (or a copy), so that AddPrimitive can give it an arena buffer as scratch memory.
dnnl::primitive_attr UserScratchpad();

// Thrown by Compiler::Value(); see there.
struct NonFp32Constant {
  std::string name;
  DType dtype;
};

class CpuProgram : public CompiledGraph {
 public:
  StatusOr<std::vector<Tensor>> Run(const std::map<std::string, Tensor>& inputs) override;
  void* input_buffer(const std::string& name) override;
  StatusOr<std::vector<Tensor>> RunOnInputBuffers() override;
  int64_t native_nodes() const override { return native_nodes_; }
  size_t workspace_bytes() const override { return arena_bytes_; }
  int64_t fallback_nodes() const override { return fallback_nodes_; }

 private:
  friend class Compiler;
  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{engine_};
  // Plain memories that the caller's input bytes are copied into on every run; owning them keeps
  // every handle stable, so views and steps can be built once at compile time.
  std::map<std::string, dnnl::memory> inputs_;
  struct Output {
    std::string name;
    Shape shape;
    dnnl::memory mem;  // plain
  };
  std::vector<Output> outputs_;
  std::vector<Step> steps_;
  // The memories the steps' C arguments point to (a dnnl_exec_arg_t holds no reference).
  std::vector<dnnl::memory> step_memories_;
  // Every named memory of the compile: views made at compile time (aliases, broadcast operands,
  // biases) point into these buffers by address, so they must live as long as the program.
  std::vector<dnnl::memory> keep_alive_;
  // One allocation for every intermediate value, planned from lifetimes (Compiler::PlanArena).
  std::unique_ptr<std::byte, decltype(&std::free)> arena_{nullptr, &std::free};
  size_t arena_bytes_ = 0;
  int64_t native_nodes_ = 0;
  int64_t fallback_nodes_ = 0;
};

class Compiler {
 public:
  Compiler(const Graph& graph, CpuProgram& program);
  Status Compile();

  // ---- used by the op lowerings (cpu_lowering.cc) ----
  const Graph& graph() const { return graph_; }
  const dnnl::engine& engine() const { return program_.engine_; }
  // The current memory of a runtime value, or a constant as plain memory. Memories are FP32: a
  // constant of another element type throws NonFp32Constant, which Lower() reports as an error
  // naming the node (Specialize() gives every op one element type, so only hand-built graphs
  // get there).
  dnnl::memory Value(const std::string& name);
  // The value in plain layout, adding a reorder step when its layout is not plain.
  dnnl::memory Plain(const std::string& name);
  // The value reordered to `desc` (a step when it differs); constants reorder once, now.
  dnnl::memory As(const std::string& name, const dnnl::memory::desc& desc);
  void Define(const std::string& name, dnnl::memory memory) { values_[name] = std::move(memory); }
  // A memory for an intermediate value, placed in the arena after all steps exist.
  dnnl::memory NewBuffer(const dnnl::memory::desc& desc);
  // A memory over the same bytes as `base` (reshapes, broadcast views, layout aliases).
  dnnl::memory ViewOf(const dnnl::memory& base, const dnnl::memory::desc& desc);
  void AddPrimitive(dnnl::primitive p, std::unordered_map<int, dnnl::memory> args);
  // How many nodes read `value` (graph outputs count as readers).
  int Uses(const std::string& value) const;
  // The nodes reading `value` (graph outputs not included).
  const std::vector<const Node*>& Consumers(const std::string& value) const;
  // Reorders `src` into a new memory of `desc` right now (weights at compile time).
  dnnl::memory ReorderNow(const dnnl::memory& src, const dnnl::memory::desc& desc);
  void MarkFused(const Node& node) { fused_.insert(&node); }
  // Whether `value` exists yet at this point of the compile (a constant, or already produced).
  bool IsDefined(const std::string& value) const;
  // Whether a step may overwrite `value` in place: an intermediate that owns its arena buffer (no
  // view or alias shares it), read by exactly one node and not a graph output.
  bool OverwritableInPlace(const std::string& value) const;

 private:
  Status LowerFallback(const Node& node);
  // Extends the lifetime of `m`'s buffer to the step being added now.
  void NoteUse(const dnnl::memory& m);
  void KeepUntilEnd(const dnnl::memory& m);
  // RESOURCE_EXHAUSTED when the arena cannot be allocated.
  Status PlanArena();

  struct ArenaBuffer {
    dnnl::memory mem;
    size_t bytes;
    int first, last;  // steps that write / last read it (inclusive)
    std::vector<dnnl::memory> views;
  };
  std::vector<ArenaBuffer> buffers_;
  std::map<dnnl_memory_t, size_t> buffer_of_;  // a buffer's memory or view -> its index
  Status Lower(const Node& node);

  const Graph& graph_;
  CpuProgram& program_;
  std::map<std::string, dnnl::memory> values_;
  std::map<std::string, dnnl::memory> plain_cache_;
  // Reordered copies of runtime values made by As(), reused by later readers wanting the layout.
  std::map<std::string, std::vector<dnnl::memory>> converted_;
  std::map<std::string, std::vector<const Node*>> consumers_;
  std::set<const Node*> fused_;
  // Convolutions held back until the node that reads them, so that node's other operand exists
  // and can be fused as a post-op; keyed by the convolution's output.
  std::map<std::string, const Node*> deferred_;
};

// Lowers one node to oneDNN. Returns false (and adds nothing) when oneDNN does not cover this
// node; the compiler then runs it on the reference kernel. May fuse and MarkFused() consumers.
StatusOr<bool> LowerToDnnl(Compiler& c, const Node& node);

}  // namespace parnet::cpu
