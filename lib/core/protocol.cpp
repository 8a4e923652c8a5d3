// SPDX-License-Identifier: Apache-2.0
// The election protocol's decisions (lib/core/protocol.hpp). docs/protocol.md gives the reason
// for every timing rule; the section names below are its headings.
#include "protocol.hpp"
#include "rules.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace kvelect::core {

using namespace std::chrono_literals;
using namespace rules;

Protocol::Protocol(Params params)
    : params_(std::move(params)), rng_(params_.seed), ttl_(params_.bucket.ttl),
      campaign_interval_(params_.campaign_interval), bucket_(params_.bucket) {
  recompute_timings();
  view_.ttl = ttl_;
  view_.campaign_interval = campaign_interval_;
}

void Protocol::recompute_timings() {
  // The lease margin absorbs the leader's own delay in acting on its deadline and the drift
  // between its clock and the server's ("Lease").
  lease_margin_ = std::clamp<Duration>(ttl_ / 10, 20ms, 500ms);
  if (campaign_interval_ <= Duration::zero())
    campaign_interval_ = std::max<Duration>(ttl_ * 3 / 4, 1ms);
  // Renew at the campaign interval, but early enough to leave time for retries inside the
  // lease; never more often than every TTL/4 ("Renewal").
  renew_period_ =
      std::max<Duration>(ttl_ / 4, std::min<Duration>({campaign_interval_, ttl_ * 2 / 3,
                                                       ttl_ - lease_margin_ - kRenewalWindow}));
}

std::uint64_t Protocol::random_below(std::uint64_t bound) {
  if (bound == 0)
    return 0;
  return std::uniform_int_distribution<std::uint64_t>(0, bound - 1)(rng_);
}

std::uint64_t Protocol::held_revision() const noexcept {
  if (const auto* p = std::get_if<Pending>(&role_))
    return p->revision;
  if (const auto* l = std::get_if<Leader>(&role_))
    return l->revision;
  return 0;
}

Output Protocol::take_output() {
  Output output = std::move(out_.front());
  out_.pop_front();
  return output;
}

void Protocol::publish() {
  if (phase_ != Phase::running || params_.observe_only) {
    view_.state = State::Unknown;
  } else {
    view_.state = leader() != nullptr ? State::Leader : State::Candidate;
  }
  if (const auto* l = leader()) {
    view_.leading = true;
    view_.lease_end = l->lease_end;
    view_.token = l->token;
  } else {
    view_.leading = false;
    view_.lease_end = Time{};
    view_.token = 0;
  }
  view_.ttl = ttl_;
  view_.campaign_interval = campaign_interval_;
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

void Protocol::start(Time now) {
  if (running())
    return;
  phase_ = Phase::running;
  key_ = {};
  in_flight_.reset();
  release_wanted_ = 0;
  release_sent_ = false;
  give_up_ = kNever;
  cooldown_until_ = {};
  vacancy_seen_ = guard_until_ = chain_seen_ = {};
  chain_last_revision_ = 0;
  chain_unbroken_ = false;
  observer_read_at_ = kNever;
  observer_retry_ = kExpiryRetryFirst;
  healthy_ = true;
  failed_campaigns_ = vacancy_losses_ = chained_attempts_ = 0;
  own_revision_ = 0;
  last_watch_event_ = now;
  watch_deadline_ = kNever;
  watch_revision_ = watch_expected_revision_ = 0;
  leader_reported_ = false;
  reported_leader_.reset();
  next_probe_ = {};
  bucket_read_wanted_ = false;
  campaign_started_ = now;
  // Start-up splay: members started together do not all write at once.
  start_after_ = now + Duration(static_cast<Duration::rep>(random_below(
                           static_cast<std::uint64_t>(params_.startup_splay.count()) + 1)));
  next_health_ = params_.health_check && !params_.observe_only ? now : kNever;
  if (params_.observe_only) {
    role_ = Idle{};
  } else {
    Candidate c;
    c.next_campaign = start_after_;
    c.expiry_retry = kExpiryRetryFirst;
    role_ = c;
  }
  view_.leader.reset();
  publish();
  if (params_.observe_only)
    logf(LogLevel::info, "observing election '{}': ttl {} ms", params_.key, ms(ttl_));
  else
    logf(LogLevel::info,
         "campaigning as '{}' for '{}': ttl {} ms, interval {} ms, lease margin {} ms",
         params_.name, params_.key, ms(ttl_), ms(campaign_interval_), ms(lease_margin_));
}

void Protocol::stop(Time now) {
  if (phase_ != Phase::running)
    return;
  phase_ = Phase::stopping;
  if (leader() != nullptr) {
    const auto revision = held_revision();
    lose(now, "stopped");
    release_wanted_ = revision;
  } else if (const auto* p = pending(); p != nullptr && now >= win_guard()) {
    release_wanted_ = p->revision; // a pending win whose guard has passed (see release())
  }
  remember_lease_end();
  role_ = Idle{};
  // The release waits for the request in flight and for its own reply, bounded: a server that
  // does not answer costs at most this long ("Release").
  give_up_ = now + std::min<Duration>(ttl_, kReleaseWaitCap);
  if (!params_.release_on_stop || params_.observe_only)
    release_wanted_ = 0;
  publish();
  after_event(now);
}

bool Protocol::resign(Time now) {
  if (phase_ != Phase::running)
    return false;
  check_lease(now);
  const bool led = step_down(now, "resigned");
  after_event(now);
  return led;
}

bool Protocol::step_down(Time now, const std::string& reason) {
  if (auto* p = pending()) {
    // Not announced yet: give the key back quietly.
    release(now, p->revision);
    become_candidate(now);
    cooldown_until_ = now + ttl_;
    return false;
  }
  if (leader() == nullptr)
    return false;
  const auto revision = held_revision();
  lose(now, reason);
  // Others get the first chance: no campaign until another leader is seen or a TTL has passed.
  cooldown_until_ = now + ttl_;
  release(now, revision);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Events

void Protocol::after_event(Time now) {
  if (phase_ == Phase::running) {
    run_timers(now);
    pump_pending(now);
  }
  if (phase_ == Phase::stopping) {
    // Release the key so that a successor takes over at once ("Release"): a revision-checked
    // write, after the request in flight.
    if (now >= give_up_) {
      phase_ = Phase::finished;
    } else if (!in_flight_) {
      if (release_wanted_ != 0 && !release_sent_) {
        release_sent_ = true;
        send_write(now, Purpose::release, std::string(kReleased), std::exchange(release_wanted_, 0),
                   Vacancy::clean);
      } else {
        phase_ = Phase::finished;
      }
    }
    if (phase_ == Phase::finished)
      logf(LogLevel::info, "leaving election '{}'", params_.key);
  }
  publish();
}

void Protocol::on_timer(Time now) {
  if (!running())
    return;
  check_lease(now);
  after_event(now);
}

void Protocol::check_lease(Time now) {
  if (auto* l = leader()) {
    if (now < l->lease_end)
      return;
    lose(now,
         fmt::format("lease ended: no renewal succeeded within {} ms", ms(ttl_ - lease_margin_)));
    // We may still hold the key, but cannot know: a late renewal result will tell.
  } else if (auto* p = pending()) {
    if (now < p->lease_end)
      return;
    logf(LogLevel::warning, "lease ended while waiting out the takeover guard");
    become_candidate(now);
  }
}

void Protocol::on_health(Time now, bool healthy) {
  if (!running())
    return;
  check_lease(now);
  if (healthy != healthy_)
    logf(healthy ? LogLevel::info : LogLevel::warning, "health check: {}",
         healthy ? "healthy" : "unhealthy");
  healthy_ = healthy;
  next_health_ = now + params_.health_interval;
  if (phase_ == Phase::running) {
    if (!healthy_ && holds_key())
      step_down(now, "unhealthy");
    if (healthy_ && candidate() != nullptr)
      maybe_attempt(now, "healthy again");
  }
  after_event(now);
}

void Protocol::run_timers(Time now) {
  if (now >= next_health_ && next_health_ != kNever) {
    next_health_ = kNever; // on_health() sets the next one
    emit(CallHealthCheck{});
  }
  if (auto* p = pending(); p != nullptr && p->ttl_confirmed && now >= p->guard_until) {
    if (p->revision > p->token_floor && !must_renew_before_announcing(*p)) {
      become_leader(now, *p);
    } else if (!in_flight_ && !p->renew_wanted && p->retry_at == kNever) {
      // Renew past the revisions the server gave out twice ("Two histories"), or once after a
      // guard ("Takeover guard"). Only now: the bucket read that confirmed the TTL would have
      // shown a bucket made anew, whose revisions must not be driven up to those of the old one
      // (an old leader's renewal could match). A renewal in flight, wanted or waiting for its
      // retry is left to that.
      p->next_renewal = now;
    }
  }
  if (auto* l = leader(); l != nullptr && now >= l->term_end) {
    l->term_end = kNever;
    step_down(now, "term limit reached");
  }
  if (auto* l = leader(); l != nullptr && now >= l->next_bucket_check) {
    l->next_bucket_check = now + renew_period_;
    bucket_read_wanted_ = true;
  }
  if (auto* l = leader(); l != nullptr && (now >= l->next_renewal || now >= l->retry_at)) {
    l->next_renewal = l->retry_at = kNever;
    renew(now);
  }
  if (auto* p = pending(); p != nullptr && (now >= p->next_renewal || now >= p->retry_at)) {
    p->next_renewal = p->retry_at = kNever;
    renew(now);
  }
  if (auto* c = candidate()) {
    if (now >= c->next_campaign) {
      c->next_campaign = now + candidate_wait();
      ++counters_.candidate_campaigns;
      // A candidate keeps the bucket's TTL fresh, once per campaign: after a change it learns
      // the new TTL within an interval, not first at its next win ("Bucket changes").
      bucket_read_wanted_ = true;
      emit(CallOnCampaign{State::Candidate});
      maybe_attempt(now, "campaign");
    }
  }
  if (auto* c = candidate(); c != nullptr && now >= c->herd_attempt) {
    c->herd_attempt = kNever;
    c->herd_wait_done = true;
    maybe_attempt(now, "vacancy, after the herd wait");
  }
  if (auto* c = candidate(); c != nullptr && now >= c->expiry_attempt) {
    c->expiry_attempt = kNever;
    maybe_attempt(now, "expiry");
  }
  if (auto* c = candidate(); c != nullptr && now >= c->retry_at) {
    c->retry_at = kNever;
    maybe_attempt(now, "retry");
  }
  if (params_.observe_only && now >= observer_read_at_) {
    // An observer cannot see an expiry in the watch (nats-server 2.9 announces none): it reads
    // the key when the holder's value should have expired.
    if (in_flight_) {
      observer_read_at_ = now + kExpiryRetryFirst;
    } else {
      observer_read_at_ = kNever;
      send_read(now, Purpose::acquire, 0, Vacancy::guarded, false);
    }
  }
  if (now >= watch_deadline_) {
    watch_deadline_ = kNever;
    if (watch_revision_ < watch_expected_revision_) {
      logf(LogLevel::warning, "watch is behind (saw revision {}, expected {}): recreating it",
           watch_revision_, watch_expected_revision_);
      emit(RecreateWatch{});
    }
  }
  if (now >= last_watch_event_ + 2 * ttl_) {
    logf(LogLevel::warning, "watch silent for two TTLs: recreating it");
    last_watch_event_ = now;
    emit(RecreateWatch{});
  }
}

Time Protocol::next_wake() const {
  if (phase_ == Phase::stopping)
    return give_up_;
  if (phase_ != Phase::running)
    return kNever;
  Time next = std::min({next_health_, last_watch_event_ + 2 * ttl_});
  std::visit(
      [&](const auto& role) {
        using R = std::decay_t<decltype(role)>;
        if constexpr (std::is_same_v<R, Candidate>) {
          next = std::min({next, role.next_campaign, role.expiry_attempt, role.herd_attempt,
                           role.retry_at, watch_deadline_});
          if constexpr (kMutant == 3)
            next = std::min(next, mutant_stale_deadline_);
        } else if constexpr (std::is_same_v<R, Pending>) {
          // A member holding the key checks its watch whenever it runs anyway, at the latest at
          // its next renewal ("Watching the key").
          // The bucket read goes out only when no request is in flight: until then, that
          // request's result wakes us, not the clock.
          const Time confirm = in_flight_ ? kNever : role.confirm_at;
          // Renewing past a token floor: each renewal's result wakes us for the next one.
          // Renewing before the announcement (past a token floor, or after a guard): the
          // renewal's result, or its retry, wakes us for the next step, not the guard's end.
          const bool renewing =
              (role.revision <= role.token_floor || must_renew_before_announcing(role)) &&
              (in_flight_ || role.renew_wanted || role.retry_at != kNever);
          const Time announce = renewing ? kNever : role.guard_until;
          next = std::min({next, role.lease_end, role.next_renewal, role.retry_at,
                           role.ttl_confirmed ? announce : confirm});
        } else if constexpr (std::is_same_v<R, Leader>) {
          next = std::min({next, role.lease_end, role.next_renewal, role.retry_at, role.term_end,
                           role.next_bucket_check});
        } else {
          next = std::min(next, watch_deadline_);
        }
      },
      role_);
  next = std::min(next, observer_read_at_);
  if (bucket_read_wanted_ && !in_flight_)
    next = std::min(next, next_probe_);
  return next;
}

// ---------------------------------------------------------------------------------------------
// Requests

std::uint64_t Protocol::send_write(Time now, Purpose purpose, std::string value,
                                   std::uint64_t expected, Vacancy vacancy) {
  InFlight request;
  request.id = next_id_++;
  request.purpose = purpose;
  request.sent = now;
  request.expected = expected;
  request.vacancy = vacancy;
  in_flight_ = request;
  if (purpose == Purpose::acquire)
    ++counters_.create_attempts;
  emit(SendWrite{request.id, std::move(value), expected});
  return request.id;
}

void Protocol::send_read(Time now, Purpose origin, std::uint64_t hint, Vacancy vacancy,
                         bool after_unknown) {
  InFlight request;
  request.id = next_id_++;
  request.purpose = Purpose::read;
  request.origin = origin;
  request.sent = now;
  request.expected = hint;
  request.vacancy = vacancy;
  request.after_unknown = after_unknown;
  in_flight_ = request;
  emit(SendRead{request.id});
}

void Protocol::send_bucket_read(Time now) {
  InFlight request;
  request.id = next_id_++;
  request.purpose = Purpose::bucket;
  request.sent = now;
  in_flight_ = request;
  emit(SendBucketRead{request.id});
}

void Protocol::pump_pending(Time now) {
  if (phase_ != Phase::running || in_flight_)
    return;
  // Work that waited for the request in flight, most urgent first.
  if (release_wanted_ != 0) {
    send_write(now, Purpose::release, std::string(kReleased), std::exchange(release_wanted_, 0),
               Vacancy::clean);
    return;
  }
  if (auto* l = leader(); l != nullptr && l->renew_wanted) {
    l->renew_wanted = false;
    renew(now);
    return;
  }
  if (auto* p = pending(); p != nullptr && !p->ttl_confirmed && now >= p->confirm_at) {
    // Before a win is announced, the bucket's TTL is read: the lease was counted with the TTL
    // we knew, and a lower one would let the key expire first ("Bucket changes").
    p->confirm_at = kNever;
    send_bucket_read(now);
    return;
  }
  if (auto* p = pending(); p != nullptr && p->renew_wanted) {
    p->renew_wanted = false;
    renew(now);
    return;
  }
  if (bucket_read_wanted_ && now >= next_probe_) {
    bucket_read_wanted_ = false;
    next_probe_ = now + kProbeGap;
    send_bucket_read(now);
    return;
  }
  if (auto* c = candidate(); c != nullptr && c->attempt_wanted) {
    c->attempt_wanted = false;
    maybe_attempt(now, "deferred");
  }
}

Duration Protocol::candidate_wait() const {
  if (params_.backoff)
    return std::max<Duration>(params_.backoff(failed_campaigns_), 1ms);
  return campaign_interval_;
}

void Protocol::maybe_attempt(Time now, const char* reason) {
  auto* c = candidate();
  if (c == nullptr || phase_ != Phase::running)
    return;
  if (now < start_after_ || now < cooldown_until_ || !healthy_)
    return;
  if (in_flight_) {
    c->attempt_wanted = true;
    return;
  }
  using Kind = KeyView::Kind;
  const bool vacant = key_.kind == Kind::released || key_.kind == Kind::tombstone ||
                      key_.kind == Kind::absent || key_.kind == Kind::expired;
  if (vacant && vacancy_losses_ > 0 && !c->herd_wait_done) {
    if (c->herd_attempt != kNever)
      return; // already waiting
    // Lost the last vacancy race: many members likely want this one too. Let a random few
    // write first; the watch shows their win before most of us have written ("Herd control").
    const Duration window = std::min<Duration>(
        kHerdWindowCap, kHerdWindowFirst * (1 << std::min(vacancy_losses_ - 1, 5)));
    c->herd_attempt = now + Duration(static_cast<Duration::rep>(
                                random_below(static_cast<std::uint64_t>(window.count()) + 1)));
    return;
  }
  c->herd_wait_done = false;
  switch (key_.kind) {
  case Kind::released:
    debugf("{}: key released at revision {}, taking it", reason, key_.revision);
    send_write(now, Purpose::acquire, params_.name, key_.revision, Vacancy::clean);
    return;
  case Kind::expired:
    // The marker is a message: the write expects its revision. No guard but the wait after a
    // lowered TTL ("Expiry markers").
    debugf("{}: key expired at revision {} (marker), taking it", reason, key_.revision);
    send_write(now, Purpose::acquire, params_.name, key_.revision, Vacancy::clean);
    return;
  case Kind::tombstone:
    debugf("{}: key deleted at revision {}, taking it", reason, key_.revision);
    send_write(now, Purpose::acquire, params_.name, key_.revision, Vacancy::guarded);
    return;
  case Kind::absent:
  case Kind::unknown:
    debugf("{}: key {}, creating it", reason, key_.kind == Kind::absent ? "absent" : "unknown");
    send_write(now, Purpose::acquire, params_.name, 0, Vacancy::guarded);
    return;
  case Kind::held:
  case Kind::evicting: {
    // Held: the value expires one TTL after it was written, and it was written before we first
    // saw it. Evicting: the holder's lease ends within one TTL of the mark ("Eviction").
    const Time due = key_.observed_at + ttl_ + kExpiryMargin;
    if (now < due) {
      c->expiry_attempt = std::min(c->expiry_attempt, due);
      return;
    }
    const std::uint64_t expected = key_.kind == Kind::held ? 0 : key_.revision;
    debugf("{}: key held by '{}' should have expired, taking it", reason, key_.value);
    send_write(now, Purpose::acquire, params_.name, expected, Vacancy::guarded);
    return;
  }
  }
}

void Protocol::renew(Time now) {
  if (in_flight_) {
    if (auto* l = leader())
      l->renew_wanted = true;
    else if (auto* p = pending())
      p->renew_wanted = true;
    return;
  }
  if (leader() != nullptr) {
    ++counters_.leader_campaigns;
    emit(CallOnCampaign{State::Leader});
  }
  send_write(now, Purpose::renew, params_.name, held_revision(), Vacancy::reclaim);
}

void Protocol::release(Time now, std::uint64_t revision) {
  if (revision == 0)
    return;
  if (now < win_guard()) {
    // Another member's lease may still run (we won over a delete or a mark and have not waited
    // it out): a release would let the others win at once, without that wait. Leave the key to
    // expire instead ("Release").
    logf(LogLevel::info, "not releasing revision {}: a previous holder's lease may still run",
         revision);
    return;
  }
  // Revision-checked: if anyone wrote since `revision`, it fails and touches nothing
  // ("Release"). Sent now, or once the request in flight has returned.
  release_wanted_ = revision;
}

void Protocol::expect_watch_to_reach(std::uint64_t revision, Time now) {
  if (revision > watch_revision_ && revision > watch_expected_revision_) {
    watch_expected_revision_ = revision;
    if (watch_deadline_ == kNever)
      watch_deadline_ = now + kWatchCatchUp;
  }
}

} // namespace kvelect::core
