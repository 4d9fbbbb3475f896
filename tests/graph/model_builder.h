// Builds small ONNX models in memory for tests, with ONNX's own protobuf classes.
#pragma once

#include <onnx/onnx_pb.h>

#include <initializer_list>
#include <string>
#include <vector>

namespace parnet::testing {

class ModelBuilder {
 public:
  explicit ModelBuilder(int64_t opset = 13) {
    model_.set_ir_version(8);
    model_.mutable_graph()->set_name("test");
    auto* imp = model_.add_opset_import();
    imp->set_domain("");
    imp->set_version(opset);
  }

  // dims: -1 is a dynamic dimension.
  ModelBuilder& Input(const std::string& name, int elem_type, std::vector<int64_t> dims) {
    Describe(model_.mutable_graph()->add_input(), name, elem_type, dims);
    return *this;
  }
  ModelBuilder& Output(const std::string& name, int elem_type, std::vector<int64_t> dims) {
    Describe(model_.mutable_graph()->add_output(), name, elem_type, dims);
    return *this;
  }
  onnx::NodeProto& Node(const std::string& op, std::vector<std::string> inputs,
                        std::vector<std::string> outputs, const std::string& name = "") {
    auto* node = model_.mutable_graph()->add_node();
    node->set_op_type(op);
    node->set_name(name.empty() ? op + "_node" : name);
    for (auto& i : inputs) node->add_input(i);
    for (auto& o : outputs) node->add_output(o);
    return *node;
  }
  ModelBuilder& Int64Initializer(const std::string& name, std::vector<int64_t> values) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t->add_int64_data(v);
    return *this;
  }
  ModelBuilder& FloatInitializer(const std::string& name, std::vector<int64_t> dims,
                                 const std::vector<float>& values) {
    auto* t = model_.mutable_graph()->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    for (float v : values) t->add_float_data(v);
    return *this;
  }
  static void SetAttr(onnx::NodeProto& node, const std::string& key, const std::string& value) {
    auto* a = node.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(value);
  }
  static void SetAttr(onnx::NodeProto& node, const std::string& key, std::vector<int64_t> values) {
    auto* a = node.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : values) a->add_ints(v);
  }
  static void SetAttr(onnx::NodeProto& node, const std::string& key, int64_t value) {
    auto* a = node.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(value);
  }

  std::string Bytes() const { return model_.SerializeAsString(); }

 private:
  static void Describe(onnx::ValueInfoProto* info, const std::string& name, int elem_type,
                       const std::vector<int64_t>& dims) {
    info->set_name(name);
    auto* tt = info->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(elem_type);
    auto* shape = tt->mutable_shape();
    for (int64_t d : dims) {
      auto* dim = shape->add_dim();
      if (d >= 0) {
        dim->set_dim_value(d);
      } else {
        dim->set_dim_param("d" + std::to_string(shape->dim_size()));
      }
    }
  }

  onnx::ModelProto model_;
};

}  // namespace parnet::testing
