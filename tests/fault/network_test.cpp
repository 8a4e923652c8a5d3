// SPDX-License-Identifier: Apache-2.0
// Fault injection on the network: the leader reaches the server through a FaultProxy that
// blackholes, resets or delays its traffic, while the other members connect directly. The
// cut-off leader must fire lost before anyone else fires won (the history's no-overlap check),
// and rejoin as a candidate when the network heals.
#include "fault_common.hpp"

#include <fmt/format.h>

namespace kvelect::testing::fault {
namespace {

constexpr std::int64_t kMs = 1'000'000;
using Mode = FaultProxy::Mode;

std::int64_t ns_of(std::chrono::nanoseconds d) { return d.count(); }

// When the last value `member` wrote before `before_ns` expires on the server: its server stamp
// (or, without one, when the test saw it) + TTL. A leadership of `member` that ends later than
// this outlived its key. 0 if `member` wrote nothing before `before_ns`.
std::int64_t value_expiry(const KeyWatcher& watcher, const std::string& member,
                          std::int64_t before_ns, std::chrono::nanoseconds ttl) {
  std::int64_t expiry = 0;
  for (const auto& e : watcher.entries()) {
    const std::int64_t stored = e.stamp_ns != 0 ? e.stamp_ns : e.ns;
    if (e.op == "put" && e.value == member && stored < before_ns)
      expiry = std::max(expiry, stored + ns_of(ttl));
  }
  return expiry;
}

const char* mode_name(Mode mode) {
  switch (mode) {
  case Mode::pass: return "pass";
  case Mode::delay: return "delay";
  case Mode::blackhole: return "blackhole";
  case Mode::reset: return "reset";
  }
  return "?";
}

class NetworkFaults : public ::testing::Test {
protected:
  void SetUp() override {
    FAULT_REQUIRE_ENVIRONMENT();
    server_ = std::make_unique<NatsServer>();
    connection_ = std::make_unique<Connection>(connect({server_->url()}));
  }
  void TearDown() override {
    bucket_.reset();
    connection_.reset();
    server_.reset();
  }
  void make(std::chrono::milliseconds ttl) {
    bucket_name_ = bucket_name();
    bucket_ = std::make_unique<Bucket>(make_bucket(*connection_, ttl, bucket_name_));
  }
  std::unique_ptr<MemberProcess> spawn(History& history, const std::string& url,
                                       const std::string& name) {
    return std::make_unique<MemberProcess>(member_spec(url, bucket_name_, name), history);
  }
  void set_mode(History& history, FaultProxy& proxy, Mode mode,
                std::chrono::milliseconds delay = 0ms) {
    proxy.set_mode(mode, delay);
    history.note("proxy", mode_name(mode),
                 mode == Mode::delay ? std::to_string(delay.count()) + " ms" : std::string());
  }

  // The proxied member leads (it starts first), two direct members follow it as candidates.
  void start_cut_off_leader(History& history, FaultProxy& proxy) {
    cut_ = spawn(history, proxy.url(), "cut");
    ASSERT_TRUE(cut_->wait_for("won", 10s)) << cut_->stderr_tail();
    for (const char* name : {"d1", "d2"})
      direct_.push_back(spawn(history, server_->url(), name));
    for (auto& m : direct_)
      ASSERT_TRUE(m->wait_for("ready", 10s)) << m->name() << "\n" << m->stderr_tail();
    for (auto& m : direct_)
      ASSERT_TRUE(eventually([&] { return m->last_leader_line() == "cut"; }, 5s)) << m->name();
    std::this_thread::sleep_for(500ms);
  }

  // Cuts the leader off with `mode`: it must fire lost before a direct member wins. Then heals
  // the network, and checks that the cut-off member is a working candidate again: when the
  // direct members stop, it wins.
  void cut_and_heal(History& history, FaultProxy& proxy, Mode mode, std::chrono::milliseconds ttl,
                    const std::string& label) {
    const std::int64_t t_cut = monotonic_ns();
    set_mode(history, proxy, mode);
    const auto successor = history.wait_first("won", t_cut, 15s, "cut");
    ASSERT_TRUE(successor.has_value()) << "no direct member won after the cut";
    // That the cut-off leader fired lost before the successor's won is the history's
    // no-overlap check (expect_consistent below).
    ASSERT_TRUE(eventually([&] { return history.first("lost", t_cut, "cut").has_value(); }, 10s))
        << "the cut-off leader never fired lost";
    const auto lost = history.first("lost", t_cut, "cut");
    if (!starved(history, "cut", t_cut, lost->ns)) {
      EXPECT_LE(lost->ns - t_cut, ns_of(ttl + 500ms)) << "lost later than a lease can last";
    }
    std::printf("[fault] %s: cut-off leader lost %.1f ms after the cut, %.1f ms before %s won\n",
                label.c_str(), static_cast<double>(lost->ns - t_cut) / 1e6,
                static_cast<double>(successor->ns - lost->ns) / 1e6, successor->member.c_str());

    // Heal: the member reconnects and follows the new leader.
    std::this_thread::sleep_for(1s);
    const auto accepted = proxy.accepted();
    set_mode(history, proxy, Mode::pass);
    ASSERT_TRUE(
        eventually([&] { return proxy.accepted() > accepted && proxy.connections() > 0; }, 10s))
        << "the cut-off member did not reconnect";
    ASSERT_TRUE(eventually(
        [&] {
          const auto leaders = history.leaders();
          return leaders.size() == 1 && leaders.front() != "cut" &&
                 cut_->last_leader_line() == leaders.front();
        },
        15s))
        << "the cut-off member does not see the new leader; its last leader line: "
        << cut_->last_leader_line().value_or("(none)");
    EXPECT_FALSE(cut_->leading());
    EXPECT_TRUE(cut_->alive());

    // A working candidate: it takes over when the others leave.
    const std::int64_t t_stop = monotonic_ns();
    for (auto& m : direct_)
      m->terminate();
    for (auto& m : direct_)
      EXPECT_TRUE(m->wait_exit(10s)) << m->name();
    EXPECT_TRUE(cut_->wait_next("won", t_stop, 10s).has_value())
        << "the healed member did not win after the others stopped";
    expect_consistent(history, label);
  }

  std::unique_ptr<NatsServer> server_;
  std::unique_ptr<Connection> connection_;
  std::unique_ptr<Bucket> bucket_;
  std::string bucket_name_;
  std::unique_ptr<MemberProcess> cut_;
  std::vector<std::unique_ptr<MemberProcess>> direct_;
};

TEST_F(NetworkFaults, LeaderBlackholedThenHealed) {
  constexpr auto ttl = 2s;
  make(ttl);
  History history;
  TimelineOnFailure guard(history);
  FaultProxy proxy("127.0.0.1", server_->port());
  ASSERT_NO_FATAL_FAILURE(start_cut_off_leader(history, proxy));
  cut_and_heal(history, proxy, Mode::blackhole, ttl, "proxy_blackhole");
  direct_.clear();
  cut_.reset();
}

TEST_F(NetworkFaults, LeaderConnectionsResetThenHealed) {
  constexpr auto ttl = 2s;
  make(ttl);
  History history;
  TimelineOnFailure guard(history);
  FaultProxy proxy("127.0.0.1", server_->port());
  ASSERT_NO_FATAL_FAILURE(start_cut_off_leader(history, proxy));
  cut_and_heal(history, proxy, Mode::reset, ttl, "proxy_reset");
  direct_.clear();
  cut_.reset();
}

// A member whose replies come later than the lease they would start must never announce a win.
//
// Set-up (TTL 1 s, so lease = send + 900 ms; request timeout 3 s): "slow" reaches the server
// through a proxy that delays 500 ms each way, and campaigns for the absent key. Its create
// lands 500 ms after the send and the reply arrives 1 s after it: the lease that write started
// ended 100 ms before. "slow" must not fire won (an earlier bug fired won for the ended lease and
// lost right after); it gives the key back, and "d", started then with a direct link, leads.
TEST_F(NetworkFaults, WinWhoseReplyComesAfterItsLeaseIsNeverAnnounced) {
  constexpr auto ttl = 1s;
  make(ttl);
  History history;
  TimelineOnFailure guard(history);
  KeyWatcher watcher(bucket_->get(), "job", history);
  FaultProxy proxy("127.0.0.1", server_->port());
  set_mode(history, proxy, Mode::delay, 500ms);
  auto slow = std::make_unique<MemberProcess>(
      fault_member_spec({proxy.url()}, bucket_name_, "slow", 3000), history);
  ASSERT_TRUE(slow->wait_for("ready", 20s)) << slow->stderr_tail();
  const auto landed =
      watcher.wait([](const KeyWatcher::Entry& e) { return e.value == "slow"; }, 10s);
  ASSERT_TRUE(landed.has_value()) << "\"slow\" never wrote the key\n" << slow->stderr_tail();
  std::this_thread::sleep_for(2s); // its reply, and what it does about it
  EXPECT_FALSE(history.first("won", 0, "slow").has_value())
      << "\"slow\" announced a win whose lease had ended before the reply arrived\n"
      << slow->stderr_tail();

  const std::int64_t d_started = monotonic_ns();
  auto d = spawn(history, server_->url(), "d");
  EXPECT_TRUE(d->wait_next("won", d_started, 5s).has_value())
      << "nobody led after the slow member's late win";
  set_mode(history, proxy, Mode::pass);
  std::this_thread::sleep_for(300ms);
  expect_consistent(history, "late_win_reply");
}

// An evicted leader whose renewal reply reports the lost revision check before its watch shows
// the eviction mark must not take the key straight back: eviction has to change the leader.
//
// Set-up (TTL 2 s): "a" leads; the test deletes the bucket's consumers, so a's watch goes silent
// (as after a reconnect, nats.c#988); "d" starts after that and sees "a" lead. The test evicts
// "a": a's next renewal fails its revision check, and a learns of the mark only from the read
// that follows. An earlier bug let "a" write against the mark's revision at once, as if the
// holder were long gone; now it waits (as after a resign) and "d" takes over.
TEST_F(NetworkFaults, EvictedLeaderThatLearnsItFromARenewalDoesNotRetakeTheKey) {
  constexpr auto ttl = 2s;
  make(ttl);
  History history;
  TimelineOnFailure guard(history);
  auto a = spawn(history, server_->url(), "a");
  ASSERT_TRUE(a->wait_for("won", 10s)) << a->stderr_tail();
  std::this_thread::sleep_for(200ms); // a's watch consumer exists
  ASSERT_GE(delete_consumers(*connection_, "KV_" + bucket_name_), 1);
  history.note("test", "deleted the bucket's consumers");
  auto d = spawn(history, server_->url(), "d");
  ASSERT_TRUE(d->wait_for("ready", 10s)) << d->stderr_tail();
  ASSERT_TRUE(eventually([&] { return d->last_leader_line() == "a"; }, 5s));

  const std::int64_t evicted = monotonic_ns();
  const auto leader = evict(bucket_->get(), "job");
  history.note("test", "evicted", leader.value_or("-"));
  ASSERT_EQ(leader, std::optional<std::string>("a"));
  const auto next_win = history.wait_first("won", evicted, 3 * ttl);
  ASSERT_TRUE(next_win.has_value()) << "nobody won after the eviction";
  EXPECT_EQ(next_win->member, "d") << "the evicted leader took the key back";
  std::this_thread::sleep_for(500ms);
  expect_consistent(history, "evict_renewal_first");
}

// 200 ms each way with a 1 s TTL, for the first leader and one candidate. A renewal is sent
// 250 ms before the lease it renews ends (docs/protocol.md, "Renewal") but needs a 400 ms round
// trip here, so the slow leader's lease runs out before each reply, and it takes the key back
// ("late renewal landed: reclaiming"): leadership changes about every TTL. It must never
// overlap.
TEST_F(NetworkFaults, DelayedMembersNeverOverlap) {
  constexpr auto ttl = 1s;
  make(ttl);
  History history;
  TimelineOnFailure guard(history);
  FaultProxy proxy_a("127.0.0.1", server_->port());
  FaultProxy proxy_b("127.0.0.1", server_->port());
  auto a = spawn(history, proxy_a.url(), "slow-a");
  ASSERT_TRUE(a->wait_for("won", 10s)) << a->stderr_tail();
  auto b = spawn(history, proxy_b.url(), "slow-b");
  auto c = spawn(history, server_->url(), "direct");
  ASSERT_TRUE(b->wait_for("ready", 10s));
  ASSERT_TRUE(c->wait_for("ready", 10s));
  std::this_thread::sleep_for(500ms);

  set_mode(history, proxy_a, Mode::delay, 200ms);
  set_mode(history, proxy_b, Mode::delay, 200ms);
  std::this_thread::sleep_for(6s);
  const int wins_during = history.count("won");
  set_mode(history, proxy_a, Mode::pass);
  set_mode(history, proxy_b, Mode::pass);
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(eventually([&] { return history.leaders().size() == 1; }, 10s));
  EXPECT_TRUE(a->alive() && b->alive() && c->alive());
  const auto report = expect_consistent(history, "proxy_delay_200ms");
  std::printf("[fault] delay: %d wins in total (%d by the end of the delay)\n", report.wins,
              wins_during);
}

// A campaign write whose reply is lost (the request times out) but which did land.
//
// Set-up (TTL 2 s): "old" leads, "late" (request timeout 600 ms) reaches the server through a
// proxy delaying 400 ms each way. "old" resigns; "late" sees the release 400 ms later and
// writes; the write lands 400 ms after that (before the release mark expires), and its reply
// would arrive after 800 ms: a timeout. The test sees the value land and switches the proxy to
// pass, so that the read which follows the timeout is answered (behind the late reply): the key
// holds "late"'s name at a new revision, so a write with "late"'s name landed, at a time "late"
// cannot know, and it may even be a same-name process's. "late" waits it out like any holder's
// value (docs/protocol.md, "Unknown outcomes of campaign writes"); when it expires, "old" (its
// resign cool-down ended by seeing "late" hold the key) or "late" takes the key. Once "late"
// reports won, the proxy blackholes it, as a network that fails again would.
//
// Why 400 ms and 600 ms: "late"'s write can wait behind a request in flight (a candidate reads
// the bucket once per campaign interval), which on this link ends only at its timeout, so it
// lands up to 2 x 400 + 600 ms after the resign, well inside the mark's 2 s at any phase of
// "late"'s timers (tests/sim/slow_link_test.cpp checks every phase in the simulator). With the
// first set-up (550 ms, 1 s) that sum was 2.1 s: a release seen just after the read had gone out
// lost the mark. That is the likeliest cause of the test's one CI failure (43f9536, under
// ThreadSanitizer: "late"'s write never landed; the members' logs were not kept).
struct UnknownOutcome {
  std::int64_t resigned = 0;
  std::int64_t landed = 0;   // when the test saw "late"'s value
  std::optional<Event> won;  // "late"'s won after the resign
  std::optional<Event> lost; // ... and the lost that ended it
  std::int64_t expiry = 0;   // when "late"'s last value before `lost` expired on the server
};

class UnknownWriteOutcome : public NetworkFaults {
protected:
  static constexpr auto ttl = 2s;

  // Brings "late"'s link to the 400 ms delay in two steps, each after "late" has seen one of
  // "old"'s renewals through the step before. "late" expects a value it saw to expire one TTL
  // (2 s) after it saw it, and "old" renews every 1.33 s (docs/protocol.md, "Renewal"): a renewal
  // seen d ms later than the one before it leaves 2000 - 1333 - d ms before "late" tries the key
  // as expired, and that try and the read after it (both timing out on this link) would hold up
  // the write under test. Steps of 200 ms leave 467 ms, what "old"'s own lease allows it to be
  // late (1.8 s - 1.33 s); one step of 400 ms would leave 267 ms.
  void slow_down(History& history, FaultProxy& proxy, KeyWatcher& watcher) {
    for (const auto step : {200ms, 400ms}) {
      const std::int64_t since = monotonic_ns();
      set_mode(history, proxy, Mode::delay, step);
      const auto renewal = watcher.wait(
          [&](const KeyWatcher::Entry& e) { return e.value == "old" && e.ns >= since; }, 5s);
      ASSERT_TRUE(renewal.has_value()) << "\"old\" did not renew within 5 s";
      std::this_thread::sleep_for(step + 100ms); // "late" sees it `step` later
    }
  }

  std::unique_ptr<MemberProcess> spawn_late(History& history, const std::string& url) {
    return std::make_unique<MemberProcess>(fault_member_spec({url}, bucket_name_, "late", 600),
                                           history);
  }

  // `late_leads_first`: "late" starts first, wins, and resigns to "old", so that no write of
  // "late" has failed before the one under test (see the second test for why that matters).
  UnknownOutcome run(History& history, bool late_leads_first) {
    UnknownOutcome out;
    make(ttl);
    KeyWatcher watcher(bucket_->get(), "job", history);
    FaultProxy proxy("127.0.0.1", server_->port());
    std::unique_ptr<MemberProcess> old;
    std::unique_ptr<MemberProcess> late;
    if (late_leads_first) {
      late = spawn_late(history, proxy.url());
      EXPECT_TRUE(late->wait_for("won", 10s)) << late->stderr_tail();
      old = spawn(history, server_->url(), "old");
      EXPECT_TRUE(old->wait_for("ready", 10s)) << old->stderr_tail();
      std::this_thread::sleep_for(300ms);
      late->resign();
      EXPECT_TRUE(old->wait_for("won", 10s));
    } else {
      old = spawn(history, server_->url(), "old");
      EXPECT_TRUE(old->wait_for("won", 10s)) << old->stderr_tail();
      late = spawn_late(history, proxy.url());
      EXPECT_TRUE(late->wait_for("ready", 10s)) << late->stderr_tail();
    }
    EXPECT_TRUE(eventually([&] { return late->last_leader_line() == "old"; }, 5s));
    if (::testing::Test::HasFailure())
      return out;

    slow_down(history, proxy, watcher);
    if (::testing::Test::HasFailure())
      return out;
    std::this_thread::sleep_for(500ms);
    EXPECT_TRUE(old->leading());

    out.resigned = monotonic_ns();
    old->resign();
    const auto landed = watcher.wait(
        [&](const KeyWatcher::Entry& e) { return e.value == "late" && e.ns >= out.resigned; }, 5s);
    EXPECT_TRUE(landed.has_value()) << "the delayed member did not write";
    if (!landed)
      return out;
    out.landed = landed->ns;
    // Let the proxy queue the write's reply with the delay first (the test may see the value
    // before the proxy has read the reply), then let the read that follows the timeout through.
    std::this_thread::sleep_for(50ms);
    set_mode(history, proxy, Mode::pass);
    out.won = late->wait_next("won", out.resigned, 5s);
    if (out.won)
      set_mode(history, proxy, Mode::blackhole);
    std::printf("[fault] unknown outcome: value landed %.1f ms after the resign; late %s\n",
                static_cast<double>(out.landed - out.resigned) / 1e6,
                out.won ? fmt::format("won {:.1f} ms after the value landed",
                                      static_cast<double>(out.won->ns - out.landed) / 1e6)
                              .c_str()
                        : "did not win");
    std::this_thread::sleep_for(3s);
    set_mode(history, proxy, Mode::pass);
    std::this_thread::sleep_for(500ms);
    if (out.won)
      out.lost = history.first("lost", out.won->ns, "late");
    if (out.lost)
      out.expiry = value_expiry(watcher, "late", out.lost->ns, ttl);
    return out;
  }
};

// A win found by the read that follows a timed-out campaign write has no known start: the server
// stamped the value at a time the member cannot know. Counting the lease from the read's send
// time (an earlier bug) let it outlive the value on the server, so that another member could
// take the expired key while this one still believed it led. The member now waits the value out
// (docs/protocol.md, "Unknown outcomes of campaign writes"); if it wins at all before the test
// ends, its leadership must not outlive its value, and the history must show no overlap.
TEST_F(UnknownWriteOutcome, LeaseNeverOutlivesTheValueThatLanded) {
  History history;
  TimelineOnFailure guard(history);
  const auto out = run(history, true);
  ASSERT_FALSE(::testing::Test::HasFailure());
  if (out.won) {
    // "late"'s leadership must not outlive its last value on the server.
    ASSERT_TRUE(out.lost.has_value());
    EXPECT_LE(out.lost->ns, out.expiry)
        << "\"late\" led until " << (out.lost->ns - out.expiry) / kMs
        << " ms after its last value expired on the server";
  } else {
    std::printf("[fault] note: \"late\" did not win after its landed write: nothing more\n");
  }
  expect_consistent(history, "unknown_write_outcome");
}

// The same timed-out write, by a member whose previous write failed a revision check (its first
// campaign, against "old"). cnats keeps the last error text per thread and does not clear it on
// a timeout, so the timeout comes back with the stale text "wrong last sequence: 1". Either way
// the landed value, which names "late" at a revision "late" cannot prove it wrote, is waited
// out: no member wins before it has expired on the server (an earlier version took it back at
// once, which would take it from a same-name process), and the election has a leader again
// within about a TTL of the landing.
TEST_F(UnknownWriteOutcome, ALandedWriteOfUnknownOutcomeIsWaitedOut) {
  History history;
  TimelineOnFailure guard(history);
  const auto out = run(history, false);
  ASSERT_FALSE(::testing::Test::HasFailure());
  const auto next = history.first("won", out.resigned);
  ASSERT_TRUE(next.has_value()) << "nobody won after the resign";
  // An earlier version reclaimed about 0.45 s after the landing; the value expires 2 s after it.
  EXPECT_GE(next->ns - out.landed, 1500 * kMs)
      << next->member << " won " << (next->ns - out.landed) / kMs
      << " ms after the value landed: before it could have expired";
  EXPECT_LE(next->ns - out.landed, 3500 * kMs)
      << "no leader within a TTL and a half of the landing";
  if (out.won && out.lost) {
    EXPECT_LE(out.lost->ns, out.expiry)
        << "\"late\" led until " << (out.lost->ns - out.expiry) / kMs
        << " ms after its last value expired on the server";
  }
  expect_consistent(history, "unknown_write_outcome_stale_error");
}

// The renewal variant. "old" leads through a proxy; right after one of its renewals the proxy
// starts delaying 550 ms each way, so the next renewal lands 550 ms after it was sent and its
// reply would come after 1.1 s: a timeout (1 s). With a renewal period of 2/3 TTL, the lease
// (last successful send + TTL − guard) ends before that timeout: "old" fires lost. The test sees
// the renewal land and switches the proxy to pass, so the read that follows the timeout finds
// "old"'s name at the new revision. The renewal landed after the lease ended; per
// docs/protocol.md it must not revive the lease: the member may take the key back with a new
// revision-checked write, whose lease starts at that write's send time. If it fires won, the
// proxy blackholes it; "d" takes the key when the renewed value expires.
TEST_F(UnknownWriteOutcome, RenewalThatLandedAfterTheLeaseEndedDoesNotReviveIt) {
  make(ttl);
  History history;
  TimelineOnFailure guard(history);
  KeyWatcher watcher(bucket_->get(), "job", history);
  FaultProxy proxy("127.0.0.1", server_->port());
  auto old = spawn(history, proxy.url(), "old");
  ASSERT_TRUE(old->wait_for("won", 10s)) << old->stderr_tail();
  auto d = spawn(history, server_->url(), "d");
  ASSERT_TRUE(d->wait_for("ready", 10s)) << d->stderr_tail();
  ASSERT_TRUE(eventually([&] { return d->last_leader_line() == "old"; }, 5s));
  std::this_thread::sleep_for(300ms);

  // Right after a successful renewal, slow the link down.
  const std::uint64_t won_revision = std::stoull(history.first("won", 0, "old")->detail);
  const auto renewal = watcher.wait(
      [&](const KeyWatcher::Entry& e) { return e.value == "old" && e.revision > won_revision; },
      5s);
  ASSERT_TRUE(renewal.has_value()) << "no renewal";
  set_mode(history, proxy, Mode::delay, 550ms);
  const auto slow = watcher.wait(
      [&](const KeyWatcher::Entry& e) {
        return e.value == "old" && e.revision > renewal->revision;
      },
      5s);
  ASSERT_TRUE(slow.has_value()) << "the renewal through the slow link did not land";
  std::this_thread::sleep_for(50ms); // the proxy has queued the renewal's reply with the delay
  set_mode(history, proxy, Mode::pass);
  const auto won = old->wait_next("won", slow->ns, 3s);
  if (won)
    set_mode(history, proxy, Mode::blackhole);
  std::printf("[fault] late renewal: old %s\n",
              won ? fmt::format("won again {:.1f} ms after its renewal landed",
                                static_cast<double>(won->ns - slow->ns) / 1e6)
                        .c_str()
                  : "did not win again");
  std::this_thread::sleep_for(3s);
  set_mode(history, proxy, Mode::pass);
  std::this_thread::sleep_for(500ms);
  if (won) {
    const auto lost = history.first("lost", won->ns, "old");
    ASSERT_TRUE(lost.has_value());
    const std::int64_t expiry = value_expiry(watcher, "old", lost->ns, ttl);
    EXPECT_LE(lost->ns, expiry) << "\"old\" led until " << (lost->ns - expiry) / kMs
                                << " ms after its last value expired on the server";
  }
  expect_consistent(history, "late_renewal");
}

// The campaign thread must never wait for the network (docs/protocol.md, "Three threads per
// member"), or it cannot end a lease on time. Recreating the watch stops the cnats watcher, and
// cnats' kvWatcher_Stop unsubscribes the ordered consumer *and deletes it on the server with a
// blocking JetStream request* (natsSubscription_Unsubscribe -> jsSub_deleteConsumer), which
// waits up to the request timeout when the server does not answer.
//
// Set-up (TTL 2 s, kvelect-fault-member with kvelect::Connection's default 2 s request timeout):
// "cut" leads through a proxy. The test deletes the bucket's consumers, so cut's watch goes
// silent while its writes still work (a stand-in for a watcher that went quiet after a
// reconnect, nats.c#988, or whose consumer lived on a cluster node that died). "d" starts after
// that. cut's next renewal succeeds, its watch does not show it, and 1 s later cut recreates
// the watch. Just before that, the proxy blackholes cut: the consumer delete gets no answer.
// cut's lease (renewal sent + 1.8 s) must still end on time, before "d" takes the expired key.
TEST_F(NetworkFaults, WatchRecreateWhileCutOffDoesNotHoldUpTheLease) {
  constexpr auto ttl = 2s;
  make(ttl);
  History history;
  TimelineOnFailure guard(history);
  FaultProxy proxy("127.0.0.1", server_->port());
  auto cut = std::make_unique<MemberProcess>(fault_member_spec({proxy.url()}, bucket_name_, "cut"),
                                             history);
  ASSERT_TRUE(cut->wait_for("won", 10s)) << cut->stderr_tail();
  std::this_thread::sleep_for(200ms);
  ASSERT_GE(delete_consumers(*connection_, "KV_" + bucket_name_), 1);
  history.note("test", "deleted the bucket's consumers");
  const std::int64_t t_deleted = monotonic_ns();
  KeyWatcher watcher(bucket_->get(), "job", history);
  auto d = spawn(history, server_->url(), "d");
  ASSERT_TRUE(d->wait_for("ready", 10s)) << d->stderr_tail();

  // cut's first renewal after the deletion: its own watch cannot show it.
  std::uint64_t before = 0;
  for (const auto& e : history.events())
    if (e.member == "cut" && e.kind == "won")
      before = std::stoull(e.detail);
  const auto renewal = watcher.wait(
      [&](const KeyWatcher::Entry& e) {
        return e.value == "cut" && e.revision > before && e.ns > t_deleted;
      },
      5s);
  ASSERT_TRUE(renewal.has_value()) << "cut did not renew";
  std::this_thread::sleep_for(300ms); // its reply has arrived; the watch check is 1 s away
  set_mode(history, proxy, Mode::blackhole);
  const auto won = history.wait_first("won", renewal->ns, 10s, "cut");
  ASSERT_TRUE(won.has_value()) << "d never won";
  const auto lost = history.wait_first("lost", renewal->ns, 10s, "d");
  ASSERT_TRUE(lost.has_value()) << "cut never fired lost";
  std::printf("[fault] watch recreate while cut off: cut lost %.1f ms after its renewal was "
              "seen (its lease: < %lld ms), d won after %.1f ms\n",
              static_cast<double>(lost->ns - renewal->ns) / 1e6,
              static_cast<long long>(std::chrono::milliseconds(ttl).count() * 9 / 10),
              static_cast<double>(won->ns - renewal->ns) / 1e6);
  EXPECT_LE(lost->ns - renewal->ns, ns_of(ttl)) << "cut's lease ran past the value's expiry";
  std::this_thread::sleep_for(500ms);
  expect_consistent(history, "watch_recreate_cut_off");
}

} // namespace
} // namespace kvelect::testing::fault
