#include "runtime/core/cpu_affinity.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cstring>
#include <set>

namespace parnet {
namespace {

// One core number of CPU list `list` (named in the message).
StatusOr<int> ParseCore(const std::string& text, const std::string& list) {
  const bool digits =
      !text.empty() && text.size() <= 6 &&
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || std::stoi(text) >= CPU_SETSIZE) {
    return InvalidArgument("CPU list '" + list + "': '" + text + "' is not a core number below " +
                           std::to_string(CPU_SETSIZE) + "; write cores as in \"0-3,8\"");
  }
  return std::stoi(text);
}

}  // namespace

StatusOr<std::vector<int>> ParseCpuList(const std::string& list) {
  std::set<int> cores;
  size_t begin = 0;
  while (begin <= list.size()) {
    size_t end = list.find(',', begin);
    if (end == std::string::npos) end = list.size();
    const std::string item = list.substr(begin, end - begin);
    const size_t dash = item.find('-');
    ASSIGN_OR_RETURN(int first, ParseCore(item.substr(0, dash), list));
    int last = first;
    if (dash != std::string::npos) {
      ASSIGN_OR_RETURN(last, ParseCore(item.substr(dash + 1), list));
      if (last < first) {
        return InvalidArgument("CPU list '" + list + "': range '" + item +
                               "' runs backwards; write it as " + std::to_string(last) + "-" +
                               std::to_string(first));
      }
    }
    for (int c = first; c <= last; ++c) cores.insert(c);
    begin = end + 1;
  }
  return std::vector<int>(cores.begin(), cores.end());
}

std::string CpuListToString(const std::vector<int>& cores) {
  std::string out;
  for (size_t i = 0; i < cores.size();) {
    size_t j = i;
    while (j + 1 < cores.size() && cores[j + 1] == cores[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(cores[i]);
    if (j > i) out += "-" + std::to_string(cores[j]);
    i = j + 1;
  }
  return out;
}

std::vector<int> AllowedCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cores;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cores;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &set)) cores.push_back(c);
  }
  return cores;
}

Status BindThread(pthread_t thread, const std::vector<int>& cores) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cores) {
    if (c < 0 || c >= CPU_SETSIZE) {
      return InvalidArgument("core " + std::to_string(c) + " is outside 0.." +
                             std::to_string(CPU_SETSIZE - 1) +
                             "; name the cores as Linux numbers them");
    }
    CPU_SET(c, &set);
  }
  const int err = pthread_setaffinity_np(thread, sizeof set, &set);
  if (err != 0) {
    return Internal("binding a thread to cores " + CpuListToString(cores) + ": " +
                    std::strerror(err));
  }
  return Status::Ok();
}

Status BindThisThread(const std::vector<int>& cores) { return BindThread(pthread_self(), cores); }

}  // namespace parnet
