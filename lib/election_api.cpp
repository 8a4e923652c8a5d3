// SPDX-License-Identifier: Apache-2.0
// kvelect::Election's and kvelect::Observer's construction, validation and queries, and the free
// functions of include/kvelect/election.hpp. The driver is in lib/election.cpp.
#include "election_impl.hpp"

#include "core/rules.hpp"

#include <kvelect/nats.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <random>
#include <utility>

namespace kvelect {

using namespace std::chrono_literals;
using detail::Outcome;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

namespace {

// Choria's limits on the bucket TTL (lifted by SkipValidation()).
constexpr milliseconds kMinTtl = 5s;
constexpr milliseconds kMaxTtl = 1h;
constexpr std::size_t kMaxNameLength = 1024;

Config make_config(const std::vector<Option>& options) {
  Config config;
  for (const auto& option : options)
    if (option.apply)
      option.apply(config);
  return config;
}

core::Params make_params(const std::string& name, const std::string& key, const Config& config,
                         bool observe_only, milliseconds ttl, milliseconds interval) {
  core::Params params;
  params.name = name;
  params.key = key;
  params.observe_only = observe_only;
  params.bucket.ttl = ttl;
  params.campaign_interval = interval;
  if (config.backoff)
    params.backoff = [backoff = config.backoff](int failed) -> core::Duration {
      return backoff->duration(failed);
    };
  params.startup_splay = config.startup_splay;
  params.release_on_stop = config.release_on_stop;
  params.term_limit = config.term_limit;
  params.health_check = static_cast<bool>(config.health_check);
  params.health_interval = config.health_interval;
  params.seed = std::random_device{}();
  return params;
}

} // namespace

bool valid_key(std::string_view key) noexcept {
  if (key.empty() || key.front() == '.' || key.back() == '.')
    return false;
  char previous = 0;
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '/' || c == '_' || c == '=' || c == '.';
    if (!ok || (c == '.' && previous == '.'))
      return false;
    previous = c;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Construction and validation

Election::Impl::Impl(std::string name, std::string key, kvStore* bucket,
                     const std::vector<Option>& options, bool observe_only)
    : name_(std::move(name)), key_(std::move(key)), bucket_(bucket), config_(make_config(options)),
      observe_only_(observe_only), executor_(config_.executor) {
  if (!observe_only_) {
    if (name_.empty())
      throw Error(Errc::invalid_name, "member name is empty");
    if (name_.size() > kMaxNameLength)
      throw Error(Errc::invalid_name, fmt::format("member name is {} bytes long, the limit is {}",
                                                  name_.size(), kMaxNameLength));
    if (core::rules::is_marker(name_))
      throw Error(Errc::invalid_name,
                  fmt::format("member name '{}' uses the reserved prefix 'kvelect:'", name_));
  }
  if (key_.empty())
    throw Error(Errc::invalid_key, "election key is empty");
  if (!valid_key(key_))
    throw Error(Errc::invalid_key,
                fmt::format("election key '{}' is not a valid KV key (allowed: [-/_=.a-zA-Z0-9], "
                            "no leading, trailing or doubled '.')",
                            key_));
  if (bucket_ == nullptr)
    throw Error(Errc::null_bucket, "bucket is null: pass an open kvStore*");

  // Throws connection_closed, not_found, bucket_unavailable.
  const BucketInfo info = bucket_info(bucket_);
  if (info.ttl <= 0ms)
    throw Error(Errc::bucket_without_ttl,
                fmt::format("bucket '{}' has no TTL (MaxAge): a dead leader would never expire; "
                            "create it with a TTL",
                            info.name));
  ttl_ms_ = info.ttl;
  if (!config_.skip_validation && ttl_ms_ < kMinTtl)
    throw Error(Errc::ttl_too_short, fmt::format("bucket '{}' TTL {} ms is below the {} ms minimum",
                                                 info.name, ttl_ms_.count(), kMinTtl.count()));
  if (!config_.skip_validation && ttl_ms_ > kMaxTtl)
    throw Error(Errc::ttl_too_long, fmt::format("bucket '{}' TTL {} ms is above the {} ms maximum",
                                                info.name, ttl_ms_.count(), kMaxTtl.count()));

  // Choria: campaign every 0.75 × TTL, at least 1 s, and at least 1 s below the TTL.
  interval_ms_ = ttl_ms_ * 3 / 4;
  if (!config_.skip_validation) {
    if (interval_ms_ < 1s)
      throw Error(Errc::invalid_option,
                  fmt::format("campaign interval {} ms is below 1 s", interval_ms_.count()));
    if (ttl_ms_ - interval_ms_ < 1s)
      throw Error(Errc::invalid_option,
                  fmt::format("campaign interval {} ms is within 1 s of the TTL {} ms",
                              interval_ms_.count(), ttl_ms_.count()));
  }
  if (interval_ms_ <= 0ms)
    interval_ms_ = 1ms;

  markers_ = detail::make_marker_check(config_.jetstream, bucket_);
  port_ = detail::make_cnats_port(bucket_, &markers_);
  core_ = std::make_unique<core::Protocol>(
      make_params(name_, key_, config_, observe_only_, ttl_ms_, interval_ms_));
  view_ = core_->view();
}

// ---------------------------------------------------------------------------------------------
// Queries

Election::Impl::TimePoint Election::Impl::clock_time(core::Time t) noexcept {
  return TimePoint(t.time_since_epoch());
}

bool Election::Impl::leading_now() const {
  // The lease end is checked here too, so a paused or cut-off leader answers false the moment
  // its lease ends, even before the loop has run (docs/protocol.md, "Lease").
  return view_.leading && Clock::now() < clock_time(view_.lease_end);
}

bool Election::Impl::is_leader() const {
  std::lock_guard lock(mu_);
  return leading_now();
}

State Election::Impl::state() const {
  std::lock_guard lock(mu_);
  if (view_.state == State::Leader && !leading_now())
    return State::Candidate;
  return view_.state;
}

std::optional<Token> Election::Impl::token() const {
  std::lock_guard lock(mu_);
  if (!leading_now())
    return std::nullopt;
  return view_.token;
}

std::optional<std::string> Election::Impl::leader() const {
  std::lock_guard lock(mu_);
  return view_.leader;
}

std::optional<std::string> Election::Impl::read_leader() const {
  return kvelect::read_leader(bucket_, key_);
}

bool Election::Impl::await(std::chrono::milliseconds timeout) {
  if (on_executor_thread()) // waiting would stop every election of the executor
    return is_leader();
  const auto deadline = Clock::now() + duration_cast<Clock::duration>(std::min<milliseconds>(
                                           std::max(timeout, 0ms), milliseconds(24h * 365)));
  std::unique_lock lock(mu_);
  for (;;) {
    if (leading_now())
      return true;
    const auto now = Clock::now();
    if (now >= deadline)
      return false;
    // Waits are sliced: converting a far deadline between clocks could overflow.
    changed_.wait_for(lock, std::min<Clock::duration>(deadline - now, 1s));
  }
}

bool Election::Impl::await(std::stop_token stop) {
  if (on_executor_thread())
    return is_leader();
  std::unique_lock lock(mu_);
  for (;;) {
    if (leading_now())
      return true;
    if (stop.stop_requested())
      return false;
    // Wake at least every 100 ms: a lease can end without a notification.
    changed_.wait_for(lock, stop, 100ms, [] { return false; });
  }
}

std::stop_token Election::Impl::leadership() const {
  std::lock_guard lock(mu_);
  if (leading_now())
    return leadership_.get_token();
  std::stop_source ended;
  ended.request_stop();
  return ended.get_token();
}

Stats Election::Impl::stats() const {
  std::lock_guard lock(mu_);
  Stats s;
  s.state = view_.state == State::Leader && !leading_now() ? State::Candidate : view_.state;
  s.is_leader = leading_now();
  s.candidate_campaigns = counters_.candidate_campaigns;
  s.leader_campaigns = counters_.leader_campaigns;
  s.wins = counters_.wins;
  s.losses = counters_.losses;
  s.create_attempts = counters_.create_attempts;
  s.failed_requests = counters_.failed_requests;
  s.campaign_interval = duration_cast<milliseconds>(view_.campaign_interval);
  using std::chrono::microseconds;
  s.last_acquire_time = duration_cast<microseconds>(counters_.last_acquire_time);
  s.last_renewal_latency = duration_cast<microseconds>(counters_.last_renewal_latency);
  s.max_renewal_latency = duration_cast<microseconds>(counters_.max_renewal_latency);
  s.last_error = counters_.last_error;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Election

Election::Election(std::string name, std::string key, kvStore* bucket,
                   const std::vector<Option>& options)
    : impl_(std::make_shared<Impl>(std::move(name), std::move(key), bucket, options, false)) {}

Election::~Election() { impl_->stop(); }

void Election::start() { impl_->start(); }
void Election::stop() noexcept { impl_->stop(); }
void Election::run(std::stop_token stop) { impl_->run(std::move(stop)); }
bool Election::is_leader() const { return impl_->is_leader(); }
State Election::state() const { return impl_->state(); }
std::optional<Token> Election::token() const { return impl_->token(); }
std::optional<std::string> Election::leader() const { return impl_->leader(); }
std::optional<std::string> Election::read_leader() const { return impl_->read_leader(); }
bool Election::await(std::chrono::milliseconds timeout) { return impl_->await(timeout); }
bool Election::await(std::stop_token stop) { return impl_->await(std::move(stop)); }
std::stop_token Election::leadership() const { return impl_->leadership(); }
bool Election::resign() { return impl_->resign(); }
Stats Election::stats() const { return impl_->stats(); }
const std::string& Election::name() const noexcept { return impl_->name(); }
const std::string& Election::key() const noexcept { return impl_->key(); }
std::chrono::milliseconds Election::ttl() const noexcept { return impl_->ttl(); }
std::chrono::milliseconds Election::campaign_interval() const noexcept {
  return impl_->campaign_interval();
}

// ---------------------------------------------------------------------------------------------
// Observer

Observer::Observer(std::string key, kvStore* bucket, std::vector<Option> options) {
  options.push_back(SkipValidation()); // an observer accepts any bucket that has a TTL
  impl_ = std::make_shared<Election::Impl>(std::string(), std::move(key), bucket, options, true);
}
Observer::~Observer() { impl_->stop(); }
void Observer::start() { impl_->start(); }
void Observer::stop() noexcept { impl_->stop(); }
std::optional<std::string> Observer::leader() const { return impl_->leader(); }
std::optional<std::string> Observer::read_leader() const { return impl_->read_leader(); }
std::optional<std::string> Observer::evict() {
  return kvelect::evict(impl_->bucket(), impl_->key());
}

// ---------------------------------------------------------------------------------------------
// Free functions

namespace {

void check_bucket_and_key(kvStore* bucket, std::string_view key) {
  if (bucket == nullptr)
    throw Error(Errc::null_bucket, "bucket is null: pass an open kvStore*");
  if (!valid_key(key))
    throw Error(Errc::invalid_key, fmt::format("election key '{}' is not a valid KV key", key));
}

} // namespace

std::optional<std::string> read_leader(kvStore* bucket, std::string_view key) {
  check_bucket_and_key(bucket, key);
  auto port = detail::make_cnats_port(bucket);
  const auto result = port->read(key);
  if (result.outcome != Outcome::ok)
    throw Error(result.code, fmt::format("cannot read election '{}': {}", key, result.message));
  return core::rules::member_of(result.entry);
}

std::optional<std::string> evict(kvStore* bucket, std::string_view key) {
  check_bucket_and_key(bucket, key);
  auto port = detail::make_cnats_port(bucket);
  for (int attempt = 0; attempt < 5; ++attempt) {
    const auto read = port->read(key);
    if (read.outcome != Outcome::ok)
      throw Error(read.code, fmt::format("cannot read election '{}': {}", key, read.message));
    auto holder = core::rules::member_of(read.entry);
    if (!holder)
      return std::nullopt;
    // Revision-checked, so it marks exactly the leader we read and nobody who won since.
    const auto written = port->write(key, detail::kEvictValue, read.entry.revision);
    if (written.outcome == Outcome::ok)
      return holder;
    if (written.outcome != Outcome::lost_race)
      throw Error(written.code,
                  fmt::format("cannot evict the leader of '{}': {}", key, written.message));
  }
  throw Error(Errc::request_failed,
              fmt::format("cannot evict the leader of '{}': the key kept changing", key));
}

} // namespace kvelect
