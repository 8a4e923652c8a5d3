// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief kvelect::State, the three states of Choria's election package.
#pragma once

#include <kvelect/export.hpp>

#include <string_view>

namespace kvelect {

/// Where a member stands. Values match Choria's Go package (UnknownState = 0, CandidateState = 1,
/// LeaderState = 2).
enum class State : unsigned {
  Unknown = 0,   ///< not started, or stopped
  Candidate = 1, ///< campaigning, not the leader
  Leader = 2,    ///< holds the election key and a running lease
};

/// "unknown", "candidate" or "leader".
KVELECT_API std::string_view to_string(State state) noexcept;

} // namespace kvelect
