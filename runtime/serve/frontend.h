// What the gRPC and HTTP front ends share: waiting for a result, the byte size of a tensor from
// its (untrusted) shape, the requested outputs, and the HTTP status of a Status code.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "runtime/serve/infer.h"
#include "runtime/serve/served_model.h"

namespace parnet::serve {

// Name and version the server reports in ServerMetadata.
inline constexpr const char* kServerName = "parnet";
inline constexpr const char* kServerVersion = "0.1.0";
// The protocol extensions both front ends implement.
std::vector<std::string> ServerExtensions();

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
