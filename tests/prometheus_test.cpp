// SPDX-License-Identifier: Apache-2.0
// kvelect::PrometheusMetrics (include/kvelect/prometheus.hpp) against a real nats-server: the
// series after a win and after a loss, registration rules, and the three ways of serving them
// (collect(), an Exposer of the caller's, the object's own Exposer).
#include <kvelect/kvelect.hpp>
#include <kvelect/prometheus.hpp>

#include "nats_server.hpp"

#include <gtest/gtest.h>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace kvelect::testing {
namespace {

using namespace std::chrono_literals;
using Labels = std::map<std::string, std::string>;

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition())
      return true;
    std::this_thread::sleep_for(10ms);
  }
  return condition();
}

const prometheus::MetricFamily* family(const std::vector<prometheus::MetricFamily>& families,
                                       const std::string& name) {
  for (const auto& f : families)
    if (f.name == name)
      return &f;
  return nullptr;
}

// The value of the one sample of `name` whose labels are exactly `labels`; nullopt if none.
std::optional<double> sample(const std::vector<prometheus::MetricFamily>& families,
                             const std::string& name, const Labels& labels) {
  const auto* f = family(families, name);
  if (f == nullptr)
    return std::nullopt;
  for (const auto& metric : f->metric) {
    Labels have;
    for (const auto& label : metric.label)
      have[label.name] = label.value;
    if (have == labels)
      return f->type == prometheus::MetricType::Counter ? metric.counter.value : metric.gauge.value;
  }
  return std::nullopt;
}

class PrometheusTest : public ::testing::Test {
protected:
  void SetUp() override {
    KVELECT_REQUIRE_NATS_SERVER();
    server_ = std::make_unique<NatsServer>();
    ConnectOptions options;
    options.servers = {server_->url()};
    connection_ = std::make_unique<Connection>(Connection::connect(options));
    BucketConfig config;
    config.name = "PROMETHEUS_TEST";
    config.ttl = 1s;
    config.storage = Storage::memory;
    bucket_ = std::make_unique<Bucket>(Bucket::create(*connection_, config));
  }
  void TearDown() override {
    bucket_.reset();
    connection_.reset();
    server_.reset();
  }

  std::unique_ptr<Election> member(const std::string& name, const std::string& key = "job") {
    return std::make_unique<Election>(name, key, bucket_->get(),
                                      std::vector<Option>{SkipValidation(), WithStartupSplay(0ms)});
  }

  std::unique_ptr<NatsServer> server_;
  std::unique_ptr<Connection> connection_;
  std::unique_ptr<Bucket> bucket_;
};

TEST(PrometheusMetricsTest, EmptyCollectorReportsNothing) {
  PrometheusMetrics metrics;
  EXPECT_EQ(metrics.size(), 0U);
  EXPECT_TRUE(metrics.collect().empty());
  EXPECT_TRUE(metrics.collectable()->Collect().empty());
  EXPECT_TRUE(metrics.listening_ports().empty());
}

TEST(PrometheusMetricsTest, UnusableAddressThrows) {
  EXPECT_THROW(PrometheusMetrics("256.0.0.1:1"), Error);
}

TEST_F(PrometheusTest, WinIsExported) {
  auto e = member("m1");
  PrometheusMetrics metrics;
  metrics.add(*e);
  EXPECT_EQ(metrics.size(), 1U);
  const Labels labels{{"election", "job"}, {"member", "m1"}};

  auto before = metrics.collect();
  EXPECT_EQ(sample(before, "kvelect_leader", labels), 0.0);
  EXPECT_EQ(sample(before, "kvelect_wins_total", labels), 0.0);

  e->start();
  ASSERT_TRUE(e->await(10s));

  const auto families = metrics.collect();
  EXPECT_EQ(sample(families, "kvelect_leader", labels), 1.0);
  EXPECT_EQ(sample(families, "kvelect_wins_total", labels), 1.0);
  EXPECT_EQ(sample(families, "kvelect_losses_total", labels), 0.0);
  Labels leader_state = labels;
  leader_state["state"] = "leader";
  EXPECT_EQ(sample(families, "kvelect_state", leader_state), 1.0);
  Labels candidate_campaigns = labels;
  candidate_campaigns["state"] = "candidate";
  EXPECT_GE(sample(families, "kvelect_campaigns_total", candidate_campaigns).value_or(-1), 0.0);
  EXPECT_GT(sample(families, "kvelect_campaign_interval_seconds", labels).value_or(0), 0.0);
  EXPECT_GT(sample(families, "kvelect_acquire_seconds", labels).value_or(0), 0.0);

  ASSERT_NE(family(families, "kvelect_wins_total"), nullptr);
  EXPECT_EQ(family(families, "kvelect_wins_total")->type, prometheus::MetricType::Counter);
  ASSERT_NE(family(families, "kvelect_leader"), nullptr);
  EXPECT_EQ(family(families, "kvelect_leader")->type, prometheus::MetricType::Gauge);

  // The collectable serves the same thing.
  EXPECT_EQ(sample(metrics.collectable()->Collect(), "kvelect_leader", labels), 1.0);
  e->stop();
}

TEST_F(PrometheusTest, LossAndRenewalsAreExported) {
  auto e = member("m1");
  PrometheusMetrics metrics;
  metrics.add(*e);
  const Labels labels{{"election", "job"}, {"member", "m1"}};
  Labels leader_campaigns = labels;
  leader_campaigns["state"] = "leader";

  e->start();
  ASSERT_TRUE(e->await(10s));
  // With a 1 s TTL the leader renews several times a second.
  EXPECT_TRUE(eventually([&] {
    return sample(metrics.collect(), "kvelect_campaigns_total", leader_campaigns).value_or(0) >=
           1.0;
  }));
  // The campaign counter moves when a renewal is sent, the latency when its reply arrives.
  EXPECT_TRUE(eventually([&] {
    return sample(metrics.collect(), "kvelect_renewal_latency_max_seconds", labels).value_or(0) >
           0.0;
  }));

  ASSERT_TRUE(e->resign());
  EXPECT_TRUE(eventually([&] {
    const auto families = metrics.collect();
    return sample(families, "kvelect_leader", labels) == 0.0 &&
           sample(families, "kvelect_losses_total", labels) == 1.0;
  }));
  e->stop();
}

TEST_F(PrometheusTest, RegistrationRules) {
  auto a = member("m1");
  auto b = member("m2");
  auto twin = member("m1"); // same key and name as `a`
  PrometheusMetrics metrics;
  metrics.add(*a);
  metrics.add(*a); // again: no-op
  EXPECT_EQ(metrics.size(), 1U);
  EXPECT_THROW(metrics.add(*twin), Error);
  metrics.add(*b);
  EXPECT_EQ(metrics.size(), 2U);

  const auto both = metrics.collect();
  EXPECT_TRUE(sample(both, "kvelect_leader", {{"election", "job"}, {"member", "m1"}}));
  EXPECT_TRUE(sample(both, "kvelect_leader", {{"election", "job"}, {"member", "m2"}}));

  EXPECT_TRUE(metrics.remove(*a));
  EXPECT_FALSE(metrics.remove(*a));
  const auto one = metrics.collect();
  EXPECT_FALSE(sample(one, "kvelect_leader", {{"election", "job"}, {"member", "m1"}}));
  EXPECT_TRUE(sample(one, "kvelect_leader", {{"election", "job"}, {"member", "m2"}}));
  metrics.add(*twin); // its labels are free again
  EXPECT_EQ(metrics.size(), 2U);
}

TEST_F(PrometheusTest, CollectableOutlivingItsOwnerReportsNothing) {
  auto e = member("m1");
  std::shared_ptr<prometheus::Collectable> collectable;
  {
    PrometheusMetrics metrics;
    metrics.add(*e);
    collectable = metrics.collectable();
    EXPECT_FALSE(collectable->Collect().empty());
  }
  EXPECT_TRUE(collectable->Collect().empty());
}

TEST_F(PrometheusTest, ServedOnItsOwnAddressWithTheRegistry) {
  auto e = member("m1");
  PrometheusMetrics metrics("127.0.0.1:0");
  const auto ports = metrics.listening_ports();
  ASSERT_EQ(ports.size(), 1U);
  auto& app =
      prometheus::BuildCounter().Name("app_jobs_total").Help("jobs").Register(*metrics.registry());
  app.Add({}).Increment(3);

  metrics.add(*e);
  e->start();
  ASSERT_TRUE(e->await(10s));

  const auto response = http_get(ports[0], "/metrics", 5s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_NE(response->body.find("kvelect_leader{election=\"job\",member=\"m1\"} 1"),
            std::string::npos)
      << response->body;
  EXPECT_NE(response->body.find("kvelect_wins_total{election=\"job\",member=\"m1\"} 1"),
            std::string::npos);
  EXPECT_NE(response->body.find("app_jobs_total 3"), std::string::npos);
  e->stop();
}

TEST_F(PrometheusTest, ServedByTheCallersExposer) {
  auto e = member("m1");
  prometheus::Exposer exposer("127.0.0.1:0");
  PrometheusMetrics metrics(exposer, "/election-metrics");
  metrics.add(*e);
  e->start();
  ASSERT_TRUE(e->await(10s));

  const auto ports = exposer.GetListeningPorts();
  ASSERT_EQ(ports.size(), 1U);
  const auto response = http_get(ports[0], "/election-metrics", 5s);
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_NE(response->body.find("kvelect_leader{election=\"job\",member=\"m1\"} 1"),
            std::string::npos)
      << response->body;
  e->stop();
}

} // namespace
} // namespace kvelect::testing
