// SPDX-License-Identifier: Apache-2.0
// Start-up of the long-running commands: connecting without making Ctrl-C wait, and a warning
// when this member's name already leads the election.
#pragma once

#include "cli_common.hpp"
#include "event_loop.hpp"

#include <kvelect/election.hpp>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include <unistd.h>

namespace kvelect::cli {

/// Runs `connect` (which connects and opens the bucket) on a helper thread while the main
/// thread watches for signals: a stop signal (SIGINT, SIGTERM, ...) during the connect ends
/// kvelect at once with exit status 0 (a requested stop) instead of waiting for the connect
/// timeout. The signals are blocked in every thread (block_signals() has run), so the helper
/// thread and the threads cnats starts inherit the mask. Rethrows what `connect` throws.
template <typename Connect>
auto connect_interruptibly(EventLoop& loop, Connect&& connect) -> decltype(connect()) {
  using Result = decltype(connect());
  std::optional<Result> result;
  std::exception_ptr error;
  std::atomic<bool> done{false};
  std::thread worker([&] {
    try {
      result.emplace(connect());
    } catch (...) {
      error = std::current_exception();
    }
    done = true;
    loop.post(ElectionEvent{}); // wakes the main thread; dropped below
  });
  while (!done) {
    const EventLoop::Wakeup wakeup = loop.wait(std::nullopt);
    for (int sig : wakeup.signals) {
      if (sig == SIGTSTP)
        ::kill(::getpid(), SIGSTOP); // Ctrl-Z: nothing to forward yet
      if (!is_stop_signal(sig))
        continue;
      // The connect may block inside cnats for its whole timeout; nothing has been started
      // that needs cleaning up, so leave without waiting for it (and without destructors that
      // would wait for it).
      write_line(stderr, "kvelect: stopped while connecting");
      std::fflush(nullptr);
      std::_Exit(kExitOk);
    }
  }
  worker.join(); // the wake-up event stays queued: an empty "campaign" event, ignored
  if (error)
    std::rethrow_exception(error);
  return std::move(*result);
}

/// Warns (through `warn`) when the election's key already holds this member's name: another
/// process with the same --name, or an earlier run that did not release. The library then waits
/// out that lease before campaigning (docs/protocol.md); the warning says why nothing happens.
inline void warn_if_name_leads(const Election& election,
                               const std::function<void(const std::string&)>& warn) {
  try {
    const auto leader = election.read_leader();
    if (leader && *leader == election.name())
      warn(fmt::format("'{}' already leads '{}' from elsewhere (another process with this name, "
                       "or an earlier run that did not release): waiting for its lease to end; "
                       "give each member its own --name",
                       election.name(), election.key()));
  } catch (const Error&) { // NOLINT(bugprone-empty-catch): the campaign reports read failures
  }
}

} // namespace kvelect::cli
