// SPDX-License-Identifier: Apache-2.0
// The protocol core's changes of role and its reports (lib/core/protocol.hpp): winning, losing,
// failing, and what the user's callbacks are told. docs/protocol.md gives the reasons.
#include "protocol.hpp"
#include "rules.hpp"

#include <fmt/format.h>

#include <utility>

namespace kvelect::core {

using namespace rules;

// ---------------------------------------------------------------------------------------------
// Transitions

void Protocol::become_leader(Time now, Pending won) {
  vacancy_losses_ = 0;
  // OnWon never fires for a lease that has already ended (a stalled process, a reply slower
  // than TTL − margin): give the key back and let the others go first ("Lease").
  if (now >= won.lease_end) {
    become_candidate(now);
    cooldown_until_ = now + ttl_;
    logf(LogLevel::warning,
         "the lease of revision {} ended before the win could be announced: releasing it",
         won.revision);
    release(now, won.revision);
    return;
  }
  Leader l;
  l.revision = won.revision;
  l.token = won.token;
  l.lease_end = won.lease_end;
  l.next_renewal = won.next_renewal;
  l.retry_at = won.retry_at;
  l.renew_wanted = won.renew_wanted;
  l.term_end = params_.term_limit > Duration::zero() ? now + params_.term_limit : kNever;
  // The bucket's TTL was confirmed before this win; it is read again once per renewal period: a
  // lower TTL would let the key expire before our lease ends ("Bucket changes").
  l.next_bucket_check = now + renew_period_;
  if constexpr (kMutant == 3)
    mutant_stale_deadline_ = l.next_renewal;
  role_ = l;
  failed_campaigns_ = 0;
  ++counters_.wins;
  ++view_.leaderships;
  counters_.last_acquire_time = now - campaign_started_;
  publish();
  logf(LogLevel::info, "won election '{}' with token {}", params_.key, l.token);
  emit(CallOnWon{l.token});
  set_leader(params_.name);
}

void Protocol::become_candidate(Time now) {
  remember_lease_end();
  Candidate c;
  c.expiry_retry = kExpiryRetryFirst;
  c.next_campaign = now + candidate_wait();
  role_ = c;
}

void Protocol::remember_lease_end() noexcept {
  if (const auto* l = std::get_if<Leader>(&role_))
    held_lease_end_ = l->lease_end;
  else if (const auto* p = std::get_if<Pending>(&role_))
    held_lease_end_ = p->lease_end;
}

void Protocol::lose(Time now, const std::string& reason) {
  if (leader() == nullptr)
    return;
  become_candidate(now);
  campaign_started_ = now;
  ++counters_.losses;
  publish();
  logf(LogLevel::info, "lost leadership of '{}': {}", params_.key, reason);
  // OnLost fires even while stopping: stop() promises it exactly once when leading.
  emit(CallOnLost{reason});
  if (phase_ == Phase::running)
    set_leader(std::nullopt);
}

void Protocol::fail(const Error& error) {
  logf(LogLevel::error, "fatal: {}", error.what());
  counters_.last_error = error.what();
  emit(CallOnError{error});
  if (leader() != nullptr)
    lose(Time{}, error.what());
  role_ = Idle{};
  in_flight_.reset();
  phase_ = Phase::finished;
  publish();
}

void Protocol::report(Outcome outcome, Errc code, const std::string& message, const char* what) {
  (void)outcome;
  std::string text = fmt::format("{} failed: {}", what, message);
  ++counters_.failed_requests;
  counters_.last_error = text;
  logf(LogLevel::warning, "{}", text);
  emit(CallOnError{Error(code == Errc::ok ? Errc::request_failed : code, text)});
}

void Protocol::set_leader(std::optional<std::string> leader) {
  if (leader_reported_ && reported_leader_ == leader)
    return;
  leader_reported_ = true;
  reported_leader_ = leader;
  view_.leader = leader;
  if (phase_ != Phase::running)
    return;
  emit(CallOnNewLeader{std::move(leader)});
}

} // namespace kvelect::core
