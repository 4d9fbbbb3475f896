#include "runtime/serve/host_policy.h"

#include <algorithm>

namespace parnet::serve {

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

}  // namespace parnet::serve
