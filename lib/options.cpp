// SPDX-License-Identifier: Apache-2.0
#include <kvelect/options.hpp>

#include <utility>

namespace kvelect {

Option OnWon(std::function<void()> callback) {
  return {[cb = std::move(callback)](Config& c) {
    if (cb)
      c.on_won = [cb](Token) { cb(); };
    else
      c.on_won = nullptr;
  }};
}

Option OnWon(std::function<void(Token)> callback) {
  return {[cb = std::move(callback)](Config& c) { c.on_won = cb; }};
}

Option OnLost(std::function<void()> callback) {
  return {[cb = std::move(callback)](Config& c) { c.on_lost = cb; }};
}

Option OnCampaign(std::function<void(State)> callback) {
  return {[cb = std::move(callback)](Config& c) { c.on_campaign = cb; }};
}

Option OnNewLeader(std::function<void(std::optional<std::string_view>)> callback) {
  return {[cb = std::move(callback)](Config& c) { c.on_new_leader = cb; }};
}

Option OnError(std::function<void(const Error&)> callback) {
  return {[cb = std::move(callback)](Config& c) { c.on_error = cb; }};
}

Option WithBackoff(std::shared_ptr<const Backoff> policy) {
  if (!policy)
    throw Error(Errc::invalid_option, "WithBackoff: the backoff policy is null");
  return {[p = std::move(policy)](Config& c) { c.backoff = p; }};
}

Option WithDebug(std::function<void(std::string_view)> sink) {
  return {[s = std::move(sink)](Config& c) { c.debug = s; }};
}

Option WithLog(std::function<void(LogLevel, std::string_view)> sink) {
  return {[s = std::move(sink)](Config& c) { c.log = s; }};
}

Option WithJetStream(jsCtx* jetstream) {
  if (jetstream == nullptr)
    throw Error(Errc::invalid_option, "WithJetStream: the JetStream context is null");
  return {[jetstream](Config& c) { c.jetstream = jetstream; }};
}

Option SkipValidation() {
  return {[](Config& c) { c.skip_validation = true; }};
}

Option WithStartupSplay(std::chrono::milliseconds max_splay) {
  if (max_splay.count() < 0)
    throw Error(Errc::invalid_option, "WithStartupSplay: the splay must not be negative");
  return {[max_splay](Config& c) { c.startup_splay = max_splay; }};
}

Option WithReleaseOnStop(bool release) {
  return {[release](Config& c) { c.release_on_stop = release; }};
}

Option WithTermLimit(std::chrono::milliseconds limit) {
  if (limit.count() <= 0)
    throw Error(Errc::invalid_option, "WithTermLimit: the term limit must be positive");
  return {[limit](Config& c) { c.term_limit = limit; }};
}

Option WithHealthCheck(std::function<bool()> healthy, std::chrono::milliseconds interval) {
  if (!healthy)
    throw Error(Errc::invalid_option, "WithHealthCheck: the health check is null");
  if (interval.count() <= 0)
    throw Error(Errc::invalid_option, "WithHealthCheck: the interval must be positive");
  return {[h = std::move(healthy), interval](Config& c) {
    c.health_check = h;
    c.health_interval = interval;
  }};
}

} // namespace kvelect
