// SPDX-License-Identifier: Apache-2.0
// What `info` and `bucket info` show about a bucket: its settings, the health of its stream,
// and warnings for each way it is unfit for elections; as text lines or as JSON.
#pragma once

#include "json.hpp"

#include <kvelect/nats.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace kvelect::cli {

/// "expiry markers kept 1s" or "no expiry markers".
std::string markers_text(std::chrono::milliseconds marker_ttl);

struct BucketReport {
  BucketInfo info;
  std::string stream;                 ///< KV_<bucket>
  std::optional<std::string> storage; ///< "file" or "memory"; nullopt if unknown
  std::string storage_error;          ///< why it is unknown
  std::string cluster;                ///< "NAME, leader X; replica Y (current)"; empty: none
  std::vector<std::string> warnings;

  /// "Label  value" lines, aligned.
  std::vector<std::string> text_lines() const;
  /// The report's fields added to `json`: bucket, stream, storage, ttl_ms, history, replicas,
  /// values, marker_ttl_ms (0: no expiry markers; null: unknown), cluster (null when none),
  /// warnings (an array of strings).
  void add_to(JsonObject& json) const;
};

/// Reads the bucket's status and its stream's; throws kvelect::Error when the bucket cannot be
/// read.
BucketReport bucket_report(const Connection& connection, const Bucket& bucket);

} // namespace kvelect::cli
