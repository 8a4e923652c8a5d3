// SPDX-License-Identifier: Apache-2.0
// The main thread's event loop for the long-running commands (run, file, campaign, watch).
//
// Signals: block_signals() blocks SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGCHLD in the calling
// thread before any other thread exists (so every thread inherits the mask and none is
// interrupted); a signalfd then reports them to the main thread. No signal handlers at all.
//
// Election callbacks: they run on the library's campaign thread and must not block it, so they
// only post() an event (a short mutex hold and a one-byte write to a non-blocking pipe); the
// main thread wakes up in wait() and does the real work.
#pragma once

#include <kvelect/options.hpp>
#include <kvelect/state.hpp>

#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace kvelect::cli {

/// Blocks the signals the event loop reports (and ignores SIGPIPE). Call before creating threads.
/// With `job_control` (kvelect run), SIGTSTP and SIGCONT are reported too: the caller then stops
/// itself (and its child) on SIGTSTP; without it they keep their default actions.
void block_signals(bool job_control = false);

/// True for the signals that ask a long-running command to stop: SIGINT, SIGTERM, SIGHUP, SIGQUIT.
bool is_stop_signal(int signal) noexcept;

/// One election callback, recorded on the campaign thread.
struct ElectionEvent {
  enum class Kind { campaign, won, lost, leader, error };
  Kind kind = Kind::campaign;
  std::chrono::system_clock::time_point time = std::chrono::system_clock::now();
  State state = State::Unknown;
  Token token = 0;                   ///< won
  std::optional<std::string> leader; ///< leader: nullopt for "no leader"
  std::string error;                 ///< error
  bool fatal = false;                ///< error: the campaign loop has stopped
};

/// "campaign", "won", "lost", "leader", "error".
const char* to_string(ElectionEvent::Kind kind) noexcept;

class EventLoop {
public:
  using Clock = std::chrono::steady_clock;

  /// What woke wait() up: signals (in arrival order) and the events posted since.
  struct Wakeup {
    std::vector<int> signals;
    std::vector<ElectionEvent> events;
  };

  /// Opens the signalfd and the wake-up pipe; block_signals() must have run.
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// Thread-safe, non-blocking: queues `event` and wakes the main thread.
  void post(ElectionEvent event);
  /// Waits until a signal or an event arrives, or `deadline` passes (nullopt: no deadline).
  Wakeup wait(std::optional<Clock::time_point> deadline);
  /// Signals pending now, without waiting.
  std::vector<int> poll_signals();

private:
  std::vector<int> read_signals();

  int signal_fd_ = -1;
  int pipe_[2] = {-1, -1};
  std::mutex mu_;
  std::deque<ElectionEvent> queue_;
};

} // namespace kvelect::cli
