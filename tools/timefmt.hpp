// SPDX-License-Identifier: Apache-2.0
// RFC 3339 timestamps in UTC with microseconds, e.g. 2026-11-22T05:49:21.491726Z.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace kvelect::cli {

/// `time` as RFC 3339 UTC with six fractional digits and a 'Z'.
std::string rfc3339(std::chrono::system_clock::time_point time);

/// Nanoseconds since the Unix epoch (cnats' timestamps) as a system_clock time point.
std::chrono::system_clock::time_point from_unix_nanos(std::int64_t nanos);

} // namespace kvelect::cli
