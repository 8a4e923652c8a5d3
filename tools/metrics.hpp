// SPDX-License-Identifier: Apache-2.0
// --metrics ADDR of the long-running commands, served on ADDR at /metrics when kvelect was built
// with prometheus-cpp: the election's metrics (include/kvelect/prometheus.hpp) for the commands
// that campaign (run, file, campaign), and counts of what it saw for watch.
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

/// What `watch` serves: its own series, from the activity it prints.
class WatchMetrics {
public:
  virtual ~WatchMetrics() = default;
  /// As MetricsServer::url().
  virtual std::string url() const = 0;
  /// One printed activity: `kvelect_watch_events_total{election, event}` counts it, and
  /// `kvelect_watch_leader{election}` becomes `leading` (1: the key names a leader, 0: vacant).
  virtual void saw(const std::string& election, const std::string& event, bool leading) = 0;
};

/// True if this kvelect was built with Prometheus support.
bool metrics_supported();

/// For a non-empty `address`: UsageError now, before connecting, if this build cannot serve it.
void require_metrics_support(const std::string& address);

/// Starts serving on `address` ("127.0.0.1:9464", "[::1]:9464", "0.0.0.0:0"). Throws UsageError
/// when kvelect was built without Prometheus support, Failure when the address cannot be bound.
std::unique_ptr<MetricsServer> serve_metrics(const std::string& address, const Election& election);

/// Starts serving watch's series on `address`; errors as serve_metrics().
std::unique_ptr<WatchMetrics> serve_watch_metrics(const std::string& address);

} // namespace kvelect::cli
