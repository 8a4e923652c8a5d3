// SPDX-License-Identifier: Apache-2.0
#include "cli_common.hpp"

#include "connect_flags.hpp"
#include "connection_events.hpp"

#include <fmt/format.h>

#include <unistd.h>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <mutex>

namespace kvelect::cli {

std::string host_name() {
  char buffer[HOST_NAME_MAX + 1] = {};
  if (::gethostname(buffer, sizeof buffer - 1) != 0 || buffer[0] == '\0')
    return "kvelect";
  return buffer;
}

std::string member_name(const CommonOptions& options) {
  // The default is unique per process, so that two members on one host never share a name
  // (a shared name makes the second wait out the first's lease, see docs/protocol.md).
  std::string name =
      options.name.empty() ? fmt::format("{}-{}", host_name(), ::getpid()) : options.name;
  if (name.rfind("kvelect:", 0) == 0)
    throw UsageError(fmt::format("--name '{}' uses the reserved prefix 'kvelect:'", name));
  if (name.size() > 1024)
    throw UsageError(fmt::format("--name is {} bytes long, the limit is 1024", name.size()));
  return name;
}

std::string server_list(const CommonOptions& options) {
  if (!options.servers.empty())
    return fmt::format("{}", fmt::join(options.servers, ","));
  const char* env = std::getenv("NATS_URL"); // NOLINT(concurrency-mt-unsafe): before threads
  return env != nullptr && *env != '\0' ? std::string(env) : std::string(kDefaultServer);
}

Connection connect(const CommonOptions& options) {
  std::string context;
  ConnectOptions connect_options = resolve_connect_options(options, &context);
  set_connection_callbacks(connect_options);
  try {
    return Connection::connect(connect_options);
  } catch (const Error& error) {
    const std::string from =
        context.empty() ? std::string() : fmt::format(" (NATS context '{}')", context);
    if (error.code() == Errc::not_found) {
      const std::string servers = connect_options.servers.empty()
                                      ? server_list(options)
                                      : fmt::format("{}", fmt::join(connect_options.servers, ","));
      throw Failure(fmt::format("no NATS server at {}{} ({})", servers, from, error.what()));
    }
    if (!context.empty())
      throw Error(error.code(), error.what() + from);
    throw;
  }
}

Bucket open_bucket(const Connection& connection, const CommonOptions& options) {
  try {
    return Bucket::open(connection, options.bucket);
  } catch (const Error& error) {
    if (error.code() == Errc::not_found)
      throw Failure(fmt::format("bucket '{}' does not exist (create it with: kvelect bucket add "
                                "{} --ttl 30s)",
                                options.bucket, options.bucket));
    throw;
  }
}

bool shows_library_line(const ElectionFlags& flags, LogLevel level, std::string_view line) {
  if (level == LogLevel::error && line.substr(0, 7) == "fatal: ")
    return false; // the command's own error line (from OnError) says it, with what follows
  return flags.debug || level >= LogLevel::warning;
}

std::vector<Option> election_options(const ElectionFlags& flags, const Log& log) {
  std::vector<Option> options;
  if (flags.skip_validation)
    options.push_back(SkipValidation());
  options.push_back(WithStartupSplay(flags.splay));
  // WithLog rather than WithDebug: the same lines, with their level. Called on the campaign
  // thread; Log writes each line in one locked write, so lines never interleave.
  options.push_back(WithLog([flags, log](LogLevel level, std::string_view line) {
    if (shows_library_line(flags, level, line))
      log.library(level, line);
  }));
  return options;
}

std::string describe(const Error& error) {
  if (error.code() == Errc::ttl_too_short || error.code() == Errc::ttl_too_long)
    return fmt::format("{} (--skip-validation lifts the limit)", error.what());
  return error.what();
}

bool write_line(std::FILE* stream, std::string_view line) {
  // Lines come from the main thread, from the election's callbacks and (connection events) from
  // cnats' threads: one lock, one write of
  // the whole line and a flush, so that lines never interleave and each is out before the
  // caller goes on (e.g. before a released key lets a successor print its "won").
  static std::mutex mu;
  std::string text;
  text.reserve(line.size() + 1);
  text.append(line).push_back('\n');
  std::lock_guard lock(mu);
  std::fwrite(text.data(), 1, text.size(), stream);
  return std::fflush(stream) == 0 && std::ferror(stream) == 0;
}

bool emit_line(std::string_view line) { return write_line(stdout, line); }

} // namespace kvelect::cli
