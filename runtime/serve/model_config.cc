#include "runtime/serve/model_config.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "proto/text_proto.h"
#include "runtime/serve/datatype.h"

namespace parnet::serve {
namespace {

std::string DimsToString(const google::protobuf::RepeatedField<int64_t>& dims) {
  return ShapeToString(Shape(dims.begin(), dims.end()));
}

// Checks one config tensor (input or output) against the model's declared type and fills its
// data type and dims when the config leaves them out. `what` names it in messages.
template <typename ConfigTensor>
Status CompleteTensor(const TensorType& model_type, bool batched, const std::string& what,
                      ConfigTensor* tensor) {
  const size_t skip = batched ? 1 : 0;
  if (model_type.shape.size() < skip) {
    return InvalidArgument(what + ": the model's tensor is a scalar, but max_batch_size > 0 " +
                           "needs a batch dimension; set max_batch_size: 0");
  }
  if (batched && model_type.shape[0] >= 0) {
    return InvalidArgument(what + ": the model fixes the batch dimension to " +
                           std::to_string(model_type.shape[0]) +
                           ", so it cannot batch; set max_batch_size: 0 or export the model "
                           "with a dynamic batch axis");
  }
  if (tensor->data_type() == inference::TYPE_INVALID) {
    tensor->set_data_type(ConfigTypeOf(model_type.dtype));
  }
  const DType declared = DTypeFromConfig(tensor->data_type());
  if (!CanConvert(declared, model_type.dtype)) {
    return InvalidArgument(what + ": data_type " + inference::DataType_Name(tensor->data_type()) +
                           " does not fit the model's " + DTypeName(model_type.dtype) +
                           "; use TYPE_" + DTypeName(model_type.dtype) +
                           (model_type.dtype == DType::kFloat32 ? " (or TYPE_FP16 / TYPE_BF16)" : ""));
  }
  const Shape model_dims(model_type.shape.begin() + static_cast<std::ptrdiff_t>(skip),
                         model_type.shape.end());
  if (tensor->dims_size() == 0 && !model_dims.empty()) {
    for (int64_t d : model_dims) tensor->add_dims(d);
  }
  bool fits = static_cast<size_t>(tensor->dims_size()) == model_dims.size();
  for (size_t i = 0; fits && i < model_dims.size(); ++i) {
    const int64_t c = tensor->dims(static_cast<int>(i));
    fits = (c == -1 || c >= 1) && (model_dims[i] < 0 || c == -1 || c == model_dims[i]);
    if (c == -1 && model_dims[i] >= 0) tensor->set_dims(static_cast<int>(i), model_dims[i]);
  }
  if (!fits) {
    return InvalidArgument(what + ": dims " + DimsToString(tensor->dims()) +
                           " do not fit the model's " + ShapeToString(model_dims) +
                           (batched ? " (its shape without the batch dimension)" : "") +
                           "; use the model's dims (-1 for any size)");
  }
  return Status::Ok();
}

template <typename ConfigTensors>
Status CompleteTensors(const Graph& model, const std::vector<std::string>& names, bool batched,
                       const std::string& kind, ConfigTensors* tensors) {
  std::set<std::string> seen;
  for (auto& t : *tensors) {
    if (std::find(names.begin(), names.end(), t.name()) == names.end()) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "'" : ", '") + n + "'";
      return InvalidArgument(kind + " '" + t.name() + "' of the config is not a " + kind +
                             " of the model; the model's " + kind + "s: " + list);
    }
    if (!seen.insert(t.name()).second) {
      return InvalidArgument(kind + " '" + t.name() + "' appears twice in the config");
    }
  }
  for (const auto& name : names) {
    if (!seen.count(name)) tensors->Add()->set_name(name);
  }
  for (auto& t : *tensors) {
    const TensorType* type = model.FindType(t.name());
    if (type == nullptr) return Internal("the model declares no type for '" + t.name() + "'");
    RETURN_IF_ERROR(CompleteTensor(*type, batched, kind + " '" + t.name() + "'", &t));
  }
  return Status::Ok();
}

// Triton writes int64 config values as JSON numbers; protobuf's mapping writes them as strings.
// The keys of the int64 fields of proto/model_config.proto:
const std::set<std::string> kInt64Keys = {"dims",           "shape",
                                          "versions",       "max_queue_delay_microseconds",
                                          "priority_levels", "default_priority_level",
                                          "default_timeout_microseconds"};

void StringToNumber(nlohmann::json& j) {
  if (j.is_array()) {
    for (auto& v : j) StringToNumber(v);
  } else if (j.is_string()) {
    j = std::stoll(j.get<std::string>());
  }
}

void Int64StringsToNumbers(nlohmann::json& j) {
  if (j.is_object()) {
    for (auto& [key, value] : j.items()) {
      if (kInt64Keys.count(key)) {
        StringToNumber(value);
      } else {
        Int64StringsToNumbers(value);
      }
    }
  } else if (j.is_array()) {
    for (auto& value : j) Int64StringsToNumbers(value);
  }
}

}  // namespace

StatusOr<inference::ModelConfig> ReadModelConfig(const std::string& path) {
  inference::ModelConfig config;
  RETURN_IF_ERROR(LoadTextProto(path, "model config",
                                "the subset of Triton's ModelConfig in proto/model_config.proto "
                                "that parnet reads; remove or fix the field",
                                &config));
  return config;
}

Status CompleteModelConfig(const Graph& model, const std::string& model_name,
                           inference::ModelConfig* config) {
  if (config->name().empty()) config->set_name(model_name);
  if (config->name() != model_name) {
    return InvalidArgument("config name '" + config->name() + "' differs from the folder name '" +
                           model_name + "'; make them equal (or leave name out)");
  }
  if (config->max_batch_size() < 0) {
    return InvalidArgument("max_batch_size " + std::to_string(config->max_batch_size()) +
                           " is negative; use 0 (no batching) or the largest batch");
  }
  const bool batched = config->max_batch_size() > 0;
  RETURN_IF_ERROR(CompleteTensors(model, model.inputs, batched, "input", config->mutable_input()));
  RETURN_IF_ERROR(
      CompleteTensors(model, model.outputs, batched, "output", config->mutable_output()));
  if (config->has_dynamic_batching()) {
    if (!batched) {
      return InvalidArgument("dynamic_batching needs max_batch_size > 0; set max_batch_size");
    }
    for (int32_t p : config->dynamic_batching().preferred_batch_size()) {
      if (p < 1 || p > config->max_batch_size()) {
        return InvalidArgument("preferred_batch_size " + std::to_string(p) +
                               " is outside 1.." + std::to_string(config->max_batch_size()) +
                               " (max_batch_size)");
      }
    }
  }
  if (config->instance_group_size() == 0) {
    auto* group = config->add_instance_group();
    group->set_count(1);
    group->set_kind(inference::ModelInstanceGroup::KIND_CPU);
  }
  for (auto& group : *config->mutable_instance_group()) {
    if (group.kind() == inference::ModelInstanceGroup::KIND_AUTO) {
      group.set_kind(inference::ModelInstanceGroup::KIND_CPU);
    }
    if (group.kind() != inference::ModelInstanceGroup::KIND_CPU) {
      return InvalidArgument("instance_group kind " +
                             inference::ModelInstanceGroup::Kind_Name(group.kind()) +
                             " is not available: parnet serves on the CPU; use KIND_CPU");
    }
    if (group.count() < 0) {
      return InvalidArgument("instance_group count " + std::to_string(group.count()) +
                             " is negative; use 1 or more");
    }
    if (group.count() == 0) group.set_count(1);
  }
  return Status::Ok();
}

std::string ModelConfigToJson(const inference::ModelConfig& config) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = false;
  if (!google::protobuf::util::MessageToJsonString(config, &json, options).ok()) return "{}";
  nlohmann::json j = nlohmann::json::parse(json);
  Int64StringsToNumbers(j);
  return j.dump();
}

std::vector<int64_t> BatchBuckets(const inference::ModelConfig& config) {
  const int64_t max = config.max_batch_size();
  if (max <= 0) return {1};
  std::set<int64_t> sizes = {max};
  for (int64_t b = 1; b < max; b *= 2) sizes.insert(b);
  if (config.has_dynamic_batching()) {
    for (int32_t p : config.dynamic_batching().preferred_batch_size()) {
      if (p >= 1 && p <= max) sizes.insert(p);
    }
  }
  return {sizes.begin(), sizes.end()};
}

}  // namespace parnet::serve
