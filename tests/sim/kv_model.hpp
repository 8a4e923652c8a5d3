// SPDX-License-Identifier: Apache-2.0
// A deterministic model of ONE JetStream KV bucket (history 1) as nats-server 2.9 ... 2.12
// behaves, for the simulator (tests/sim/world.hpp) and checked against a real server by
// tests/sim/differential_test.cpp. Every call takes the server's clock reading: the model owns no
// clock, so the world decides how the server's time relates to the members' clocks.
//
// What it models, and why each point matters to the election protocol:
// * one stream sequence for the whole bucket; a key's revision is the sequence of its message,
//   so revisions of different keys interleave and a fencing token is global to the bucket;
// * history 1: each key holds at most one message, a value or a delete/purge marker. A marker IS
//   a message, with a revision of its own: "expected last subject sequence 0" fails over it with
//   10071 "wrong last sequence: N", which is how a candidate learns a tombstone's revision;
// * MaxAge expiry on the server's clock, by a timer that may run late (`expiry_lag`); nothing is
//   announced when a message expires (nats-server 2.9), it is simply gone; the sequence counter
//   does not go back. A MaxAge change applies at once to the messages already stored;
// * optionally (set_markers: a bucket with limit markers, nats-server 2.11 and later) MaxAge
//   leaves an expiry marker in the expired message's place instead: a message of its own with a
//   new sequence, announced to watchers, that goes after the marker TTL without a trace. The
//   world asks when the next expiry is due (next_expiry) and runs tick() then, so the marker is
//   placed on time rather than at the next request;
// * a deleted bucket: writes find no responders, gets are never answered (they time out), a
//   stream info request says "not found"; a re-created bucket restarts its sequence at 1 and has
//   a new creation time;
// * a memory bucket does not survive a server restart at all: the standalone server forgets the
//   stream with its messages, so it is a deleted bucket until someone creates it again.
#pragma once

#include "core/protocol.hpp"
#include "kv.hpp"

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <string_view>

namespace kvelect::sim {

using Nanos = std::int64_t;
inline constexpr Nanos kForever = std::numeric_limits<Nanos>::max();
inline constexpr Nanos kMs = 1'000'000;
inline constexpr Nanos kSec = 1'000'000'000;

using detail::Entry;
using detail::Op;
using detail::Outcome;
using detail::ReadResult;
using detail::WriteResult;

// One stored message of a key: a value (put), a delete/purge marker (del, purge) or the
// server's expiry marker (expired).
struct Message {
  Op op = Op::put;
  std::string value;
  std::uint64_t seq = 0; // the stream sequence: the key's revision
  Nanos stamp = 0;       // server time at which the server stored it
};

class KvModel {
public:
  KvModel(Nanos max_age, Nanos created_ns, bool memory_storage = true);

  // Writes. `expected` is JetStream's "expected last subject sequence": the sequence of the
  // key's last message, markers included; 0 means "the key has no message at all".
  WriteResult update(const std::string& key, std::string_view value, std::uint64_t expected,
                     Nanos now);
  // kvStore_Create: update expecting no message; over a delete/purge marker it tries once more
  // expecting the marker's revision (nats.c src/kv.c), so a create succeeds over a tombstone.
  WriteResult create(const std::string& key, std::string_view value, Nanos now);
  WriteResult put(const std::string& key, std::string_view value, Nanos now); // unconditional
  WriteResult erase(const std::string& key, Nanos now);                       // kvStore_Delete
  WriteResult purge(const std::string& key, Nanos now);                       // kvStore_Purge
  // kvStore_Get: the live value; op absent for no message, an expired one or a marker.
  ReadResult get(const std::string& key, Nanos now);
  // Stream info: MaxAge and creation time, or fatal once the bucket is deleted.
  core::BucketResult info(Nanos now);

  // Operator and server events.
  void set_max_age(Nanos max_age, Nanos now); // js_UpdateStream: applies at once
  void set_expiry_lag(Nanos lag) { expiry_lag_ = lag; }
  // How a get of a deleted bucket fails: nats-server 2.9 never answers it (a timeout: unknown);
  // 2.10 and later answer "no responders" (retryable). Both are modelled; the differential test
  // accepts either, whichever server it runs against.
  void set_deleted_get_no_responders(bool on) { deleted_get_no_responders_ = on; }
  // Limit markers (subject_delete_marker_ttl): 0 for none.
  void set_markers(Nanos marker_ttl) { marker_ttl_ = marker_ttl; }
  [[nodiscard]] bool markers() const noexcept { return marker_ttl_ > 0; }
  // Server time at which the next stored message expires (kForever: none); tick() then.
  [[nodiscard]] Nanos next_expiry() const;
  void tick(Nanos now) { expire(now); }
  void delete_bucket();
  void create_bucket(Nanos max_age, Nanos created_ns);
  void restart_server(Nanos now); // memory storage: the bucket is gone (see above)

  // Inspection (the world's watches and the invariant checker). last() includes markers.
  const Message* last(const std::string& key, Nanos now);
  [[nodiscard]] bool exists() const noexcept { return exists_; }
  [[nodiscard]] Nanos max_age() const noexcept { return max_age_; }
  [[nodiscard]] Nanos created() const noexcept { return created_ns_; }
  [[nodiscard]] Nanos expiry_lag() const noexcept { return expiry_lag_; }
  [[nodiscard]] std::uint64_t last_seq() const noexcept { return last_seq_; }
  // Changes whenever stored messages vanish without a marker and the sequence restarts
  // (re-created bucket, memory restart): fencing tokens only compare within one epoch.
  [[nodiscard]] std::uint64_t epoch() const noexcept { return epoch_; }

  // Called for every message stored, expiry markers included (plain expiries announce nothing).
  std::function<void(const std::string& key, const Message& message)> on_message;

private:
  void expire(Nanos now);
  [[nodiscard]] Nanos expires_at(const Message& message) const;
  WriteResult store(const std::string& key, Op op, std::string_view value, Nanos now);
  static WriteResult no_responders();

  Nanos max_age_;
  Nanos created_ns_;
  bool memory_;
  bool exists_ = true;
  Nanos expiry_lag_ = 0;
  bool deleted_get_no_responders_ = false;
  Nanos marker_ttl_ = 0;
  std::uint64_t last_seq_ = 0;
  std::uint64_t epoch_ = 0;
  std::map<std::string, Message> keys_;
};

// The text nats-server sends with error 10071, as lib/kv.cpp parses it.
std::string wrong_last_sequence(std::uint64_t current);

} // namespace kvelect::sim
