// SPDX-License-Identifier: Apache-2.0
// The kvelect binary against a real nats-server: every command, as a child process, the way an
// operator runs it. Buckets have a 1 s TTL (the election commands take --skip-validation) so
// that takeovers and expiries happen quickly.
#include "cli_harness.hpp"

#include "nats_server.hpp"

#include <kvelect/nats.hpp>

#include <nats/nats.h>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <algorithm>
#include <atomic>
#include <csignal>
#include <memory>
#include <regex>
#include <set>

namespace kvelect::clitest {
namespace {

using kvelect::testing::NatsServer;

// A shell command that records what happens to it in the file named by its first argument:
// "start MEMBER TOKEN", then "usr1", "usr2", "term" (exit 3) or "int" (exit 4). Its traps are set
// before its pid file is written, so a test that has read the pid may signal it at once. (On a
// heavily loaded machine kvelect's first SIGUSR1, 1 s after the start, once found a shell still
// without them, and killed it.)
constexpr const char* kChildScript = R"(#!/bin/sh
out="$1"
trap 'echo usr1 >> "$out"' USR1
trap 'echo usr2 >> "$out"' USR2
trap 'echo term >> "$out"; exit 3' TERM
trap 'echo int >> "$out"; exit 4' INT
echo $$ > "$out.pid"
echo "start $KVELECT_MEMBER $KVELECT_TOKEN" >> "$out"
while :; do sleep 0.05; done
)";

// The same, except that once started it forks nothing: it waits for one background `sleep`
// (a trapped signal ends the `wait`, the trap runs, the loop waits again). So its own state in
// /proc says whether it is stopped. The looping script above is, on a loaded machine, often
// inside vfork(2) when SIGTSTP comes: its vfork child (not yet `sleep`) stops, and the shell
// waits for that child in state 'D', not 'T', until SIGCONT (docs/cli.md, "kvelect run").
constexpr const char* kWaitingChildScript = R"(#!/bin/sh
out="$1"
trap 'echo usr1 >> "$out"' USR1
trap 'echo usr2 >> "$out"' USR2
trap 'echo term >> "$out"; exit 3' TERM
trap 'echo int >> "$out"; exit 4' INT
echo $$ > "$out.pid"
echo "start $KVELECT_MEMBER $KVELECT_TOKEN" >> "$out"
sleep 86400 &
while :; do wait $!; done
)";

// ---- usage: no server needed ----------------------------------------------------------------

class CliUsage : public ::testing::Test {
protected:
  void SetUp() override { ASSERT_FALSE(kvelect_bin().empty()) << "KVELECT_BIN is not set"; }
  TempDir dir_;
};

TEST_F(CliUsage, UnknownFlagExitsTwoNamingIt) {
  const Result r = run_kvelect({"info", "--no-such-flag"}, dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "--no-such-flag")) << r.output();
}

TEST_F(CliUsage, BadDurationExitsTwoNamingTheValue) {
  Result r = run_kvelect({"run", "--grace", "5parsecs", "e", "--", "true"}, dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "'5parsecs'")) << r.output();
  EXPECT_TRUE(contains(r.err, "--grace")) << r.output();
  r = run_kvelect({"bucket", "add", "B", "--ttl", "-1s"}, dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "'-1s'")) << r.output();
}

TEST_F(CliUsage, MissingElectionExitsTwo) {
  for (const char* command : {"run", "file", "campaign", "evict"}) {
    const Result r = run_kvelect({command}, dir_.path());
    EXPECT_EQ(r.code, 2) << command << "\n" << r.output();
    EXPECT_TRUE(contains(r.err, "ELECTION is required")) << command << "\n" << r.output();
  }
  const Result r = run_kvelect({}, dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "subcommand is required")) << r.output();
}

TEST_F(CliUsage, InvalidNamesAndRegexExitTwo) {
  Result r = run_kvelect({"campaign", "bad..name"}, dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "'bad..name'")) << r.output();
  r = run_kvelect({"info", "(unclosed"}, dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "'(unclosed'")) << r.output();
  r = run_kvelect({"campaign", "--name", "kvelect:x", "e", "--server", "nats://127.0.0.1:1"},
                  dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "reserved prefix")) << r.output();
}

TEST_F(CliUsage, EvictWithoutATerminalNeedsForce) {
  // stdin is /dev/null: no terminal to confirm on, and no server is contacted.
  const Result r = run_kvelect({"evict", "e", "--server", "nats://127.0.0.1:1"}, dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "--force")) << r.output();
}

TEST_F(CliUsage, HelpIsManPageStyle) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--help"},
                                               {"run", "--help"},
                                               {"bucket", "add", "--help"},
                                               {"watch", "--help"}}) {
    const Result r = run_kvelect(args, dir_.path());
    EXPECT_EQ(r.code, 0) << r.output();
    for (const char* section : {"NAME", "SYNOPSIS", "DESCRIPTION", "EXIT STATUS"})
      EXPECT_TRUE(contains(r.out, section)) << section << "\n" << r.output();
  }
}

// ---- against a server ------------------------------------------------------------------------

class Cli : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    if (kvelect::testing::nats_server_available())
      server_ = std::make_unique<NatsServer>();
  }
  static void TearDownTestSuite() { server_.reset(); }

  void SetUp() override {
    KVELECT_REQUIRE_NATS_SERVER();
    ASSERT_FALSE(kvelect_bin().empty()) << "KVELECT_BIN is not set";
    ASSERT_TRUE(server_);
    static std::atomic<int> counter{0};
    bucket_ = "CLI_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
    script_ = dir_.file("child.sh");
    write_file(script_, kChildScript);
  }

  void TearDown() override {
    processes_.clear(); // SIGKILL to each kvelect's process group
    // Backstop: commands started by `run` are in process groups of their own.
    if (DIR* d = ::opendir(dir_.path().c_str())) {
      while (dirent* entry = ::readdir(d)) {
        const std::string name = entry->d_name;
        if (name.size() > 4 && name.substr(name.size() - 4) == ".pid") {
          const std::string text = read_file(dir_.file(name));
          if (const int pid = std::atoi(text.c_str()); pid > 1) {
            ::kill(-pid, SIGKILL);
            ::kill(pid, SIGKILL);
          }
        }
      }
      ::closedir(d);
    }
  }

  // `words` (the command, e.g. {"campaign"}) then the connection flags, then `rest`.
  std::vector<std::string> cmd(std::vector<std::string> words,
                               const std::vector<std::string>& rest) const {
    words.insert(words.end(), {"--server", server_->url(), "--bucket", bucket_});
    words.insert(words.end(), rest.begin(), rest.end());
    return words;
  }
  // A one-shot command (info, bucket, evict): a generous request timeout, since its default (5 s)
  // was exceeded on a loaded 2-core machine ("cannot open bucket: Timeout").
  Result kvelect(std::vector<std::string> words, const std::vector<std::string>& rest) {
    std::vector<std::string> with_timeout = {"--timeout", "20s"};
    with_timeout.insert(with_timeout.end(), rest.begin(), rest.end());
    return run_kvelect(cmd(std::move(words), with_timeout), dir_.path());
  }
  Kvelect& start(const std::string& label, std::vector<std::string> words,
                 const std::vector<std::string>& rest, bool append = false) {
    processes_.push_back(
        std::make_unique<Kvelect>(cmd(std::move(words), rest), dir_.path(), label, append));
    return *processes_.back();
  }
  void make_bucket(const std::string& ttl = "1s") {
    const Result r = kvelect({"bucket", "add"}, {"--ttl", ttl, "--storage", "memory"});
    ASSERT_EQ(r.code, 0) << r.output();
    ASSERT_TRUE(contains(r.out, "bucket '" + bucket_ + "' ready")) << r.output();
  }
  // Evicts the leader of `election` until `changed` holds (a leader can win its key straight
  // back if a renewal of its was in flight, see docs/cli.md); true once it does.
  bool evict_until(const std::string& election, const std::function<bool()>& changed) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      const Result r = kvelect({"evict"}, {"--force", election});
      EXPECT_EQ(r.code, 0) << r.output();
      EXPECT_TRUE(contains(r.out, "evicted '")) << r.output();
      if (eventually(changed, 10s))
        return true;
    }
    return false;
  }

  static inline std::unique_ptr<NatsServer> server_;
  TempDir dir_;
  std::string bucket_;
  std::string script_;
  std::vector<std::unique_ptr<Kvelect>> processes_;
};

// Flags of every campaigning command in these tests: the 1 s TTL, no start-up delay.
const std::vector<std::string> kFast = {"--skip-validation", "--splay", "0"};

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

int count_lines(const std::string& text, const std::string& line) {
  const auto lines = lines_of(text);
  return static_cast<int>(std::count(lines.begin(), lines.end(), line));
}

// The state letter of /proc/PID/stat: 'T' for a stopped process; 0 if it is gone.
char process_state(pid_t pid) {
  const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  const auto paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() ? stat[paren + 2] : '\0';
}

pid_t pid_in(const std::string& path) { return std::atoi(read_file(path).c_str()); }

TEST_F(Cli, BucketAddAndInfoWarnAboutAShortTtl) {
  make_bucket("1s");
  const Result r = kvelect({"info"}, {});
  ASSERT_EQ(r.code, 0) << r.output();
  EXPECT_TRUE(contains(r.out, "Storage   memory")) << r.output();
  EXPECT_TRUE(contains(r.out, "TTL       1s")) << r.output();
  EXPECT_TRUE(contains(r.out, "History   1")) << r.output();
  EXPECT_TRUE(contains(r.out, "WARNING: TTL 1s is below 5s")) << r.output();
  EXPECT_TRUE(contains(r.out, "no elections")) << r.output();
}

TEST_F(Cli, InfoWarnsAboutHistoryAndShowsLeaders) {
  // A bucket not made by kvelect: history 3.
  kvelect::ConnectOptions options;
  options.servers = {server_->url()};
  const auto connection = kvelect::Connection::connect(options);
  kvConfig config;
  kvConfig_Init(&config);
  config.Bucket = bucket_.c_str();
  config.History = 3;
  config.TTL = std::chrono::nanoseconds(10s).count();
  config.StorageType = js_MemoryStorage;
  kvStore* kv = nullptr;
  ASSERT_EQ(js_CreateKeyValue(&kv, connection.jetstream(), &config), NATS_OK);
  std::uint64_t revision = 0;
  EXPECT_EQ(kvStore_PutString(&revision, kv, "jobs.sched", "bob"), NATS_OK);
  EXPECT_EQ(kvStore_PutString(&revision, kv, "backup", "kvelect:released"), NATS_OK);
  kvStore_Destroy(kv);

  Result r = kvelect({"info"}, {});
  ASSERT_EQ(r.code, 0) << r.output();
  EXPECT_TRUE(contains(r.out, "WARNING: history is 3")) << r.output();
  EXPECT_FALSE(contains(r.out, "WARNING: TTL")) << r.output();
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(\njobs\.sched +bob +\d+ )"))) << r.output();
  EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(\nbackup +- +\d+ )"))) << r.output();

  r = kvelect({"info"}, {"^jobs\\."});
  ASSERT_EQ(r.code, 0) << r.output();
  EXPECT_TRUE(contains(r.out, "jobs.sched")) << r.output();
  EXPECT_FALSE(contains(r.out, "backup")) << r.output();
  r = kvelect({"info"}, {"^nothing$"});
  EXPECT_TRUE(contains(r.out, "no elections match '^nothing$'")) << r.output();
}

TEST_F(Cli, UnknownBucketAndMissingServerExitOneNamingThem) {
  Result r = kvelect({"info"}, {});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "bucket '" + bucket_ + "' does not exist")) << r.output();
  r = kvelect({"campaign"}, kFast + std::vector<std::string>{"e"});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "bucket '" + bucket_ + "' does not exist")) << r.output();

  // A port with no server behind it: bind one, then close it.
  const int port = kvelect::testing::free_loopback_port();
  const std::string url = "nats://127.0.0.1:" + std::to_string(port);
  r = run_kvelect({"info", "--server", url, "--timeout", "500ms"}, dir_.path());
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "no NATS server at " + url)) << r.output();
}

TEST_F(Cli, CampaignJsonEmitsParseableLines) {
  make_bucket();
  Kvelect& alice = start("alice", {"campaign"},
                         kFast + std::vector<std::string>{"--json", "--name", "alice", "sched"});
  ASSERT_TRUE(eventually([&] { return contains(alice.out(), R"("event": "won")"); }))
      << alice.output();

  // While it leads, info names it.
  const Result info = kvelect({"info"}, {"sched"});
  EXPECT_TRUE(std::regex_search(info.out, std::regex(R"(\nsched +alice +\d+ )"))) << info.output();

  alice.signal(SIGTERM);
  ASSERT_EQ(alice.wait(20s), 0) << alice.output();
  const std::set<std::string> events = {"campaign", "won", "lost", "leader", "error"};
  const std::set<std::string> states = {"unknown", "candidate", "leader"};
  const std::regex time(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)");
  std::vector<std::string> seen;
  const auto lines = lines_of(alice.out());
  ASSERT_FALSE(lines.empty());
  for (const auto& line : lines) {
    ASSERT_TRUE(line.size() > 2 && line.front() == '{' && line.back() == '}') << line;
    const auto t = json_field(line, "time");
    ASSERT_TRUE(t && std::regex_match(*t, time)) << line;
    EXPECT_EQ(json_field(line, "election"), "sched") << line;
    EXPECT_EQ(json_field(line, "member"), "alice") << line;
    const auto event = json_field(line, "event");
    ASSERT_TRUE(event && events.count(*event)) << line;
    const auto state = json_field(line, "state");
    EXPECT_TRUE(state && states.count(*state)) << line;
    if (*event == "won") {
      const auto token = json_field(line, "token");
      ASSERT_TRUE(token) << line;
      EXPECT_TRUE(std::regex_match(*token, std::regex(R"(\d+)"))) << line;
      EXPECT_EQ(state, "leader") << line;
    }
    if (*event == "leader") {
      EXPECT_TRUE(json_field(line, "leader")) << line;
    }
    if (*event == "error") {
      EXPECT_TRUE(json_field(line, "error")) << line;
    }
    seen.push_back(*event);
  }
  EXPECT_NE(std::find(seen.begin(), seen.end(), "campaign"), seen.end());
  EXPECT_NE(std::find(seen.begin(), seen.end(), "leader"), seen.end());
  EXPECT_EQ(seen.back(), "lost") << alice.output(); // stop() released leadership
  // Released: nobody leads now.
  EXPECT_EQ(kvelect({"info"}, {"sched"}).out.find("alice"), std::string::npos);
}

// Issue 11: a script reading the output of two members sees "lost" of the old leader before
// "won" of the new one in every graceful handover (SIGTERM): the line is written from OnLost,
// before the key is released. Both members append to one file, so its order is the order in
// which the lines were written.
TEST_F(Cli, CampaignJsonNeverShowsTwoLeadersInGracefulHandovers) {
  make_bucket();
  const std::string shared = dir_.file("both.out");
  auto member = [&](const std::string& name) -> Kvelect& {
    return start("both", {"campaign"},
                 kFast + std::vector<std::string>{"--json", "--name", name, "sched"},
                 /*append=*/true);
  };
  auto count = [&](const std::string& name, const std::string& event) {
    int n = 0;
    for (const auto& line : lines_of(read_file(shared)))
      if (json_field(line, "member") == name && json_field(line, "event") == event)
        ++n;
    return n;
  };
  Kvelect* leader = &member("m0");
  ASSERT_TRUE(eventually([&] { return count("m0", "won") == 1; })) << leader->output();
  constexpr int kHandovers = 8;
  for (int i = 1; i <= kHandovers; ++i) {
    const std::string next = "m" + std::to_string(i);
    const std::string previous = "m" + std::to_string(i - 1);
    Kvelect& standby = member(next);
    // The standby has seen the leader: it is campaigning, and wins as soon as the key is free.
    ASSERT_TRUE(eventually([&] {
      for (const auto& line : lines_of(read_file(shared)))
        if (json_field(line, "member") == next && json_field(line, "leader") == previous)
          return true;
      return false;
    })) << read_file(shared);
    leader->signal(SIGTERM);
    ASSERT_EQ(leader->wait(20s), 0) << read_file(shared);
    ASSERT_TRUE(eventually([&] { return count(next, "won") == 1; })) << read_file(shared);
    leader = &standby;
  }
  leader->signal(SIGTERM);
  ASSERT_EQ(leader->wait(20s), 0) << read_file(shared);

  // Replay the shared output: at most one leader at any line.
  std::set<std::string> leaders;
  int wins = 0;
  for (const auto& line : lines_of(read_file(shared))) {
    const auto event = json_field(line, "event");
    const auto name = json_field(line, "member");
    ASSERT_TRUE(event && name) << line;
    if (*event == "won") {
      ++wins;
      EXPECT_TRUE(leaders.empty())
          << "'" << *name << "' won while '" << *leaders.begin() << "' still led:\n"
          << read_file(shared);
      leaders.insert(*name);
    } else if (*event == "lost") {
      EXPECT_EQ(leaders.count(*name), 1U) << line;
      leaders.erase(*name);
    }
  }
  EXPECT_EQ(wins, kHandovers + 1) << read_file(shared);
  EXPECT_TRUE(leaders.empty()) << read_file(shared);
}

TEST_F(Cli, WatchPrintsWinsAndExpiries) {
  make_bucket();
  Kvelect& watch = start("watch", {"watch"}, {"--election", "sched"});
  ASSERT_TRUE(eventually([&] { return contains(watch.out(), "# watching"); })) << watch.output();
  Kvelect& alice =
      start("alice", {"campaign"}, kFast + std::vector<std::string>{"--name", "alice", "sched"});
  ASSERT_TRUE(eventually([&] {
    return contains(watch.out(), "won      sched: new leader 'alice'");
  })) << watch.output();
  ASSERT_TRUE(eventually([&] { return contains(watch.out(), "renewed  sched: 'alice'"); }))
      << watch.output();
  // A leader that dies without releasing: its value expires after the TTL.
  alice.kill();
  ASSERT_TRUE(eventually([&] { return contains(watch.out(), "expired  sched: 'alice'"); }))
      << watch.output();
  for (const auto& line : lines_of(watch.out()))
    if (line.front() != '#') {
      EXPECT_TRUE(
          std::regex_search(line, std::regex(R"(^\d{4}-\d\d-\d\dT[\d:.]+Z [a-z]+ +sched: )")))
          << line;
    }
  watch.signal(SIGINT);
  EXPECT_EQ(watch.wait(20s), 0) << watch.output();
}

TEST_F(Cli, EvictChangesTheLeader) {
  make_bucket();
  Result r = kvelect({"evict"}, {"--force", "sched"});
  EXPECT_EQ(r.code, 0) << r.output();
  EXPECT_TRUE(contains(r.out, "no leader")) << r.output();

  Kvelect& a =
      start("a", {"campaign"}, kFast + std::vector<std::string>{"--json", "--name", "a", "sched"});
  ASSERT_TRUE(eventually([&] { return contains(a.out(), R"("event": "won")"); })) << a.output();
  Kvelect& b =
      start("b", {"campaign"}, kFast + std::vector<std::string>{"--json", "--name", "b", "sched"});
  ASSERT_TRUE(eventually([&] { return contains(b.out(), R"("leader": "a")"); })) << b.output();

  ASSERT_TRUE(evict_until("sched", [&] { return contains(b.out(), R"("event": "won")"); }))
      << a.output() << b.output();
  EXPECT_TRUE(contains(a.out(), R"("event": "lost")")) << a.output();
  const Result info = kvelect({"info"}, {"sched"});
  EXPECT_TRUE(std::regex_search(info.out, std::regex(R"(\nsched +b +\d+ )"))) << info.output();
}

TEST_F(Cli, FileExistsOnlyWhileLeader) {
  make_bucket();
  const std::string path1 = dir_.file("leader1.json");
  const std::string path2 = dir_.file("leader2.json");
  Kvelect& f1 =
      start("f1", {"file"}, kFast + std::vector<std::string>{"--name", "f1", "job", path1});
  ASSERT_TRUE(eventually([&] { return file_exists(path1); })) << f1.output();
  const std::string json = read_file(path1);
  EXPECT_EQ(json_field(json, "leader"), "f1") << json;
  EXPECT_EQ(json_field(json, "count"), "1") << json;
  EXPECT_TRUE(std::regex_match(json_field(json, "token").value_or(""), std::regex(R"(\d+)")))
      << json;
  EXPECT_TRUE(std::regex_match(json_field(json, "since").value_or(""),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")))
      << json;

  // Kept present: a removed file comes back.
  ASSERT_EQ(::unlink(path1.c_str()), 0);
  ASSERT_TRUE(eventually([&] { return file_exists(path1); }, 10s)) << f1.output();

  Kvelect& f2 =
      start("f2", {"file"}, kFast + std::vector<std::string>{"--name", "f2", "job", path2});
  ASSERT_TRUE(eventually([&] { return contains(f2.err(), "campaigning for 'job'"); }))
      << f2.output();
  ASSERT_TRUE(evict_until("job", [&] { return file_exists(path2); })) << f1.output() << f2.output();
  EXPECT_TRUE(eventually([&] { return !file_exists(path1); })) << f1.output();

  // Leaving removes the file; the other member takes over.
  f2.signal(SIGTERM);
  EXPECT_EQ(f2.wait(20s), 0) << f2.output();
  EXPECT_FALSE(file_exists(path2));
  ASSERT_TRUE(eventually([&] { return file_exists(path1); })) << f1.output();
  EXPECT_TRUE(contains(read_file(path1), R"("count": 2)")) << read_file(path1);
  f1.signal(SIGINT);
  EXPECT_EQ(f1.wait(20s), 0) << f1.output();
  EXPECT_FALSE(file_exists(path1));
}

TEST_F(Cli, RunStartsTheCommandOnlyOnTheLeaderAndSignalsItOnLoss) {
  make_bucket();
  const std::string m1 = dir_.file("m1");
  const std::string m2 = dir_.file("m2");
  const std::string hooks = dir_.file("hooks");
  Kvelect& n1 =
      start("n1", {"run"},
            kFast + std::vector<std::string>{"--name", "n1", "--on-won",
                                             "echo won $KVELECT_MEMBER $KVELECT_TOKEN >> " + hooks,
                                             "--on-lost", "echo lost $KVELECT_MEMBER >> " + hooks,
                                             "sched", "--", "/bin/sh", script_, m1});
  ASSERT_TRUE(eventually([&] { return contains(read_file(m1), "start n1 "); })) << n1.output();
  ASSERT_TRUE(eventually([&] { return contains(read_file(hooks), "won n1 "); })) << n1.output();
  // As Choria: SIGUSR1 about a second after the start as leader.
  ASSERT_TRUE(eventually([&] { return count_lines(read_file(m1), "usr1") == 1; })) << n1.output();

  Kvelect& n2 = start(
      "n2", {"run"},
      kFast + std::vector<std::string>{"--name", "n2", "sched", "--", "/bin/sh", script_, m2});
  ASSERT_TRUE(eventually([&] { return contains(n2.err(), "leader of 'sched': 'n1'"); }))
      << n2.output();
  std::this_thread::sleep_for(1500ms); // 1.5 TTLs as a candidate: its command must not start
  EXPECT_FALSE(file_exists(m2)) << n2.output();

  // n1 loses leadership: its command gets SIGUSR2 (and keeps running), n2 starts its own.
  ASSERT_TRUE(evict_until("sched", [&] { return contains(read_file(m2), "start n2 "); }))
      << n1.output() << n2.output();
  EXPECT_TRUE(eventually([&] { return contains(read_file(m1), "usr2"); })) << n1.output();
  EXPECT_TRUE(eventually([&] { return contains(read_file(hooks), "lost n1"); })) << n1.output();
  EXPECT_TRUE(n1.running()) << n1.output();

  // SIGTERM is forwarded to the command (which exits 3): kvelect exits with its code.
  n2.signal(SIGTERM);
  EXPECT_EQ(n2.wait(20s), 3) << n2.output();
  EXPECT_TRUE(contains(read_file(m2), "term")) << read_file(m2);
  // n1 wins again: its running command gets SIGUSR1 again.
  EXPECT_TRUE(eventually([&] { return count_lines(read_file(m1), "usr1") == 2; })) << n1.output();
  n1.signal(SIGINT);
  EXPECT_EQ(n1.wait(20s), 4) << n1.output();
  EXPECT_TRUE(contains(read_file(m1), "int")) << read_file(m1);
}

TEST_F(Cli, RunHandsOverWhenTheLeaderIsStopped) {
  make_bucket();
  const std::string m1 = dir_.file("m1");
  const std::string m2 = dir_.file("m2");
  const std::vector<std::string> flags = {"--terminate", "--grace", "1s"};
  Kvelect& n1 =
      start("n1", {"run"},
            kFast + flags +
                std::vector<std::string>{"--name", "n1", "sched", "--", "/bin/sh", script_, m1});
  ASSERT_TRUE(eventually([&] { return contains(read_file(m1), "start n1 "); })) << n1.output();
  Kvelect& n2 =
      start("n2", {"run"},
            kFast + flags +
                std::vector<std::string>{"--name", "n2", "sched", "--", "/bin/sh", script_, m2});
  ASSERT_TRUE(eventually([&] { return contains(n2.err(), "leader of 'sched': 'n1'"); }))
      << n2.output();
  EXPECT_FALSE(file_exists(m2));

  const auto stopped = std::chrono::steady_clock::now();
  n1.signal(SIGTERM);
  EXPECT_EQ(n1.wait(20s), 3) << n1.output();
  EXPECT_TRUE(contains(read_file(m1), "term")) << read_file(m1);
  ASSERT_TRUE(eventually([&] { return contains(read_file(m2), "start n2 "); })) << n2.output();
  // n1 released the key: no waiting out the TTL (generous bound for slow machines).
  EXPECT_LT(std::chrono::steady_clock::now() - stopped, 10s);

  n2.signal(SIGINT);
  EXPECT_EQ(n2.wait(20s), 4) << n2.output();
  EXPECT_TRUE(contains(read_file(m2), "int")) << read_file(m2);
}

TEST_F(Cli, RunExitsWithTheCommandsExitCode) {
  make_bucket();
  Result r = kvelect({"run"}, kFast + std::vector<std::string>{"--name", "n1", "sched", "--",
                                                               "/bin/sh", "-c", "exit 7"});
  EXPECT_EQ(r.code, 7) << r.output();
  EXPECT_TRUE(contains(r.err, "exited with code 7")) << r.output();
  // Released on the way out.
  EXPECT_TRUE(eventually([&] {
    return std::regex_search(kvelect({"info"}, {"sched"}).out, std::regex(R"(\nsched +- )"));
  }));

  r = kvelect({"run"}, kFast + std::vector<std::string>{"sched", "--", "kvelect-no-such-cmd"});
  EXPECT_EQ(r.code, 127) << r.output();
  EXPECT_TRUE(contains(r.err, "kvelect-no-such-cmd")) << r.output();
}

TEST_F(Cli, RunTakesChoriasQuotedCommandAndSignalsUsr1AfterTheStart) {
  make_bucket();
  const std::string m1 = dir_.file("m1");
  // Choria's form: one string, split like a shell does (the quotes keep "a b" one word).
  Kvelect& n1 = start(
      "n1", {"run"},
      kFast + std::vector<std::string>{"--name", "n1", "sched", "/bin/sh '" + script_ + "' " + m1});
  ASSERT_TRUE(eventually([&] { return contains(read_file(m1), "start n1 "); })) << n1.output();
  // The first SIGUSR1 comes about a second after the start, without any re-win.
  ASSERT_TRUE(eventually([&] { return count_lines(read_file(m1), "usr1") == 1; })) << n1.output();
  EXPECT_TRUE(contains(n1.err(), "sending SIGUSR1")) << n1.output();
  n1.signal(SIGINT);
  EXPECT_EQ(n1.wait(20s), 4) << n1.output(); // the script's own exit code for SIGINT

  const Result r =
      kvelect({"run"}, kFast + std::vector<std::string>{"--name", "n2", "sched",
                                                        R"(/bin/sh -c "exit \"7\"" ignored)"});
  EXPECT_EQ(r.code, 7) << r.output();
}

TEST_F(CliUsage, RunChecksTheCommandBeforeConnecting) {
  // No server at this URL: the command is checked first, so the server is never needed.
  const std::vector<std::string> flags = {"--server", "nats://127.0.0.1:1", "--timeout", "10s"};
  Result r = run_kvelect(std::vector<std::string>{"run"} + flags +
                             std::vector<std::string>{"sched", "--", "kvelect-no-such-cmd", "x"},
                         dir_.path());
  EXPECT_EQ(r.code, 127) << r.output();
  EXPECT_TRUE(contains(r.err, "'kvelect-no-such-cmd': command not found")) << r.output();

  const std::string plain = dir_.file("not-executable.sh");
  write_file(plain, "#!/bin/sh\necho hi\n");
  r = run_kvelect(std::vector<std::string>{"run"} + flags +
                      std::vector<std::string>{"sched", "--", plain},
                  dir_.path());
  EXPECT_EQ(r.code, 126) << r.output();
  EXPECT_TRUE(contains(r.err, "'" + plain + "' is not an executable file")) << r.output();

  r = run_kvelect(std::vector<std::string>{"run"} + flags +
                      std::vector<std::string>{"sched", "/bin/echo \"unbalanced"},
                  dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "unterminated double quote")) << r.output();
}

TEST_F(Cli, RunExitsZeroWhenTheCommandStopsAsAsked) {
  make_bucket();
  // A command killed by the forwarded SIGTERM: a clean, requested stop (systemd's "stopped",
  // not "failed").
  Kvelect& n1 = start(
      "n1", {"run"},
      kFast + std::vector<std::string>{"--name", "n1", "sched", "--", "/bin/sh", "-c",
                                       "echo $$ > " + dir_.file("c.pid") + "; exec sleep 1000"});
  ASSERT_TRUE(eventually([&] { return contains(n1.err(), "started '"); })) << n1.output();
  ASSERT_TRUE(eventually([&] { return pid_in(dir_.file("c.pid")) > 0; })) << n1.output();
  n1.signal(SIGTERM);
  EXPECT_EQ(n1.wait(20s), 0) << n1.output();
  EXPECT_TRUE(contains(n1.err(), "killed by signal 15")) << n1.output();
}

TEST_F(Cli, RunForwardsSuspendAndResumeAndStopsALapsedCommand) {
  make_bucket();
  const std::string m1 = dir_.file("m1");
  const std::string m2 = dir_.file("m2");
  const std::string waiting = dir_.file("waiting-child.sh");
  write_file(waiting, kWaitingChildScript);
  Kvelect& n1 = start(
      "n1", {"run"},
      kFast + std::vector<std::string>{"--name", "n1", "sched", "--", "/bin/sh", waiting, m1});
  ASSERT_TRUE(eventually([&] { return count_lines(read_file(m1), "usr1") >= 1; })) << n1.output();
  const pid_t child = pid_in(m1 + ".pid");
  ASSERT_GT(child, 1);
  Kvelect& n2 = start(
      "n2", {"run"},
      kFast + std::vector<std::string>{"--name", "n2", "sched", "--", "/bin/sh", script_, m2});
  ASSERT_TRUE(eventually([&] { return contains(n2.err(), "leader of 'sched': 'n1'"); }))
      << n2.output();

  // Ctrl-Z: kvelect suspends its command (in a process group of its own) and itself.
  n1.signal(SIGTSTP);
  ASSERT_TRUE(eventually([&] { return process_state(child) == 'T'; })) << n1.output();
  ASSERT_TRUE(eventually([&] { return process_state(n1.pid()) == 'T'; })) << n1.output();
  // Suspended past its lease: n2 takes over.
  ASSERT_TRUE(eventually([&] { return contains(read_file(m2), "start n2 "); })) << n2.output();
  EXPECT_EQ(process_state(child), 'T');

  // Resumed: the lapsed leadership is acted on (SIGUSR2) before the command runs on. A new
  // "usr2" line, since on a loaded machine n1 had lost and won back its 1 s lease already.
  const auto usr2_before = count_lines(read_file(m1), "usr2");
  n1.signal(SIGCONT);
  ASSERT_TRUE(eventually([&] { return count_lines(read_file(m1), "usr2") > usr2_before; }))
      << n1.output();
  EXPECT_NE(process_state(child), 'T');
  EXPECT_TRUE(contains(n1.err(), "lapsed while suspended")) << n1.output();
  EXPECT_TRUE(n1.running()) << n1.output();
}

TEST_F(Cli, InterruptDuringConnectExitsAtOnce) {
  // A server that accepts connections (the kernel does) but never says anything: the connect
  // waits for its timeout unless interrupted.
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 8), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string url = "nats://127.0.0.1:" + std::to_string(ntohs(address.sin_port));

  for (const char* command : {"campaign", "run", "file"}) {
    std::vector<std::string> args = {command, "--server", url, "--timeout", "60s", "sched"};
    if (std::string(command) == "run")
      args.insert(args.end(), {"--", "true"});
    if (std::string(command) == "file")
      args.push_back(dir_.file("leader"));
    Kvelect process(args, dir_.path(), std::string("connect-") + command);
    // A pending connection makes the listening socket readable: kvelect is connecting.
    ASSERT_TRUE(kvelect::testing::wait_readable(listener, 20s)) << process.output();
    const auto interrupted = std::chrono::steady_clock::now();
    process.signal(SIGINT);
    EXPECT_EQ(process.wait(20s), 0) << command << "\n" << process.output();
    EXPECT_LT(std::chrono::steady_clock::now() - interrupted, 10s) << command;
    EXPECT_TRUE(contains(process.err(), "stopped while connecting")) << process.output();
    // Drop every connection it left pending, so that the next round waits for its own.
    for (int pending = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK); pending >= 0;
         pending = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK))
      ::close(pending);
  }
  ::close(listener);
}

TEST_F(CliUsage, FileAnswersChoriasArgumentOrderWithAUsageError) {
  // Choria documents `election file FILE NAME`; kvelect takes ELECTION PATH, and never swaps.
  Result r = run_kvelect({"file", dir_.file("cron.host"), "CRON"}, dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "'kvelect file CRON " + dir_.file("cron.host") + "'")) << r.output();
  EXPECT_TRUE(contains(r.err, "Choria")) << r.output();
  r = run_kvelect({"file", dir_.file("cron.host")}, dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "ELECTION is missing")) << r.output();
  r = run_kvelect({"file", "CRON"}, dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "PATH is required")) << r.output();
}

TEST_F(CliUsage, FileCheckTellsAFreshFileFromAStaleOne) {
  const std::string path = dir_.file("cron.host");
  Result r = run_kvelect({"file", "--check", path}, dir_.path());
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "does not exist")) << r.output();

  write_file(path, "{}\n");
  r = run_kvelect({"file", "--check", path}, dir_.path());
  EXPECT_EQ(r.code, 0) << r.output();
  EXPECT_TRUE(r.out.empty() && r.err.empty()) << r.output();

  // Last refreshed two minutes ago: stale for the default 1m, fresh for --max-age 5m.
  const timeval old[2] = {{::time(nullptr) - 120, 0}, {::time(nullptr) - 120, 0}};
  ASSERT_EQ(::utimes(path.c_str(), old), 0);
  r = run_kvelect({"file", "--check", path}, dir_.path());
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "is stale")) << r.output();
  r = run_kvelect({"file", "--check", path, "--max-age", "5m"}, dir_.path());
  EXPECT_EQ(r.code, 0) << r.output();
}

TEST_F(CliUsage, FileRefusesADirectoryItCannotWriteBeforeCampaigning) {
  // As root, permissions do not stop a write; sysfs refuses new files even to root.
  std::string path = dir_.file("ro/leader");
  if (::geteuid() == 0) {
    path = "/sys/kvelect-cli-test.leader";
  } else {
    ASSERT_EQ(::mkdir(dir_.file("ro").c_str(), 0555), 0);
  }
  // No server at this URL: the directory is checked first.
  const Result r =
      run_kvelect({"file", "job", path, "--server", "nats://127.0.0.1:1"}, dir_.path());
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "is not writable")) << r.output();
  EXPECT_FALSE(contains(r.err, "no NATS server")) << r.output();
}

TEST_F(Cli, FileResignsAndExitsOneWhenItCannotWriteAsLeader) {
  make_bucket();
  const std::string path = dir_.file("leader.json");
  Kvelect& a =
      start("a", {"campaign"}, kFast + std::vector<std::string>{"--json", "--name", "a", "job"});
  ASSERT_TRUE(eventually([&] { return contains(a.out(), R"("event": "won")"); })) << a.output();
  Kvelect& f = start("f", {"file"}, kFast + std::vector<std::string>{"--name", "f", "job", path});
  ASSERT_TRUE(eventually([&] { return contains(f.err(), "leader of 'job': 'a'"); })) << f.output();
  // A non-empty directory where the file goes: the rename of the written file onto it fails,
  // whatever the permissions.
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
  write_file(path + "/keep", "x");
  a.signal(SIGTERM);
  ASSERT_EQ(a.wait(20s), 0) << a.output();
  ASSERT_EQ(f.wait(30s), 1) << f.output();
  EXPECT_TRUE(contains(f.err(), "won leadership of 'job'")) << f.output();
  EXPECT_TRUE(contains(f.err(), "resigning")) << f.output();
  EXPECT_FALSE(contains(f.err(), "wrote '")) << f.output();
  // Resigned: the key was released, nobody leads.
  EXPECT_TRUE(std::regex_search(kvelect({"info"}, {"job"}).out, std::regex(R"(\njob +- )")));
}

TEST_F(Cli, FileKeepsItsFileFreshWhileLeader) {
  make_bucket();
  const std::string path = dir_.file("leader.json");
  Kvelect& f = start("f", {"file"}, kFast + std::vector<std::string>{"--name", "f", "job", path});
  ASSERT_TRUE(eventually([&] { return file_exists(path); })) << f.output();
  EXPECT_EQ(run_kvelect({"file", "--check", path}, dir_.path()).code, 0);
  // --check judges by the mtime: a file an hour old is stale. (Checked on a copy: the leader
  // refreshes its own file within a second, which can come before a slow --check process runs.)
  const timeval old[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
  const std::string copy = dir_.file("copy.json");
  write_file(copy, "{}");
  ASSERT_EQ(::utimes(copy.c_str(), old), 0);
  EXPECT_EQ(run_kvelect({"file", "--check", copy}, dir_.path()).code, 1);
  // The leader's file made to look an hour old: refreshed within seconds while the lease runs.
  ASSERT_EQ(::utimes(path.c_str(), old), 0);
  ASSERT_TRUE(eventually([&] {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && ::time(nullptr) - st.st_mtime < 60;
  })) << f.output();
  EXPECT_EQ(run_kvelect({"file", "--check", path}, dir_.path()).code, 0);
  f.signal(SIGTERM);
  EXPECT_EQ(f.wait(20s), 0) << f.output();
  EXPECT_EQ(run_kvelect({"file", "--check", path}, dir_.path()).code, 1);
}

TEST_F(CliUsage, UnknownCommandsAreNamedWithTheCommandsThereAre) {
  Result r = run_kvelect({"foo"}, dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "unknown command 'foo'")) << r.output();
  EXPECT_TRUE(contains(r.err, "run, file, info, watch, evict, campaign, bucket")) << r.output();
  r = run_kvelect({"--server", "nats://127.0.0.1:1", "foo"}, dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "unknown command 'foo'")) << r.output();
  r = run_kvelect({"bucket", "foo"}, dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "unknown command 'bucket foo'")) << r.output();
  EXPECT_TRUE(contains(r.err, "add, info, rm")) << r.output();
}

TEST_F(CliUsage, AnEmptyNameIsRefused) {
  const Result r = run_kvelect({"campaign", "--name", "", "e"}, dir_.path());
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "--name: must not be empty")) << r.output();
}

TEST_F(Cli, GlobalFlagsMayComeBeforeTheCommand) {
  Result r = run_kvelect({"-s", server_->url(), "--bucket", bucket_, "--timeout=5s", "bucket",
                          "add", "--ttl", "1s", "--storage", "memory"},
                         dir_.path());
  ASSERT_EQ(r.code, 0) << r.output();
  r = run_kvelect({"--server", server_->url(), "-b", bucket_, "info"}, dir_.path());
  EXPECT_EQ(r.code, 0) << r.output();
  EXPECT_TRUE(contains(r.out, "Bucket    " + bucket_)) << r.output();
}

// `--server` takes one URL list per occurrence: a positional argument after it belongs to the
// command (here the election filter of `info`), not to the server list.
TEST_F(Cli, APositionalAfterServerBelongsToTheCommand) {
  make_bucket();
  Result r =
      run_kvelect({"info", "-b", bucket_, "--server", server_->url(), "^nothing$"}, dir_.path());
  EXPECT_EQ(r.code, 0) << r.output();
  EXPECT_TRUE(contains(r.out, "no elections match '^nothing$'")) << r.output();
  r = run_kvelect({"info", "--server", server_->url(), "-b", bucket_, "^nothing$"}, dir_.path());
  EXPECT_EQ(r.code, 0) << r.output();
  EXPECT_TRUE(contains(r.out, "no elections match '^nothing$'")) << r.output();
}

TEST_F(Cli, BucketFromKvelectBucketEnvironmentVariable) {
  make_bucket();
  ::setenv("KVELECT_BUCKET", bucket_.c_str(), 1); // inherited by the kvelect started here
  const Result r = run_kvelect({"info", "--server", server_->url()}, dir_.path());
  ::unsetenv("KVELECT_BUCKET");
  EXPECT_EQ(r.code, 0) << r.output();
  EXPECT_TRUE(contains(r.out, "Bucket    " + bucket_)) << r.output();
}

// --markers: made and shown on a server that has them (2.11 and later), refused with the
// version it needs on an older one (docs/compatibility.md).
TEST_F(Cli, BucketAddWithMarkers) {
  Result r = kvelect({"bucket", "add"}, {"--ttl", "5s", "--storage", "memory", "--markers"});
  if (!testing::nats_server_version().at_least(2, 11)) {
    EXPECT_EQ(r.code, 1) << r.output();
    EXPECT_TRUE(contains(r.err, "expiry markers need nats-server 2.11 or newer")) << r.output();
    return;
  }
  ASSERT_EQ(r.code, 0) << r.output();
  EXPECT_TRUE(contains(r.out, "expiry markers kept 1s")) << r.output();
  r = kvelect({"bucket", "info"}, {"--json"});
  ASSERT_EQ(r.code, 0) << r.output();
  EXPECT_EQ(json_field(r.out, "marker_ttl_ms"), "1000") << r.output();
  r = kvelect({"bucket", "info"}, {});
  EXPECT_TRUE(contains(r.out, "Markers   1s")) << r.output();
  // The same bucket without --markers: the difference is named.
  r = kvelect({"bucket", "add"}, {"--ttl", "5s", "--storage", "memory"});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "expiry markers kept 1s, wanted no expiry markers")) << r.output();
}

TEST_F(Cli, BucketAddSaysWhatDiffersAndBucketInfoAndRmWork) {
  make_bucket("1s");
  Result r = kvelect({"bucket", "add"}, {"--ttl", "10s", "--storage", "memory"});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "TTL 1s, wanted 10s")) << r.output();
  r = kvelect({"bucket", "add"}, {"--ttl", "1s", "--storage", "file"});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "memory storage, wanted file")) << r.output();
  r = kvelect({"bucket", "add"}, {"--ttl", "1s", "--storage", "memory"});
  EXPECT_EQ(r.code, 0) << r.output();

  r = kvelect({"bucket", "info"}, {"--json"});
  ASSERT_EQ(r.code, 0) << r.output();
  EXPECT_EQ(json_field(r.out, "bucket"), bucket_) << r.output();
  EXPECT_EQ(json_field(r.out, "ttl_ms"), "1000") << r.output();
  EXPECT_EQ(json_field(r.out, "storage"), "memory") << r.output();
  EXPECT_TRUE(contains(r.out, R"("warnings": ["TTL 1s is below 5s)")) << r.output();
  r = kvelect({"bucket", "info"}, {});
  EXPECT_TRUE(contains(r.out, "TTL       1s")) << r.output();

  r = kvelect({"bucket", "rm"}, {});
  EXPECT_EQ(r.code, 2) << r.output(); // no terminal, no --force
  r = kvelect({"bucket", "rm"}, {"--force"});
  EXPECT_EQ(r.code, 0) << r.output();
  EXPECT_TRUE(contains(r.out, "bucket '" + bucket_ + "' removed")) << r.output();
  r = kvelect({"bucket", "info"}, {});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "does not exist")) << r.output();
}

TEST_F(Cli, InfoJsonListsTheElections) {
  make_bucket();
  Kvelect& a =
      start("a", {"campaign"}, kFast + std::vector<std::string>{"--json", "--name", "a", "sched"});
  ASSERT_TRUE(eventually([&] { return contains(a.out(), R"("event": "won")"); })) << a.output();
  const Result r = kvelect({"info"}, {"--json"});
  ASSERT_EQ(r.code, 0) << r.output();
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 1U) << r.output();
  EXPECT_EQ(json_field(r.out, "bucket"), bucket_) << r.output();
  EXPECT_TRUE(std::regex_search(
      r.out, std::regex(R"("elections": \[\{"election": "sched", "leader": "a", "revision": \d+, )"
                        R"("updated": "\d{4}-[^"]+Z", "age_ms": \d+\}\]\})")))
      << r.output();
}

TEST_F(Cli, DefaultNamesAreUniquePerProcessAndASharedNameIsWarnedAbout) {
  make_bucket();
  Kvelect& a = start("a", {"campaign"}, kFast + std::vector<std::string>{"--json", "sched"});
  Kvelect& b = start("b", {"campaign"}, kFast + std::vector<std::string>{"--json", "sched"});
  auto member_of = [](const Kvelect& k) {
    return json_field(lines_of(k.out()).empty() ? "" : lines_of(k.out()).front(), "member");
  };
  ASSERT_TRUE(eventually([&] { return member_of(a) && member_of(b); })) << a.output();
  const std::regex form(R"([^\s]+-\d+)");
  EXPECT_TRUE(std::regex_match(*member_of(a), form)) << a.output();
  EXPECT_TRUE(contains(*member_of(a), "-" + std::to_string(a.pid()))) << a.output();
  EXPECT_NE(member_of(a), member_of(b));

  // A second member under a name that leads: warned about at start.
  Kvelect& twin = start("twin", {"campaign"}, kFast + std::vector<std::string>{"--name", "t", "x"});
  ASSERT_TRUE(eventually([&] { return contains(twin.out(), "won "); })) << twin.output();
  Kvelect& other =
      start("other", {"campaign"}, kFast + std::vector<std::string>{"--name", "t", "x"});
  ASSERT_TRUE(eventually([&] { return contains(other.err(), "'t' already leads 'x'"); }))
      << other.output();
}

// Replays the JSON log lines of several members (one shared file, in write order): at most one
// leader at any line. Returns the number of wins.
int replay_wins(const std::string& text, const std::string& election) {
  std::set<std::string> leaders;
  int wins = 0;
  for (const auto& line : lines_of(text)) {
    if (json_field(line, "election") != election)
      continue;
    const auto event = json_field(line, "event");
    const auto name = json_field(line, "member");
    if (!event || !name)
      continue;
    if (*event == "won") {
      ++wins;
      EXPECT_TRUE(leaders.empty()) << *name << " won while another led:\n" << text;
      leaders.insert(*name);
    } else if (*event == "lost") {
      leaders.erase(*name);
    }
  }
  return wins;
}

// The run and file logs: "lost" is written before the key is released, as campaign's.
TEST_F(Cli, RunAndFileLogsNeverShowTwoLeadersInGracefulHandovers) {
  make_bucket();
  for (const std::string command : {"run", "file"}) {
    const std::string label = command + "-log";
    auto member = [&](const std::string& name) -> Kvelect& {
      std::vector<std::string> args =
          kFast + std::vector<std::string>{"--log-format", "json", "--name", name, command};
      if (command == "run")
        args = args + lasting_command();
      else
        args.push_back(dir_.file(name + ".leader"));
      return start(label, {command}, args, /*append=*/true);
    };
    const std::string log = dir_.file(label + ".err");
    Kvelect* leader = &member("m0");
    ASSERT_TRUE(eventually([&] { return contains(read_file(log), R"("event": "won")"); }))
        << read_file(log);
    constexpr int kHandovers = 3;
    for (int i = 1; i <= kHandovers; ++i) {
      const std::string next = "m" + std::to_string(i);
      Kvelect& standby = member(next);
      ASSERT_TRUE(eventually([&] {
        return contains(read_file(log), R"("member": ")" + next + R"(", "message": "leader of)");
      })) << read_file(log);
      leader->signal(SIGTERM);
      ASSERT_EQ(leader->wait(20s), 0) << read_file(log);
      ASSERT_TRUE(eventually([&] { return replay_wins(read_file(log), command) == i + 1; }))
          << read_file(log);
      leader = &standby;
    }
    leader->signal(SIGTERM);
    ASSERT_EQ(leader->wait(20s), 0) << read_file(log);
    EXPECT_EQ(replay_wins(read_file(log), command), kHandovers + 1);
    // Every line is one JSON object with an RFC 3339 time, a level and an event.
    for (const auto& line : lines_of(read_file(log))) {
      ASSERT_TRUE(line.size() > 2 && line.front() == '{' && line.back() == '}') << line;
      EXPECT_TRUE(std::regex_match(json_field(line, "time").value_or(""),
                                   std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")))
          << line;
      EXPECT_TRUE(json_field(line, "level") && json_field(line, "event")) << line;
    }
  }
}

TEST_F(Cli, TextLogLinesStartWithAnRfc3339Time) {
  make_bucket();
  const Result r =
      kvelect({"run"}, kFast + std::vector<std::string>{"--name", "n1", "sched", "--", "true"});
  EXPECT_EQ(r.code, 0) << r.output();
  const auto lines = lines_of(r.err);
  ASSERT_FALSE(lines.empty());
  for (const auto& line : lines)
    EXPECT_TRUE(std::regex_search(line, std::regex(R"(^\d{4}-\d\d-\d\dT[\d:.]+Z kvelect: )")))
        << line;
}

TEST_F(Cli, MetricsAreServedWhileCampaigning) {
  make_bucket();
  Kvelect& a = start("a", {"campaign"},
                     kFast + std::vector<std::string>{"--json", "--name", "a", "--metrics",
                                                      "127.0.0.1:0", "sched"});
  const std::regex served(R"(serving metrics at http://127\.0\.0\.1:(\d+)/metrics)");
  std::smatch match;
  ASSERT_TRUE(eventually([&] {
    const std::string err = a.err();
    return contains(err, "without Prometheus support") || std::regex_search(err, match, served);
  })) << a.output();
  if (contains(a.err(), "without Prometheus support"))
    GTEST_SKIP() << "kvelect was built without prometheus-cpp";
  const std::string err = a.err();
  ASSERT_TRUE(std::regex_search(err, match, served)) << a.output();
  const int port = std::stoi(match[1].str());
  ASSERT_TRUE(eventually([&] { return contains(a.out(), R"("event": "won")"); })) << a.output();
  std::string body;
  ASSERT_TRUE(eventually([&] {
    const auto response = kvelect::testing::http_get(port, "/metrics", 5s);
    body = response ? response->body : "";
    return response && response->status == 200 &&
           std::regex_search(body, std::regex(R"(kvelect_leader\{[^}]*member="a"[^}]*\} 1)"));
  })) << body;
  a.signal(SIGTERM);
  EXPECT_EQ(a.wait(20s), 0) << a.output();
}

// The same flag on the other commands that campaign: each serves its election's series.
TEST_F(Cli, RunAndFileServeMetricsToo) {
  make_bucket();
  const std::regex served(R"(serving metrics at http://127\.0\.0\.1:(\d+)/metrics)");
  for (const std::string command : {"run", "file"}) {
    std::vector<std::string> args =
        kFast + std::vector<std::string>{"--name", command, "--metrics", "127.0.0.1:0", command};
    if (command == "run")
      args = args + lasting_command();
    else
      args.push_back(dir_.file("file.leader"));
    Kvelect& member = start(command, {command}, args);
    std::smatch match;
    ASSERT_TRUE(eventually([&] {
      const std::string err = member.err();
      return contains(err, "without Prometheus support") || std::regex_search(err, match, served);
    })) << member.output();
    if (contains(member.err(), "without Prometheus support"))
      GTEST_SKIP() << "kvelect was built without prometheus-cpp";
    const std::string err = member.err();
    ASSERT_TRUE(std::regex_search(err, match, served)) << member.output();
    const int port = std::stoi(match[1].str());
    std::string body;
    EXPECT_TRUE(eventually([&] {
      const auto response = kvelect::testing::http_get(port, "/metrics", 5s);
      body = response ? response->body : "";
      return response && response->status == 200 &&
             std::regex_search(body, std::regex(R"(kvelect_leader\{[^}]*election=")" + command +
                                                R"("[^}]*\} 1)"));
    })) << command
        << ": " << body;
    member.signal(SIGTERM);
    EXPECT_TRUE(member.wait(20s)) << member.output();
  }
}

TEST_F(Cli, WatchServesMetricsOfWhatItSees) {
  make_bucket();
  Kvelect& watch = start("watch", {"watch"}, {"--metrics", "127.0.0.1:0", "--election", "sched"});
  const std::regex served(R"(serving metrics at http://127\.0\.0\.1:(\d+)/metrics)");
  std::smatch match;
  ASSERT_TRUE(eventually([&] {
    const std::string err = watch.err();
    return contains(err, "without Prometheus support") || std::regex_search(err, match, served);
  })) << watch.output();
  if (contains(watch.err(), "without Prometheus support"))
    GTEST_SKIP() << "kvelect was built without prometheus-cpp";
  const std::string err = watch.err();
  ASSERT_TRUE(std::regex_search(err, match, served)) << watch.output();
  const int port = std::stoi(match[1].str());
  ASSERT_TRUE(eventually([&] { return contains(watch.out(), "# watching"); })) << watch.output();
  Kvelect& a =
      start("a", {"campaign"}, kFast + std::vector<std::string>{"--json", "--name", "a", "sched"});
  ASSERT_TRUE(eventually([&] { return contains(watch.out(), " won "); })) << watch.output();
  const auto scrape = [&] {
    const auto response = kvelect::testing::http_get(port, "/metrics", 5s);
    return response && response->status == 200 ? response->body : std::string();
  };
  std::string body;
  ASSERT_TRUE(eventually([&] {
    body = scrape();
    return std::regex_search(body,
                             std::regex(R"(kvelect_watch_events_total\{[^}]*election="sched"[^}]*)"
                                        R"(event="won"[^}]*\} 1)")) &&
           std::regex_search(body,
                             std::regex(R"(kvelect_watch_leader\{[^}]*election="sched"[^}]*\} 1)"));
  })) << body;
  a.signal(SIGTERM); // releases: the election is vacant
  EXPECT_EQ(a.wait(20s), 0) << a.output();
  EXPECT_TRUE(eventually([&] {
    body = scrape();
    return std::regex_search(body, std::regex(R"(event="released"[^}]*\} 1)")) &&
           std::regex_search(body,
                             std::regex(R"(kvelect_watch_leader\{[^}]*election="sched"[^}]*\} 0)"));
  })) << body;
  watch.signal(SIGTERM);
  EXPECT_EQ(watch.wait(20s), 0) << watch.output();
}

TEST_F(Cli, WatchAndCampaignTakeLogFormatJson) {
  make_bucket();
  Kvelect& watch = start("watch", {"watch"}, {"--log-format", "json", "--election", "sched"});
  Kvelect& a =
      start("a", {"campaign"},
            kFast + std::vector<std::string>{"--log-format", "json", "--name", "a", "sched"});
  ASSERT_TRUE(eventually([&] { return contains(a.out(), R"("event": "won")"); })) << a.output();
  // "won" if the watch was up before the win, else "current" (JSON has no header to wait for).
  ASSERT_TRUE(eventually([&] {
    return std::regex_search(
        watch.out(),
        std::regex(R"re("election": "sched", "event": "(won|current)", "leader": "a")re"));
  })) << watch.output();
  for (const auto* process : {&watch, &a})
    for (const auto& line : lines_of(process->out()))
      EXPECT_TRUE(line.size() > 2 && line.front() == '{' && line.back() == '}') << line;
}

// After an eviction, run --terminate holds OnLost (and so the release of the key) until its
// command has exited: the successor's command starts only after ours has stopped.
TEST_F(Cli, RunTerminateStopsItsCommandBeforeTheSuccessorStartsAfterAnEviction) {
  make_bucket();
  const std::string shared = dir_.file("both"); // both commands append to one file
  const std::vector<std::string> flags = {"--terminate", "--grace", "5s"};
  // A command that takes half a second to shut down on SIGINT.
  std::string slow = kChildScript;
  slow.replace(slow.find("trap 'echo int"), std::string("trap 'echo int").size(),
               "trap 'sleep 0.5; echo int");
  script_ = dir_.file("slow.sh");
  write_file(script_, slow);
  Kvelect& n1 = start(
      "n1", {"run"},
      kFast + flags +
          std::vector<std::string>{"--name", "n1", "sched", "--", "/bin/sh", script_, shared});
  ASSERT_TRUE(eventually([&] { return contains(read_file(shared), "start n1 "); })) << n1.output();
  Kvelect& n2 = start(
      "n2", {"run"},
      kFast + flags +
          std::vector<std::string>{"--name", "n2", "sched", "--", "/bin/sh", script_, shared});
  ASSERT_TRUE(eventually([&] { return contains(n2.err(), "leader of 'sched': 'n1'"); }))
      << n2.output();
  ASSERT_TRUE(evict_until("sched", [&] { return contains(read_file(shared), "start n2 "); }))
      << n1.output() << n2.output();
  const auto lines = lines_of(read_file(shared));
  const auto stopped = std::find(lines.begin(), lines.end(), "int");
  const auto started = std::find_if(lines.begin(), lines.end(),
                                    [](const std::string& l) { return contains(l, "start n2 "); });
  ASSERT_NE(stopped, lines.end()) << read_file(shared);
  EXPECT_LT(stopped - lines.begin(), started - lines.begin()) << read_file(shared);
  EXPECT_TRUE(n1.running()) << n1.output(); // still a member, campaigning again
}

TEST(CliPlainErrors, ATimedOutRenewalSaysSoInWords) {
  KVELECT_REQUIRE_NATS_SERVER();
  NatsServer server;
  TempDir dir;
  const std::vector<std::string> conn = {"--server", server.url(), "--bucket", "PLAIN"};
  Result r = run_kvelect(
      std::vector<std::string>{"bucket", "add", "--ttl", "1s", "--storage", "memory"} + conn,
      dir.path());
  ASSERT_EQ(r.code, 0) << r.output();
  Kvelect a(std::vector<std::string>{"campaign", "--json", "--name", "a", "--timeout", "300ms"} +
                conn + kFast + std::vector<std::string>{"sched"},
            dir.path(), "a");
  ASSERT_TRUE(eventually([&] { return contains(a.out(), R"("event": "won")"); })) << a.output();
  server.pause(); // requests time out
  ASSERT_TRUE(eventually([&] { return contains(a.out(), R"("event": "error")"); }, 30s))
      << a.output();
  server.resume();
  EXPECT_FALSE(contains(a.out(), "Timeout (Timeout)")) << a.output();
  EXPECT_TRUE(contains(a.out(), "no reply within the request timeout")) << a.output();
}

} // namespace
} // namespace kvelect::clitest
