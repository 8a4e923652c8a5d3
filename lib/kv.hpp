// SPDX-License-Identifier: Apache-2.0
// The campaign loop's view of the KV bucket: two requests (a revision-checked write and a read),
// each result classified so that the loop can act on purpose. A small interface so that a test
// can put a fault-injecting port in front of the real one.
#pragma once

#include <kvelect/error.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct __kvStore;
typedef struct __kvStore kvStore; // NOLINT(modernize-use-using)

namespace kvelect::detail {

// Values of the election key that are not member names. A member may not take a name with the
// "kvelect:" prefix. Choria's Go members treat both as "taken" and wait for the TTL: safe.
inline constexpr std::string_view kReleasedValue = "kvelect:released";
inline constexpr std::string_view kEvictValue = "kvelect:evict";
inline constexpr std::string_view kReservedPrefix = "kvelect:";

// What a request's result proves.
enum class Outcome {
  ok,        // applied; `revision` is the new revision
  lost_race, // the revision check failed: someone else wrote first (JetStream 10071 / 10164)
  retryable, // not applied, safe to send again (no responders, 10163 after a leader change)
  unknown,   // timed out: the write may or may not have been applied
  fatal,     // the loop cannot go on (bucket deleted, permission denied, connection closed)
};

// expired: the server's expiry marker (nats-server 2.11 limit markers): MaxAge removed the key's
// last message; the marker is a message of its own, with a revision (docs/protocol.md, "Expiry
// markers"). Only a driver that checked the marker's header reports it.
enum class Op { absent, put, del, purge, expired };

struct Entry {
  Op op = Op::absent;
  std::string value;
  std::uint64_t revision = 0;
};

struct WriteResult {
  Outcome outcome = Outcome::ok;
  std::uint64_t revision = 0; // the new revision when ok
  std::uint64_t current = 0;  // lost_race with 10071: the key's revision the server reported
  bool no_responders = false; // nothing answered: a leader election, or a deleted bucket
  Errc code = Errc::ok;
  std::string message;
};

struct ReadResult {
  Outcome outcome = Outcome::ok;
  // op == absent: no live value (never written, expired, or a tombstone); op == expired: an
  // expiry marker.
  Entry entry;
  Errc code = Errc::ok;
  std::string message;
};

class KvPort {
public:
  virtual ~KvPort() = default;
  // Writes `value` if the key's last revision is `expected` (0: the key has no message).
  virtual WriteResult write(std::string_view key, std::string_view value,
                            std::uint64_t expected) = 0;
  virtual ReadResult read(std::string_view key) = 0;
};

struct MarkerCheck; // markers.hpp
// `markers`: how to recognise the server's expiry markers among read values (none if null).
std::unique_ptr<KvPort> make_cnats_port(kvStore* bucket, const MarkerCheck* markers = nullptr);

// Classifies a failed cnats call from its status and the thread's last error text.
WriteResult classify_failure(int nats_status, std::string_view error_text);

} // namespace kvelect::detail
