#include "runtime/serve/stats.h"

#include <chrono>
#include <cstdio>

namespace parnet::serve {
namespace {

std::vector<double> LatencyBounds() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,     10};
}

std::string Number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::string Labels(const LabeledStats& m) {
  return "model=\"" + m.model + "\",version=\"" + m.version + "\"";
}

void Family(std::string* out, const std::string& name, const std::string& type,
            const std::string& help) {
  *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++total_;
}

std::string Histogram::Render(const std::string& name, const std::string& labels) const {
  std::string out;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += name + "_bucket{" + labels + ",le=\"" + Number(bounds_[i]) + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  out += name + "_bucket{" + labels + ",le=\"+Inf\"} " + std::to_string(total_) + "\n";
  out += name + "_sum{" + labels + "} " + Number(sum_) + "\n";
  out += name + "_count{" + labels + "} " + std::to_string(total_) + "\n";
  return out;
}

ModelStats::ModelStats() {
  s_.request_seconds = Histogram(LatencyBounds());
  s_.queue_seconds = Histogram(LatencyBounds());
  s_.compute_seconds = Histogram(LatencyBounds());
  s_.batch_size = Histogram({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024});
}

void ModelStats::RecordRequest(bool ok, uint64_t ns) {
  std::lock_guard<std::mutex> lock(mu_);
  (ok ? s_.success : s_.fail).Add(ns);
  s_.request_seconds.Observe(static_cast<double>(ns) * 1e-9);
}

void ModelStats::RecordQueue(uint64_t ns) {
  std::lock_guard<std::mutex> lock(mu_);
  s_.queue.Add(ns);
  s_.queue_seconds.Observe(static_cast<double>(ns) * 1e-9);
}

void ModelStats::RecordExecution(uint64_t items, uint64_t batch, uint64_t input_ns,
                                 uint64_t infer_ns, uint64_t output_ns) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  std::lock_guard<std::mutex> lock(mu_);
  s_.inference_count += items;
  ++s_.execution_count;
  s_.last_inference_ms =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
  s_.compute_input.Add(input_ns);
  s_.compute_infer.Add(infer_ns);
  s_.compute_output.Add(output_ns);
  BatchDurations& b = s_.batches[batch];
  b.compute_input.Add(input_ns);
  b.compute_infer.Add(infer_ns);
  b.compute_output.Add(output_ns);
  s_.compute_seconds.Observe(static_cast<double>(input_ns + infer_ns + output_ns) * 1e-9);
  s_.batch_size.Observe(static_cast<double>(items));
}

StatsSnapshot ModelStats::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return s_;
}

std::string RenderPrometheus(const std::vector<LabeledStats>& models) {
  std::string out;
  struct Counter {
    const char* name;
    const char* help;
    uint64_t (*get)(const StatsSnapshot&);
  };
  const Counter counters[] = {
      {"nv_inference_request_success", "Number of successful inference requests",
       [](const StatsSnapshot& s) { return s.success.count; }},
      {"nv_inference_request_failure", "Number of failed inference requests",
       [](const StatsSnapshot& s) { return s.fail.count; }},
      {"nv_inference_count", "Number of inferences performed (a batch of 8 counts 8)",
       [](const StatsSnapshot& s) { return s.inference_count; }},
      {"nv_inference_exec_count", "Number of model executions (one per formed batch)",
       [](const StatsSnapshot& s) { return s.execution_count; }},
      {"nv_inference_request_duration_us", "Cumulative request duration in microseconds",
       [](const StatsSnapshot& s) { return (s.success.ns + s.fail.ns) / 1000; }},
      {"nv_inference_queue_duration_us", "Cumulative time requests waited in the queue (us)",
       [](const StatsSnapshot& s) { return s.queue.ns / 1000; }},
      {"nv_inference_compute_input_duration_us", "Cumulative batch assembly time (us)",
       [](const StatsSnapshot& s) { return s.compute_input.ns / 1000; }},
      {"nv_inference_compute_infer_duration_us", "Cumulative model execution time (us)",
       [](const StatsSnapshot& s) { return s.compute_infer.ns / 1000; }},
      {"nv_inference_compute_output_duration_us", "Cumulative result splitting time (us)",
       [](const StatsSnapshot& s) { return s.compute_output.ns / 1000; }},
  };
  for (const Counter& c : counters) {
    Family(&out, c.name, "counter", c.help);
    for (const auto& m : models) {
      out += std::string(c.name) + "{" + Labels(m) + "} " + std::to_string(c.get(m.stats)) + "\n";
    }
  }
  Family(&out, "nv_inference_pending_request_count", "gauge", "Requests waiting in the queue now");
  for (const auto& m : models) {
    out += "nv_inference_pending_request_count{" + Labels(m) + "} " +
           std::to_string(m.queue_size) + "\n";
  }
  struct Hist {
    const char* name;
    const char* help;
    const Histogram StatsSnapshot::*member;
  };
  const Hist histograms[] = {
      {"parnet_request_duration_seconds", "Request latency from arrival to answer",
       &StatsSnapshot::request_seconds},
      {"parnet_queue_duration_seconds", "Time a request waited for its batch",
       &StatsSnapshot::queue_seconds},
      {"parnet_compute_duration_seconds", "Time of one batch: assembly, model run, split",
       &StatsSnapshot::compute_seconds},
      {"parnet_batch_size", "Requested items per model execution", &StatsSnapshot::batch_size},
  };
  for (const Hist& h : histograms) {
    Family(&out, h.name, "histogram", h.help);
    for (const auto& m : models) out += (m.stats.*h.member).Render(h.name, Labels(m));
  }
  return out;
}

}  // namespace parnet::serve
