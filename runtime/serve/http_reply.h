// Internal to the HTTP front end: replies in the protocol's JSON form.
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

}  // namespace parnet::serve
