// Whether the client of an HTTP request is still connected. cpp-httplib 0.11 (Debian 12's)
// hands a handler neither its connection's socket nor a way to ask about it; the socket stays
// open while its handler runs, so it can be found by its addresses.
#pragma once

#include <string>

namespace parnet::serve {

// The TCP connection a request arrived on, found lazily, asked whether its client went away.
// Not thread-safe: the handler's thread alone asks it.
class PeerConnection {
 public:
  // `local_port`: the port the server listens on; `remote_addr` and `remote_port` as cpp-httplib
  // reports the client (a numeric host, as getnameinfo writes it).
  PeerConnection(int local_port, std::string remote_addr, int remote_port);

  // True once the client closed or reset the connection (its FIN or RST arrived): nobody is left
  // to read the answer. A client that only shut down its sending side counts as gone too, as
  // for nginx. False while it is connected, or when the socket cannot be found. The socket is
  // looked for on the first call, by its peer's address: a connection already reset by then
  // (SO_LINGER 0; a closing client sends FIN) has none left, is not found, and counts as there.
  bool Gone();

 private:
  int local_port_;
  std::string remote_addr_;
  int remote_port_;
  int fd_ = -1;            // the connection's socket, once found
  bool searched_ = false;  // the search runs once: the socket stays until the handler returns
};

// The descriptor of this process's TCP socket connected from `local_port` to
// remote_addr:remote_port, or -1. Reads /proc/self/fd; O(open descriptors).
int FindConnectedSocket(int local_port, const std::string& remote_addr, int remote_port);

}  // namespace parnet::serve
