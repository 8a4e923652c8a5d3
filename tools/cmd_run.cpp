// SPDX-License-Identifier: Apache-2.0
// kvelect run ELECTION -- COMMAND [ARGS...]: campaign, and supervise COMMAND while leader.
//
// Threads: the library's campaign thread only posts events (session.cpp); this file runs on the
// main thread, which owns the child, the hooks and the signals (signalfd, event_loop.hpp).
#include "commands.hpp"
#include "duration.hpp"
#include "event_loop.hpp"
#include "process.hpp"
#include "session.hpp"

#include <fmt/format.h>

#include <csignal>
#include <deque>
#include <optional>

namespace kvelect::cli {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

class Log {
public:
  explicit Log(bool quiet) : quiet_(quiet) {}
  template <typename... Args>
  void info(fmt::format_string<Args...> format, Args&&... args) const {
    if (!quiet_)
      write(fmt::format(format, std::forward<Args>(args)...));
  }
  template <typename... Args>
  void error(fmt::format_string<Args...> format, Args&&... args) const {
    write(fmt::format(format, std::forward<Args>(args)...));
  }

private:
  static void write(const std::string& message) {
    const std::string line = "kvelect: " + message + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  }
  bool quiet_;
};

// The --on-won / --on-lost hooks: `/bin/sh -c CMD`, one at a time in transition order, each
// killed (SIGTERM, then SIGKILL 1 s later) if it outlives the hook timeout. They never block
// the campaign thread, and the main thread only waits for them on its way out.
class Hooks {
public:
  Hooks(milliseconds timeout, const Log& log) : timeout_(timeout), log_(log) {}

  void enqueue(const std::string& command, std::vector<std::string> env) {
    if (!command.empty())
      queue_.push_back({command, std::move(env)});
    pump();
  }
  bool idle() const { return !child_.running() && queue_.empty(); }
  std::optional<Clock::time_point> deadline() const {
    if (!child_.running())
      return std::nullopt;
    if (auto escalation = child_.deadline())
      return escalation;
    return child_.terminating() ? std::nullopt : std::optional(started_ + timeout_);
  }
  void on_timer(Clock::time_point now) {
    if (!child_.running())
      return;
    if (!child_.terminating() && now >= started_ + timeout_) {
      log_.error("hook '{}' still running after {}: killing it", current_,
                 format_duration(timeout_));
      child_.terminate({{SIGTERM, milliseconds(0)}, {SIGKILL, milliseconds(1000)}}, now);
    }
    child_.advance(now);
  }
  void reap() {
    if (auto status = child_.reap()) {
      if (*status != 0)
        log_.error("hook '{}' {}", current_, describe_status(*status));
      pump();
    }
  }
  void kill_now() {
    queue_.clear();
    child_.terminate({{SIGKILL, milliseconds(0)}});
  }

private:
  struct Pending {
    std::string command;
    std::vector<std::string> env;
  };
  void pump() {
    while (!child_.running() && !queue_.empty()) {
      Pending next = std::move(queue_.front());
      queue_.pop_front();
      current_ = next.command;
      try {
        SpawnOptions spawn;
        spawn.argv = {"/bin/sh", "-c", next.command};
        spawn.extra_env = std::move(next.env);
        spawn.parent_death_signal = SIGTERM;
        child_.start(spawn);
        started_ = Clock::now();
      } catch (const SpawnError& e) {
        log_.error("hook '{}': {}", current_, e.what());
      }
    }
  }

  milliseconds timeout_;
  const Log& log_;
  std::deque<Pending> queue_;
  Child child_;
  std::string current_;
  Clock::time_point started_{};
};

std::optional<Clock::time_point> earliest(std::optional<Clock::time_point> a,
                                          std::optional<Clock::time_point> b) {
  if (!a)
    return b;
  if (!b)
    return a;
  return std::min(*a, *b);
}

bool is_stop_signal(int sig) {
  return sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT;
}

} // namespace

int run_command(const RunOptions& o) {
  const Log log(o.quiet);
  const std::string member = member_name(o.common);
  // Before the first thread exists (the NATS connection starts some).
  block_signals();
  EventLoop loop;
  ElectionSession session(o.common, o.flags, o.election, member, loop);

  const std::vector<std::string> base_env = {
      "KVELECT_ELECTION=" + o.election,
      "KVELECT_MEMBER=" + member,
      "KVELECT_BUCKET=" + o.common.bucket,
  };
  auto env_with = [&](std::initializer_list<std::string> more) {
    std::vector<std::string> env = base_env;
    env.insert(env.end(), more.begin(), more.end());
    return env;
  };

  Hooks hooks(o.hook_timeout, log);
  Child child;
  bool leading = false;
  bool start_pending = false; // won while the previous child was still terminating
  bool stopping = false;      // shutting down: no new child, election stops once it is gone
  int exit_code = kExitOk;
  Token token = 0;
  const std::string command_text = fmt::format("{}", fmt::join(o.command, " "));

  auto start_child = [&] {
    start_pending = false;
    SpawnOptions spawn;
    spawn.argv = o.command;
    spawn.extra_env = env_with({"KVELECT_TOKEN=" + std::to_string(token)});
    // If kvelect dies without a chance to clean up, the command must not outlive its lease.
    spawn.parent_death_signal = SIGTERM;
    try {
      child.start(spawn);
      log.info("started '{}' (pid {})", command_text, child.pid());
    } catch (const SpawnError& e) {
      log.error("{}", e.what());
      exit_code = e.error() == ENOENT ? 127 : 126;
      stopping = true;
    }
  };
  auto shut_down = [&](int sig, const std::string& why) {
    if (!stopping) {
      stopping = true;
      start_pending = false;
      log.info("{}: stopping", why);
      if (child.running()) {
        log.info("sending {} to '{}' (pid {}), SIGKILL after {}", signal_name(sig), command_text,
                 child.pid(), format_duration(o.grace));
        child.terminate({{sig, milliseconds(0)}, {SIGKILL, o.grace}});
      }
    } else if (child.running() && is_stop_signal(sig)) {
      log.info("{} again: sending SIGKILL to '{}'", why, command_text);
      child.terminate({{SIGKILL, milliseconds(0)}});
    }
  };

  log.info("campaigning for '{}' in bucket '{}' as '{}' (ttl {})", o.election, o.common.bucket,
           member, format_duration(session.election().ttl()));
  session.election().start();

  while (!(stopping && !child.running())) {
    const auto deadline = earliest(child.deadline(), hooks.deadline());
    const EventLoop::Wakeup wakeup = loop.wait(deadline);

    for (int sig : wakeup.signals)
      if (is_stop_signal(sig))
        shut_down(sig, signal_name(sig));

    for (const ElectionEvent& event : wakeup.events) {
      switch (event.kind) {
      case ElectionEvent::Kind::won:
        leading = true;
        token = event.token;
        log.info("won leadership of '{}' (token {})", o.election, token);
        hooks.enqueue(o.on_won,
                      env_with({"KVELECT_EVENT=won", "KVELECT_TOKEN=" + std::to_string(token)}));
        if (stopping)
          break;
        if (!child.running()) {
          start_child();
        } else if (child.terminating()) {
          start_pending = true; // the old one is still on its way out
        } else {
          log.info("sending SIGUSR1 to '{}' (pid {})", command_text, child.pid());
          child.notify(SIGUSR1);
        }
        break;
      case ElectionEvent::Kind::lost:
        leading = false;
        start_pending = false;
        log.info("lost leadership of '{}'", o.election);
        hooks.enqueue(o.on_lost, env_with({"KVELECT_EVENT=lost"}));
        if (!child.running() || child.terminating())
          break;
        if (o.terminate) {
          log.info("sending SIGINT to '{}' (pid {}), SIGTERM after {}, SIGKILL after {} more",
                   command_text, child.pid(), format_duration(o.grace), format_duration(o.grace));
          child.terminate({{SIGINT, milliseconds(0)}, {SIGTERM, o.grace}, {SIGKILL, o.grace}});
        } else {
          log.info("sending SIGUSR2 to '{}' (pid {})", command_text, child.pid());
          child.notify(SIGUSR2);
        }
        break;
      case ElectionEvent::Kind::leader:
        log.info("leader of '{}': {}", o.election,
                 event.leader ? "'" + *event.leader + "'" : std::string("none"));
        break;
      case ElectionEvent::Kind::error:
        log.error("{}{}", event.fatal ? "fatal: " : "", event.error);
        if (event.fatal && !stopping) {
          exit_code = kExitFailure;
          shut_down(SIGTERM, "campaign ended");
        }
        break;
      case ElectionEvent::Kind::campaign: break;
      }
    }

    // SIGCHLD or not, reap: signals of several exits can merge into one.
    if (auto status = child.reap()) {
      log.info("'{}' {}", command_text, describe_status(*status));
      if (stopping) {
        if (exit_code == kExitOk)
          exit_code = exit_code_of(*status);
      } else if (o.terminate && !leading) {
        // Terminated on loss, as asked: keep campaigning.
      } else if (o.terminate && start_pending) {
        start_child();
      } else {
        // The command ended by itself: so does kvelect, with its exit code.
        exit_code = exit_code_of(*status);
        stopping = true;
      }
    }
    if (start_pending && leading && !child.running() && !stopping)
      start_child();
    hooks.reap();
    const auto now = Clock::now();
    child.advance(now);
    hooks.on_timer(now);
  }

  // The command is gone: now give up leadership (release the key, so a successor starts at
  // once). Stopping first would let a successor start while our command still runs.
  session.election().stop();
  log.info("left election '{}'", o.election);

  // Run the hooks of the last transitions (OnLost from stop()), bounded by the hook timeout.
  for (;;) {
    const EventLoop::Wakeup wakeup =
        loop.wait(hooks.idle() ? std::optional(Clock::now()) : hooks.deadline());
    for (const ElectionEvent& event : wakeup.events)
      if (event.kind == ElectionEvent::Kind::lost)
        hooks.enqueue(o.on_lost, env_with({"KVELECT_EVENT=lost"}));
    for (int sig : wakeup.signals)
      if (is_stop_signal(sig))
        hooks.kill_now();
    hooks.reap();
    hooks.on_timer(Clock::now());
    if (hooks.idle() && wakeup.events.empty())
      break;
  }
  return exit_code;
}

} // namespace kvelect::cli
