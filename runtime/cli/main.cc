// parnet: one program, one subcommand per job.
#include <CLI/CLI.hpp>
#include <iostream>

#include "runtime/cli/commands.h"
#include "runtime/core/logging.h"

int main(int argc, char** argv) {
  CLI::App app{"parnet: serve ParNet-style networks across devices"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical or off")
      ->capture_default_str();

  parnet::cli::InspectOptions inspect;
  CLI::App* inspect_cmd = app.add_subcommand(
      "inspect", "Print a model after import: ops, shapes, parameters and FLOPs");
  inspect_cmd->add_option("--model,-m", inspect.model, "ONNX model file")->required();
  inspect_cmd->add_option("--shape", inspect.shapes,
                          "Input shape as name=N,C,H,W (repeatable); dynamic N defaults to 1 and "
                          "dynamic H, W of an image input to 224");
  inspect_cmd->add_flag("--summary", inspect.summary_only, "Omit the per-node table");

  CLI11_PARSE(app, argc, argv);
  if (auto status = parnet::SetLogLevel(log_level); !status.ok()) {
    std::cerr << "parnet: " << status.message() << "\n";
    return 2;
  }
  if (inspect_cmd->parsed()) return parnet::cli::RunInspect(inspect);
  return 2;
}
