// SPDX-License-Identifier: Apache-2.0
#include "net_util.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace kvelect::testing {

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

sockaddr_in loopback_addr(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

} // namespace

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) {
    // Linux closes the descriptor even when close() reports EINTR, so a retry
    // could close an unrelated, freshly reused descriptor: never retry.
    ::close(fd_);
  }
  fd_ = fd;
}

void reset_close(UniqueFd& fd) noexcept {
  if (!fd)
    return;
  linger lg{};
  lg.l_onoff = 1;
  lg.l_linger = 0;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  fd.reset();
}

std::vector<int> free_loopback_ports(int count) {
  std::vector<UniqueFd> held;
  std::vector<int> ports;
  for (int i = 0; i < count; ++i) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd)
      throw_errno("socket");
    sockaddr_in addr = loopback_addr(0);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw_errno("bind");
    socklen_t len = sizeof addr;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw_errno("getsockname");
    ports.push_back(ntohs(addr.sin_port));
    // Keep the socket bound until all ports are chosen so the kernel cannot
    // hand the same port out twice in this call.
    held.push_back(std::move(fd));
  }
  return ports;
}

int free_loopback_port() { return free_loopback_ports(1).front(); }

UniqueFd connect_loopback(int port, std::chrono::milliseconds timeout) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd)
    return {};
  sockaddr_in addr = loopback_addr(port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS)
      return {};
    pollfd pfd{fd.get(), POLLOUT, 0};
    int rc;
    do {
      rc = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
    } while (rc < 0 && errno == EINTR);
    if (rc <= 0)
      return {};
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
      return {};
  }
  // Hand back a plain blocking socket: that is what simple test code expects.
  int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0)
    return {};
  return fd;
}

bool wait_readable(int fd, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  pollfd pfd{fd, POLLIN, 0};
  for (;;) {
    int rc = ::poll(&pfd, 1, remaining_ms(deadline));
    if (rc > 0)
      return true;
    if (rc == 0)
      return false;
    if (errno != EINTR)
      return false;
  }
}

std::optional<HttpResponse> http_get(int port, std::string_view path,
                                     std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  UniqueFd fd = connect_loopback(port, timeout);
  if (!fd)
    return std::nullopt;

  // HTTP/1.0 with Connection: close: the server closes after the body, so
  // "read until EOF" is the whole response and no chunked decoding is needed.
  std::string request = "GET ";
  request.append(path);
  request += " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  std::size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return std::nullopt;
    }
    sent += static_cast<std::size_t>(n);
  }

  std::string response;
  char buf[4096];
  for (;;) {
    if (Clock::now() >= deadline ||
        !wait_readable(fd.get(), std::chrono::milliseconds(remaining_ms(deadline))))
      return std::nullopt;
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return std::nullopt;
    }
    if (n == 0)
      break;
    response.append(buf, static_cast<std::size_t>(n));
  }

  // Status line: "HTTP/1.x NNN reason".
  if (response.compare(0, 5, "HTTP/") != 0)
    return std::nullopt;
  auto space = response.find(' ');
  if (space == std::string::npos || space + 4 > response.size())
    return std::nullopt;
  HttpResponse out;
  for (std::size_t i = space + 1; i < space + 4; ++i) {
    char c = response[i];
    if (c < '0' || c > '9')
      return std::nullopt;
    out.status = out.status * 10 + (c - '0');
  }
  auto body = response.find("\r\n\r\n");
  if (body == std::string::npos)
    return std::nullopt;
  out.body = response.substr(body + 4);
  return out;
}

} // namespace kvelect::testing
