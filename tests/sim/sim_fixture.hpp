// SPDX-License-Identifier: Apache-2.0
// A small harness for the named scenario tests (sim_test.cpp): a world with a fixed, fast
// network, members added by name, and helpers that step simulated time until something has
// happened on the server. Every scenario is deterministic: no random fault, one seed.
#pragma once

#include "world.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>

namespace kvelect::sim {

inline WorldConfig scenario_config(Nanos ttl, std::uint64_t seed = 7) {
  WorldConfig config;
  config.seed = seed;
  config.ttl = ttl;
  config.net.delay_min = 200'000; // 0.2 .. 1 ms each way
  config.net.delay_max = 1 * kMs;
  config.silent_after_reconnect = 0; // a healed link resumes its watch
  config.trace_capacity = 120;
  config.verbose = std::getenv("KVELECT_SIM_VERBOSE") != nullptr; // NOLINT
  config.checks.liveness = false; // scenarios assert their own liveness bounds
  return config;
}

class Sim {
public:
  explicit Sim(WorldConfig config) : world(std::move(config)) {}

  int add(const std::string& name, MemberSpec spec = {}) {
    spec.name = name;
    return world.add_member(std::move(spec));
  }
  Member& m(int i) { return world.member(i); }
  [[nodiscard]] Nanos now() const { return world.now(); }
  std::optional<int> leader() { return world.checker().leader(world.now()); }

  // Runs `d` more of simulated time; false (and a test failure) on a violation.
  bool run_for(Nanos d) { return check(world.run_until(world.now() + d)); }
  // Steps 1 ms at a time until `done` holds or `limit` has passed; false if it never did.
  bool run_until(const std::function<bool()>& done, Nanos limit) {
    const Nanos end = world.now() + limit;
    while (world.now() < end) {
      if (done())
        return true;
      if (!check(world.run_until(world.now() + kMs)))
        return false;
    }
    return done();
  }
  // The key's last message on the server (markers included), or nullptr.
  const Message* last() { return world.bucket().last(world.config().key, server_now()); }
  std::uint64_t last_seq() {
    const Message* message = last();
    return message != nullptr ? message->seq : 0;
  }
  // Runs until the server stores a new value written by `name`; returns the real time.
  std::optional<Nanos> next_write_by(const std::string& name, Nanos limit) {
    const std::uint64_t seen = last_seq();
    const bool ok = run_until(
        [&] {
          const Message* message = last();
          return message != nullptr && message->seq > seen && message->op == Op::put &&
                 message->value == name;
        },
        limit);
    if (!ok)
      return std::nullopt;
    return world.now();
  }
  bool check(bool ok) {
    if (!ok || world.checker().failed()) {
      ADD_FAILURE() << world.checker().failure() << "\n--- the last events ---\n"
                    << world.trace().tail(120);
      return false;
    }
    return true;
  }
  Nanos server_now() const { return world.server_time(world.now()); }

  World world;
};

// Boots member `first` and waits until it leads, then boots the others and runs one more second.
// Its assertions end only this function: wrap it in ASSERT_NO_FATAL_FAILURE to stop the test.
inline void elect_first(Sim& sim, int first, std::initializer_list<int> others) {
  sim.m(first).boot();
  ASSERT_TRUE(sim.run_until([&] { return sim.leader() == first; }, 2 * kSec));
  for (int i : others)
    sim.m(i).boot();
  ASSERT_TRUE(sim.run_for(kSec));
}

} // namespace kvelect::sim
