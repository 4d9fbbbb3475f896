#include "runtime/transport/mpi_transport.h"

#include <mpi.h>
#include <sched.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <iostream>
#include <thread>

namespace parnet::transport {
namespace {

constexpr int kControlTag = 32000;  // value tags stay below it (MPI guarantees tags < 32768)

Status MpiError(int code, const std::string& what) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return Internal(what + " failed: " + std::string(text, length));
}

class MpiPending : public Pending {
 public:
  MPI_Request request = MPI_REQUEST_NULL;
  Tensor keep_alive;  // a send's bytes
  bool is_recv = false;
  int peer = 0, tag = 0;
  size_t bytes = 0;  // a receive's expected size
};

// Polls with MPI_Test so that a deadline can end the wait; sleeps a little between polls so a
// waiting thread does not take a core from the compute threads.
bool TestUntil(MPI_Request& request, Deadline deadline, MPI_Status* status) {
  for (int spins = 0;; ++spins) {
    int done = 0;
    MPI_Test(&request, &done, status);
    if (done) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    if (spins > 100) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

class MpiTransport : public Transport {
 public:
  MpiTransport(int rank, int size) : rank_(rank), size_(size) {}
  ~MpiTransport() override { MPI_Finalize(); }
  std::string name() const override { return "mpi"; }
  int self() const override { return rank_; }
  int size() const override { return size_; }

  StatusOr<std::unique_ptr<Pending>> Send(int from, int to, int tag,
                                          const Tensor& tensor) override {
    if (tensor.num_bytes() > static_cast<size_t>(INT_MAX)) {
      return Unimplemented("a tensor of " + std::to_string(tensor.num_bytes()) +
                           " bytes is over MPI's 2 GiB message count; use a smaller batch");
    }
    auto pending = std::make_unique<MpiPending>();
    pending->keep_alive = tensor;
    pending->peer = to, pending->tag = tag;
    const int rc = MPI_Isend(tensor.raw_data(), static_cast<int>(tensor.num_bytes()), MPI_BYTE,
                             to, tag, MPI_COMM_WORLD, &pending->request);
    if (rc != MPI_SUCCESS) return MpiError(rc, "MPI_Isend to rank " + std::to_string(to));
    return std::unique_ptr<Pending>(std::move(pending));
  }

  StatusOr<std::unique_ptr<Pending>> Recv(int from, int to, int tag, Tensor* into) override {
    if (into->num_bytes() > static_cast<size_t>(INT_MAX)) {
      return Unimplemented("a tensor of " + std::to_string(into->num_bytes()) +
                           " bytes is over MPI's 2 GiB message count; use a smaller batch");
    }
    auto pending = std::make_unique<MpiPending>();
    pending->is_recv = true;
    pending->peer = from, pending->tag = tag, pending->bytes = into->num_bytes();
    const int rc = MPI_Irecv(into->raw_data(), static_cast<int>(into->num_bytes()), MPI_BYTE,
                             from, tag, MPI_COMM_WORLD, &pending->request);
    if (rc != MPI_SUCCESS) return MpiError(rc, "MPI_Irecv from rank " + std::to_string(from));
    return std::unique_ptr<Pending>(std::move(pending));
  }

  Status Wait(Pending& p, Deadline deadline) override {
    auto& pending = static_cast<MpiPending&>(p);
    MPI_Status status;
    if (!TestUntil(pending.request, deadline, &status)) {
      return Status(StatusCode::kDeadlineExceeded,
                    std::string(pending.is_recv ? "nothing arrived from" : "no receive matched "
                                                                           "a send to") +
                        " rank " + std::to_string(pending.peer) + " (tag " +
                        std::to_string(pending.tag) + ")");
    }
    pending.keep_alive = Tensor();
    if (pending.is_recv) {
      int count = 0;
      MPI_Get_count(&status, MPI_BYTE, &count);
      if (static_cast<size_t>(count) != pending.bytes) {
        return Internal("rank " + std::to_string(pending.peer) + " sent " + std::to_string(count) +
                        " bytes with tag " + std::to_string(pending.tag) + ", expected " +
                        std::to_string(pending.bytes) + ": the ranks disagree on the plan");
      }
    }
    return Status::Ok();
  }

  Status SendControl(int to, const std::vector<int64_t>& words) override {
    const int rc = MPI_Send(words.data(), static_cast<int>(words.size()), MPI_INT64_T, to,
                            kControlTag, MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? Status::Ok() : MpiError(rc, "control message to rank " +
                                                               std::to_string(to));
  }

  StatusOr<std::vector<int64_t>> RecvControl(Deadline deadline) override {
    for (int spins = 0;; ++spins) {
      int ready = 0;
      MPI_Status status;
      MPI_Iprobe(0, kControlTag, MPI_COMM_WORLD, &ready, &status);
      if (ready) {
        int count = 0;
        MPI_Get_count(&status, MPI_INT64_T, &count);
        std::vector<int64_t> words(count);
        MPI_Recv(words.data(), count, MPI_INT64_T, 0, kControlTag, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
        return words;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return Status(StatusCode::kDeadlineExceeded, "rank 0 sent no request");
      }
      if (spins > 100) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  StatusOr<std::vector<std::vector<double>>> GatherAtZero(
      const std::vector<double>& mine) override {
    int count = static_cast<int>(mine.size());
    std::vector<int> counts(size_);
    MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
    std::vector<int> offsets(size_, 0);
    for (int r = 1; r < size_; ++r) offsets[r] = offsets[r - 1] + counts[r - 1];
    std::vector<double> all(rank_ == 0 ? offsets.back() + counts.back() : 0);
    MPI_Gatherv(mine.data(), count, MPI_DOUBLE, all.data(), counts.data(), offsets.data(),
                MPI_DOUBLE, 0, MPI_COMM_WORLD);
    std::vector<std::vector<double>> out;
    if (rank_ == 0) {
      for (int r = 0; r < size_; ++r) {
        out.emplace_back(all.begin() + offsets[r], all.begin() + offsets[r] + counts[r]);
      }
    }
    return out;
  }

  [[noreturn]] void Abort(const std::string& why) override {
    std::cerr << "parnet (rank " << rank_ << "): " << why << "\n" << std::flush;
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::exit(1);
  }

 private:
  const int rank_, size_;
};

}  // namespace

bool LaunchedByMpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMI_SIZE") != nullptr ||
         std::getenv("PMIX_RANK") != nullptr;
}

StatusOr<std::unique_ptr<Transport>> MakeMpiTransport() {
  int provided = 0;
  const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
  if (rc != MPI_SUCCESS) return MpiError(rc, "MPI_Init_thread");
  if (provided < MPI_THREAD_MULTIPLE) {
    MPI_Finalize();
    return FailedPrecondition("this MPI library does not provide MPI_THREAD_MULTIPLE, which " +
                              std::string("parnet's device threads need; use OpenMPI 4"));
  }
  // Errors come back as codes, converted to Status at each call, instead of ending the job.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return std::unique_ptr<Transport>(new MpiTransport(rank, size));
}

StatusOr<std::vector<RankInfo>> GatherJobLayout() {
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  char host[MPI_MAX_PROCESSOR_NAME] = {};
  int length = 0;
  MPI_Get_processor_name(host, &length);
  std::vector<char> hosts(static_cast<size_t>(size) * MPI_MAX_PROCESSOR_NAME);
  MPI_Allgather(host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, hosts.data(), MPI_MAX_PROCESSOR_NAME,
                MPI_CHAR, MPI_COMM_WORLD);
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof set, &set);
  std::vector<int> mask(CPU_SETSIZE, 0);
  for (int c = 0; c < CPU_SETSIZE; ++c) mask[c] = CPU_ISSET(c, &set) ? 1 : 0;
  std::vector<int> masks(static_cast<size_t>(size) * CPU_SETSIZE);
  MPI_Allgather(mask.data(), CPU_SETSIZE, MPI_INT, masks.data(), CPU_SETSIZE, MPI_INT,
                MPI_COMM_WORLD);
  std::vector<RankInfo> out(size);
  for (int r = 0; r < size; ++r) {
    out[r].host = std::string(&hosts[static_cast<size_t>(r) * MPI_MAX_PROCESSOR_NAME]);
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (masks[static_cast<size_t>(r) * CPU_SETSIZE + c]) out[r].cores.push_back(c);
    }
  }
  return out;
}

StatusOr<std::string> BroadcastText(const std::string& text) {
  int64_t length = static_cast<int64_t>(text.size());
  MPI_Bcast(&length, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
  std::string out = text;
  out.resize(length);
  MPI_Bcast(out.data(), static_cast<int>(length), MPI_CHAR, 0, MPI_COMM_WORLD);
  return out;
}

}  // namespace parnet::transport
