// SPDX-License-Identifier: Apache-2.0
#include "event_loop.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>

namespace kvelect::cli {
namespace {

bool g_job_control = false; // set once, before any thread exists

sigset_t handled_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD})
    sigaddset(&set, s);
  if (g_job_control) {
    sigaddset(&set, SIGTSTP);
    sigaddset(&set, SIGCONT);
  }
  return set;
}

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string(what) + ": " + std::strerror(errno));
}

} // namespace

bool is_stop_signal(int sig) noexcept {
  return sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT;
}

void block_signals(bool job_control) {
  g_job_control = job_control;
  const sigset_t set = handled_signals();
  if (::pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0)
    fail("pthread_sigmask");
  std::signal(SIGPIPE, SIG_IGN); // a closed stdout is an EPIPE error, not a silent death
}

const char* to_string(ElectionEvent::Kind kind) noexcept {
  switch (kind) {
  case ElectionEvent::Kind::campaign: return "campaign";
  case ElectionEvent::Kind::won: return "won";
  case ElectionEvent::Kind::lost: return "lost";
  case ElectionEvent::Kind::leader: return "leader";
  case ElectionEvent::Kind::error: return "error";
  }
  return "?";
}

EventLoop::EventLoop() {
  const sigset_t set = handled_signals();
  signal_fd_ = ::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signal_fd_ < 0)
    fail("signalfd");
  if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    ::close(signal_fd_);
    fail("pipe2");
  }
}

EventLoop::~EventLoop() {
  ::close(signal_fd_);
  ::close(pipe_[0]);
  ::close(pipe_[1]);
}

void EventLoop::post(ElectionEvent event) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(event));
  }
  const char byte = 1;
  // A full pipe already holds a wake-up: EAGAIN is fine.
  [[maybe_unused]] const ssize_t n = ::write(pipe_[1], &byte, 1);
}

std::vector<int> EventLoop::read_signals() {
  std::vector<int> signals;
  signalfd_siginfo info{};
  for (;;) {
    const ssize_t n = ::read(signal_fd_, &info, sizeof info);
    if (n != static_cast<ssize_t>(sizeof info))
      break;
    signals.push_back(static_cast<int>(info.ssi_signo));
  }
  return signals;
}

std::vector<int> EventLoop::poll_signals() { return read_signals(); }

EventLoop::Wakeup EventLoop::wait(std::optional<Clock::time_point> deadline) {
  Wakeup wakeup;
  for (;;) {
    int timeout = -1;
    if (deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
      timeout = static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, 60'000));
    }
    {
      std::lock_guard lock(mu_);
      if (!queue_.empty())
        timeout = 0;
    }
    pollfd fds[2] = {{signal_fd_, POLLIN, 0}, {pipe_[0], POLLIN, 0}};
    const int ready = ::poll(fds, 2, timeout);
    if (ready < 0 && errno != EINTR)
      fail("poll");
    if (ready > 0 && (fds[1].revents & POLLIN) != 0) {
      char buffer[256];
      while (::read(pipe_[0], buffer, sizeof buffer) > 0) {
      }
    }
    wakeup.signals = read_signals();
    {
      std::lock_guard lock(mu_);
      wakeup.events.assign(std::make_move_iterator(queue_.begin()),
                           std::make_move_iterator(queue_.end()));
      queue_.clear();
    }
    if (!wakeup.signals.empty() || !wakeup.events.empty())
      return wakeup;
    if (deadline && Clock::now() >= *deadline)
      return wakeup;
    if (!deadline && ready == 0)
      continue;
  }
}

} // namespace kvelect::cli
