#include "runtime/serve/shared_memory.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>

namespace parnet::serve {
namespace {

// The mappings the SIGBUS handler may repair. A handler can take no lock, so each mapping
// claims a slot of a fixed table; the handler only reads it.
struct GuardSlot {
  std::atomic<bool> used{false};
  std::atomic<uintptr_t> begin{0}, end{0};  // [begin, end): empty while either is 0
  std::atomic<bool> truncated{false};
};
constexpr size_t kGuardSlots = 1024;
std::array<GuardSlot, kGuardSlots> g_slots;
struct sigaction g_previous_sigbus;
uintptr_t g_page = 4096;

// A read or write past the end of a shrunk object: the rest of that mapping becomes private
// zero pages, so the access completes; the slot records it for SharedMemorySlice::Ok(). Faults
// elsewhere get the previous disposition back and fault again.
void OnSigbus(int, siginfo_t* info, void*) {
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  for (GuardSlot& s : g_slots) {
    const uintptr_t begin = s.begin.load(std::memory_order_acquire);
    const uintptr_t end = s.end.load(std::memory_order_acquire);
    if (begin == 0 || end == 0 || addr < begin || addr >= end) continue;
    const uintptr_t page = addr & ~(g_page - 1);
    void* replaced = mmap(reinterpret_cast<void*>(page), end - page, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (replaced != MAP_FAILED) {
      s.truncated.store(true, std::memory_order_release);
      return;
    }
  }
  sigaction(SIGBUS, &g_previous_sigbus, nullptr);
}

std::string Quoted(const std::string& s) { return "'" + s + "'"; }

}  // namespace

void InstallTruncationGuard() {
  static const bool installed = [] {
    g_page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    struct sigaction action {};
    action.sa_sigaction = OnSigbus;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    return sigaction(SIGBUS, &action, &g_previous_sigbus) == 0;
  }();
  (void)installed;
}

struct SharedMemoryRegions::Mapping {
  SharedMemoryRegionInfo info;
  void* base = MAP_FAILED;
  size_t length = 0;
  std::byte* data = nullptr;  // base + the offset's distance from its page start
  GuardSlot* slot = nullptr;

  ~Mapping() {
    if (slot != nullptr) {
      slot->end.store(0, std::memory_order_release);
      slot->begin.store(0, std::memory_order_release);
      slot->truncated.store(false);
      slot->used.store(false, std::memory_order_release);
    }
    if (base != MAP_FAILED) munmap(base, length);
  }
};

Status SharedMemorySlice::Ok(const std::string& what) const {
  if (truncated == nullptr || !truncated->load(std::memory_order_acquire)) return Status::Ok();
  return InvalidArgument(what + ": shared memory region " + Quoted(region) +
                         " was shrunk by its owner while registered, so part of it read as "
                         "zeros; recreate the object at its registered size and register the "
                         "region again");
}

Status SharedMemoryRegions::Register(const std::string& name, const std::string& key,
                                     uint64_t offset, uint64_t byte_size) {
  const std::string region = "shared memory region " + Quoted(name);
  if (!allowed_) {
    return Status(StatusCode::kFailedPrecondition,
                  "registering " + region +
                      " refused: client shared memory is off; start "
                      "`parnet serve` with --allow-client-shm (only for clients you trust: a "
                      "region can name any shared memory object the server may open)");
  }
  if (name.empty() || key.empty() || byte_size == 0) {
    return InvalidArgument(
        "registering a shared memory region needs a name, a key and a "
        "byte_size >= 1 (got name " +
        Quoted(name) + ", key " + Quoted(key) + ", byte_size " + std::to_string(byte_size) + ")");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (regions_.count(name)) {
      return Status(StatusCode::kAlreadyExists,
                    region +
                        " is registered already; unregister it first or choose another "
                        "name");
    }
  }
  InstallTruncationGuard();
  auto mapping = std::make_shared<Mapping>();
  mapping->info = {name, key, offset, byte_size};
  const int fd = shm_open(key.c_str(), O_RDWR, 0);
  if (fd < 0) {
    return InvalidArgument("registering " + region + ": cannot open shared memory object " +
                           Quoted(key) + " (" + std::strerror(errno) +
                           "); create it first (shm_open) with the key the client registers");
  }
  struct stat st {};
  const bool stat_ok = fstat(fd, &st) == 0;
  const uint64_t object_bytes = stat_ok ? static_cast<uint64_t>(st.st_size) : 0;
  if (!stat_ok || offset > object_bytes || byte_size > object_bytes - offset) {
    close(fd);
    return InvalidArgument("registering " + region + ": offset " + std::to_string(offset) +
                           " + byte_size " + std::to_string(byte_size) + " exceeds the " +
                           std::to_string(object_bytes) + " bytes of object " + Quoted(key));
  }
  const uint64_t page_start = offset & ~static_cast<uint64_t>(g_page - 1);
  mapping->length = static_cast<size_t>(byte_size + (offset - page_start));
  mapping->base = mmap(nullptr, mapping->length, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                       static_cast<off_t>(page_start));
  const int map_errno = errno;
  close(fd);
  if (mapping->base == MAP_FAILED) {
    return InvalidArgument("registering " + region + ": cannot map object " + Quoted(key) + " (" +
                           std::strerror(map_errno) + ")");
  }
  mapping->data = static_cast<std::byte*>(mapping->base) + (offset - page_start);
  for (GuardSlot& s : g_slots) {
    bool expected = false;
    if (s.used.compare_exchange_strong(expected, true)) {
      mapping->slot = &s;
      break;
    }
  }
  if (mapping->slot == nullptr) {
    return Status(StatusCode::kResourceExhausted,
                  "registering " + region + ": " + std::to_string(kGuardSlots) +
                      " regions are mapped already; unregister some first");
  }
  const auto begin = reinterpret_cast<uintptr_t>(mapping->base);
  mapping->slot->begin.store(begin, std::memory_order_release);  // before end: never [0, end)
  mapping->slot->end.store(begin + mapping->length, std::memory_order_release);
  std::lock_guard<std::mutex> lock(mu_);
  if (!regions_.emplace(name, mapping).second) {
    return Status(StatusCode::kAlreadyExists,
                  region +
                      " is registered already; unregister it first or choose another "
                      "name");
  }
  return Status::Ok();
}

void SharedMemoryRegions::Unregister(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (name.empty()) {
    regions_.clear();
  } else {
    regions_.erase(name);
  }
}

StatusOr<std::vector<SharedMemoryRegionInfo>> SharedMemoryRegions::List(
    const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<SharedMemoryRegionInfo> out;
  for (const auto& [n, mapping] : regions_) {
    if (name.empty() || n == name) out.push_back(mapping->info);
  }
  if (!name.empty() && out.empty()) {
    return NotFound("shared memory region " + Quoted(name) + " is not registered");
  }
  return out;
}

StatusOr<SharedMemorySlice> SharedMemoryRegions::Slice(const SharedMemoryRef& ref,
                                                       const std::string& what) const {
  std::shared_ptr<Mapping> mapping;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = regions_.find(ref.region);
    if (it != regions_.end()) mapping = it->second;
  }
  if (!mapping) {
    return InvalidArgument(what + ": shared memory region " + Quoted(ref.region) +
                           " is not registered; register it (SystemSharedMemoryRegister) "
                           "before sending requests that use it");
  }
  const uint64_t size = mapping->info.byte_size;
  if (ref.offset > size || ref.byte_size > size - ref.offset) {
    return InvalidArgument(what + ": shared_memory_offset " + std::to_string(ref.offset) +
                           " + shared_memory_byte_size " + std::to_string(ref.byte_size) +
                           " exceeds the " + std::to_string(size) + " bytes of region " +
                           Quoted(ref.region));
  }
  SharedMemorySlice slice;
  slice.data = mapping->data + ref.offset;
  slice.bytes = static_cast<size_t>(ref.byte_size);
  slice.region = ref.region;
  slice.truncated = &mapping->slot->truncated;
  slice.keep = std::move(mapping);
  return slice;
}

}  // namespace parnet::serve
