// PeerConnection: finding a request's TCP connection by its addresses, and telling a client that
// is still connected from one that closed or reset its end.
#include "runtime/serve/peer_socket.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace parnet::serve {
namespace {

int PortOf(int fd, bool peer) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  const int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len)
                      : getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  EXPECT_EQ(rc, 0);
  return ntohs(addr.sin_port);
}

// A server's accepted socket and its client, connected over loopback.
class LoopbackConnection : public ::testing::Test {
 protected:
  void SetUp() override {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(listen(listener_, 1), 0);
    server_port_ = PortOf(listener_, false);
    addr.sin_port = htons(static_cast<uint16_t>(server_port_));
    client_ = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(connect(client_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    accepted_ = accept(listener_, nullptr, nullptr);
    ASSERT_GE(accepted_, 0);
    client_port_ = PortOf(client_, false);
  }
  void TearDown() override {
    for (int fd : {listener_, client_, accepted_}) {
      if (fd >= 0) close(fd);
    }
  }

  int listener_ = -1, client_ = -1, accepted_ = -1;
  int server_port_ = 0, client_port_ = 0;
};

TEST_F(LoopbackConnection, FindsTheAcceptedSocketByItsAddresses) {
  EXPECT_EQ(FindConnectedSocket(server_port_, "127.0.0.1", client_port_), accepted_);
  // The client's own socket has the addresses the other way round.
  EXPECT_EQ(FindConnectedSocket(client_port_, "127.0.0.1", server_port_), client_);
  EXPECT_EQ(FindConnectedSocket(server_port_, "127.0.0.2", client_port_), -1);
  EXPECT_EQ(FindConnectedSocket(server_port_, "127.0.0.1", client_port_ ^ 1), -1);
}

TEST_F(LoopbackConnection, AClientThatSendsMoreIsStillThere) {
  PeerConnection peer(server_port_, "127.0.0.1", client_port_);
  EXPECT_FALSE(peer.Gone());
  ASSERT_EQ(write(client_, "x", 1), 1);
  EXPECT_FALSE(peer.Gone());
  char byte;
  EXPECT_EQ(recv(accepted_, &byte, 1, MSG_DONTWAIT), 1) << "Gone() must leave the byte unread";
}

TEST_F(LoopbackConnection, AClientThatClosesIsGone) {
  PeerConnection peer(server_port_, "127.0.0.1", client_port_);
  EXPECT_FALSE(peer.Gone());
  close(client_);
  client_ = -1;
  EXPECT_TRUE(peer.Gone());
}

TEST_F(LoopbackConnection, AClientThatResetsIsGone) {
  PeerConnection peer(server_port_, "127.0.0.1", client_port_);
  // Found while connected: a reset socket has no peer address left to be found by.
  EXPECT_FALSE(peer.Gone());
  linger reset{1, 0};  // close() then sends RST
  ASSERT_EQ(setsockopt(client_, SOL_SOCKET, SO_LINGER, &reset, sizeof reset), 0);
  close(client_);
  client_ = -1;
  EXPECT_TRUE(peer.Gone());
}

TEST(PeerConnectionTest, AConnectionThatCannotBeFoundIsNotGone) {
  // Port 0 is never a connected socket's: nothing to ask, so the request is kept.
  PeerConnection peer(0, "127.0.0.1", 1);
  EXPECT_FALSE(peer.Gone());
}

TEST_F(LoopbackConnection, AResetBeforeTheFirstQuestionIsNotSeen) {
  // The documented limit: the reset socket has no peer address, so it cannot be told from the
  // others, and the request is kept.
  linger reset{1, 0};
  ASSERT_EQ(setsockopt(client_, SOL_SOCKET, SO_LINGER, &reset, sizeof reset), 0);
  close(client_);
  client_ = -1;
  PeerConnection peer(server_port_, "127.0.0.1", client_port_);
  EXPECT_FALSE(peer.Gone());
}

}  // namespace
}  // namespace parnet::serve
