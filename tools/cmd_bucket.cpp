// SPDX-License-Identifier: Apache-2.0
// kvelect bucket add [NAME] --ttl 30s [--replicas N] [--storage file|memory]
#include "commands.hpp"
#include "duration.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace kvelect::cli {

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
  if (o.ttl < 5s || o.ttl > 1h)
    std::fprintf(stderr,
                 "kvelect: warning: a TTL of %s is outside the 5s..1h range that elections "
                 "accept without --skip-validation\n",
                 format_duration(o.ttl).c_str());
  Connection connection = connect(o.common);
  Bucket bucket = Bucket::create(connection, config);
  const BucketInfo info = bucket.info();
  emit_line(fmt::format("bucket '{}' ready: ttl {}, history {}, replicas {}, {} storage", info.name,
                        format_duration(info.ttl), info.history, info.replicas, o.storage));
  return kExitOk;
}

} // namespace kvelect::cli
