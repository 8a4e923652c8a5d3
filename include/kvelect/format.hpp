// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief fmt formatters for kvelect types. A separate header so that the core headers do not
/// pull fmt into every user's build; include it where you format a State or an Errc.
#pragma once

#include <kvelect/error.hpp>
#include <kvelect/state.hpp>

#include <fmt/format.h>

/// @cond INTERNAL
template <>
struct fmt::formatter<kvelect::State> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(kvelect::State state, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(kvelect::to_string(state), ctx);
  }
};

template <>
struct fmt::formatter<kvelect::Errc> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(kvelect::Errc code, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(kvelect::to_string(code), ctx);
  }
};
/// @endcond
