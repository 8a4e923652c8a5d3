// SPDX-License-Identifier: Apache-2.0
#include "bucket_report.hpp"
#include "handles.hpp"
#include "status.hpp"

#include "duration.hpp"

#include <nats/nats.h>

#include <fmt/format.h>

#include <algorithm>
#include <memory>

namespace kvelect::cli {
namespace {

using namespace std::chrono_literals;

} // namespace

std::string markers_text(std::chrono::milliseconds marker_ttl) {
  return marker_ttl.count() > 0 ? fmt::format("expiry markers kept {}", format_duration(marker_ttl))
                                : std::string("no expiry markers");
}

BucketReport bucket_report(const Connection& connection, const Bucket& bucket) {
  BucketReport r;
  r.info = bucket.info();
  const BucketInfo& info = r.info;
  r.stream = "KV_" + info.name;

  jsStreamInfo* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus status =
      js_GetStreamInfo(&raw, connection.jetstream(), r.stream.c_str(), nullptr, &jerr);
  const detail::StreamInfoHandle si(raw);
  if (status == NATS_OK && si && si->Config != nullptr)
    r.storage = si->Config->Storage == js_MemoryStorage ? "memory" : "file";
  else
    r.storage_error = detail::failure_message(status);

  if (info.history != 1)
    r.warnings.push_back(fmt::format("history is {}: elections need history 1 (a bucket made by "
                                     "'kvelect bucket add' has it)",
                                     info.history));
  if (info.ttl.count() <= 0)
    r.warnings.emplace_back("the bucket has no TTL: a dead leader's key would never expire");
  else if (info.ttl < 5s)
    r.warnings.push_back(fmt::format("TTL {} is below 5s: elections refuse it without "
                                     "--skip-validation",
                                     format_duration(info.ttl)));
  else if (info.ttl > 1h)
    r.warnings.push_back(fmt::format("TTL {} is above 1h: a dead leader blocks the election that "
                                     "long; elections refuse it without --skip-validation",
                                     format_duration(info.ttl)));

  if (status == NATS_OK && si && si->Cluster != nullptr) {
    const jsClusterInfo& cluster = *si->Cluster;
    const std::string leader = cluster.Leader != nullptr ? cluster.Leader : "";
    r.cluster = fmt::format("{}, leader {}", cluster.Name != nullptr ? cluster.Name : "-",
                            leader.empty() ? "none" : leader);
    if (leader.empty())
      r.warnings.push_back(
          fmt::format("stream '{}' has no leader: elections cannot write", r.stream));
    for (int i = 0; i < cluster.ReplicasLen; ++i) {
      const jsPeerInfo* peer = cluster.Replicas[i];
      if (peer == nullptr)
        continue;
      const std::string name = peer->Name != nullptr ? peer->Name : "?";
      std::string state = peer->Offline ? "offline" : peer->Current ? "current" : "not current";
      if (peer->Lag > 0)
        state += fmt::format(", lag {}", peer->Lag);
      r.cluster += fmt::format("; replica {} ({})", name, state);
      if (peer->Offline)
        r.warnings.push_back(fmt::format("replica {} is offline", name));
      else if (!peer->Current || peer->Lag > 0)
        r.warnings.push_back(fmt::format("replica {} is lagging ({} behind)", name, peer->Lag));
    }
  }
  return r;
}

std::vector<std::string> BucketReport::text_lines() const {
  std::vector<std::pair<std::string, std::string>> rows;
  rows.emplace_back("Bucket", info.name);
  rows.emplace_back("Stream", stream);
  rows.emplace_back("Storage", storage ? *storage : fmt::format("unknown ({})", storage_error));
  rows.emplace_back("TTL", info.ttl.count() > 0 ? format_duration(info.ttl) : "none");
  rows.emplace_back("History", std::to_string(info.history));
  rows.emplace_back("Replicas", std::to_string(info.replicas));
  rows.emplace_back("Values", std::to_string(info.values));
  rows.emplace_back("Markers", !info.marker_ttl               ? std::string("unknown")
                               : info.marker_ttl->count() > 0 ? format_duration(*info.marker_ttl)
                                                              : std::string("none"));
  if (!cluster.empty())
    rows.emplace_back("Cluster", cluster);
  std::size_t width = 0;
  for (const auto& [label, value] : rows)
    width = std::max(width, label.size());
  std::vector<std::string> lines;
  for (const auto& [label, value] : rows)
    lines.push_back(fmt::format("{:<{}}  {}", label, width, value));
  for (const auto& w : warnings)
    lines.push_back("WARNING: " + w);
  return lines;
}

void BucketReport::add_to(JsonObject& json) const {
  json.add("bucket", info.name)
      .add("stream", stream)
      .add("storage", storage)
      .add("ttl_ms", static_cast<std::int64_t>(info.ttl.count()))
      .add("history", info.history)
      .add("replicas", info.replicas)
      .add("values", info.values);
  if (info.marker_ttl)
    json.add("marker_ttl_ms", static_cast<std::int64_t>(info.marker_ttl->count()));
  else
    json.add_null("marker_ttl_ms");
  if (cluster.empty())
    json.add_null("cluster");
  else
    json.add("cluster", cluster);
  std::vector<std::string> items;
  for (const auto& w : warnings)
    items.push_back(json_string(w));
  json.add_raw("warnings", json_array(items));
}

} // namespace kvelect::cli
