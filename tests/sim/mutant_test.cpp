// SPDX-License-Identifier: Apache-2.0
// The simulator catches broken protocols (docs/simulator.md, "Mutants"): this binary is built
// once per deliberately broken variant of the core (KVELECT_CORE_MUTANT, lib/core/rules.hpp) and
// runs random seeds until one violates an invariant. It fails if none does within the budget,
// which is well inside what `meson test sim` runs for the real core.
#include "scenario.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>

#ifndef KVELECT_CORE_MUTANT
#error "built only with -DKVELECT_CORE_MUTANT=N"
#endif

namespace kvelect::sim {
namespace {

// What each mutant breaks, and the invariant that must catch it.
struct Expectation {
  const char* broken;
  const char* invariant; // the prefix of the violation's text
};

constexpr Expectation kExpected[] = {
    {"nothing", ""},
    {"the lease counts from the reply, not from the send", "invariant (b)"},
    {"no takeover guard", "invariant (a)"},
    {"a leader's renewal deadline stays armed after it loses", "invariant (e)"},
};

TEST(SimMutant, TheSimulatorCatchesIt) {
  static_assert(KVELECT_CORE_MUTANT > 0 && KVELECT_CORE_MUTANT < 4, "unknown mutant");
  const Expectation& expected = kExpected[KVELECT_CORE_MUTANT];
  constexpr std::uint64_t kBudget = 5'000; // seeds; `meson test sim` runs 20,000 of the real core
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t seed = 1;
  RunResult found;
  for (; seed <= kBudget; ++seed) {
    RunOptions options;
    options.seed = seed;
    found = run_seed(options);
    if (!found.ok)
      break;
  }
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(found.ok) << "mutant " << KVELECT_CORE_MUTANT << " (" << expected.broken
                         << ") survived " << kBudget << " seeds";
  std::printf("mutant %d (%s) caught by seed %llu after %.2f s: %s\n", KVELECT_CORE_MUTANT,
              expected.broken, static_cast<unsigned long long>(seed), wall, found.failure.c_str());
  EXPECT_EQ(found.failure.rfind(expected.invariant, 0), 0U)
      << "caught, but by another invariant than expected: " << found.failure;
}

} // namespace
} // namespace kvelect::sim
