// The Open Inference Protocol's gRPC messages as the served model's requests and results:
// decoding a ModelInferRequest (typed contents or raw_input_contents), checking its requested
// outputs, and encoding a ModelInferResponse. Protobuf messages only; no gRPC transport.
#pragma once

#include <map>
#include <string>

#include "proto/grpc_service.pb.h"
#include "runtime/serve/infer.h"
#include "runtime/serve/served_model.h"
#include "runtime/serve/shared_memory.h"

namespace parnet::serve {

// The wire request as an InferRequest: names, datatypes and shapes as sent (the served model
// checks them against its config), byte counts checked against the shapes, typed and raw
// contents never mixed; inputs with shared memory parameters are read from `regions`. Raw
// tensors borrow from `req`, which must outlive the result.
StatusOr<InferRequest> Decode(const inference::ModelInferRequest& req,
                              const SharedMemoryRegions& regions);

// How the request wants its outputs, as CheckOutputRequests found it, for Encode.
struct OutputRequests {
  // Outputs requested into shared memory, by name: the parts of their regions, held from the
  // check until the answer is written.
  std::map<std::string, SharedMemorySlice> slices;
  // Outputs requested with a class count (the classification extension), by name.
  std::map<std::string, int64_t> classes;
};

// Refuses a requested output that `model` lacks, a class count below 1 (the classification
// extension), and an output requested into shared memory that is not registered or too small
// (`decoded`: the request).
StatusOr<OutputRequests> CheckOutputRequests(const ServedModel& model,
                                             const inference::ModelInferRequest& req,
                                             const InferRequest& decoded,
                                             const SharedMemoryRegions& regions);

// The response for `result`: the selected outputs, typed only when the request sent typed
// contents and asked for no "binary_data" (Triton's clients read raw outputs only), and never for
// a datatype without a typed field (FP16, BF16). Outputs with a shared memory slice in `outputs`
// are written there and carry no data; those with a class count come back as BYTES classes.
StatusOr<inference::ModelInferResponse> Encode(const ServedModel& model,
                                               const inference::ModelInferRequest& req,
                                               const InferResult& result,
                                               const OutputRequests& outputs);

}  // namespace parnet::serve
