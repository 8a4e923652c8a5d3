// SPDX-License-Identifier: Apache-2.0
// The protocol core's handling of what comes back: request results, watch entries and bucket
// reads (lib/core/protocol.hpp). docs/protocol.md gives the reason for every rule.
#include "protocol.hpp"
#include "rules.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace kvelect::core {

using namespace rules;

bool Protocol::can_campaign(Time now) const noexcept {
  return phase_ == Phase::running && std::holds_alternative<Candidate>(role_) &&
         now >= start_after_ && now >= cooldown_until_ && healthy_;
}

bool Protocol::writing() const noexcept {
  return in_flight_ && (in_flight_->purpose == Purpose::acquire ||
                        in_flight_->purpose == Purpose::renew || in_flight_->after_unknown);
}

// ---------------------------------------------------------------------------------------------
// Write results

void Protocol::on_write(Time now, std::uint64_t id, const WriteResult& result) {
  if (!running() || !in_flight_ || in_flight_->id != id || in_flight_->purpose == Purpose::read ||
      in_flight_->purpose == Purpose::bucket)
    return;
  const InFlight request = *in_flight_;
  in_flight_.reset();
  if (phase_ == Phase::stopping) {
    // Only the release matters now: give back the newest revision we hold.
    const bool wrote = request.purpose == Purpose::acquire || request.purpose == Purpose::renew;
    if (wrote && result.outcome == Outcome::ok && params_.release_on_stop) {
      if (request.purpose == Purpose::acquire && request.vacancy == Vacancy::reclaim)
        reclaim_guard_until_ = std::max(reclaim_guard_until_, now + ttl_);
      // Not while another member's lease may still run: a clean release would let the others
      // win at once, without that wait (see release()); nor a renewal acknowledged after our
      // lease ended, which may come from another history (see handle_renew).
      if (now < win_guard() || (request.purpose == Purpose::renew && now >= held_lease_end_))
        logf(LogLevel::info, "not releasing revision {}: another member's lease may still run",
             result.revision);
      else
        release_wanted_ = result.revision;
    }
    after_event(now);
    return;
  }
  check_lease(now);
  switch (request.purpose) {
  case Purpose::acquire: handle_acquire(now, request, result); break;
  case Purpose::renew: handle_renew(now, request, result); break;
  case Purpose::release: handle_release(now, request, result); break;
  case Purpose::read:
  case Purpose::bucket: break;
  }
  after_event(now);
}

void Protocol::handle_acquire(Time now, const InFlight& request, const WriteResult& w) {
  switch (w.outcome) {
  case Outcome::ok: {
    chained_attempts_ = 0;
    if (refuse_contradicting_write(now, w.revision, "won"))
      return;
    // The highest revision seen before this result; our own write's echo (the watch can show
    // it before the reply comes) does not count.
    const bool echo = key_.revision == w.revision && key_.kind == KeyView::Kind::held &&
                      key_.value == params_.name;
    const std::uint64_t seen = echo ? 0 : highest_revision_;
    if (w.revision < own_revision_ || w.revision < key_.revision)
      forget_key(now, "a write got a revision below one already seen");
    own_revision_ = std::max(own_revision_, w.revision);
    highest_revision_ = std::max(highest_revision_, w.revision);
    // The key holds our name now: a watch that reports an older state (its initial "absent"
    // arriving after the win, a replay) must not override what the write proved.
    key_.kind = KeyView::Kind::held;
    key_.value = params_.name;
    key_.revision = w.revision;
    key_.observed_at = now;
    expect_watch_to_reach(w.revision, now);
    if (request.vacancy == Vacancy::reclaim)
      reclaim_guard_until_ = std::max(reclaim_guard_until_, now + ttl_);
    if (!can_campaign(now)) {
      // Stood down, stopped or unhealthy meanwhile: give the key back (release() leaves it to
      // expire while a guard, a reclaim's included, runs).
      release(now, w.revision);
      return;
    }
    Pending p;
    p.revision = w.revision;
    p.token = w.revision;
    // The lease runs from when the winning request was sent: the server stamped the value after
    // that, so it cannot expire before sent + TTL ("Lease").
    p.lease_end = (kMutant == 1 ? now : request.sent) + ttl_ - lease_margin_;
    p.next_renewal = request.sent + renew_period_;
    // Takeover guard: a vacancy that was not a clean release may hide a holder whose lease
    // still runs; it ends within one TTL of when we first saw the vacancy ("Takeover guard").
    // A reclaim after a late renewal waits one TTL from its reply: the late renewal may have
    // been answered from a history in which another member won that revision ("Two
    // histories"); that member's writes fail from our reclaim on, so its lease ends within one
    // TTL of now.
    p.guard_until = kMutant == 2 ? Time{} : win_guard();
    p.won_sent = request.sent;
    // The TTL is read when the win is about to be announced: at once, or when the guard ends.
    p.confirm_at = std::max(now, p.guard_until);
    p.clean = request.vacancy == Vacancy::clean && now >= win_guard();
    if (w.revision <= seen) {
      if (seen - w.revision <= kTokenBumpLimit) {
        // Acknowledged writes up to `seen` were lost: a token at or below it may already have
        // been announced. Once the guard has passed and the TTL is confirmed, renew (each
        // renewal is a new revision) until we pass it (run_timers).
        logf(LogLevel::warning,
             "won revision {}, not above revision {} already seen: renewing past it before the "
             "win is announced",
             w.revision, seen);
        p.token_floor = seen;
      } else {
        logf(LogLevel::warning,
             "won revision {}, far below revision {} already seen: a bucket made anew, whose "
             "tokens restart",
             w.revision, seen);
        highest_revision_ = w.revision;
      }
    }
    if (now < p.guard_until)
      logf(LogLevel::info, "won revision {}, waiting {} ms for a previous holder's lease to end",
           w.revision, ms(p.guard_until - now));
    role_ = p; // OnWon once the TTL is confirmed and the guard has passed (run_timers)
    return;
  }
  case Outcome::lost_race:
    ++failed_campaigns_;
    vacancy_losses_ = std::min(vacancy_losses_ + 1, 8);
    highest_revision_ = std::max(highest_revision_, w.current);
    if (w.current != 0 && w.current < key_.revision)
      forget_key(now, "the key's revision went back");
    // Re-read the key: it may be a tombstone whose revision we need, or a new holder.
    send_read(now, Purpose::acquire, w.current, request.vacancy, false);
    return;
  case Outcome::retryable:
    ++failed_campaigns_;
    report(w.outcome, w.code, w.message, "campaign");
    if (w.no_responders)
      bucket_read_wanted_ = true; // a deleted bucket is fatal; the probe tells
    if (auto* c = candidate())
      c->retry_at = std::min(c->retry_at, now + kCampaignRetry);
    return;
  case Outcome::unknown:
    report(w.outcome, w.code, w.message, "campaign");
    // The write may have landed: read before deciding ("Unknown outcomes of campaign writes").
    send_read(now, Purpose::acquire, request.expected, request.vacancy, true);
    return;
  case Outcome::fatal: fail(Error(w.code, w.message)); return;
  }
}

void Protocol::handle_renew(Time now, const InFlight& request, const WriteResult& w) {
  switch (w.outcome) {
  case Outcome::ok: {
    if (refuse_contradicting_write(now, w.revision, "renewed"))
      return;
    own_revision_ = std::max(own_revision_, w.revision);
    highest_revision_ = std::max(highest_revision_, w.revision);
    expect_watch_to_reach(w.revision, now);
    const Duration latency = now - request.sent;
    counters_.last_renewal_latency = latency;
    counters_.max_renewal_latency = std::max(counters_.max_renewal_latency, latency);
    if (w.revision > key_.revision) {
      key_.kind = KeyView::Kind::held;
      key_.value = params_.name;
      key_.revision = w.revision;
      key_.observed_at = now;
    }
    auto renewed = [&](auto& role) {
      role.revision = w.revision;
      role.lease_end = (kMutant == 1 ? now : request.sent) + ttl_ - lease_margin_;
      role.next_renewal = request.sent + renew_period_;
    };
    if (auto* l = leader()) {
      renewed(*l);
    } else if (auto* p = pending()) {
      renewed(*p);
      p->renewed_sent = request.sent;
      if (p->token_floor != 0) {
        // Renewing past revisions the server lost: the token is our first revision above them.
        p->token = w.revision;
      }
    } else if (release_wanted_ != 0 || !can_campaign(now)) {
      // We stood down while it was in flight (resign, term limit, health, a lease that ended
      // while we were told to let others go first): give back this newer revision, if it was
      // acknowledged while our lease still ran. One acknowledged later may come from a deposed
      // stream leader's stale log while another member won that revision in the real stream,
      // and a release there would be taken as clean ("Two histories"): leave it to expire.
      if (now < held_lease_end_)
        release(now, w.revision);
      else
        logf(LogLevel::info,
             "renewal landed at revision {} after our lease had ended: leaving it to expire",
             w.revision);
    } else {
      // The renewal landed after our lease had ended. In one history nobody else can have won
      // the key since; but a deposed stream leader may have answered it from its stale log
      // while another member won this revision in the real one. So take the key back with a
      // fresh revision check, and announce the win only after the guard of a reclaim
      // (handle_acquire; "Two histories").
      logf(LogLevel::info, "late renewal landed at revision {}: reclaiming", w.revision);
      send_write(now, Purpose::acquire, params_.name, w.revision, Vacancy::reclaim);
    }
    return;
  }
  case Outcome::lost_race:
    if (leader() != nullptr) {
      lose(now, "renewal failed: the key was changed by someone else");
    } else if (pending() != nullptr) {
      become_candidate(now);
    }
    // Someone else changed the key (an eviction mark, an operator, a member that took it after
    // our lease ended): we must not take it straight back; the others get the first chance, as
    // after a resign. The reply can come before the watch shows the change ("Renewal").
    cooldown_until_ = now + ttl_;
    highest_revision_ = std::max(highest_revision_, w.current);
    if (w.current != 0 && w.current < key_.revision)
      forget_key(now, "the key's revision went back");
    key_.kind = KeyView::Kind::unknown;
    send_read(now, Purpose::renew, w.current, Vacancy::guarded, false);
    return;
  case Outcome::retryable:
    report(w.outcome, w.code, w.message, "renewal");
    if (w.no_responders)
      bucket_read_wanted_ = true;
    if (auto* l = leader())
      l->retry_at = std::min(l->retry_at, now + kRenewRetry);
    else if (auto* p = pending())
      p->retry_at = std::min(p->retry_at, now + kRenewRetry);
    return;
  case Outcome::unknown:
    report(w.outcome, w.code, w.message, "renewal");
    send_read(now, Purpose::renew, request.expected, Vacancy::reclaim, true);
    return;
  case Outcome::fatal: fail(Error(w.code, w.message)); return;
  }
}

bool Protocol::refuse_contradicting_write(Time now, std::uint64_t revision, const char* what) {
  if (!contradicts_our_write(revision))
    return false;
  // The server gave this revision to another write too: one of the two is in a history that will
  // be lost (a deposed stream leader answering from its stale log, a write lost in a fail-over).
  // Neither can be trusted, and our value may not be the key's: take nothing from it, forget the
  // key and wait out whoever leads in the other history ("Two histories").
  logf(LogLevel::warning,
       "{} revision {}, which the key already had with another value: two histories", what,
       revision);
  forget_key(now, "the server gave one revision to two writes");
  return true;
}

void Protocol::handle_release(Time now, const InFlight& request, const WriteResult& w) {
  if (w.outcome == Outcome::ok) {
    logf(LogLevel::info, "released the key at revision {}", request.expected);
    expect_watch_to_reach(w.revision, now);
  } else {
    logf(LogLevel::warning, "release not applied: {}", w.message);
  }
}

// ---------------------------------------------------------------------------------------------
// Reads

void Protocol::on_read(Time now, std::uint64_t id, const ReadResult& r) {
  if (!running() || !in_flight_ || in_flight_->id != id || in_flight_->purpose != Purpose::read)
    return;
  const InFlight request = *in_flight_;
  in_flight_.reset();
  if (phase_ == Phase::running) {
    check_lease(now);
    handle_read(now, request, r);
  }
  after_event(now);
}

void Protocol::handle_read(Time now, const InFlight& request, const ReadResult& r) {
  if (r.outcome != Outcome::ok) {
    report(r.outcome, r.code, r.message, "read");
    if (r.outcome == Outcome::fatal) {
      fail(Error(r.code, r.message));
      return;
    }
    if (request.verify_hold && holds_key()) {
      // We cannot tell whether our hold survived the new bucket: assume it did not.
      forget_key(now, "the bucket was made anew and our revision could not be checked");
      return;
    }
    if (auto* c = candidate())
      c->retry_at = std::min(c->retry_at, now + kCampaignRetry);
    else if (auto* l = leader())
      l->retry_at = std::min(l->retry_at, now + kRenewRetry);
    else if (auto* p = pending())
      p->retry_at = std::min(p->retry_at, now + kRenewRetry);
    else if (params_.observe_only)
      observer_read_at_ = std::min(observer_read_at_, now + kCampaignRetry);
    return;
  }
  const Entry& entry = r.entry;
  const bool names_us = !params_.observe_only && entry.op == Op::put && entry.value == params_.name;
  if (request.verify_hold && holds_key()) {
    if (names_us && entry.revision == held_revision()) {
      // Our hold is in the new bucket: go on (a pending win may now be announced, with the TTL
      // read just before, or read again once its guard has passed).
      if (auto* p = pending()) {
        if (request.sent >= p->guard_until)
          p->ttl_confirmed = true;
        else
          p->confirm_at = p->guard_until;
      }
      return;
    }
    forget_key(now, "the bucket was made anew and our revision is not in it");
  }
  // A write whose outcome was unknown: did our value land?
  if (request.after_unknown && names_us && entry.revision > request.expected &&
      candidate() != nullptr) {
    // A campaign write of ours may have landed (or a renewal, late, after we stood down), but
    // so may a write of another process with our name, made after our own value expired: the
    // value cannot tell. No lease can count from it anyway (the server stamped it at a time we
    // do not know), and taking it back, or releasing it, would take it from such a twin. So it
    // is treated like any holder's value: it expires one TTL after we first saw it ("Unknown
    // outcomes of campaign writes").
    logf(LogLevel::warning,
         "a write of unknown outcome may have landed at revision {}: waiting for it to expire",
         entry.revision);
    observe(now, entry, false);
    return;
  }
  if (request.after_unknown && names_us && entry.revision > request.expected) {
    own_revision_ = std::max(own_revision_, entry.revision);
    auto landed = [&](auto& role) {
      // Our renewal landed; keep its revision but do not extend the lease (we do not know when
      // it was applied). The next renewal goes out at once.
      role.revision = entry.revision;
      role.next_renewal = now;
    };
    if (auto* l = leader()) {
      landed(*l);
      return;
    }
    if (auto* p = pending()) {
      landed(*p);
      return;
    }
  }
  if (request.after_unknown && holds_key()) {
    if (names_us && entry.revision == held_revision()) {
      // Not applied: send it again.
      if (auto* l = leader())
        l->retry_at = std::min(l->retry_at, now + kRenewRetry);
      else if (auto* p = pending())
        p->retry_at = std::min(p->retry_at, now + kRenewRetry);
      return;
    }
    if (leader() != nullptr) {
      lose(now, "renewal outcome unknown and the key no longer holds our revision");
    } else {
      become_candidate(now);
    }
    cooldown_until_ = now + ttl_; // as after a lost revision check
  }
  using Kind = KeyView::Kind;
  const bool live_at_expected =
      key_.revision == request.expected && (key_.kind == Kind::held || key_.kind == Kind::evicting);
  if (entry.op == Op::absent && request.expected != 0) {
    if (live_at_expected) {
      // A value we saw at that revision is no tombstone: the read came from a replica behind
      // the stream, whose copy had expired (the fault lab, seed 1100210626). Taking it for a
      // deletion skipped the takeover guard, as a revision already known. The value is waited
      // out as any holder's, from when we first saw it ("Unknown outcomes of campaign writes").
      logf(LogLevel::info, "read says absent at revision {}, which we saw live: a stale read",
           request.expected);
    } else {
      // The write's revision check named a revision, yet no live value is there: a tombstone.
      Entry tombstone;
      tombstone.op = Op::del;
      tombstone.revision = request.expected;
      observe(now, tombstone, false, true);
    }
  } else {
    observe(now, entry, false);
  }
  const bool vacant = key_.kind == Kind::tombstone || key_.kind == Kind::released ||
                      key_.kind == Kind::absent || key_.kind == Kind::expired;
  auto* c = candidate();
  if (c != nullptr && chained_attempts_ < 2 && vacant) {
    ++chained_attempts_;
    maybe_attempt(now, "after re-read");
  } else if (key_.kind == Kind::held && request.origin == Purpose::acquire &&
             (c != nullptr || params_.observe_only)) {
    // An expiry attempt (or an observer's read) found the key still there: the server's expiry
    // may lag by a few ms. Try again soon, backing off, if the value should be gone by now.
    chained_attempts_ = 0;
    if (now + kExpiryRetryFirst >= key_.observed_at + ttl_) {
      Duration& retry = c != nullptr ? c->expiry_retry : observer_retry_;
      Time& at = c != nullptr ? c->expiry_attempt : observer_read_at_;
      at = std::min(at, now + retry);
      if (retry >= kExpiryRetryCap)
        bucket_read_wanted_ = true; // the value outlives our TTL: has the TTL been raised?
      retry = std::min<Duration>(retry * 2, kExpiryRetryCap);
    }
  } else {
    chained_attempts_ = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Bucket reads

void Protocol::on_bucket(Time now, std::uint64_t id, const BucketResult& r) {
  if (!running() || !in_flight_ || in_flight_->id != id || in_flight_->purpose != Purpose::bucket)
    return;
  const Time sent = in_flight_->sent;
  in_flight_.reset();
  if (phase_ == Phase::running) {
    check_lease(now);
    if (r.outcome == Outcome::fatal) {
      fail(Error(Errc::bucket_deleted,
                 fmt::format("bucket of election '{}' is gone: {}", params_.key, r.message)));
      return;
    }
    if (r.outcome == Outcome::ok) {
      apply_bucket_facts(now, r.facts);
      if (auto* p = pending(); p != nullptr && !(in_flight_ && in_flight_->verify_hold)) {
        // A read sent once the guard had passed confirms the TTL the win is announced with; one
        // sent earlier is repeated when the guard ends (the TTL may change meanwhile).
        if (sent >= p->guard_until)
          p->ttl_confirmed = true;
        else
          p->confirm_at = p->guard_until;
      }
    } else if (auto* p = pending()) {
      p->confirm_at = now + kRenewRetry; // cannot tell now: ask again soon
    }
  }
  after_event(now);
}

void Protocol::apply_bucket_facts(Time now, const BucketFacts& facts) {
  bool verify = false;
  if (facts.created_ns != 0 && bucket_.created_ns != 0 && facts.created_ns != bucket_.created_ns) {
    highest_revision_ = 0; // revisions restart in the new bucket ("Fencing tokens")
    if (auto* p = pending()) {
      p->token_floor = 0;
      // Our winning write may have gone to the new bucket (it was sent before this read) or to
      // the old one: read the key to tell. A leader of the old bucket may still run its lease:
      // the win waits it out ("Bucket changes").
      logf(LogLevel::warning,
           "the bucket was deleted and made anew: checking that revision {} is still ours",
           p->revision);
      // Even a win over a clean release made in the new bucket waits: that release's writer may
      // have started after the re-creation, knowing nothing of the old bucket's leader.
      learn_new_bucket(now);
      p->guard_until = std::max(p->guard_until, win_guard());
      p->clean = false;
      verify = true;
    } else {
      forget_key(now, "the bucket was deleted and made anew");
    }
  }
  if (facts.created_ns != 0)
    bucket_.created_ns = facts.created_ns;
  if (facts.ttl > Duration::zero() && facts.ttl != ttl_)
    apply_ttl(now, facts.ttl);
  if (verify && holds_key() && !in_flight_) {
    if (auto* p = pending())
      p->ttl_confirmed = false; // confirmed by the read below
    send_read(now, Purpose::renew, held_revision(), Vacancy::reclaim, false);
    in_flight_->verify_hold = true;
  }
}

void Protocol::apply_ttl(Time now, Duration ttl) {
  const bool lowered = ttl < ttl_;
  logf(LogLevel::warning, "the bucket's TTL changed from {} ms to {} ms", ms(ttl_), ms(ttl));
  const Duration old_ttl = ttl_;
  const Duration old_margin = lease_margin_;
  ttl_ = ttl;
  bucket_.ttl = ttl;
  campaign_interval_ = std::max<Duration>(ttl_ * 3 / 4, 1ms);
  recompute_timings();
  // A vacancy's guard counts the longer of the two TTLs: a holder may have counted either. So
  // does the wait after a new bucket: a leader of the old one counted the TTL we knew before.
  guard_until_ = std::max(guard_until_, vacancy_seen_ + std::max(old_ttl, ttl_));
  if (bucket_changed_at_ != kNever)
    bucket_guard_until_ =
        std::max(bucket_guard_until_, bucket_changed_at_ + std::max(old_ttl, ttl_));
  if (lowered) {
    // Another member may hold a lease counted with the old TTL, from a write made before now:
    // no win of ours is announced before it has ended ("Bucket changes").
    guard_until_ = std::max(guard_until_, now + old_ttl);
    ttl_lowered_guard_until_ = std::max(ttl_lowered_guard_until_, now + old_ttl);
  }
  if (auto* p = pending()) {
    if (!p->clean || lowered)
      p->guard_until = std::max(p->guard_until, win_guard());
    // Its lease counts the new TTL from the same send time.
    p->lease_end -= (old_ttl - ttl_) + (lease_margin_ - old_margin);
  }
  if (lowered && leader() != nullptr) {
    // Our lease was counted with the longer TTL: the key may expire before it ends, and then
    // another member could win while we lead. End it now and give the key back (a clean
    // release: we led, and our lease has ended), so that the election goes on under the new TTL.
    const std::uint64_t revision = held_revision();
    lose(now, "the bucket's TTL was lowered");
    const Time guard = guard_until_;
    guard_until_ = now; // the guard above is for others' leases; ours has just ended
    release(now, revision);
    guard_until_ = guard;
  }
  check_lease(now);
}

void Protocol::learn_new_bucket(Time now) {
  // A leader of the old bucket may still run its lease, within one TTL (the one we knew) of now:
  // until its next write meets the new bucket it cannot know ("Bucket changes").
  bucket_changed_at_ = now;
  bucket_guard_until_ = std::max(bucket_guard_until_, now + ttl_);
}

void Protocol::forget_key(Time now, const char* why) {
  // Revisions restart in a bucket made anew: what we knew of the key (and our own revisions)
  // belongs to the old one.
  debugf("{}: forgetting what was known of the key", why);
  learn_new_bucket(now);
  key_ = {};
  own_revision_ = 0;
  watch_revision_ = watch_expected_revision_ = 0;
  watch_deadline_ = kNever;
  if (leader() != nullptr) {
    lose(now, why);
  } else if (pending() != nullptr) {
    become_candidate(now);
  }
  emit(RecreateWatch{});
}

} // namespace kvelect::core
