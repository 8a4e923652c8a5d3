// SPDX-License-Identifier: Apache-2.0
// kvelect-sim: the deterministic simulator's command line (docs/simulator.md).
//   kvelect-sim --seed N            replay one seed, printing every event
//   kvelect-sim --seeds M [--from S] run M seeds: S, S+1, ...
//   kvelect-sim --minutes N [--from S] run seeds for N minutes of wall time
// Options: --duration SECONDS (simulated, per seed; default 180), --keep-going (report every
// failing seed, not only the first), --trace LINES (events shown for a failure; default 80),
// --no-halt (run every seed to its end even after a violation: what a passing run costs),
// --ignore LETTERS (invariants not to report, e.g. "e": look past a known bug).
// Exits 1 if any seed failed, 2 on bad arguments.
#include "scenario.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace kvelect::sim;

int usage() {
  std::fprintf(stderr, "usage: kvelect-sim (--seed N | --seeds M [--from S] | --minutes N "
                       "[--from S]) [--duration SECONDS] [--keep-going] [--trace LINES]\n");
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  std::uint64_t seed = 0;
  std::uint64_t seeds = 0;
  std::uint64_t from = 1;
  double minutes = 0;
  bool one = false;
  bool keep_going = false;
  std::size_t trace_lines = 80;
  RunOptions base;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--seed" && has_value) {
      seed = std::strtoull(argv[++i], nullptr, 10);
      one = true;
    } else if (arg == "--seeds" && has_value) {
      seeds = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--from" && has_value) {
      from = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--minutes" && has_value) {
      minutes = std::strtod(argv[++i], nullptr);
    } else if (arg == "--duration" && has_value) {
      base.duration = static_cast<Nanos>(std::strtod(argv[++i], nullptr) * 1e9);
    } else if (arg == "--trace" && has_value) {
      trace_lines = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--ignore" && has_value) {
      base.ignore = argv[++i];
    } else if (arg == "--no-halt") {
      base.halt = false;
    } else if (arg == "--keep-going") {
      keep_going = true;
    } else {
      return usage();
    }
  }
  if (!one && seeds == 0 && minutes <= 0)
    return usage();

  if (one) {
    RunOptions options = base;
    options.seed = seed;
    options.verbose = true;
    const RunResult result = run_seed(options);
    std::printf("\nseed %llu: %s\n  setup: %s\n  %llu events, %llu wins\n",
                static_cast<unsigned long long>(seed), result.ok ? "ok" : result.failure.c_str(),
                result.setup.c_str(), static_cast<unsigned long long>(result.events),
                static_cast<unsigned long long>(result.wins));
    return result.ok ? 0 : 1;
  }

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto stop_at = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(minutes * 60));
  std::uint64_t ran = 0;
  std::uint64_t failed = 0;
  std::uint64_t events = 0;
  double member_seconds = 0;
  for (std::uint64_t s = from;; ++s) {
    if (seeds > 0 && ran >= seeds)
      break;
    if (seeds == 0 && Clock::now() >= stop_at)
      break;
    RunOptions options = base;
    options.seed = s;
    const RunResult result = run_seed(options);
    ++ran;
    events += result.events;
    member_seconds += result.member_seconds;
    if (!result.ok) {
      ++failed;
      std::printf("%s\n", failure_report(options, result, trace_lines).c_str());
      std::fflush(stdout);
      if (!keep_going)
        break;
    }
  }
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("%llu seeds (%llu failed) in %.1f s: %.1f seeds/s, %.1f simulated member-hours, "
              "%.2fM events (%.2fM events/s)\n",
              static_cast<unsigned long long>(ran), static_cast<unsigned long long>(failed), wall,
              static_cast<double>(ran) / wall, member_seconds / 3600.0,
              static_cast<double>(events) / 1e6, static_cast<double>(events) / 1e6 / wall);
  return failed == 0 ? 0 : 1;
}
