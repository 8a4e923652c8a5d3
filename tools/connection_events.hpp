// SPDX-License-Identifier: Apache-2.0
// The connection event lines (disconnected, reconnected, closed) of the long-running commands.
// They come from kvelect::ConnectOptions' callbacks, on cnats' callback thread, and are written
// and flushed there, at once: a line is never held back behind the main thread's work.
//
// One process, one command: the sink (where lines go) and the state source (the campaigning
// member's state, for campaign's lines) are process-wide, set by the command before it connects
// (connect() in cli_common.cpp installs the callbacks on every connection).
#pragma once

#include <kvelect/nats.hpp>
#include <kvelect/state.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace kvelect::cli {

/// One connection event, as a command prints it.
struct ConnectionEventLine {
  ConnectionEvent event;
  std::chrono::system_clock::time_point time = std::chrono::system_clock::now();
  std::optional<State> state; ///< the member's state, for the commands that campaign
};

/// Where a command's connection events go; called on cnats' callback thread.
using ConnectionEventSink = std::function<void(const ConnectionEventLine&)>;

/// Sets where the connection events of this process go (empty: connection_log_sink(), the
/// default, which run and file use).
void set_connection_event_sink(ConnectionEventSink sink);
/// Sets where the lines' member state comes from (empty: none). It is called under a lock that
/// setting it takes too, so an owner that clears it before going away is never called after.
void set_connection_state_source(std::function<State()> source);

/// Sets the three ConnectOptions callbacks to feed the process's sink.
void set_connection_callbacks(ConnectOptions& options);

/// "lost the connection to nats://...: <error>", "reconnected to nats://...",
/// "connection to nats://... closed: <error>".
std::string connection_event_details(const ConnectionEvent& event);

/// campaign's text line: "<time> <event> <state> <details>" (campaign_event_text's columns).
std::string connection_event_campaign_text(const ConnectionEventLine& line);
/// campaign --json: {"time", "election", "member", "event", "state", "server"[, "error"]}.
std::string connection_event_campaign_json(const ConnectionEventLine& line,
                                           const std::string& election, const std::string& member);
/// watch's text line: "<time> <event> <details>".
std::string connection_event_watch_text(const ConnectionEventLine& line);
/// watch --json: {"time", "event", "server"[, "error"]}.
std::string connection_event_watch_json(const ConnectionEventLine& line);
/// run's and file's log line (stderr): "kvelect: <details>".
std::string connection_event_log(const ConnectionEventLine& line);
/// A sink writing connection_event_log lines to stderr, in one write each (the default).
ConnectionEventSink connection_log_sink();

} // namespace kvelect::cli
