// Alternatives, the --explain table and the Gantt chart (declared in plan.h).
#include <algorithm>
#include <iomanip>
#include <set>
#include <sstream>

#include "partitioner/cluster.h"
#include "partitioner/plan.h"
#include "partitioner/search.h"

namespace parnet::partition {
namespace {

int DevicesUsed(const Schedule& schedule) {
  std::set<int> used;
  for (const StageRun& run : schedule.runs) used.insert(run.device);
  return static_cast<int>(used.size());
}

// Text for SVG: names and paths may hold XML's special characters.
std::string Escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string Fixed(double value, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << value;
  return out.str();
}

// Stages that are ancestors of each stage.
std::vector<std::set<int>> Ancestors(const StageGraph& stages) {
  std::vector<std::set<int>> out(stages.stages.size());
  for (size_t s = 0; s < stages.stages.size(); ++s) {  // topological order
    for (int p : stages.Predecessors(static_cast<int>(s))) {
      out[s].insert(p);
      out[s].insert(out[p].begin(), out[p].end());
    }
  }
  return out;
}

// The authors' layout: the three heaviest mutually parallel stages, the one with the fewest
// ancestors (nearest the input) on device 0 with everything else, the others on devices 1 and 2,
// and the recomputable stem on all three.
bool AuthorsLayout(const StageGraph& stages, const CostModel& costs, Alternative& out) {
  if (costs.num_devices() < 3) return false;
  const int n = static_cast<int>(stages.stages.size());
  const auto ancestors = Ancestors(stages);
  auto parallel = [&](int a, int b) { return !ancestors[a].count(b) && !ancestors[b].count(a); };
  double best = -1;
  std::vector<int> streams;
  for (int a = 0; a < n; ++a) {
    for (int b = a + 1; b < n; ++b) {
      for (int c = b + 1; c < n; ++c) {
        if (stages.stages[a].recomputable || stages.stages[b].recomputable ||
            stages.stages[c].recomputable || !parallel(a, b) || !parallel(a, c) ||
            !parallel(b, c)) {
          continue;
        }
        const double flops =
            stages.stages[a].flops + stages.stages[b].flops + stages.stages[c].flops;
        if (flops > best) best = flops, streams = {a, b, c};
      }
    }
  }
  if (streams.empty()) return false;
  std::stable_sort(streams.begin(), streams.end(),
                   [&](int x, int y) { return ancestors[x].size() < ancestors[y].size(); });
  Placement placement{std::vector<int>(n, 0)};
  for (int s = 0; s < n; ++s) {
    if (stages.stages[s].recomputable) placement.device[s] = Placement::kEverywhere;
  }
  placement.device[streams[1]] = 1;
  placement.device[streams[2]] = 2;
  out.name = "authors' 3-device layout (stem recomputed on each)";
  out.schedule = Simulate(stages, costs, PruneReplicas(stages, placement, {0, 1, 2}), {0, 1, 2});
  out.devices_used = 3;
  return true;
}

}  // namespace

std::vector<Alternative> Alternatives(const StageGraph& stages, const CostModel& costs) {
  std::vector<Alternative> out;
  const int devices = costs.num_devices();
  Alternative single;
  for (int d = 0; d < devices; ++d) {
    Placement placement{std::vector<int>(stages.stages.size(), d)};
    Schedule schedule = Simulate(stages, costs, placement, {d});
    if (single.name.empty() || schedule.latency_ms < single.schedule.latency_ms) {
      single.name = "one device (device " + std::to_string(d) + ")";
      single.schedule = std::move(schedule);
      single.devices_used = 1;
    }
  }
  out.push_back(std::move(single));
  Alternative authors;
  if (AuthorsLayout(stages, costs, authors)) out.push_back(std::move(authors));
  if (devices >= 3) {
    const std::vector<int> classes = SymmetryClasses(costs);
    Alternative fewer;
    std::set<int> tried;
    for (int drop = 1; drop < devices; ++drop) {
      if (!tried.insert(classes[drop]).second) continue;
      SearchOptions options;
      for (int d = 0; d < devices; ++d) {
        if (d != drop) options.devices.push_back(d);
      }
      SearchResult result = FindBestPlacement(stages, costs, options);
      if (fewer.name.empty() || result.schedule.latency_ms < fewer.schedule.latency_ms) {
        fewer.name = "best with " + std::to_string(devices - 1) + " devices (without device " +
                     std::to_string(drop) + ")";
        fewer.schedule = std::move(result.schedule);
        fewer.devices_used = DevicesUsed(fewer.schedule);
      }
    }
    out.push_back(std::move(fewer));
  }
  return out;
}

std::string ExplainTable(const Plan& plan, const std::vector<Alternative>& alternatives) {
  std::ostringstream out;
  const double one = alternatives.empty() ? plan.predicted_latency_ms()
                                          : alternatives.front().schedule.latency_ms;
  std::set<std::string> used;
  for (const DeviceAssignment& a : plan.devices()) {
    if (a.runs_size() > 0) used.insert(a.device());
  }
  out << std::left << std::setw(58) << "plan" << std::right << std::setw(8) << "devices"
      << std::setw(14) << "latency ms" << std::setw(14) << "vs one device" << "\n";
  auto row = [&](const std::string& name, int devices, double ms) {
    out << std::left << std::setw(58) << name << std::right << std::setw(8) << devices
        << std::setw(14) << Fixed(ms, 3) << std::setw(13) << Fixed(one / ms, 2) << "x\n";
  };
  row("chosen plan", static_cast<int>(used.size()), plan.predicted_latency_ms());
  for (const Alternative& a : alternatives) row(a.name, a.devices_used, a.schedule.latency_ms);
  return out.str();
}

std::string GanttSvg(const Plan& plan, const std::string& title) {
  struct Bar {
    double start, finish;
    std::string label;
    bool transfer;
    int stage;
  };
  std::vector<std::pair<std::string, std::vector<Bar>>> rows;
  for (const DeviceAssignment& a : plan.devices()) {
    if (a.runs().empty()) continue;
    std::vector<Bar> bars;
    for (const auto& run : a.runs()) {
      bars.push_back({run.start_ms(), run.finish_ms(), plan.stages(run.stage()).name(), false,
                      run.stage()});
    }
    rows.push_back({a.device(), std::move(bars)});
  }
  std::map<std::string, std::vector<Bar>> links;
  for (const Transfer& t : plan.transfers()) {
    const std::string label = t.stage() < 0 ? "input" : t.reply() ? "reply" :
                              plan.stages(t.stage()).name();
    links[t.from_device() + " -> " + t.to_device()].push_back(
        {t.start_ms(), t.finish_ms(), label + " " + Fixed(t.mbytes(), 2) + " MB", true, -1});
  }
  for (auto& [name, bars] : links) rows.push_back({name, std::move(bars)});
  const double end = std::max(plan.predicted_latency_ms(), 1e-6);
  const int left = 170, width = 900, row_height = 34, top = 50;
  const int height = top + row_height * static_cast<int>(rows.size()) + 40;
  static const char* kColors[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                                  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << left + width + 20
      << "\" height=\"" << height << "\" font-family=\"sans-serif\" font-size=\"11\">\n"
      << "<text x=\"10\" y=\"20\" font-size=\"14\">" << Escape(title) << " - latency "
      << Fixed(plan.predicted_latency_ms(), 3) << " ms</text>\n";
  auto x_of = [&](double ms) { return left + ms / end * width; };
  for (int tick = 0; tick <= 10; ++tick) {
    const double ms = end * tick / 10;
    svg << "<line x1=\"" << x_of(ms) << "\" y1=\"" << top - 5 << "\" x2=\"" << x_of(ms)
        << "\" y2=\"" << height - 35 << "\" stroke=\"#ddd\"/>\n<text x=\"" << x_of(ms)
        << "\" y=\"" << height - 20 << "\" text-anchor=\"middle\">" << Fixed(ms, 2)
        << "</text>\n";
  }
  svg << "<text x=\"" << left + width / 2 << "\" y=\"" << height - 5
      << "\" text-anchor=\"middle\">ms</text>\n";
  for (size_t r = 0; r < rows.size(); ++r) {
    const int y = top + static_cast<int>(r) * row_height;
    svg << "<text x=\"10\" y=\"" << y + row_height / 2 + 4 << "\">" << Escape(rows[r].first)
        << "</text>\n";
    for (const Bar& bar : rows[r].second) {
      const double x0 = x_of(bar.start), x1 = std::max(x_of(bar.finish), x0 + 1);
      const std::string color = bar.transfer ? "#999" : kColors[bar.stage % 10];
      svg << "<g><title>" << Escape(bar.label) << ": " << Fixed(bar.start, 3) << " - "
          << Fixed(bar.finish, 3) << " ms</title><rect x=\"" << x0 << "\" y=\"" << y + 4
          << "\" width=\"" << x1 - x0 << "\" height=\"" << row_height - 8 << "\" fill=\""
          << color << "\" stroke=\"#333\" stroke-width=\"0.5\"/>";
      if (x1 - x0 > 40) {
        svg << "<text x=\"" << x0 + 3 << "\" y=\"" << y + row_height / 2 + 4
            << "\" fill=\"#fff\" clip-path=\"none\">"
            << Escape(bar.label.substr(0, static_cast<size_t>((x1 - x0) / 6.5))) << "</text>";
      }
      svg << "</g>\n";
    }
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace parnet::partition
