// SPDX-License-Identifier: Apache-2.0
// Child processes for `kvelect run`: fork/exec in a process group of their own, signals to the
// whole group, and a termination schedule (e.g. SIGINT, then SIGTERM after a grace period, then
// SIGKILL) driven by the caller's event loop. No threads and no signal handlers here: the caller
// reaps children (waitpid) when its signalfd reports SIGCHLD and hands the status back.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace kvelect::cli {

/// A child could not be started; `error()` is the errno (ENOENT, EACCES, ...).
class SpawnError : public std::runtime_error {
public:
  SpawnError(const std::string& what, int error) : std::runtime_error(what), error_(error) {}
  int error() const noexcept { return error_; }

private:
  int error_;
};

struct SpawnOptions {
  std::vector<std::string> argv;      ///< argv[0] is looked up in $PATH unless it has a '/'
  std::vector<std::string> extra_env; ///< "NAME=value" entries added to (or replacing) ours
  bool own_process_group = true;      ///< setpgid(0, 0) in the child
  /// Sent to the child if kvelect dies (PR_SET_PDEATHSIG); 0 for none.
  int parent_death_signal = 0;
};

/// The path `name` runs as: itself if it contains '/', else the first executable match in
/// $PATH (or the default path if $PATH is unset). Empty if there is none.
std::string find_executable(const std::string& name);

/// What resolve_command() found.
struct ResolvedCommand {
  std::string path;    ///< the file to execute; empty when none was found
  int error = 0;       ///< 0, or ENOENT (not found: exit 127) or EACCES (not executable: 126)
  std::string message; ///< why not, for the user: "'x': command not found", ...
};

/// Resolves `name` as execve would run it, before anything is started: a name with a '/' must
/// be an executable regular file; any other is looked up in $PATH (the default path if unset).
/// A file that exists but cannot be executed (no x permission, a directory) is EACCES, as a
/// shell reports it (126); nothing at all is ENOENT (127).
ResolvedCommand resolve_command(const std::string& name);

/// Starts a child. Everything that can fail (lookup, exec) is reported here as a SpawnError,
/// exec failures included (through a close-on-exec pipe). The child gets an empty signal mask
/// and default signal dispositions.
pid_t spawn(const SpawnOptions& options);

/// The shell's view of a wait status: the exit code, or 128 + the signal number.
int exit_code_of(int wait_status);
/// "exited with code 3", "killed by signal 15 (Terminated)".
std::string describe_status(int wait_status);

/// "SIGTERM", "SIGUSR1", ... ("signal N" for others).
std::string signal_name(int signal);

/// Sends `signal` to the process group `pgid` (if the child has one) or else to `pid`.
/// Returns false if no such process (group) exists any more.
bool signal_process(pid_t pid, int signal, bool group);

/// One supervised child: start, signal, terminate with escalation, reap.
class Child {
public:
  using Clock = std::chrono::steady_clock;
  /// One step of a termination schedule: send `signal` `after` the previous step.
  struct Step {
    int signal;
    std::chrono::milliseconds after;
  };

  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  /// Starts the child; SpawnError on failure. Must not be running.
  void start(const SpawnOptions& options);
  bool running() const noexcept { return pid_ > 0; }
  pid_t pid() const noexcept { return pid_; }
  /// True between terminate() and the child's exit.
  bool terminating() const noexcept { return running() && step_ < steps_.size(); }

  /// Sends `signal` to the child's process group. False if it is not running.
  bool signal(int signal);
  /// Sends `signal` to the child process only (not the rest of its group).
  bool notify(int signal);
  /// Starts a termination schedule: the first step's signal goes out now (its `after` is
  /// ignored), the rest when advance() sees their time. A child already terminating keeps its
  /// schedule unless the new one starts with SIGKILL (a second Ctrl-C).
  void terminate(std::vector<Step> steps, Clock::time_point now = Clock::now());
  /// When advance() must be called next; nullopt when nothing is scheduled.
  std::optional<Clock::time_point> deadline() const;
  /// Sends the signals whose time has come.
  void advance(Clock::time_point now = Clock::now());

  /// Reaps the child if it exited (waitpid WNOHANG). Returns its wait status once, when it has
  /// exited; after that the object is ready to start() again. Any process left in its group
  /// gets SIGTERM.
  std::optional<int> reap();

private:
  pid_t pid_ = -1;
  bool group_ = true;
  std::vector<Step> steps_;
  std::size_t step_ = 0;
  Clock::time_point next_{};
};

} // namespace kvelect::cli
