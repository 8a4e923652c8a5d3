// SPDX-License-Identifier: Apache-2.0
// kvelect campaign ELECTION [--json]: join an election and print each event as it happens.
#include "commands.hpp"
#include "connection_events.hpp"
#include "duration.hpp"
#include "event_format.hpp"
#include "event_loop.hpp"
#include "metrics.hpp"
#include "session.hpp"
#include "startup.hpp"

#include <fmt/format.h>

#include <atomic>
#include <csignal>

namespace kvelect::cli {

int campaign_command(const CampaignOptions& o) {
  const std::string member = member_name(o.common);
  require_metrics_support(o.flags.metrics);
  set_connection_event_sink([&o, member](const ConnectionEventLine& line) {
    emit_line(o.json ? connection_event_campaign_json(line, o.election, member)
                     : connection_event_campaign_text(line));
  });
  // The library's lines (election_options()) go to stderr, in the format of stdout's events.
  const Log log(o.json ? LogFormat::json : LogFormat::text, false, o.election, member);
  block_signals();
  EventLoop loop;
  // Each event's line is written (and flushed) on the campaign thread, in the callback itself:
  // "lost" is out before the key is released, "won" before anything else happens.
  std::atomic<bool> stdout_gone{false};
  auto print = [&o, &member, &stdout_gone](const ElectionEvent& event) {
    if (!emit_line(o.json ? campaign_event_json(event, o.election, member)
                          : campaign_event_text(event)))
      stdout_gone = true;
  };
  const auto session_ptr = connect_interruptibly(loop, [&] {
    return std::make_unique<ElectionSession>(o.common, o.flags, log, o.election, member, loop,
                                             print);
  });
  ElectionSession& session = *session_ptr;
  warn_if_name_leads(session.election(), [](const std::string& warning) {
    write_line(stderr, "kvelect: warning: " + warning);
  });
  std::unique_ptr<MetricsServer> metrics; // after the session: destroyed before the election
  if (!o.flags.metrics.empty()) {
    metrics = serve_metrics(o.flags.metrics, session.election());
    write_line(stderr, fmt::format("kvelect: serving metrics at {}", metrics->url()));
  }

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
      if (event.kind == ElectionEvent::Kind::error && event.fatal) {
        exit_code = kExitFailure;
        done = true;
      }
    }
    if (stdout_gone)
      done = true; // stdout closed (e.g. piped into head): leave quietly
    for (int sig : wakeup.signals)
      if (sig != SIGCHLD)
        done = true;
  }
  // Leave the election (releasing leadership); a final "lost" is printed by its callback.
  session.election().stop();
  return exit_code;
}

} // namespace kvelect::cli
