// SPDX-License-Identifier: Apache-2.0
//
// A TCP proxy for fault injection between a NATS client and a server:
//
//   client ──► FaultProxy (127.0.0.1:port()) ──► target_host:target_port
//
// Modes (switch at any time, from any thread; set_mode() returns once the
// proxy thread has applied the new mode):
//   pass      forward both ways.
//   delay     forward every chunk `delay` after it was read, in order, both
//             ways (an orderly close (FIN) is delayed the same way).
//   blackhole a network partition in which TCP does not reset: connections
//             stay open, every byte in either direction (including data still
//             queued from delay mode) is silently discarded, new connections
//             are accepted but not connected upstream. A peer closing its
//             socket is not propagated to the other side either.
//   reset     immediately abort (RST, via SO_LINGER {1,0}) both sides of every
//             connection, and abort each new connection as it is accepted.
//
// Leaving blackhole (to pass or delay): a connection that lost bytes, lost a
// side, or was accepted during the blackhole cannot carry a consistent byte
// stream any more, so it is aborted with RST on both sides — as a real host
// would answer its peer's next segment after the partition heals. A
// connection that stayed idle throughout just continues. New connections are
// forwarded again.
//
// One background thread (std::jthread) multiplexes everything with poll();
// it sleeps until a socket is ready, a delayed chunk is due, or the mode
// changes (no periodic wake-ups).
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include "net_util.hpp"

namespace kvelect::testing {

class FaultProxy {
public:
  enum class Mode { pass, delay, blackhole, reset };

  // Listens on 127.0.0.1:<free port>; target_host is resolved once, here
  // (throws std::runtime_error if it cannot be). Starts in pass mode.
  FaultProxy(std::string target_host, int target_port);
  // Stops the thread and closes every socket (orderly close, no RST).
  ~FaultProxy();

  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;
  FaultProxy(FaultProxy&&) = delete;
  FaultProxy& operator=(FaultProxy&&) = delete;

  int port() const { return port_; }
  std::string url() const; // "nats://127.0.0.1:PORT"

  // `delay` only matters for Mode::delay.
  void set_mode(Mode mode, std::chrono::milliseconds delay = std::chrono::milliseconds(0));
  Mode mode() const;
  std::chrono::milliseconds delay() const;

  // Client connections currently open (accepted and not yet closed by either
  // the client or the proxy). Published by the proxy thread, so it can lag
  // an event by a moment — except right after set_mode(), which returns only
  // once the count reflects the new mode (e.g. 0 after Mode::reset).
  std::size_t connections() const { return connections_.load(); }
  // Client connections accepted since construction (including reset ones).
  std::size_t accepted() const { return accepted_.load(); }

private:
  void run(std::stop_token stop);
  void wake() noexcept;

  sockaddr_storage target_{};
  socklen_t target_len_ = 0;
  int target_port_ = 0;
  std::string target_host_;
  UniqueFd listener_;
  UniqueFd wake_fd_; // eventfd: stop requests and mode changes interrupt poll()
  int port_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable applied_cv_;
  Mode mode_ = Mode::pass;             // guarded by mutex_
  std::chrono::milliseconds delay_{0}; // guarded by mutex_
  std::uint64_t requested_ = 0;        // mode changes requested (guarded)
  std::uint64_t applied_ = 0;          // ... and applied by the thread (guarded)
  bool thread_done_ = false;           // guarded

  std::atomic<std::size_t> connections_{0};
  std::atomic<std::size_t> accepted_{0};

  // Last member: destroyed (joined) first, while everything it uses exists.
  std::jthread thread_;
};

} // namespace kvelect::testing
