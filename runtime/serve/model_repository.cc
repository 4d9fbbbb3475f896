#include "runtime/serve/model_repository.h"

#include <algorithm>
#include <filesystem>

#include "runtime/core/log_internal.h"
#include "runtime/serve/model_config.h"

namespace parnet::serve {
namespace fs = std::filesystem;
namespace {

bool IsVersionName(const std::string& s) {
  return !s.empty() && s.size() < 18 && std::all_of(s.begin(), s.end(), ::isdigit);
}

// The versions found on disk that the policy selects, ascending.
std::vector<int64_t> SelectVersions(const std::vector<int64_t>& on_disk,
                                    const inference::ModelVersionPolicy& policy) {
  if (policy.has_all()) return on_disk;
  if (policy.has_specific()) {
    std::vector<int64_t> chosen;
    for (int64_t v : on_disk) {
      const auto& want = policy.specific().versions();
      if (std::find(want.begin(), want.end(), v) != want.end()) chosen.push_back(v);
    }
    return chosen;
  }
  const size_t n = policy.has_latest() ? std::max<uint32_t>(1, policy.latest().num_versions()) : 1;
  return {on_disk.end() - static_cast<std::ptrdiff_t>(std::min(n, on_disk.size())), on_disk.end()};
}

}  // namespace

StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Load(const std::string& root,
                                                                const ServeOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return NotFound("model repository '" + root + "' is not a folder; pass the folder that " +
                    "holds <model>/config.pbtxt and <model>/<version>/model.onnx");
  }
  auto repo = std::make_unique<ModelRepository>();
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (entry.is_directory()) dirs.push_back(entry.path());
  }
  std::sort(dirs.begin(), dirs.end());
  for (const fs::path& dir : dirs) {
    const std::string name = dir.filename().string();
    ASSIGN_OR_RETURN(inference::ModelConfig config,
                     ReadModelConfig((dir / "config.pbtxt").string()));
    const std::string file =
        config.default_model_filename().empty() ? "model.onnx" : config.default_model_filename();
    std::vector<int64_t> on_disk;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string v = entry.path().filename().string();
      if (entry.is_directory() && IsVersionName(v) && fs::exists(entry.path() / file)) {
        on_disk.push_back(std::stoll(v));
      }
    }
    std::sort(on_disk.begin(), on_disk.end());
    const std::vector<int64_t> versions = SelectVersions(on_disk, config.version_policy());
    if (versions.empty()) {
      return NotFound("model '" + name + "' has no version to serve: expected " +
                      (dir / "<version>" / file).string() +
                      " (a numbered folder) matching its version_policy");
    }
    for (int64_t version : versions) {
      const std::string path = (dir / std::to_string(version) / file).string();
      ASSIGN_OR_RETURN(std::unique_ptr<ServedModel> model,
                       ServedModel::Load(name, version, path, config, options));
      RETURN_IF_ERROR(model->WarmUp());
      Logger("serve")->info("model '{}' version {} ready", name, version);
      repo->models_[name][version] = std::move(model);
    }
  }
  return repo;
}

StatusOr<ServedModel*> ModelRepository::Find(const std::string& name,
                                             const std::string& version) const {
  auto it = models_.find(name);
  if (it == models_.end()) {
    std::string names;
    for (const auto& [n, v] : models_) names += (names.empty() ? "'" : ", '") + n + "'";
    return NotFound("unknown model '" + name + "'; this server serves " +
                    (names.empty() ? std::string("no models") : names));
  }
  if (version.empty()) return it->second.rbegin()->second.get();
  std::string served;
  for (const auto& [v, m] : it->second) served += (served.empty() ? "" : ", ") + std::to_string(v);
  if (IsVersionName(version)) {
    auto v = it->second.find(std::stoll(version));
    if (v != it->second.end()) return v->second.get();
  }
  return NotFound("model '" + name + "' has no version '" + version + "'; served versions: " +
                  served + " (or leave the version empty for the newest)");
}

std::vector<ServedModel*> ModelRepository::All() const {
  std::vector<ServedModel*> all;
  for (const auto& [name, versions] : models_) {
    for (const auto& [v, m] : versions) all.push_back(m.get());
  }
  return all;
}

std::vector<int64_t> ModelRepository::Versions(const std::string& name) const {
  std::vector<int64_t> out;
  auto it = models_.find(name);
  if (it != models_.end()) {
    for (const auto& [v, m] : it->second) out.push_back(v);
  }
  return out;
}

}  // namespace parnet::serve
