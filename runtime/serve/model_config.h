// A served model's configuration: config.pbtxt (Triton's text format, the subset of Triton's
// ModelConfig in proto/model_config.proto), completed from the model and checked against it.
#pragma once

#include <string>
#include <vector>

#include "proto/model_config.pb.h"
#include "runtime/core/status.h"
#include "runtime/graph/graph.h"

namespace parnet::serve {

// Reads a config.pbtxt. A syntax error or a field parnet does not implement is an
// INVALID_ARGUMENT naming the file, the line and the field.
StatusOr<inference::ModelConfig> ReadModelConfig(const std::string& path);

// Fills what the config leaves out from the model (inputs, outputs, their types and dims, one
// CPU instance) and checks the rest against it: names, element types (FP16/BF16 may stand for the
// model's FP32: the server converts), dims, the batch dimension, preferred batch sizes.
// `model_name` is the repository folder's name; the config's name must be empty or equal.
Status CompleteModelConfig(const Graph& model, const std::string& model_name,
                           inference::ModelConfig* config);

// The config as JSON, as Triton's HTTP endpoint writes it (field names as in the .proto, int64
// values as JSON numbers).
std::string ModelConfigToJson(const inference::ModelConfig& config);

// The batch sizes a model runs with: powers of two, the preferred sizes and max_batch_size,
// ascending. Requests are padded up to the next one, so a model compiles for these sizes only
// (at warm-up) and no request can make it compile another. {1} for a model without batching.
std::vector<int64_t> BatchBuckets(const inference::ModelConfig& config);

}  // namespace parnet::serve
