// SPDX-License-Identifier: Apache-2.0
// Helpers for the CLI tests: run the real kvelect binary ($KVELECT_BIN) as a child process with
// its output captured to files, poll for conditions, and pick fields out of JSON lines.
#pragma once

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace kvelect::clitest {

using namespace std::chrono_literals;

inline std::string kvelect_bin() {
  const char* bin = std::getenv("KVELECT_BIN"); // NOLINT(concurrency-mt-unsafe)
  return bin != nullptr ? bin : "";
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline bool file_exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    lines.push_back(line);
  return lines;
}

// A COMMAND for `kvelect run` that lasts: run sends it SIGUSR1 about 1 s after the start and
// SIGUSR2 on a loss (docs/cli.md), and a plain `sleep` dies of either, which ends run with it
// before the test gets to what it checks. Ignored signals stay ignored across exec; SIGINT and
// SIGTERM (--terminate, run's own stop) still end it.
inline std::vector<std::string> lasting_command() {
  return {"--", "sh", "-c", "trap '' USR1 USR2; exec sleep 1000"};
}

inline bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// Polls `condition` every 20 ms until it holds or `timeout` passes.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition())
      return true;
    std::this_thread::sleep_for(20ms);
  }
  return condition();
}

// A temporary directory, removed with its files (one level) at the end.
class TempDir {
public:
  TempDir() {
    std::string pattern = (std::getenv("TMPDIR") != nullptr ? std::string(std::getenv("TMPDIR"))
                                                            : std::string("/tmp")) +
                          "/kvelect-cli-test-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr)
      path_ = pattern;
  }
  ~TempDir() {
    if (!path_.empty() && std::getenv("KVELECT_KEEP_CLI_TEST_DIRS") == nullptr) {
      const std::string command = "rm -rf '" + path_ + "'";
      [[maybe_unused]] const int rc = std::system(command.c_str());
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

// One kvelect process: stdin from /dev/null, stdout and stderr to files, in a process group of
// its own, killed (with its group) when the object goes away.
class Kvelect {
public:
  /// With `append`, stdout and stderr are appended to LABEL.out and LABEL.err (O_APPEND): several
  /// processes given one label share the files, and their lines land in the order they were
  /// written, as one reader of both outputs would see them.
  Kvelect(std::vector<std::string> args, const std::string& dir, const std::string& label,
          bool append = false)
      : out_path_(dir + "/" + label + ".out"), err_path_(dir + "/" + label + ".err") {
    const int out_flags = O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC);
    std::vector<std::string> argv_strings;
    argv_strings.push_back(kvelect_bin());
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_strings)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent)
        ::_exit(127);
      const int in = ::open("/dev/null", O_RDONLY);
      const int out = ::open(out_path_.c_str(), out_flags, 0644);
      const int err = ::open(err_path_.c_str(), out_flags, 0644);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    if (pid_ > 0)
      ::setpgid(pid_, pid_);
  }
  ~Kvelect() { kill(); }
  Kvelect(const Kvelect&) = delete;
  Kvelect& operator=(const Kvelect&) = delete;

  pid_t pid() const { return pid_; }
  std::string out() const { return read_file(out_path_); }
  std::string err() const { return read_file(err_path_); }
  std::string output() const { return "--- stdout:\n" + out() + "--- stderr:\n" + err(); }

  void signal(int sig) const {
    if (pid_ > 0 && !status_)
      ::kill(pid_, sig);
  }
  // The exit code (128 + N for signal N) once the process has ended within `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout = 30s) {
    if (status_)
      return code();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        status_ = status;
        return code();
      }
      if (r < 0 && errno != EINTR)
        return std::nullopt;
      if (std::chrono::steady_clock::now() >= deadline)
        return std::nullopt;
      std::this_thread::sleep_for(10ms);
    }
  }
  bool running() {
    if (status_)
      return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      status_ = status;
      return false;
    }
    return true;
  }
  void kill() {
    if (pid_ <= 0 || status_)
      return;
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    status_ = status;
  }

private:
  int code() const {
    if (WIFEXITED(*status_))
      return WEXITSTATUS(*status_);
    if (WIFSIGNALED(*status_))
      return 128 + WTERMSIG(*status_);
    return -1;
  }
  std::string out_path_;
  std::string err_path_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

struct Result {
  int code = -1;
  std::string out;
  std::string err;
  std::string output() const { return "--- stdout:\n" + out + "--- stderr:\n" + err; }
};

// Runs kvelect to completion (killed after `timeout`, then code is -1).
inline Result run_kvelect(const std::vector<std::string>& args, const std::string& dir,
                          std::chrono::milliseconds timeout = 30s) {
  static int counter = 0;
  Kvelect process(args, dir, "cmd" + std::to_string(counter++));
  Result result;
  const auto code = process.wait(timeout);
  result.code = code ? *code : -1;
  result.out = process.out();
  result.err = process.err();
  return result;
}

// The raw JSON token after "key": in a one-line object: a string (backslash escapes reduced to
// the escaped character), a number, true/false or null. nullopt if the key is absent.
inline std::optional<std::string> json_field(const std::string& line, const std::string& key) {
  const std::string needle = "\"" + key + "\": ";
  const auto at = line.find(needle);
  if (at == std::string::npos)
    return std::nullopt;
  std::size_t i = at + needle.size();
  if (i < line.size() && line[i] == '"') {
    std::string value;
    for (++i; i < line.size() && line[i] != '"'; ++i) {
      if (line[i] == '\\' && i + 1 < line.size())
        ++i;
      value += line[i];
    }
    return value;
  }
  const auto end = line.find_first_of(",}", i);
  return line.substr(i, end == std::string::npos ? std::string::npos : end - i);
}

} // namespace kvelect::clitest
