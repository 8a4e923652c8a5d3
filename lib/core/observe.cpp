// SPDX-License-Identifier: Apache-2.0
// The protocol core's view of the key (lib/core/protocol.hpp): watch events and what each entry
// of the key tells a member, whether it came from the watch or a read. docs/protocol.md gives
// the reason for every rule.
#include "protocol.hpp"
#include "rules.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace kvelect::core {

using namespace rules;

// ---------------------------------------------------------------------------------------------
// Watch

void Protocol::on_watch_entry(Time now, const Entry& entry) {
  if (!running())
    return;
  last_watch_event_ = now;
  if (phase_ == Phase::running) {
    check_lease(now);
    observe(now, entry, true);
  }
  after_event(now);
}

void Protocol::on_watch_ready(Time now) {
  if (!running())
    return;
  last_watch_event_ = now;
  if (phase_ == Phase::running) {
    check_lease(now);
    if (key_.kind == KeyView::Kind::unknown)
      observe(now, Entry{}, true); // no entry: the key is absent
  }
  after_event(now);
}

void Protocol::on_watch_failed(Time now, const std::string& message) {
  if (!running())
    return;
  last_watch_event_ = now;
  logf(LogLevel::warning, "{}", message);
  counters_.last_error = message;
  if (phase_ == Phase::running) {
    check_lease(now);
    bucket_read_wanted_ = true; // a deleted bucket is fatal; the probe tells
  }
  after_event(now);
}

bool Protocol::contradicts_key(const Entry& entry) const {
  using Kind = KeyView::Kind;
  if (entry.op == Op::absent || entry.revision == 0 || entry.revision != key_.revision ||
      key_.kind == Kind::unknown || key_.kind == Kind::absent || key_.inferred)
    return false;
  // An empty value may be a server marker that one path recognised and another did not (its
  // message gone, or read without a JetStream context: lib/markers.hpp). No member writes one.
  const bool key_is_marker = key_.kind == Kind::tombstone || key_.kind == Kind::expired ||
                             (key_.kind == Kind::held && key_.value.empty());
  const bool entry_is_marker = entry.op != Op::put || entry.value.empty();
  if (key_is_marker && entry_is_marker)
    return false;
  switch (entry.op) {
  case Op::put:
    return !(key_.kind == Kind::held || key_.kind == Kind::released ||
             key_.kind == Kind::evicting) ||
           entry.value != key_.value;
  case Op::del:
  case Op::purge: return key_.kind != Kind::tombstone;
  case Op::expired: return key_.kind != Kind::expired;
  case Op::absent: break;
  }
  return false;
}

bool Protocol::contradicts_our_write(std::uint64_t revision) const {
  Entry ours;
  ours.op = Op::put;
  ours.value = params_.name;
  ours.revision = revision;
  return contradicts_key(ours);
}

void Protocol::observe(Time now, const Entry& entry, bool from_watch, bool inferred) {
  using Kind = KeyView::Kind;
  if (from_watch) {
    watch_revision_ = std::max(watch_revision_, entry.revision);
    if (watch_revision_ >= watch_expected_revision_)
      watch_deadline_ = kNever;
  }
  // Entries older than what we know are replays (a recreated watcher, a stale read). A bucket
  // made anew is recognised by the results of writes, which only its stream leader gives.
  if (entry.op != Op::absent && entry.revision != 0 && entry.revision < key_.revision)
    return;
  if (!inferred && contradicts_key(entry)) {
    // One revision with two values: the server answered from two histories (a deposed stream
    // leader's stale log, acknowledged writes lost in a fail-over). What we knew of the key may
    // be the lost one: forget it, stand down if we hold it, and let the new watch tell
    // ("Two histories").
    logf(LogLevel::warning, "revision {} of the key seen with two values: two histories",
         entry.revision);
    forget_key(now, "the server gave one revision to two writes");
    return;
  }
  if (entry.op != Op::absent)
    highest_revision_ = std::max(highest_revision_, entry.revision);

  const bool names_us = !params_.observe_only && entry.op == Op::put && entry.value == params_.name;
  // An entry naming us is ours if it is a revision we wrote, or may be if a write of ours is on
  // its way (its echo can come before its reply). Anything else naming us was written by
  // another process with our name ("Same-name members").
  const bool maybe_ours = names_us && (entry.revision <= own_revision_ || writing());

  // The member holding the key watches it: any write that is not ours ends its hold at once.
  // Entries at or below our latest revision are older than our own write: stale, not foreign.
  const std::uint64_t held = held_revision();
  const bool foreign =
      holds_key() && !maybe_ours && (entry.op == Op::absent ? !from_watch : entry.revision > held);
  if (foreign) {
    const bool evicted = entry.op == Op::put && entry.value == kEvict;
    const std::string reason = evicted ? "evicted"
                               : entry.op == Op::put
                                   ? fmt::format("key overwritten by '{}'", entry.value)
                               : entry.op == Op::expired ? std::string("key expired on the server")
                                                         : std::string("key deleted");
    if (leader() != nullptr) {
      lose(now, reason);
      if (evicted) {
        // Hand the key over at once: a revision-checked release of the eviction mark.
        cooldown_until_ = now + ttl_;
        release(now, entry.revision);
      }
    } else {
      become_candidate(now);
      logf(LogLevel::info, "lost the pending win: {}", reason);
    }
  }

  const bool seen_before =
      key_.kind != Kind::unknown && entry.op != Op::absent && entry.revision == key_.revision;
  if (!seen_before)
    key_.observed_at = now; // the first time we see this revision: expiry counts from it
  key_.revision = entry.revision;
  key_.value = entry.value;
  key_.inferred = inferred;
  switch (entry.op) {
  case Op::absent: key_.kind = Kind::absent; break;
  case Op::del:
  case Op::purge: key_.kind = Kind::tombstone; break;
  case Op::expired: key_.kind = Kind::expired; break;
  case Op::put:
    if (entry.value == kReleased)
      key_.kind = Kind::released;
    else if (entry.value == kEvict)
      key_.kind = Kind::evicting;
    else
      key_.kind = Kind::held;
    break;
  }

  if (!seen_before && entry.op != Op::absent) {
    // The member chain: a write naming a member starts it; it stays unbroken while every next
    // revision of the bucket we see is on this key.
    // Only the watch shows every revision in order; a read shows the last one, or (after a
    // lost race) a vacancy inferred from a revision whose entry we never saw.
    if (member_of(entry)) {
      chain_seen_ = now;
      chain_unbroken_ = true;
    } else if (!from_watch || entry.revision != chain_last_revision_ + 1) {
      chain_unbroken_ = false;
    }
    chain_last_revision_ = entry.revision;
  }
  // A delete, a purge or an eviction mark may have removed a holder whose lease still runs. Its
  // last renewal came before the mark, so its lease ends within one TTL of when we first saw
  // the mark; if we saw every revision since the last write that named a member, that write was
  // its last renewal, and its lease ends within one TTL of when we saw it ("Takeover guard").
  if (!seen_before && (key_.kind == Kind::tombstone || key_.kind == Kind::evicting)) {
    vacancy_seen_ = chain_unbroken_ ? chain_seen_ : now;
    guard_until_ = std::max(guard_until_, vacancy_seen_ + ttl_);
  }
  // A clean release is written only by a member that led, after its OnLost, and only when no
  // other lease could still run: nothing is left to wait for.
  // An expiry marker: MaxAge removed the key's last message, so every write of it is at least
  // one TTL old on the server's clock and every lease counted from one has ended; a renewal
  // still on its way expects an older revision and fails against the marker ("Expiry
  // markers"). One TTL is the current one: after a lowered TTL, a lease counted with the old
  // one may run on, and the wait for it stays ("A changed TTL").
  if (!seen_before && key_.kind == Kind::released)
    guard_until_ = std::min(guard_until_, now);
  if (!seen_before && key_.kind == Kind::expired)
    guard_until_ = std::max(std::min(guard_until_, now), ttl_lowered_guard_until_);

  const auto holder = member_of(entry);
  if (holder && *holder != params_.name)
    cooldown_until_ = {}; // someone else leads: we are an ordinary candidate again

  // Who leads, as far as we can see. A member names itself only while it leads: its own name
  // seen at any other time is a write whose lease it does not hold ("Reporting the leader").
  if (names_us)
    set_leader(leader() != nullptr ? std::optional<std::string>(params_.name) : std::nullopt);
  else
    set_leader(holder);

  if (key_.kind == Kind::held || key_.kind == Kind::evicting) {
    // The value expires one TTL after we first saw it. A revision seen before keeps the timer
    // it has (and its back-off): re-scheduling it from the first sighting would fire it at once,
    // again and again, while a value outlives our TTL.
    const Time due = key_.observed_at + ttl_ + kExpiryMargin;
    if (seen_before) {
      // nothing to schedule
    } else if (auto* c = candidate()) {
      c->expiry_attempt = due;
      c->expiry_retry = kExpiryRetryFirst;
    } else if (params_.observe_only) {
      observer_read_at_ = due;
      observer_retry_ = kExpiryRetryFirst;
    }
    return;
  }
  if (params_.observe_only)
    observer_read_at_ = kNever;
  // A vacancy: campaign now.
  if (candidate() != nullptr)
    maybe_attempt(now, from_watch ? "vacancy seen" : "vacancy read");
}

} // namespace kvelect::core
