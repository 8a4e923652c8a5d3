// SPDX-License-Identifier: Apache-2.0
// kvelect file ELECTION PATH: keep PATH present (and fresh) while leader, remove it otherwise.
// kvelect file --check PATH: exit 0 if PATH is fresh (Choria's `election file --check`).
#include "commands.hpp"
#include "duration.hpp"
#include "event_loop.hpp"
#include "leader_file.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "session.hpp"
#include "startup.hpp"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <mutex>
#include <system_error>

namespace kvelect::cli {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How often the main loop looks at the file, and how old its mtime may get before a leader
// refreshes it: well inside the 1 minute that `--check` (and Choria's) accepts by default.
constexpr auto kCheckEvery = 1s;
constexpr auto kRefreshAfter = 5s;

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string parent_dir(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Whether an argument reads as a file path rather than an election name (which may contain '/'
// too): an explicit ./ ../ / or ~ start, an existing file, or a '/' under an existing directory.
bool looks_like_path(const std::string& arg) {
  if (arg.empty())
    return false;
  if (arg.front() == '/' || arg.front() == '~' || arg.rfind("./", 0) == 0 ||
      arg.rfind("../", 0) == 0)
    return true;
  if (exists(arg))
    return true;
  return arg.find('/') != std::string::npos && is_directory(parent_dir(arg));
}

// Creates and removes a file next to `path`: the directory must take the leader file before
// this member campaigns, not after it has won.
void check_writable(const std::string& path) {
  const std::string dir = parent_dir(path);
  if (!is_directory(dir))
    throw Failure(fmt::format("cannot use '{}': directory '{}' does not exist", path, dir));
  const std::string probe = path + ".probe." + std::to_string(::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    throw Failure(fmt::format("cannot write '{}': directory '{}' is not writable: {}", path, dir,
                              std::strerror(errno)));
  ::close(fd);
  ::unlink(probe.c_str());
}

int check_fresh(const FileOptions& o) {
  struct stat st {};
  if (::stat(o.check.c_str(), &st) != 0) {
    write_line(stderr, fmt::format("kvelect: '{}' does not exist: not the leader", o.check));
    return kExitFailure;
  }
  const auto mtime = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
  const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::system_clock::now() - mtime);
  if (age > o.max_age) {
    write_line(stderr, fmt::format("kvelect: '{}' is stale: last refreshed {} ago (limit {}): its "
                                   "leader is gone or stuck",
                                   o.check, format_duration(age), format_duration(o.max_age)));
    return kExitFailure;
  }
  return kExitOk;
}

} // namespace

int file_command(const FileOptions& o) {
  if (!o.check.empty()) {
    if (!o.args.empty())
      throw UsageError(
          fmt::format("--check FILE takes no other arguments (got '{}')", fmt::join(o.args, " ")));
    return check_fresh(o);
  }
  // ELECTION PATH; Choria's `election file` documents FILE NAME: answer that order with a
  // usage error rather than guessing.
  const std::string choria_hint = "kvelect's order is 'kvelect file ELECTION PATH' (Choria's "
                                  "'election file' takes the file first)";
  if (o.args.empty())
    throw UsageError("ELECTION is required");
  if (o.args.size() == 1) {
    if (looks_like_path(o.args[0]))
      throw UsageError(
          fmt::format("ELECTION is missing: '{}' looks like the file; {}", o.args[0], choria_hint));
    throw UsageError("PATH is required");
  }
  if (o.args.size() > 2)
    throw UsageError(fmt::format("unexpected argument{}: {}", o.args.size() > 3 ? "s" : "",
                                 fmt::join(o.args.begin() + 2, o.args.end(), " ")));
  const std::string& election = o.args[0];
  const std::string& path = o.args[1];
  if (looks_like_path(election) && !looks_like_path(path))
    throw UsageError(fmt::format("'{}' looks like a file and '{}' like an election: {}; did you "
                                 "mean 'kvelect file {} {}'? (if '{}' really is the election, "
                                 "write the file with a directory: ./{})",
                                 election, path, choria_hint, path, election, election, path));
  if (!valid_key(election))
    throw UsageError(fmt::format("invalid election name '{}': use letters, digits and - / _ = . "
                                 "(no leading, trailing or doubled '.')",
                                 election));

  const std::string member = member_name(o.common);
  require_metrics_support(o.flags.metrics);
  check_writable(path);
  if (exists(path)) {
    // Left behind by a kvelect that could not clean up (we are not leader yet): remove it. Any
    // other file is not ours to replace.
    if (!looks_like_leader_file(path))
      throw Failure(fmt::format("'{}' exists and was not written by kvelect: refusing to "
                                "replace it",
                                path));
    ::unlink(path.c_str());
  }

  const Log log(o.log_format, false, election, member);
  log_connection_events(log); // before connecting: lines with times, or JSON
  block_signals();
  EventLoop loop;

  // The file's state, shared by the callbacks (which write and remove it) and the main loop
  // (which keeps it present and fresh). The callbacks do the file work themselves: the file is
  // gone before OnLost returns, so before the key is released and a successor writes its own.
  std::mutex mu;
  LeaderRecord record;
  record.leader = member;
  bool leading = false;
  std::string write_error; // a failed write as leader: the main loop resigns and exits 1

  auto remove_file = [&] {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      log.error("remove", fmt::format("cannot remove '{}': {}", path, std::strerror(errno)));
  };
  auto write = [&]() -> bool {
    try {
      write_atomically(path, leader_json(record));
      return true;
    } catch (const std::system_error& e) {
      write_error = e.what();
      return false;
    }
  };
  auto announce = [&](const ElectionEvent& event) {
    switch (event.kind) {
    case ElectionEvent::Kind::won: {
      std::lock_guard lock(mu);
      leading = true;
      record.since = event.time;
      record.token = event.token;
      ++record.count;
      if (write())
        log.info("won",
                 fmt::format("won leadership of '{}' (token {}): wrote '{}'", election, event.token,
                             path),
                 {{"token", static_cast<std::int64_t>(event.token)}, {"path", path}});
      else
        log.error("write",
                  fmt::format("won leadership of '{}' (token {}), but {}: resigning", election,
                              event.token, write_error),
                  {{"token", static_cast<std::int64_t>(event.token)}, {"path", path}});
      break;
    }
    case ElectionEvent::Kind::lost: {
      std::lock_guard lock(mu);
      leading = false;
      remove_file();
      log.info("lost", fmt::format("lost leadership of '{}': removed '{}'", election, path),
               {{"path", path}});
      break;
    }
    case ElectionEvent::Kind::leader: {
      LogField leader{"leader", std::monostate{}};
      if (event.leader)
        leader.value = *event.leader;
      log.info("leader",
               fmt::format("leader of '{}': {}", election,
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
  auto session = connect_interruptibly(loop, [&] {
    return std::make_unique<ElectionSession>(o.common, o.flags, log, election, member, loop,
                                             announce);
  });
  warn_if_name_leads(session->election(), [&](const std::string& w) { log.error("warning", w); });
  std::unique_ptr<MetricsServer> metrics; // after the session: destroyed before the election
  if (!o.flags.metrics.empty()) {
    metrics = serve_metrics(o.flags.metrics, session->election());
    log.info("metrics", fmt::format("serving metrics at {}", metrics->url()),
             {{"url", metrics->url()}});
  }

  log.info("campaigning",
           fmt::format("campaigning for '{}' in bucket '{}' as '{}'; leader file "
                       "'{}'",
                       election, o.common.bucket, member, path),
           {{"path", path}});
  session->election().start();

  auto next_check = Clock::now() + kCheckEvery;
  int exit_code = kExitOk;
  bool done = false;
  while (!done) {
    const EventLoop::Wakeup wakeup = loop.wait(next_check);
    for (int sig : wakeup.signals)
      if (sig != SIGCHLD)
        done = true;
    for (const ElectionEvent& event : wakeup.events)
      if (event.kind == ElectionEvent::Kind::error && event.fatal) {
        exit_code = kExitFailure;
        done = true;
      }
    std::lock_guard lock(mu);
    if (Clock::now() >= next_check) {
      next_check = Clock::now() + kCheckEvery;
      // Keep the file present and fresh while the lease runs: rewrite it if someone removed it,
      // touch it when its mtime gets old (readers such as --check judge by the mtime).
      if (leading && write_error.empty() && session->election().is_leader()) {
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) {
          if (write())
            log.info("rewrote", fmt::format("'{}' was gone: rewrote it", path), {{"path", path}});
          else
            log.error("write", fmt::format("{}: resigning", write_error), {{"path", path}});
        } else if (std::chrono::system_clock::now() -
                       std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec) >=
                   kRefreshAfter) {
          if (::utimensat(AT_FDCWD, path.c_str(), nullptr, 0) != 0) {
            write_error = fmt::format("cannot refresh '{}': {}", path, std::strerror(errno));
            log.error("write", fmt::format("{}: resigning", write_error), {{"path", path}});
          }
        }
      }
    }
    if (!write_error.empty() && !done) {
      exit_code = kExitFailure;
      done = true;
    }
  }
  // The file goes first, then leadership: never a file without a leader behind it.
  {
    std::lock_guard lock(mu);
    remove_file();
  }
  session->election().stop();
  remove_file();
  log.info("left", fmt::format("left election '{}'", election));
  return exit_code;
}

} // namespace kvelect::cli
