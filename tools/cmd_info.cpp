// SPDX-License-Identifier: Apache-2.0
// kvelect info [ELECTION-REGEX]: the bucket's fitness for elections, and who leads what.
#include "bucket_report.hpp"
#include "commands.hpp"
#include "duration.hpp"
#include "json.hpp"
#include "status.hpp"
#include "timefmt.hpp"

#include <kvelect/election.hpp>

#include <nats/nats.h>

#include <fmt/format.h>

#include <algorithm>
#include <regex>

namespace kvelect::cli {
namespace {

// One row of the elections table.
struct Row {
  std::string election;
  std::optional<std::string> leader; ///< nullopt: none (or unreadable, then `error`)
  std::string error;
  std::optional<std::uint64_t> revision;
  std::optional<std::chrono::system_clock::time_point> written;
};

std::chrono::milliseconds age_of(std::chrono::system_clock::time_point written) {
  return std::max(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now() - written),
                  std::chrono::milliseconds(0));
}

} // namespace

int info_command(const InfoOptions& o) {
  std::optional<std::regex> filter;
  if (!o.pattern.empty())
    filter.emplace(o.pattern, std::regex::ECMAScript); // validated by the parser

  Connection connection = connect(o.common);
  Bucket bucket = open_bucket(connection, o.common);
  const BucketReport report = bucket_report(connection, bucket);

  // The elections: every key, filtered, with its leader.
  kvKeysList keys{};
  const natsStatus listed = kvStore_Keys(&keys, bucket.get(), nullptr);
  std::vector<std::string> names;
  if (listed == NATS_OK) {
    for (int i = 0; i < keys.Count; ++i)
      names.emplace_back(keys.Keys[i]);
    kvKeysList_Destroy(&keys);
  } else if (listed != NATS_NOT_FOUND) { // NOT_FOUND: the bucket has no keys
    throw Failure(fmt::format("cannot list the elections of bucket '{}': {}", report.info.name,
                              detail::failure_message(listed)));
  }
  std::sort(names.begin(), names.end());
  std::vector<Row> rows;
  for (const auto& name : names) {
    if (filter && !std::regex_search(name, *filter))
      continue;
    Row row;
    row.election = name;
    try {
      row.leader = read_leader(bucket.get(), name);
    } catch (const Error& e) {
      row.error = e.what();
    }
    kvEntry* entry = nullptr;
    if (kvStore_Get(&entry, bucket.get(), name.c_str()) == NATS_OK && entry != nullptr) {
      row.revision = kvEntry_Revision(entry);
      row.written = from_unix_nanos(kvEntry_Created(entry));
      kvEntry_Destroy(entry);
    }
    rows.push_back(std::move(row));
  }

  if (o.json) {
    JsonObject json;
    report.add_to(json);
    std::vector<std::string> items;
    for (const auto& r : rows) {
      JsonObject item;
      item.add("election", r.election).add("leader", r.leader);
      if (!r.error.empty())
        item.add("error", r.error);
      if (r.revision)
        item.add("revision", *r.revision);
      else
        item.add_null("revision");
      if (r.written)
        item.add("updated", rfc3339(*r.written))
            .add("age_ms", static_cast<std::int64_t>(age_of(*r.written).count()));
      else
        item.add_null("updated");
      items.push_back(item.str());
    }
    json.add_raw("elections", json_array(items));
    emit_line(json.str());
    return kExitOk;
  }

  for (const auto& line : report.text_lines())
    emit_line(line);
  emit_line("");
  if (rows.empty()) {
    emit_line(filter ? fmt::format("no elections match '{}'", o.pattern)
                     : std::string("no elections"));
    return kExitOk;
  }
  struct Cells {
    std::string election, leader, revision, updated;
  };
  std::vector<Cells> cells;
  cells.push_back({"ELECTION", "LEADER", "REVISION", "UPDATED"});
  for (const auto& r : rows)
    cells.push_back({r.election,
                     !r.error.empty() ? fmt::format("? ({})", r.error) : r.leader.value_or("-"),
                     r.revision ? std::to_string(*r.revision) : "-",
                     r.written ? format_duration(age_of(*r.written)) + " ago" : "-"});
  std::size_t w1 = 0, w2 = 0, w3 = 0;
  for (const auto& c : cells) {
    w1 = std::max(w1, c.election.size());
    w2 = std::max(w2, c.leader.size());
    w3 = std::max(w3, c.revision.size());
  }
  for (const auto& c : cells)
    emit_line(fmt::format("{:<{}}  {:<{}}  {:<{}}  {}", c.election, w1, c.leader, w2, c.revision,
                          w3, c.updated));
  return kExitOk;
}

} // namespace kvelect::cli
