// SPDX-License-Identifier: Apache-2.0
// The core election against a real nats-server: winning, handover, vacancies, foreign writes,
// callbacks that call back in, lifecycle, and shared handles.
#include "common.hpp"

#include <kvelect/format.hpp>

#include <fmt/format.h>

#include <condition_variable>
#include <future>

#include <sys/resource.h>

namespace kvelect::testing {
namespace {

class ElectionTest : public ::testing::Test {
protected:
  void SetUp() override {
    KVELECT_REQUIRE_NATS_SERVER();
    connection_ = std::make_unique<Connection>(connect_to(SharedServer::get()->url()));
    bucket_ = std::make_unique<Bucket>(make_bucket(*connection_, 1s));
  }
  void TearDown() override {
    bucket_.reset();
    connection_.reset();
  }

  std::unique_ptr<Election> member(const std::string& name, std::vector<Option> extra = {},
                                   const std::string& key = "job") {
    std::vector<Option> options{SkipValidation(), WithStartupSplay(0ms)};
    for (auto& option : design_options())
      options.push_back(option);
    return std::make_unique<Election>(name, key, bucket_->get(), concat(options, extra));
  }

  static int leaders(const std::vector<std::unique_ptr<Election>>& members) {
    int count = 0;
    for (const auto& m : members)
      count += m->is_leader() ? 1 : 0;
    return count;
  }

  std::unique_ptr<Connection> connection_;
  std::unique_ptr<Bucket> bucket_;
};

TEST_F(ElectionTest, OneCandidateWins) {
  std::atomic<int> won{0};
  std::atomic<Token> token{0};
  auto e = member("solo", {OnWon([&](Token t) {
                    token = t;
                    ++won;
                  })});
  EXPECT_EQ(e->state(), State::Unknown);
  e->start();
  ASSERT_TRUE(e->await(5s));
  EXPECT_TRUE(e->is_leader());
  EXPECT_EQ(e->state(), State::Leader);
  // await() returns when the member leads; OnWon runs on the campaign thread at the same time.
  ASSERT_TRUE(eventually([&] { return won.load() == 1; }));
  ASSERT_TRUE(e->token().has_value());
  EXPECT_EQ(*e->token(), token.load());
  EXPECT_EQ(e->leader(), std::optional<std::string>("solo"));
  EXPECT_EQ(e->read_leader(), std::optional<std::string>("solo"));
  // Wire compatibility with Choria: the key's value is the member's name, as plain bytes.
  kvEntry* entry = nullptr;
  ASSERT_EQ(kvStore_Get(&entry, bucket_->get(), "job"), NATS_OK);
  EXPECT_EQ(std::string(kvEntry_ValueString(entry)), "solo");
  kvEntry_Destroy(entry);
  // Renewals keep it leader across several TTLs.
  std::this_thread::sleep_for(2500ms);
  EXPECT_TRUE(e->is_leader());
  EXPECT_EQ(won.load(), 1);
  EXPECT_GE(e->stats().leader_campaigns, 2U);
  e->stop();
  EXPECT_EQ(e->state(), State::Unknown);
  EXPECT_FALSE(e->is_leader());
}

// The campaign threads sleep between deadlines. An earlier bug woke a leader's thread again and
// again on a candidate-only timer that had passed: a whole core per leader, found by the scale
// benchmark. A leader and a candidate renewing every 250 ms (TTL 1 s) use a few milliseconds of
// CPU a second; a busy loop would use the whole wall time.
TEST_F(ElectionTest, LeaderAndCandidateSleepBetweenDeadlines) {
  auto leader = member("a");
  leader->start();
  ASSERT_TRUE(leader->await(5s));
  auto candidate = member("b");
  candidate->start();
  ASSERT_TRUE(eventually([&] { return candidate->leader() == std::optional<std::string>("a"); }));
  auto cpu_seconds = [] {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
  };
  const auto wall_start = std::chrono::steady_clock::now();
  const double cpu_start = cpu_seconds();
  std::this_thread::sleep_for(3s);
  const double cpu = cpu_seconds() - cpu_start;
  const double wall =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  EXPECT_TRUE(leader->is_leader());
  EXPECT_LT(cpu, 0.25 * wall) << "the process used " << cpu << " CPU-s in " << wall
                              << " s with one leader and one candidate";
  candidate->stop();
  leader->stop();
}

TEST_F(ElectionTest, ManyCandidatesExactlyOneLeader) {
  History history;
  std::vector<std::unique_ptr<Election>> members;
  for (int i = 0; i < 6; ++i) {
    const std::string name = fmt::format("m{}", i);
    members.push_back(member(name, history.options_for(name)));
  }
  for (auto& m : members)
    m->start();
  ASSERT_TRUE(eventually([&] { return leaders(members) == 1; }));
  const auto until = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < until) {
    EXPECT_LE(leaders(members), 1);
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(history.max_active(), 1);
  EXPECT_EQ(history.wins(), 1); // a stable leader: no churn
  std::string leader;
  for (auto& m : members)
    if (m->is_leader())
      leader = m->name();
  for (auto& m : members)
    EXPECT_EQ(m->leader(), std::optional<std::string>(leader)) << m->name();
  members.clear();
  EXPECT_EQ(history.active(), 0);
}

TEST_F(ElectionTest, LeaderStopsAndAnotherWinsFast) {
  History history;
  std::vector<std::unique_ptr<Election>> members;
  for (int i = 0; i < 3; ++i) {
    const std::string name = fmt::format("m{}", i);
    members.push_back(member(name, history.options_for(name)));
  }
  for (auto& m : members)
    m->start();
  ASSERT_TRUE(eventually([&] { return leaders(members) == 1; }));
  for (int round = 0; round < 2; ++round) {
    auto it = std::find_if(members.begin(), members.end(), [](auto& m) { return m->is_leader(); });
    ASSERT_NE(it, members.end());
    const std::string old = (*it)->name();
    (*it)->stop();
    members.erase(it);
    // The release lets a successor win without waiting for the TTL (generous bound: the TTL is
    // 1 s, so a win within 900 ms cannot have come from expiry).
    const auto stopped = std::chrono::steady_clock::now();
    ASSERT_TRUE(eventually([&] { return leaders(members) == 1; }, 5s));
    EXPECT_LT(std::chrono::steady_clock::now() - stopped, 900ms);
    EXPECT_EQ(history.max_active(), 1);
  }
}

TEST_F(ElectionTest, KeyDeletedGivesANewLeader) {
  History history;
  std::vector<std::unique_ptr<Election>> members;
  for (int i = 0; i < 3; ++i) {
    const std::string name = fmt::format("m{}", i);
    members.push_back(member(name, history.options_for(name)));
  }
  for (auto& m : members)
    m->start();
  ASSERT_TRUE(eventually([&] { return leaders(members) == 1; }));
  ASSERT_EQ(kvStore_Delete(bucket_->get(), "job"), NATS_OK);
  // The leader stands down on the delete; someone wins again after the takeover guard.
  ASSERT_TRUE(eventually([&] { return history.losses() == 1; }, 5s));
  ASSERT_TRUE(eventually([&] { return leaders(members) == 1; }, 5s));
  EXPECT_EQ(history.max_active(), 1);
  EXPECT_EQ(history.wins(), 2);
}

TEST_F(ElectionTest, ForeignOverwriteMakesTheLeaderStandDown) {
  std::atomic<int> lost{0};
  auto e = member("solo", {OnLost([&] { ++lost; })});
  e->start();
  ASSERT_TRUE(e->await(5s));
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t rev = 0;
  ASSERT_EQ(kvStore_PutString(&rev, bucket_->get(), "job", "intruder"), NATS_OK);
  // At once (from the watch), not at the next renewal.
  ASSERT_TRUE(eventually([&] { return lost.load() == 1; }, 3s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
  EXPECT_FALSE(e->is_leader());
  EXPECT_EQ(e->leader(), std::optional<std::string>("intruder"));
  // The intruder's value expires (no renewals), then the member wins again.
  ASSERT_TRUE(e->await(5s));
}

TEST_F(ElectionTest, StopWhileLeadingFiresOnLostExactlyOnce) {
  std::atomic<int> won{0}, lost{0};
  auto e = member("solo", {OnWon([&] { ++won; }), OnLost([&] { ++lost; })});
  e->start();
  ASSERT_TRUE(e->await(5s));
  e->stop();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(lost.load(), 1);
  e->stop(); // idempotent
  EXPECT_EQ(lost.load(), 1);
  // The key was released, not left to expire.
  EXPECT_EQ(read_leader(bucket_->get(), "job"), std::nullopt);
}

TEST_F(ElectionTest, NoCallbackRunsAfterStopReturns) {
  std::atomic<bool> stopped{false};
  std::atomic<int> late{0};
  auto note = [&] {
    if (stopped)
      ++late;
  };
  auto e = member("solo", {OnWon([&] { note(); }), OnLost([&] { note(); }),
                           OnCampaign([&](State) { note(); }),
                           OnNewLeader([&](std::optional<std::string_view>) { note(); })});
  e->start();
  ASSERT_TRUE(e->await(5s));
  e->stop();
  stopped = true;
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(late.load(), 0);
}

TEST_F(ElectionTest, CallbacksMayCallBackIntoTheElection) {
  // Choria's package holds its mutex while calling callbacks, so these calls deadlock there.
  Election* self = nullptr;
  std::atomic<int> checks{0};
  auto e = member("solo", {OnWon([&] {
                             EXPECT_TRUE(self->is_leader());
                             EXPECT_EQ(self->state(), State::Leader);
                             EXPECT_TRUE(self->token().has_value());
                             EXPECT_FALSE(self->leadership().stop_requested());
                             (void)self->stats();
                             ++checks;
                           }),
                           OnCampaign([&](State s) {
                             EXPECT_EQ(self->state(), s);
                             ++checks;
                           }),
                           OnLost([&] {
                             EXPECT_FALSE(self->is_leader());
                             ++checks;
                           })});
  self = e.get();
  e->start();
  ASSERT_TRUE(e->await(5s));
  ASSERT_TRUE(eventually([&] { return e->stats().leader_campaigns >= 1; }, 5s));
  e->stop();
  EXPECT_GE(checks.load(), 3);
}

// election.hpp: is_leader() turns true just before OnWon runs, and await() returns then, not
// after OnWon: a caller of await() may run while OnWon is still running.
TEST_F(ElectionTest, AwaitReturnsAndIsLeaderIsTrueBeforeOnWonHasReturned) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> on_won_running{false}, on_won_done{false};
  auto e = member("solo", {OnWon([&] {
                    on_won_running = true;
                    released.wait();
                    on_won_done = true;
                  })});
  e->start();
  ASSERT_TRUE(e->await(5s)) << "await() waited for OnWon to return";
  EXPECT_TRUE(e->is_leader());
  EXPECT_EQ(e->state(), State::Leader);
  EXPECT_FALSE(on_won_done.load());
  release.set_value();
  ASSERT_TRUE(eventually([&] { return on_won_done.load(); }, 5s));
  EXPECT_TRUE(on_won_running.load());
  e->stop();
}

TEST_F(ElectionTest, StopFromInsideOnWon) {
  Election* self = nullptr;
  std::atomic<int> lost{0};
  std::atomic<bool> returned{false};
  auto e = member("solo", {OnWon([&] {
                             self->stop();
                             // OnLost has fired before stop() returned, even here.
                             EXPECT_EQ(lost.load(), 1);
                             returned = true;
                           }),
                           OnLost([&] { ++lost; })});
  self = e.get();
  e->start();
  ASSERT_TRUE(eventually([&] { return returned.load(); }, 5s));
  ASSERT_TRUE(eventually([&] { return e->state() == State::Unknown; }, 5s));
  EXPECT_EQ(lost.load(), 1);
  EXPECT_FALSE(e->is_leader());
  e->stop(); // joins the finished thread
  // It can be started again.
  e->start();
  EXPECT_EQ(e->state(), State::Candidate);
}

// WithLog gets every line WithDebug gets, in the same order, each with its level: info for the
// transitions, error for a callback that threw, debug for the campaign steps.
TEST_F(ElectionTest, WithLogGetsEveryDebugLineWithItsLevel) {
  std::mutex mu;
  std::vector<std::string> debug_lines;
  std::vector<std::pair<LogLevel, std::string>> log_lines;
  auto e = member("solo", {OnWon([] { throw std::runtime_error("boom in OnWon"); }),
                           WithDebug([&](std::string_view line) {
                             const std::lock_guard lock(mu);
                             debug_lines.emplace_back(line);
                           }),
                           WithLog([&](LogLevel level, std::string_view line) {
                             const std::lock_guard lock(mu);
                             log_lines.emplace_back(level, line);
                           })});
  e->start();
  ASSERT_TRUE(e->await(5s));
  e->stop();
  const std::lock_guard lock(mu);
  ASSERT_EQ(debug_lines.size(), log_lines.size());
  for (std::size_t i = 0; i < debug_lines.size(); ++i)
    EXPECT_EQ(debug_lines[i], log_lines[i].second) << i;
  auto level_of = [&](std::string_view part) -> std::optional<LogLevel> {
    for (const auto& [level, line] : log_lines)
      if (line.find(part) != std::string::npos)
        return level;
    return std::nullopt;
  };
  EXPECT_EQ(level_of("campaigning as 'solo'"), LogLevel::info);
  EXPECT_EQ(level_of("won election 'job'"), LogLevel::info);
  EXPECT_EQ(level_of("OnWon callback threw: boom in OnWon"), LogLevel::error);
  EXPECT_EQ(level_of("lost leadership of 'job'"), LogLevel::info);
  EXPECT_EQ(level_of("left election 'job'"), LogLevel::info);
  EXPECT_EQ(to_string(LogLevel::warning), "warning");
}

TEST_F(ElectionTest, ThrowingCallbacksAreReportedAndTheLoopGoesOn) {
  std::atomic<int> errors{0};
  std::mutex mu;
  std::vector<std::string> debug_lines;
  auto e = member("solo", {OnWon([]() { throw std::runtime_error("boom in OnWon"); }),
                           OnCampaign([](State) { throw 42; }), OnError([&](const Error& error) {
                             if (error.code() == Errc::callback_failed)
                               ++errors;
                           }),
                           WithDebug([&](std::string_view line) {
                             std::lock_guard lock(mu);
                             debug_lines.emplace_back(line);
                           })});
  e->start();
  ASSERT_TRUE(e->await(5s));
  ASSERT_TRUE(eventually([&] { return e->stats().leader_campaigns >= 2; }, 5s));
  EXPECT_TRUE(e->is_leader());
  EXPECT_GE(errors.load(), 1);
  std::lock_guard lock(mu);
  EXPECT_TRUE(std::any_of(debug_lines.begin(), debug_lines.end(), [](const std::string& line) {
    return line.find("boom in OnWon") != std::string::npos;
  }));
}

TEST_F(ElectionTest, HundredStartStopCyclesLeakNoThreads) {
  const int before = thread_count();
  for (int i = 0; i < 100; ++i) {
    auto e = member("cycler");
    e->start();
    if (i % 10 == 0) {
      ASSERT_TRUE(e->await(5s));
    }
    e->stop();
  }
  auto same = member("reuser");
  for (int i = 0; i < 20; ++i) {
    same->start();
    same->stop();
  }
  same.reset();
  EXPECT_TRUE(eventually([&] { return thread_count() <= before; }, 5s))
      << "threads before " << before << ", after " << thread_count();
}

TEST_F(ElectionTest, TwoElectionsShareOneBucketHandle) {
  auto a = member("a", {}, "alpha");
  auto b = member("b", {}, "beta");
  auto a2 = member("a2", {}, "alpha");
  a->start();
  b->start();
  ASSERT_TRUE(a->await(5s));
  ASSERT_TRUE(b->await(5s));
  a2->start();
  std::this_thread::sleep_for(1500ms);
  EXPECT_TRUE(a->is_leader());
  EXPECT_TRUE(b->is_leader());
  EXPECT_FALSE(a2->is_leader());
  a->stop();
  ASSERT_TRUE(a2->await(5s));
  EXPECT_TRUE(b->is_leader());
}

TEST_F(ElectionTest, RunBlocksOnTheCallersThread) {
  auto e = member("runner");
  std::stop_source stop;
  std::atomic<bool> returned{false};
  std::thread runner([&] {
    e->run(stop.get_token());
    returned = true;
  });
  ASSERT_TRUE(e->await(5s));
  EXPECT_THROW(e->start(), Error);
  EXPECT_FALSE(returned.load());
  stop.request_stop();
  runner.join();
  EXPECT_TRUE(returned.load());
  EXPECT_EQ(e->state(), State::Unknown);
}

TEST_F(ElectionTest, ReleaseOnStopCanBeTurnedOff) {
  auto e = member("keeper", {WithReleaseOnStop(false)});
  e->start();
  ASSERT_TRUE(e->await(5s));
  e->stop();
  // Choria's behaviour: the key stays until it expires.
  EXPECT_EQ(read_leader(bucket_->get(), "job"), std::optional<std::string>("keeper"));
}

// ---------------------------------------------------------------------------------------------
// Bad input

TEST_F(ElectionTest, BadInputThrowsNamedErrors) {
  auto expect_code = [](Errc code, const std::function<void()>& make, std::string_view mention) {
    try {
      make();
      ADD_FAILURE() << "no error, expected " << to_string(code);
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), code) << error.what();
      EXPECT_NE(std::string(error.what()).find(mention), std::string::npos) << error.what();
    }
  };
  kvStore* kv = bucket_->get();
  expect_code(
      Errc::invalid_name, [&] { Election("", "job", kv); }, "name is empty");
  expect_code(
      Errc::invalid_name, [&] { Election("kvelect:released", "job", kv); }, "reserved");
  expect_code(
      Errc::invalid_key, [&] { Election("n", "", kv); }, "key is empty");
  for (const char* key : {".job", "job.", "a..b", "a b", "a*b", "a>b", "é"})
    expect_code(
        Errc::invalid_key, [&] { Election("n", key, kv); }, "not a valid KV key");
  expect_code(
      Errc::null_bucket, [&] { Election("n", "job", nullptr); }, "null");

  // TTL limits (Choria's 5 s .. 1 h), unless SkipValidation.
  auto short_bucket = make_bucket(*connection_, 2s);
  expect_code(
      Errc::ttl_too_short, [&] { Election("n", "job", short_bucket.get()); }, "minimum");
  auto long_bucket = make_bucket(*connection_, 2h);
  expect_code(
      Errc::ttl_too_long, [&] { Election("n", "job", long_bucket.get()); }, "maximum");
  EXPECT_NO_THROW(Election("n", "job", short_bucket.get(), SkipValidation()));

  // A bucket without TTL.
  kvConfig cfg;
  kvConfig_Init(&cfg);
  const std::string plain_name = unique_name("NOTTL");
  cfg.Bucket = plain_name.c_str();
  cfg.StorageType = js_MemoryStorage;
  kvStore* plain = nullptr;
  ASSERT_EQ(js_CreateKeyValue(&plain, connection_->jetstream(), &cfg), NATS_OK);
  expect_code(
      Errc::bucket_without_ttl, [&] { Election("n", "job", plain); }, "no TTL");
  kvStore_Destroy(plain);

  // Options out of range.
  expect_code(
      Errc::invalid_option, [&] { (void)WithStartupSplay(-1ms); }, "negative");
  expect_code(
      Errc::invalid_option, [&] { (void)WithBackoff(nullptr); }, "null");
  expect_code(
      Errc::invalid_option, [&] { (void)WithTermLimit(0ms); }, "positive");
  expect_code(
      Errc::invalid_option, [&] { (void)backoff::stepped({}); }, "at least one");

  // start() twice.
  Election e("n", "job", kv, SkipValidation());
  e.start();
  expect_code(
      Errc::already_running, [&] { e.start(); }, "already running");
  e.stop();
}

TEST_F(ElectionTest, ClosedConnectionIsAClearError) {
  auto connection = connect_to(SharedServer::get()->url());
  auto bucket = Bucket::open(connection, kvStore_Bucket(bucket_->get()));
  natsConnection_Close(connection.get());
  try {
    Election e("n", "job", bucket.get(), SkipValidation());
    ADD_FAILURE() << "no error";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), Errc::connection_closed) << error.what();
  }
  EXPECT_THROW(Bucket::open(connection, "anything"), Error);
}

TEST_F(ElectionTest, UnknownBucketAndServerAreNamed) {
  try {
    Bucket::open(*connection_, "NO_SUCH_BUCKET");
    ADD_FAILURE();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), Errc::not_found);
    EXPECT_NE(std::string(error.what()).find("NO_SUCH_BUCKET"), std::string::npos);
  }
  ConnectOptions nowhere;
  nowhere.servers = {fmt::format("nats://127.0.0.1:{}", free_loopback_port())};
  nowhere.timeout = 500ms;
  try {
    Connection::connect(nowhere);
    ADD_FAILURE();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), Errc::not_found) << error.what();
    EXPECT_NE(std::string(error.what()).find("127.0.0.1"), std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------
// Pure pieces

TEST(StateTest, NamesAndFormatter) {
  EXPECT_EQ(to_string(State::Unknown), "unknown");
  EXPECT_EQ(to_string(State::Candidate), "candidate");
  EXPECT_EQ(to_string(State::Leader), "leader");
  EXPECT_EQ(fmt::format("{}", State::Leader), "leader");
  EXPECT_EQ(fmt::format("{:>10}", State::Candidate), " candidate");
  EXPECT_EQ(static_cast<unsigned>(State::Leader), 2U); // Choria's LeaderState
  EXPECT_EQ(fmt::format("{}", Errc::ttl_too_short), "ttl_too_short");
  const std::error_code ec = Errc::bucket_deleted;
  EXPECT_EQ(ec.category().name(), std::string("kvelect"));
  EXPECT_TRUE(Error(Errc::bucket_deleted, "x").fatal());
  EXPECT_FALSE(Error(Errc::request_failed, "x").fatal());
}

TEST(BackoffTest, ChoriaPoliciesStayInTheirRanges) {
  const auto twenty = backoff::twenty_seconds();
  const auto five = backoff::five_seconds();
  for (int i = 0; i < 200; ++i) {
    const auto first = twenty->duration(0);
    EXPECT_GE(first, 250ms);
    EXPECT_LE(first, 750ms);
    const auto last = twenty->duration(1000);
    EXPECT_GE(last, 10s);
    EXPECT_LE(last, 30s);
    const auto five_last = five->duration(1000);
    EXPECT_GE(five_last, 2500ms);
    EXPECT_LE(five_last, 7500ms);
  }
  EXPECT_LE(twenty->duration(-5), 750ms);
}

TEST(KeyTest, ValidKeys) {
  EXPECT_TRUE(valid_key("job"));
  EXPECT_TRUE(valid_key("a.b-c_d/e=f"));
  EXPECT_FALSE(valid_key(""));
  EXPECT_FALSE(valid_key(".a"));
  EXPECT_FALSE(valid_key("a."));
  EXPECT_FALSE(valid_key("a..b"));
  EXPECT_FALSE(valid_key("a b"));
  EXPECT_FALSE(valid_key("a>"));
}

} // namespace
} // namespace kvelect::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new kvelect::testing::SharedServer); // NOLINT: gtest owns it
  return RUN_ALL_TESTS();
}
