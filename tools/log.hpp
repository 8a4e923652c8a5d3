// SPDX-License-Identifier: Apache-2.0
// The log lines of the long-running commands (run, file): one line per event on stderr, each
// with an RFC 3339 time, as text or as one JSON object (--log-format). Thread-safe: lines come
// from the main thread and from the election's callbacks, and each is written and flushed
// before log() returns.
#pragma once

#include <kvelect/log.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace kvelect::cli {

enum class LogFormat { text, json };

/// "text" or "json"; false for anything else.
bool parse_log_format(std::string_view text, LogFormat* format);

/// One extra field of a JSON line (text lines carry it in the message already).
struct LogField {
  std::string key;
  std::variant<std::monostate, std::string, std::int64_t> value; ///< monostate: JSON null
};

class Log;

/// Sends this process's connection events (disconnected, reconnected, closed) to `log`, as
/// lines of its format: run's and file's. The Log is copied (the sink is process-wide).
void log_connection_events(const Log& log);

class Log {
public:
  Log(LogFormat format, bool quiet, std::string election, std::string member)
      : format_(format), quiet_(quiet), election_(std::move(election)), member_(std::move(member)) {
  }

  /// A transition or an action: "won", "lost", "started", "signal", ... Not printed with --quiet.
  void info(std::string_view event, const std::string& message,
            const std::vector<LogField>& fields = {}) const;
  /// Worth seeing even with --quiet (a lost connection), but no error of kvelect's: level
  /// "warning", no "error: " in text.
  void warning(std::string_view event, const std::string& message,
               const std::vector<LogField>& fields = {}) const;
  /// A problem; always printed.
  void error(std::string_view event, const std::string& message,
             const std::vector<LogField>& fields = {}) const;

  /// A line of the library's (WithLog), with its level; printed whatever --quiet says (the
  /// caller chooses the levels). Text: "<time> kvelect: <level>: <line>"; JSON: "level" is the
  /// line's, "event" is "library".
  void library(LogLevel level, std::string_view line) const;

  /// The line as written (without the newline); for tests.
  std::string format(std::string_view level, std::string_view event, const std::string& message,
                     const std::vector<LogField>& fields) const;

private:
  void write(std::string_view level, std::string_view event, const std::string& message,
             const std::vector<LogField>& fields) const;

  LogFormat format_;
  bool quiet_;
  std::string election_;
  std::string member_;
};

} // namespace kvelect::cli
