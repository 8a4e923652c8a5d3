// SPDX-License-Identifier: Apache-2.0
// What the other reference systems offer, against a real nats-server: leader lookup and
// OnNewLeader, Observer, await, the leadership stop token, term limits, health checks,
// eviction, fatal errors, the LeaderElection interface and NoopElection, stats.
#include "common.hpp"
#include "fault_proxy.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace kvelect::testing {
namespace {

using Sequence = std::vector<std::optional<std::string>>;

// The key's value as the server has it now; nullopt if there is no live value.
std::optional<std::string> value_of(kvStore* bucket, const char* key) {
  kvEntry* entry = nullptr;
  if (kvStore_Get(&entry, bucket, key) != NATS_OK)
    return std::nullopt;
  std::string value = kvEntry_ValueString(entry);
  kvEntry_Destroy(entry);
  return value;
}

class Recorder {
public:
  Option option() {
    return OnNewLeader([this](std::optional<std::string_view> leader) {
      std::lock_guard lock(mu_);
      seen_.push_back(leader ? std::optional<std::string>(std::string(*leader)) : std::nullopt);
    });
  }
  Sequence all() const {
    std::lock_guard lock(mu_);
    return seen_;
  }
  std::vector<std::string> named() const {
    std::vector<std::string> names;
    for (const auto& s : all())
      if (s)
        names.push_back(*s);
    return names;
  }

private:
  mutable std::mutex mu_;
  Sequence seen_;
};

class FeaturesTest : public ::testing::Test {
protected:
  void SetUp() override {
    KVELECT_REQUIRE_NATS_SERVER();
    connection_ = std::make_unique<Connection>(connect_to(SharedServer::get()->url()));
    bucket_ = std::make_unique<Bucket>(make_bucket(*connection_, 1s));
  }
  std::unique_ptr<Election> member(const std::string& name, std::vector<Option> extra = {}) {
    std::vector<Option> options{SkipValidation(), WithStartupSplay(0ms)};
    for (auto& option : design_options())
      options.push_back(option);
    return std::make_unique<Election>(name, "job", bucket_->get(), concat(options, extra));
  }
  static Election* leader_of(const std::vector<std::unique_ptr<Election>>& members) {
    for (const auto& m : members)
      if (m->is_leader())
        return m.get();
    return nullptr;
  }

  std::unique_ptr<Connection> connection_;
  std::unique_ptr<Bucket> bucket_;
};

TEST_F(FeaturesTest, OnNewLeaderFiresOncePerChangeAndObserversAgree) {
  Recorder observer_seen;
  Observer observer("job", bucket_->get(), {observer_seen.option()});
  observer.start();
  std::vector<Recorder> seen(3);
  std::vector<std::unique_ptr<Election>> members;
  for (int i = 0; i < 3; ++i)
    members.push_back(member(fmt::format("m{}", i), {seen[i].option()}));
  for (auto& m : members)
    m->start();
  std::vector<std::string> winners;
  for (int round = 0; round < 4; ++round) {
    Election* leader = nullptr;
    ASSERT_TRUE(eventually([&] { return (leader = leader_of(members)) != nullptr; }, 5s));
    winners.push_back(leader->name());
    ASSERT_TRUE(eventually([&] { return observer.leader() == leader->name(); }, 5s));
    EXPECT_EQ(observer.read_leader(), leader->name());
    // Everyone has seen this leader before it resigns: start() does not promise that a member
    // is watching by the time another has won and resigned (seen under TSan).
    ASSERT_TRUE(eventually(
        [&] {
          for (auto& r : seen)
            if (r.named().empty() || r.named().back() != leader->name())
              return false;
          return true;
        },
        5s));
    ASSERT_TRUE(leader->resign());
    ASSERT_TRUE(eventually(
        [&] {
          auto* next = leader_of(members);
          return next != nullptr && next != leader;
        },
        5s));
  }
  Election* last = nullptr;
  ASSERT_TRUE(eventually([&] { return (last = leader_of(members)) != nullptr; }, 5s));
  winners.push_back(last->name());
  ASSERT_TRUE(eventually([&] { return observer.leader() == last->name(); }, 5s));
  ASSERT_TRUE(eventually(
      [&] {
        for (auto& r : seen)
          if (r.named().empty() || r.named().back() != last->name())
            return false;
        return true;
      },
      5s));

  auto check = [&](const Sequence& sequence, const std::string& who) {
    ASSERT_FALSE(sequence.empty()) << who;
    for (std::size_t i = 1; i < sequence.size(); ++i)
      EXPECT_NE(sequence[i], sequence[i - 1]) << who << ": the same leader reported twice";
  };
  check(observer_seen.all(), "observer");
  for (int i = 0; i < 3; ++i)
    check(seen[i].all(), fmt::format("m{}", i));
  // Every member and the observer saw the same succession of leaders.
  EXPECT_EQ(observer_seen.named(), winners);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(seen[i].named(), winners) << "m" << i;
}

// The flake of the CI run of a45a178 (features_on_executor under TSan): a leader resigned while
// a renewal was in flight; the renewal's echo (the key naming the member, at the renewal's
// revision) reached the member after its OnLost, and the member reported itself as leader again
// until its release landed. A proxy that delays the member's traffic keeps the renewal in
// flight across the resignation, so the echo always arrives after it.
TEST_F(FeaturesTest, MemberNeverReportsItselfLeaderAfterItsOnLost) {
  // TTL 3 s: a renewal is sent 0.7 s before the lease it renews ends, so its reply, 300 ms
  // later, comes while that lease runs, and the release follows it. (A renewal acknowledged
  // after the lease held at the resignation is left to expire: docs/protocol.md, "Release".)
  const auto own_bucket = make_bucket(*connection_, 3s);
  FaultProxy proxy("127.0.0.1", SharedServer::get()->port());
  auto connection = std::make_unique<Connection>(connect_to(proxy.url()));
  auto bucket = Bucket::open(*connection, own_bucket.info().name);
  Recorder seen;
  std::atomic<int> leader_campaigns{0};
  std::vector<Option> options{SkipValidation(), WithStartupSplay(0ms), seen.option(),
                              OnCampaign([&](State state) {
                                if (state == State::Leader)
                                  ++leader_campaigns;
                              })};
  for (auto& option : design_options())
    options.push_back(option);
  Election m("solo", "job", bucket.get(), options);
  m.start();
  ASSERT_TRUE(m.await(5s));
  ASSERT_TRUE(eventually([&] { return m.leader() == "solo"; }, 5s));
  // 150 ms each way: a renewal's reply and its echo come 300 ms after it is sent, within the
  // lease and long after the resignation below is handled.
  proxy.set_mode(FaultProxy::Mode::delay, 150ms);
  const int before = leader_campaigns.load();
  ASSERT_TRUE(eventually([&] { return leader_campaigns.load() > before; }, 5s));
  ASSERT_TRUE(m.resign()); // the renewal just sent is in flight
  // The echo of that renewal, then the release, reach the member: it reports no leader.
  ASSERT_TRUE(
      eventually([&] { return value_of(own_bucket.get(), "job") == "kvelect:released"; }, 5s))
      << "the release did not land";
  std::this_thread::sleep_for(400ms); // the watch delivers the release through the proxy, too
  m.stop();
  const auto all = seen.all();
  ASSERT_GE(all.size(), 2U);
  std::size_t first_self = all.size();
  for (std::size_t i = 0; i < all.size(); ++i)
    if (all[i] == std::optional<std::string>("solo")) {
      first_self = i;
      break;
    }
  ASSERT_LT(first_self, all.size()) << "never reported itself";
  // Exactly one report of itself (when it won), then no leader.
  EXPECT_EQ(std::count(all.begin(), all.end(), std::optional<std::string>("solo")), 1)
      << "reported itself as leader after its OnLost";
  EXPECT_EQ(all.back(), std::nullopt);
}

// Finding 3 of the review of a45a178: two processes with the same member name. The leading twin
// is cut off; an operator deletes the key; the other twin must not announce a win while the cut
// off twin's lease runs (it used to win at once: its own name was never counted as a holder).
TEST_F(FeaturesTest, ASameNameTwinWaitsOutTheOtherTwinsLease) {
  FaultProxy proxy("127.0.0.1", SharedServer::get()->port());
  auto cut_connection = std::make_unique<Connection>(connect_to(proxy.url()));
  auto cut_bucket = Bucket::open(*cut_connection, bucket_->info().name);
  std::vector<Option> options{SkipValidation(), WithStartupSplay(0ms)};
  for (auto& option : design_options())
    options.push_back(option);
  Election first("twin", "job", cut_bucket.get(), options);
  first.start();
  ASSERT_TRUE(first.await(5s));
  std::atomic<std::int64_t> second_won{0};
  auto second = member("twin", {OnWon([&] {
                         second_won = std::chrono::steady_clock::now().time_since_epoch().count();
                       })});
  second->start();
  std::this_thread::sleep_for(300ms); // the second twin watches; the first renews
  proxy.set_mode(FaultProxy::Mode::blackhole);
  ASSERT_EQ(kvStore_Delete(bucket_->get(), "job"), NATS_OK);
  std::int64_t first_led_until = 0;
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    if (first.is_leader())
      first_led_until = now;
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_GT(first_led_until, 0);
  ASSERT_NE(second_won.load(), 0) << "the second twin never won";
  EXPECT_GE(second_won.load(), first_led_until)
      << "the second twin won " << (first_led_until - second_won.load()) / 1'000'000
      << " ms before the cut-off twin's lease ended";
  second->stop();
  proxy.set_mode(FaultProxy::Mode::pass);
  first.stop();
}

// Finding 2 of the review of a45a178: a candidate whose link was down across one of the
// leader's renewals; the leader is then cut off and an operator deletes the key. The candidate
// must not announce a win while the lease of the renewal it missed runs (it used to count its
// guard from the last time it had seen the leader, before that renewal). This schedule did not
// reproduce the overlap against the old protocol (918c731: the candidate's late sighting of the
// vacancy came after the lease anyway); tests/sim's F2 scenario and
// FindingsTest.ACandidateThatMissedARenewalWaitsOutItsLease (tests/findings_test.cpp) do. It
// stays as a safety test of the real drivers over a partition of both members.
TEST_F(FeaturesTest, ACandidateThatMissedARenewalWaitsOutTheWholeLease) {
  auto bucket = make_bucket(*connection_, 5s);
  const std::string name = bucket.info().name;
  FaultProxy leader_proxy("127.0.0.1", SharedServer::get()->port());
  FaultProxy candidate_proxy("127.0.0.1", SharedServer::get()->port());
  auto leader_connection = std::make_unique<Connection>(connect_to(leader_proxy.url()));
  auto candidate_connection = std::make_unique<Connection>(connect_to(candidate_proxy.url()));
  auto leader_bucket = Bucket::open(*leader_connection, name);
  auto candidate_bucket = Bucket::open(*candidate_connection, name);
  std::vector<Option> options{SkipValidation(), WithStartupSplay(0ms)};
  for (auto& option : design_options())
    options.push_back(option);
  Election a("a", "job", leader_bucket.get(), options);
  a.start();
  ASSERT_TRUE(a.await(5s));
  std::atomic<std::int64_t> b_won{0};
  Election b("b", "job", candidate_bucket.get(),
             concat(options, {OnWon([&] {
                      b_won = std::chrono::steady_clock::now().time_since_epoch().count();
                    })}));
  b.start();
  ASSERT_TRUE(eventually([&] { return b.leader() == "a"; }, 5s));
  auto revision = [&] {
    kvEntry* entry = nullptr;
    if (kvStore_Get(&entry, bucket.get(), "job") != NATS_OK)
      return std::uint64_t{0};
    const std::uint64_t r = kvEntry_Revision(entry);
    kvEntry_Destroy(entry);
    return r;
  };
  candidate_proxy.set_mode(FaultProxy::Mode::blackhole);
  const std::uint64_t before = revision();
  ASSERT_TRUE(eventually([&] { return revision() > before; }, 5s)) << "the leader did not renew";
  // The renewal b missed starts a lease of 4.5 s. Now a is cut off too, and the key deleted.
  leader_proxy.set_mode(FaultProxy::Mode::blackhole);
  ASSERT_EQ(kvStore_Delete(bucket.get(), "job"), NATS_OK);
  candidate_proxy.set_mode(FaultProxy::Mode::pass);
  std::int64_t a_led_until = 0;
  const auto deadline = std::chrono::steady_clock::now() + 16s;
  while (std::chrono::steady_clock::now() < deadline && b_won.load() == 0) {
    if (a.is_leader())
      a_led_until = std::chrono::steady_clock::now().time_since_epoch().count();
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_GT(a_led_until, 0);
  ASSERT_NE(b_won.load(), 0) << "the candidate never won";
  EXPECT_GE(b_won.load(), a_led_until)
      << "the candidate won " << (a_led_until - b_won.load()) / 1'000'000
      << " ms before the cut-off leader's lease ended";
  b.stop();
  leader_proxy.set_mode(FaultProxy::Mode::pass);
  a.stop();
}

TEST_F(FeaturesTest, ObserverReportsNoLeaderAfterExpiry) {
  Recorder seen;
  Observer observer("job", bucket_->get(), {seen.option()});
  observer.start();
  auto m = member("gone", {WithReleaseOnStop(false)});
  m->start();
  ASSERT_TRUE(m->await(5s));
  ASSERT_TRUE(eventually([&] { return observer.leader() == "gone"; }, 5s));
  m->stop(); // the key stays until the TTL removes it; no event announces that
  ASSERT_TRUE(eventually([&] { return observer.leader() == std::nullopt; }, 5s));
  EXPECT_EQ(observer.read_leader(), std::nullopt);
  const auto all = seen.all();
  ASSERT_GE(all.size(), 2U);
  EXPECT_EQ(all.back(), std::nullopt);
}

TEST_F(FeaturesTest, AwaitReturnsOnWinningAndOnTimeout) {
  auto a = member("a");
  auto b = member("b");
  a->start();
  ASSERT_TRUE(a->await(5s));
  b->start();
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(b->await(300ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 290ms);
  std::stop_source give_up;
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    give_up.request_stop();
  });
  EXPECT_FALSE(b->await(give_up.get_token()));
  stopper.join();
  std::thread resigner([&] {
    std::this_thread::sleep_for(200ms);
    a->resign();
  });
  std::stop_source never;
  EXPECT_TRUE(b->await(never.get_token()));
  resigner.join();
  EXPECT_TRUE(b->is_leader());
}

TEST_F(FeaturesTest, LeadershipTokenStopsWhenLeadershipEnds) {
  auto m = member("solo");
  EXPECT_TRUE(m->leadership().stop_requested()); // not leading: already stopped
  m->start();
  ASSERT_TRUE(m->await(5s));
  auto scope = m->leadership();
  EXPECT_FALSE(scope.stop_requested());
  std::atomic<bool> stopped{false};
  std::stop_callback on_stop(scope, [&] { stopped = true; });
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t revision = 0;
  ASSERT_EQ(kvStore_PutString(&revision, bucket_->get(), "job", "intruder"), NATS_OK);
  // Within one renewal period at the latest (the watch usually makes it immediate).
  ASSERT_TRUE(eventually([&] { return stopped.load(); }, 3s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 750ms);
  EXPECT_TRUE(scope.stop_requested());
}

// The exact limit of a blocking callback (docs/protocol.md, "Callbacks and the lease"): while a
// callback of the member blocks past the lease, is_leader() turns false on time, but OnLost and
// the leadership() token wait for the callback to return; then both come before anything else.
TEST_F(FeaturesTest, ABlockingCallbackDelaysOnLostButNotIsLeader) {
  std::atomic<int> leader_campaigns{0};
  std::atomic<bool> in_callback{false};
  std::atomic<bool> lost_while_blocked{false};
  std::atomic<bool> lost{false};
  auto m = member("slow", {OnCampaign([&](State state) {
                             if (state != State::Leader || ++leader_campaigns != 2)
                               return;
                             in_callback = true;
                             std::this_thread::sleep_for(1500ms); // past the 0.9 s lease
                             in_callback = false;
                           }),
                           OnLost([&] {
                             if (in_callback)
                               lost_while_blocked = true;
                             lost = true;
                           })});
  m->start();
  ASSERT_TRUE(m->await(5s));
  auto scope = m->leadership();
  ASSERT_TRUE(eventually([&] { return in_callback.load(); }, 5s));
  const auto blocked_at = std::chrono::steady_clock::now();
  // The renewal this callback announces is not sent until it returns: the lease runs out.
  ASSERT_TRUE(eventually([&] { return !m->is_leader(); }, 1200ms))
      << "is_leader() stayed true past the lease while a callback blocked";
  EXPECT_TRUE(in_callback.load()) << "the lease should have ended during the callback";
  EXPECT_LT(std::chrono::steady_clock::now() - blocked_at, 1200ms);
  // The limit: the token and OnLost wait for the callback.
  EXPECT_FALSE(scope.stop_requested());
  EXPECT_FALSE(lost.load());
  ASSERT_TRUE(eventually([&] { return lost.load(); }, 5s));
  EXPECT_FALSE(lost_while_blocked.load());
  EXPECT_TRUE(scope.stop_requested());
  m->stop();
}

TEST_F(FeaturesTest, TermLimitHandsOverAndTheOldLeaderCanWinAgain) {
  History history;
  std::vector<std::unique_ptr<Election>> members;
  for (const char* name : {"a", "b"})
    members.push_back(member(name, concat({WithTermLimit(700ms)}, history.options_for(name))));
  for (auto& m : members)
    m->start();
  std::vector<std::string> leaders;
  const auto until = std::chrono::steady_clock::now() + 8s;
  while (std::chrono::steady_clock::now() < until && leaders.size() < 4) {
    if (auto* l = leader_of(members);
        l != nullptr && (leaders.empty() || leaders.back() != l->name()))
      leaders.push_back(l->name());
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_GE(leaders.size(), 3U) << "term limits did not hand leadership over";
  EXPECT_NE(leaders[0], leaders[1]);
  EXPECT_EQ(leaders[0], leaders[2]) << "the first leader did not win again";
  EXPECT_LE(history.max_active(), 1);
}

TEST_F(FeaturesTest, UnhealthyLeaderResignsAndUnhealthyCandidateWaits) {
  std::atomic<bool> a_healthy{true}, b_healthy{false};
  auto a = member("a", {WithHealthCheck([&] { return a_healthy.load(); }, 50ms)});
  auto b = member("b", {WithHealthCheck([&] { return b_healthy.load(); }, 50ms)});
  a->start();
  ASSERT_TRUE(a->await(5s));
  b->start();
  a_healthy = false;
  ASSERT_TRUE(eventually([&] { return !a->is_leader(); }, 3s));
  // b is unhealthy too: nobody campaigns.
  std::this_thread::sleep_for(1500ms);
  EXPECT_FALSE(b->is_leader());
  EXPECT_FALSE(a->is_leader());
  b_healthy = true;
  ASSERT_TRUE(b->await(5s));
}

// Herd control (docs/protocol.md): on a release, every candidate that lost the last vacancy race
// waits a random moment before writing, so that the first writer's win reaches most of them
// first. Without it, every candidate writes on every vacancy (here 8 or 9 a vacancy).
TEST_F(FeaturesTest, LosersOfAVacancyRaceLetAFewWriteFirst) {
  constexpr int kMembers = 10;
  constexpr int kRounds = 10;
  std::vector<std::unique_ptr<Election>> members;
  for (int i = 0; i < kMembers; ++i)
    members.push_back(member(fmt::format("m{}", i)));
  for (auto& m : members)
    m->start();
  auto attempts = [&] {
    std::uint64_t sum = 0;
    for (auto& m : members)
      sum += m->stats().create_attempts;
    return sum;
  };
  std::vector<std::uint64_t> per_vacancy;
  for (int round = 0; round < kRounds; ++round) {
    Election* leader = nullptr;
    ASSERT_TRUE(eventually([&] { return (leader = leader_of(members)) != nullptr; }, 5s));
    std::this_thread::sleep_for(150ms); // the last round's waits and re-reads are over
    const auto before = attempts();
    ASSERT_TRUE(leader->resign());
    ASSERT_TRUE(eventually(
        [&] {
          auto* next = leader_of(members);
          return next != nullptr && next != leader;
        },
        5s));
    std::this_thread::sleep_for(150ms); // waits of up to 64 ms that end after the win
    per_vacancy.push_back(attempts() - before);
  }
  std::string list;
  for (auto n : per_vacancy)
    list += std::to_string(n) + " ";
  std::printf("create attempts per vacancy: %s\n", list.c_str());
  // The first vacancies, before anyone has lost, see nearly every member write; once the
  // candidates have lost a few races, few do. Quiet runs see 6 to 9 attempts in the last four
  // vacancies, a run beside a 40-minute fault lab saw 24 (the waits are short against a loaded
  // machine's scheduling delays); without herd control the nine candidates make 32 to 36.
  std::uint64_t late = 0;
  for (int round = kRounds - 4; round < kRounds; ++round)
    late += per_vacancy[static_cast<std::size_t>(round)];
  EXPECT_LE(late, 4U * 7U) << "attempts per vacancy: " << list;
  members.clear();
}

TEST_F(FeaturesTest, EvictionChangesTheLeaderSafely) {
  History history;
  auto a = member("a", history.options_for("a"));
  auto b = member("b", history.options_for("b"));
  a->start();
  ASSERT_TRUE(a->await(5s));
  b->start();
  std::this_thread::sleep_for(200ms);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(evict(bucket_->get(), "job"), std::optional<std::string>("a"));
  ASSERT_TRUE(b->await(5s));
  // The live leader released at once: faster than a TTL.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 900ms);
  EXPECT_FALSE(a->is_leader());
  EXPECT_LE(history.max_active(), 1);
  // Nothing to evict when nobody leads.
  b->stop();
  a->stop();
  EXPECT_EQ(evict(bucket_->get(), "job"), std::nullopt);
}

TEST_F(FeaturesTest, DeletedBucketIsFatal) {
  std::atomic<int> fatal{0}, lost{0};
  std::atomic<int> fatal_code{0};
  auto m = member("solo", {OnError([&](const Error& e) {
                             if (e.fatal()) {
                               fatal_code = static_cast<int>(e.code());
                               ++fatal;
                             }
                           }),
                           OnLost([&] { ++lost; })});
  m->start();
  ASSERT_TRUE(m->await(5s));
  Bucket::remove(*connection_, kvStore_Bucket(bucket_->get()));
  ASSERT_TRUE(eventually([&] { return fatal.load() >= 1; }, 10s));
  EXPECT_EQ(fatal_code.load(), static_cast<int>(Errc::bucket_deleted));
  ASSERT_TRUE(eventually([&] { return m->state() == State::Unknown; }, 5s));
  EXPECT_EQ(lost.load(), 1);
  EXPECT_FALSE(m->is_leader());
  m->stop();
}

TEST_F(FeaturesTest, StatsCountWhatHappened) {
  auto a = member("a");
  a->start();
  ASSERT_TRUE(a->await(5s));
  ASSERT_TRUE(eventually([&] { return a->stats().leader_campaigns >= 2; }, 5s));
  a->resign();
  const Stats s = a->stats();
  EXPECT_EQ(s.wins, 1U);
  EXPECT_EQ(s.losses, 1U);
  EXPECT_FALSE(s.is_leader);
  EXPECT_EQ(s.campaign_interval, 750ms);
  EXPECT_GE(s.create_attempts, 1U);
  EXPECT_GT(s.last_renewal_latency.count(), 0);
  EXPECT_GT(s.last_acquire_time.count(), 0);
}

// ---------------------------------------------------------------------------------------------
// The same interface behaviour from Election and NoopElection.

void exercise(LeaderElection& election) {
  std::stop_source give_up;
  EXPECT_TRUE(election.leadership().stop_requested());
  election.start();
  EXPECT_THROW(election.start(), Error);
  ASSERT_TRUE(election.await(5s));
  EXPECT_TRUE(election.await(give_up.get_token()));
  EXPECT_TRUE(election.is_leader());
  EXPECT_EQ(election.state(), State::Leader);
  ASSERT_TRUE(election.token().has_value());
  auto scope = election.leadership();
  EXPECT_FALSE(scope.stop_requested());
  EXPECT_TRUE(election.leader().has_value());
  EXPECT_TRUE(election.resign());
  EXPECT_TRUE(scope.stop_requested());
  EXPECT_FALSE(election.is_leader());
  EXPECT_FALSE(election.token().has_value());
  election.stop();
  election.stop();
  EXPECT_FALSE(election.is_leader());
}

TEST_F(FeaturesTest, ElectionSatisfiesTheInterface) {
  auto m = member("iface");
  exercise(*m);
}

TEST(NoopElectionTest, SatisfiesTheInterfaceAndFiresCallbacks) {
  std::atomic<int> won{0}, lost{0};
  NoopElection noop("single", {OnWon([&] { ++won; }), OnLost([&] { ++lost; })});
  exercise(noop);
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(lost.load(), 1);
  EXPECT_THROW(NoopElection(""), Error);
}

} // namespace
} // namespace kvelect::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new kvelect::testing::SharedServer); // NOLINT: gtest owns it
  return RUN_ALL_TESTS();
}
