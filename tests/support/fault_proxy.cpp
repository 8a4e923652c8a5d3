// SPDX-License-Identifier: Apache-2.0
#include "fault_proxy.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace kvelect::testing {

namespace {

using Clock = std::chrono::steady_clock;
using Mode = FaultProxy::Mode;

constexpr std::size_t kReadSize = std::size_t{64} * 1024;
// Stop reading from a side while this much is queued towards the other side:
// a slow or delayed receiver then pushes back on the sender through TCP, as
// it would without the proxy, instead of the proxy buffering without bound.
constexpr std::size_t kMaxQueued = std::size_t{4} * 1024 * 1024;

[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

struct Chunk {
  Clock::time_point due;  // not sent before this instant (delay mode)
  std::string data;       // empty: orderly close (FIN) to forward
  std::size_t offset = 0; // bytes of data already sent
};

// One direction of a connection pair.
struct Direction {
  std::deque<Chunk> queue;
  std::size_t bytes = 0; // unsent payload bytes in queue
  bool eof = false;      // the source closed its sending side
  bool shut = false;     // that close was forwarded (shutdown(SHUT_WR))
};

struct Pair {
  UniqueFd client;
  UniqueFd upstream;
  bool connecting = false; // non-blocking connect() to the target in progress
  bool broken = false;     // stream damaged during a blackhole: abort when it ends
  bool dead = false;       // closed; remove from the table
  Direction up;            // client -> upstream
  Direction down;          // upstream -> client
};

void abort_pair(Pair& p) {
  reset_close(p.client);
  reset_close(p.upstream);
  p.dead = true;
}

void set_nodelay(int fd) {
  // The proxy must not add Nagle delays of its own to small protocol lines.
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool would_block() { return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR; }

// Sends whatever is due in `dir` to `dest` without blocking.
void flush(Pair& p, Direction& dir, UniqueFd& dest, Clock::time_point now) {
  if (p.dead || !dest || (&dest == &p.upstream && p.connecting))
    return;
  while (!dir.queue.empty()) {
    Chunk& c = dir.queue.front();
    if (c.due > now)
      return;
    if (c.data.empty()) {
      ::shutdown(dest.get(), SHUT_WR);
      dir.shut = true;
      dir.queue.pop_front();
      continue;
    }
    ssize_t n = ::send(dest.get(), c.data.data() + c.offset, c.data.size() - c.offset,
                       MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (would_block())
        return;
      abort_pair(p); // destination reset or gone: reset the other side too
      return;
    }
    c.offset += static_cast<std::size_t>(n);
    dir.bytes -= static_cast<std::size_t>(n);
    if (c.offset == c.data.size())
      dir.queue.pop_front();
  }
}

bool front_due(const Direction& dir, Clock::time_point now) {
  return !dir.queue.empty() && dir.queue.front().due <= now;
}

void apply_transition(std::vector<std::unique_ptr<Pair>>& pairs, Mode from, Mode to) {
  for (auto& pp : pairs) {
    Pair& p = *pp;
    if (p.dead)
      continue;
    const bool healing = from == Mode::blackhole && to != Mode::blackhole;
    if (to == Mode::reset || (healing && p.broken)) {
      abort_pair(p);
    } else if (to == Mode::blackhole && from != Mode::blackhole) {
      // Whatever is still queued is lost in the "partition".
      for (Direction* d : {&p.up, &p.down}) {
        if (!d->queue.empty())
          p.broken = true;
        d->queue.clear();
        d->bytes = 0;
      }
    }
  }
}

} // namespace

FaultProxy::FaultProxy(std::string target_host, int target_port)
    : target_port_(target_port), target_host_(std::move(target_host)) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string service = std::to_string(target_port_);
  if (int rc = ::getaddrinfo(target_host_.c_str(), service.c_str(), &hints, &res);
      rc != 0 || res == nullptr)
    throw std::runtime_error("FaultProxy: cannot resolve " + target_host_ + ": " +
                             ::gai_strerror(rc));
  std::memcpy(&target_, res->ai_addr, res->ai_addrlen);
  target_len_ = res->ai_addrlen;
  ::freeaddrinfo(res);

  listener_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listener_)
    throw_errno("FaultProxy: socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0; // let the kernel choose: no window for another process to take it
  if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw_errno("FaultProxy: bind");
  if (::listen(listener_.get(), 128) != 0)
    throw_errno("FaultProxy: listen");
  socklen_t len = sizeof addr;
  if (::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw_errno("FaultProxy: getsockname");
  port_ = ntohs(addr.sin_port);

  wake_fd_.reset(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_fd_)
    throw_errno("FaultProxy: eventfd");

  thread_ = std::jthread([this](std::stop_token stop) { run(stop); });
}

FaultProxy::~FaultProxy() {
  thread_.request_stop();
  wake();
  if (thread_.joinable())
    thread_.join();
}

std::string FaultProxy::url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

void FaultProxy::wake() noexcept {
  std::uint64_t one = 1;
  // A full counter (never in practice) still leaves the eventfd readable,
  // which is all that matters.
  ssize_t ignored = ::write(wake_fd_.get(), &one, sizeof one);
  (void)ignored;
}

void FaultProxy::set_mode(Mode mode, std::chrono::milliseconds delay) {
  std::unique_lock lock(mutex_);
  mode_ = mode;
  delay_ = std::max(delay, std::chrono::milliseconds(0));
  const std::uint64_t ticket = ++requested_;
  wake();
  // Synchronous on purpose: after set_mode(reset) returns, every old
  // connection has been reset; after set_mode(blackhole), nothing more is
  // forwarded. Tests can assert right away.
  applied_cv_.wait(lock, [&] { return applied_ >= ticket || thread_done_; });
}

FaultProxy::Mode FaultProxy::mode() const {
  std::lock_guard lock(mutex_);
  return mode_;
}

std::chrono::milliseconds FaultProxy::delay() const {
  std::lock_guard lock(mutex_);
  return delay_;
}

void FaultProxy::run(std::stop_token stop) {
  std::vector<std::unique_ptr<Pair>> pairs;
  Mode mode = Mode::pass;
  std::chrono::milliseconds delay{0};
  std::uint64_t seen = 0;
  std::vector<char> buf(kReadSize);

  // Which pair and side each pollfd belongs to (index 0: eventfd, 1: listener).
  struct Ref {
    Pair* pair;
    bool client;
  };
  std::vector<pollfd> pfds;
  std::vector<Ref> refs;

  auto publish_count = [&] {
    std::size_t open = 0;
    for (const auto& p : pairs)
      open += (!p->dead && p->client) ? 1 : 0;
    connections_.store(open);
  };

  auto read_side = [&](Pair& p, bool client_side) {
    UniqueFd& src = client_side ? p.client : p.upstream;
    Direction& dir = client_side ? p.up : p.down;
    ssize_t n = ::recv(src.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0 && would_block())
      return;
    if (mode == Mode::blackhole) {
      // Nothing crosses the partition, not even a close or a reset: that
      // side is just gone, and the pair will be aborted when it heals.
      if (n > 0) {
        p.broken = true;
        return;
      }
      src.reset();
      p.broken = true;
      if (!p.client && !p.upstream)
        p.dead = true;
      return;
    }
    if (n < 0) {
      abort_pair(p); // reset (or error) on one side: reset the other side
      return;
    }
    const auto due = Clock::now() + (mode == Mode::delay ? delay : std::chrono::milliseconds(0));
    if (n == 0) {
      dir.eof = true;
      dir.queue.push_back(Chunk{due, {}, 0});
      return;
    }
    dir.queue.push_back(Chunk{due, std::string(buf.data(), static_cast<std::size_t>(n)), 0});
    dir.bytes += static_cast<std::size_t>(n);
  };

  auto accept_new = [&] {
    for (;;) {
      UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!c) {
        if (errno == EINTR || errno == ECONNABORTED)
          continue;
        return; // EAGAIN, or out of descriptors: try again on the next wake-up
      }
      accepted_.fetch_add(1);
      if (mode == Mode::reset) {
        reset_close(c);
        continue;
      }
      set_nodelay(c.get());
      auto p = std::make_unique<Pair>();
      p->client = std::move(c);
      if (mode == Mode::blackhole) {
        p->broken = true; // never connected upstream: abort when the partition heals
      } else {
        p->upstream.reset(
            ::socket(target_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!p->upstream) {
          abort_pair(*p);
          continue;
        }
        set_nodelay(p->upstream.get());
        if (::connect(p->upstream.get(), reinterpret_cast<const sockaddr*>(&target_),
                      target_len_) != 0) {
          if (errno != EINPROGRESS) {
            abort_pair(*p); // target refused: the client sees a reset, like a dead server
            continue;
          }
          p->connecting = true;
        }
      }
      pairs.push_back(std::move(p));
    }
  };

  while (!stop.stop_requested()) {
    // 1. Apply a requested mode change.
    {
      std::unique_lock lock(mutex_);
      if (requested_ != seen) {
        const Mode next = mode_;
        delay = delay_;
        seen = requested_;
        lock.unlock();
        apply_transition(pairs, mode, next);
        mode = next;
        publish_count();
        lock.lock();
        applied_ = seen;
        lock.unlock();
        applied_cv_.notify_all();
      }
    }

    // 2. Forward what is due, retire finished pairs.
    auto now = Clock::now();
    for (auto& p : pairs) {
      flush(*p, p->up, p->upstream, now);
      flush(*p, p->down, p->client, now);
      if (!p->dead && p->up.shut && p->down.shut) {
        // Both sides closed in an orderly way: close normally.
        p->client.reset();
        p->upstream.reset();
        p->dead = true;
      }
    }
    std::erase_if(pairs, [](const auto& p) { return p->dead; });
    publish_count();

    // 3. Build the poll set and the time until the next delayed chunk.
    pfds.clear();
    refs.clear();
    pfds.push_back({wake_fd_.get(), POLLIN, 0});
    pfds.push_back({listener_.get(), POLLIN, 0});
    refs.push_back({nullptr, false});
    refs.push_back({nullptr, false});
    Clock::time_point next_due = Clock::time_point::max();
    const bool hole = mode == Mode::blackhole;
    for (auto& pp : pairs) {
      Pair& p = *pp;
      for (Direction* d : {&p.up, &p.down}) {
        if (!d->queue.empty() && d->queue.front().due > now)
          next_due = std::min(next_due, d->queue.front().due);
      }
      if (p.client) {
        short ev = 0;
        if (hole || (!p.up.eof && p.up.bytes < kMaxQueued))
          ev |= POLLIN;
        if (front_due(p.down, now))
          ev |= POLLOUT;
        if (ev != 0) {
          pfds.push_back({p.client.get(), ev, 0});
          refs.push_back({&p, true});
        }
      }
      if (p.upstream) {
        short ev = 0;
        if (p.connecting) {
          ev = POLLOUT;
        } else {
          if (hole || (!p.down.eof && p.down.bytes < kMaxQueued))
            ev |= POLLIN;
          if (front_due(p.up, now))
            ev |= POLLOUT;
        }
        if (ev != 0) {
          pfds.push_back({p.upstream.get(), ev, 0});
          refs.push_back({&p, false});
        }
      }
    }
    int timeout = -1; // nothing scheduled: sleep until a socket or the eventfd wakes us
    if (next_due != Clock::time_point::max()) {
      auto ms = std::chrono::ceil<std::chrono::milliseconds>(next_due - now).count();
      timeout = static_cast<int>(std::clamp<long long>(ms, 0, INT_MAX));
    }

    // 4. Wait.
    int rc = ::poll(pfds.data(), pfds.size(), timeout);
    if (rc < 0) {
      if (errno == EINTR)
        continue;
      break; // cannot happen with valid arguments; do not spin if it does
    }
    if (rc == 0)
      continue;

    // 5. Handle events. Accept last, so a descriptor number freed by an abort
    //    above cannot be confused with a new connection's in this round.
    if (pfds[0].revents != 0) {
      std::uint64_t drained;
      ssize_t ignored = ::read(wake_fd_.get(), &drained, sizeof drained);
      (void)ignored;
    }
    for (std::size_t i = 2; i < pfds.size(); ++i) {
      const short re = pfds[i].revents;
      if (re == 0)
        continue;
      Pair& p = *refs[i].pair;
      if (p.dead)
        continue;
      UniqueFd& fd = refs[i].client ? p.client : p.upstream;
      if (!fd || fd.get() != pfds[i].fd)
        continue;
      if (!refs[i].client && p.connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == 0) {
          p.connecting = false;
        } else if (hole) {
          p.upstream.reset();
          p.broken = true;
        } else {
          abort_pair(p);
        }
        continue;
      }
      if (re & (POLLIN | POLLHUP | POLLERR)) {
        if (pfds[i].events & POLLIN) {
          read_side(p, refs[i].client);
        } else if (re & (POLLHUP | POLLERR)) {
          abort_pair(p); // cannot read (backpressure) and the socket is dead
        }
      }
      // POLLOUT: the flush at the top of the loop sends.
    }
    if (pfds[1].revents != 0)
      accept_new();
  }

  std::lock_guard lock(mutex_);
  thread_done_ = true;
  applied_cv_.notify_all();
}

} // namespace kvelect::testing
