// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief kvelect::LogLevel, the severity of the lines an election logs through WithLog.
#pragma once

#include <kvelect/export.hpp>

#include <string_view>

namespace kvelect {

/// How much a log line matters (WithLog in include/kvelect/options.hpp).
enum class LogLevel : unsigned {
  debug = 0,   ///< campaign steps: writes, reads, what the member saw of the key
  info = 1,    ///< transitions: started, won, lost, released, left
  warning = 2, ///< failed requests, a broken or silent watch (a lost connection), bucket changes
  error = 3,   ///< the election cannot go on (a fatal error), a callback threw
};

/// "debug", "info", "warning" or "error".
KVELECT_API std::string_view to_string(LogLevel level) noexcept;

} // namespace kvelect
