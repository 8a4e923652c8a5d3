// SPDX-License-Identifier: Apache-2.0
#include "bucket_routes.hpp"

#include <fmt/format.h>

#include <map>
#include <mutex>

namespace kvelect::detail {

namespace {

std::mutex& routes_mu() {
  static std::mutex mu;
  return mu;
}
std::map<kvStore*, BucketRoute>& routes() {
  static std::map<kvStore*, BucketRoute> table;
  return table;
}

} // namespace

void register_bucket(kvStore* bucket, natsConnection* connection, std::string_view name,
                     std::chrono::milliseconds timeout) {
  std::lock_guard lock(routes_mu());
  routes()[bucket] = BucketRoute{connection, fmt::format("$KV.{}.", name), timeout};
}

void unregister_bucket(kvStore* bucket) noexcept {
  std::lock_guard lock(routes_mu());
  routes().erase(bucket);
}

std::optional<BucketRoute> route_of(kvStore* bucket) {
  std::lock_guard lock(routes_mu());
  const auto it = routes().find(bucket);
  if (it == routes().end())
    return std::nullopt;
  return it->second;
}

} // namespace kvelect::detail
