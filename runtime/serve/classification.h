// Triton's classification extension: an output requested with the "classification" parameter
// (N) comes back as the top N classes of each batch row instead of the scores, as BYTES strings
// "value:index" or "value:index:label" (labels from the output's label_filename), best first.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/status.h"
#include "runtime/core/tensor.h"

namespace parnet::serve {

struct Classes {
  Shape shape;                      // [rows, N] for a batched model, else [N]
  std::vector<std::string> values;  // row-major
};

// Checks a requested class count: an integer >= 1 (`what` names the output in errors).
Status CheckClassCount(const std::string& what, int64_t count);

// The refusal of an output requested both with a class count and into shared memory.
Status ClassesInSharedMemory(const std::string& what);

// The top `count` classes (clamped to a row's size) of each row of `scores`, a numeric tensor:
// the batch rows (dimension 0) when `batched`, else the whole tensor as one row.
StatusOr<Classes> Classify(const std::string& what, const Tensor& scores, int64_t count,
                           bool batched, const std::vector<std::string>& labels);

// BYTES elements as the protocol carries them raw (and Triton's binary HTTP outputs): each a
// 4-byte little-endian length, then its bytes.
std::string SerializeBytes(const std::vector<std::string>& values);

}  // namespace parnet::serve
