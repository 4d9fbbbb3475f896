// What the gRPC and HTTP front ends share: waiting for a result, the byte size of a tensor from
// its (untrusted) shape, the requested outputs, and the HTTP status of a Status code.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/serve/infer.h"
#include "runtime/serve/served_model.h"
#include "runtime/serve/shared_memory.h"

namespace parnet::serve {

// Name and version the server reports in ServerMetadata.
inline constexpr const char* kServerName = "parnet";
inline constexpr const char* kServerVersion = "0.1.0";
// The protocol extensions both front ends implement ("system_shared_memory" only when clients
// may register regions).
std::vector<std::string> ServerExtensions(const SharedMemoryRegions& regions);

// How often a waiting front end thread asks whether its client went away.
inline constexpr std::chrono::milliseconds kClientPoll{50};

// Submits `request` and waits for its answer: the front end's thread blocks, and runs the request
// itself when the model would run it alone at once on an idle single-threaded instance. While it
// waits, it asks `client_gone` (when given) every kClientPoll; once that says yes, the request
// counts as cancelled (InferRequest::cancelled) and is dropped if it has not run yet.
StatusOr<InferResult> InferAndWait(ServedModel* model, InferRequest request,
                                   const std::function<bool()>& client_gone = {});

// Checks a wire shape before anything is allocated for it: every dimension >= 1 and the byte
// size representable. Returns the byte size for `dtype`.
StatusOr<size_t> TensorByteSize(const std::string& input, DType dtype, const Shape& shape);

// A tensor's shared memory parameters as the wire carried them (null: absent): none, or a
// region with a byte size (the offset defaults to 0), never negative.
StatusOr<std::optional<SharedMemoryRef>> SharedMemoryRefOf(const std::string& what,
                                                           const std::string* region,
                                                           const int64_t* offset,
                                                           const int64_t* byte_size);

// `bytes` of wire data as a `dtype` tensor of `shape`: borrowed when the address suits the element
// type (the caller keeps the bytes alive as long as the tensor), else copied.
Tensor BorrowOrCopy(DType dtype, const Shape& shape, const void* data, size_t bytes);

// The input `name` read from the region `ref` names (borrowed, and kept mapped by
// request->shared_inputs), after checking that `ref` holds exactly `bytes`, the size of
// `dtype``shape`.
StatusOr<Tensor> InputFromSharedMemory(const SharedMemoryRegions& regions,
                                       const SharedMemoryRef& ref, const std::string& name,
                                       DType dtype, const Shape& shape, size_t bytes,
                                       InferRequest* request);

// Writes output `name` into `slice`; INVALID_ARGUMENT when it does not fit or the region was
// shrunk under it.
Status OutputToSharedMemory(const SharedMemorySlice& slice, const std::string& name,
                            const Tensor& t);

// The rows of a decoded request: the first dimension of its first input (1 when it has none).
int64_t BatchOf(const InferRequest& request);

// The part of a region that output `name` is requested into, held (and so kept mapped) from
// before the request runs until its answer is written, whatever the client registers
// meanwhile. Refuses a region that is not registered, or too small for the output when the
// config fixes its size (`batch`: the request's rows).
StatusOr<SharedMemorySlice> CheckOutputRegion(const SharedMemoryRegions& regions,
                                              const ServedModel& model, const std::string& name,
                                              const SharedMemoryRef& ref, int64_t batch);

// The outputs to return: `requested` in order (each must be an output of the model), or every
// output of the config when `requested` is empty.
StatusOr<std::vector<std::string>> SelectOutputs(const ServedModel& model,
                                                 const std::vector<std::string>& requested);

// The tensor of `name` in `result`. REQUIRES: SelectOutputs accepted the name.
const Tensor& OutputOf(const InferResult& result, const std::string& name);

// The HTTP status code for a Status code (400 for bad requests, 404 unknown model, 429 full
// queue, 503 unavailable, 504 timeout, 500 internal).
int HttpStatusOf(StatusCode code);

}  // namespace parnet::serve
