// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief kvelect::PrometheusMetrics: Prometheus metrics for Elections, through prometheus-cpp.
///
/// An optional component: the library `kvelect_prometheus` (Meson: `kvelect_prometheus_dep`),
/// built when the `prometheus` feature is enabled and prometheus-cpp is installed.
///
/// The figures are read from Election::stats() on every scrape, so they are never stale and
/// nothing runs between scrapes. prometheus-cpp's Registry holds only metric families it built
/// itself, so a scrape-time collector cannot live *inside* a Registry; it is served *next to*
/// one instead, on the same Exposer endpoint (Exposer::RegisterCollectable takes any number of
/// collectables per URI).
///
/// @code
/// kvelect::Election election("node-1", "scheduler", bucket);
/// kvelect::PrometheusMetrics metrics("127.0.0.1:9464"); // serves /metrics; destroyed first
/// metrics.add(election);
/// election.start();
/// @endcode
///
/// Series, each labelled `election` (the key) and `member` (the name):
///
/// - `kvelect_campaigns_total{state="candidate"}` (counter): campaigns while a candidate;
///   `{state="leader"}`: renewals while the leader
/// - `kvelect_leader` (gauge): 1 while leading (Election::is_leader()), else 0
/// - `kvelect_state{state="unknown"|"candidate"|"leader"}` (gauge): 1 for the current state,
///   0 for the others
/// - `kvelect_campaign_interval_seconds` (gauge): the candidate interval without backoff
/// - `kvelect_wins_total`, `kvelect_losses_total` (counters): times it became, and stopped
///   being, the leader
/// - `kvelect_create_attempts_total` (counter): writes that tried to take a vacant key
/// - `kvelect_failed_requests_total` (counter): KV requests that failed (not lost races)
/// - `kvelect_acquire_seconds` (gauge): campaign start → OnWon, for the last win
/// - `kvelect_renewal_latency_seconds`, `kvelect_renewal_latency_max_seconds` (gauges): the
///   last renewal's latency, and the largest seen
///
/// The text of the last error (Stats::last_error) is not exported: error messages carry varying
/// detail, and a label that changes with every error would make a new series each time.
/// `kvelect_failed_requests_total` counts them; log OnError for the text.
#pragma once

#include <kvelect/election.hpp>
#include <kvelect/export.hpp>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <memory>
#include <string>
#include <vector>

namespace prometheus {
class Exposer;
class Registry;
} // namespace prometheus

namespace kvelect {

/// Exports the Stats of any number of Elections in the Prometheus format. All methods are
/// thread-safe, and a scrape never races with add() or remove(). Non-copyable, non-movable.
class KVELECT_API PrometheusMetrics {
public:
  /// A collector only: serve it by registering collectable() with an Exposer of yours, or read
  /// it with collect().
  PrometheusMetrics();
  /// Registers the collector with `exposer` on `uri`. The exposer holds it weakly: when this
  /// object is destroyed, the exposer skips it (the exposer may outlive this object, and this
  /// object may outlive the exposer).
  explicit PrometheusMetrics(prometheus::Exposer& exposer, const std::string& uri = "/metrics");
  /// Serves `/metrics` over HTTP on `bind_address` ("127.0.0.1:9464", "[::1]:9464", port 0 for
  /// any free port; see listening_ports()) with prometheus-cpp's Exposer: this collector and
  /// registry(). Throws kvelect::Error(invalid_argument) if the address cannot be bound.
  explicit PrometheusMetrics(const std::string& bind_address);
  /// Stops serving, if it serves, and forgets every election.
  ~PrometheusMetrics();

  PrometheusMetrics(const PrometheusMetrics&) = delete;
  PrometheusMetrics& operator=(const PrometheusMetrics&) = delete;

  /// Exports `election` from the next scrape on, labelled with its key and name. The election
  /// must outlive its registration: remove() it before destroying it, or destroy this object
  /// first (declare it after the elections it exports). Adding the same
  /// election twice does nothing; adding another election with the same key and name throws
  /// kvelect::Error(invalid_argument), since both would make the same series.
  void add(const Election& election);
  /// Stops exporting `election`. When it returns, no scrape reads the election any more, so it
  /// may then be destroyed. Returns whether it was registered. Safe from an election callback.
  bool remove(const Election& election) noexcept;
  /// How many elections are exported.
  std::size_t size() const;

  /// One scrape: every series, read from the elections' stats() now.
  std::vector<prometheus::MetricFamily> collect() const;
  /// The collector, to register with an Exposer: `exposer.RegisterCollectable(m.collectable())`.
  /// Once this object is destroyed, the collector reports nothing.
  std::shared_ptr<prometheus::Collectable> collectable() const;
  /// A registry of this object's own, for the application's metrics (it starts empty). Served
  /// with the collector by the `bind_address` constructor; with the others, register it with
  /// your exposer yourself if you use it.
  std::shared_ptr<prometheus::Registry> registry() const;
  /// The ports the `bind_address` constructor listens on; empty for the other constructors.
  std::vector<int> listening_ports() const;

private:
  class Collector;
  std::shared_ptr<Collector> collector_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

} // namespace kvelect
