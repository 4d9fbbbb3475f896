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
// claims a slot of a fixed table, which the handler only reads: a sequence lock (`version` odd
// while the range changes) keeps it from pairing one mapping's begin with another's end.
struct GuardSlot {
  std::atomic<bool> used{false};
  std::atomic<uint64_t> version{0};
  std::atomic<uintptr_t> begin{0}, end{0};  // [begin, end); empty when begin == end
  std::atomic<bool> truncated{false};

  void SetRange(uintptr_t b, uintptr_t e) {
    version.fetch_add(1, std::memory_order_acq_rel);  // odd: changing
    begin.store(b, std::memory_order_release);
    end.store(e, std::memory_order_release);
    version.fetch_add(1, std::memory_order_acq_rel);  // even: stable
  }
  // Whether `addr` lies in the range, read consistently; `*end_out` gets its end.
  bool Holds(uintptr_t addr, uintptr_t* end_out) const {
    const uint64_t before = version.load(std::memory_order_acquire);
    if (before % 2 != 0) return false;
    const uintptr_t b = begin.load(std::memory_order_acquire);
    const uintptr_t e = end.load(std::memory_order_acquire);
    if (version.load(std::memory_order_acquire) != before) return false;
    *end_out = e;
    return b <= addr && addr < e;
  }
};
constexpr size_t kGuardSlots = 1024;
std::array<GuardSlot, kGuardSlots> g_slots;
struct sigaction g_previous_sigbus;
uintptr_t g_page = 4096;

// A read or write past the end of a shrunk object (a fault, si_code > 0, inside a registered
// mapping): the rest of that mapping becomes private zero pages, so the access completes, and
// the slot records it for SharedMemorySlice::Ok(). Any other SIGBUS goes to the disposition
// that was there before (re-raised: blocked until this handler returns, then delivered).
void OnSigbus(int, siginfo_t* info, void*) {
  const int saved_errno = errno;
  if (info != nullptr && info->si_code > 0) {
    const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
    for (GuardSlot& s : g_slots) {
      uintptr_t end = 0;
      if (!s.Holds(addr, &end)) continue;
      const uintptr_t page = addr & ~(g_page - 1);
      void* replaced = mmap(reinterpret_cast<void*>(page), end - page, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      if (replaced != MAP_FAILED) {
        s.truncated.store(true, std::memory_order_release);
        errno = saved_errno;
        return;
      }
    }
  }
  sigaction(SIGBUS, &g_previous_sigbus, nullptr);
  raise(SIGBUS);
  errno = saved_errno;
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

struct SharedMemoryMapping {
  SharedMemoryRegionInfo info;
  int fd = -1;  // kept open: Ok() asks it whether the object still covers the region
  void* base = MAP_FAILED;
  size_t length = 0;
  std::byte* data = nullptr;  // base + the offset's distance from its page start
  GuardSlot* slot = nullptr;

  ~SharedMemoryMapping() {
    if (slot != nullptr) {
      slot->SetRange(0, 0);
      slot->truncated.store(false);
      slot->used.store(false, std::memory_order_release);
    }
    if (base != MAP_FAILED) munmap(base, length);
    if (fd >= 0) close(fd);
  }

  // Whether the object was shrunk below the region: a fault the handler repaired, or a size
  // that no longer covers it (a shrink to inside the last page faults nowhere: the kernel zeros
  // that page's tail).
  bool Shrunk() const {
    if (slot->truncated.load(std::memory_order_acquire)) return true;
    struct stat st {};
    return fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < info.offset + info.byte_size;
  }
};

Status SharedMemorySlice::Ok(const std::string& what) const {
  if (mapping == nullptr || !mapping->Shrunk()) return Status::Ok();
  return InvalidArgument(what + ": shared memory region " + Quoted(region) +
                         " was shrunk by its owner while registered, so part of it read as "
                         "zeros or took no writes; recreate the object at its registered size "
                         "and register the region again");
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
  const Status taken(StatusCode::kAlreadyExists,
                     region + " is registered already; unregister it first or choose another name");
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (regions_.count(name)) return taken;  // before opening and mapping anything
  }
  InstallTruncationGuard();
  auto mapping = std::make_shared<SharedMemoryMapping>();
  mapping->info = {name, key, offset, byte_size};
  const int fd = shm_open(key.c_str(), O_RDWR | O_CLOEXEC, 0);
  mapping->fd = fd;
  if (fd < 0) {
    return InvalidArgument("registering " + region + ": cannot open shared memory object " +
                           Quoted(key) + " (" + std::strerror(errno) +
                           "); create it first (shm_open) with the key the client registers");
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    return InvalidArgument("registering " + region + ": cannot stat object " + Quoted(key) + " (" +
                           std::strerror(errno) + ")");
  }
  const auto object_bytes = static_cast<uint64_t>(st.st_size);
  if (offset > object_bytes || byte_size > object_bytes - offset) {
    return InvalidArgument("registering " + region + ": offset " + std::to_string(offset) +
                           " + byte_size " + std::to_string(byte_size) + " exceeds the " +
                           std::to_string(object_bytes) + " bytes of object " + Quoted(key));
  }
  const uint64_t page_start = offset & ~static_cast<uint64_t>(g_page - 1);
  mapping->length = static_cast<size_t>(byte_size + (offset - page_start));
  mapping->base = mmap(nullptr, mapping->length, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                       static_cast<off_t>(page_start));
  if (mapping->base == MAP_FAILED) {
    return InvalidArgument("registering " + region + ": cannot map object " + Quoted(key) + " (" +
                           std::strerror(errno) + ")");
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
  mapping->slot->SetRange(begin, begin + mapping->length);
  std::lock_guard<std::mutex> lock(mu_);
  if (!regions_.emplace(name, mapping).second) return taken;  // registered meanwhile
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
  std::shared_ptr<SharedMemoryMapping> mapping;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = regions_.find(ref.region);
    if (it != regions_.end()) mapping = it->second;
  }
  if (!mapping) {
    return InvalidArgument(what + ": shared memory region " + Quoted(ref.region) +
                           " is not registered; register it (gRPC SystemSharedMemoryRegister, "
                           "HTTP POST /v2/systemsharedmemory/region/<name>/register) before "
                           "sending requests that use it");
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
  slice.mapping = std::move(mapping);
  return slice;
}

}  // namespace parnet::serve
