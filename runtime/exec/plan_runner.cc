#include "runtime/exec/plan_runner.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "partitioner/cluster.h"
#include "partitioner/plan.h"
#include "partitioner/stages.h"
#include "runtime/core/cpu_affinity.h"
#include "runtime/exec/engine.h"
#include "runtime/graph/onnx_import.h"
#include "runtime/graph/specialize.h"

namespace parnet {
namespace {

using Clock = std::chrono::system_clock;  // comparable across the processes (and hosts) of a job

double MsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

struct Compiled {
  Graph specialized;
  std::map<int, std::unique_ptr<Engine>> engines;  // the stages this process runs
};

struct Job {
  int64_t id = -1;  // -1: stop the device thread
  std::shared_ptr<Compiled> compiled;
  std::map<std::string, Tensor> inputs;  // device 0 only
  Clock::time_point submitted;
};

struct Result {
  Status status;
  std::vector<Tensor> outputs;  // device 0 only
  std::vector<StageTrace> timings;
};

class JobQueue {
 public:
  void Push(Job job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
  }
  Job Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !jobs_.empty(); });
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    return job;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
};

StatusOr<Shape> ParseDims(const std::string& text) {
  Shape shape;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    try {
      shape.push_back(std::stoll(text.substr(start, end - start)));
    } catch (const std::exception&) {
      return InvalidArgument("plan input shape '" + text + "' is not N,C,H,W");
    }
    start = end + 1;
  }
  return shape;
}

}  // namespace

struct PlanRunner::Impl {
  Graph model;
  Plan plan;
  std::map<std::string, Shape> plan_shapes;  // the plan's input_shapes, parsed
  PlanRunnerOptions options;
  std::unique_ptr<transport::Transport> transport;
  std::vector<int> local;            // plan devices run by this process
  std::map<std::string, int> tags;   // every value a transfer carries -> its message tag
  std::map<std::string, int> node_index_cache;
  std::map<std::string, std::shared_ptr<Compiled>> cache;  // by input shapes
  // A plan that puts every stage on device 0 moves nothing: the whole model then runs as one
  // Engine, so stage boundaries cost no layout reorders and fusions may cross them.
  std::unique_ptr<Engine> whole;
  // Per device, per value: the last receive buffer (each touched only by its device's thread).
  std::map<int, std::map<std::string, Tensor>> receive_buffers;
  std::vector<std::unique_ptr<JobQueue>> queues;            // one per local device
  std::vector<std::thread> threads;
  std::mutex compile_mu;  // guards `cache`; held while a new shape compiles
  std::mutex mu;          // guards what follows
  std::condition_variable done;
  std::set<int64_t> pending;  // submitted, not yet collected
  // In-process, a failed request may leave its values in the devices' mailboxes, where the next
  // request would take them for its own: after a failure the runner refuses new requests.
  Status broken;
  std::map<int64_t, std::map<int, Result>> results;  // request -> device -> result
  std::map<int64_t, std::vector<StageTrace>> history;
  int64_t next_id = 0;
  bool stopped = false;

  bool mpi() const { return transport->self() >= 0; }
  bool leader() const { return !mpi() || transport->self() == 0; }
  std::string DeviceName(int d) const { return plan.cluster().devices(d).name(); }

  // Loads the model, checks the plan against it and the job, compiles the plan's own shapes and
  // starts the device threads.
  Status Start(const std::string& model_path);
  StatusOr<std::shared_ptr<Compiled>> Compile(const std::map<std::string, Shape>& shapes);
  Result Execute(int device, const Job& job);
  void DeviceLoop(size_t slot);
  void Pin(int device) const;
  Status WaitFor(transport::Pending& pending, int device, const std::string& stage,
                 const std::string& value, int from);
};

StatusOr<std::shared_ptr<Compiled>> PlanRunner::Impl::Compile(
    const std::map<std::string, Shape>& shapes) {
  std::string key;
  for (const auto& [name, shape] : shapes) key += name + "=" + TypeToString(DType::kFloat32, shape);
  std::lock_guard<std::mutex> lock(compile_mu);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  auto compiled = std::make_shared<Compiled>();
  if (whole) {
    RETURN_IF_ERROR(whole->Prepare(shapes));
    cache[key] = compiled;
    return compiled;
  }
  SpecializeOptions spec;
  spec.input_shapes = shapes;
  ASSIGN_OR_RETURN(compiled->specialized, Specialize(model, spec));
  std::map<std::string, int> index;
  for (size_t i = 0; i < compiled->specialized.nodes.size(); ++i) {
    index[compiled->specialized.nodes[i].name] = static_cast<int>(i);
  }
  for (int d : local) {
    const Device& device = plan.cluster().devices(d);
    if (device.kind() != Device::CPU && !plan.devices(d).runs().empty()) {
      return Unimplemented("device '" + device.name() + "' is a GPU; this build of parnet runs " +
                           "plans on CPU devices only");
    }
    for (const auto& run : plan.devices(d).runs()) {
      if (compiled->engines.count(run.stage())) continue;
      const Stage& stage = plan.stages(run.stage());
      partition::StageInfo info;
      info.name = stage.name();
      for (const std::string& node : stage.nodes()) {
        auto it = index.find(node);
        if (it == index.end()) {
          return FailedPrecondition("the plan's node '" + node + "' is not in the model at " + key);
        }
        info.nodes.push_back(it->second);
      }
      info.inputs.assign(stage.inputs().begin(), stage.inputs().end());
      info.outputs.assign(stage.outputs().begin(), stage.outputs().end());
      EngineOptions engine_options;
      engine_options.backend = options.backend;
      engine_options.threads = std::max(1, device.cores_size());
      Graph sub = partition::ExtractStage(compiled->specialized, info);
      auto engine = Engine::Create(std::move(sub), engine_options);
      if (!engine.ok()) {
        return engine.status().WithContext("stage '" + stage.name() + "' on device '" +
                                           device.name() + "'");
      }
      compiled->engines[run.stage()] = std::move(*engine);
    }
  }
  cache[key] = compiled;
  return compiled;
}

void PlanRunner::Impl::Pin(int device) const {
  const Device& d = plan.cluster().devices(device);
  if (!options.pin_threads || d.cores().empty()) return;
  // This thread; its OpenMP team inherits the mask. Run() checked the cores beforehand.
  (void)BindThisThread({d.cores().begin(), d.cores().end()});
}

Status PlanRunner::Impl::WaitFor(transport::Pending& pending, int device, const std::string& stage,
                                 const std::string& value, int from) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1e3));
  Status status = transport->Wait(pending, deadline);
  if (status.ok()) return status;
 char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%g", options.timeout_s);
  const std::string message =
      "device '" + DeviceName(device) + "' (stage '" + stage + "') waited " + seconds +
      " s for '" + value + "' from device '" +
      DeviceName(from) + "'" + (mpi() ? " (rank " + std::to_string(from) + ")" : "") +
      ", which failed or is gone: " + status.message();
  if (mpi()) transport->Abort(message);
  return Status(StatusCode::kDeadlineExceeded, message);
}

Result PlanRunner::Impl::Execute(int d, const Job& job) {
  Result result;
  if (whole) {
    StageTrace timing{plan.stages_size() - 1, d, MsBetween(job.submitted, Clock::now()), 0, 0};
    auto outputs = whole->Run(job.inputs);
    if (!outputs.ok()) {
      result.status = outputs.status();
      return result;
    }
    timing.finish_ms = MsBetween(job.submitted, Clock::now());
    result.timings.push_back(timing);  // the whole model, booked on the last stage
    result.outputs = std::move(*outputs);
    return result;
  }
  const Graph& graph = job.compiled->specialized;
  std::map<std::string, Tensor> values = job.inputs;
  std::vector<std::unique_ptr<transport::Pending>> sends;
  auto send = [&](int to, const std::string& value) -> Status {
    ASSIGN_OR_RETURN(auto pending, transport->Send(d, to, tags.at(value), values.at(value)));
    sends.push_back(std::move(pending));
    return Status::Ok();
  };
  struct Incoming {
    int from;
    Tensor buffer;
    std::unique_ptr<transport::Pending> pending;
  };
  std::map<std::string, Incoming> incoming;
  auto fail = [&](Status status) {
    // Under MPI, end the job before this frame frees buffers that posted requests still use.
    if (mpi()) {
      transport->Abort("device '" + DeviceName(d) + "' (rank " + std::to_string(d) + "): " +
                       status.message());
    }
    result.status = status;
    return result;
  };
  // Post every receive of this request now, and send the request's inputs where they go.
  for (const Transfer& t : plan.transfers()) {
    const int from = partition::DeviceIndex(plan.cluster(), t.from_device());
    const int to = partition::DeviceIndex(plan.cluster(), t.to_device());
    for (const std::string& value : t.values()) {
      if (to == d) {
        const TensorType* type = graph.FindType(value);
        // Receive buffers are reused across requests when nothing else holds the last one (a
        // value returned to the caller, or still read by a stage, is not overwritten).
        Tensor& kept = receive_buffers.at(d)[value];
        kept.ReuseOrAllocate(type->dtype, type->shape);
        // Map nodes do not move: the transport may keep a pointer to the buffer.
        Incoming& in = incoming.emplace(value, Incoming{from, kept, nullptr}).first->second;
        auto pending = transport->Recv(from, d, tags.at(value), &in.buffer);
        if (!pending.ok()) return fail(pending.status());
        in.pending = std::move(*pending);
      }
      if (from == d && t.stage() < 0) {
        if (Status s = send(to, value); !s.ok()) return fail(s);
      }
    }
  }
  auto need = [&](const std::string& value, const std::string& stage) -> Status {
    if (values.count(value)) return Status::Ok();
    auto it = incoming.find(value);
    if (it == incoming.end()) {
      return Internal("device '" + DeviceName(d) + "' needs '" + value + "' for stage '" + stage +
                      "' and no transfer brings it: the plan is invalid");
    }
    RETURN_IF_ERROR(WaitFor(*it->second.pending, d, stage, value, it->second.from));
    values[value] = it->second.buffer;
    return Status::Ok();
  };
  for (const auto& run : plan.devices(d).runs()) {
    const Stage& stage = plan.stages(run.stage());
    StageTrace timing{run.stage(), d, MsBetween(job.submitted, Clock::now()), 0, 0};
    std::map<std::string, Tensor> inputs;
    for (const std::string& value : stage.inputs()) {
      if (Status s = need(value, stage.name()); !s.ok()) return fail(s);
      inputs[value] = values.at(value);
    }
    const double ready = MsBetween(job.submitted, Clock::now());
    timing.wait_ms = ready - timing.start_ms;
    timing.start_ms = ready;
    auto outputs = job.compiled->engines.at(run.stage())->Run(inputs);
    if (!outputs.ok()) {
      return fail(outputs.status().WithContext("stage '" + stage.name() + "' on device '" +
                                               DeviceName(d) + "'"));
    }
    timing.finish_ms = MsBetween(job.submitted, Clock::now());
    result.timings.push_back(timing);
    for (int i = 0; i < stage.outputs_size(); ++i) values[stage.outputs(i)] = (*outputs)[i];
    for (const Transfer& t : plan.transfers()) {
      if (t.stage() != run.stage() || t.from_device() != DeviceName(d)) continue;
      const int to = partition::DeviceIndex(plan.cluster(), t.to_device());
      for (const std::string& value : t.values()) {
        if (Status s = send(to, value); !s.ok()) return fail(s);
      }
    }
  }
  if (d == 0) {
    for (const std::string& out : graph.outputs) {
      if (Status s = need(out, "reply"); !s.ok()) return fail(s);
      result.outputs.push_back(values.at(out));
    }
  }
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1e3));
  for (auto& pending : sends) {
    if (Status s = transport->Wait(*pending, deadline); !s.ok()) {
      if (mpi()) transport->Abort("device '" + DeviceName(d) + "': " + s.message());
      return fail(s);
    }
  }
  return result;
}

void PlanRunner::Impl::DeviceLoop(size_t slot) {
  const int d = local[slot];
  Pin(d);
  while (true) {
    Job job = queues[slot]->Pop();
    if (job.id < 0) return;
    Result result = Execute(d, job);
    if (mpi() && !result.status.ok()) {  // the others would wait for this rank: end the job
      transport->Abort("device '" + DeviceName(d) + "' (rank " + std::to_string(d) + "): " +
                       result.status.message());
    }
    {
      std::lock_guard<std::mutex> lock(mu);
      auto& timings = history[job.id];
      timings.insert(timings.end(), result.timings.begin(), result.timings.end());
      results[job.id][d] = std::move(result);
    }
    done.notify_all();
  }
}

PlanRunner::PlanRunner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

PlanRunner::~PlanRunner() {
  if (!impl_->stopped && impl_->leader()) (void)Stop();
  for (auto& queue : impl_->queues) queue->Push(Job{});
  for (auto& thread : impl_->threads) {
    if (thread.joinable()) thread.join();
  }
}

bool PlanRunner::is_leader() const { return impl_->leader(); }
bool PlanRunner::distributed() const { return impl_->mpi(); }
void PlanRunner::Abort(const std::string& why) { impl_->transport->Abort(why); }
const Plan& PlanRunner::plan() const { return impl_->plan; }
const std::map<std::string, Shape>& PlanRunner::input_shapes() const {
  return impl_->plan_shapes;
}

StatusOr<std::unique_ptr<PlanRunner>> PlanRunner::Create(
    const std::string& model_path, const Plan& plan,
    std::unique_ptr<transport::Transport> transport, const PlanRunnerOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->plan = plan;
  impl->options = options;
  impl->transport = std::move(transport);
  Status status = impl->Start(model_path);
  // Under MPI, a rank that cannot start would leave the others waiting for it: end the job.
  if (!status.ok() && impl->mpi()) impl->transport->Abort(status.ToString());
  RETURN_IF_ERROR(status);
  return std::unique_ptr<PlanRunner>(new PlanRunner(std::move(impl)));
}

Status PlanRunner::Impl::Start(const std::string& model_path) {
  Impl& self = *this;
  ASSIGN_OR_RETURN(self.model, LoadOnnxModel(model_path));
  ASSIGN_OR_RETURN(std::string sha, partition::Sha256OfFile(model_path));
  RETURN_IF_ERROR(partition::CheckPlanFor(plan, sha, plan.cluster()));
  if (plan.input_shapes().empty()) {
    return InvalidArgument("the plan names no input shapes; write it with `parnet partition`");
  }
  for (const auto& [name, dims] : plan.input_shapes()) {
    ASSIGN_OR_RETURN(self.plan_shapes[name], ParseDims(dims));
  }
  SpecializeOptions spec;
  spec.input_shapes = self.plan_shapes;
  ASSIGN_OR_RETURN(Graph specialized, Specialize(self.model, spec));
  RETURN_IF_ERROR(partition::ValidatePlan(plan, specialized));

  const int devices = plan.cluster().devices_size();
  if (self.mpi()) {
    if (self.transport->size() != devices) {
      return FailedPrecondition("the plan has " + std::to_string(devices) + " devices but the " +
                                "job has " + std::to_string(self.transport->size()) +
                                " ranks; run `mpirun -np " + std::to_string(devices) +
                                "`, or leave out --plan so parnet partitions for this job");
    }
    self.local = {self.transport->self()};
  } else {
    for (int d = 0; d < devices; ++d) self.local.push_back(d);
  }
  const std::vector<int> allowed = AllowedCores();
  for (int d : self.local) {
    for (int core : plan.cluster().devices(d).cores()) {
      if (options.pin_threads && !std::binary_search(allowed.begin(), allowed.end(), core)) {
        const std::string have = CpuListToString(allowed);
        return FailedPrecondition(
            "device '" + self.DeviceName(d) + "' of the plan runs on core " +
            std::to_string(core) + " but this process may use only cores " + have +
            (self.mpi() ? "; start mpirun with --bind-to none (or a rankfile giving rank " +
                              std::to_string(d) + " those cores)"
                        : "; partition for the cores this process has"));
      }
    }
  }
  for (const Transfer& t : plan.transfers()) {
    for (const std::string& value : t.values()) {
      self.tags.emplace(value, static_cast<int>(self.tags.size()));
    }
  }
  if (self.tags.size() >= 32000) return Unimplemented("the plan moves over 32000 values");
  bool one_device = plan.transfers().empty();
  for (int d = 1; d < devices; ++d) one_device &= plan.devices(d).runs().empty();
  if (one_device && self.leader()) {
    const Device& device = plan.cluster().devices(0);
    if (device.kind() != Device::CPU) {
      return Unimplemented("device '" + device.name() + "' is a GPU; this build of parnet runs " +
                           "plans on CPU devices only");
    }
    EngineOptions engine_options;
    engine_options.backend = options.backend;
    engine_options.threads = std::max(1, device.cores_size());
    ASSIGN_OR_RETURN(self.whole, Engine::Create(self.model, engine_options));
  }
  ASSIGN_OR_RETURN(auto compiled, self.Compile(self.plan_shapes));  // warm-up for the plan's own shapes
  (void)compiled;
  for (size_t slot = 0; slot < self.local.size(); ++slot) {
    self.queues.push_back(std::make_unique<JobQueue>());
    self.receive_buffers[self.local[slot]];  // created before the threads that use them
  }
  for (size_t slot = 0; slot < self.local.size(); ++slot) {
    self.threads.emplace_back([&self, slot] { self.DeviceLoop(slot); });
  }
  return Status::Ok();
}

StatusOr<int64_t> PlanRunner::Submit(const std::map<std::string, Tensor>& inputs) {
  Impl& self = *impl_;
  if (!self.leader()) return FailedPrecondition("only rank 0 takes requests; others Follow()");
  if (self.stopped) return FailedPrecondition("the runner was stopped");
  {
    std::lock_guard<std::mutex> lock(self.mu);
    if (!self.broken.ok()) {
      return FailedPrecondition("an earlier request failed (" + self.broken.message() +
                                "); create a new runner");
    }
  }
  std::map<std::string, Shape> shapes;
  for (const std::string& name : self.model.inputs) {
    auto it = inputs.find(name);
    if (it == inputs.end()) return InvalidArgument("missing input '" + name + "'");
    if (it->second.dtype() != DType::kFloat32) {
      return InvalidArgument("input '" + name + "' is " + it->second.TypeString() +
                             "; plans run FP32 inputs");
    }
    shapes[name] = it->second.shape();
  }
  ASSIGN_OR_RETURN(auto compiled, self.Compile(shapes));
  Job job{self.next_id++, compiled, {}, Clock::now()};
  {
    std::lock_guard<std::mutex> lock(self.mu);
    self.pending.insert(job.id);
  }
  if (self.mpi()) {
    std::vector<int64_t> words = {job.id, std::chrono::duration_cast<std::chrono::microseconds>(
                                              job.submitted.time_since_epoch())
                                              .count()};
    for (const std::string& name : self.model.inputs) {
      words.push_back(static_cast<int64_t>(shapes[name].size()));
      words.insert(words.end(), shapes[name].begin(), shapes[name].end());
    }
    for (int r = 1; r < self.transport->size(); ++r) {
      RETURN_IF_ERROR(self.transport->SendControl(r, words));
    }
  }
  for (size_t slot = 0; slot < self.local.size(); ++slot) {
    Job copy = job;
    if (self.local[slot] == 0) copy.inputs = inputs;
    self.queues[slot]->Push(std::move(copy));
  }
  return job.id;
}

StatusOr<std::vector<Tensor>> PlanRunner::Collect(int64_t id, std::vector<StageTrace>* timings) {
  Impl& self = *impl_;
  std::unique_lock<std::mutex> lock(self.mu);
  if (!self.pending.count(id)) {
    return NotFound("request " + std::to_string(id) + " was never submitted or already collected");
  }
  self.done.wait(lock, [&] { return self.results[id].size() == self.local.size(); });
  std::map<int, Result> results = std::move(self.results[id]);
  self.results.erase(id);
  self.pending.erase(id);
  for (auto& [device, result] : results) {
    if (!result.status.ok() && self.broken.ok()) self.broken = result.status;
  }
  lock.unlock();
  if (timings != nullptr) timings->clear();
  for (auto& [device, result] : results) {
    if (!result.status.ok()) return result.status;
    if (timings != nullptr) {
      timings->insert(timings->end(), result.timings.begin(), result.timings.end());
    }
  }
  return std::move(results.at(0).outputs);
}

StatusOr<std::vector<Tensor>> PlanRunner::Run(const std::map<std::string, Tensor>& inputs,
                                              std::vector<StageTrace>* timings) {
  ASSIGN_OR_RETURN(int64_t id, Submit(inputs));
  return Collect(id, timings);
}

Status PlanRunner::Follow() {
  Impl& self = *impl_;
  if (self.leader()) return FailedPrecondition("rank 0 leads; only other ranks Follow()");
  while (true) {
    const auto forever = std::chrono::steady_clock::now() + std::chrono::hours(24 * 365);
    ASSIGN_OR_RETURN(std::vector<int64_t> words, self.transport->RecvControl(forever));
    if (words.empty() || words[0] < 0) break;
    std::map<std::string, Shape> shapes;
    size_t at = 2;
    for (const std::string& name : self.model.inputs) {
      if (at >= words.size()) return Internal("malformed request from rank 0");
      const size_t rank = static_cast<size_t>(words[at++]);
      if (at + rank > words.size()) return Internal("malformed request from rank 0");
      shapes[name] = Shape(words.begin() + at, words.begin() + at + rank);
      at += rank;
    }
    auto compiled = self.Compile(shapes);
    if (!compiled.ok()) self.transport->Abort(compiled.status().message());
    Job job{words[0], *compiled, {},
            Clock::time_point(std::chrono::microseconds(words[1]))};
    self.queues[0]->Push(std::move(job));
  }
  self.stopped = true;
  self.queues[0]->Push(Job{});
  self.threads[0].join();
  for (auto& [id, results] : self.results) {
    for (auto& [device, result] : results) {
      if (!result.status.ok()) return result.status;
    }
  }
  return Status::Ok();
}

Status PlanRunner::Stop() {
  Impl& self = *impl_;
  if (!self.leader() || self.stopped) return Status::Ok();
  self.stopped = true;
  if (self.mpi()) {
    for (int r = 1; r < self.transport->size(); ++r) {
      RETURN_IF_ERROR(self.transport->SendControl(r, {-1}));
    }
  }
  for (auto& queue : self.queues) queue->Push(Job{});
  for (auto& thread : self.threads) thread.join();
  return Status::Ok();
}

StatusOr<std::vector<std::vector<StageTrace>>> PlanRunner::GatherTimings() {
  Impl& self = *impl_;
  std::vector<double> flat;
  for (const auto& [id, timings] : self.history) {
    for (const StageTrace& t : timings) {
      flat.insert(flat.end(), {static_cast<double>(id), static_cast<double>(t.stage),
                               static_cast<double>(t.device), t.start_ms, t.finish_ms,
                               t.wait_ms});
    }
  }
  ASSIGN_OR_RETURN(auto gathered, self.transport->GatherAtZero(flat));
  std::vector<std::vector<StageTrace>> out(self.next_id);
  for (const auto& part : gathered) {
    for (size_t i = 0; i + 5 < part.size(); i += 6) {
      const auto id = static_cast<size_t>(part[i]);
      if (id >= out.size()) out.resize(id + 1);
      out[id].push_back({static_cast<int>(part[i + 1]), static_cast<int>(part[i + 2]),
                         part[i + 3], part[i + 4], part[i + 5]});
    }
  }
  return out;
}

}  // namespace parnet
