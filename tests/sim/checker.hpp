// SPDX-License-Identifier: Apache-2.0
// The invariants (docs/simulator.md), checked at every step of every member. The first
// violation halts the run; its text names the invariant, the members and the times.
//   (a) no two members lead at the same real time. A member leads from its OnWon until the
//       earlier of its OnLost and the real time at which its view().lease_end passes on its own
//       clock (what is_leader() answers); a lease that ended never comes back without an OnWon;
//   (b) a leader's lease ends no later than the server could let another member win by expiry:
//       the stamp of its last applied write + MaxAge (after a MaxAge change: from `ttl_grace`
//       after it on);
//   (c) fencing tokens of successive leaderships strictly increase within one bucket epoch, and
//       each is the revision of a write of that member that the server applied;
//   (d) OnWon and OnLost alternate per member run, and view().leading agrees with them;
//   (e) no spin: a member handles at most `max_steps_per_second` events and timer calls a second;
//   (f) liveness in calm stretches: a vacancy is filled within TTL + 1 s, a resign() is followed
//       by a successor's OnWon within 100 ms;
//   (g) a member never names itself leader through OnNewLeader while it is not leading;
//   and the core's contract: one request in flight at a time.
#pragma once

#include "kv_model.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kvelect::sim {

class World;
class Member;

struct CheckConfig {
  int max_steps_per_second = 200;
  bool halt = true; // stop the run at the first violation (false: go on, to measure cost)
  // Letters of invariants not to report, e.g. "e" while a known spin is being fixed, so that a
  // search can look past it.
  std::string ignore;
  // How long after a MaxAge change a lease may still outlive the value (b): the leader cannot
  // know at once. A renewal period of the old TTL plus this.
  Nanos ttl_grace_extra = 2100 * kMs;
  bool liveness = true;
  Nanos handover_bound = 100 * kMs; // resign() → successor's OnWon
  Nanos fill_extra = kSec;          // a vacancy is filled within TTL + this
};

class Checker {
public:
  Checker(World& world, CheckConfig config);

  // Hooks, from the members and the world.
  void before_step(Member& m, Nanos real);
  void after_step(Member& m, Nanos real, bool timer);
  void on_won(Member& m, Nanos real, std::uint64_t token);
  void on_lost(Member& m, Nanos real, const std::string& reason);
  void on_new_leader(Member& m, Nanos real, const std::optional<std::string>& leader);
  void on_second_request(Member& m, Nanos real, std::uint64_t in_flight, std::uint64_t id);
  void on_boot(Member& m, Nanos real);
  void on_crash(Member& m, Nanos real);
  void on_run_end(Member& m, Nanos real);
  void on_resign(Member& m, Nanos real, bool led);
  void on_eligibility(Member& m, Nanos real); // something that bears on (f) changed
  void on_applied(int member, std::uint64_t incarnation, std::uint64_t seq, Nanos stamp,
                  std::uint64_t epoch);
  void on_ttl_change(Nanos real, Nanos old_ttl);
  // The bucket lost its messages without a marker (deleted, or a memory bucket in a restart).
  void on_wipe(Nanos real);
  // A request of the member timed out, or the process was paused: its view of the bucket may lag.
  void on_link_trouble(Member& m, Nanos real);
  void on_run_start(Member& m, Nanos real);
  // The schedule promises that every fault and its after-effects are over in [from, to): (f)
  // applies there.
  void set_calm(Nanos from, Nanos to);
  void sample(Nanos real); // (f): a periodic look at who leads

  [[nodiscard]] bool leading(const Member& m, Nanos real) const;
  [[nodiscard]] std::optional<int> leader(Nanos real) const;
  [[nodiscard]] bool failed() const noexcept { return !failure_.empty(); }
  [[nodiscard]] const std::string& failure() const noexcept { return failure_; }
  [[nodiscard]] std::uint64_t wins() const noexcept { return wins_; }
  // Overlaps that docs/protocol.md ("What it does not cover") accepts: after the bucket was
  // wiped, a member whose run began afterwards cannot know of a leader of the old bucket.
  [[nodiscard]] std::uint64_t documented_overlaps() const noexcept { return documented_; }
  void fail(const std::string& invariant, const std::string& detail);

  // Per member run; public for the scenario tests' assertions.
  struct Track {
    std::uint64_t incarnation = 0;
    bool won = false;    // between OnWon and OnLost
    bool lapsed = false; // the lease ended before OnLost
    Nanos lapse_real = 0;
    std::uint64_t token = 0;
    std::uint64_t token_epoch = 0; // the bucket incarnation the winning write went to
    Nanos won_at = 0;
    Nanos run_started = 0;
    // The TTL its core counted with when the bucket was last wiped: the longest lease of the old
    // bucket it can allow for, if the old bucket's TTL was not raised behind its back.
    Nanos ttl_at_wipe = 0;
    // Whether this run had started when MaxAge was last lowered, and the TTL its core knew then:
    // a member that knew the longer TTL keeps its guards at that length ("Bucket changes").
    bool ran_at_lowering = false;
    Nanos ttl_at_lowering = 0;
    // Whether its core has since counted a TTL below that one: only then does it know of the
    // lowering (MaxAge lowered and raised again before it read the bucket leaves no trace).
    bool learned_lowering = false;
    Nanos link_trouble_at = -1; // its last request that timed out, or its last pause
    bool won_in_step = false;
    // Writes of its name by this process that the server applied (b, c).
    bool has_write = false;
    Nanos last_stamp = 0;
    Nanos last_applied_real = -1; // when the last of them was applied
    std::uint64_t write_epoch = 0;
    struct Applied {
      std::uint64_t seq;
      std::uint64_t epoch;
    };
    std::vector<Applied> revisions;
    // (e)
    Nanos window = -1;
    int window_steps = 0;
    // (f): eligible to fill a vacancy since (kForever: not now)
    Nanos eligible_since = kForever;
    Nanos cooldown_until = 0;
  };
  [[nodiscard]] const Track& track(int member) const { return tracks_.at(member); }

private:
  Track& track_of(const Member& m);
  void check_lease_bound(Member& m, Nanos real);
  void check_lease_bounds_later(Nanos at);
  bool eligible(const Member& m, Nanos since, Nanos real, int except) const;
  std::string who(const Member& m) const;

  World& world_;
  CheckConfig config_;
  std::vector<Track> tracks_;
  std::string failure_;
  std::uint64_t wins_ = 0;
  std::uint64_t documented_ = 0;
  Nanos last_wipe_ = -1;
  // (c)
  std::uint64_t last_token_ = 0;
  std::uint64_t token_epoch_ = 0;
  // (b)
  Nanos ttl_grace_until_ = -1;
  // Until then a leader cut off when MaxAge was lowered may still run the lease it counted with
  // the old TTL (docs/protocol.md, "What it does not cover").
  Nanos ttl_lowered_until_ = -1;
  Nanos ttl_lowered_at_ = -1;
  // (f)
  Nanos calm_from_ = kForever;
  Nanos calm_to_ = kForever;
  Nanos vacant_since_ = kForever; // first sample that found no leader in the current calm
  struct Win {
    Nanos at;
    int member;
  };
  std::vector<Win> recent_wins_;
};

} // namespace kvelect::sim
