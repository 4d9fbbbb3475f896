#include "runtime/serve/http_shared_memory.h"

#include <functional>

#include "runtime/serve/frontend.h"
#include "runtime/serve/http_reply.h"

namespace parnet::serve {
namespace {

using json = nlohmann::json;

json RegionsJson(const std::vector<SharedMemoryRegionInfo>& regions) {
  json all = json::array();
  for (const auto& r : regions) {
    all.push_back(
        {{"name", r.name}, {"key", r.key}, {"offset", r.offset}, {"byte_size", r.byte_size}});
  }
  return all;
}

// A register request's body: {"key": string, "offset": uint, "byte_size": uint}.
Status RegisterFromBody(SharedMemoryRegions* regions, const std::string& name,
                        const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  const std::string what = "registering shared memory region '" + name + "'";
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgument(what +
                           ": the body must be a JSON object with \"key\", \"offset\" "
                           "and \"byte_size\"");
  }
  auto key = j.find("key");
  auto byte_size = j.find("byte_size");
  auto offset = j.find("offset");
  if (key == j.end() || !key->is_string() || byte_size == j.end() ||
      !byte_size->is_number_unsigned() || (offset != j.end() && !offset->is_number_unsigned())) {
    return InvalidArgument(what +
                           ": the body needs \"key\" (a string), \"byte_size\" and "
                           "optionally \"offset\" (non-negative integers); got " +
                           j.dump());
  }
  return regions->Register(name, *key, offset == j.end() ? 0 : offset->get<uint64_t>(),
                           byte_size->get<uint64_t>());
}

// Answers a POST that carries no body. Clients (tritonclient among them) send unregister
// requests without Content-Length, which cpp-httplib refuses with 400 before routing unless the
// handler takes a ContentReader; a body that is announced is read and ignored.
httplib::Server::HandlerWithContentReader Bodiless(
    std::function<void(const httplib::Request&, httplib::Response&)> handler) {
  return [handler](const httplib::Request& req, httplib::Response& res,
                   const httplib::ContentReader& reader) {
    if (HasBody(req)) reader([](const char*, size_t) { return true; });
    handler(req, res);
  };
}

}  // namespace

void AddSharedMemoryRoutes(httplib::Server& s, SharedMemoryRegions* regions) {
  const std::string system = "/v2/systemsharedmemory";
  const std::string region = "(?:/region/([^/]+))?";
  auto name_of = [](const httplib::Request& req) {
    return req.matches.size() > 1 ? req.matches[1].str() : std::string();
  };
  s.Get(system + region + "/status",
        [regions, name_of](const httplib::Request& req, httplib::Response& res) {
          StatusOr<std::vector<SharedMemoryRegionInfo>> list = regions->List(name_of(req));
          if (!list.ok()) return Reply(res, list.status());
          ReplyJson(res, RegionsJson(*list));
        });
  s.Post(system + "/region/([^/]+)/register",
         [regions](const httplib::Request& req, httplib::Response& res) {
           Status s = RegisterFromBody(regions, req.matches[1], req.body);
           if (!s.ok()) return Reply(res, s);
           res.status = 200;
         });
  s.Post(system + region + "/unregister",
         Bodiless([regions, name_of](const httplib::Request& req, httplib::Response& res) {
           regions->Unregister(name_of(req));
           res.status = 200;
         }));
  const std::string cuda = "/v2/cudasharedmemory";
  s.Get(cuda + region + "/status", [name_of](const httplib::Request& req, httplib::Response& res) {
    if (name_of(req).empty()) return ReplyJson(res, json::array());
    Reply(res, NotFound("CUDA shared memory region '" + name_of(req) +
                        "' is not registered (parnet serves system shared memory only)"));
  });
  s.Post(
      cuda + "/region/([^/]+)/register", [](const httplib::Request& req, httplib::Response& res) {
        Reply(res, Unimplemented("registering CUDA shared memory region '" + req.matches[1].str() +
                                 "': parnet serves system shared memory only; register the "
                                 "tensor's host copy under " +
                                 "/v2/systemsharedmemory"));
      });
  s.Post(cuda + region + "/unregister",
         Bodiless([](const httplib::Request&, httplib::Response& res) { res.status = 200; }));
}

StatusOr<std::optional<SharedMemoryRef>> SharedMemoryRefOfJson(const json* params,
                                                               const std::string& what) {
  if (params == nullptr) return std::optional<SharedMemoryRef>();
  std::string region_value;
  const std::string* region = nullptr;
  int64_t values[2] = {0, 0};
  const int64_t* numbers[2] = {nullptr, nullptr};
  const char* keys[2] = {"shared_memory_offset", "shared_memory_byte_size"};
  if (auto it = params->find("shared_memory_region"); it != params->end()) {
    if (!it->is_string()) {
      return InvalidArgument(what + ": parameter shared_memory_region must be a string");
    }
    region_value = *it;
    region = &region_value;
  }
  for (int i = 0; i < 2; ++i) {
    auto it = params->find(keys[i]);
    if (it == params->end()) continue;
    if (!it->is_number_integer()) {
      return InvalidArgument(what + ": parameter " + keys[i] + " must be an integer");
    }
    values[i] = it->get<int64_t>();
    numbers[i] = &values[i];
  }
  return SharedMemoryRefOf(what, region, numbers[0], numbers[1]);
}

}  // namespace parnet::serve
