// SPDX-License-Identifier: Apache-2.0
// How `kvelect campaign` prints an election event: one JSON object per line (--json), or one
// line of text.
#pragma once

#include "event_loop.hpp"

#include <string>
#include <string_view>

namespace kvelect::cli {

/// {"time": "...", "election": "...", "member": "...", "event": "...", "state": "..."}, plus
/// "token" for won, "leader" (a string or null) for leader, "error" for error.
std::string campaign_event_json(const ElectionEvent& event, std::string_view election,
                                std::string_view member);

/// "<time> <event> <state> <details>".
std::string campaign_event_text(const ElectionEvent& event);

} // namespace kvelect::cli
