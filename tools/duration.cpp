// SPDX-License-Identifier: Apache-2.0
#include "duration.hpp"

#include <cstdint>

namespace kvelect::cli {
namespace {

constexpr std::int64_t kNanosPerMilli = 1'000'000;

std::string invalid(std::string_view text, std::string_view why) {
  std::string message = "invalid duration '";
  message.append(text);
  message += "': ";
  message.append(why);
  return message;
}

// Nanoseconds in one unit, or 0 for an unknown unit.
std::int64_t unit_nanos(std::string_view unit) {
  if (unit == "ms")
    return kNanosPerMilli;
  if (unit == "s")
    return 1000 * kNanosPerMilli;
  if (unit == "m")
    return 60 * 1000 * kNanosPerMilli;
  if (unit == "h")
    return 60 * 60 * 1000 * kNanosPerMilli;
  return 0;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

} // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text, std::string* error) {
  auto fail = [&](std::string_view why) -> std::optional<std::chrono::milliseconds> {
    if (error != nullptr)
      *error = invalid(text, why);
    return std::nullopt;
  };
  constexpr std::string_view kExpected =
      "expected a number and a unit (ms, s, m, h), e.g. 500ms, 30s, 5m";
  if (text.empty())
    return fail("empty; " + std::string(kExpected));
  if (text == "0")
    return std::chrono::milliseconds(0);

  // Sum of <digits>[.<digits>]<unit> terms, in nanoseconds, with overflow checks.
  std::int64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t start = i;
    std::int64_t whole = 0;
    while (i < text.size() && is_digit(text[i])) {
      if (__builtin_mul_overflow(whole, 10, &whole) ||
          __builtin_add_overflow(whole, text[i] - '0', &whole))
        return fail("too large");
      ++i;
    }
    const bool has_whole = i > start;
    std::int64_t fraction = 0;
    std::int64_t scale = 1;
    bool has_fraction = false;
    if (i < text.size() && text[i] == '.') {
      ++i;
      while (i < text.size() && is_digit(text[i])) {
        if (scale < 1'000'000'000'000LL) { // digits beyond 12 decimals cannot matter
          fraction = fraction * 10 + (text[i] - '0');
          scale *= 10;
        }
        has_fraction = true;
        ++i;
      }
    }
    if (!has_whole && !has_fraction) {
      if (i < text.size() && text[i] == '-')
        return fail("a duration cannot be negative");
      return fail(kExpected);
    }
    const std::size_t unit_start = i;
    while (i < text.size() && !is_digit(text[i]) && text[i] != '.')
      ++i;
    const std::string_view unit = text.substr(unit_start, i - unit_start);
    if (unit.empty())
      return fail("missing unit; " + std::string(kExpected));
    const std::int64_t nanos = unit_nanos(unit);
    if (nanos == 0)
      return fail("unknown unit '" + std::string(unit) + "'; " + std::string(kExpected));
    std::int64_t term = 0;
    if (__builtin_mul_overflow(whole, nanos, &term) || __builtin_add_overflow(total, term, &total))
      return fail("too large");
    // The fraction of one unit, below one unit: long double is exact enough at ns resolution.
    const auto part = static_cast<std::int64_t>(static_cast<long double>(nanos) *
                                                static_cast<long double>(fraction) /
                                                static_cast<long double>(scale));
    if (__builtin_add_overflow(total, part, &total))
      return fail("too large");
  }
  const auto millis = static_cast<std::int64_t>(total / kNanosPerMilli);
  if (millis == 0 && total != 0)
    return fail("below the 1ms resolution");
  return std::chrono::milliseconds(millis);
}

std::string format_duration(std::chrono::milliseconds duration) {
  std::int64_t ms = duration.count();
  if (ms == 0)
    return "0s";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  if (ms < 1000)
    return out + std::to_string(ms) + "ms";
  const std::int64_t hours = ms / 3'600'000;
  ms %= 3'600'000;
  const std::int64_t minutes = ms / 60'000;
  ms %= 60'000;
  if (hours > 0)
    out += std::to_string(hours) + "h";
  if (minutes > 0)
    out += std::to_string(minutes) + "m";
  if (ms > 0) {
    out += std::to_string(ms / 1000);
    if (const std::int64_t frac = ms % 1000; frac != 0) {
      std::string digits = std::to_string(frac);
      digits.insert(0, 3 - digits.size(), '0');
      while (digits.back() == '0')
        digits.pop_back();
      out += "." + digits;
    }
    out += "s";
  }
  return out;
}

} // namespace kvelect::cli
