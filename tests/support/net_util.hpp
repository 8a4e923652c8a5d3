// SPDX-License-Identifier: Apache-2.0
//
// Small socket helpers shared by the test-support code (NatsServer, FaultProxy)
// and usable directly from tests. Loopback only: tests never talk to anything
// outside 127.0.0.1.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvelect::testing {

// Owns one file descriptor and closes it when destroyed, so that early returns
// and exceptions in tests and helpers never leak descriptors.
class UniqueFd {
public:
  UniqueFd() noexcept = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other)
      reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1) noexcept;

private:
  int fd_ = -1;
};

// Closes a TCP socket so that the peer sees a reset (RST) instead of an
// orderly FIN: SO_LINGER {1, 0} makes close() abort the connection.
void reset_close(UniqueFd& fd) noexcept;

// Binds 127.0.0.1:0, reads the port the kernel chose, closes the socket.
// Another process may take the port before the caller binds it; callers that
// start servers on it retry on "address already in use".
int free_loopback_port();

// Like free_loopback_port(), but all `count` sockets are held open until every
// port is chosen, so the returned ports are distinct from each other.
std::vector<int> free_loopback_ports(int count);

// Connects to 127.0.0.1:port within `timeout`. Returns a connected, blocking,
// close-on-exec socket, or an empty UniqueFd on failure or timeout.
UniqueFd connect_loopback(int port, std::chrono::milliseconds timeout);

// poll()s fd for readability (or hang-up/error, which also make a read return).
bool wait_readable(int fd, std::chrono::milliseconds timeout);

struct HttpResponse {
  int status = 0;
  std::string body;
};

// Minimal HTTP/1.0 GET against 127.0.0.1:port (the nats-server monitoring
// endpoint). Returns nullopt if no complete response arrived within `timeout`
// (refused connection, paused server, garbage).
std::optional<HttpResponse> http_get(int port, std::string_view path,
                                     std::chrono::milliseconds timeout);

} // namespace kvelect::testing
