// SPDX-License-Identifier: Apache-2.0
// Shared plumbing of the kvelect commands: the common flags, connecting, opening the bucket,
// election options, errors and exit codes, and output helpers.
#pragma once

#include "log.hpp"

#include <kvelect/election.hpp>
#include <kvelect/nats.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kvelect::cli {

/// Exit codes of every command.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailure = 1, ///< runtime failure: no server, no bucket, a failed request, ...
  kExitUsage = 2,   ///< bad usage: unknown flag, bad value, missing argument, refused action
};

/// A usage problem found after parsing (exit 2).
class UsageError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// A runtime failure with a ready message (exit 1).
class Failure : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

inline constexpr std::string_view kDefaultBucket = "KVELECT_ELECTIONS";
inline constexpr std::string_view kDefaultServer = "nats://127.0.0.1:4222";

/// The flags every command has.
struct CommonOptions {
  std::vector<std::string> servers; ///< empty: $NATS_URL, else nats://127.0.0.1:4222
  std::string creds;
  std::string bucket{kDefaultBucket};
  std::string name; ///< empty: HOST-PID
  std::chrono::milliseconds timeout{2000};
  // The other connection flags (tools/connect_flags.cpp).
  std::string user;
  std::string password;
  std::string token;
  std::string nkey;
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  std::string context; ///< --context / NATS_CONTEXT
  bool no_context = false;
};

/// Advanced flags of the commands that campaign (run, file, campaign).
struct ElectionFlags {
  bool skip_validation = false;
  std::chrono::milliseconds splay{250};
  bool debug = false;  ///< the library's info and debug lines too, not only its warnings and errors
  std::string metrics; ///< --metrics ADDR: serve Prometheus metrics there; empty: none
};

/// The host name, or "kvelect" if it cannot be read.
std::string host_name();
/// The member name to use: --name, else HOST-PID (the host name, '-', the process id).
/// UsageError for an unusable name.
std::string member_name(const CommonOptions& options);

/// Connects (flags over the NATS context, tools/connect_flags.hpp); Failure naming the URL(s)
/// when no server answers. The connection's events go to the process's connection event sink
/// (tools/connection_events.hpp).
Connection connect(const CommonOptions& options);
/// Opens the bucket; Failure "bucket 'X' does not exist" when it is missing.
Bucket open_bucket(const Connection& connection, const CommonOptions& options);

/// Options for kvelect::Election from the advanced flags. The library's lines (WithLog) go to
/// `log` with their level: warnings and errors always, info and debug with --debug; its
/// "fatal: ..." lines not at all, since every command reports a fatal error itself (OnError).
std::vector<Option> election_options(const ElectionFlags& flags, const Log& log);

/// Whether election_options() passes a library line of `level` saying `line` on to the log.
bool shows_library_line(const ElectionFlags& flags, LogLevel level, std::string_view line);

/// A message for a kvelect::Error, with a hint where one helps (e.g. --skip-validation).
std::string describe(const Error& error);

/// Writes `line` and a newline to `stream` in one write and flushes it; thread-safe (lines of
/// different threads never interleave). Returns false if the stream is gone (EPIPE).
bool write_line(std::FILE* stream, std::string_view line);
/// write_line() to stdout.
bool emit_line(std::string_view line);

/// The --server list for messages: "nats://a:4222,nats://b:4222".
std::string server_list(const CommonOptions& options);

} // namespace kvelect::cli
