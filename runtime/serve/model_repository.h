// A Triton-style model repository: <root>/<model>/config.pbtxt and <root>/<model>/<version>/
// model.onnx (or the config's default_model_filename). Every model and the versions its
// version_policy selects (default: the latest) are loaded and warmed up by Load().
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/serve/served_model.h"

namespace parnet::serve {

class ModelRepository {
 public:
  // Loads and warms up every model; the first failure is returned, naming the model and the fix.
  static StatusOr<std::unique_ptr<ModelRepository>> Load(const std::string& root,
                                                        const ServeOptions& options);

  // `version` empty: the newest served version. NOT_FOUND names what is served.
  StatusOr<ServedModel*> Find(const std::string& name, const std::string& version) const;
  // Every served model version, by name then version.
  std::vector<ServedModel*> All() const;
  // The served versions of `name`, ascending.
  std::vector<int64_t> Versions(const std::string& name) const;

 private:
  std::map<std::string, std::map<int64_t, std::unique_ptr<ServedModel>>> models_;
};

}  // namespace parnet::serve
