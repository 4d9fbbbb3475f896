#include "runtime/serve/peer_socket.h"

#include <dirent.h>
#include <netdb.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <string>

namespace parnet::serve {
namespace {

// The numeric host and the port of a socket address, as cpp-httplib reports a client's.
bool HostAndPort(const sockaddr_storage& addr, socklen_t len, std::string* host, int* port) {
  char h[NI_MAXHOST];
  char p[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, h, sizeof h, p, sizeof p,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return false;
  }
  *host = h;
  *port = std::atoi(p);
  return true;
}

bool Matches(int fd, int local_port, const std::string& remote_addr, int remote_port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  std::string host;
  int port = -1;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  if (addr.ss_family != AF_INET && addr.ss_family != AF_INET6) return false;
  if (!HostAndPort(addr, len, &host, &port) || port != local_port) return false;
  len = sizeof addr;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  return HostAndPort(addr, len, &host, &port) && port == remote_port && host == remote_addr;
}

}  // namespace

int FindConnectedSocket(int local_port, const std::string& remote_addr, int remote_port) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  const int own = dirfd(dir);
  int found = -1;
  // A descriptor another thread closes or reuses meanwhile fails the match or matches a socket
  // with this exact pair of addresses: there is one, the connection whose handler is asking.
  while (const dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (*end != '\0' || end == entry->d_name || fd == own) continue;
    if (Matches(static_cast<int>(fd), local_port, remote_addr, remote_port)) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return found;
}

PeerConnection::PeerConnection(int local_port, std::string remote_addr, int remote_port)
    : local_port_(local_port), remote_addr_(std::move(remote_addr)), remote_port_(remote_port) {}

bool PeerConnection::Gone() {
  if (!searched_) {
    fd_ = FindConnectedSocket(local_port_, remote_addr_, remote_port_);
    searched_ = true;
  }
  if (fd_ < 0) return false;
  // The handler's thread is the connection's only reader, and it is here: a byte waiting is the
  // client's next request (still connected), end of stream its FIN, an error its RST.
  char byte;
  const ssize_t n = recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;
  if (n == 0) return true;
  return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

}  // namespace parnet::serve
