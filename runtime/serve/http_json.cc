#include "runtime/serve/http_json.h"

#include <vector>

#include "runtime/serve/datatype.h"

namespace parnet::serve {
namespace {

using json = nlohmann::json;

// Flattens nested JSON arrays (the protocol allows both forms) into `out`.
void Flatten(const json& j, std::vector<const json*>* out) {
  if (j.is_array()) {
    for (const auto& v : j) Flatten(v, out);
  } else {
    out->push_back(&j);
  }
}

template <typename T>
Status FillFromJson(const std::vector<const json*>& values, const std::string& name, Tensor* t) {
  T* dst = static_cast<T*>(t->raw_data());
  for (size_t i = 0; i < values.size(); ++i) {
    const json& v = *values[i];
    if (!(v.is_number() || v.is_boolean())) {
      return InvalidArgument("input '" + name + "': data element " + std::to_string(i) + " is " +
                             v.type_name() + ", not a number");
    }
    dst[i] = v.get<T>();
  }
  return Status::Ok();
}

}  // namespace

StatusOr<Tensor> TensorFromJson(const json& data, const std::string& name, DType dtype,
                                const Shape& shape) {
  std::vector<const json*> values;
  Flatten(data, &values);
  if (static_cast<int64_t>(values.size()) != NumElements(shape)) {
    return InvalidArgument("input '" + name + "': data holds " + std::to_string(values.size()) +
                           " values, but " + ProtocolName(dtype) + ShapeToString(shape) +
                           " needs " + std::to_string(NumElements(shape)));
  }
  if (dtype == DType::kFloat16 || dtype == DType::kBFloat16) {
    Tensor f32(DType::kFloat32, shape);
    RETURN_IF_ERROR(FillFromJson<float>(values, name, &f32));
    return ConvertTo(f32, dtype);
  }
  Tensor t(dtype, shape);
  switch (dtype) {
    case DType::kFloat32:
      RETURN_IF_ERROR(FillFromJson<float>(values, name, &t));
      break;
    case DType::kFloat64:
      RETURN_IF_ERROR(FillFromJson<double>(values, name, &t));
      break;
    case DType::kInt64:
      RETURN_IF_ERROR(FillFromJson<int64_t>(values, name, &t));
      break;
    case DType::kInt32:
      RETURN_IF_ERROR(FillFromJson<int32_t>(values, name, &t));
      break;
    case DType::kInt16:
      RETURN_IF_ERROR(FillFromJson<int16_t>(values, name, &t));
      break;
    case DType::kInt8:
      RETURN_IF_ERROR(FillFromJson<int8_t>(values, name, &t));
      break;
    case DType::kUInt64:
      RETURN_IF_ERROR(FillFromJson<uint64_t>(values, name, &t));
      break;
    case DType::kUInt32:
      RETURN_IF_ERROR(FillFromJson<uint32_t>(values, name, &t));
      break;
    case DType::kUInt16:
      RETURN_IF_ERROR(FillFromJson<uint16_t>(values, name, &t));
      break;
    case DType::kUInt8:
      RETURN_IF_ERROR(FillFromJson<uint8_t>(values, name, &t));
      break;
    case DType::kBool:
      RETURN_IF_ERROR(FillFromJson<bool>(values, name, &t));
      break;
    default:
      return InvalidArgument("input '" + name + "': datatype " + ProtocolName(dtype) +
                             " cannot travel as JSON data");
  }
  return t;
}

json TensorToJson(const Tensor& t) {
  const Tensor f = (t.dtype() == DType::kFloat16 || t.dtype() == DType::kBFloat16)
                       ? ConvertTo(t, DType::kFloat32)
                       : t;
  switch (f.dtype()) {
    case DType::kFloat32:
      return json(std::vector<float>(f.values<float>().begin(), f.values<float>().end()));
    case DType::kFloat64:
      return json(std::vector<double>(f.values<double>().begin(), f.values<double>().end()));
    case DType::kInt64:
      return json(std::vector<int64_t>(f.values<int64_t>().begin(), f.values<int64_t>().end()));
    case DType::kInt32:
      return json(std::vector<int32_t>(f.values<int32_t>().begin(), f.values<int32_t>().end()));
    default:
      return json::array();
  }
}

}  // namespace parnet::serve
