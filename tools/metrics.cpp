// SPDX-License-Identifier: Apache-2.0
#include "metrics.hpp"

#include "cli_common.hpp"

#include <fmt/format.h>

#ifdef KVELECT_CLI_PROMETHEUS
#include <kvelect/prometheus.hpp>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#endif

namespace kvelect::cli {

#ifdef KVELECT_CLI_PROMETHEUS

namespace {

std::string served_url(const std::string& address, const PrometheusMetrics& metrics) {
  // The host part as given, the port as bound (ADDR may ask for port 0).
  const auto colon = address.rfind(':');
  const std::string host = colon == std::string::npos ? address : address.substr(0, colon);
  const auto ports = metrics.listening_ports();
  return fmt::format("http://{}:{}/metrics", host,
                     ports.empty() ? std::string("?") : std::to_string(ports.front()));
}

// watch has no Election to export: its series live in the application registry that
// PrometheusMetrics serves beside its (here empty) collector.
class PrometheusWatch final : public WatchMetrics {
public:
  explicit PrometheusWatch(const std::string& address)
      : address_(address), metrics_(address),
        events_(prometheus::BuildCounter()
                    .Name("kvelect_watch_events_total")
                    .Help("Election activity seen by kvelect watch, by election and event")
                    .Register(*metrics_.registry())),
        leader_(prometheus::BuildGauge()
                    .Name("kvelect_watch_leader")
                    .Help("1 while the election's key names a leader, as kvelect watch saw it")
                    .Register(*metrics_.registry())) {}

  std::string url() const override { return served_url(address_, metrics_); }

  void saw(const std::string& election, const std::string& event, bool leading) override {
    // Family::Add is thread-safe and returns the existing series for known labels.
    events_.Add({{"election", election}, {"event", event}}).Increment();
    leader_.Add({{"election", election}}).Set(leading ? 1 : 0);
  }

private:
  std::string address_;
  PrometheusMetrics metrics_;
  prometheus::Family<prometheus::Counter>& events_;
  prometheus::Family<prometheus::Gauge>& leader_;
};

class PrometheusServer final : public MetricsServer {
public:
  PrometheusServer(const std::string& address, const Election& election)
      : address_(address), metrics_(address), election_(election) {
    metrics_.add(election_);
  }
  ~PrometheusServer() override { metrics_.remove(election_); }
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  std::string url() const override { return served_url(address_, metrics_); }

private:
  std::string address_;
  PrometheusMetrics metrics_;
  const Election& election_;
};

} // namespace

bool metrics_supported() { return true; }

std::unique_ptr<MetricsServer> serve_metrics(const std::string& address, const Election& election) {
  try {
    return std::make_unique<PrometheusServer>(address, election);
  } catch (const Error& e) {
    throw Failure(fmt::format("--metrics {}: {}", address, e.what()));
  }
}

std::unique_ptr<WatchMetrics> serve_watch_metrics(const std::string& address) {
  try {
    return std::make_unique<PrometheusWatch>(address);
  } catch (const Error& e) {
    throw Failure(fmt::format("--metrics {}: {}", address, e.what()));
  }
}

#else

bool metrics_supported() { return false; }

std::unique_ptr<WatchMetrics> serve_watch_metrics(const std::string& address) {
  require_metrics_support(address);
  return nullptr;
}

std::unique_ptr<MetricsServer> serve_metrics(const std::string& address, const Election&) {
  throw UsageError(fmt::format("--metrics {}: this kvelect was built without Prometheus support "
                               "(prometheus-cpp)",
                               address));
}

#endif

void require_metrics_support(const std::string& address) {
  if (!address.empty() && !metrics_supported())
    throw UsageError(fmt::format("--metrics {}: this kvelect was built without Prometheus support "
                                 "(prometheus-cpp)",
                                 address));
}

} // namespace kvelect::cli
