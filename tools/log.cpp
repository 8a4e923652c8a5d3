// SPDX-License-Identifier: Apache-2.0
#include "log.hpp"

#include "cli_common.hpp"
#include "connection_events.hpp"
#include "json.hpp"
#include "timefmt.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>

namespace kvelect::cli {

bool parse_log_format(std::string_view text, LogFormat* format) {
  if (text == "text") {
    *format = LogFormat::text;
    return true;
  }
  if (text == "json") {
    *format = LogFormat::json;
    return true;
  }
  return false;
}

std::string Log::format(std::string_view level, std::string_view event, const std::string& message,
                        const std::vector<LogField>& fields) const {
  const std::string time = rfc3339(std::chrono::system_clock::now());
  if (format_ == LogFormat::text)
    return fmt::format("{} kvelect: {}{}", time, level == "error" ? "error: " : "", message);
  JsonObject json;
  json.add("time", time).add("level", level).add("event", event);
  if (!election_.empty())
    json.add("election", election_);
  if (!member_.empty())
    json.add("member", member_);
  json.add("message", message);
  for (const auto& field : fields) {
    if (const auto* s = std::get_if<std::string>(&field.value))
      json.add(field.key, *s);
    else if (const auto* n = std::get_if<std::int64_t>(&field.value))
      json.add(field.key, *n);
    else
      json.add_null(field.key);
  }
  return json.str();
}

void Log::write(std::string_view level, std::string_view event, const std::string& message,
                const std::vector<LogField>& fields) const {
  write_line(stderr, format(level, event, message, fields));
}

void Log::info(std::string_view event, const std::string& message,
               const std::vector<LogField>& fields) const {
  if (!quiet_)
    write("info", event, message, fields);
}

void Log::warning(std::string_view event, const std::string& message,
                  const std::vector<LogField>& fields) const {
  write("warning", event, message, fields);
}

void Log::error(std::string_view event, const std::string& message,
                const std::vector<LogField>& fields) const {
  write("error", event, message, fields);
}

void Log::library(LogLevel level, std::string_view line) const {
  const std::string_view name = to_string(level);
  if (format_ == LogFormat::json) {
    write(name, "library", std::string(line), {});
    return;
  }
  write_line(stderr, fmt::format("{} kvelect: {}: {}", rfc3339(std::chrono::system_clock::now()),
                                 name, line));
}

void log_connection_events(const Log& log) {
  set_connection_event_sink([log](const ConnectionEventLine& line) {
    const char* kind = to_string(line.event.kind);
    std::vector<LogField> fields = {{"server", line.event.server}};
    if (!line.event.error.empty())
      fields.push_back({"error", line.event.error});
    const std::string message = connection_event_details(line.event);
    log.warning(kind, message, fields);
  });
}

} // namespace kvelect::cli
