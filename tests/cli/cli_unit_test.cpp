// SPDX-License-Identifier: Apache-2.0
// Unit tests of the CLI's building blocks (tools/): no server needed.
#include "duration.hpp"
#include "event_format.hpp"
#include "event_loop.hpp"
#include "json.hpp"
#include "leader_file.hpp"
#include "process.hpp"
#include "shell_words.hpp"
#include "timefmt.hpp"
#include "watch_tracker.hpp"

#include "cli_harness.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <csignal>
#include <thread>

namespace kvelect::cli {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

// ---- durations -------------------------------------------------------------------------------

TEST(Duration, ParsesUnits) {
  EXPECT_EQ(parse_duration("500ms"), milliseconds(500));
  EXPECT_EQ(parse_duration("30s"), milliseconds(30'000));
  EXPECT_EQ(parse_duration("5m"), milliseconds(300'000));
  EXPECT_EQ(parse_duration("1h"), milliseconds(3'600'000));
  EXPECT_EQ(parse_duration("0"), milliseconds(0));
  EXPECT_EQ(parse_duration("0s"), milliseconds(0));
}

TEST(Duration, ParsesSumsAndFractions) {
  EXPECT_EQ(parse_duration("1m30s"), milliseconds(90'000));
  EXPECT_EQ(parse_duration("1h2m3s4ms"), milliseconds(3'723'004));
  EXPECT_EQ(parse_duration("1.5s"), milliseconds(1'500));
  EXPECT_EQ(parse_duration(".25s"), milliseconds(250));
  EXPECT_EQ(parse_duration("0.5h"), milliseconds(1'800'000));
}

TEST(Duration, RejectsBadValuesNamingThem) {
  for (const char* bad : {"", "5", "5x", "abc", "-1s", "1s5", "s", "1 s", "1.s.", "5sec",
                          "99999999999999999999h", "0.1ms"}) {
    std::string error;
    EXPECT_FALSE(parse_duration(bad, &error)) << bad;
    EXPECT_NE(error.find(std::string("'") + bad + "'"), std::string::npos) << error;
  }
  std::string error;
  EXPECT_FALSE(parse_duration("5x", &error));
  EXPECT_NE(error.find("unknown unit 'x'"), std::string::npos) << error;
  EXPECT_FALSE(parse_duration("-3s", &error));
  EXPECT_NE(error.find("negative"), std::string::npos) << error;
  EXPECT_FALSE(parse_duration("10", &error));
  EXPECT_NE(error.find("missing unit"), std::string::npos) << error;
}

TEST(Duration, FormatsRoundTrip) {
  EXPECT_EQ(format_duration(0ms), "0s");
  EXPECT_EQ(format_duration(500ms), "500ms");
  EXPECT_EQ(format_duration(1500ms), "1.5s");
  EXPECT_EQ(format_duration(30s), "30s");
  EXPECT_EQ(format_duration(90s), "1m30s");
  EXPECT_EQ(format_duration(1h), "1h");
  EXPECT_EQ(format_duration(3'723'004ms), "1h2m3.004s");
  for (auto d : {1ms, 999ms, 1000ms, 1001ms, 61'000ms, 3'600'001ms})
    EXPECT_EQ(parse_duration(format_duration(d)), d) << format_duration(d);
}

// ---- JSON ------------------------------------------------------------------------------------

TEST(Json, EscapesSpecialCharacters) {
  EXPECT_EQ(json_string("plain"), "\"plain\"");
  EXPECT_EQ(json_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_string("\n\r\t\b\f"), "\"\\n\\r\\t\\b\\f\"");
  EXPECT_EQ(json_string(std::string_view("\x01\x1f\0", 3)), "\"\\u0001\\u001f\\u0000\"");
  EXPECT_EQ(json_string("/ and \x7f"), "\"/ and \x7f\"");
  EXPECT_EQ(json_string(""), "\"\"");
}

TEST(Json, KeepsValidUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(json_string("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"),
            "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"");
  EXPECT_EQ(json_string("\xff"), "\"\\ufffd\"");
  EXPECT_EQ(json_string("a\xc3"), "\"a\\ufffd\"");                     // truncated sequence
  EXPECT_EQ(json_string("\xc0\xaf"), "\"\\ufffd\\ufffd\"");            // overlong '/'
  EXPECT_EQ(json_string("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\""); // surrogate
  EXPECT_EQ(json_string("\xf4\x90\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); // > U+10FFFF
}

TEST(Json, BuildsObjects) {
  const std::string s = JsonObject()
                            .add("s", "x\"y")
                            .add("n", std::uint64_t{42})
                            .add("i", -3)
                            .add("b", true)
                            .add_null("z")
                            .add("o", std::optional<std::string>())
                            .add("p", std::optional<std::string>("v"))
                            .str();
  EXPECT_EQ(s, R"({"s": "x\"y", "n": 42, "i": -3, "b": true, "z": null, "o": null, "p": "v"})");
  EXPECT_EQ(JsonObject().str(), "{}");
}

// ---- time ------------------------------------------------------------------------------------

TEST(Time, FormatsRfc3339WithMicroseconds) {
  using namespace std::chrono;
  EXPECT_EQ(rfc3339(system_clock::time_point{}), "1970-01-01T00:00:00.000000Z");
  // 2026-11-22T05:49:21.491726Z
  const auto t = system_clock::time_point(
      duration_cast<system_clock::duration>(seconds(1795326561) + microseconds(491726)));
  EXPECT_EQ(rfc3339(t), "2026-11-22T05:49:21.491726Z");
  EXPECT_EQ(
      rfc3339(system_clock::time_point(duration_cast<system_clock::duration>(microseconds(-1)))),
      "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(from_unix_nanos(1'500'000'000'123'456'789LL).time_since_epoch(),
            duration_cast<system_clock::duration>(nanoseconds(1'500'000'000'123'456'789LL)));
}

// ---- campaign event lines ---------------------------------------------------------------------

TEST(EventFormat, JsonLinesCarryTheDocumentedKeys) {
  ElectionEvent won;
  won.kind = ElectionEvent::Kind::won;
  won.time = std::chrono::system_clock::time_point{};
  won.state = State::Leader;
  won.token = 17;
  EXPECT_EQ(campaign_event_json(won, "sched", "n\"1"),
            R"({"time": "1970-01-01T00:00:00.000000Z", "election": "sched", "member": "n\"1", )"
            R"("event": "won", "state": "leader", "token": 17})");

  ElectionEvent none;
  none.kind = ElectionEvent::Kind::leader;
  none.time = won.time;
  none.state = State::Candidate;
  EXPECT_NE(campaign_event_json(none, "e", "m")
                .find(R"("event": "leader", "state": "candidate", "leader": null})"),
            std::string::npos);
  none.leader = "bob";
  EXPECT_NE(campaign_event_json(none, "e", "m").find(R"("leader": "bob"})"), std::string::npos);

  ElectionEvent error;
  error.kind = ElectionEvent::Kind::error;
  error.error = "boom\n";
  EXPECT_NE(campaign_event_json(error, "e", "m")
                .find(R"("event": "error", "state": "unknown", "error": "boom\n"})"),
            std::string::npos);
  EXPECT_NE(campaign_event_text(won).find("became leader (token 17)"), std::string::npos);
}

// ---- watch tracker ----------------------------------------------------------------------------

class Tracker : public ::testing::Test {
protected:
  using Kind = WatchTracker::Kind;
  using Time = WatchTracker::Time;
  static Time at(int ms) { return Time(std::chrono::milliseconds(ms)); }
  std::vector<WatchTracker::Activity> put(const std::string& value, int ms, bool initial = false) {
    return tracker.on_update({"e", WatchTracker::Op::put, value, ++revision, at(ms), initial});
  }
  WatchTracker tracker{1000ms};
  std::uint64_t revision = 0;
};

TEST_F(Tracker, ClassifiesWinsRenewalsReleasesAndEvictions) {
  auto a = put("alice", 0, true);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, Kind::current);
  EXPECT_EQ(a[0].leader, "alice");
  EXPECT_EQ(put("alice", 500)[0].kind, Kind::renewed);
  a = put("kvelect:evict", 900);
  EXPECT_EQ(a[0].kind, Kind::evicted);
  EXPECT_EQ(a[0].leader, "alice");
  a = put("kvelect:released", 950); // the evicted leader hands the key over
  EXPECT_EQ(a[0].kind, Kind::released);
  EXPECT_EQ(a[0].leader, "alice");
  a = put("bob", 960);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].kind, Kind::won);
  EXPECT_EQ(a[0].leader, "bob");
  EXPECT_FALSE(a[0].previous);
  a = put("carol", 970); // an overwrite by another member: a win over bob
  EXPECT_EQ(a[0].kind, Kind::won);
  EXPECT_EQ(a[0].previous, "bob");
  a = tracker.on_update({"e", WatchTracker::Op::del, "", ++revision, at(980), false});
  EXPECT_EQ(a[0].kind, Kind::deleted);
  EXPECT_EQ(a[0].leader, "carol");
  EXPECT_EQ(put("carol", 990)[0].kind, Kind::won); // after a delete, the same name wins anew
  a = put("kvelect:released", 995);
  EXPECT_EQ(a[0].kind, Kind::released);
  EXPECT_EQ(a[0].leader, "carol");
  a = put("kvelect:released", 996); // a release of nothing names nobody
  EXPECT_FALSE(a[0].leader);
}

TEST_F(Tracker, InfersExpiryAfterOneTtl) {
  put("alice", 0);
  EXPECT_EQ(tracker.next_expiry(), at(1000));
  EXPECT_TRUE(tracker.on_tick(at(999)).empty());
  auto e = tracker.on_tick(at(1000));
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].kind, Kind::expired);
  EXPECT_EQ(e[0].leader, "alice");
  EXPECT_EQ(e[0].time, at(1000));
  EXPECT_TRUE(tracker.on_tick(at(5000)).empty()); // said once
  EXPECT_FALSE(tracker.next_expiry());
  // A win after the expiry is a win with no previous leader.
  auto w = put("alice", 6000);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].kind, Kind::won);
}

TEST_F(Tracker, ReportsAnExpiryMissedByTheTickBeforeTheNextWrite) {
  put("alice", 0);
  auto w = put("bob", 1500);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].kind, Kind::expired);
  EXPECT_EQ(w[0].leader, "alice");
  EXPECT_EQ(w[1].kind, Kind::won);
  EXPECT_FALSE(w[1].previous);
}

TEST_F(Tracker, ReleasedMarkersExpireSilentlyAndInitialTombstonesAreHistory) {
  put("kvelect:released", 0);
  EXPECT_TRUE(tracker.on_tick(at(2000)).empty());
  EXPECT_TRUE(tracker.on_update({"f", WatchTracker::Op::purge, "", 50, at(0), true}).empty());
}

// ---- leader file ------------------------------------------------------------------------------

TEST(LeaderFile, WritesJsonAtomically) {
  clitest::TempDir dir;
  const std::string path = dir.file("leader.json");
  LeaderRecord record;
  record.leader = "node\"1";
  record.since = std::chrono::system_clock::time_point{};
  record.token = 9;
  record.count = 2;
  write_atomically(path, leader_json(record));
  EXPECT_EQ(clitest::read_file(path),
            "{\"leader\": \"node\\\"1\", \"since\": \"1970-01-01T00:00:00.000000Z\", "
            "\"token\": 9, \"count\": 2}\n");
  EXPECT_TRUE(looks_like_leader_file(path));
  clitest::write_file(dir.file("other"), "not ours");
  EXPECT_FALSE(looks_like_leader_file(dir.file("other")));
  EXPECT_THROW(write_atomically(dir.file("missing/x"), "x"), std::system_error);
  // No temporary file is left behind.
  EXPECT_FALSE(clitest::file_exists(path + ".tmp." + std::to_string(::getpid())));
}

// ---- child processes --------------------------------------------------------------------------

std::optional<int> reap_within(Child& child, std::chrono::milliseconds timeout) {
  std::optional<int> status;
  clitest::eventually([&] { return (status = child.reap()).has_value(); }, timeout);
  return status;
}

TEST(Process, ReportsExitCodesAndSignals) {
  Child child;
  child.start({{"sh", "-c", "exit 7"}, {}, true, 0});
  auto status = reap_within(child, 10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(exit_code_of(*status), 7);
  EXPECT_EQ(describe_status(*status), "exited with code 7");
  EXPECT_FALSE(child.running());

  child.start({{"sh", "-c", "kill -TERM $$"}, {}, true, 0});
  status = reap_within(child, 10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(exit_code_of(*status), 128 + SIGTERM);
  EXPECT_NE(describe_status(*status).find("killed by signal 15"), std::string::npos);
}

TEST(Process, ReportsCommandsThatCannotRun) {
  try {
    (void)spawn({{"kvelect-no-such-command-here"}, {}, true, 0});
    FAIL() << "expected a SpawnError";
  } catch (const SpawnError& e) {
    EXPECT_EQ(e.error(), ENOENT);
    EXPECT_NE(std::string(e.what()).find("kvelect-no-such-command-here"), std::string::npos);
  }
  clitest::TempDir dir;
  const std::string script = dir.file("not-executable");
  clitest::write_file(script, "#!/bin/sh\n");
  EXPECT_THROW((void)spawn({{script}, {}, true, 0}), SpawnError);
}

TEST(Process, PassesEnvironmentAndRunsInItsOwnGroup) {
  clitest::TempDir dir;
  const std::string out = dir.file("env");
  Child child;
  child.start({{"sh", "-c", "echo \"$KVELECT_TEST_VALUE $(cut -d' ' -f5 /proc/$$/stat)\" > " + out},
               {"KVELECT_TEST_VALUE=hello"},
               true,
               0});
  const pid_t pid = child.pid();
  ASSERT_TRUE(reap_within(child, 10s));
  const std::string text = clitest::read_file(out);
  EXPECT_EQ(text.substr(0, 6), "hello ") << text;
  EXPECT_EQ(std::stoi(text.substr(6)), pid) << text;
}

TEST(Process, TerminationEscalatesToSigkill) {
  Child child;
  // Ignores SIGINT and SIGTERM; only SIGKILL ends it.
  child.start({{"sh", "-c", "trap '' INT TERM; while :; do sleep 0.05; done"}, {}, true, 0});
  std::this_thread::sleep_for(100ms); // let the shell install its traps
  const auto start = std::chrono::steady_clock::now();
  child.terminate({{SIGINT, 0ms}, {SIGTERM, 100ms}, {SIGKILL, 100ms}});
  EXPECT_TRUE(child.terminating());
  std::optional<int> status;
  ASSERT_TRUE(clitest::eventually(
      [&] {
        child.advance();
        return (status = child.reap()).has_value();
      },
      10s));
  EXPECT_TRUE(WIFSIGNALED(*status) && WTERMSIG(*status) == SIGKILL) << describe_status(*status);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);
}

TEST(Process, NotifySignalsOnlyTheMainProcess) {
  clitest::TempDir dir;
  const std::string out = dir.file("usr1");
  Child child;
  child.start(
      {{"sh", "-c", "trap 'echo usr1 >> " + out + "; exit 0' USR1; while :; do sleep 0.05; done"},
       {},
       true,
       0});
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(child.notify(SIGUSR1));
  auto status = reap_within(child, 10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(exit_code_of(*status), 0);
  EXPECT_EQ(clitest::read_file(out), "usr1\n");
}

// ---- event loop -------------------------------------------------------------------------------

TEST(EventLoop, DeliversPostedEventsAndSignals) {
  block_signals();
  EventLoop loop;
  std::thread poster([&] {
    std::this_thread::sleep_for(50ms);
    ElectionEvent event;
    event.kind = ElectionEvent::Kind::won;
    event.token = 5;
    loop.post(event);
  });
  auto wakeup = loop.wait(std::chrono::steady_clock::now() + 10s);
  poster.join();
  ASSERT_EQ(wakeup.events.size(), 1u);
  EXPECT_EQ(wakeup.events[0].token, 5u);

  // A timeout returns empty-handed.
  wakeup = loop.wait(std::chrono::steady_clock::now() + 20ms);
  EXPECT_TRUE(wakeup.events.empty());
  EXPECT_TRUE(wakeup.signals.empty());

  ::raise(SIGHUP); // blocked: reported through the signalfd, not delivered
  wakeup = loop.wait(std::chrono::steady_clock::now() + 10s);
  ASSERT_EQ(wakeup.signals.size(), 1u);
  EXPECT_EQ(wakeup.signals[0], SIGHUP);
}

// ---- shell_split: Choria's quoted `run NAME "cmd args"` form ----------------------------------

TEST(ShellSplit, SplitsOnBlanksAndHonoursQuotesAndBackslashes) {
  using V = std::vector<std::string>;
  EXPECT_EQ(shell_split("sleep 10"), (V{"sleep", "10"}));
  EXPECT_EQ(shell_split("  a\t b \n c  "), (V{"a", "b", "c"}));
  EXPECT_EQ(shell_split(""), V{});
  EXPECT_EQ(shell_split("echo 'a b' \"c d\""), (V{"echo", "a b", "c d"}));
  EXPECT_EQ(shell_split("a'b'\"c\"d"), (V{"abcd"}));
  EXPECT_EQ(shell_split("x '' \"\""), (V{"x", "", ""}));
  EXPECT_EQ(shell_split(R"(a\ b c\'d)"), (V{"a b", "c'd"}));
  EXPECT_EQ(shell_split("'$HOME \\n'"), (V{"$HOME \\n"}));                   // literal in '...'
  EXPECT_EQ(shell_split(R"("a \"q\" \$x \\ \n")"), (V{R"(a "q" $x \ \n)"})); // \n kept in "..."
  EXPECT_EQ(shell_split("a\\\nb"), (V{"ab"}));                               // line continuation
  EXPECT_EQ(shell_split("a|b;c"), (V{"a|b;c"}));                             // no operators
}

TEST(ShellSplit, UnbalancedQuotesAndATrailingBackslashAreErrors) {
  EXPECT_THROW(shell_split("echo 'a"), ShellSplitError);
  EXPECT_THROW(shell_split("echo \"a"), ShellSplitError);
  EXPECT_THROW(shell_split("echo \"a\\\""), ShellSplitError);
  EXPECT_THROW(shell_split("echo a\\"), ShellSplitError);
}

TEST(ResolveCommand, TellsNotFoundFromNotExecutable) {
  EXPECT_EQ(resolve_command("sh").error, 0);
  EXPECT_FALSE(resolve_command("sh").path.empty());
  EXPECT_EQ(resolve_command("kvelect-no-such-command").error, ENOENT);
  EXPECT_EQ(resolve_command("/no/such/file").error, ENOENT);
  clitest::TempDir dir;
  const std::string plain = dir.file("plain");
  clitest::write_file(plain, "#!/bin/sh\n"); // mode 0644: exists, not executable
  EXPECT_EQ(resolve_command(plain).error, EACCES);
  EXPECT_EQ(resolve_command(dir.path()).error, EACCES); // a directory
}

} // namespace
} // namespace kvelect::cli
