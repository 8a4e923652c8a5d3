// SPDX-License-Identifier: Apache-2.0
// Random runs: one 64-bit seed draws a whole world (TTL, members, twins, term limits, health
// checks, clocks, storage) and a schedule that alternates chaos (network cuts, losses and
// delays, server pauses and restarts, process pauses, crashes and restarts, silent watches, an
// operator deleting, purging, evicting, overwriting, changing MaxAge, deleting and re-creating
// the bucket, a late expiry timer) with calm stretches (only resign(), stop()/start() and health
// flips), in which the liveness invariant applies. Invariants are checked at every step.
#pragma once

#include "kv_model.hpp"

#include <cstdint>
#include <string>

namespace kvelect::sim {

struct RunOptions {
  std::uint64_t seed = 1;
  Nanos duration = 180 * kSec; // simulated
  bool verbose = false;        // print every event as it happens
  std::size_t trace_capacity = 0;
  int max_steps_per_second = 200;
  bool halt = true;   // false: run to the end after a violation (to measure a seed's full cost)
  std::string ignore; // invariant letters not to report (CheckConfig::ignore)
};

struct RunResult {
  bool ok = true;
  std::string failure; // the violated invariant
  std::string setup;   // what the seed drew, in one line
  std::string trace;   // the last trace_capacity events, when kept
  std::uint64_t events = 0;
  std::uint64_t wins = 0;
  double member_seconds = 0;
};

RunResult run_seed(const RunOptions& options);

// A failed seed's report: the violation, the seed, the command that replays it, and the last
// `lines` events of the run (run once more with the trace on: a seed replays exactly).
std::string failure_report(const RunOptions& options, const RunResult& result,
                           std::size_t lines = 80);

std::string replay_command(const RunOptions& options);

} // namespace kvelect::sim
