// SPDX-License-Identifier: Apache-2.0
// kvelect run ELECTION -- COMMAND [ARGS...]: campaign, and supervise COMMAND while leader.
//
// Threads: the library's campaign thread only posts events (session.cpp); this file runs on the
// main thread, which owns the child, the hooks and the signals (signalfd, event_loop.hpp).
#include "commands.hpp"
#include "duration.hpp"
#include "event_loop.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "process.hpp"
#include "session.hpp"
#include "shell_words.hpp"
#include "startup.hpp"

#include <fmt/format.h>

#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <mutex>
#include <optional>

namespace kvelect::cli {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

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
      log_.error("hook", fmt::format("hook '{}' still running after {}: killing it", current_,
                                     format_duration(timeout_)));
      child_.terminate({{SIGTERM, milliseconds(0)}, {SIGKILL, milliseconds(1000)}}, now);
    }
    child_.advance(now);
  }
  void reap() {
    if (auto status = child_.reap()) {
      if (*status != 0)
        log_.error("hook", fmt::format("hook '{}' {}", current_, describe_status(*status)));
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
        log_.error("hook", fmt::format("hook '{}': {}", current_, e.what()));
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

// Between the OnLost callback (campaign thread) and the main thread, which acts on the loss.
struct LossGate {
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t losses_seen = 0; ///< OnLost calls (campaign thread)
  std::uint64_t losses_done = 0; ///< lost events acted on (main thread)
  bool child_running = false;
  bool stopping = false; ///< the main thread is leaving: OnLost must not wait for it

  void set_child_running(bool running) {
    {
      std::lock_guard lock(mu);
      child_running = running;
    }
    cv.notify_all();
  }
  void loss_done() {
    {
      std::lock_guard lock(mu);
      ++losses_done;
    }
    cv.notify_all();
  }
  void stop() {
    {
      std::lock_guard lock(mu);
      stopping = true;
    }
    cv.notify_all();
  }
};

// How long a freshly started command gets before its first SIGUSR1, as Choria gives it ("give
// it some time to start properly"): a command that installs its handlers at start-up must not
// die of the signal.
constexpr milliseconds kFirstUsr1Delay{1000};

// The command's argv: verbatim after '--', else Choria's form (the words joined with spaces,
// then split as a shell would, without running one).
std::vector<std::string> command_argv(const RunOptions& o) {
  if (o.argv_form)
    return o.command;
  const std::string line = fmt::format("{}", fmt::join(o.command, " "));
  std::vector<std::string> argv;
  try {
    argv = shell_split(line);
  } catch (const ShellSplitError& e) {
    throw UsageError(fmt::format("cannot split the command \"{}\": {} (or give the command's "
                                 "words after '--')",
                                 line, e.what()));
  }
  if (argv.empty())
    throw UsageError("the command is empty");
  return argv;
}

// The exit status of a requested stop (SIGINT, SIGTERM, ... to kvelect): 0 when the command
// ended as asked, by the forwarded signal itself (or a shell's 128+N for it) or with status 0;
// its own exit code when it chose one; 128+N when a later signal (SIGKILL) was needed.
int stop_exit_code(int status, int forwarded) {
  if (WIFSIGNALED(status) && WTERMSIG(status) == forwarded)
    return kExitOk;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 128 + forwarded)
    return kExitOk;
  return exit_code_of(status);
}

} // namespace

int run_command(const RunOptions& o) {
  // The command is resolved before anything else: a typo fails now, not at the first win.
  const std::vector<std::string> argv = command_argv(o);
  const ResolvedCommand resolved = resolve_command(argv.front());
  if (resolved.error != 0) {
    write_line(stderr, fmt::format("kvelect: error: cannot run the command: {}", resolved.message));
    return resolved.error == ENOENT ? 127 : 126;
  }
  const std::string member = member_name(o.common);
  require_metrics_support(o.flags.metrics);
  const Log log(o.log_format, o.quiet, o.election, member);
  log_connection_events(log); // before connecting: lines with times, or JSON
  // Before the first thread exists (the NATS connection starts some).
  block_signals(/*job_control=*/true);
  EventLoop loop;

  // The transition lines are written on the campaign thread, in the callbacks: "lost" is out
  // before the key is released. The actions (signals, hooks) follow on the main thread.
  auto announce = [&log, &o](const ElectionEvent& event) {
    switch (event.kind) {
    case ElectionEvent::Kind::won:
      log.info("won", fmt::format("won leadership of '{}' (token {})", o.election, event.token),
               {{"token", static_cast<std::int64_t>(event.token)}});
      break;
    case ElectionEvent::Kind::lost:
      log.info("lost", fmt::format("lost leadership of '{}'", o.election));
      break;
    case ElectionEvent::Kind::leader: {
      LogField leader{"leader", std::monostate{}};
      if (event.leader)
        leader.value = *event.leader;
      log.info("leader",
               fmt::format("leader of '{}': {}", o.election,
                           event.leader ? "'" + *event.leader + "'" : std::string("none")),
               {leader});
      break;
    }
    case ElectionEvent::Kind::error:
      // A failed request is the library's warning line already (election_options()); a fatal
      // error, which ends the command, is reported here.
      if (event.fatal)
        log.error("error", "fatal: " + event.error);
      break;
    case ElectionEvent::Kind::campaign: break;
    }
  };
  // OnLost waits (bounded) until the main thread has acted on the loss: SIGUSR2 sent, or with
  // --terminate the command gone. The library releases the key only after OnLost returns, so
  // after an eviction the successor does not start its command while ours still runs.
  LossGate gate;
  const milliseconds settle_limit =
      o.terminate ? 2 * o.grace + milliseconds(1000) : milliseconds(1000);
  auto settle = [&gate, settle_limit, terminate = o.terminate](const ElectionEvent& event) {
    if (event.kind != ElectionEvent::Kind::lost)
      return;
    std::unique_lock lock(gate.mu);
    const std::uint64_t ticket = ++gate.losses_seen;
    gate.cv.wait_for(lock, settle_limit, [&] {
      return gate.stopping || (gate.losses_done >= ticket && (!terminate || !gate.child_running));
    });
  };
  auto session = connect_interruptibly(loop, [&] {
    return std::make_unique<ElectionSession>(o.common, o.flags, log, o.election, member, loop,
                                             announce, settle);
  });
  warn_if_name_leads(session->election(), [&](const std::string& w) { log.error("warning", w); });
  std::unique_ptr<MetricsServer> metrics; // after the session: destroyed before the election
  if (!o.flags.metrics.empty()) {
    metrics = serve_metrics(o.flags.metrics, session->election());
    log.info("metrics", fmt::format("serving metrics at {}", metrics->url()),
             {{"url", metrics->url()}});
  }

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
  int stop_signal = 0;        // the signal that asked kvelect to stop (0: it stopped by itself)
  std::optional<Clock::time_point> usr1_due; // the first SIGUSR1 of a freshly started command
  int exit_code = kExitOk;
  Token token = 0;
  const std::string command_text = fmt::format("{}", fmt::join(argv, " "));
  auto pid_field = [&] { return LogField{"pid", static_cast<std::int64_t>(child.pid())}; };

  auto start_child = [&] {
    start_pending = false;
    SpawnOptions spawn;
    spawn.argv = argv;
    spawn.extra_env = env_with({"KVELECT_TOKEN=" + std::to_string(token)});
    // If kvelect dies without a chance to clean up, the command must not outlive its lease.
    spawn.parent_death_signal = SIGTERM;
    try {
      child.start(spawn);
      gate.set_child_running(true);
      usr1_due = Clock::now() + kFirstUsr1Delay;
      log.info("started", fmt::format("started '{}' (pid {})", command_text, child.pid()),
               {pid_field()});
    } catch (const SpawnError& e) {
      log.error("start", e.what());
      exit_code = e.error() == ENOENT ? 127 : 126;
      stopping = true;
    }
  };
  auto notify = [&](int sig) {
    log.info(
        "signal",
        fmt::format("sending {} to '{}' (pid {})", signal_name(sig), command_text, child.pid()),
        {{"signal", signal_name(sig)}, pid_field()});
    child.notify(sig);
  };
  // What losing leadership does to a running command.
  auto on_loss = [&] {
    usr1_due.reset();
    start_pending = false;
    if (!child.running() || child.terminating())
      return;
    if (o.terminate) {
      log.info("signal",
               fmt::format("sending SIGINT to '{}' (pid {}), SIGTERM after {}, SIGKILL after {} "
                           "more",
                           command_text, child.pid(), format_duration(o.grace),
                           format_duration(o.grace)),
               {{"signal", "SIGINT"}, pid_field()});
      child.terminate({{SIGINT, milliseconds(0)}, {SIGTERM, o.grace}, {SIGKILL, o.grace}});
    } else {
      notify(SIGUSR2);
    }
  };
  auto shut_down = [&](int sig, const std::string& why) {
    if (!stopping) {
      stopping = true;
      start_pending = false;
      usr1_due.reset();
      log.info("stopping", fmt::format("{}: stopping", why));
      if (child.running()) {
        log.info("signal",
                 fmt::format("sending {} to '{}' (pid {}), SIGKILL after {}", signal_name(sig),
                             command_text, child.pid(), format_duration(o.grace)),
                 {{"signal", signal_name(sig)}, pid_field()});
        child.terminate({{sig, milliseconds(0)}, {SIGKILL, o.grace}});
      }
    } else if (child.running() && is_stop_signal(sig)) {
      log.info("signal", fmt::format("{} again: sending SIGKILL to '{}'", why, command_text),
               {{"signal", "SIGKILL"}, pid_field()});
      child.terminate({{SIGKILL, milliseconds(0)}});
    }
  };

  log.info("campaigning",
           fmt::format("campaigning for '{}' in bucket '{}' as '{}' (ttl {}); command '{}'",
                       o.election, o.common.bucket, member,
                       format_duration(session->election().ttl()), command_text));
  session->election().start();

  while (!(stopping && !child.running())) {
    const auto deadline = earliest(earliest(child.deadline(), hooks.deadline()), usr1_due);
    const EventLoop::Wakeup wakeup = loop.wait(deadline);

    for (int sig : wakeup.signals) {
      if (is_stop_signal(sig)) {
        if (stop_signal == 0 && !stopping)
          stop_signal = sig;
        shut_down(sig, signal_name(sig));
      } else if (sig == SIGTSTP) {
        // Ctrl-Z: the command has a process group of its own, so the terminal's SIGTSTP does not
        // reach it; stop it too, then kvelect itself.
        if (child.running()) {
          log.info("suspend",
                   fmt::format("SIGTSTP: suspending '{}' (pid {}) and kvelect", command_text,
                               child.pid()),
                   {pid_field()});
          child.signal(SIGTSTP);
        } else {
          log.info("suspend", "SIGTSTP: suspending kvelect");
        }
        ::kill(::getpid(), SIGSTOP); // returns once continued
      } else if (sig == SIGCONT) {
        // Resumed. If the lease ran out meanwhile, the command must learn it before it runs
        // again: the loss is acted on now, ahead of the OnLost that follows.
        if (leading && !session->election().is_leader()) {
          log.info("lost", fmt::format("leadership of '{}' lapsed while suspended", o.election));
          leading = false;
          on_loss();
        }
        if (child.running()) {
          log.info("resume",
                   fmt::format("SIGCONT: resuming '{}' (pid {})", command_text, child.pid()),
                   {pid_field()});
          child.signal(SIGCONT);
        }
      }
    }

    for (const ElectionEvent& event : wakeup.events) {
      switch (event.kind) {
      case ElectionEvent::Kind::won:
        leading = true;
        token = event.token;
        hooks.enqueue(o.on_won,
                      env_with({"KVELECT_EVENT=won", "KVELECT_TOKEN=" + std::to_string(token)}));
        if (stopping)
          break;
        if (!child.running()) {
          start_child();
        } else if (child.terminating()) {
          start_pending = true; // the old one is still on its way out
        } else if (!usr1_due) {
          notify(SIGUSR1); // won back while the command kept running (Choria: a re-win)
        }
        break;
      case ElectionEvent::Kind::lost:
        hooks.enqueue(o.on_lost, env_with({"KVELECT_EVENT=lost"}));
        if (leading) { // else already acted on (a lease that lapsed while suspended)
          leading = false;
          on_loss();
        }
        gate.loss_done();
        break;
      case ElectionEvent::Kind::error:
        if (event.fatal && !stopping) {
          exit_code = kExitFailure;
          shut_down(SIGTERM, "campaign ended");
        }
        break;
      case ElectionEvent::Kind::leader:
      case ElectionEvent::Kind::campaign: break;
      }
    }

    // SIGCHLD or not, reap: signals of several exits can merge into one.
    if (auto status = child.reap()) {
      gate.set_child_running(false);
      usr1_due.reset();
      log.info("exited", fmt::format("'{}' {}", command_text, describe_status(*status)),
               {{"status", static_cast<std::int64_t>(exit_code_of(*status))}});
      if (stopping) {
        if (exit_code == kExitOk)
          exit_code =
              stop_signal != 0 ? stop_exit_code(*status, stop_signal) : exit_code_of(*status);
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
    if (usr1_due && now >= *usr1_due) {
      usr1_due.reset();
      if (child.running() && !child.terminating() && leading)
        notify(SIGUSR1);
    }
    child.advance(now);
    hooks.on_timer(now);
  }

  // The command is gone: now give up leadership (release the key, so a successor starts at
  // once). Stopping first would let a successor start while our command still runs.
  gate.stop(); // OnLost, fired by stop(), must not wait for this thread
  session->election().stop();
  log.info("left", fmt::format("left election '{}'", o.election));

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
