// SPDX-License-Identifier: Apache-2.0
#include "process.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>

extern char** environ; // NOLINT(readability-redundant-declaration)

namespace kvelect::cli {
namespace {

bool executable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// Writes all of `data` to `fd`, retrying EINTR; async-signal-safe.
void write_all(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

// Our environment with `extra` added (an entry replaces one of the same name).
std::vector<std::string> merged_environment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  auto name_of = [](const std::string& entry) { return entry.substr(0, entry.find('=')); };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry(*e);
    bool replaced = false;
    for (const auto& x : extra)
      if (name_of(x) == name_of(entry))
        replaced = true;
    if (!replaced)
      env.push_back(std::move(entry));
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

} // namespace

std::string find_executable(const std::string& name) {
  if (name.empty())
    return {};
  if (name.find('/') != std::string::npos)
    return executable(name) ? name : std::string();
  const char* env = std::getenv("PATH"); // NOLINT(concurrency-mt-unsafe): read-only use
  const std::string path = env != nullptr ? env : "/usr/local/bin:/usr/bin:/bin";
  std::size_t begin = 0;
  for (;;) {
    const std::size_t end = path.find(':', begin);
    const std::string dir =
        path.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    const std::string candidate = (dir.empty() ? std::string(1, '.') : dir) + "/" + name;
    if (executable(candidate))
      return candidate;
    if (end == std::string::npos)
      return {};
    begin = end + 1;
  }
}

ResolvedCommand resolve_command(const std::string& name) {
  ResolvedCommand r;
  auto check = [](const std::string& path) -> int {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
      return ENOENT;
    if (!S_ISREG(st.st_mode) || ::access(path.c_str(), X_OK) != 0)
      return EACCES;
    return 0;
  };
  if (name.empty()) {
    r.error = ENOENT;
    r.message = "the command is empty";
    return r;
  }
  if (name.find('/') != std::string::npos) {
    r.error = check(name);
    if (r.error == 0)
      r.path = name;
    else if (r.error == ENOENT)
      r.message = fmt::format("'{}': no such file", name);
    else
      r.message = fmt::format("'{}' is not an executable file", name);
    return r;
  }
  const char* env = std::getenv("PATH"); // NOLINT(concurrency-mt-unsafe): read-only use
  const std::string path = env != nullptr ? env : "/usr/local/bin:/usr/bin:/bin";
  std::string denied;
  std::size_t begin = 0;
  for (;;) {
    const std::size_t end = path.find(':', begin);
    const std::string dir =
        path.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    const std::string candidate = (dir.empty() ? std::string(1, '.') : dir) + "/" + name;
    const int error = check(candidate);
    if (error == 0) {
      r.path = candidate;
      return r;
    }
    if (error == EACCES && denied.empty())
      denied = candidate;
    if (end == std::string::npos)
      break;
    begin = end + 1;
  }
  if (!denied.empty()) {
    r.error = EACCES;
    r.message = fmt::format("'{}' ({}) is not an executable file", name, denied);
  } else {
    r.error = ENOENT;
    r.message = fmt::format("'{}': command not found in $PATH", name);
  }
  return r;
}

pid_t spawn(const SpawnOptions& options) {
  if (options.argv.empty())
    throw SpawnError("no command given", EINVAL);
  const std::string path = find_executable(options.argv.front());
  if (path.empty())
    throw SpawnError(fmt::format("cannot run '{}': command not found", options.argv.front()),
                     ENOENT);

  // Everything the child needs is built before fork: after fork, in a process with threads,
  // only async-signal-safe calls are allowed.
  std::vector<char*> argv;
  for (const auto& a : options.argv)
    argv.push_back(const_cast<char*>(a.c_str())); // NOLINT(cppcoreguidelines-pro-type-const-cast)
  argv.push_back(nullptr);
  const std::vector<std::string> env_strings = merged_environment(options.extra_env);
  std::vector<char*> envp;
  for (const auto& e : env_strings)
    envp.push_back(const_cast<char*>(e.c_str())); // NOLINT(cppcoreguidelines-pro-type-const-cast)
  envp.push_back(nullptr);

  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0)
    throw SpawnError(
        fmt::format("cannot run '{}': pipe: {}", options.argv.front(), std::strerror(errno)),
        errno);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(report[0]);
    ::close(report[1]);
    throw SpawnError(
        fmt::format("cannot run '{}': fork: {}", options.argv.front(), std::strerror(error)),
        error);
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    ::close(report[0]);
    if (options.own_process_group)
      ::setpgid(0, 0);
    if (options.parent_death_signal != 0) {
      ::prctl(PR_SET_PDEATHSIG, options.parent_death_signal);
      if (::getppid() != parent) // the parent died before prctl
        ::_exit(127);
    }
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s)
      if (s != SIGKILL && s != SIGSTOP)
        ::sigaction(s, &dfl, nullptr);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(path.c_str(), argv.data(), envp.data());
    const int error = errno;
    write_all(report[1], &error, sizeof error);
    ::_exit(127);
  }
  ::close(report[1]);
  if (options.own_process_group)
    ::setpgid(pid, pid); // also here, so that the group exists before we signal it (no race)
  int error = 0;
  ssize_t n = 0;
  do {
    n = ::read(report[0], &error, sizeof error);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof error)) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    throw SpawnError(fmt::format("cannot run '{}': {}", options.argv.front(), std::strerror(error)),
                     error);
  }
  return pid;
}

int exit_code_of(int wait_status) {
  if (WIFEXITED(wait_status))
    return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status))
    return 128 + WTERMSIG(wait_status);
  return 1;
}

std::string describe_status(int wait_status) {
  if (WIFEXITED(wait_status))
    return fmt::format("exited with code {}", WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    const char* name = ::strsignal(sig); // NOLINT(concurrency-mt-unsafe): main thread only
    return fmt::format("killed by signal {} ({})", sig, name != nullptr ? name : "?");
  }
  return "ended";
}

std::string signal_name(int signal) {
  switch (signal) {
  case SIGHUP: return "SIGHUP";
  case SIGINT: return "SIGINT";
  case SIGQUIT: return "SIGQUIT";
  case SIGKILL: return "SIGKILL";
  case SIGUSR1: return "SIGUSR1";
  case SIGUSR2: return "SIGUSR2";
  case SIGTERM: return "SIGTERM";
  case SIGCHLD: return "SIGCHLD";
  default: return fmt::format("signal {}", signal);
  }
}

bool signal_process(pid_t pid, int signal, bool group) {
  if (pid <= 0)
    return false;
  if (group && ::kill(-pid, signal) == 0)
    return true;
  return ::kill(pid, signal) == 0;
}

Child::~Child() {
  if (running()) {
    signal_process(pid_, SIGKILL, group_);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

void Child::start(const SpawnOptions& options) {
  if (running())
    throw SpawnError("a child is already running", EBUSY);
  pid_ = spawn(options);
  group_ = options.own_process_group;
  steps_.clear();
  step_ = 0;
}

bool Child::signal(int sig) { return running() && signal_process(pid_, sig, group_); }

bool Child::notify(int sig) { return running() && ::kill(pid_, sig) == 0; }

void Child::terminate(std::vector<Step> steps, Clock::time_point now) {
  if (!running() || steps.empty())
    return;
  // A child already terminating keeps its schedule, unless asked for SIGKILL (a second Ctrl-C).
  if (terminating() && steps.front().signal != SIGKILL)
    return;
  steps_ = std::move(steps);
  step_ = 0;
  signal(steps_[0].signal);
  step_ = 1;
  if (step_ < steps_.size())
    next_ = now + steps_[step_].after;
}

std::optional<Child::Clock::time_point> Child::deadline() const {
  if (!running() || step_ >= steps_.size())
    return std::nullopt;
  return next_;
}

void Child::advance(Clock::time_point now) {
  while (running() && step_ < steps_.size() && now >= next_) {
    signal(steps_[step_].signal);
    ++step_;
    if (step_ < steps_.size())
      next_ = now + steps_[step_].after;
  }
}

std::optional<int> Child::reap() {
  if (!running())
    return std::nullopt;
  int status = 0;
  pid_t r = 0;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0)
    return std::nullopt;
  if (r < 0) // ECHILD: reaped elsewhere; report an unknown end
    status = 0;
  if (group_)
    ::kill(-pid_, SIGTERM); // stragglers left in the group; ESRCH when there are none
  pid_ = -1;
  steps_.clear();
  step_ = 0;
  return status;
}

} // namespace kvelect::cli
