// SPDX-License-Identifier: Apache-2.0
#include "scenario.hpp"

#include "world.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace kvelect::sim {

namespace {

// The kinds of fault a chaos stretch draws from; each seed weighs them differently, so that
// some seeds hammer one kind and others mix them all.
enum Fault : int {
  kCutLink,
  kCutOneWay,
  kCutLeader,
  kLossyNet,
  kSlowNet,
  kServerPause,
  kServerRestart,
  kProcessPause,
  kPauseLeader,
  kCrash,
  kSilentWatch,
  kDelete,
  kPurge,
  kEvict,
  kForeign,
  kTtlChange,
  kBucketRecreate,
  kExpiryLag,
  kResign,
  kStopStart,
  kHealthFlip,
  kFaultKinds
};

class Plan {
public:
  Plan(World& world, Rng rng, Nanos duration)
      : world_(world), rng_(rng), duration_(duration), calm_net_(world.net()) {}

  void schedule(const std::array<double, kFaultKinds>& weights) {
    weights_ = weights;
    const Nanos ttl = world_.config().ttl;
    // A MaxAge change halves or doubles the TTL, within 1 s .. 20 s; the settling time of a calm
    // stretch allows for the longest TTL the run can reach.
    max_ttl_ = weights_[kTtlChange] > 0 ? std::min(std::max(ttl, 20 * kSec), 4 * ttl) : ttl;
    Nanos t = 0;
    bool calm = true;
    while (t < duration_ - 5 * kSec) {
      if (calm) {
        // (f) applies once every effect of the chaos before has worn off: a silent watch is
        // recreated after two TTLs, a takeover guard and a cool-down last one TTL.
        const Nanos settle = 3 * max_ttl_ + 2 * kSec;
        const Nanos length = settle + rng_.range(ttl, 6 * ttl) + rng_.range(0, 10 * kSec);
        const Nanos end = std::min(t + length, duration_ - 4 * kSec);
        world_.at(t, [this, from = t + settle, end] { world_.checker().set_calm(from, end); });
        calm_actions(t, end);
        t = end;
      } else {
        const Nanos length = rng_.range(2 * kSec, std::max<Nanos>(3 * kSec, 6 * ttl));
        const Nanos end = std::min(t + length, duration_ - 4 * kSec);
        world_.at(t, [this, t, end] { world_.checker().set_calm(kForever, kForever); });
        const int faults = static_cast<int>(rng_.range(1, 6));
        for (int k = 0; k < faults; ++k)
          fault(rng_.range(t, std::max(t, end - kSec)), end);
        t = end;
      }
      calm = !calm;
    }
    // The end: every member leaves with stop(), which must fire OnLost if it leads.
    world_.at(duration_ - 3 * kSec, [this] {
      world_.checker().set_calm(kForever, kForever);
      for (int i = 0; i < world_.members(); ++i)
        world_.member(i).api_stop();
    });
    // (f) looks at who leads four times a second.
    sample();
  }

  void sample() {
    world_.checker().sample(world_.now());
    if (world_.now() + 250 * kMs < duration_)
      world_.after(250 * kMs, [this] { sample(); });
  }

private:
  int any_member() {
    return static_cast<int>(rng_.below(static_cast<std::uint64_t>(world_.members())));
  }
  // The member leading when the action runs (chaos aimed at the leader finds the interesting
  // cases much more often), or any member.
  int leader_or_any() {
    if (auto l = world_.checker().leader(world_.now()))
      return *l;
    return any_member();
  }

  void calm_actions(Nanos from, Nanos to) {
    const Nanos ttl = world_.config().ttl;
    const int actions = static_cast<int>(rng_.range(0, 3));
    for (int k = 0; k < actions; ++k) {
      const Nanos t = rng_.range(from, std::max(from, to - 2 * kSec));
      switch (rng_.below(4)) {
      case 0:
      case 1:
        world_.at(t, [this] {
          if (auto l = world_.checker().leader(world_.now()))
            world_.member(*l).api_resign();
        });
        break;
      case 2: {
        const Nanos back = std::min(to, t + rng_.range(100 * kMs, 2 * ttl));
        world_.at(t, [this, back] {
          const int m = leader_or_any();
          world_.member(m).api_stop();
          world_.at(back, [this, m] { world_.member(m).api_start(); });
        });
        break;
      }
      default: {
        const int m = any_member();
        const Nanos back = std::min(to, t + rng_.range(100 * kMs, 2 * ttl));
        world_.at(t, [this, m] { world_.member(m).set_healthy(false); });
        world_.at(back, [this, m] { world_.member(m).set_healthy(true); });
        break;
      }
      }
    }
  }

  int draw_kind() {
    double total = 0;
    for (double w : weights_)
      total += w;
    double x = rng_.uniform() * total;
    for (int k = 0; k < kFaultKinds; ++k) {
      x -= weights_[static_cast<std::size_t>(k)];
      if (x < 0)
        return k;
    }
    return kCutLink;
  }

  void fault(Nanos t, Nanos end) {
    const Nanos ttl = world_.config().ttl;
    // Faults with a duration end before the chaos stretch does: calm means calm.
    auto until = [&](Nanos longest) { return std::min(end, t + rng_.range(10 * kMs, longest)); };
    const int kind = draw_kind();
    switch (kind) {
    case kCutLink:
    case kCutLeader:
    case kCutOneWay: {
      const Nanos back = until(2 * ttl);
      const bool requests = kind != kCutOneWay || rng_.chance(0.5);
      const bool replies = kind != kCutOneWay || !requests;
      world_.at(t, [this, back, kind, requests, replies] {
        const int m = kind == kCutLeader ? leader_or_any() : any_member();
        world_.cut(m, requests, replies);
        world_.at(back, [this, m] { world_.heal(m); });
      });
      break;
    }
    case kLossyNet: {
      const Nanos back = until(3 * ttl);
      const double p = rng_.uniform() * 0.5;
      world_.at(t, [this, p, back] {
        world_.net().drop_request = p / 2;
        world_.net().drop_reply = p;
        world_.note(-1, [&] { return fmt::format("fault: lossy network ({:.2f})", p); });
        world_.at(back, [this] {
          world_.net().drop_request = world_.net().drop_reply = 0;
          world_.note(-1, [] { return std::string("network no longer lossy"); });
        });
      });
      break;
    }
    case kSlowNet: {
      const Nanos back = until(3 * ttl);
      const Nanos spike = rng_.range(10 * kMs, 3 * kSec);
      const double chance = rng_.uniform() * 0.5;
      world_.at(t, [this, spike, chance, back] {
        world_.net().delay_max = std::max(calm_net_.delay_max, spike / 20);
        world_.net().spike_chance = chance;
        world_.net().spike_max = spike;
        world_.note(-1, [&] {
          return fmt::format("fault: slow network (spikes up to {})", seconds(spike));
        });
        world_.at(back, [this] {
          // Back to the calm network (slow stretches can overlap: restoring what the first saw
          // would keep the second's delays).
          world_.net().delay_min = calm_net_.delay_min;
          world_.net().delay_max = calm_net_.delay_max;
          world_.net().spike_chance = calm_net_.spike_chance;
          world_.net().spike_max = calm_net_.spike_max;
          world_.note(-1, [] { return std::string("network fast again"); });
        });
      });
      break;
    }
    case kServerPause: {
      const Nanos d = until(3 * kSec) - t;
      world_.at(t, [this, d] { world_.pause_server(d); });
      break;
    }
    case kServerRestart: {
      const Nanos up = until(3 * kSec);
      world_.at(t, [this, up, end] {
        world_.restart_server(up - world_.now());
        if (world_.config().memory_bucket) // someone creates the lost bucket again
          world_.at(std::min(end, up + rng_.range(0, 2 * kSec)),
                    [this] { world_.op_create_bucket(world_.bucket().max_age()); });
      });
      break;
    }
    case kProcessPause:
    case kPauseLeader: {
      const Nanos d = until(3 * ttl) - t;
      world_.at(t, [this, d, kind] {
        world_.member(kind == kPauseLeader ? leader_or_any() : any_member()).pause(d);
      });
      break;
    }
    case kCrash: {
      const Nanos back = until(3 * ttl);
      world_.at(t, [this, back] {
        const int m = leader_or_any();
        world_.member(m).crash();
        world_.at(back, [this, m] { world_.member(m).boot(); });
      });
      break;
    }
    case kSilentWatch: world_.at(t, [this] { world_.silence_watch(any_member()); }); break;
    case kDelete: world_.at(t, [this] { world_.op_delete(); }); break;
    case kPurge: world_.at(t, [this] { world_.op_purge(); }); break;
    case kEvict: world_.at(t, [this] { world_.op_evict(); }); break;
    case kForeign: {
      const bool clear = rng_.chance(0.5);
      const Nanos later = until(ttl);
      world_.at(t, [this] { world_.op_put(rng_.chance(0.2) ? "" : "intruder"); });
      if (clear)
        world_.at(later, [this] { world_.op_delete(); });
      break;
    }
    case kTtlChange: {
      world_.at(t, [this] {
        const Nanos now_ttl = world_.bucket().max_age();
        const Nanos next_ttl = std::clamp<Nanos>(rng_.chance(0.5) ? now_ttl / 2 : now_ttl * 2, kSec,
                                                 std::max(kSec, max_ttl_));
        world_.op_set_ttl(next_ttl);
      });
      break;
    }
    case kBucketRecreate: {
      const Nanos back = until(3 * kSec);
      world_.at(t, [this] { world_.op_delete_bucket(); });
      world_.at(back, [this] { world_.op_create_bucket(world_.config().ttl); });
      break;
    }
    case kExpiryLag: {
      const Nanos lag = rng_.chance(0.3) ? 0 : rng_.range(0, 500 * kMs);
      world_.at(t, [this, lag] { world_.set_expiry_lag(lag); });
      break;
    }
    case kResign: world_.at(t, [this] { world_.member(leader_or_any()).api_resign(); }); break;
    case kStopStart: {
      const Nanos back = until(2 * ttl);
      world_.at(t, [this, back] {
        const int m = leader_or_any();
        world_.member(m).api_stop();
        world_.at(back, [this, m] { world_.member(m).api_start(); });
      });
      break;
    }
    case kHealthFlip:
    default: {
      const Nanos back = until(2 * ttl);
      world_.at(t, [this, back] {
        const int m = leader_or_any();
        world_.member(m).set_healthy(false);
        world_.at(back, [this, m] { world_.member(m).set_healthy(true); });
      });
      break;
    }
    }
  }

  World& world_;
  Rng rng_;
  Nanos duration_;
  std::array<double, kFaultKinds> weights_{};
  Nanos max_ttl_ = 0;
  NetProfile calm_net_;
};

} // namespace

const char* const kFaultNames[kFaultKinds] = {
    "cut",          "cut-one-way",     "cut-leader", "lossy",        "slow",
    "server-pause", "server-restart",  "pause",      "pause-leader", "crash",
    "silent-watch", "delete",          "purge",      "evict",        "foreign",
    "ttl",          "bucket-recreate", "expiry-lag", "resign",       "stop-start",
    "health"};

RunResult run_seed(const RunOptions& options) {
  // The setup is drawn from the seed first; the world and the schedule get generators of
  // their own from it.
  Rng draw(options.seed);
  WorldConfig config;
  config.seed = draw.next();
  static constexpr std::array<Nanos, 7> kTtls = {1 * kSec, 2 * kSec, 2 * kSec, 3 * kSec,
                                                 5 * kSec, 5 * kSec, 10 * kSec};
  config.ttl = kTtls[draw.below(kTtls.size())];
  config.memory_bucket = draw.chance(0.7);
  config.silent_after_reconnect = draw.uniform() * 0.5;
  config.trace_capacity = options.trace_capacity;
  config.verbose = options.verbose;
  config.checks.max_steps_per_second = options.max_steps_per_second;
  config.checks.halt = options.halt;
  config.checks.ignore = options.ignore;
  World world(config);

  static constexpr std::array<const char*, 5> kNames = {"alpha", "bravo", "charlie", "delta",
                                                        "echo"};
  const int n = static_cast<int>(draw.range(2, 5));
  const bool twins = draw.chance(0.15);
  const bool health = draw.chance(0.3);
  const bool terms = draw.chance(0.25);
  const Nanos health_interval = draw.range(200 * kMs, 2 * kSec);
  for (int i = 0; i < n + (twins ? 1 : 0); ++i) {
    MemberSpec spec;
    spec.name = kNames[static_cast<std::size_t>(i < n ? i : 0)]; // the twin takes the first name
    if (terms && draw.chance(0.5))
      spec.term_limit = config.ttl * draw.range(3, 12);
    spec.health_check = health;
    spec.health_interval = health_interval;
    const int m = world.add_member(spec);
    world.at(draw.range(0, 500 * kMs), [&world, m] { world.member(m).boot(); });
  }
  if (draw.chance(0.3))
    world.set_expiry_lag(draw.range(0, 300 * kMs));

  std::array<double, kFaultKinds> weights{};
  double total = 0;
  for (auto& w : weights) {
    w = draw.chance(0.5) ? draw.uniform() : 0;
    total += w;
  }
  if (total == 0)
    weights.fill(1);

  RunResult result;
  result.setup = fmt::format("ttl {}, {} members{}, {} bucket{}{}; faults:", seconds(config.ttl), n,
                             twins ? " + a twin" : "", config.memory_bucket ? "memory" : "file",
                             health ? ", health checks" : "", terms ? ", term limits" : "");
  for (int k = 0; k < kFaultKinds; ++k)
    if (weights[static_cast<std::size_t>(k)] > 0)
      result.setup += std::string(" ") + kFaultNames[k];

  Plan plan(world, draw.fork(), options.duration);
  plan.schedule(weights);
  world.run_until(options.duration);

  result.ok = !world.checker().failed();
  result.failure = world.checker().failure();
  result.events = world.events();
  result.wins = world.checker().wins();
  if (options.trace_capacity > 0)
    result.trace = world.trace().tail(options.trace_capacity);
  result.member_seconds =
      static_cast<double>(world.members()) * static_cast<double>(options.duration) / 1e9;
  return result;
}

std::string replay_command(const RunOptions& options) {
  // The project's build directory is build/ (README.md); another one replays the same way.
  std::string command = fmt::format("build/tests/sim/kvelect-sim --seed {}", options.seed);
  if (options.duration != RunOptions{}.duration)
    command += fmt::format(" --duration {}", options.duration / kSec);
  if (!options.ignore.empty())
    command += " --ignore " + options.ignore;
  return command;
}

std::string failure_report(const RunOptions& options, const RunResult& result, std::size_t lines) {
  // The same seed once more, keeping the trace: it replays the failed run exactly.
  RunOptions again = options;
  again.verbose = false;
  again.trace_capacity = std::max<std::size_t>(lines, 1);
  const RunResult replay = run_seed(again);
  std::string report = fmt::format("seed {} FAILED: {}\n  setup: {}\n  replay: {}\n", options.seed,
                                   result.failure, result.setup, replay_command(options));
  if (replay.failure != result.failure)
    report += fmt::format("  (the replay did not fail the same way: {})\n", replay.failure);
  report += fmt::format("--- the last {} events ---\n", lines) + replay.trace;
  return report;
}

} // namespace kvelect::sim
