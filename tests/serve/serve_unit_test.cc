// The serving core without the network: float conversions, config completion and refusals, and
// the dynamic batcher on the shipped model (batches formed, results split back per request, a
// full queue refused, a timed-out or cancelled request answered without running), where
// executions run (on the caller, a worker, or an ExecutionSlots thread; on the cores of a host
// policy).
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <random>

#include "runtime/graph/onnx_import.h"
#include "runtime/serve/datatype.h"
#include "runtime/serve/execution_slots.h"
#include "runtime/serve/frontend.h"
#include "runtime/serve/host_policy.h"
#include "runtime/serve/model_config.h"
#include "runtime/serve/served_model.h"

namespace parnet::serve {
namespace {

const std::string kModelDir = std::string(PARNET_SOURCE_DIR) + "/deploy/models/parnet-fmnist";
const std::string kModel = kModelDir + "/1/model.onnx";

TEST(DatatypeTest, HalfAndBFloat16RoundToNearestEven) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(1e6f), 0x7c00);                          // overflow -> inf
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);         // smallest subnormal
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie -> even
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(NAN))));
  std::mt19937 rng(0);
  std::normal_distribution<float> normal(0.f, 100.f);
  for (int i = 0; i < 10000; ++i) {
    const float x = normal(rng);
    EXPECT_NEAR(HalfToFloat(FloatToHalf(x)), x, std::abs(x) * std::ldexp(1.0f, -11) + 1e-7f);
    EXPECT_NEAR(BFloat16ToFloat(FloatToBFloat16(x)), x, std::abs(x) * std::ldexp(1.0f, -8));
  }
  EXPECT_EQ(FloatToBFloat16(1.0f), 0x3f80);
}

TEST(ModelConfigTest, ShippedConfigParsesAndCompletes) {
  auto config = ReadModelConfig(kModelDir + "/config.pbtxt");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto graph = LoadOnnxModel(kModel);
  ASSERT_TRUE(graph.ok());
  ASSERT_TRUE(CompleteModelConfig(*graph, "parnet-fmnist", &*config).ok());
  EXPECT_EQ(config->max_batch_size(), 256);
  EXPECT_EQ(config->input(0).dims_size(), 3);
  EXPECT_EQ(BatchBuckets(*config), (std::vector<int64_t>{1, 2, 4, 8, 16, 32, 64, 128, 256}));
  const std::string json = ModelConfigToJson(*config);
  EXPECT_NE(json.find("\"dims\":[1,32,32]"), std::string::npos) << json;
}

Status Complete(const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / "parnet_serve_test_config.pbtxt";
  std::ofstream(path) << text;
  auto config = ReadModelConfig(path.string());
  if (!config.ok()) return config.status();
  auto graph = LoadOnnxModel(kModel);
  if (!graph.ok()) return graph.status();
  return CompleteModelConfig(*graph, "m", &*config);
}

TEST(ModelConfigTest, RefusesWhatDoesNotFitTheModel) {
  EXPECT_TRUE(Complete("max_batch_size: 8").ok());
  auto expect = [](const Status& s, const std::string& text) {
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find(text), std::string::npos) << s.message();
  };
  expect(Complete("max_batch_size: 8 sequence_batching {}"), "sequence_batching");
  expect(Complete("name: \"other\""), "differs from the folder name");
  expect(Complete("max_batch_size: 8 input [{ name: \"x\" }]"), "not a input of the model");
  expect(Complete("max_batch_size: 8 input [{ name: \"input\" data_type: TYPE_INT64 }]"),
         "does not fit the model's FP32");
  expect(Complete("max_batch_size: 8 input [{ name: \"input\" dims: [1, 28, 28] }]"),
         "do not fit the model's [1,32,32]");
  expect(Complete("max_batch_size: 8 dynamic_batching { preferred_batch_size: [16] }"),
         "preferred_batch_size 16 is outside 1..8");
  expect(Complete("instance_group [{ kind: KIND_GPU }]"), "parnet serves on the CPU");
}

// A served copy of the shipped model with `config_text`, warmed up.
std::unique_ptr<ServedModel> Serve(const std::string& config_text, ServeOptions options = {}) {
  const auto path = std::filesystem::temp_directory_path() / "parnet_serve_test_model.pbtxt";
  std::ofstream(path) << config_text;
  auto config = ReadModelConfig(path.string());
  EXPECT_TRUE(config.ok());
  auto model = ServedModel::Load("m", 1, kModel, *config, options);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_TRUE((*model)->WarmUp().ok());
  return std::move(*model);
}

Tensor Images(int64_t n, int seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  Tensor t(DType::kFloat32, {n, 1, 32, 32});
  for (int64_t i = 0; i < t.num_elements(); ++i) t.data<float>()[i] = normal(rng);
  return t;
}

TEST(ServedModelTest, BatchesRequestsAndSplitsTheResultsBack) {
  ServeOptions one_thread;  // the same path on every machine: the instance's worker thread
  one_thread.threads = 1;
  auto model = Serve(
      "max_batch_size: 16 dynamic_batching { max_queue_delay_microseconds: 200000 "
      "preferred_batch_size: [6] }",
      one_thread);
  auto engine = Engine::Load(kModel);
  ASSERT_TRUE(engine.ok());
  // Round 0: 1 + 2 + 3 items, the preferred size, dispatched at once. Round 1: 1 + 2 + 2 items,
  // dispatched after the queue delay and padded to 6 in the staging buffer of round 0.
  for (int round = 0; round < 2; ++round) {
    std::vector<std::future<StatusOr<InferResult>>> futures;
    std::vector<Tensor> inputs;
    for (int i = 0; i < 3; ++i) {
      inputs.push_back(Images(round == 1 && i == 2 ? 2 : i + 1, 10 * round + i));
      InferRequest request;
      request.id = std::to_string(i);
      request.inputs["input"] = inputs.back();
      futures.push_back(std::async(
          std::launch::async, [&model, request] { return InferAndWait(model.get(), request); }));
    }
    for (int i = 0; i < 3; ++i) {
      StatusOr<InferResult> result = futures[i].get();
      ASSERT_TRUE(result.ok()) << result.status().ToString();
      const Tensor& got = result->outputs.at(0).second;
      auto want = (*engine)->Run({{"input", inputs[i]}});
      ASSERT_TRUE(want.ok());
      ASSERT_EQ(got.shape(), (*want)[0].shape());
      for (int64_t k = 0; k < got.num_elements(); ++k) {
        EXPECT_NEAR(got.data<float>()[k], (*want)[0].data<float>()[k], 1e-4);
      }
    }
  }
  const StatsSnapshot stats = model->stats().Snapshot();
  EXPECT_EQ(stats.inference_count, 11u);
  EXPECT_EQ(stats.success.count, 6u);
  EXPECT_EQ(stats.execution_count, 2u) << "each round's three requests should share a batch";
}

TEST(ServedModelTest, RefusesWhenTheQueueIsFullAndExpiresOldRequests) {
  std::vector<std::promise<StatusOr<InferResult>>> promises(2);  // outlive the model
  auto model = Serve(
      "max_batch_size: 4 dynamic_batching { max_queue_delay_microseconds: 2000000 "
      "default_queue_policy { max_queue_size: 2 default_timeout_microseconds: 200000 }}");
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < 2; ++i) {
    InferRequest request;
    request.inputs["input"] = Images(1, i);
    ASSERT_TRUE(
        model
            ->Submit(request, [&promises,
                               i](StatusOr<InferResult> r) { promises[i].set_value(std::move(r)); })
            .ok());
  }
  InferRequest third;
  third.inputs["input"] = Images(1, 3);
  // The worker waits up to 2 s for a fuller batch and the timeout is 200 ms, so both requests
  // are still queued.
  Status full = model->Submit(third, [](StatusOr<InferResult>) { FAIL() << "never called"; });
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("is full"), std::string::npos);
  for (auto& p : promises) {
    StatusOr<InferResult> r = p.get_future().get();
    EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().ToString();
    EXPECT_NE(r.status().message().find("past its timeout"), std::string::npos);
  }
  // Answered at their timeout, not when the queue delay ran out.
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(1500));
  EXPECT_EQ(model->stats().Snapshot().execution_count, 0u);
}

// A request with `cancelled` and `client_deadline` set as the gRPC front end sets them.
InferRequest WatchedRequest(int seed, std::shared_ptr<std::atomic<bool>> gone,
                            Clock::time_point client_deadline = Clock::time_point::max()) {
  InferRequest request;
  request.id = "r" + std::to_string(seed);
  request.inputs["input"] = Images(1, seed);
  request.cancelled = gone;
  request.client_deadline = client_deadline;
  return request;
}

TEST(ServedModelTest, ARequestStillQueuedAtTheClientsDeadlineIsAnsweredAndNotRun) {
  auto model =
      Serve("max_batch_size: 4 dynamic_batching { max_queue_delay_microseconds: 3000000 }");
  const Clock::time_point start = Clock::now();
  auto gone = std::make_shared<std::atomic<bool>>(false);
  StatusOr<InferResult> r =
      InferAndWait(model.get(), WatchedRequest(1, gone, start + std::chrono::milliseconds(100)));
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().ToString();
  EXPECT_NE(r.status().message().find("client's deadline"), std::string::npos);
  // At the deadline, not after the 3 s queue delay.
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(2000));
  const StatsSnapshot stats = model->stats().Snapshot();
  EXPECT_EQ(stats.execution_count, 0u);
  EXPECT_EQ(stats.fail.count, 1u);
  // A deadline that has already passed is refused at once.
  InferRequest late = WatchedRequest(2, gone, Clock::now() - std::chrono::milliseconds(1));
  EXPECT_EQ(model->Submit(late, [](StatusOr<InferResult>) { FAIL() << "never called"; }).code(),
            StatusCode::kDeadlineExceeded);
}

TEST(ServedModelTest, ACancelledRequestIsDroppedFromItsBatchAndTheOthersRun) {
  std::promise<StatusOr<InferResult>> cancelled, kept;  // outlive the model, which answers them
  auto model =
      Serve("max_batch_size: 4 dynamic_batching { max_queue_delay_microseconds: 1500000 }");
  auto gone = std::make_shared<std::atomic<bool>>(false);
  auto stays = std::make_shared<std::atomic<bool>>(false);
  ASSERT_TRUE(model
                  ->Submit(WatchedRequest(1, gone),
                           [&](StatusOr<InferResult> r) { cancelled.set_value(std::move(r)); })
                  .ok());
  ASSERT_TRUE(model
                  ->Submit(WatchedRequest(2, stays),
                           [&](StatusOr<InferResult> r) { kept.set_value(std::move(r)); })
                  .ok());
  gone->store(true);  // the client leaves while both wait for the batch to fill
  StatusOr<InferResult> c = cancelled.get_future().get();
  EXPECT_EQ(c.status().code(), StatusCode::kCancelled) << c.status().ToString();
  EXPECT_NE(c.status().message().find("cancelled by its client"), std::string::npos);
  StatusOr<InferResult> k = kept.get_future().get();
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  const StatsSnapshot stats = model->stats().Snapshot();
  EXPECT_EQ(stats.execution_count, 1u);
  EXPECT_EQ(stats.inference_count, 1u) << "only the request still wanted ran";
}

TEST(ServedModelTest, AWaitingFrontEndNoticesItsClientLeaveAndTheRequestIsDropped) {
  auto model = Serve(
      "max_batch_size: 4 dynamic_batching { max_queue_delay_microseconds: 1500000 "
      "default_queue_policy { max_queue_size: 1 }}");
  const Clock::time_point start = Clock::now();
  InferRequest request;
  request.inputs["input"] = Images(1, 1);
  std::atomic<int> asked{0};
  // The client leaves 100 ms in; the front end asks every kClientPoll while it waits.
  StatusOr<InferResult> r = InferAndWait(model.get(), request, [&] {
    ++asked;
    return Clock::now() - start > std::chrono::milliseconds(100);
  });
  EXPECT_EQ(r.status().code(), StatusCode::kCancelled) << r.status().ToString();
  EXPECT_GE(asked.load(), 2);
  // Dropped when the batch formed (after the 1.5 s queue delay), without running.
  EXPECT_EQ(model->stats().Snapshot().execution_count, 0u);
}

TEST(ServedModelTest, AFullQueueLetsGoOfCancelledRequestsBeforeRefusing) {
  std::promise<StatusOr<InferResult>> first, second;  // outlive the model, which answers them
  auto model = Serve(
      "max_batch_size: 4 dynamic_batching { max_queue_delay_microseconds: 1500000 "
      "default_queue_policy { max_queue_size: 1 }}");
  auto gone = std::make_shared<std::atomic<bool>>(false);
  ASSERT_TRUE(model
                  ->Submit(WatchedRequest(1, gone),
                           [&](StatusOr<InferResult> r) { first.set_value(std::move(r)); })
                  .ok());
  gone->store(true);
  auto alive = std::make_shared<std::atomic<bool>>(false);
  Status accepted = model->Submit(WatchedRequest(2, alive),
                                  [&](StatusOr<InferResult> r) { second.set_value(std::move(r)); });
  ASSERT_TRUE(accepted.ok()) << accepted.ToString();
  EXPECT_EQ(first.get_future().get().status().code(), StatusCode::kCancelled);
  EXPECT_TRUE(second.get_future().get().ok());
}

TEST(ServedModelTest, ChecksRequestsAgainstTheConfig) {
  auto model = Serve("max_batch_size: 4");
  auto submit = [&](Tensor t) {
    InferRequest request;
    request.inputs["input"] = std::move(t);
    return model->Submit(request, [](StatusOr<InferResult>) {});
  };
  EXPECT_NE(submit(Images(5, 0)).message().find("exceeds max_batch_size 4"), std::string::npos);
  EXPECT_NE(submit(Tensor(DType::kFloat64, {1, 1, 32, 32})).message().find("datatype FP64"),
            std::string::npos);
  EXPECT_NE(submit(Tensor(DType::kFloat32, {1, 32, 32})).message().find("rank must be 4"),
            std::string::npos);
  EXPECT_NE(
      submit(Tensor(DType::kFloat32, {1, 1, 32, 31})).message().find("dimension 3 must be 32"),
      std::string::npos);
  EXPECT_EQ(model->stats().Snapshot().fail.count, 4u);
}

TEST(ExecutionSlotsTest, EachSlotRunsOnItsOwnLastingThread) {
  ExecutionSlots& slots = ExecutionSlots::Shared();
  std::thread::id first, again, other;
  slots.Run(0, [&] { first = std::this_thread::get_id(); });
  slots.Run(0, [&] { again = std::this_thread::get_id(); });
  slots.Run(1, [&] { other = std::this_thread::get_id(); });
  EXPECT_EQ(first, again);
  EXPECT_NE(first, other);
  EXPECT_NE(first, std::this_thread::get_id());
  EXPECT_NE(other, std::this_thread::get_id());
}

// The thread a request's `done` ran on, for `dispatch`.
std::thread::id DoneThread(ServedModel* model, ServedModel::Dispatch dispatch) {
  std::promise<std::thread::id> ran;
  InferRequest request;
  request.inputs["input"] = Images(1, 7);
  EXPECT_TRUE(model
                  ->Submit(
                      request,
                      [&](StatusOr<InferResult> r) {
                        EXPECT_TRUE(r.ok()) << r.status().ToString();
                        ran.set_value(std::this_thread::get_id());
                      },
                      dispatch)
                  .ok());
  std::future<std::thread::id> done = ran.get_future();
  if (done.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    ADD_FAILURE() << "the request was never answered";
    return {};
  }
  return done.get();
}

TEST(ServedModelTest, AnIdleSingleThreadedInstanceRunsTheRequestOnTheCaller) {
  ServeOptions one_thread;
  one_thread.threads = 1;
  auto model =
      Serve("max_batch_size: 4 dynamic_batching { max_queue_delay_microseconds: 0 }", one_thread);
  const auto caller = std::this_thread::get_id();
  EXPECT_EQ(DoneThread(model.get(), ServedModel::Dispatch::kCallerMayRun), caller);
  EXPECT_NE(DoneThread(model.get(), ServedModel::Dispatch::kQueued), caller);
  // A queue delay means the batcher would wait for company: the request goes to the queue.
  auto waiting = Serve("max_batch_size: 4 dynamic_batching { max_queue_delay_microseconds: 1000 }",
                       one_thread);
  EXPECT_NE(DoneThread(waiting.get(), ServedModel::Dispatch::kCallerMayRun), caller);
  // Multi-threaded instances run on their execution slot, never on the caller.
  ServeOptions two_threads;
  two_threads.threads = 2;
  auto wide = Serve("max_batch_size: 4", two_threads);
  EXPECT_NE(DoneThread(wide.get(), ServedModel::Dispatch::kCallerMayRun), caller);
  EXPECT_EQ(wide->stats().Snapshot().success.count, 1u);
}

size_t ThreadCount() {
  return static_cast<size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/task"),
                                           std::filesystem::directory_iterator()));
}

// libgomp stops spinning at barriers once its pools hold more threads than there are cores, which
// made multi-threaded instances several times slower than the engine alone: every model's
// 2-thread instance must share the one pool of its execution slot.
// A request queued while the caller's thread holds the only instance runs once it is freed.
TEST(ServedModelTest, ARequestQueuedBehindACallerRunsWhenTheInstanceIsFreed) {
  ServeOptions one_thread;
  one_thread.threads = 1;
  auto model = Serve("max_batch_size: 4", one_thread);
  std::promise<StatusOr<InferResult>> second;
  InferRequest first;
  first.inputs["input"] = Images(1, 1);
  ASSERT_TRUE(model
                  ->Submit(
                      first,
                      [&](StatusOr<InferResult> r) {
                        ASSERT_TRUE(r.ok());
                        // Still inside the caller's execution: the instance is busy.
                        InferRequest next;
                        next.inputs["input"] = Images(1, 2);
                        EXPECT_TRUE(model
                                        ->Submit(next,
                                                 [&](StatusOr<InferResult> r2) {
                                                   second.set_value(std::move(r2));
                                                 })
                                        .ok());
                        // Let the worker see the request and the busy instance, and sleep again.
                        std::this_thread::sleep_for(std::chrono::milliseconds(50));
                      },
                      ServedModel::Dispatch::kCallerMayRun)
                  .ok());
  std::future<StatusOr<InferResult>> answer = second.get_future();
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(30)), std::future_status::ready)
      << "the queued request was never run";
  EXPECT_TRUE(answer.get().ok());
}

// ctest runs each test in its own process, so the threads counted here are this test's alone.
TEST(ServedModelTest, ModelsShareTheOpenMpThreadsOfTheirExecutionSlot) {
  ServeOptions two_threads;
  two_threads.threads = 2;
  const size_t before = ThreadCount();
  std::vector<std::unique_ptr<ServedModel>> models;
  for (int i = 0; i < 3; ++i) models.push_back(Serve("max_batch_size: 4", two_threads));
  for (auto& m : models) DoneThread(m.get(), ServedModel::Dispatch::kCallerMayRun);
  // Besides one worker per model: the slots' threads and their OpenMP helpers, which must fit
  // the cores (libgomp's condition for spinning). A pool per model, or one on this thread for
  // the warm-up, exceeds that on a machine with fewer cores than models x threads.
  const size_t others = ThreadCount() - before - models.size();
  EXPECT_LE(others, static_cast<size_t>(omp_get_num_procs()));
}

TEST(HostPolicyTest, RefusesWhatItCannotHonour) {
  const std::vector<int> allowed = AllowedCores();
  ASSERT_FALSE(allowed.empty());
  HostPolicies policies;
  const std::string first = std::to_string(allowed.front());
  ASSERT_TRUE(AddHostPolicy("pin,cpu-cores=" + first, &policies).ok());
  EXPECT_EQ(policies.at("pin"), std::vector<int>{allowed.front()});
  auto message = [&](const std::string& arg) { return AddHostPolicy(arg, &policies).message(); };
  EXPECT_NE(message("pin").find("is not NAME,SETTING=VALUE"), std::string::npos);
  EXPECT_NE(message(",cpu-cores=0").find("is not NAME,SETTING=VALUE"), std::string::npos);
  EXPECT_NE(message("numa,numa-node=0").find("setting 'numa-node' is not supported"),
            std::string::npos);
  EXPECT_NE(message("pin,cpu-cores=" + first).find("given twice"), std::string::npos);
  const std::string outside = std::to_string(allowed.back() + 1);
  EXPECT_NE(message("far,cpu-cores=" + outside).find("is not one this process may run on"),
            std::string::npos);
}

// Cpus_allowed_list of this process's thread named `name`; empty when there is none.
std::string CoresOfThread(const std::string& name) {
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::string comm;
    std::getline(std::ifstream(task.path() / "comm"), comm);
    if (comm != name) continue;
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("Cpus_allowed_list:", 0) == 0)
        return line.substr(line.find_last_of(" \t") + 1);
    }
  }
  return "";
}

TEST(ServedModelTest, AnInstanceGroupWithAHostPolicyComputesOnItsCores) {
  const int core = AllowedCores().back();
  ServeOptions options;
  options.host_policies["last"] = {core};
  auto model =
      Serve("max_batch_size: 4 instance_group [ { count: 1 host_policy: \"last\" } ]", options);
  InferRequest request;
  request.inputs["input"] = Images(1, 1);
  std::promise<std::vector<int>> done;  // the cores of the thread that ran the request
  ASSERT_TRUE(model
                  ->Submit(
                      request,
                      [&](StatusOr<InferResult> r) {
                        EXPECT_TRUE(r.ok()) << r.status().ToString();
                        done.set_value(
                            AllowedCores());  // sched_getaffinity(0): this thread's own mask
                      },
                      ServedModel::Dispatch::kCallerMayRun)
                  .ok());
  EXPECT_EQ(done.get_future().get(), std::vector<int>{core}) << "not run on the bound thread";
  // One core: a single-threaded instance, computing on its worker "<model>#<instance>", bound.
  EXPECT_EQ(CoresOfThread("m#0"), std::to_string(core));
  EXPECT_EQ(model->stats().Snapshot().execution_count, 1u);

  // Two threads on two cores: the instance computes on the policy's execution thread
  // "<policy>/<k>", bound to the policy's cores like the OpenMP threads it starts.
  const std::vector<int> allowed = AllowedCores();
  if (allowed.size() >= 2) {
    ServeOptions two;
    two.threads = 2;
    two.host_policies["pair"] = {allowed[0], allowed[1]};
    auto wide =
        Serve("max_batch_size: 4 instance_group [ { count: 1 host_policy: \"pair\" } ]", two);
    EXPECT_TRUE(InferAndWait(wide.get(), request).ok());
    EXPECT_EQ(CoresOfThread("pair/0"), CpuListToString({allowed[0], allowed[1]}));
  }

  auto config = ReadModelConfig("/dev/null");
  ASSERT_TRUE(config.ok());
  config->set_max_batch_size(4);
  config->add_instance_group()->set_host_policy("nowhere");
  auto refused = ServedModel::Load("m", 1, kModel, *config, options);
  EXPECT_NE(refused.status().message().find(
                "host_policy 'nowhere' is not defined; start parnet serve with --host-policy"),
            std::string::npos)
      << refused.status().ToString();
}

TEST(ServedModelTest, DefaultThreadsDoNotDependOnTheModelsWarmedUpBefore) {
  if (AllowedCores().size() < 2 || std::getenv("OMP_NUM_THREADS") != nullptr) {
    GTEST_SKIP() << "needs two cores and OpenMP's own default";
  }
  const int cores = static_cast<int>(AllowedCores().size());
  // Two single-threaded instances on two cores: their warm-up on this thread sets its OpenMP
  // thread count to 1, which the next model's default used to read.
  auto first =
      Serve("max_batch_size: 4 instance_group [ { count: " + std::to_string(cores) + " } ]");
  EXPECT_EQ(first->instance_threads(), std::vector<int>(cores, 1));
  auto second = Serve("max_batch_size: 4");
  EXPECT_EQ(second->instance_threads(), std::vector<int>{cores});
}

}  // namespace
}  // namespace parnet::serve
