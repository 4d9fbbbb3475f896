#include "runtime/serve/http_frontend.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "runtime/serve/classification.h"
#include "runtime/serve/datatype.h"
#include "runtime/serve/frontend.h"
#include "runtime/serve/http_json.h"
#include "runtime/serve/http_reply.h"
#include "runtime/serve/http_shared_memory.h"
#include "runtime/serve/model_config.h"
#include "runtime/serve/peer_socket.h"

namespace parnet::serve {
namespace {

// Requests a keep-alive connection may make before the server closes it (see Start()).
constexpr size_t kKeepAliveRequests = 100;

using json = nlohmann::json;
constexpr const char* kHeaderLength = "Inference-Header-Content-Length";

// A JSON member of the expected kind, or an INVALID_ARGUMENT naming it.
StatusOr<const json*> Member(const json& object, const char* key, json::value_t kind,
                             const std::string& where, bool required = true) {
  auto it = object.find(key);
  if (it == object.end()) {
    if (!required) return static_cast<const json*>(nullptr);
    return InvalidArgument(where + " lacks \"" + key + "\"");
  }
  const bool ok = it->type() == kind ||
                  (kind == json::value_t::number_integer && it->is_number_integer());
  if (!ok) {
    return InvalidArgument(where + ": \"" + key + "\" is " + it->type_name() + ", expected " +
                           json(kind).type_name());
  }
  return &*it;
}

struct HttpRequestOutputs {
  std::vector<std::string> names;
  std::vector<bool> binary;
  std::vector<std::optional<SharedMemoryRef>> regions;  // where each goes instead of the body
  std::vector<int64_t> classes;  // the classification extension's class count; 0: scores
  bool default_binary = false;
};

// The JSON + binary body of an infer request as an InferRequest. Binary tensors borrow from
// `body`, which must outlive the request.
StatusOr<InferRequest> DecodeInfer(const std::string& body, size_t header_length,
                                   const json& header, const SharedMemoryRegions& regions,
                                   HttpRequestOutputs* outputs) {
  if (!header.is_object()) {
    return InvalidArgument("the inference request must be a JSON object with \"inputs\"");
  }
  InferRequest out;
  if (auto id = header.find("id"); id != header.end() && id->is_string()) out.id = *id;
  ASSIGN_OR_RETURN(const json* params,
                   Member(header, "parameters", json::value_t::object, "request", false));
  if (params) {
    if (auto b = params->find("binary_data_output"); b != params->end() && b->is_boolean()) {
      outputs->default_binary = *b;
    }
    if (auto t = params->find("timeout"); t != params->end() && t->is_number_unsigned()) {
      out.timeout_us = *t;
    }
  }
  ASSIGN_OR_RETURN(const json* inputs, Member(header, "inputs", json::value_t::array, "request"));
  size_t offset = header_length;
  for (const json& in : *inputs) {
    if (!in.is_object()) return InvalidArgument("every entry of \"inputs\" must be an object");
    ASSIGN_OR_RETURN(const json* name_j, Member(in, "name", json::value_t::string, "input"));
    const std::string name = *name_j;
    const std::string where = "input '" + name + "'";
    ASSIGN_OR_RETURN(const json* type_j, Member(in, "datatype", json::value_t::string, where));
    ASSIGN_OR_RETURN(DType dtype, DTypeFromProtocolName(*type_j));
    ASSIGN_OR_RETURN(const json* shape_j, Member(in, "shape", json::value_t::array, where));
    Shape shape;
    for (const json& d : *shape_j) {
      if (!d.is_number_integer()) return InvalidArgument(where + ": shape must hold integers");
      shape.push_back(d.get<int64_t>());
    }
    ASSIGN_OR_RETURN(size_t bytes, TensorByteSize(name, dtype, shape));
    if (out.inputs.count(name)) {
      return InvalidArgument(where + " appears twice; send each input once");
    }
    ASSIGN_OR_RETURN(const json* in_params,
                     Member(in, "parameters", json::value_t::object, where, false));
    const json* binary_size = nullptr;
    if (in_params) {
      auto it = in_params->find("binary_data_size");
      if (it != in_params->end()) binary_size = &*it;
    }
    const bool has_data = in.contains("data");
    ASSIGN_OR_RETURN(std::optional<SharedMemoryRef> ref, SharedMemoryRefOfJson(in_params, where));
    Tensor tensor;
    if (ref) {
      if (has_data || binary_size != nullptr) {
        return InvalidArgument(where +
                               " has shared memory parameters and data; send its data "
                               "one way");
      }
      ASSIGN_OR_RETURN(tensor,
                       InputFromSharedMemory(regions, *ref, name, dtype, shape, bytes, &out));
    } else if (binary_size != nullptr) {
      if (has_data) {
        return InvalidArgument(where + " has both \"data\" and binary_data_size; use one");
      }
      if (!binary_size->is_number_unsigned() || binary_size->get<uint64_t>() != bytes) {
        return InvalidArgument(where + ": binary_data_size is " + binary_size->dump() +
                               ", but " + ProtocolName(dtype) + ShapeToString(shape) +
                               " needs " + std::to_string(bytes) + " bytes");
      }
      if (body.size() - offset < bytes) {
        return InvalidArgument(where + ": the body holds " + std::to_string(body.size() - offset) +
                               " binary bytes after the JSON header, but the input needs " +
                               std::to_string(bytes) + "; check " + kHeaderLength);
      }
      tensor = BorrowOrCopy(dtype, shape, body.data() + offset, bytes);
      offset += bytes;
    } else if (has_data) {
      ASSIGN_OR_RETURN(tensor, TensorFromJson(in["data"], name, dtype, shape));
    } else {
      return InvalidArgument(where + " has neither \"data\" nor a binary_data_size parameter");
    }
    out.inputs[name] = std::move(tensor);
  }
  if (offset != body.size()) {
    return InvalidArgument("the body has " + std::to_string(body.size() - offset) +
                           " bytes no input claims; check " + kHeaderLength +
                           " and each input's binary_data_size");
  }
  ASSIGN_OR_RETURN(const json* outs,
                   Member(header, "outputs", json::value_t::array, "request", false));
  if (outs) {
    for (const json& o : *outs) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) {
        return InvalidArgument("every entry of \"outputs\" must be an object with a \"name\"");
      }
      bool binary = outputs->default_binary;
      std::optional<SharedMemoryRef> ref;
      int64_t classes = 0;
      if (auto p = o.find("parameters"); p != o.end() && p->is_object()) {
        ASSIGN_OR_RETURN(
            ref, SharedMemoryRefOfJson(&*p, "output '" + o["name"].get<std::string>() + "'"));
        if (auto c = p->find("classification"); c != p->end()) {
          const std::string what = "output '" + o["name"].get<std::string>() + "'";
          if (!c->is_number_integer()) {
            return InvalidArgument(what + ": parameter classification must be an integer");
          }
          classes = c->get<int64_t>();
          RETURN_IF_ERROR(CheckClassCount(what, classes));
          if (ref) return ClassesInSharedMemory(what);
        }
        if (auto b = p->find("binary_data"); b != p->end() && b->is_boolean()) binary = *b;
      }
      outputs->names.push_back(o["name"]);
      outputs->binary.push_back(binary);
      outputs->regions.push_back(std::move(ref));
      outputs->classes.push_back(classes);
    }
  }
  return out;
}

// `listen_port`: the server's, to find the request's connection while it waits (PeerConnection).
void HandleInfer(const ModelRepository* repo, const SharedMemoryRegions& regions, int listen_port,
                 const httplib::Request& req, const std::string& body, httplib::Response& res) {
  const Clock::time_point arrival = Clock::now();
  const std::string version = req.matches.size() > 2 ? req.matches[2].str() : "";
  StatusOr<ServedModel*> found = repo->Find(req.matches[1], version);
  if (!found.ok()) return Reply(res, found.status());
  ServedModel* model = *found;
  auto fail = [&](const Status& s) {
    model->RecordRequest(arrival, false);
    Reply(res, s);
  };
  size_t header_length = body.size();
  if (req.has_header(kHeaderLength)) {
    const std::string value = req.get_header_value(kHeaderLength);
    char* end = nullptr;
    const unsigned long long n = std::strtoull(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || n > body.size()) {
      return fail(InvalidArgument(std::string(kHeaderLength) + " is '" + value +
                                  "', but the body has " + std::to_string(body.size()) +
                                  " bytes; send the JSON header's length"));
    }
    header_length = n;
  }
  json header = json::parse(body.begin(), body.begin() + header_length, nullptr, false);
  if (header.is_discarded()) {
    return fail(InvalidArgument("malformed JSON in the inference request (" +
                                std::to_string(header_length) +
                                " bytes); send a JSON object as the protocol describes"));
  }
  HttpRequestOutputs outputs;
  StatusOr<InferRequest> decoded = DecodeInfer(body, header_length, header, regions, &outputs);
  if (!decoded.ok()) return fail(decoded.status());
  StatusOr<std::vector<std::string>> names = SelectOutputs(*model, outputs.names);
  if (!names.ok()) return fail(names.status());
  if (outputs.names.empty()) {
    outputs.binary.assign(names->size(), outputs.default_binary);
    outputs.regions.assign(names->size(), std::nullopt);
    outputs.classes.assign(names->size(), 0);
  }
  // Held from here until the answer is written (see CheckOutputRegion).
  std::vector<std::optional<SharedMemorySlice>> slices(names->size());
  for (size_t i = 0; i < names->size(); ++i) {
    if (!outputs.regions[i]) continue;
    StatusOr<SharedMemorySlice> slice =
        CheckOutputRegion(regions, *model, (*names)[i], *outputs.regions[i], BatchOf(*decoded));
    if (!slice.ok()) return fail(slice.status());
    slices[i] = std::move(*slice);
  }
  decoded->arrival = arrival;
  decoded->counted_by_front_end = true;
  PeerConnection client(listen_port, req.remote_addr, req.remote_port);
  StatusOr<InferResult> result =
      InferAndWait(model, std::move(*decoded), [&client] { return client.Gone(); });
  if (!result.ok()) return Reply(res, result.status());

  json response = {{"model_name", model->name()},
                   {"model_version", std::to_string(model->version())}};
  if (auto id = header.find("id"); id != header.end() && id->is_string()) response["id"] = *id;
  std::string binary;
  json outs = json::array();
  for (size_t i = 0; i < names->size(); ++i) {
    const Tensor& t = OutputOf(*result, (*names)[i]);
    json o = {{"name", (*names)[i]}, {"datatype", ProtocolName(t.dtype())}, {"shape", t.shape()}};
    if (outputs.classes[i] > 0) {
      StatusOr<Classes> classes = Classify("output '" + (*names)[i] + "'", t, outputs.classes[i],
                                           model->config().max_batch_size() > 0, model->labels());
      if (!classes.ok()) return fail(classes.status());
      o["datatype"] = "BYTES";
      o["shape"] = classes->shape;
      if (outputs.binary[i]) {
        const std::string bytes = SerializeBytes(classes->values);
        o["parameters"] = {{"binary_data_size", bytes.size()}};
        binary += bytes;
      } else {
        o["data"] = classes->values;
      }
    } else if (slices[i]) {
      Status written = OutputToSharedMemory(*slices[i], (*names)[i], t);
      // No "parameters": Triton's C++ client reads binary_data_size from any it finds.
      if (!written.ok()) return fail(written);
    } else if (outputs.binary[i]) {
      o["parameters"] = {{"binary_data_size", t.num_bytes()}};
      binary.append(static_cast<const char*>(t.raw_data()), t.num_bytes());
    } else {
      o["data"] = TensorToJson(t);
    }
    outs.push_back(std::move(o));
  }
  response["outputs"] = std::move(outs);
  // A label file is the user's bytes: invalid UTF-8 in one is replaced, not thrown on.
  std::string text = response.dump(-1, ' ', false, json::error_handler_t::replace);
  res.status = 200;
  if (binary.empty()) {
    res.set_content(text, "application/json");
  } else {
    res.set_header(kHeaderLength, std::to_string(text.size()));
    res.set_content(text + binary, "application/octet-stream");
  }
  model->RecordRequest(arrival, true);
}

json ModelMetadataJson(const ModelRepository* repo, const ServedModel& model) {
  const auto& config = model.config();
  const bool batched = config.max_batch_size() > 0;
  auto tensor = [&](const std::string& name, inference::DataType type, const auto& dims) {
    std::vector<int64_t> shape;
    if (batched) shape.push_back(-1);
    shape.insert(shape.end(), dims.begin(), dims.end());
    return json{{"name", name}, {"datatype", ProtocolName(DTypeFromConfig(type))},
                {"shape", shape}};
  };
  json j = {{"name", model.name()},
            {"platform", config.platform().empty() ? "onnxruntime_onnx" : config.platform()}};
  std::vector<std::string> versions;
  for (int64_t v : repo->Versions(model.name())) versions.push_back(std::to_string(v));
  j["versions"] = versions;
  j["inputs"] = json::array();
  for (const auto& in : config.input()) j["inputs"].push_back(tensor(in.name(), in.data_type(), in.dims()));
  j["outputs"] = json::array();
  for (const auto& out : config.output()) {
    j["outputs"].push_back(tensor(out.name(), out.data_type(), out.dims()));
  }
  return j;
}

json StatsJson(const ServedModel& m) {
  const StatsSnapshot s = m.stats().Snapshot();
  auto d = [](const Duration& x) { return json{{"count", x.count}, {"ns", x.ns}}; };
  json batches = json::array();
  for (const auto& [size, b] : s.batches) {
    batches.push_back({{"batch_size", size},
                       {"compute_input", d(b.compute_input)},
                       {"compute_infer", d(b.compute_infer)},
                       {"compute_output", d(b.compute_output)}});
  }
  return {{"name", m.name()},
          {"version", std::to_string(m.version())},
          {"last_inference", s.last_inference_ms},
          {"inference_count", s.inference_count},
          {"execution_count", s.execution_count},
          {"inference_stats",
           {{"success", d(s.success)}, {"fail", d(s.fail)}, {"queue", d(s.queue)},
            {"compute_input", d(s.compute_input)}, {"compute_infer", d(s.compute_infer)},
            {"compute_output", d(s.compute_output)}}},
          {"batch_stats", batches}};
}

// `listen_port` is set once the server is bound, before it serves.
void AddProtocolRoutes(httplib::Server& s, const ModelRepository* repo,
                       const std::atomic<bool>* ready, SharedMemoryRegions* regions,
                       const int* listen_port, size_t max_body_bytes) {
  s.Get("/v2/health/live", [](const httplib::Request&, httplib::Response& res) { res.status = 200; });
  s.Get("/v2/health/ready", [ready](const httplib::Request&, httplib::Response& res) {
    res.status = ready->load() ? 200 : 400;
  });
  s.Get("/v2", [regions](const httplib::Request&, httplib::Response& res) {
    ReplyJson(res, {{"name", kServerName},
                    {"version", kServerVersion},
                    {"extensions", ServerExtensions(*regions)}});
  });
  AddSharedMemoryRoutes(s, regions);
  s.Get("/v2/models/stats", [repo](const httplib::Request&, httplib::Response& res) {
    json all = json::array();
    for (ServedModel* m : repo->All()) all.push_back(StatsJson(*m));
    ReplyJson(res, {{"model_stats", all}});
  });
  s.Post("/v2/repository/index", [repo](const httplib::Request&, httplib::Response& res) {
    json all = json::array();
    for (ServedModel* m : repo->All()) {
      all.push_back({{"name", m->name()}, {"version", std::to_string(m->version())},
                     {"state", m->ready() ? "READY" : "LOADING"}});
    }
    ReplyJson(res, all);
  });
  const std::string model = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";
  auto find = [repo](const httplib::Request& req) {
    return repo->Find(req.matches[1], req.matches.size() > 2 ? req.matches[2].str() : "");
  };
  s.Get(model + "/ready", [find](const httplib::Request& req, httplib::Response& res) {
    StatusOr<ServedModel*> m = find(req);
    if (!m.ok()) return Reply(res, m.status());
    res.status = (*m)->ready() ? 200 : 400;
  });
  s.Get(model + "/config", [find](const httplib::Request& req, httplib::Response& res) {
    StatusOr<ServedModel*> m = find(req);
    if (!m.ok()) return Reply(res, m.status());
    res.status = 200;
    res.set_content(ModelConfigToJson((*m)->config()), "application/json");
  });
  s.Get(model + "/stats", [find](const httplib::Request& req, httplib::Response& res) {
    StatusOr<ServedModel*> m = find(req);
    if (!m.ok()) return Reply(res, m.status());
    ReplyJson(res, {{"model_stats", json::array({StatsJson(**m)})}});
  });
  s.Get(model, [find, repo](const httplib::Request& req, httplib::Response& res) {
    StatusOr<ServedModel*> m = find(req);
    if (!m.ok()) return Reply(res, m.status());
    ReplyJson(res, ModelMetadataJson(repo, **m));
  });
  s.Post(model + "/infer", [repo, regions, listen_port, max_body_bytes](
                               const httplib::Request& req, httplib::Response& res,
                               const httplib::ContentReader& reader) {
    std::string body;
    // Read into one allocation of the announced size. cpp-httplib's own body grows by appending,
    // and each larger buffer, freed, went back to the kernel (glibc's trim and mmap thresholds),
    // so the next request faulted in fresh pages. A fresh server's floor model (588 KiB
    // requests) answered at c=1 in 2.11 ms p50 that way, in 0.96 ms this way
    // (scripts/bench_serve_ab.py).
    const size_t announced = req.get_header_value<uint64_t>("Content-Length");
    if (announced <= max_body_bytes) body.reserve(announced);
    // Without a body, the empty one is refused as malformed JSON.
    if (HasBody(req) && !reader([&body](const char* data, size_t n) {
          body.append(data, n);
          return true;
        })) {
      return;  // cpp-httplib answers: 413 over the limit; a body cut short has no client left
    }
    HandleInfer(repo, *regions, *listen_port, req, body, res);
  });
}

void AddMetricsRoute(httplib::Server& s, const ModelRepository* repo) {
  s.Get("/metrics", [repo](const httplib::Request&, httplib::Response& res) {
    std::vector<LabeledStats> all;
    for (ServedModel* m : repo->All()) {
      all.push_back({m->name(), std::to_string(m->version()), m->stats().Snapshot(),
                     m->queue_size()});
    }
    res.status = 200;
    res.set_content(RenderPrometheus(all), "text/plain; version=0.0.4");
  });
}

}  // namespace

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpOptions& options,
                                                        const ModelRepository* repository,
                                                        const std::atomic<bool>* ready,
                                                        SharedMemoryRegions* regions,
                                                        bool metrics_only) {
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->server_ = std::make_unique<httplib::Server>();
  httplib::Server& s = *server->server_;
  const int threads = std::max(options.threads, 1);
  s.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  // A connection holds a pool thread for as long as it stays open: past --http-threads
  // keep-alive clients, the rest would wait until one disconnects. Closing a connection after
  // kKeepAliveRequests requests (the client reconnects) lets them take turns.
  s.set_keep_alive_max_count(kKeepAliveRequests);
  // cpp-httplib sets SO_REUSEPORT, with which a second server on the same port starts without
  // error and the kernel splits the clients between the two; SO_REUSEADDR alone refuses it.
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // cpp-httplib writes a response's headers and body in separate send() calls. With Nagle's
  // algorithm on, the body then waits for the ACK of the headers, which the client delays by up
  // to 40 ms: every keep-alive request paid that (perf_analyzer over HTTP: p50 43.9 ms for a
  // 0.14 ms model).
  s.set_tcp_nodelay(true);
  s.set_payload_max_length(options.max_body_bytes);
  const size_t limit = options.max_body_bytes;
  s.set_error_handler([limit](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message = "HTTP " + std::to_string(res.status) + " for " + req.method + " " +
                          req.path;
    if (res.status == 413 && req.get_header_value("Content-Type") ==
                                 "application/x-www-form-urlencoded") {
      // cpp-httplib caps form-encoded bodies at 8 KiB whatever the payload limit.
      message = "the body is sent as application/x-www-form-urlencoded, which is limited to "
                "8192 bytes; send Content-Type: application/json (or application/octet-stream "
                "with Inference-Header-Content-Length)";
    } else if (res.status == 413) {
      message = "the request body is larger than the limit of " + std::to_string(limit) +
                " bytes; send smaller batches or start the server with a larger --max-message-mb";
    } else if (res.status == 404) {
      message = "no endpoint " + req.method + " " + req.path +
                "; the protocol's endpoints are under /v2 (e.g. /v2/models/<model>/infer)";
    }
    res.set_content(json{{"error", message}}.dump(), "application/json");
  });
  if (metrics_only) {
    AddMetricsRoute(s, repository);
  } else {
    AddProtocolRoutes(s, repository, ready, regions, &server->port_, options.max_body_bytes);
  }
  int port = options.port;
  if (port == 0) {
    port = s.bind_to_any_port(options.host);
  } else if (!s.bind_to_port(options.host, port)) {
    port = -1;
  }
  if (port < 0) {
    return Status(StatusCode::kUnavailable,
                  "cannot listen on " + options.host + ":" + std::to_string(options.port) +
                      " (HTTP); is another server using the port? choose another with --" +
                      (metrics_only ? "metrics-port" : "http-port"));
  }
  server->port_ = port;
  auto ended = std::make_shared<std::atomic<bool>>(false);
  server->thread_ = std::thread([&s, ended] {
    s.listen_after_bind();
    *ended = true;
  });
  // cpp-httplib's stop() does nothing until the server listens; a Stop() before that (the next
  // port failing to bind) would then wait forever for this thread. Return once it listens.
  while (!s.is_running() && !*ended) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!s.is_running()) {
    return Status(StatusCode::kUnavailable, "the HTTP server on " + options.host + ":" +
                                                std::to_string(port) + " stopped at once");
  }
  return server;
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace parnet::serve
