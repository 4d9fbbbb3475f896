#include "proto/text_proto.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <fstream>
#include <sstream>

namespace parnet {
namespace {

class CollectErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (!text.empty()) text += "; ";
    text += "line " + std::to_string(line + 1) + " column " + std::to_string(column + 1) + ": " +
            message;
  }
  std::string text;
};

}  // namespace

Status ParseTextProto(const std::string& text, const std::string& what, const std::string& schema,
                      google::protobuf::Message* message) {
  google::protobuf::TextFormat::Parser parser;
  CollectErrors errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text, message)) {
    return InvalidArgument(what + " is not a valid " + message->GetTypeName() +
                           " in text format: " + errors.text + " (the schema is " + schema + ")");
  }
  return Status::Ok();
}

Status LoadTextProto(const std::string& path, const std::string& what, const std::string& schema,
                     google::protobuf::Message* message) {
  std::ifstream in(path);
  if (!in) return NotFound("cannot open " + what + " '" + path + "': check the path");
  std::stringstream text;
  text << in.rdbuf();
  return ParseTextProto(text.str(), what + " '" + path + "'", schema, message);
}

}  // namespace parnet
