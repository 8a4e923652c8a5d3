// SPDX-License-Identifier: Apache-2.0
// What `kvelect watch` makes of the bucket's key updates, kept apart from cnats so that it can
// be unit-tested: each put, delete or purge of an election key becomes an activity event, and
// the TTL passing since a key's last write becomes "expired" (nats-server 2.9 removes expired
// messages silently, so a watcher has to infer expiry).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kvelect::cli {

class WatchTracker {
public:
  using Time = std::chrono::system_clock::time_point;

  enum class Op { put, del, purge };

  /// One entry from the KV watcher.
  struct Update {
    std::string key;
    Op op = Op::put;
    std::string value;
    std::uint64_t revision = 0;
    Time time{};          ///< when it was written (initial values) or received (live updates)
    bool initial = false; ///< part of the watcher's initial snapshot
  };

  enum class Kind {
    current,  ///< initial snapshot: the key's value when the watch started
    won,      ///< a member took the key (new leader)
    renewed,  ///< the leader rewrote its own value
    released, ///< the leader released the key ("kvelect:released")
    evicted,  ///< the leader was marked for eviction ("kvelect:evict")
    deleted,  ///< the key was deleted
    purged,   ///< the key was purged
    expired,  ///< no write for one TTL: the value has expired on the server
  };

  struct Activity {
    Time time{};
    std::string election;
    Kind kind = Kind::current;
    /// The member the event is about: the winner, the renewing leader, the leader that was
    /// evicted, released, deleted or expired (nullopt: none known).
    std::optional<std::string> leader;
    std::optional<std::string> previous; ///< won: the leader before, if any
    std::uint64_t revision = 0;          ///< 0 for expired
    std::string value;                   ///< current: the raw value (may be a marker)
  };

  explicit WatchTracker(std::chrono::milliseconds ttl) : ttl_(ttl) {}

  /// The activity an update stands for (an "expired" may come first, when the update arrives
  /// after the previous value's TTL ran out and before on_tick noticed).
  std::vector<Activity> on_update(const Update& update);
  /// "expired" for every key whose value has outlived the TTL by `now`.
  std::vector<Activity> on_tick(Time now);
  /// When the next value expires; nullopt when none is pending.
  std::optional<Time> next_expiry() const;

private:
  struct KeyState {
    std::optional<std::string> holder;      ///< the member holding the key, if one does
    std::optional<std::string> last_member; ///< the last member seen holding it
    std::string value;                      ///< last raw value
    Time written{};
    bool live = false; ///< a value that will expire (not a delete/purge marker)
  };
  std::chrono::milliseconds ttl_;
  std::map<std::string, KeyState> keys_;
};

/// "current", "won", "renewed", "released", "evicted", "deleted", "purged", "expired".
const char* to_string(WatchTracker::Kind kind) noexcept;

/// The protocol markers kvelect writes instead of a member name.
inline constexpr std::string_view kReleasedMarker = "kvelect:released";
inline constexpr std::string_view kEvictMarker = "kvelect:evict";

} // namespace kvelect::cli
