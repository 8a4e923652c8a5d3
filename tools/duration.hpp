// SPDX-License-Identifier: Apache-2.0
// Durations on the command line: "500ms", "30s", "5m", "1h", sums such as "1m30s" and decimal
// fractions such as "1.5s". Pure functions, unit-tested without a server.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace kvelect::cli {

/// Parses `text` into milliseconds. "0" is accepted without a unit. On failure returns nullopt
/// and, if `error` is given, stores a message that names the value, e.g.
/// "invalid duration 'abc': expected a number and a unit (ms, s, m, h), e.g. 500ms, 30s, 5m".
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text,
                                                        std::string* error = nullptr);

/// Formats a duration the way parse_duration reads it back: "500ms", "1.5s", "1m30s", "1h".
std::string format_duration(std::chrono::milliseconds duration);

} // namespace kvelect::cli
