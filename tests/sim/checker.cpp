// SPDX-License-Identifier: Apache-2.0
#include "checker.hpp"

#include "world.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace kvelect::sim {

namespace {

// The leader's renewal period for a TTL, as docs/protocol.md ("Renewal") gives it: the time a
// connected leader may take to notice a lowered TTL at its next renewal.
Nanos renew_period(Nanos ttl) {
  const Nanos guard = std::clamp<Nanos>(ttl / 10, 20 * kMs, 500 * kMs);
  return std::max(ttl / 4, std::min({ttl * 3 / 4, ttl * 2 / 3, ttl - guard - 250 * kMs}));
}

} // namespace

Checker::Checker(World& world, CheckConfig config) : world_(world), config_(config) {}

Checker::Track& Checker::track_of(const Member& m) {
  const auto i = static_cast<std::size_t>(m.index());
  if (i >= tracks_.size())
    tracks_.resize(i + 1);
  return tracks_[i];
}

std::string Checker::who(const Member& m) const {
  return fmt::format("m{} '{}' (incarnation {})", m.index(), m.name(), m.incarnation());
}

void Checker::fail(const std::string& invariant, const std::string& detail) {
  if (failed())
    return;
  if (invariant.size() > 1 && invariant[0] == '(' &&
      config_.ignore.find(invariant[1]) != std::string::npos)
    return;
  failure_ =
      fmt::format("invariant {} violated at {}: {}", invariant, seconds(world_.now()), detail);
  world_.note(-1, [&] { return "VIOLATION " + failure_; });
  if (config_.halt)
    world_.halt();
}

bool Checker::leading(const Member& m, Nanos real) const {
  const auto i = static_cast<std::size_t>(m.index());
  if (i >= tracks_.size() || !m.alive() || m.core() == nullptr)
    return false;
  const Track& t = tracks_[i];
  return t.won && !t.lapsed && m.local(real) < m.lease_end_local();
}

std::optional<int> Checker::leader(Nanos real) const {
  for (int i = 0; i < world_.members(); ++i)
    if (leading(world_.member(i), real))
      return i;
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Steps

void Checker::before_step(Member& m, Nanos real) {
  Track& t = track_of(m);
  t.won_in_step = false;
  // A lease that ran out while nothing happened: is_leader() turned false then (a).
  if (t.won && !t.lapsed && m.local(real) >= m.lease_end_local()) {
    t.lapsed = true;
    t.lapse_real = m.clock().real_at(m.lease_end_local());
  }
  // (e): events and timer calls per second of real time.
  const Nanos window = real / kSec;
  if (window != t.window) {
    t.window = window;
    t.window_steps = 0;
  }
  if (++t.window_steps == config_.max_steps_per_second + 1)
    fail("(e) no spin", fmt::format("{} handled more than {} events within one second", who(m),
                                    config_.max_steps_per_second));
}

void Checker::after_step(Member& m, Nanos real, bool /*timer*/) {
  if (m.core() == nullptr)
    return;
  Track& t = track_of(m);
  if (t.ran_at_lowering && m.core()->ttl().count() < t.ttl_at_lowering)
    t.learned_lowering = true;
  const auto& view = m.core()->view();
  const Nanos local = m.local(real);
  if (view.leading != t.won)
    fail("(d) OnWon/OnLost", fmt::format("{}: view().leading is {} but the callbacks say {}",
                                         who(m), view.leading, t.won ? "leading" : "not leading"));
  if (t.won && t.won_in_step && local >= m.lease_end_local())
    fail("(a) OnWon for an ended lease",
         fmt::format("{} fired OnWon (token {}) with its lease already over ({} ago)", who(m),
                     t.token, seconds(local - m.lease_end_local())));
  if (t.won && t.lapsed && local < m.lease_end_local())
    fail("(a) lease resurrected",
         fmt::format("{}: its lease ended at {} (no OnLost), then came back to {} without OnWon",
                     who(m), seconds(t.lapse_real),
                     seconds(m.clock().real_at(m.lease_end_local()))));
  if (t.won && !t.lapsed && local >= m.lease_end_local()) {
    t.lapsed = true;
    t.lapse_real = std::max(m.clock().real_at(m.lease_end_local()), 0L);
  }
  check_lease_bound(m, real);
  if (leading(m, real))
    for (int i = 0; i < world_.members(); ++i) {
      Member& other = world_.member(i);
      if (i == m.index() || !leading(other, real))
        continue;
      const Track& o = track_of(other);
      // Leaders whose tokens are of different bucket incarnations (one of a wiped bucket, or
      // both, of two wiped in turn): judged at the later OnWon, which knew both.
      if (o.token_epoch != t.token_epoch)
        continue;
      if (real < ttl_lowered_until_)
        continue; // after MaxAge was lowered: judged (and counted) at the OnWon
      fail("(a) two leaders", fmt::format("{} and {} both lead", who(m), who(other)));
    }
}

void Checker::check_lease_bound(Member& m, Nanos real) {
  if (!leading(m, real))
    return;
  const Track& t = track_of(m);
  KvModel& bucket = world_.bucket();
  // A bucket that was wiped (deleted, or a memory bucket lost in a restart) took the value with
  // it: the server can let anyone win at once, which no lease can prevent (docs/protocol.md,
  // "What it does not cover"). (a) still applies.
  if (!t.has_write || t.write_epoch != bucket.epoch() || !bucket.exists())
    return;
  const Nanos expiry = world_.real_at_server(t.last_stamp + bucket.max_age());
  const Nanos lease_end = m.clock().real_at(m.lease_end_local());
  if (lease_end <= expiry)
    return;
  if (real < ttl_grace_until_)
    return; // re-checked when the grace ends
  if (real < ttl_lowered_until_ && t.link_trouble_at >= ttl_lowered_at_)
    // A lowered MaxAge shortens the life of the values already written at once; a leader learns
    // of it at its next bucket read, which a request that timed out or a paused process delays
    // past the grace: it is cut off as far as the TTL goes (docs/protocol.md, "What it does not
    // cover"). What must hold meanwhile is (a): a candidate that knew the old TTL keeps its guard
    // at that length. Re-checked when the old TTL has run.
    return;
  fail("(b) lease ends before the value can expire",
       fmt::format("{}'s lease ends at {}, but its last applied write (server stamp {}) expires "
                   "at {} with MaxAge {}: {} too late",
                   who(m), seconds(lease_end), t.last_stamp, seconds(expiry),
                   seconds(bucket.max_age()), seconds(lease_end - expiry)));
}

void Checker::on_ttl_change(Nanos real, Nanos old_ttl) {
  // Connected leaders learn a lower TTL within one renewal period of the TTL they knew
  // (docs/protocol.md, "Bucket changes"): several changes in a row extend the grace, never
  // shorten it.
  ttl_grace_until_ =
      std::max(ttl_grace_until_, real + renew_period(old_ttl) + config_.ttl_grace_extra);
  if (world_.bucket().max_age() < old_ttl) {
    ttl_lowered_until_ = std::max(ttl_lowered_until_, real + old_ttl + config_.ttl_grace_extra);
    ttl_lowered_at_ = real;
    for (int i = 0; i < world_.members(); ++i) {
      const Member& m = world_.member(i);
      Track& t = track_of(m);
      t.ran_at_lowering = m.core() != nullptr && m.core()->running();
      t.ttl_at_lowering = m.core() != nullptr ? m.core()->ttl().count() : 0;
      t.learned_lowering = false;
    }
    check_lease_bounds_later(ttl_lowered_until_);
  }
  check_lease_bounds_later(ttl_grace_until_);
}

void Checker::check_lease_bounds_later(Nanos at) {
  world_.at(at, [this] {
    const Nanos real = world_.now();
    for (int i = 0; i < world_.members(); ++i)
      check_lease_bound(world_.member(i), real);
  });
}

// ---------------------------------------------------------------------------------------------
// Callbacks

void Checker::on_won(Member& m, Nanos real, std::uint64_t token) {
  Track& t = track_of(m);
  ++wins_;
  if (t.won)
    fail("(d) OnWon/OnLost",
         fmt::format("{} fired OnWon (token {}) twice without OnLost", who(m), token));
  // The token is the revision of a write of this process that the server applied, in the
  // bucket incarnation it went to.
  const auto applied = std::find_if(t.revisions.rbegin(), t.revisions.rend(),
                                    [&](const Track::Applied& a) { return a.seq == token; });
  const std::uint64_t epoch = world_.bucket().epoch();
  if (applied == t.revisions.rend())
    fail("(c) fencing tokens",
         fmt::format("{} won with token {}, which is no revision the server applied for it", who(m),
                     token));
  const std::uint64_t token_epoch = applied != t.revisions.rend() ? applied->epoch : epoch;
  if (token_epoch != epoch) {
    // A win in a bucket that was wiped while the winner waited (the takeover guard, a slow
    // reply): tokens restart with the new bucket, as docs/fencing.md warns. Counted, not failed.
    ++documented_;
    world_.note(m.index(), [&] {
      return fmt::format("(documented) token {} is a revision of a bucket wiped since", token);
    });
  }
  for (int i = 0; i < world_.members(); ++i) {
    Member& other = world_.member(i);
    if (i == m.index() || !leading(other, real))
      continue;
    const Track& o = track_of(other);
    const bool old_and_fresh =
        last_wipe_ >= 0 && ((o.token_epoch != epoch && t.run_started >= last_wipe_) ||
                            (token_epoch != epoch && o.run_started >= last_wipe_));
    const bool knew_old_ttl = t.ran_at_lowering && t.learned_lowering &&
                              t.run_started < ttl_lowered_at_ && other.core() != nullptr &&
                              t.ttl_at_lowering >= other.core()->ttl().count();
    if (real < ttl_lowered_until_ && !knew_old_ttl) {
      // MaxAge was lowered while the other leads: it may not have learned it yet (cut off, or
      // within its renewal period), and its lease counts the old TTL, which the winner never
      // knew (docs/protocol.md, "What it does not cover"). A winner that knew the old TTL keeps
      // its guards at that length and is judged like any other.
      ++documented_;
      world_.note(m.index(), [&] {
        return fmt::format("(documented) overlap with {} after MaxAge was lowered", who(other));
      });
      continue;
    }
    const bool old_ttl_unseen = o.token_epoch != epoch && token_epoch == epoch && last_wipe_ >= 0 &&
                                t.run_started < last_wipe_ && other.core() != nullptr &&
                                other.core()->ttl().count() > t.ttl_at_wipe;
    if (old_ttl_unseen) {
      // The old bucket's TTL was raised after the winner last read it, and then the bucket was
      // wiped: the winner waited out the longest TTL it knew, and nothing in the new bucket tells
      // it of the longer one (docs/protocol.md, "What it does not cover").
      ++documented_;
      world_.note(m.index(), [&] {
        return fmt::format("(documented) overlap with {}, whose lease counts a TTL of the wiped "
                           "bucket that this member never read",
                           who(other));
      });
      continue;
    }
    if (old_and_fresh) {
      // A leadership won in the wiped bucket beside one of a member whose run began after the
      // wipe: nothing in the new bucket tells the latter of the former (docs/protocol.md, "What
      // it does not cover").
      ++documented_;
      world_.note(m.index(), [&] {
        return fmt::format("(documented) overlap with {} after the bucket was wiped", who(other));
      });
      continue;
    }
    fail("(a) two leaders",
         fmt::format("{} won (token {}) while {} leads (token {}, lease ends at {})", who(m), token,
                     who(other), o.token, seconds(other.clock().real_at(other.lease_end_local()))));
  }
  if (token_epoch == token_epoch_ && token <= last_token_ && last_token_ != 0)
    fail("(c) fencing tokens", fmt::format("{} won with token {} after an earlier leadership had "
                                           "token {}",
                                           who(m), token, last_token_));
  token_epoch_ = token_epoch;
  last_token_ = token;
  t.won = true;
  t.lapsed = false;
  t.won_in_step = true;
  t.token = token;
  t.token_epoch = token_epoch;
  t.won_at = real;
  recent_wins_.push_back({real, m.index()});
  if (recent_wins_.size() > 64)
    recent_wins_.erase(recent_wins_.begin(), recent_wins_.begin() + 32);
}

void Checker::on_link_trouble(Member& m, Nanos real) { track_of(m).link_trouble_at = real; }

void Checker::on_wipe(Nanos real) {
  last_wipe_ = real;
  for (int i = 0; i < world_.members(); ++i) {
    const Member& m = world_.member(i);
    track_of(m).ttl_at_wipe = m.core() != nullptr ? m.core()->ttl().count() : 0;
  }
}

void Checker::on_run_start(Member& m, Nanos real) {
  track_of(m).run_started = real;
  on_eligibility(m, real);
}

void Checker::on_lost(Member& m, Nanos real, const std::string& reason) {
  Track& t = track_of(m);
  if (!t.won)
    fail("(d) OnWon/OnLost", fmt::format("{} fired OnLost ({}) while not leading", who(m), reason));
  t.won = false;
  t.lapsed = false;
  // A member that stood down lets the others go first for one TTL ("Release"), then campaigns
  // at its next campaign tick: it is not expected to fill a vacancy before that.
  t.cooldown_until = real + 2 * world_.bucket().max_age();
  on_eligibility(m, real);
}

void Checker::on_new_leader(Member& m, Nanos real, const std::optional<std::string>& leader) {
  if (leader && *leader == m.name() && !leading(m, real))
    fail("(g) OnNewLeader",
         fmt::format("{} reported itself as the leader while not leading", who(m)));
}

void Checker::on_second_request(Member& m, Nanos /*real*/, std::uint64_t in_flight,
                                std::uint64_t id) {
  fail("one request in flight",
       fmt::format("{} sent request {} while {} was still in flight", who(m), id, in_flight));
}

void Checker::on_boot(Member& m, Nanos real) {
  Track& t = track_of(m);
  t = Track{};
  t.incarnation = m.incarnation();
  on_eligibility(m, real);
}

void Checker::on_crash(Member& m, Nanos real) {
  Track& t = track_of(m);
  // The process is gone, and its leader work with it.
  t.won = false;
  t.lapsed = false;
  t.eligible_since = kForever;
  (void)real;
}

void Checker::on_run_end(Member& m, Nanos real) {
  Track& t = track_of(m);
  if (t.won && leading(m, real))
    fail("(d) OnWon/OnLost",
         fmt::format("{}'s election ended while it led, without OnLost", who(m)));
  on_eligibility(m, real);
}

void Checker::on_applied(int member, std::uint64_t incarnation, std::uint64_t seq, Nanos stamp,
                         std::uint64_t epoch) {
  const auto i = static_cast<std::size_t>(member);
  if (i >= tracks_.size())
    tracks_.resize(i + 1);
  Track& t = tracks_[i];
  if (t.incarnation != incarnation)
    return; // a request of a process that crashed meanwhile
  t.has_write = true;
  t.last_stamp = stamp;
  t.last_applied_real = world_.now();
  t.write_epoch = epoch;
  t.revisions.push_back({seq, epoch});
  if (t.revisions.size() > 256) // only recent ones can be tokens still to announce
    t.revisions.erase(t.revisions.begin(), t.revisions.begin() + 128);
}

// ---------------------------------------------------------------------------------------------
// Liveness (f)

void Checker::on_eligibility(Member& m, Nanos real) {
  Track& t = track_of(m);
  const bool can = m.alive() && !m.paused() && m.running() && m.healthy();
  if (!can) {
    t.eligible_since = kForever;
    return;
  }
  if (t.eligible_since != kForever)
    return;
  // Becomes able to campaign: after its start-up splay, its next health check, and any
  // cool-down of its own.
  Nanos since = real + m.spec().startup_splay;
  if (m.spec().health_check)
    since += m.spec().health_interval;
  // A run that still knows a bucket made anew since (its election was made before) learns of
  // the new one at its first campaign and then waits one TTL before any win ("Bucket changes").
  if (m.core() != nullptr && m.core()->bucket().created_ns != world_.bucket().created())
    since = std::max(since, real + 2 * m.core()->ttl().count());
  t.eligible_since = std::max(since, t.cooldown_until);
}

bool Checker::eligible(const Member& m, Nanos since, Nanos real, int except) const {
  const auto i = static_cast<std::size_t>(m.index());
  if (m.index() == except || i >= tracks_.size())
    return false;
  const Track& t = tracks_[i];
  const bool can = m.alive() && !m.paused() && m.running() && m.healthy();
  return can && t.eligible_since <= since && t.cooldown_until <= since && since <= real;
}

void Checker::set_calm(Nanos from, Nanos to) {
  calm_from_ = from;
  calm_to_ = to;
  vacant_since_ = kForever;
}

void Checker::on_resign(Member& m, Nanos real, bool led) {
  if (!config_.liveness || !led)
    return;
  const Nanos deadline = real + config_.handover_bound;
  if (real < calm_from_ || deadline > calm_to_)
    return;
  bool successor = false;
  for (int i = 0; i < world_.members(); ++i)
    successor = successor || eligible(world_.member(i), real, real, m.index());
  if (!successor)
    return;
  world_.at(deadline, [this, real, index = m.index(), deadline] {
    // A successor that took the key and gave it straight back (it stopped, or turned unhealthy)
    // ended the resigner's cool-down ("Release"): the resigner winning it back fills the vacancy.
    bool taken_since = false;
    for (int i = 0; i < world_.members(); ++i)
      taken_since =
          taken_since || (i != index && track_of(world_.member(i)).last_applied_real > real);
    for (const auto& win : recent_wins_)
      if (win.at > real && (win.member != index || taken_since))
        return;
    if (world_.now() > calm_to_)
      return;
    // Only a successor that stayed able to campaign through the whole window counts: one that
    // stopped, paused or turned unhealthy right after the resign owed no win (seed 6081488).
    bool stayed = false;
    for (int i = 0; i < world_.members(); ++i)
      stayed = stayed || eligible(world_.member(i), real, world_.now(), index);
    if (!stayed)
      return;
    fail("(f) handover", fmt::format("m{} resigned at {}; no successor had won by {}", index,
                                     seconds(real), seconds(deadline)));
  });
}

void Checker::sample(Nanos real) {
  if (!config_.liveness)
    return;
  const Nanos ttl = world_.bucket().max_age();
  if (real < calm_from_ || real >= calm_to_ || !world_.bucket().exists()) {
    vacant_since_ = kForever;
    return;
  }
  if (leader(real)) {
    vacant_since_ = kForever;
    return;
  }
  if (vacant_since_ == kForever)
    vacant_since_ = real;
  if (real - vacant_since_ <= ttl + config_.fill_extra)
    return;
  for (int i = 0; i < world_.members(); ++i)
    if (eligible(world_.member(i), vacant_since_, real, -1))
      fail("(f) vacancy filled in time",
           fmt::format("nobody has led since {} ({} > TTL {} + {}), although m{} could campaign "
                       "all along",
                       seconds(vacant_since_), seconds(real - vacant_since_), seconds(ttl),
                       seconds(config_.fill_extra), i));
}

} // namespace kvelect::sim
