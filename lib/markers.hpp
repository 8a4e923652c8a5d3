// SPDX-License-Identifier: Apache-2.0
// Expiry markers (docs/protocol.md, "Expiry markers"): what cnats 3.4 cannot do for them. It can
// neither set a stream's allow_msg_ttl and subject_delete_marker_ttl nor read them back, and its
// kvEntry has no headers, so these go through the JetStream API requests themselves.
#pragma once

#include "kv.hpp"

#include <kvelect/nats.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

struct __natsConnection;
typedef struct __natsConnection natsConnection; // NOLINT(modernize-use-using): must match nats.h
struct __jsCtx;
typedef struct __jsCtx jsCtx; // NOLINT(modernize-use-using): must match nats.h

namespace kvelect::detail {

// The smallest marker TTL the server accepts (ADR-48 in the nats architecture documents).
inline constexpr std::chrono::milliseconds kMinMarkerTtl{1000};

// A stream's marker settings, as its info reports them.
struct StreamMarkers {
  bool allow_msg_ttl = false;
  std::chrono::nanoseconds marker_ttl{0}; // subject_delete_marker_ttl; 0: no markers
};

// Reads the stream's marker settings with a STREAM.INFO request. Error(not_found) if there is no
// such stream, Error(bucket_unavailable) for any other failure.
StreamMarkers read_stream_markers(natsConnection* nc, std::string_view stream,
                                  std::chrono::milliseconds timeout);

// Creates the bucket's stream as cnats would for a KV bucket (history 1), with limit markers on,
// by a STREAM.CREATE request, after checking that the server has them (JetStream API level 1,
// nats-server 2.11); then checks that the stream reports them. Error(not_supported) on an older
// server, Error(nats_error) with the server's text if it refuses the configuration.
void create_marker_stream(natsConnection* nc, const BucketConfig& config,
                          std::chrono::milliseconds timeout);

// What the server's marker header (Nats-Marker-Reason) of a stream message says.
enum class MarkerReason { none, max_age, purge, remove };
MarkerReason marker_reason(std::string_view header_value);

// Fetches the message at `sequence` of `stream` and reads its marker header. nullopt if it
// cannot be read (gone, no answer): the caller keeps what it knew without it.
std::optional<MarkerReason> fetch_marker_reason(jsCtx* js, std::string_view stream,
                                                std::uint64_t sequence);

// Recognises the server's markers among the entries a cnats 3.4 watcher or get reports as
// values: an empty value is looked up by its revision (the stream sequence) and its
// Nats-Marker-Reason header read. MaxAge becomes Op::expired ("Expiry markers"); Purge and
// Remove become a purge and a delete, as ADR-48 says clients should treat them. Without a
// JetStream context (no WithJetStream), or when the message cannot be read, the entry stays as
// it was: an empty value, which members treat as a foreign holder (safe, slower).
struct MarkerCheck {
  jsCtx* js = nullptr;
  std::string stream; // KV_<bucket>
  [[nodiscard]] bool enabled() const noexcept { return js != nullptr; }
  void refine(Entry& entry) const;
};
MarkerCheck make_marker_check(jsCtx* js, kvStore* bucket);

// Small readers of the JetStream API's JSON answers (compact, as the server writes them): the
// first value of `"key":` in `text`.
std::optional<std::int64_t> json_number(std::string_view text, std::string_view key);
std::optional<bool> json_bool(std::string_view text, std::string_view key);
std::optional<std::string> json_string_value(std::string_view text, std::string_view key);

} // namespace kvelect::detail
