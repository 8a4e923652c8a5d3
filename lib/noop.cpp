// SPDX-License-Identifier: Apache-2.0
#include <kvelect/election.hpp>

#include <condition_variable>
#include <mutex>

namespace kvelect {

struct NoopElection::State_ {
  std::string name;
  Config config;
  std::mutex mu;
  std::condition_variable_any changed;
  bool leading = false;
  std::stop_source leadership{std::nostopstate};
};

NoopElection::NoopElection(std::string name, const std::vector<Option>& options)
    : s_(std::make_unique<State_>()) {
  if (name.empty())
    throw Error(Errc::invalid_name, "member name is empty");
  s_->name = std::move(name);
  for (const auto& option : options)
    if (option.apply)
      option.apply(s_->config);
}

NoopElection::~NoopElection() { stop(); }

void NoopElection::start() {
  {
    std::lock_guard lock(s_->mu);
    if (s_->leading)
      throw Error(Errc::already_running, "noop election is already running");
    s_->leading = true;
    s_->leadership = std::stop_source();
  }
  s_->changed.notify_all();
  // Called without the lock, like Election's callbacks.
  if (s_->config.on_new_leader)
    s_->config.on_new_leader(std::string_view(s_->name));
  if (s_->config.on_won)
    s_->config.on_won(1);
}

void NoopElection::stop() noexcept {
  {
    std::lock_guard lock(s_->mu);
    if (!s_->leading)
      return;
    s_->leading = false;
    s_->leadership.request_stop();
  }
  s_->changed.notify_all();
  try {
    if (s_->config.on_lost)
      s_->config.on_lost();
  } catch (...) { // NOLINT(bugprone-empty-catch): stop() is noexcept; a throwing OnLost is dropped
  }
}

bool NoopElection::is_leader() const {
  std::lock_guard lock(s_->mu);
  return s_->leading;
}

kvelect::State NoopElection::state() const {
  return is_leader() ? kvelect::State::Leader : kvelect::State::Unknown;
}

std::optional<Token> NoopElection::token() const {
  return is_leader() ? std::optional<Token>(1) : std::nullopt;
}

std::optional<std::string> NoopElection::leader() const {
  return is_leader() ? std::optional<std::string>(s_->name) : std::nullopt;
}

bool NoopElection::await(std::chrono::milliseconds timeout) {
  std::unique_lock lock(s_->mu);
  return s_->changed.wait_for(lock, timeout, [this] { return s_->leading; });
}

bool NoopElection::await(std::stop_token stop) {
  std::unique_lock lock(s_->mu);
  return s_->changed.wait(lock, stop, [this] { return s_->leading; });
}

std::stop_token NoopElection::leadership() const {
  std::lock_guard lock(s_->mu);
  if (s_->leading)
    return s_->leadership.get_token();
  std::stop_source ended;
  ended.request_stop();
  return ended.get_token();
}

bool NoopElection::resign() {
  const bool was = is_leader();
  stop();
  return was;
}

} // namespace kvelect
