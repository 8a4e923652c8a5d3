// SPDX-License-Identifier: Apache-2.0
// The protocol core's constants and small rules, shared by its source files. Each number has its
// reason in docs/protocol.md, under the heading named beside it.
#pragma once

#include "protocol.hpp"

#include <fmt/format.h>

#include <string_view>

#ifndef KVELECT_CORE_MUTANT
#define KVELECT_CORE_MUTANT 0
#endif

namespace kvelect::core::rules {

using namespace std::chrono_literals;

// Deliberately broken variants of the core, built only into the simulator's mutant tests
// (tests/sim/meson.build, docs/simulator.md) to show that the simulator catches each: 0 is the
// real protocol; 1 counts a lease from the reply instead of the send; 2 has no takeover guard;
// 3 leaves a leader's renewal deadline armed after it loses (the CPU spin of a45a178).
inline constexpr int kMutant = KVELECT_CORE_MUTANT;

// A candidate tries to take an expired key this long after the TTL it computed, so that the
// server's expiry timer has run ("Watching the key").
inline constexpr Duration kExpiryMargin = 5ms;
// Retries of an expiry attempt that found the key still there double from this up to the cap.
inline constexpr Duration kExpiryRetryFirst = 10ms;
inline constexpr Duration kExpiryRetryCap = 200ms;
// A renewal that failed without an answer is retried this soon: the lease, not the retry count,
// decides when the leader gives up ("Renewal").
inline constexpr Duration kRenewRetry = 50ms;
// A failed campaign write or read is retried this soon.
inline constexpr Duration kCampaignRetry = 100ms;
// The least time between a renewal's send and the end of the lease it renews ("Renewal").
inline constexpr Duration kRenewalWindow = 250ms;
// A watch that has not shown a revision we know was written after this long is recreated.
inline constexpr Duration kWatchCatchUp = 1s;
// At most one bucket probe (is it still there?) per this long.
inline constexpr Duration kProbeGap = 1s;
// Herd control ("Herd control").
inline constexpr Duration kHerdWindowFirst = 2ms;
inline constexpr Duration kHerdWindowCap = 64ms;
// Stopping waits this long at most for the request in flight and the release's reply.
inline constexpr Duration kReleaseWaitCap = 5s;
// A win at a revision at most this far below one already seen of the key is taken for acknowledged
// writes the server lost, and renewed past it before a token is announced; one further below is
// taken for a bucket made anew, whose tokens restart ("Two histories").
inline constexpr std::uint64_t kTokenBumpLimit = 64;

inline constexpr std::string_view kReleased = detail::kReleasedValue;
inline constexpr std::string_view kEvict = detail::kEvictValue;

inline bool is_marker(std::string_view value) {
  return value.substr(0, detail::kReservedPrefix.size()) == detail::kReservedPrefix;
}

// The member a key's entry names, if it names one.
inline std::optional<std::string> member_of(const Entry& entry) {
  if (entry.op != Op::put || entry.value.empty() || is_marker(entry.value))
    return std::nullopt;
  return entry.value;
}

inline long long ms(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

} // namespace kvelect::core::rules

namespace kvelect::core {

template <typename... Args>
void Protocol::debugf(const char* format, const Args&... args) {
  emit(DebugLine{fmt::format(fmt::runtime(format), args...), LogLevel::debug});
}

template <typename... Args>
void Protocol::logf(LogLevel level, const char* format, const Args&... args) {
  emit(DebugLine{fmt::format(fmt::runtime(format), args...), level});
}

} // namespace kvelect::core
