// Internal to the HTTP front end: replies in the protocol's JSON form, and whether a request
// has a body to read.
#pragma once

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "runtime/core/status.h"
#include "runtime/serve/frontend.h"

namespace parnet::serve {

// An error as {"error": message} with the status code's HTTP status.
inline void Reply(httplib::Response& res, const Status& s) {
  res.status = HttpStatusOf(s.code());
  res.set_content(nlohmann::json{{"error", s.message()}}.dump(), "application/json");
}

inline void ReplyJson(httplib::Response& res, const nlohmann::json& j) {
  res.status = 200;
  res.set_content(j.dump(), "application/json");
}

// Whether a request announces a body (Content-Length or chunked). A handler that takes a
// ContentReader must not call it otherwise: cpp-httplib would read until the client closes.
inline bool HasBody(const httplib::Request& req) {
  return req.has_header("Content-Length") || req.has_header("Transfer-Encoding");
}

}  // namespace parnet::serve
