// SPDX-License-Identifier: Apache-2.0
#include "watch_tracker.hpp"

namespace kvelect::cli {
namespace {

bool is_marker(const std::string& value) { return value.rfind("kvelect:", 0) == 0; }

} // namespace

const char* to_string(WatchTracker::Kind kind) noexcept {
  using Kind = WatchTracker::Kind;
  switch (kind) {
  case Kind::current: return "current";
  case Kind::won: return "won";
  case Kind::renewed: return "renewed";
  case Kind::released: return "released";
  case Kind::evicted: return "evicted";
  case Kind::deleted: return "deleted";
  case Kind::purged: return "purged";
  case Kind::expired: return "expired";
  }
  return "?";
}

std::vector<WatchTracker::Activity> WatchTracker::on_update(const Update& u) {
  std::vector<Activity> out;
  KeyState& key = keys_[u.key];
  if (!u.initial && key.live && ttl_.count() > 0 && u.time >= key.written + ttl_) {
    // The previous value expired before this write; on_tick has not said so yet.
    if (key.holder)
      out.push_back({key.written + ttl_, u.key, Kind::expired, key.holder, std::nullopt, 0, {}});
    key.holder.reset();
    key.live = false;
  }
  Activity a;
  a.time = u.time;
  a.election = u.key;
  a.revision = u.revision;
  a.value = u.value;
  const std::optional<std::string> before = key.holder;
  if (u.op != Op::put && u.initial) {
    // A tombstone in the initial snapshot is history, not activity.
    key.holder.reset();
    key.live = false;
    key.value.clear();
    key.written = u.time;
    return out;
  }
  if (u.op != Op::put) {
    a.kind = u.op == Op::del ? Kind::deleted : Kind::purged;
    a.leader = before;
    key.holder.reset();
    key.live = false;
  } else {
    key.live = true;
    if (u.initial) {
      a.kind = Kind::current;
      key.holder = is_marker(u.value) ? std::nullopt : std::optional<std::string>(u.value);
      a.leader = key.holder;
    } else if (u.value == kReleasedMarker) {
      // After an eviction mark, the evicted leader releases the key: name it.
      a.kind = Kind::released;
      a.leader = before ? before : (key.value == kEvictMarker ? key.last_member : std::nullopt);
      key.holder.reset();
    } else if (u.value == kEvictMarker) {
      a.kind = Kind::evicted;
      a.leader = before;
      key.holder.reset();
    } else if (is_marker(u.value)) {
      a.kind = Kind::current; // a marker of a newer protocol: report the raw value
      key.holder.reset();
    } else if (before && *before == u.value) {
      a.kind = Kind::renewed;
      a.leader = u.value;
    } else {
      a.kind = Kind::won;
      a.leader = u.value;
      a.previous = before;
      key.holder = u.value;
    }
  }
  if (key.holder)
    key.last_member = key.holder;
  key.value = u.value;
  key.written = u.time;
  out.push_back(std::move(a));
  return out;
}

std::vector<WatchTracker::Activity> WatchTracker::on_tick(Time now) {
  std::vector<Activity> out;
  for (auto& [name, key] : keys_) {
    if (!key.live || ttl_.count() <= 0 || now < key.written + ttl_)
      continue;
    // Markers expire too, but only a member's value expiring is election activity.
    if (key.holder)
      out.push_back({key.written + ttl_, name, Kind::expired, key.holder, std::nullopt, 0, {}});
    key.holder.reset();
    key.live = false;
  }
  return out;
}

std::optional<WatchTracker::Time> WatchTracker::next_expiry() const {
  std::optional<Time> next;
  if (ttl_.count() <= 0)
    return next;
  for (const auto& [name, key] : keys_)
    if (key.live && (!next || key.written + ttl_ < *next))
      next = key.written + ttl_;
  return next;
}

} // namespace kvelect::cli
