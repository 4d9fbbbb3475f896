// ServedModel's executions: where an instance computes (OnInstanceThreads), how a batch's inputs
// reach its engine, and how the outputs are split back per request. The queue and the batcher
// are in served_model.cc.
#include <algorithm>
#include <cstring>

#include "runtime/serve/datatype.h"
#include "runtime/serve/execution_slots.h"
#include "runtime/serve/served_model.h"

namespace parnet::serve {
namespace {

// Rows [begin, begin + count) of a batch-first tensor, as a new tensor.
Tensor SliceRows(const Tensor& t, int64_t begin, int64_t count) {
  Shape shape = t.shape();
  const size_t row_bytes = t.num_bytes() / static_cast<size_t>(shape[0]);
  shape[0] = count;
  Tensor out(t.dtype(), shape);
  std::memcpy(out.raw_data(), static_cast<const std::byte*>(t.raw_data()) + begin * row_bytes,
              static_cast<size_t>(count) * row_bytes);
  return out;
}

}  // namespace

void ServedModel::OnInstanceThreads(size_t instance, const std::function<void()>& fn) {
  if (threads_[instance] == 1) {
    fn();  // no OpenMP pool: any thread will do (a bound instance's worker is on its cores)
  } else {
    ExecutionSlots::Shared().Run(slots_[instance], fn);
  }
}

StatusOr<std::vector<Tensor>> ServedModel::RunInstance(
    size_t instance, const std::map<std::string, Tensor>& inputs) {
  StatusOr<std::vector<Tensor>> outputs = Internal("the execution slot did not run");
  OnInstanceThreads(instance, [&] { outputs = engines_[instance]->Run(inputs); });
  return outputs;
}

Status ServedModel::PrepareInstance(size_t instance, const std::map<std::string, Shape>& shapes) {
  Status status = Internal("the execution slot did not run");
  const bool bound_here = threads_[instance] == 1 && !cores_[instance].empty();
  if (!bound_here) {
    OnInstanceThreads(instance, [&] { status = engines_[instance]->Prepare(shapes); });
    return status;
  }
  // A single-threaded bound instance warms up on the calling thread, moved to its cores for the
  // while: the weights and buffers it writes first then sit in memory near those cores.
  const std::vector<int> home = AllowedCores();
  RETURN_IF_ERROR(BindThisThread(cores_[instance]));
  status = engines_[instance]->Prepare(shapes);
  RETURN_IF_ERROR(BindThisThread(home));
  return status;
}

bool ServedModel::RunsAsSent(const std::vector<Pending>& batch, int64_t padded) const {
  if (batch.size() != 1) return false;
  for (const auto& [name, t] : batch.front().request.inputs) {
    if (!(t.rank() == 0 || t.dim(0) == padded || config_.max_batch_size() == 0)) return false;
  }
  return true;
}

StatusOr<std::vector<Tensor>> ServedModel::RunJoined(size_t instance,
                                                     const std::vector<Pending>& batch,
                                                     int64_t padded, uint64_t* join_ns) {
  std::map<std::string, Shape> shapes;
  for (const auto& [name, first] : batch.front().request.inputs) {
    Shape shape = first.shape();
    shape[0] = padded;
    shapes[name] = shape;
  }
  // Each request's rows go once, straight into the engine's input buffer: joining into a
  // buffer of our own first cost a second copy of the whole batch (4.7 MB for 8 images of
  // 224x224) on every execution.
  auto write = [&](const std::string& name, void* dst, size_t bytes) {
    const Clock::time_point start = Clock::now();
    auto* out = static_cast<std::byte*>(dst);
    auto* const end = out + bytes;
    for (const auto& p : batch) {
      const Tensor part = ConvertTo(p.request.inputs.at(name), model_dtypes_.at(name));
      std::memcpy(out, part.raw_data(), part.num_bytes());
      out += part.num_bytes();
    }
    std::memset(out, 0, static_cast<size_t>(end - out));  // the padding rows
    *join_ns += Nanos(Clock::now() - start);
  };
  StatusOr<std::vector<Tensor>> outputs = Internal("the execution slot did not run");
  OnInstanceThreads(instance, [&] { outputs = engines_[instance]->RunWritten(shapes, write); });
  return outputs;
}

void ServedModel::Execute(size_t instance, std::vector<Pending> batch) {
  StatusOr<std::vector<InferResult>> results = Internal("the batch did not run");
  try {
    results = RunBatch(instance, batch);
  } catch (const std::bad_alloc&) {
    results = Status(StatusCode::kResourceExhausted,
                     "out of memory running a batch of " + std::to_string(batch.size()) +
                         " requests on model '" + name_ +
                         "'; send smaller requests or lower max_batch_size");
  } catch (const std::exception& e) {
    results = Internal("running a batch on model '" + name_ + "': " + e.what());
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (results.ok()) {
      Finish(batch[i], std::move((*results)[i]));
    } else {
      Finish(batch[i], results.status());
    }
  }
}

StatusOr<std::vector<InferResult>> ServedModel::RunBatch(size_t instance,
                                                         const std::vector<Pending>& batch) {
  const Clock::time_point start = Clock::now();
  int64_t items = 0;
  for (const auto& p : batch) {
    stats_.RecordQueue(Nanos(start - p.request.arrival));
    items += p.batch;
  }
  int64_t padded = items;
  if (config_.max_batch_size() > 0) {
    padded = *std::lower_bound(buckets_.begin(), buckets_.end(), items);
  }
  // compute input: converting a request's types, or joining a batch; compute infer: the rest.
  uint64_t input_ns = 0;
  StatusOr<std::vector<Tensor>> ran_outputs = Internal("the batch did not run");
  if (RunsAsSent(batch, padded)) {
    std::map<std::string, Tensor> inputs;
    for (const auto& [name, t] : batch.front().request.inputs) {
      inputs[name] = ConvertTo(t, model_dtypes_.at(name));  // no copy when the types agree
    }
    input_ns = Nanos(Clock::now() - start);
    ran_outputs = RunInstance(instance, inputs);
  } else {
    ran_outputs = RunJoined(instance, batch, padded, &input_ns);
  }
  ASSIGN_OR_RETURN(std::vector<Tensor> outputs, std::move(ran_outputs));
  const Clock::time_point ran = Clock::now();
  const uint64_t run_ns = Nanos(ran - start);
  std::vector<InferResult> results(batch.size());
  const bool batched = config_.max_batch_size() > 0;
  for (const auto& out_config : config_.output()) {
    const auto& names = engines_[instance]->output_names();
    const size_t index = std::find(names.begin(), names.end(), out_config.name()) - names.begin();
    const Tensor& out = outputs[index];
    if (batched && (out.rank() < 1 || out.dim(0) != padded)) {
      return Internal("output '" + out_config.name() + "' has shape " + ShapeToString(out.shape()) +
                      ", not batch-first with " + std::to_string(padded) +
                      " rows; the model cannot be batched: set "
                      "max_batch_size: 0");
    }
    const DType wire = DTypeFromConfig(out_config.data_type());
    int64_t row = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      const bool whole = !batched || (batch.size() == 1 && batch[i].batch == padded);
      Tensor part = whole ? out : SliceRows(out, row, batch[i].batch);
      results[i].outputs.emplace_back(out_config.name(), ConvertTo(part, wire));
      row += batch[i].batch;
    }
  }
  stats_.RecordExecution(static_cast<uint64_t>(items), static_cast<uint64_t>(padded), input_ns,
                         run_ns - std::min(input_ns, run_ns), Nanos(Clock::now() - ran));
  return results;
}

}  // namespace parnet::serve
