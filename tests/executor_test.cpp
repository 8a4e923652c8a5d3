// SPDX-License-Identifier: Apache-2.0
// kvelect::Executor against a real nats-server: many elections on a few shared threads, the
// same protocol as elections with threads of their own, callbacks that reach other elections of
// the executor, and the executor's end.
#include "common.hpp"

#include <kvelect/executor.hpp>

#include <fmt/format.h>

namespace kvelect::testing {
namespace {

class ExecutorTest : public ::testing::Test {
protected:
  void SetUp() override {
    KVELECT_REQUIRE_NATS_SERVER();
    server_ = std::make_unique<NatsServer>();
    connection_ = std::make_unique<Connection>(connect_to(server_->url()));
    bucket_ = std::make_unique<Bucket>(make_bucket(*connection_, ttl));
  }
  void TearDown() override {
    bucket_.reset();
    connection_.reset();
    server_.reset();
  }
  std::unique_ptr<Election> member(Executor& executor, const std::string& name,
                                   const std::string& key, std::vector<Option> extra = {}) {
    std::vector<Option> options{SkipValidation(), WithStartupSplay(0ms), WithExecutor(executor)};
    return std::make_unique<Election>(name, key, bucket_->get(), concat(options, extra));
  }

  static constexpr auto ttl = 2s;
  std::unique_ptr<NatsServer> server_;
  std::unique_ptr<Connection> connection_;
  std::unique_ptr<Bucket> bucket_;
};

// The test of issue 7: 500 elections in one process, one member each, for a few TTLs. All are
// won, none is lost, and the process has exactly the executor's threads more than before.
TEST_F(ExecutorTest, FiveHundredElectionsOnFiveThreads) {
  constexpr int kElections = 500;
  const int threads_before = thread_count();
  Executor executor(ExecutorOptions{2});
  History history;
  std::vector<std::unique_ptr<Election>> elections;
  for (int i = 0; i < kElections; ++i) {
    const std::string name = fmt::format("m{}", i);
    elections.push_back(
        member(executor, name, fmt::format("job{}", i),
               {WithStartupSplay(250ms), OnWon([&history, name] { history.won(name); }),
                OnLost([&history, name] { history.lost(name); })}));
  }
  for (auto& e : elections)
    e->start();
  EXPECT_EQ(executor.elections(), static_cast<std::size_t>(kElections));
  ASSERT_TRUE(eventually([&] { return history.wins() == kElections; }, 30s))
      << history.wins() << " of " << kElections << " won";
  // A few TTLs of renewals: nobody loses, nobody wins twice.
  std::this_thread::sleep_for(3 * ttl);
  EXPECT_EQ(history.wins(), kElections);
  EXPECT_EQ(history.losses(), 0);
  int leading = 0;
  for (auto& e : elections)
    leading += e->is_leader() ? 1 : 0;
  EXPECT_EQ(leading, kElections);
  // 1 campaign thread + 1 or 2 request threads (the second starts only when a request has to
  // wait for one) + 1 watch thread for the one bucket + cnats' delivery thread of the
  // connection's write replies (docs/executor.md).
  const std::size_t threads = executor.threads();
  EXPECT_GE(threads, 4U);
  EXPECT_LE(threads, 5U);
  EXPECT_EQ(thread_count() - threads_before, static_cast<int>(threads));
  elections.clear(); // each stop() releases its key
  EXPECT_EQ(history.losses(), kElections);
  EXPECT_EQ(executor.elections(), 0U);
  // The watch and the writer end with their last election; the request threads stay.
  EXPECT_GE(executor.threads(), 2U);
  EXPECT_LE(executor.threads(), 3U);
}

// The test of issue 14: 10,000 elections in one process on one executor and one connection, with
// asynchronous writes. All are won, none is lost over a few renewals, and the process's OS
// threads stay bounded (no thread per election or per request). A longer TTL than the other
// tests keeps the renewal rate (10,000 / (2/3 × 10 s) = 1,500 writes a second) within what a
// loaded 2-core test machine serves with room to spare.
TEST_F(ExecutorTest, TenThousandElectionsOnOneConnection) {
  constexpr int kElections = 10'000;
  constexpr auto long_ttl = 10s;
  auto bucket = make_bucket(*connection_, long_ttl);
  const int threads_before = thread_count();
  Executor executor(ExecutorOptions{2});
  std::atomic<int> wins{0};
  std::atomic<int> losses{0};
  std::vector<std::unique_ptr<Election>> elections;
  elections.reserve(kElections);
  for (int i = 0; i < kElections; ++i)
    elections.push_back(std::make_unique<Election>(
        "member", fmt::format("job{}", i), bucket.get(), SkipValidation(), WithExecutor(executor),
        WithStartupSplay(1000ms), OnWon([&wins] { ++wins; }), OnLost([&losses] { ++losses; })));
  const auto started = std::chrono::steady_clock::now();
  for (auto& e : elections)
    e->start();
  ASSERT_TRUE(eventually([&] { return wins.load() == kElections; }, 120s))
      << wins.load() << " of " << kElections << " won";
  const auto won_after = std::chrono::steady_clock::now() - started;
  std::fprintf(stderr, "all %d won %.2f s after start()\n", kElections,
               std::chrono::duration<double>(won_after).count());
  // 1 campaign thread + 1 or 2 request threads + 1 watch thread + 1 cnats delivery thread.
  EXPECT_LE(executor.threads(), 5U);
  EXPECT_LE(thread_count() - threads_before, 5);
  // Two renewal periods and more: every election renews twice, nobody loses.
  std::this_thread::sleep_for(long_ttl * 3 / 2);
  EXPECT_EQ(losses.load(), 0);
  EXPECT_EQ(wins.load(), kElections);
  int leading = 0;
  for (auto& e : elections)
    leading += e->is_leader() ? 1 : 0;
  EXPECT_EQ(leading, kElections);
  EXPECT_LE(thread_count() - threads_before, 5);
  elections.clear();
  EXPECT_EQ(losses.load(), kElections);
  EXPECT_EQ(executor.elections(), 0U);
}

// With async_writes off, the executor's elections write through the request pool as before
// issue 14: no reply subscription, one thread fewer, the same protocol.
TEST_F(ExecutorTest, SynchronousWritesStillWork) {
  Executor executor(ExecutorOptions{2, false});
  History history;
  auto a = member(executor, "a", "sync", {OnWon([&history] { history.won("a"); })});
  auto b = member(executor, "b", "sync", {OnWon([&history] { history.won("b"); })});
  a->start();
  ASSERT_TRUE(a->await(10s));
  b->start();
  std::this_thread::sleep_for(2 * ttl);
  EXPECT_TRUE(a->is_leader());
  EXPECT_FALSE(b->is_leader());
  // 1 campaign thread + 1 or 2 request threads + 1 watch thread, no reply subscription.
  EXPECT_GE(executor.threads(), 3U);
  EXPECT_LE(executor.threads(), 4U);
  a->stop();
  EXPECT_TRUE(b->await(10s)); // took over through a's release
}

// Executor members and members with threads of their own share one election: one leader at a
// time, and a stopped leader's successor takes over at once through the release.
TEST_F(ExecutorTest, ExecutorAndThreadMembersShareAnElection) {
  Executor first;
  Executor second;
  History history;
  auto options = [&](const std::string& name) { return history.options_for(name); };
  auto a = member(first, "a", "job", options("a"));
  auto b = member(second, "b", "job", options("b"));
  auto c = std::make_unique<Election>(
      "c", "job", bucket_->get(), concat({SkipValidation(), WithStartupSplay(0ms)}, options("c")));
  a->start();
  ASSERT_TRUE(a->await(5s));
  b->start();
  c->start();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(b->leader(), std::optional<std::string>("a"));
  EXPECT_EQ(c->leader(), std::optional<std::string>("a"));
  for (int round = 0; round < 3; ++round) {
    Election* leader = a->is_leader() ? a.get() : b->is_leader() ? b.get() : c.get();
    ASSERT_TRUE(leader->is_leader());
    const auto wins = history.wins();
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(leader->resign());
    ASSERT_TRUE(eventually([&] { return history.wins() == wins + 1; }, 5s));
    // A release hands over without waiting for the TTL.
    EXPECT_LT(std::chrono::steady_clock::now() - t0, ttl);
  }
  a.reset();
  b.reset();
  c.reset();
  EXPECT_LE(history.max_active(), 1);
  EXPECT_EQ(history.wins(), history.losses());
}

// A callback may stop, resign and query other elections of its own executor: they run on the
// same thread, so these calls must not wait for it.
TEST_F(ExecutorTest, CallbacksReachOtherElectionsOfTheExecutor) {
  Executor executor;
  auto other = member(executor, "o", "other");
  other->start();
  ASSERT_TRUE(other->await(5s));
  std::atomic<bool> resigned{false};
  std::atomic<bool> awaited{true};
  std::atomic<bool> stopped{false};
  auto caller = member(executor, "c", "caller", {OnWon([&] {
                         awaited = other->await(10s);
                         resigned = other->resign();
                         other->stop();
                         stopped = other->state() == State::Unknown;
                       })});
  const auto t0 = std::chrono::steady_clock::now();
  caller->start();
  ASSERT_TRUE(caller->await(5s));
  ASSERT_TRUE(eventually([&] { return stopped.load(); }, 5s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "a call from the callback waited";
  EXPECT_TRUE(awaited.load()) << "await() on the executor's thread answers at once";
  EXPECT_TRUE(resigned.load());
  EXPECT_FALSE(other->is_leader());
  EXPECT_EQ(executor.elections(), 1U);
  // The callback's election carries on.
  std::this_thread::sleep_for(ttl);
  EXPECT_TRUE(caller->is_leader());
  caller->stop();
  EXPECT_EQ(executor.elections(), 0U);
}

// Destroying an executor stops its elections as stop() would (OnLost, release); they can no
// longer be started on it.
TEST_F(ExecutorTest, DestroyingTheExecutorStopsItsElections) {
  auto executor = std::make_unique<Executor>();
  std::atomic<int> lost{0};
  auto e = member(*executor, "a", "job", {OnLost([&] { ++lost; })});
  e->start();
  ASSERT_TRUE(e->await(5s));
  executor.reset();
  EXPECT_EQ(lost.load(), 1);
  EXPECT_EQ(e->state(), State::Unknown);
  EXPECT_EQ(read_leader(bucket_->get(), "job"), std::nullopt) << "the key was not released";
  try {
    e->start();
    FAIL() << "start() on a destroyed executor did not throw";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), Errc::invalid_argument);
    EXPECT_NE(std::string(error.what()).find("executor"), std::string::npos) << error.what();
  }
  EXPECT_FALSE(e->is_leader());
}

// An executor destroyed from a callback of one of its own elections cannot wait for them: they
// run on until each is stopped, and then its threads end.
TEST_F(ExecutorTest, DestroyedFromItsOwnCallback) {
  const int threads_before = thread_count();
  auto executor = std::make_unique<Executor>();
  auto other = member(*executor, "o", "other");
  other->start();
  ASSERT_TRUE(other->await(5s));
  std::atomic<bool> destroyed{false};
  auto e = member(*executor, "a", "job", {OnWon([&] {
    executor.reset();
    destroyed = true;
  })});
  e->start();
  ASSERT_TRUE(eventually([&] { return destroyed.load(); }, 5s));
  std::this_thread::sleep_for(ttl); // both go on renewing
  EXPECT_TRUE(e->is_leader());
  EXPECT_TRUE(other->is_leader());
  other->stop();
  e->stop();
  EXPECT_EQ(read_leader(bucket_->get(), "job"), std::nullopt);
  EXPECT_TRUE(eventually([&] { return thread_count() == threads_before; }, 5s))
      << thread_count() - threads_before << " threads left";
}

TEST_F(ExecutorTest, BadSettingsAreNamed) {
  for (int threads : {0, -1, 65}) {
    try {
      Executor executor(ExecutorOptions{threads});
      FAIL() << "io_threads " << threads << " accepted";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), Errc::invalid_option);
      EXPECT_NE(std::string(error.what()).find("io_threads"), std::string::npos);
    }
  }
}

// run() with an executor: the caller's thread waits while the executor campaigns.
TEST_F(ExecutorTest, RunWaitsForItsToken) {
  Executor executor;
  auto e = member(executor, "a", "job");
  std::stop_source stop;
  std::jthread runner([&] { e->run(stop.get_token()); });
  ASSERT_TRUE(e->await(5s));
  stop.request_stop();
  runner.join();
  EXPECT_EQ(e->state(), State::Unknown);
  EXPECT_EQ(executor.elections(), 0U);
}

} // namespace
} // namespace kvelect::testing
