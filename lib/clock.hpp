// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <chrono>
#include <ctime>

namespace kvelect::detail {

// The clock of every lease and campaign deadline. CLOCK_BOOTTIME, not steady_clock
// (CLOCK_MONOTONIC): a host that is suspended while it leads must see that time passed, because
// the server's TTL kept running meanwhile. Like CLOCK_MONOTONIC it never jumps with wall-clock
// changes. See docs/protocol.md, "Clocks".
struct LeaseClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<LeaseClock>;
  static constexpr bool is_steady = true;

  static time_point now() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
  }
};

} // namespace kvelect::detail
