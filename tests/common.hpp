// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the integration tests: one real nats-server per test binary, buckets, an
// event recorder on one monotonic clock, and polling with generous bounds.
#pragma once

#include <kvelect/kvelect.hpp>

#include "nats_server.hpp"

#include <nats/nats.h>

#include <gtest/gtest.h>

#include <dirent.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace kvelect::testing {

using namespace std::chrono_literals;

// One JetStream server for every test of a binary that does not need its own.
class SharedServer : public ::testing::Environment {
public:
  void SetUp() override {
    if (!nats_server_available())
      return;
    server_ = std::make_unique<NatsServer>();
  }
  void TearDown() override { server_.reset(); }
  static NatsServer* get() { return server_.get(); }

private:
  static inline std::unique_ptr<NatsServer> server_;
};

inline std::string unique_name(std::string_view prefix) {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name(prefix);
  name += "_";
  if (info != nullptr)
    for (char c : std::string(info->name()))
      name += (std::isalnum(static_cast<unsigned char>(c)) != 0) ? c : '_';
  name += "_" + std::to_string(counter++);
  return name;
}

// With KVELECT_TEST_EXECUTOR=1 the election and feature suites run their members on one shared
// kvelect::Executor (registered a second time that way in tests/meson.build), so that both
// designs pass the same tests. The executor lives for the whole test binary.
inline std::vector<Option> design_options() {
  const char* env = std::getenv("KVELECT_TEST_EXECUTOR");
  if (env == nullptr || std::string(env) != "1")
    return {};
  static auto* executor = new Executor(); // NOLINT: intentionally never destroyed
  return {WithExecutor(*executor)};
}

inline Connection connect_to(const std::string& url) {
  ConnectOptions options;
  options.servers = {url};
  options.timeout = 2s;
  return Connection::connect(options);
}

inline Bucket make_bucket(const Connection& connection, std::chrono::milliseconds ttl,
                          std::string name = {}) {
  BucketConfig config;
  config.name = name.empty() ? unique_name("B") : std::move(name);
  config.ttl = ttl;
  config.storage = Storage::memory;
  return Bucket::create(connection, config);
}

// Polls `condition` every 5 ms until it holds or `timeout` passes.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition())
      return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

inline int thread_count() {
  int count = 0;
  if (DIR* dir = opendir("/proc/self/task")) {
    while (dirent* entry = readdir(dir))
      if (entry->d_name[0] != '.')
        ++count;
    closedir(dir);
  }
  return count;
}

// Leadership intervals of many members on one clock; checks that no two overlap.
class History {
public:
  using Clock = std::chrono::steady_clock;
  void won(const std::string& member) {
    std::lock_guard lock(mu_);
    ++active_;
    max_active_ = std::max(max_active_, active_);
    ++wins_;
    events_.push_back({Clock::now(), member, true});
  }
  void lost(const std::string& member) {
    std::lock_guard lock(mu_);
    --active_;
    ++losses_;
    events_.push_back({Clock::now(), member, false});
  }
  int max_active() const {
    std::lock_guard lock(mu_);
    return max_active_;
  }
  int active() const {
    std::lock_guard lock(mu_);
    return active_;
  }
  int wins() const {
    std::lock_guard lock(mu_);
    return wins_;
  }
  int losses() const {
    std::lock_guard lock(mu_);
    return losses_;
  }
  // Options that record this member's OnWon/OnLost here.
  std::vector<Option> options_for(const std::string& member) {
    return {OnWon([this, member] { won(member); }), OnLost([this, member] { lost(member); })};
  }

private:
  struct Event {
    Clock::time_point at;
    std::string member;
    bool won;
  };
  mutable std::mutex mu_;
  int active_ = 0;
  int max_active_ = 0;
  int wins_ = 0;
  int losses_ = 0;
  std::vector<Event> events_;
};

// KVELECT_TEST_DEBUG=1 in the environment prints every member's debug log to stderr.
inline std::vector<Option> concat(std::vector<Option> a, const std::vector<Option>& b) {
  a.insert(a.end(), b.begin(), b.end());
  if (const char* env = std::getenv("KVELECT_TEST_DEBUG"); env != nullptr && *env == '1') // NOLINT
    a.push_back(WithDebug([](std::string_view line) {
      const auto now = std::chrono::steady_clock::now().time_since_epoch();
      std::fprintf(stderr, "%10.3f %.*s\n", std::chrono::duration<double>(now).count(),
                   static_cast<int>(line.size()), line.data());
    }));
  return a;
}

} // namespace kvelect::testing
