// The MPI transport: one plan device per rank (rank i runs device i), MPI_Isend/MPI_Irecv on
// MPI_COMM_WORLD with MPI_THREAD_MULTIPLE, so that every device thread sends and receives on its
// own. MPI stays behind this header: no MPI type appears here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/transport/transport.h"

namespace parnet::transport {

// True when this process was started by mpirun (OpenMPI's or a PMI launcher's environment).
bool LaunchedByMpirun();

// Initializes MPI (MPI_THREAD_MULTIPLE) and finalizes it when the transport is destroyed.
StatusOr<std::unique_ptr<Transport>> MakeMpiTransport();

// What each rank of the job is: its host and the cores it may run on (its affinity).
// Collective: every rank calls it; every rank gets the whole list. REQUIRES: MakeMpiTransport.
struct RankInfo {
  std::string host;
  std::vector<int> cores;
};
StatusOr<std::vector<RankInfo>> GatherJobLayout();

// Sends endpoint 0's `text` to every rank (a plan made on rank 0). Collective.
StatusOr<std::string> BroadcastText(const std::string& text);

}  // namespace parnet::transport
