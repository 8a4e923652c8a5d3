// SPDX-License-Identifier: Apache-2.0
#include "metrics.hpp"

#include "cli_common.hpp"

#include <fmt/format.h>

#ifdef KVELECT_CLI_PROMETHEUS
#include <kvelect/prometheus.hpp>
#endif

namespace kvelect::cli {

#ifdef KVELECT_CLI_PROMETHEUS

namespace {

class PrometheusServer final : public MetricsServer {
public:
  PrometheusServer(const std::string& address, const Election& election)
      : address_(address), metrics_(address), election_(election) {
    metrics_.add(election_);
  }
  ~PrometheusServer() override { metrics_.remove(election_); }
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  std::string url() const override {
    // The host part as given, the port as bound (ADDR may ask for port 0).
    const auto colon = address_.rfind(':');
    const std::string host = colon == std::string::npos ? address_ : address_.substr(0, colon);
    const auto ports = metrics_.listening_ports();
    return fmt::format("http://{}:{}/metrics", host,
                       ports.empty() ? std::string("?") : std::to_string(ports.front()));
  }

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

#else

bool metrics_supported() { return false; }

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
