// SPDX-License-Identifier: Apache-2.0
// kvelect campaign ELECTION [--json]: join an election and print each event as it happens.
#include "commands.hpp"
#include "connection_events.hpp"
#include "duration.hpp"
#include "event_format.hpp"
#include "event_loop.hpp"
#include "session.hpp"

#include <fmt/format.h>

#include <csignal>

namespace kvelect::cli {

int campaign_command(const CampaignOptions& o) {
  const std::string member = member_name(o.common);
  set_connection_event_sink([&o, member](const ConnectionEventLine& line) {
    emit_line(o.json ? connection_event_campaign_json(line, o.election, member)
                     : connection_event_campaign_text(line));
  });
  block_signals();
  EventLoop loop;
  ElectionSession session(o.common, o.flags, o.election, member, loop);

  auto print = [&](const ElectionEvent& event) {
    return emit_line(o.json ? campaign_event_json(event, o.election, member)
                            : campaign_event_text(event));
  };
  if (!o.json)
    emit_line(fmt::format("# campaigning for '{}' in bucket '{}' as '{}' (ttl {}, campaign "
                          "interval {})",
                          o.election, o.common.bucket, member,
                          format_duration(session.election().ttl()),
                          format_duration(session.election().campaign_interval())));
  session.election().start();

  int exit_code = kExitOk;
  bool done = false;
  while (!done) {
    const EventLoop::Wakeup wakeup = loop.wait(std::nullopt);
    for (const ElectionEvent& event : wakeup.events) {
      if (!print(event))
        done = true; // stdout closed (e.g. piped into head): leave quietly
      if (event.kind == ElectionEvent::Kind::error && event.fatal) {
        exit_code = kExitFailure;
        done = true;
      }
    }
    for (int sig : wakeup.signals)
      if (sig != SIGCHLD)
        done = true;
  }
  // Leave the election (releasing leadership); print what that caused (a final "lost").
  session.election().stop();
  const EventLoop::Wakeup rest = loop.wait(std::chrono::steady_clock::now());
  for (const ElectionEvent& event : rest.events)
    print(event);
  return exit_code;
}

} // namespace kvelect::cli
