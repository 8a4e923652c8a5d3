// SPDX-License-Identifier: Apache-2.0
#include "connection_events.hpp"

#include "json.hpp"
#include "timefmt.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <mutex>

namespace kvelect::cli {

namespace {

std::mutex& registry_mutex() {
  static std::mutex mu;
  return mu;
}
ConnectionEventSink& registered_sink() {
  static ConnectionEventSink sink;
  return sink;
}
std::function<State()>& registered_state() {
  static std::function<State()> source;
  return source;
}

} // namespace

void set_connection_event_sink(ConnectionEventSink sink) {
  std::lock_guard lock(registry_mutex());
  registered_sink() = std::move(sink);
}

void set_connection_state_source(std::function<State()> source) {
  std::lock_guard lock(registry_mutex());
  registered_state() = std::move(source);
}

void set_connection_callbacks(ConnectOptions& options) {
  auto forward = [](const ConnectionEvent& event) {
    ConnectionEventLine line;
    line.event = event;
    ConnectionEventSink sink;
    {
      std::lock_guard lock(registry_mutex());
      sink = registered_sink();
      if (registered_state())
        line.state = registered_state()();
    }
    if (sink)
      sink(line);
    else
      connection_log_sink()(line); // run, file, and the short commands: stderr
  };
  options.on_disconnected = forward;
  options.on_reconnected = forward;
  options.on_closed = forward;
}

std::string connection_event_details(const ConnectionEvent& event) {
  const std::string server = event.server.empty() ? std::string("the server") : event.server;
  const std::string error = event.error.empty() ? std::string() : ": " + event.error;
  switch (event.kind) {
  case ConnectionEvent::Kind::disconnected:
    return fmt::format("lost the connection to {}{}; reconnecting", server, error);
  case ConnectionEvent::Kind::reconnected: return fmt::format("reconnected to {}", server);
  case ConnectionEvent::Kind::closed:
    return fmt::format("connection to {} closed{}", server, error);
  }
  return {};
}

std::string connection_event_campaign_text(const ConnectionEventLine& line) {
  return fmt::format("{} {:<8} {:<9} {}", rfc3339(line.time), to_string(line.event.kind),
                     to_string(line.state.value_or(State::Unknown)),
                     connection_event_details(line.event));
}

std::string connection_event_campaign_json(const ConnectionEventLine& line,
                                           const std::string& election, const std::string& member) {
  JsonObject json;
  json.add("time", rfc3339(line.time))
      .add("election", election)
      .add("member", member)
      .add("event", to_string(line.event.kind))
      .add("state", to_string(line.state.value_or(State::Unknown)))
      .add("server", line.event.server);
  if (!line.event.error.empty())
    json.add("error", line.event.error);
  return json.str();
}

std::string connection_event_watch_text(const ConnectionEventLine& line) {
  return fmt::format("{} {:<8} {}", rfc3339(line.time), to_string(line.event.kind),
                     connection_event_details(line.event));
}

std::string connection_event_watch_json(const ConnectionEventLine& line) {
  JsonObject json;
  json.add("time", rfc3339(line.time))
      .add("event", to_string(line.event.kind))
      .add("server", line.event.server);
  if (!line.event.error.empty())
    json.add("error", line.event.error);
  return json.str();
}

std::string connection_event_log(const ConnectionEventLine& line) {
  return "kvelect: " + connection_event_details(line.event);
}

ConnectionEventSink connection_log_sink() {
  return [](const ConnectionEventLine& line) {
    const std::string text = connection_event_log(line) + "\n";
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fflush(stderr);
  };
}

} // namespace kvelect::cli
