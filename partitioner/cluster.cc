#include "partitioner/cluster.h"

#include "proto/text_proto.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <openssl/evp.h>

#include <fstream>
#include <set>
#include <sstream>

namespace parnet::partition {
namespace {

StatusOr<std::string> ReadFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open " + what + " '" + path + "': check the path");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

std::string Hex(const unsigned char* digest, unsigned length) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < length; ++i) {
    out += kDigits[digest[i] >> 4];
    out += kDigits[digest[i] & 15];
  }
  return out;
}

std::string Sha256(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  return Hex(digest, length);
}

}  // namespace

Status ValidateCluster(const Cluster& cluster, const std::string& origin) {
  auto error = [&](const std::string& message) {
    return InvalidArgument("cluster " + origin + ": " + message);
  };
  if (cluster.devices().empty()) {
    return error("no devices; add at least one `devices { name: \"cpu0\" kind: CPU cores: 0 }`");
  }
  std::set<std::string> names;
  for (const Device& device : cluster.devices()) {
    const std::string& name = device.name();
    if (name.empty()) return error("a device has no name; give each device a unique `name`");
    if (!names.insert(name).second) {
      return error("device '" + name + "' is named twice; device names must be unique");
    }
    if (device.kind() == Device::KIND_UNSPECIFIED) {
      return error("device '" + name + "' has no kind; set `kind: CPU` or `kind: CUDA`");
    }
    if (device.kind() == Device::CPU && device.cores().empty()) {
      return error("CPU device '" + name + "' lists no cores; add `cores: 0` (one per core)");
    }
    if (device.gflops() < 0 || device.memory_gbps() < 0) {
      return error("device '" + name + "' has a negative gflops or memory_gbps");
    }
  }
  auto check_link = [&](const Link& link, const std::string& what) -> Status {
    if (!(link.bandwidth_gbit_s() > 0)) {
      return error(what + " has bandwidth_gbit_s " + std::to_string(link.bandwidth_gbit_s()) +
                   "; a link needs a positive bandwidth (in Gbit/s)");
    }
    if (link.latency_us() < 0) return error(what + " has a negative latency_us");
    return Status::Ok();
  };
  std::set<std::pair<std::string, std::string>> pairs;
  for (const Link& link : cluster.links()) {
    const std::string what = "link '" + link.a() + "' - '" + link.b() + "'";
    for (const std::string& end : {link.a(), link.b()}) {
      if (!names.count(end)) {
        return error(what + " names unknown device '" + end + "'; links join devices listed " +
                     "under `devices`");
      }
    }
    if (link.a() == link.b()) return error(what + " joins a device to itself");
    auto key = std::minmax(link.a(), link.b());
    if (!pairs.insert({key.first, key.second}).second) {
      return error(what + " is given twice; keep one link per pair of devices");
    }
    RETURN_IF_ERROR(check_link(link, what));
  }
  if (cluster.has_default_link()) {
    if (!cluster.default_link().a().empty() || !cluster.default_link().b().empty()) {
      return error("default_link names devices; it applies to every pair without a link, so "
                   "leave out `a` and `b`");
    }
    RETURN_IF_ERROR(check_link(cluster.default_link(), "default_link"));
  }
  return Status::Ok();
}

StatusOr<Cluster> ParseCluster(const std::string& text, const std::string& origin) {
  Cluster cluster;
  RETURN_IF_ERROR(ParseTextProto(text, "cluster " + origin, "proto/cluster.proto", &cluster));
  RETURN_IF_ERROR(ValidateCluster(cluster, origin));
  return cluster;
}

StatusOr<Cluster> LoadCluster(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path, "cluster file"));
  return ParseCluster(text, "'" + path + "'");
}

int DeviceIndex(const Cluster& cluster, const std::string& name) {
  for (int i = 0; i < cluster.devices_size(); ++i) {
    if (cluster.devices(i).name() == name) return i;
  }
  return -1;
}

const Link* FindLink(const Cluster& cluster, int a, int b) {
  const std::string& x = cluster.devices(a).name();
  const std::string& y = cluster.devices(b).name();
  for (const Link& link : cluster.links()) {
    if ((link.a() == x && link.b() == y) || (link.a() == y && link.b() == x)) return &link;
  }
  return cluster.has_default_link() ? &cluster.default_link() : nullptr;
}

std::optional<Cluster> MergeCoreSets(const Cluster& cluster) {
  if (cluster.devices_size() < 2) return std::nullopt;
  Cluster merged;
  merged.set_name(cluster.name() + ", all cores as one device");
  Device* all = merged.add_devices();
  all->set_name("all-cores");
  all->set_host(cluster.devices(0).host());
  all->set_kind(Device::CPU);
  std::set<int> cores;
  for (const Device& d : cluster.devices()) {
    if (d.kind() != Device::CPU || d.host() != all->host()) return std::nullopt;
    for (int core : d.cores()) {
      if (!cores.insert(core).second) return std::nullopt;
    }
    all->set_gflops(all->gflops() + d.gflops());
    all->set_memory_gbps(std::max(all->memory_gbps(), d.memory_gbps()));
  }
  for (int core : cores) all->add_cores(core);
  return merged;
}

StatusOr<std::string> Sha256OfFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path, "file"));
  return Sha256(bytes);
}

std::string Sha256OfMessage(const google::protobuf::Message& message) {
  std::string bytes;
  {  // the streams flush into `bytes` when they go out of scope
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return Sha256(bytes);
}

}  // namespace parnet::partition
