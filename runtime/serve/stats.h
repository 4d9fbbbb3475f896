// Counters and histograms of one served model: what ModelStatistics reports and what /metrics
// exposes. Thread-safe; every method takes a short lock.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace parnet::serve {

struct Duration {
  uint64_t count = 0;
  uint64_t ns = 0;
  void Add(uint64_t n) {
    ++count;
    ns += n;
  }
};

// A Prometheus histogram with fixed upper bounds (le), cumulative when rendered.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  // "name_bucket{labels,le=...} n" lines, then _sum and _count.
  std::string Render(const std::string& name, const std::string& labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bound, plus one for +Inf; not cumulative
  double sum_ = 0;
  uint64_t total_ = 0;
};

struct BatchDurations {
  Duration compute_input, compute_infer, compute_output;
};

struct StatsSnapshot {
  Duration success, fail, queue, compute_input, compute_infer, compute_output;
  uint64_t inference_count = 0;   // items (a batch of 8 counts 8)
  uint64_t execution_count = 0;   // model runs
  uint64_t last_inference_ms = 0; // since the epoch
  std::map<uint64_t, BatchDurations> batches;  // by executed (padded) batch size
  Histogram request_seconds{{}}, queue_seconds{{}}, compute_seconds{{}}, batch_size{{}};
};

class ModelStats {
 public:
  ModelStats();

  // A request answered: OK or not, after `ns` since it arrived.
  void RecordRequest(bool ok, uint64_t ns);
  void RecordQueue(uint64_t ns);
  // One model run over `items` requested items, padded to `batch`.
  void RecordExecution(uint64_t items, uint64_t batch, uint64_t input_ns, uint64_t infer_ns,
                       uint64_t output_ns);

  StatsSnapshot Snapshot() const;

 private:
  mutable std::mutex mu_;
  StatsSnapshot s_;
};

struct LabeledStats {
  std::string model, version;
  StatsSnapshot stats;
  uint64_t queue_size = 0;  // requests waiting now
};
// The Prometheus text exposition of every model: Triton's counter names (nv_inference_*, so
// existing dashboards work) and parnet's latency histograms (parnet_*_seconds), which aggregate
// across replicas where summaries would not.
std::string RenderPrometheus(const std::vector<LabeledStats>& models);

}  // namespace parnet::serve
