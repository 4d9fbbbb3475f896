// Triton's system shared-memory extension: a client on the same host registers a POSIX shared
// memory object (shm_open key, offset, byte size) under a name, then sends requests whose inputs
// are read from, and whose outputs are written to, parts of that region instead of the message.
// A 224x224 FP32 image then crosses no socket at all.
//
// Registering maps the region into the server. Because any object the server's user may open
// could be named, registration is refused unless the server was started with
// --allow-client-shm (as Triton's --allow-client-shm), which only trusted local clients should
// reach. A region stays mapped while a request that uses it is in flight, even once it is
// unregistered. An owner that shrinks the object under a registered region would make the
// server's next access a SIGBUS: the server's handler (InstallTruncationGuard) maps zeros over
// the missing pages instead, and the requests touching the region fail with an error saying so
// (SharedMemorySlice::Ok also compares the object's size with the region's).
//
// Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/core/status.h"

namespace parnet::serve {

struct SharedMemoryRegionInfo {
  std::string name;
  std::string key;
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};

// Where a tensor lies in a registered region: the protocol's shared_memory_region,
// shared_memory_offset and shared_memory_byte_size parameters.
struct SharedMemoryRef {
  std::string region;
  uint64_t offset = 0;
  uint64_t byte_size = 0;
};

struct SharedMemoryMapping;  // shared_memory.cc

// Bytes of a region; `mapping` keeps them mapped. Ok() says whether the region is still whole (an
// error naming `what` when its owner shrank the object under it, so that reads found zeros and
// writes were lost).
struct SharedMemorySlice {
  std::byte* data = nullptr;
  size_t bytes = 0;
  std::string region;
  std::shared_ptr<const SharedMemoryMapping> mapping;
  Status Ok(const std::string& what) const;
};

class SharedMemoryRegions {
 public:
  explicit SharedMemoryRegions(bool allow_registration) : allowed_(allow_registration) {}
  bool allowed() const { return allowed_; }

  // Maps `byte_size` bytes at `offset` of the object `key` under `name`. ALREADY_EXISTS when the
  // name is taken, INVALID_ARGUMENT when the object cannot be opened or is too small,
  // FAILED_PRECONDITION when registration is off.
  Status Register(const std::string& name, const std::string& key, uint64_t offset,
                  uint64_t byte_size);
  // Drops `name` (every region when empty); an unknown name is not an error, as in Triton.
  void Unregister(const std::string& name);
  // Every region, or the named one (NOT_FOUND when it is not registered).
  StatusOr<std::vector<SharedMemoryRegionInfo>> List(const std::string& name) const;
  // The bytes `ref` names, checked against the region's size; `what` names the tensor in errors
  // ("input 'x'").
  StatusOr<SharedMemorySlice> Slice(const SharedMemoryRef& ref, const std::string& what) const;

 private:
  const bool allowed_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<SharedMemoryMapping>> regions_;
};

// Installs the SIGBUS handler that keeps a shrunk shared memory object from killing the server
// (see above). Idempotent; Register() calls it.
void InstallTruncationGuard();

}  // namespace parnet::serve
