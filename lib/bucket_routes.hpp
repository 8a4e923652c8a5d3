// SPDX-License-Identifier: Apache-2.0
// The buckets kvelect opened, by their kvStore*: which connection they write through. The
// executor's asynchronous writes and the watches' retiring (lib/retire.hpp) look them up.
#pragma once

#include <nats/nats.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace kvelect::detail {

// Where the keys of a bucket that kvelect opened (Bucket::open, Bucket::create) are written: the
// connection and the subject prefix. A plain kvStore* made by the caller has none, and its
// elections use the request threads (cnats 3.4 has no public way from a kvStore to its
// connection).
struct BucketRoute {
  natsConnection* connection = nullptr;
  std::string subject_prefix;           // "$KV.<bucket>."
  std::chrono::milliseconds timeout{0}; // the connection's request timeout
};
void register_bucket(kvStore* bucket, natsConnection* connection, std::string_view name,
                     std::chrono::milliseconds timeout);
void unregister_bucket(kvStore* bucket) noexcept;
std::optional<BucketRoute> route_of(kvStore* bucket);

} // namespace kvelect::detail
