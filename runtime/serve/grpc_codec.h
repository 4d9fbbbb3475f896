// The Open Inference Protocol's gRPC messages as the served model's requests and results:
// decoding a ModelInferRequest (typed contents or raw_input_contents), checking its requested
// outputs, and encoding a ModelInferResponse. Protobuf messages only; no gRPC transport.
#pragma once

#include "proto/grpc_service.pb.h"
#include "runtime/serve/infer.h"
#include "runtime/serve/served_model.h"

namespace parnet::serve {

// The wire request as an InferRequest: names, datatypes and shapes as sent (the served model
// checks them against its config), byte counts checked against the shapes, typed and raw
// contents never mixed. Raw tensors borrow from `req`, which must outlive the result.
StatusOr<InferRequest> Decode(const inference::ModelInferRequest& req);

// Refuses a requested output that `model` lacks and the classification extension.
Status CheckOutputRequests(const ServedModel& model, const inference::ModelInferRequest& req);

// The response for `result`: the selected outputs, raw when the request came raw (as Triton's
// clients expect), when asked with the "binary_data" parameter, or when a datatype has no typed
// field (FP16, BF16).
StatusOr<inference::ModelInferResponse> Encode(const ServedModel& model,
                                               const inference::ModelInferRequest& req,
                                               const InferResult& result);

}  // namespace parnet::serve
