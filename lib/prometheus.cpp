// SPDX-License-Identifier: Apache-2.0
// kvelect::PrometheusMetrics: a prometheus-cpp Collectable that reads Election::stats() on every
// scrape (include/kvelect/prometheus.hpp).
#include <kvelect/prometheus.hpp>

#include <kvelect/error.hpp>
#include <kvelect/state.hpp>

#include <prometheus/client_metric.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_type.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <mutex>
#include <string_view>
#include <utility>

namespace kvelect {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

struct Entry {
  const Election* election;
  std::string key;
  std::string name;
};

double seconds(std::chrono::microseconds value) {
  return std::chrono::duration<double>(value).count();
}

double seconds(std::chrono::milliseconds value) {
  return std::chrono::duration<double>(value).count();
}

// One family being filled with a sample per election.
class FamilyBuilder {
public:
  FamilyBuilder(std::string name, std::string help, MetricType type) {
    family_.name = std::move(name);
    family_.help = std::move(help);
    family_.type = type;
  }

  void add(const Entry& entry, double value, std::string_view state = {}) {
    ClientMetric metric;
    metric.label.push_back({"election", entry.key});
    metric.label.push_back({"member", entry.name});
    if (!state.empty())
      metric.label.push_back({"state", std::string(state)});
    if (family_.type == MetricType::Counter)
      metric.counter.value = value;
    else
      metric.gauge.value = value;
    family_.metric.push_back(std::move(metric));
  }

  MetricFamily take() { return std::move(family_); }

private:
  MetricFamily family_;
};

} // namespace

// Shared with the exposers that serve it (they hold it weakly); PrometheusMetrics' destructor
// empties it, so that a collector that outlives its owner reads no election.
class PrometheusMetrics::Collector final : public prometheus::Collectable {
public:
  std::vector<MetricFamily> Collect() const override;

  void add(const Election& election) {
    std::lock_guard lock(mu_);
    for (const auto& entry : entries_) {
      if (entry.election == &election)
        return;
      if (entry.key == election.key() && entry.name == election.name())
        throw Error(Errc::invalid_argument, "another election with key '" + election.key() +
                                                "' and member '" + election.name() +
                                                "' is already exported");
    }
    entries_.push_back({&election, election.key(), election.name()});
  }

  bool remove(const Election& election) noexcept {
    std::lock_guard lock(mu_);
    const auto it = std::find_if(entries_.begin(), entries_.end(),
                                 [&](const Entry& entry) { return entry.election == &election; });
    if (it == entries_.end())
      return false;
    entries_.erase(it);
    return true;
  }

  void clear() noexcept {
    std::lock_guard lock(mu_);
    entries_.clear();
  }

  std::size_t size() const {
    std::lock_guard lock(mu_);
    return entries_.size();
  }

private:
  // Held while a scrape reads the elections, so that remove() returning means "no longer read".
  mutable std::mutex mu_;
  std::vector<Entry> entries_;
};

std::vector<MetricFamily> PrometheusMetrics::Collector::Collect() const {
  std::lock_guard lock(mu_);
  if (entries_.empty())
    return {};

  FamilyBuilder campaigns("kvelect_campaigns_total",
                          "Campaigns made: state=\"candidate\" while campaigning for a vacant or "
                          "held key, state=\"leader\" for each renewal of the lease",
                          MetricType::Counter);
  FamilyBuilder leader("kvelect_leader", "1 while this member leads the election, else 0",
                       MetricType::Gauge);
  FamilyBuilder state("kvelect_state",
                      "1 for the member's current state (unknown, candidate, leader), 0 for the "
                      "others",
                      MetricType::Gauge);
  FamilyBuilder interval("kvelect_campaign_interval_seconds",
                         "The candidate campaign interval, without backoff", MetricType::Gauge);
  FamilyBuilder wins("kvelect_wins_total", "Times this member became the leader",
                     MetricType::Counter);
  FamilyBuilder losses("kvelect_losses_total", "Times this member stopped being the leader",
                       MetricType::Counter);
  FamilyBuilder creates("kvelect_create_attempts_total",
                        "Writes that tried to take a vacant election key", MetricType::Counter);
  FamilyBuilder failed("kvelect_failed_requests_total",
                       "KV requests that failed (lost races not included)", MetricType::Counter);
  FamilyBuilder acquire("kvelect_acquire_seconds",
                        "Time from the start of the winning campaign to OnWon, for the last win",
                        MetricType::Gauge);
  FamilyBuilder renewal("kvelect_renewal_latency_seconds",
                        "Latency of the last renewal of the lease", MetricType::Gauge);
  FamilyBuilder renewal_max("kvelect_renewal_latency_max_seconds",
                            "The largest renewal latency seen", MetricType::Gauge);

  for (const auto& entry : entries_) {
    const Stats stats = entry.election->stats();
    campaigns.add(entry, static_cast<double>(stats.candidate_campaigns), "candidate");
    campaigns.add(entry, static_cast<double>(stats.leader_campaigns), "leader");
    leader.add(entry, stats.is_leader ? 1.0 : 0.0);
    for (const State s : {State::Unknown, State::Candidate, State::Leader})
      state.add(entry, stats.state == s ? 1.0 : 0.0, to_string(s));
    interval.add(entry, seconds(stats.campaign_interval));
    wins.add(entry, static_cast<double>(stats.wins));
    losses.add(entry, static_cast<double>(stats.losses));
    creates.add(entry, static_cast<double>(stats.create_attempts));
    failed.add(entry, static_cast<double>(stats.failed_requests));
    acquire.add(entry, seconds(stats.last_acquire_time));
    renewal.add(entry, seconds(stats.last_renewal_latency));
    renewal_max.add(entry, seconds(stats.max_renewal_latency));
  }

  std::vector<MetricFamily> families;
  families.reserve(11);
  for (auto* builder : {&campaigns, &leader, &state, &interval, &wins, &losses, &creates, &failed,
                        &acquire, &renewal, &renewal_max})
    families.push_back(builder->take());
  return families;
}

PrometheusMetrics::PrometheusMetrics()
    : collector_(std::make_shared<Collector>()),
      registry_(std::make_shared<prometheus::Registry>()) {}

PrometheusMetrics::PrometheusMetrics(prometheus::Exposer& exposer, const std::string& uri)
    : PrometheusMetrics() {
  exposer.RegisterCollectable(collector_, uri);
}

PrometheusMetrics::PrometheusMetrics(const std::string& bind_address) : PrometheusMetrics() {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(bind_address);
  } catch (const std::exception& error) {
    throw Error(Errc::invalid_argument,
                "cannot serve metrics on '" + bind_address + "': " + error.what());
  }
  exposer_->RegisterCollectable(collector_);
  exposer_->RegisterCollectable(registry_);
}

PrometheusMetrics::~PrometheusMetrics() {
  exposer_.reset(); // stops the HTTP threads first: no scrape runs past this point
  collector_->clear();
}

void PrometheusMetrics::add(const Election& election) { collector_->add(election); }

bool PrometheusMetrics::remove(const Election& election) noexcept {
  return collector_->remove(election);
}

std::size_t PrometheusMetrics::size() const { return collector_->size(); }

std::vector<prometheus::MetricFamily> PrometheusMetrics::collect() const {
  return collector_->Collect();
}

std::shared_ptr<prometheus::Collectable> PrometheusMetrics::collectable() const {
  return collector_;
}

std::shared_ptr<prometheus::Registry> PrometheusMetrics::registry() const { return registry_; }

std::vector<int> PrometheusMetrics::listening_ports() const {
  return exposer_ ? exposer_->GetListeningPorts() : std::vector<int>{};
}

} // namespace kvelect
