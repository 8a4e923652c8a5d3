// SPDX-License-Identifier: Apache-2.0
// kvelect file ELECTION PATH: keep PATH present while leader, remove it otherwise.
#include "commands.hpp"
#include "event_loop.hpp"
#include "leader_file.hpp"
#include "session.hpp"

#include <fmt/format.h>

#include <sys/stat.h>
#include <unistd.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <system_error>

namespace kvelect::cli {
namespace {

void note(const std::string& message) {
  const std::string line = "kvelect: " + message + "\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

void remove_file(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    note(fmt::format("cannot remove '{}': {}", path, std::strerror(errno)));
}

std::string parent_dir(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos)
    return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

} // namespace

int file_command(const FileOptions& o) {
  using Clock = std::chrono::steady_clock;
  const std::string member = member_name(o.common);
  struct stat st {};
  const std::string dir = parent_dir(o.path);
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw Failure(fmt::format("cannot use '{}': directory '{}' does not exist", o.path, dir));
  if (exists(o.path)) {
    // Left behind by a kvelect that could not clean up (we are not leader yet): remove it. Any
    // other file is not ours to replace.
    if (!looks_like_leader_file(o.path))
      throw Failure(fmt::format("'{}' exists and was not written by kvelect: refusing to "
                                "replace it",
                                o.path));
    remove_file(o.path);
  }

  block_signals();
  EventLoop loop;
  ElectionSession session(o.common, o.flags, o.election, member, loop);

  LeaderRecord record;
  record.leader = member;
  bool leading = false;
  bool written = false;
  auto write = [&] {
    try {
      write_atomically(o.path, leader_json(record));
      written = true;
    } catch (const std::system_error& e) {
      note(e.what()); // retried at the next check
      written = false;
    }
  };

  note(fmt::format("campaigning for '{}' in bucket '{}' as '{}'; leader file '{}'", o.election,
                   o.common.bucket, member, o.path));
  session.election().start();

  constexpr auto kCheck = std::chrono::seconds(1);
  auto next_check = Clock::now() + kCheck;
  int exit_code = kExitOk;
  bool done = false;
  while (!done) {
    const EventLoop::Wakeup wakeup = loop.wait(next_check);
    for (int sig : wakeup.signals)
      if (sig != SIGCHLD)
        done = true;
    for (const ElectionEvent& event : wakeup.events) {
      switch (event.kind) {
      case ElectionEvent::Kind::won:
        leading = true;
        record.since = event.time;
        record.token = event.token;
        ++record.count;
        write();
        note(fmt::format("won leadership of '{}' (token {}): wrote '{}'", o.election, event.token,
                         o.path));
        break;
      case ElectionEvent::Kind::lost:
        leading = false;
        remove_file(o.path);
        note(fmt::format("lost leadership of '{}': removed '{}'", o.election, o.path));
        break;
      case ElectionEvent::Kind::error:
        note(fmt::format("{}{}", event.fatal ? "fatal: " : "", event.error));
        if (event.fatal) {
          exit_code = kExitFailure;
          done = true;
        }
        break;
      default: break;
      }
    }
    if (Clock::now() >= next_check) {
      next_check = Clock::now() + kCheck;
      // Keep the file present while leader: rewrite it if someone removed it (or a write failed).
      if (leading && (!written || !exists(o.path)))
        write();
    }
  }
  // The file goes first, then leadership: never a file without a leader behind it.
  remove_file(o.path);
  session.election().stop();
  remove_file(o.path);
  note(fmt::format("left election '{}'", o.election));
  return exit_code;
}

} // namespace kvelect::cli
