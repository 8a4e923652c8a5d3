// SPDX-License-Identifier: Apache-2.0
// Prometheus metrics for an election (kvelect::PrometheusMetrics, include/kvelect/prometheus.hpp;
// built only with -Dprometheus=enabled or when prometheus-cpp is found). Joins the election
// "metrics-demo" and serves /metrics, read from Election::stats() on every scrape:
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-metrics node-1 [address=127.0.0.1:9464]
//   curl -s http://127.0.0.1:9464/metrics | grep ^kvelect_
#include <kvelect/kvelect.hpp>
#include <kvelect/prometheus.hpp>

#include <csignal>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "node-1";
  const std::string address = argc > 2 ? argv[2] : "127.0.0.1:9464";
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr); // campaign and HTTP threads inherit the mask

  try {
    auto connection = kvelect::Connection::connect(); // $NATS_URL or nats://127.0.0.1:4222
    kvelect::BucketConfig config;                     // KVELECT_ELECTIONS
    config.ttl = 10s;
    auto bucket = kvelect::Bucket::create(connection, config);

    kvelect::Election election(
        name, "metrics-demo", bucket,
        kvelect::OnWon([&] { std::printf("%s: leading\n", name.c_str()); }),
        kvelect::OnLost([&] { std::printf("%s: not leading\n", name.c_str()); }));
    // Declared after the election, so that it is destroyed first: it never reads an election
    // that is gone (the other way is metrics.remove(election) before the election goes).
    kvelect::PrometheusMetrics metrics(address);
    metrics.add(election);
    election.start();
    const std::string host = address.substr(0, address.rfind(':'));
    for (const int port : metrics.listening_ports())
      std::printf("%s: metrics on http://%s:%d/metrics\n", name.c_str(), host.c_str(), port);

    int signal = 0;
    sigwait(&signals, &signal);
    election.stop();
  } catch (const kvelect::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
  return 0;
}
