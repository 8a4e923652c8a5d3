// SPDX-License-Identifier: Apache-2.0
// kvelect bucket add [NAME] --ttl 30s [--replicas N] [--storage file|memory]
// kvelect bucket info [NAME] [--json]
// kvelect bucket rm [NAME] [--force]
#include "bucket_report.hpp"
#include "commands.hpp"
#include "duration.hpp"
#include "json.hpp"

#include <fmt/format.h>

#include <unistd.h>
#include <cstdio>
#include <iostream>
#include <optional>

namespace kvelect::cli {
namespace {

std::optional<Bucket> open_if_exists(const Connection& connection, const std::string& name) {
  try {
    return Bucket::open(connection, name);
  } catch (const Error& error) {
    if (error.code() == Errc::not_found)
      return std::nullopt;
    throw;
  }
}

} // namespace

int bucket_add_command(const BucketAddOptions& o) {
  using namespace std::chrono_literals;
  if (o.ttl.count() <= 0)
    throw UsageError("--ttl must be positive: a bucket without a TTL never lets a dead leader's "
                     "key expire");
  BucketConfig config;
  config.name = o.name.empty() ? o.common.bucket : o.name;
  config.ttl = o.ttl;
  config.replicas = o.replicas;
  config.storage = o.storage == "memory" ? Storage::memory : Storage::file;
  config.expiry_markers = o.markers;
  config.marker_ttl = o.marker_ttl;
  if (o.markers && o.marker_ttl < 1s)
    throw UsageError("--marker-ttl must be at least 1s (the server's minimum)");
  if (o.ttl < 5s || o.ttl > 1h)
    std::fprintf(stderr,
                 "kvelect: warning: a TTL of %s is outside the 5s..1h range that elections "
                 "accept without --skip-validation\n",
                 format_duration(o.ttl).c_str());
  Connection connection = connect(o.common);

  // An existing bucket is accepted if it has these settings; otherwise say what differs (the
  // server's own answer is only "Existing configuration is different").
  if (auto existing = open_if_exists(connection, config.name)) {
    const BucketReport report = bucket_report(connection, *existing);
    std::vector<std::string> differences;
    if (report.info.ttl != config.ttl)
      differences.push_back(fmt::format("TTL {}, wanted {}", format_duration(report.info.ttl),
                                        format_duration(config.ttl)));
    if (report.info.history != 1)
      differences.push_back(fmt::format("history {}, wanted 1", report.info.history));
    if (report.info.replicas != config.replicas)
      differences.push_back(
          fmt::format("replicas {}, wanted {}", report.info.replicas, config.replicas));
    if (report.storage && *report.storage != o.storage)
      differences.push_back(fmt::format("{} storage, wanted {}", *report.storage, o.storage));
    const auto markers = report.info.marker_ttl.value_or(0ms);
    if (o.markers ? markers != o.marker_ttl : markers.count() != 0)
      differences.push_back(fmt::format("{}, wanted {}", markers_text(markers),
                                        markers_text(o.markers ? o.marker_ttl : 0ms)));
    if (!differences.empty())
      throw Failure(fmt::format("bucket '{}' exists with another configuration: {} (use it as it "
                                "is, or remove it with 'kvelect bucket rm {}' and add it again)",
                                config.name, fmt::join(differences, "; "), config.name));
    emit_line(fmt::format("bucket '{}' ready (it existed): ttl {}, history {}, replicas {}, {} "
                          "storage, {}",
                          report.info.name, format_duration(report.info.ttl), report.info.history,
                          report.info.replicas, report.storage.value_or("unknown"),
                          markers_text(report.info.marker_ttl.value_or(0ms))));
    return kExitOk;
  }
  Bucket bucket = Bucket::create(connection, config);
  const BucketInfo info = bucket.info();
  emit_line(fmt::format("bucket '{}' ready: ttl {}, history {}, replicas {}, {} storage, {}",
                        info.name, format_duration(info.ttl), info.history, info.replicas,
                        o.storage, markers_text(info.marker_ttl.value_or(0ms))));
  return kExitOk;
}

int bucket_info_command(const BucketInfoOptions& o) {
  CommonOptions common = o.common;
  if (!o.name.empty())
    common.bucket = o.name;
  Connection connection = connect(common);
  Bucket bucket = open_bucket(connection, common);
  const BucketReport report = bucket_report(connection, bucket);
  if (o.json) {
    JsonObject json;
    report.add_to(json);
    emit_line(json.str());
  } else {
    for (const auto& line : report.text_lines())
      emit_line(line);
  }
  return kExitOk;
}

int bucket_rm_command(const BucketRmOptions& o) {
  const std::string name = o.name.empty() ? o.common.bucket : o.name;
  const bool interactive = ::isatty(STDIN_FILENO) == 1;
  if (!o.force && !interactive)
    throw UsageError(fmt::format("refusing to remove bucket '{}' without confirmation: stdin is "
                                 "not a terminal (use --force)",
                                 name));
  Connection connection = connect(o.common);
  if (!o.force) {
    std::fprintf(stderr,
                 "Remove bucket '%s' and every election in it? Running members fail. [y/N] ",
                 name.c_str());
    std::fflush(stderr);
    std::string answer;
    if (!std::getline(std::cin, answer) || (answer != "y" && answer != "Y" && answer != "yes")) {
      std::fprintf(stderr, "not removed\n");
      return kExitFailure;
    }
  }
  try {
    Bucket::remove(connection, name);
  } catch (const Error& error) {
    if (error.code() == Errc::not_found)
      throw Failure(fmt::format("bucket '{}' does not exist", name));
    throw;
  }
  emit_line(fmt::format("bucket '{}' removed", name));
  return kExitOk;
}

} // namespace kvelect::cli
