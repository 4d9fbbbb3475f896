// Subcommands of the `parnet` program. Each returns the process exit code and prints its own
// errors; main.cc only parses the command line.
#pragma once

#include <string>
#include <vector>

namespace parnet::cli {

struct InspectOptions {
  std::string model;
  std::vector<std::string> shapes;  // "name=1,3,224,224"
  bool summary_only = false;
};
int RunInspect(const InspectOptions& options);

}  // namespace parnet::cli
