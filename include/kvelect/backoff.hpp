// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Campaign backoff policies (Choria's Backoff interface).
#pragma once

#include <kvelect/export.hpp>

#include <chrono>
#include <memory>
#include <vector>

namespace kvelect {

/// How long a candidate waits before its next campaign.
class KVELECT_API Backoff {
public:
  virtual ~Backoff() = default;
  /// The wait before the next campaign after `n` failed tries (n >= 0). Must be thread-safe.
  virtual std::chrono::milliseconds duration(int n) const = 0;
};

namespace backoff {

/// A policy that steps through `steps` (the last one repeats), each step randomised to 0.5–1.5×.
/// Throws kvelect::Error(invalid_option) for an empty list or a step <= 0.
KVELECT_API std::shared_ptr<const Backoff> stepped(std::vector<std::chrono::milliseconds> steps);

/// Choria's TwentySecondStarBackoff: steps from 500 ms up to 20 s, randomised 0.5–1.5×.
KVELECT_API std::shared_ptr<const Backoff> twenty_seconds();

/// Choria's FiveSecondStartBackoff: steps from 500 ms up to 5 s, randomised 0.5–1.5×.
KVELECT_API std::shared_ptr<const Backoff> five_seconds();

} // namespace backoff
} // namespace kvelect
