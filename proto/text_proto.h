// Human-edited files (cluster descriptions, plans, profiles, model configs) are protobuf text
// format. These read them with the parser's own line and column in every error.
#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "runtime/core/status.h"

namespace parnet {

// Parses `text` into `message`. INVALID_ARGUMENT: "<what> is not a valid <type> in text format:
// line L column C: <parser's message> (the schema is <schema>)".
Status ParseTextProto(const std::string& text, const std::string& what, const std::string& schema,
                      google::protobuf::Message* message);
// The same for a file; NOT_FOUND names the path when it cannot be read.
Status LoadTextProto(const std::string& path, const std::string& what, const std::string& schema,
                     google::protobuf::Message* message);

}  // namespace parnet
