// SPDX-License-Identifier: Apache-2.0
#include "event_format.hpp"

#include "json.hpp"
#include "timefmt.hpp"

#include <fmt/format.h>

namespace kvelect::cli {

std::string campaign_event_json(const ElectionEvent& event, std::string_view election,
                                std::string_view member) {
  JsonObject json;
  json.add("time", rfc3339(event.time))
      .add("election", election)
      .add("member", member)
      .add("event", to_string(event.kind))
      .add("state", to_string(event.state));
  switch (event.kind) {
  case ElectionEvent::Kind::won: json.add("token", std::uint64_t{event.token}); break;
  case ElectionEvent::Kind::leader: json.add("leader", event.leader); break;
  case ElectionEvent::Kind::error: json.add("error", event.error); break;
  default: break;
  }
  return json.str();
}

std::string campaign_event_text(const ElectionEvent& event) {
  std::string details;
  switch (event.kind) {
  case ElectionEvent::Kind::campaign:
    details = event.state == State::Leader ? "renewal as leader" : "campaign as candidate";
    break;
  case ElectionEvent::Kind::won:
    details = fmt::format("became leader (token {})", event.token);
    break;
  case ElectionEvent::Kind::lost: details = "stopped being leader"; break;
  case ElectionEvent::Kind::leader:
    details = event.leader ? fmt::format("leader is '{}'", *event.leader) : "no leader";
    break;
  case ElectionEvent::Kind::error:
    details = fmt::format("{}{}", event.fatal ? "fatal: " : "", event.error);
    break;
  }
  return fmt::format("{} {:<8} {:<9} {}", rfc3339(event.time), to_string(event.kind),
                     to_string(event.state), details);
}

} // namespace kvelect::cli
