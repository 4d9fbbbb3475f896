#include "runtime/backends/cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>

#include "runtime/backends/cpu/cpu_compiler.h"
#include "runtime/core/log_internal.h"

namespace parnet::cpu {

using dnnl::memory;

dnnl::memory::dims Dims(const Shape& shape) {
  if (shape.empty()) return {1};
  return dnnl::memory::dims(shape.begin(), shape.end());
}

memory::desc PlainDesc(const Shape& shape) {
  const memory::dims dims = Dims(shape);
  memory::dims strides(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * dims[i + 1];
  return memory::desc(dims, memory::data_type::f32, strides);
}

Compiler::Compiler(const Graph& graph, CpuProgram& program) : graph_(graph), program_(program) {
  for (const Node& node : graph_.nodes) {
    for (const std::string& in : node.inputs) {
      if (!in.empty()) consumers_[in].push_back(&node);
    }
  }
}

bool Compiler::IsDefined(const std::string& value) const {
  return values_.count(value) > 0 || graph_.IsConstant(value);
}

bool Compiler::OverwritableInPlace(const std::string& value) const {
  auto it = values_.find(value);
  if (it == values_.end() || graph_.IsConstant(value) || Uses(value) != 1 ||
      plain_cache_.count(value)) {
    return false;
  }
  auto buffer = buffer_of_.find(it->second.get());
  if (buffer == buffer_of_.end()) return false;  // a graph input or a constant's memory
  const ArenaBuffer& b = buffers_[buffer->second];
  return b.mem.get() == it->second.get() && b.views.empty();
}

int Compiler::Uses(const std::string& value) const {
  auto it = consumers_.find(value);
  int n = it == consumers_.end() ? 0 : static_cast<int>(it->second.size());
  for (const std::string& out : graph_.outputs) n += out == value;
  return n;
}

const std::vector<const Node*>& Compiler::Consumers(const std::string& value) const {
  static const std::vector<const Node*> kNone;
  auto it = consumers_.find(value);
  return it == consumers_.end() ? kNone : it->second;
}

memory Compiler::ReorderNow(const memory& src, const memory::desc& desc) {
  memory dst(desc, engine());
  dnnl::reorder(src, dst).execute(program_.stream_, const_cast<memory&>(src), dst);
  program_.stream_.wait();
  return dst;
}

memory Compiler::Value(const std::string& name) {
  auto it = values_.find(name);
  if (it != values_.end()) return it->second;
  // Constants become plain memories on first use; they live as long as the program.
  const Tensor& t = graph_.constants.at(name);
  if (t.dtype() != DType::kFloat32) throw NonFp32Constant{name, t.dtype()};
  memory m(PlainDesc(t.shape()), engine());
  if (t.num_bytes() > 0) std::memcpy(m.get_data_handle(), t.raw_data(), t.num_bytes());
  values_[name] = m;
  return m;
}

// True when two descriptors put every element at the same byte offset: both unblocked, same
// dims, and equal strides along every dimension longer than 1. ([N,C,1,1] in NHWC and in NCHW
// are such a pair: the SE gates of ParNet need no reorder between them.)
namespace {

// A channel-blocked descriptor (nChw16c, ...) of a tensor whose dims after the channels are all 1,
// with the channels a multiple of the block, keeps every value where plain layout does: the
// plain equivalent. Any other descriptor comes back unchanged.
memory::desc Unblocked(const memory::desc& d) {
  const dnnl_memory_desc_t& x = d.data;
  const auto& blocking = x.format_desc.blocking;
  if (x.format_kind != dnnl_blocked || blocking.inner_nblks != 1 || blocking.inner_idxs[0] != 1 ||
      x.ndims < 2 || x.dims[1] % blocking.inner_blks[0] != 0 || x.padded_dims[1] != x.dims[1] ||
      blocking.strides[0] != x.dims[1]) {
    return d;
  }
  for (int i = 2; i < x.ndims; ++i) {
    if (x.dims[i] != 1) return d;
  }
  memory::dims strides(x.ndims, 1);
  strides[0] = x.dims[1];
  memory::desc plain(memory::dims(x.dims, x.dims + x.ndims), d.data_type(), strides);
  plain.data.offset0 = x.offset0;
  return plain;
}

}  // namespace

bool SameBytes(const memory::desc& ua, const memory::desc& ub) {
  const memory::desc a = Unblocked(ua), b = Unblocked(ub);
  const dnnl_memory_desc_t &x = a.data, &y = b.data;
  if (x.format_kind != dnnl_blocked || y.format_kind != dnnl_blocked || x.ndims != y.ndims ||
      x.data_type != y.data_type || x.format_desc.blocking.inner_nblks != 0 ||
      y.format_desc.blocking.inner_nblks != 0 || x.offset0 != y.offset0) {
    return false;
  }
  for (int i = 0; i < x.ndims; ++i) {
    if (x.dims[i] != y.dims[i] || x.padded_dims[i] != y.padded_dims[i]) return false;
    if (x.dims[i] > 1 && x.format_desc.blocking.strides[i] != y.format_desc.blocking.strides[i]) {
      return false;
    }
  }
  return true;
}

memory Compiler::As(const std::string& name, const memory::desc& desc) {
  memory src = Value(name);
  if (src.get_desc() == desc) return src;
  if (SameBytes(src.get_desc(), desc)) return ViewOf(src, desc);
  for (const memory& done : converted_[name]) {
    if (done.get_desc() == desc) return done;  // another reader asked for this layout already
  }
  if (graph_.IsConstant(name)) return ReorderNow(src, desc);  // weights: once, at compile time
  memory dst = NewBuffer(desc);
  AddPrimitive(dnnl::reorder(dnnl::reorder::primitive_desc(src, dst, UserScratchpad())),
               {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}});
  converted_[name].push_back(dst);
  return dst;
}

memory Compiler::Plain(const std::string& name) {
  auto cached = plain_cache_.find(name);
  if (cached != plain_cache_.end()) return cached->second;
  memory m = As(name, PlainDesc(graph_.FindType(name)->shape));
  plain_cache_[name] = m;
  return m;
}

dnnl::primitive_attr UserScratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

void Compiler::AddPrimitive(dnnl::primitive p, std::unordered_map<int, memory> args) {
  // Every primitive is created with a user scratchpad (UserScratchpad()): its scratch memory is
  // an arena buffer that lives for this step only, instead of one oneDNN allocates per execution.
  const dnnl_memory_desc_t* scratch =
      dnnl_primitive_desc_query_md(p.get_primitive_desc(), dnnl_query_scratchpad_md, 0);
  if (scratch != nullptr && dnnl_memory_desc_get_size(scratch) > 0)
    args[DNNL_ARG_SCRATCHPAD] = NewBuffer(memory::desc(*scratch));
  Step step;
  for (const auto& [arg, m] : args) {
    NoteUse(m);
    step.args.push_back({arg, m.get()});
    program_.step_memories_.push_back(m);
  }
  step.primitive = std::move(p);
  program_.steps_.push_back(std::move(step));
}

// Runs a node on its reference kernel over plain-layout memories. The step holds the memories
// (not raw pointers): graph inputs are rebound to the caller's bytes on every run.
Status Compiler::LowerFallback(const Node& node) {
  std::vector<TensorType> in_types, out_types;
  std::vector<memory> in_mems, out_mems;
  std::vector<Tensor> in_consts;  // constants are read as they are (any element type)
  for (const std::string& in : node.inputs) {
    const bool constant = !in.empty() && graph_.IsConstant(in);
    in_types.push_back(in.empty() ? TensorType{} : *graph_.FindType(in));
    in_mems.push_back(in.empty() || constant ? memory() : Plain(in));
    in_consts.push_back(constant ? graph_.constants.at(in) : Tensor());
  }
  for (const std::string& out : node.outputs) {
    if (out.empty()) {  // an omitted optional output: the kernel gets no buffer for it
      out_types.emplace_back();
      out_mems.emplace_back();
      continue;
    }
    out_types.push_back(*graph_.FindType(out));
    memory m = NewBuffer(PlainDesc(out_types.back().shape));
    values_[out] = m;
    out_mems.push_back(m);
  }
  for (const memory& m : in_mems) NoteUse(m);
  for (const memory& m : out_mems) NoteUse(m);
  Step step;
  step.host = [node, def = FindOp(node.op_type), in_types, out_types, in_mems, in_consts, out_mems,
               opset = graph_.opset](dnnl::stream& s) {
    s.wait();  // the reference kernel reads what earlier primitives wrote
    std::vector<Tensor> ins, outs;
    OpContext ctx{node, opset, in_types, {}};
    for (size_t i = 0; i < in_mems.size(); ++i) {
      ins.push_back(in_mems[i] ? Tensor::Borrow(in_types[i].dtype, in_types[i].shape,
                                                in_mems[i].get_data_handle())
                               : in_consts[i]);
    }
    for (const Tensor& t : ins) ctx.in_values.push_back(t.defined() ? &t : nullptr);
    for (size_t i = 0; i < out_mems.size(); ++i) {
      outs.push_back(out_mems[i] ? Tensor::Borrow(out_types[i].dtype, out_types[i].shape,
                                                  out_mems[i].get_data_handle())
                                 : Tensor());
    }
    // Shapes were validated when the graph was specialized; a failure is a broken invariant.
    [[maybe_unused]] Status st = def->run(ctx, outs);
    assert(st.ok());
  };
  program_.steps_.push_back(std::move(step));
  ++program_.fallback_nodes_;
  Logger("cpu")->debug("{} runs on the reference kernel", node.Describe());
  return Status::Ok();
}

Status Compiler::Lower(const Node& node) {
  for (const std::string& name : node.inputs) {
    if (!name.empty() && !graph_.IsConstant(name) &&
        graph_.FindType(name)->dtype != DType::kFloat32) {
      return Unimplemented(node.Describe() + ": input '" + name + "' is " +
                           graph_.FindType(name)->ToString() +
                           "; the cpu backend runs FP32 "
                           "values at request time (integer shapes fold at load)");
    }
  }
  for (const std::string& name : node.outputs) {
    if (!name.empty() && NumElements(graph_.FindType(name)->shape) == 0) {
      return Unimplemented(node.Describe() + ": output '" + name + "' has no elements");
    }
  }
  try {
    ASSIGN_OR_RETURN(bool lowered, LowerToDnnl(*this, node));
    if (lowered) {
      ++program_.native_nodes_;
      return Status::Ok();
    }
  } catch (const NonFp32Constant& e) {
    return InvalidArgument(node.Describe() + ": constant '" + e.name + "' is " +
                           DTypeName(e.dtype) +
                           " but the node computes in FP32; give the node's "
                           "inputs one element type (as ONNX requires) and specialize the graph "
                           "with Specialize() before compiling it");
  } catch (const dnnl::error& e) {
    // oneDNN has no implementation for this combination: the reference kernel takes it.
    Logger("cpu")->debug("{}: oneDNN declined ({}); using the reference kernel", node.Describe(),
                         e.what());
  }
  return LowerFallback(node);
}

Status Compiler::Compile() {
  for (const std::string& name : graph_.inputs) {
    const TensorType& t = *graph_.FindType(name);
    if (t.dtype != DType::kFloat32) {
      return Unimplemented("input '" + name + "' is " + t.ToString() +
                           "; the cpu backend takes FP32 inputs");
    }
    if (NumElements(t.shape) == 0) {
      return Unimplemented("input '" + name + "' is " + t.ToString() + ": it has no elements");
    }
    memory m(PlainDesc(t.shape), engine());
    program_.inputs_[name] = m;
    values_[name] = m;
    plain_cache_[name] = m;
  }
  for (const Node& node : graph_.nodes) {
    if (fused_.count(&node)) continue;
    assert(!node.outputs.empty() && "the importer refuses nodes without a named output");
    const std::string& out = node.outputs[0];
    const auto& readers = Consumers(out);
    if (node.op_type == "Conv" && Uses(out) == 1 && readers.size() == 1 &&
        (readers[0]->op_type == "Add" || readers[0]->op_type == "Mul")) {
      deferred_[out] = &node;
      continue;
    }
    for (const std::string& in : node.inputs) {
      auto it = deferred_.find(in);
      if (it == deferred_.end()) continue;
      const Node* conv = it->second;
      deferred_.erase(it);
      RETURN_IF_ERROR(Lower(*conv));
    }
    if (!fused_.count(&node)) RETURN_IF_ERROR(Lower(node));
  }
  for (const auto& [out, conv] : deferred_) RETURN_IF_ERROR(Lower(*conv));
  for (const std::string& name : graph_.outputs) {
    if (graph_.FindType(name)->dtype != DType::kFloat32) {
      return Unimplemented("output '" + name + "' is " + graph_.FindType(name)->ToString() +
                           "; the cpu backend returns FP32 outputs");
    }
    program_.outputs_.push_back({name, graph_.FindType(name)->shape, Plain(name)});
    KeepUntilEnd(program_.outputs_.back().mem);
  }
  RETURN_IF_ERROR(PlanArena());
  for (const auto& [name, m] : values_) program_.keep_alive_.push_back(m);
  for (const auto& [name, m] : plain_cache_) program_.keep_alive_.push_back(m);
  return Status::Ok();
}

memory Compiler::NewBuffer(const memory::desc& desc) {
  memory m(desc, engine(), DNNL_MEMORY_NONE);
  const int step = static_cast<int>(program_.steps_.size());
  buffer_of_[m.get()] = buffers_.size();
  buffers_.push_back({m, desc.get_size(), step, step, {}});
  return m;
}

memory Compiler::ViewOf(const memory& base, const memory::desc& desc) {
  auto it = buffer_of_.find(base.get());
  if (it == buffer_of_.end()) return memory(desc, engine(), base.get_data_handle());
  memory view(desc, engine(), DNNL_MEMORY_NONE);
  buffer_of_[view.get()] = it->second;
  buffers_[it->second].views.push_back(view);
  return view;
}

void Compiler::NoteUse(const memory& m) {
  if (!m) return;
  auto it = buffer_of_.find(m.get());
  if (it == buffer_of_.end()) return;
  int& last = buffers_[it->second].last;
  last = std::max(last, static_cast<int>(program_.steps_.size()));
}

void Compiler::KeepUntilEnd(const memory& m) {
  auto it = buffer_of_.find(m.get());
  if (it != buffer_of_.end()) buffers_[it->second].last = std::numeric_limits<int>::max();
}

// Places every intermediate buffer in one allocation: largest first, each at the lowest offset
// that no buffer alive during an overlapping step range already occupies (lifetimes are the
// inclusive ranges of steps that write or read a buffer or any view of it).
Status Compiler::PlanArena() {
  constexpr size_t kAlign = 64;
  std::vector<size_t> order(buffers_.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return buffers_[a].bytes > buffers_[b].bytes; });
  std::vector<size_t> offset(buffers_.size(), 0);
  std::vector<size_t> placed;
  size_t total = 0;
  for (size_t i : order) {
    const ArenaBuffer& b = buffers_[i];
    std::vector<std::pair<size_t, size_t>> busy;  // [begin, end) of live neighbours
    for (size_t j : placed) {
      const ArenaBuffer& o = buffers_[j];
      if (o.first <= b.last && b.first <= o.last) busy.emplace_back(offset[j], offset[j] + o.bytes);
    }
    std::sort(busy.begin(), busy.end());
    size_t at = 0;
    for (const auto& [begin, end] : busy) {
      if (at + b.bytes <= begin) break;
      at = std::max(at, (end + kAlign - 1) / kAlign * kAlign);
    }
    offset[i] = at;
    placed.push_back(i);
    total = std::max(total, at + b.bytes);
  }
  if (total > kMaxTensorBytes) {
    return ResourceExhausted("the cpu backend needs " + std::to_string(total) +
                             " bytes for intermediate values, more than the " +
                             std::to_string(kMaxTensorBytes) + " it allocates; use smaller inputs");
  }
  // aligned_alloc wants a multiple of the alignment.
  const size_t rounded = std::max<size_t>((total + kAlign - 1) / kAlign * kAlign, kAlign);
  program_.arena_.reset(static_cast<std::byte*>(std::aligned_alloc(kAlign, rounded)));
  if (program_.arena_ == nullptr) {
    return ResourceExhausted("the cpu backend cannot allocate " + std::to_string(rounded) +
                             " bytes for intermediate values; free memory or use smaller inputs");
  }
  program_.arena_bytes_ = total;
  for (size_t i = 0; i < buffers_.size(); ++i) {
    void* handle = program_.arena_.get() + offset[i];
    buffers_[i].mem.set_data_handle(handle);
    for (memory& view : buffers_[i].views) view.set_data_handle(handle);
  }
  return Status::Ok();
}

StatusOr<std::vector<Tensor>> CpuProgram::Run(const std::map<std::string, Tensor>& inputs) {
  try {
    for (auto& [name, mem] : inputs_) {
      const Tensor& t = inputs.at(name);
      std::memcpy(mem.get_data_handle(), t.raw_data(), t.num_bytes());
    }
  } catch (const dnnl::error& e) {
    return Internal(std::string("oneDNN failed while copying the inputs: ") + e.what());
  }
  return RunOnInputBuffers();
}

void* CpuProgram::input_buffer(const std::string& name) {
  auto it = inputs_.find(name);
  return it == inputs_.end() ? nullptr : it->second.get_data_handle();
}

StatusOr<std::vector<Tensor>> CpuProgram::RunOnInputBuffers() {
  try {
    for (Step& step : steps_) {
      if (step.host) {
        step.host(stream_);
        continue;
      }
      // The C API with the argument list built at compile time: the C++ API's execute() would
      // build a std::vector of these on every call.
      const dnnl_status_t status =
          dnnl_primitive_execute(step.primitive.get(), stream_.get(),
                                 static_cast<int>(step.args.size()), step.args.data());
      if (status != dnnl_success) {
        return Internal("oneDNN failed while running step " +
                        std::to_string(&step - steps_.data()) + " of " +
                        std::to_string(steps_.size()) + ": dnnl_status_t " +
                        std::to_string(static_cast<int>(status)));
      }
    }
    stream_.wait();
  } catch (const dnnl::error& e) {
    return Internal(std::string("oneDNN failed while running: ") + e.what());
  }
  std::vector<Tensor> outputs;
  outputs.reserve(outputs_.size());
  for (const auto& out : outputs_) {
    Tensor t(DType::kFloat32, out.shape);
    if (t.num_bytes() > 0) std::memcpy(t.raw_data(), out.mem.get_data_handle(), t.num_bytes());
    outputs.push_back(std::move(t));
  }
  return outputs;
}

std::string CpuBackend::Describe() const {
  const dnnl::version_t* v = dnnl::version();
  std::string isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core_amx:
      isa = "avx512_core_amx";
      break;
    case dnnl::cpu_isa::avx512_core_bf16:
      isa = "avx512_core_bf16";
      break;
    case dnnl::cpu_isa::avx512_core_vnni:
      isa = "avx512_core_vnni";
      break;
    case dnnl::cpu_isa::avx512_core:
      isa = "avx512_core";
      break;
    case dnnl::cpu_isa::avx2_vnni:
      isa = "avx2_vnni";
      break;
    case dnnl::cpu_isa::avx2:
      isa = "avx2";
      break;
    default:
      isa = "other";
      break;
  }
  return "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch) + " (" + v->hash + "), cpu runtime " +
         (v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other") + ", ISA " + isa;
}

StatusOr<std::unique_ptr<CompiledGraph>> CpuBackend::Compile(const Graph& graph) {
  assert(graph.specialized);
  auto program = std::make_unique<CpuProgram>();
  Compiler compiler(graph, *program);
  try {
    RETURN_IF_ERROR(compiler.Compile());
  } catch (const dnnl::error& e) {
    return Internal(std::string("oneDNN failed while compiling: ") + e.what());
  }
  return std::unique_ptr<CompiledGraph>(std::move(program));
}

}  // namespace parnet::cpu
