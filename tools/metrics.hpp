// SPDX-License-Identifier: Apache-2.0
// --metrics ADDR of the commands that campaign (run, file, campaign): the election's Prometheus
// metrics (include/kvelect/prometheus.hpp) served on ADDR at /metrics, when kvelect was built
// with prometheus-cpp.
#pragma once

#include <kvelect/election.hpp>

#include <memory>
#include <string>

namespace kvelect::cli {

/// Serves `election`'s metrics while it lives; destroy it before the election.
class MetricsServer {
public:
  virtual ~MetricsServer() = default;
  /// "http://127.0.0.1:PORT/metrics", with the port actually bound (ADDR may give port 0).
  virtual std::string url() const = 0;
};

/// True if this kvelect was built with Prometheus support.
bool metrics_supported();

/// For a non-empty `address`: UsageError now, before connecting, if this build cannot serve it.
void require_metrics_support(const std::string& address);

/// Starts serving on `address` ("127.0.0.1:9464", "[::1]:9464", "0.0.0.0:0"). Throws UsageError
/// when kvelect was built without Prometheus support, Failure when the address cannot be bound.
std::unique_ptr<MetricsServer> serve_metrics(const std::string& address, const Election& election);

} // namespace kvelect::cli
