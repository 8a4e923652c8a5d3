// SPDX-License-Identifier: Apache-2.0
// kvelect info [ELECTION-REGEX]: the bucket's fitness for elections, and who leads what.
#include "commands.hpp"
#include "duration.hpp"

#include <kvelect/election.hpp>

#include <nats/nats.h>

#include <fmt/format.h>

#include <algorithm>
#include <regex>

namespace kvelect::cli {
namespace {

using namespace std::chrono_literals;

std::string cnats_error(natsStatus status) {
  natsStatus ignored = NATS_OK;
  const char* text = nats_GetLastError(&ignored);
  return text != nullptr && *text != '\0' ? text : natsStatus_GetText(status);
}

struct StreamInfoDeleter {
  void operator()(jsStreamInfo* si) const noexcept {
    if (si != nullptr)
      jsStreamInfo_Destroy(si);
  }
};

// One row of the elections table.
struct Row {
  std::string election;
  std::string leader;
  std::string revision;
  std::string updated;
};

std::string ago(std::int64_t created_nanos) {
  const auto written = std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(created_nanos)));
  const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::system_clock::now() - written);
  return format_duration(std::max(age, std::chrono::milliseconds(0))) + " ago";
}

} // namespace

int info_command(const InfoOptions& o) {
  std::optional<std::regex> filter;
  if (!o.pattern.empty())
    filter.emplace(o.pattern, std::regex::ECMAScript); // validated by the parser

  Connection connection = connect(o.common);
  Bucket bucket = open_bucket(connection, o.common);
  const BucketInfo info = bucket.info();

  std::vector<std::string> warnings;
  std::vector<std::pair<std::string, std::string>> lines;
  lines.emplace_back("Bucket", info.name);

  // The stream behind the bucket: storage and cluster health.
  const std::string stream = "KV_" + info.name;
  jsStreamInfo* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus status =
      js_GetStreamInfo(&raw, connection.jetstream(), stream.c_str(), nullptr, &jerr);
  std::unique_ptr<jsStreamInfo, StreamInfoDeleter> si(raw);
  lines.emplace_back("Stream", stream);
  if (status == NATS_OK && si && si->Config != nullptr)
    lines.emplace_back("Storage", si->Config->Storage == js_MemoryStorage ? "memory" : "file");
  else
    lines.emplace_back("Storage", fmt::format("unknown ({})", cnats_error(status)));
  lines.emplace_back("TTL", info.ttl.count() > 0 ? format_duration(info.ttl) : "none");
  lines.emplace_back("History", std::to_string(info.history));
  lines.emplace_back("Replicas", std::to_string(info.replicas));
  lines.emplace_back("Values", std::to_string(info.values));

  if (info.history != 1)
    warnings.push_back(fmt::format("history is {}: elections need history 1 (a bucket made by "
                                   "'kvelect bucket add' has it)",
                                   info.history));
  if (info.ttl.count() <= 0)
    warnings.push_back("the bucket has no TTL: a dead leader's key would never expire");
  else if (info.ttl < 5s)
    warnings.push_back(fmt::format("TTL {} is below 5s: elections refuse it without "
                                   "--skip-validation",
                                   format_duration(info.ttl)));
  else if (info.ttl > 1h)
    warnings.push_back(fmt::format("TTL {} is above 1h: a dead leader blocks the election that "
                                   "long; elections refuse it without --skip-validation",
                                   format_duration(info.ttl)));

  if (status == NATS_OK && si && si->Cluster != nullptr) {
    const jsClusterInfo& cluster = *si->Cluster;
    const std::string leader = cluster.Leader != nullptr ? cluster.Leader : "";
    std::string text = fmt::format("{}, leader {}", cluster.Name != nullptr ? cluster.Name : "-",
                                   leader.empty() ? "none" : leader);
    if (leader.empty())
      warnings.push_back(fmt::format("stream '{}' has no leader: elections cannot write", stream));
    for (int i = 0; i < cluster.ReplicasLen; ++i) {
      const jsPeerInfo* peer = cluster.Replicas[i];
      if (peer == nullptr)
        continue;
      const std::string name = peer->Name != nullptr ? peer->Name : "?";
      std::string state = peer->Offline ? "offline" : peer->Current ? "current" : "not current";
      if (peer->Lag > 0)
        state += fmt::format(", lag {}", peer->Lag);
      text += fmt::format("; replica {} ({})", name, state);
      if (peer->Offline)
        warnings.push_back(fmt::format("replica {} is offline", name));
      else if (!peer->Current || peer->Lag > 0)
        warnings.push_back(fmt::format("replica {} is lagging ({} behind)", name, peer->Lag));
    }
    lines.emplace_back("Cluster", text);
  }

  std::size_t width = 0;
  for (const auto& [label, value] : lines)
    width = std::max(width, label.size());
  for (const auto& [label, value] : lines)
    emit_line(fmt::format("{:<{}}  {}", label, width, value));
  for (const auto& w : warnings)
    emit_line("WARNING: " + w);
  emit_line("");

  // The elections: every key, filtered, with its leader.
  kvKeysList keys{};
  const natsStatus listed = kvStore_Keys(&keys, bucket.get(), nullptr);
  std::vector<std::string> names;
  if (listed == NATS_OK) {
    for (int i = 0; i < keys.Count; ++i)
      names.emplace_back(keys.Keys[i]);
    kvKeysList_Destroy(&keys);
  } else if (listed != NATS_NOT_FOUND) { // NOT_FOUND: the bucket has no keys
    throw Failure(fmt::format("cannot list the elections of bucket '{}': {}", info.name,
                              cnats_error(listed)));
  }
  std::sort(names.begin(), names.end());
  std::vector<Row> rows;
  for (const auto& name : names) {
    if (filter && !std::regex_search(name, *filter))
      continue;
    Row row;
    row.election = name;
    try {
      const auto leader = read_leader(bucket.get(), name);
      row.leader = leader ? *leader : "-";
    } catch (const Error& e) {
      row.leader = fmt::format("? ({})", e.what());
    }
    kvEntry* entry = nullptr;
    if (kvStore_Get(&entry, bucket.get(), name.c_str()) == NATS_OK && entry != nullptr) {
      row.revision = std::to_string(kvEntry_Revision(entry));
      row.updated = ago(kvEntry_Created(entry));
      kvEntry_Destroy(entry);
    } else {
      row.revision = "-";
      row.updated = "-";
    }
    rows.push_back(std::move(row));
  }
  if (rows.empty()) {
    emit_line(filter ? fmt::format("no elections match '{}'", o.pattern)
                     : std::string("no elections"));
    return kExitOk;
  }
  Row header{"ELECTION", "LEADER", "REVISION", "UPDATED"};
  std::size_t w1 = header.election.size(), w2 = header.leader.size(), w3 = header.revision.size();
  for (const auto& r : rows) {
    w1 = std::max(w1, r.election.size());
    w2 = std::max(w2, r.leader.size());
    w3 = std::max(w3, r.revision.size());
  }
  auto print_row = [&](const Row& r) {
    emit_line(fmt::format("{:<{}}  {:<{}}  {:<{}}  {}", r.election, w1, r.leader, w2, r.revision,
                          w3, r.updated));
  };
  print_row(header);
  for (const auto& r : rows)
    print_row(r);
  return kExitOk;
}

} // namespace kvelect::cli
