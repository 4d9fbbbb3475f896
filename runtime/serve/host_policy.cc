#include "runtime/serve/host_policy.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

namespace parnet::serve {
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

Status AddHostPolicy(const std::string& argument, HostPolicies* policies) {
  const std::string usage = "; write --host-policy NAME,cpu-cores=LIST, e.g. pin,cpu-cores=0-3";
  const size_t comma = argument.find(',');
  const size_t equals = argument.find('=', comma == std::string::npos ? 0 : comma);
  if (comma == 0 || comma == std::string::npos || equals == std::string::npos) {
    return InvalidArgument("--host-policy '" + argument + "' is not NAME,SETTING=VALUE" + usage);
  }
  const std::string name = argument.substr(0, comma);
  const std::string setting = argument.substr(comma + 1, equals - comma - 1);
  const std::string value = argument.substr(equals + 1);
  if (setting != "cpu-cores") {
    return InvalidArgument("--host-policy '" + argument + "': setting '" + setting +
                           "' is not supported; parnet binds instances with cpu-cores only" +
                           usage);
  }
  StatusOr<std::vector<int>> cores = ParseCpuList(value);
  if (!cores.ok()) return cores.status().WithContext("--host-policy '" + argument + "'");
  const std::vector<int> allowed = AllowedCores();
  for (int c : *cores) {
    if (!std::binary_search(allowed.begin(), allowed.end(), c)) {
      return InvalidArgument("--host-policy '" + argument + "': core " + std::to_string(c) +
                             " is not one this process may run on (" + CpuListToString(allowed) +
                             ")");
    }
  }
  if (policies->count(name)) {
    return InvalidArgument("--host-policy '" + argument + "': policy '" + name +
                           "' is given twice; give each policy once");
  }
  (*policies)[name] = *cores;
  return Status::Ok();
}

Status BindThisThread(const std::vector<int>& cores) {
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cores) CPU_SET(c, &set);
  const int err = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  if (err != 0) {
    return Internal("binding a thread to cores " + CpuListToString(cores) + ": " +
                    std::strerror(err));
  }
  return Status::Ok();
}

}  // namespace parnet::serve
