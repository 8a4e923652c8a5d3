// SPDX-License-Identifier: Apache-2.0
// kvelect-bench-failover: how long an election is without a leader when the leader's process
// dies (SIGKILL) or stops gracefully (SIGTERM). Members are separate processes
// (kvelect-test-member, built again as kvelect-bench-member when tests are disabled), each with
// its own connection; each prints "<CLOCK_MONOTONIC ns> <name> won <token>" when it wins, and the
// benchmark takes its own CLOCK_MONOTONIC just before kill(2): one clock for all processes.
//
// A crashed leader leaves its value in the key; the others take over once it has expired, one
// TTL after its last renewal. The kill lands at a random point of the renewal cycle (a random
// pause of 0.3 s .. 0.3 s + TTL after the previous takeover), so the figures spread between
// TTL − renew period and TTL (plus a round trip).
//
// On a server with expiry markers (nats-server 2.11 and later) the SIGKILL runs are repeated on a
// bucket with markers (BucketConfig::expiry_markers; the members pass WithJetStream), where the
// successor takes over when the server's marker announces the expiry (docs/protocol.md, "Expiry
// markers"). The benchmark watches the key itself and takes the marker's arrival as the moment
// of the server's expiry: "marker seen → next OnWon" is how long a member takes after it.
//
// Settings (flag or $KVELECT_BENCH_<NAME>):
//   --ttl-ms 2000,5000   bucket TTLs for the SIGKILL runs (below 5 s the members get
//                        --skip-validation)
//   --runs 10,5          SIGKILL runs per TTL (one value applies to all TTLs)
//   --sigterm-runs 10    graceful-stop runs (TTL 5 s); 0 skips them
//   --markers 1          also the SIGKILL runs on a bucket with expiry markers (0: not)
//   --members 3          member processes
//   --member PATH        the member binary (default: the one built with the benchmarks)
#include "bench_util.hpp"
#include "retire.hpp"

#include "nats_server.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#ifndef KVELECT_BENCH_MEMBER
#define KVELECT_BENCH_MEMBER "kvelect-test-member"
#endif

namespace {

using namespace std::chrono_literals;

struct Event {
  std::int64_t ns = 0;
  std::string member;
  std::string kind; // ready, won, lost, leader, error, stopped
  std::string arg;
};

class EventLog {
public:
  void add(Event e) {
    {
      std::lock_guard lock(mu_);
      events_.push_back(std::move(e));
    }
    cv_.notify_all();
  }
  // The first event matching `match` at or after `since_ns`.
  template <typename Match>
  std::optional<Event> wait(std::int64_t since_ns, std::chrono::milliseconds limit, Match match) {
    std::unique_lock lock(mu_);
    std::optional<Event> found;
    cv_.wait_for(lock, limit, [&] {
      for (const auto& e : events_)
        if (e.ns >= since_ns && match(e)) {
          found = e;
          return true;
        }
      return false;
    });
    return found;
  }
  std::vector<Event> since(std::int64_t since_ns) {
    std::lock_guard lock(mu_);
    std::vector<Event> out;
    for (const auto& e : events_)
      if (e.ns >= since_ns)
        out.push_back(e);
    return out;
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
};

// One member process with a thread that turns its stdout lines into events.
class MemberProcess {
public:
  MemberProcess(const std::string& binary, std::vector<std::string> args, EventLog& log)
      : log_(log) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
      throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    std::vector<std::string> all{binary};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    const long max_fd = std::min<long>(sysconf(_SC_OPEN_MAX), 65536);
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0)
      throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid_ == 0) {
      // Only async-signal-safe calls from here to exec.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent)
        _exit(127);
      dup2(fds[1], STDOUT_FILENO);
      for (long fd = 3; fd < max_fd; ++fd)
        close(static_cast<int>(fd));
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    fd_ = fds[0];
    reader_ = std::thread([this] { read_lines(); });
  }
  ~MemberProcess() {
    signal(SIGKILL);
    reap();
  }
  MemberProcess(const MemberProcess&) = delete;
  MemberProcess& operator=(const MemberProcess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) {
    if (pid_ > 0)
      kill(pid_, sig);
  }
  // Waits for the process to exit (bounded by the caller's signal) and for its last lines.
  void reap() {
    if (pid_ > 0) {
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
    if (reader_.joinable())
      reader_.join();
    if (fd_ >= 0)
      close(fd_);
    fd_ = -1;
  }

private:
  void read_lines() {
    std::string buffer;
    char chunk[4096];
    for (;;) {
      const ssize_t n = read(fd_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return;
      buffer.append(chunk, static_cast<std::size_t>(n));
      std::size_t nl;
      while ((nl = buffer.find('\n')) != std::string::npos) {
        std::istringstream line(buffer.substr(0, nl));
        buffer.erase(0, nl + 1);
        Event e;
        line >> e.ns >> e.member >> e.kind;
        std::getline(line >> std::ws, e.arg);
        if (!e.kind.empty())
          log_.add(std::move(e));
      }
    }
  }

  EventLog& log_;
  pid_t pid_ = -1;
  int fd_ = -1;
  std::thread reader_;
};

struct Scenario {
  std::string server_url;
  std::string bucket;
  std::chrono::milliseconds ttl;
  int members;
  std::string binary;
  // A bucket with expiry markers: its key is watched for them, through the benchmark's own
  // connection.
  kvStore* marker_bucket = nullptr;
  jsCtx* jetstream = nullptr;
};

// Watches the election's key of a bucket with expiry markers and logs "<now> server marker <rev>"
// for each marker as it arrives. cnats 3.4 reports a marker as an empty value (its kvEntry has no
// headers): the message behind it is read by its revision and its Nats-Marker-Reason checked, as
// the members do (lib/markers.cpp); the timestamp is taken before that read.
class MarkerWatch {
public:
  MarkerWatch(kvStore* kv, jsCtx* js, const std::string& key, EventLog& log) : log_(log) {
    kvWatchOptions options;
    kvWatchOptions_Init(&options);
    kvbench::check_nats(kvStore_Watch(&watcher_, kv, key.c_str(), &options), "kvStore_Watch");
    stream_ = std::string("KV_") + kvStore_Bucket(kv);
    thread_ = std::thread([this, js] { loop(js); });
  }
  ~MarkerWatch() {
    stop_ = true;
    thread_.join();
    kvelect::detail::retire(watcher_, nullptr); // lib/retire.hpp
    kvWatcher_Destroy(watcher_);
  }
  MarkerWatch(const MarkerWatch&) = delete;
  MarkerWatch& operator=(const MarkerWatch&) = delete;

private:
  void loop(jsCtx* js) {
    while (!stop_) {
      kvEntry* entry = nullptr;
      if (kvWatcher_Next(&entry, watcher_, 100) != NATS_OK || entry == nullptr)
        continue;
      const std::int64_t at = kvbench::monotonic_ns();
      const bool empty_put = kvEntry_Operation(entry) == kvOp_Put && kvEntry_ValueLen(entry) == 0;
      const std::uint64_t revision = kvEntry_Revision(entry);
      kvEntry_Destroy(entry);
      if (!empty_put)
        continue;
      natsMsg* msg = nullptr;
      if (js_GetMsg(&msg, js, stream_.c_str(), revision, nullptr, nullptr) != NATS_OK)
        continue;
      const char* reason = nullptr;
      const bool marker = natsMsgHeader_Get(msg, "Nats-Marker-Reason", &reason) == NATS_OK &&
                          reason != nullptr && std::strcmp(reason, "MaxAge") == 0;
      natsMsg_Destroy(msg);
      if (marker)
        log_.add({at, "server", "marker", std::to_string(revision)});
    }
  }

  EventLog& log_;
  kvWatcher* watcher_ = nullptr;
  std::string stream_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The protocol's renewal period (docs/protocol.md, "Renewal"), for the expected range.
double renew_period_ms(double ttl) {
  const double guard = std::clamp(ttl / 10, 20.0, 500.0);
  return std::max(ttl / 4, std::min({ttl * 0.75, ttl * 2 / 3, ttl - guard - 250}));
}

struct RunResult {
  std::vector<double> samples;      // ms
  std::vector<double> after_marker; // marker seen → OnWon, ms (a bucket with markers)
  std::vector<std::string> notes;
};

// Runs `runs` leader removals with `sig` and returns kill → successor's OnWon in ms.
RunResult run(const Scenario& sc, int runs, int sig) {
  EventLog log;
  std::map<std::string, std::unique_ptr<MemberProcess>> procs;
  auto spawn = [&](const std::string& name) {
    std::vector<std::string> args{"--server", sc.server_url, "--bucket", sc.bucket,
                                  "--key",    "failover",    "--name",   name};
    if (sc.ttl < 5s)
      args.emplace_back("--skip-validation");
    procs[name] = std::make_unique<MemberProcess>(sc.binary, args, log);
  };
  auto is_won = [](const Event& e) { return e.kind == "won"; };
  std::unique_ptr<MarkerWatch> markers;
  if (sc.marker_bucket != nullptr)
    markers = std::make_unique<MarkerWatch>(sc.marker_bucket, sc.jetstream, "failover", log);
  const std::int64_t begin = kvbench::monotonic_ns();
  for (int i = 0; i < sc.members; ++i)
    spawn("m" + std::to_string(i));
  auto first = log.wait(begin, 30s, is_won);
  if (!first)
    throw std::runtime_error("no member won within 30 s");
  std::string leader = first->member;

  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> pause_ms(300, 300 + static_cast<int>(sc.ttl.count()));
  RunResult result;
  for (int r = 0; r < runs; ++r) {
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    const std::int64_t t_kill = kvbench::monotonic_ns();
    procs[leader]->signal(sig);
    const auto won =
        log.wait(t_kill, 3 * sc.ttl + 10s, [&](const Event& e) { return e.kind == "won"; });
    if (!won)
      throw std::runtime_error("no successor within 3 TTL + 10 s");
    if (won->member == leader)
      result.notes.push_back("run " + std::to_string(r) + ": the stopped member won again?");
    const double t = static_cast<double>(won->ns - t_kill) / 1e6;
    result.samples.push_back(t);
    std::fprintf(stderr, "  %s %s → %s won after %.1f ms", sig == SIGKILL ? "SIGKILL" : "SIGTERM",
                 leader.c_str(), won->member.c_str(), t);
    if (markers) {
      // The marker of the dead leader's last value: the last one seen before the win.
      std::optional<Event> marker;
      for (const auto& e : log.since(t_kill))
        if (e.kind == "marker" && e.ns <= won->ns)
          marker = e;
      if (marker) {
        const double m = static_cast<double>(won->ns - marker->ns) / 1e6;
        result.after_marker.push_back(m);
        std::fprintf(stderr, ", %.1f ms after the marker (revision %s)", m, marker->arg.c_str());
      } else {
        result.notes.push_back("run " + std::to_string(r) + ": won without a marker seen");
      }
    }
    std::fprintf(stderr, "\n");
    procs[leader]->reap();
    // The old leader comes back under its own name, as a restarted service would, and must
    // see the new leader before the next run.
    const std::string back = leader;
    leader = won->member;
    const std::int64_t t_spawn = kvbench::monotonic_ns();
    spawn(back);
    if (!log.wait(t_spawn, 15s, [&](const Event& e) {
          return e.member == back && e.kind == "leader" && e.arg == leader;
        }))
      throw std::runtime_error("restarted member " + back + " did not see the leader");
  }
  for (const auto& e : log.since(begin))
    if (e.kind == "error")
      result.notes.push_back(e.member + ": " + e.arg);
  for (auto& [name, p] : procs)
    p->signal(SIGTERM);
  for (auto& [name, p] : procs)
    p->reap();
  return result;
}

// One table row of SIGKILL runs.
std::vector<std::string> kill_row(const std::string& event, std::chrono::milliseconds ttl,
                                  const kvbench::Summary& s, const std::string& baseline) {
  const double t = static_cast<double>(ttl.count());
  const double lo = t - renew_period_ms(t);
  return {event,
          kvbench::fixed(t / 1000, 1) + " s",
          std::to_string(s.n),
          kvbench::ms(s.min, 0),
          kvbench::ms(s.p50, 0),
          kvbench::ms(s.p99, 0),
          kvbench::ms(s.max, 0),
          kvbench::fixed(s.p50 / t),
          kvbench::fixed(s.p99 / t),
          kvbench::ms(lo, 0) + " .. " + kvbench::ms(t, 0) + " + RTT",
          "≤ TTL + 250 ms",
          kvbench::verdict(s.max, t + 250),
          baseline};
}

} // namespace

int main(int argc, char** argv) {
  kvbench::Settings settings(argc, argv);
  const auto ttls = settings.list("ttl-ms", {2000, 5000});
  auto runs = settings.list("runs", {10, 5});
  const long sigterm_runs = settings.integer("sigterm-runs", 10);
  const bool with_markers = settings.integer("markers", 1) != 0;
  const int members = static_cast<int>(settings.integer("members", 3));
  const char* env_member = std::getenv("KVELECT_BENCH_MEMBER"); // NOLINT(concurrency-mt-unsafe)
  const std::string binary =
      settings.str("member", env_member != nullptr ? env_member : KVELECT_BENCH_MEMBER);
  if (!kvelect::testing::nats_server_available()) {
    std::fprintf(stderr, "nats-server not found (PATH, /usr/sbin)\n");
    return 77;
  }
  if (access(binary.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "member binary %s is not executable (--member PATH)\n", binary.c_str());
    return 2;
  }
  while (runs.size() < ttls.size())
    runs.push_back(runs.empty() ? 5 : runs.back());

  kvelect::testing::NatsServer server;
  auto admin = kvbench::connect(server.url());
  std::printf("kvelect-bench-failover: %d member processes, nats-server %s, file storage\n",
              members, server.url().c_str());
  std::printf("command: %s\nload average at the start: %s\n", settings.command_line().c_str(),
              kvbench::load_average().c_str());
  std::fflush(stdout);

  const auto server_version = kvelect::testing::nats_server_version();
  std::printf("nats-server version: %s\n", server_version.str().c_str());
  kvbench::Table table({"event", "TTL", "n", "min", "p50", "p99", "max", "p50/TTL", "p99/TTL",
                        "expected", "target", "verdict", "BASELINE (Go) median"});
  std::vector<std::string> notes;
  int failures = 0;
  std::map<long long, double> plain_p50; // TTL (ms) → p50 of the bucket without markers
  for (std::size_t i = 0; i < ttls.size(); ++i) {
    const auto ttl = std::chrono::milliseconds(ttls[i]);
    const std::string bucket = "FAILOVER_" + std::to_string(ttl.count());
    (void)kvbench::make_bucket(admin, bucket, ttl);
    std::fprintf(stderr, "SIGKILL, TTL %lld ms, %ld runs\n", static_cast<long long>(ttl.count()),
                 runs[i]);
    try {
      auto r =
          run({server.url(), bucket, ttl, members, binary}, static_cast<int>(runs[i]), SIGKILL);
      const auto s = kvbench::summarize(r.samples);
      plain_p50[ttl.count()] = s.p50;
      table.row(
          kill_row("leader SIGKILL → next OnWon", ttl, s, ttl == 5s ? "8.55 s (1.71 × TTL)" : "-"));
      for (auto& n : r.notes)
        notes.push_back("TTL " + std::to_string(ttl.count()) + " ms: " + n);
    } catch (const std::exception& e) {
      ++failures;
      notes.push_back("SIGKILL TTL " + std::to_string(ttl.count()) + " ms failed: " + e.what());
    }
  }
  // The same on a bucket with expiry markers, where the server has them.
  for (std::size_t i = 0; with_markers && i < ttls.size(); ++i) {
    const auto ttl = std::chrono::milliseconds(ttls[i]);
    if (!server_version.at_least(2, 11)) {
      notes.push_back("no marker-bucket runs: nats-server " + server_version.str() +
                      " has no expiry markers (2.11 and later)");
      break;
    }
    kvelect::BucketConfig config;
    config.name = "FAILOVER_MARKERS_" + std::to_string(ttl.count());
    config.ttl = ttl;
    config.storage = kvelect::Storage::file;
    config.expiry_markers = true;
    std::fprintf(stderr, "SIGKILL, bucket with expiry markers, TTL %lld ms, %ld runs\n",
                 static_cast<long long>(ttl.count()), runs[i]);
    try {
      const kvelect::Bucket bucket = kvelect::Bucket::create(admin, config);
      Scenario sc{server.url(), config.name, ttl, members, binary};
      sc.marker_bucket = bucket.get();
      sc.jetstream = admin.jetstream();
      auto r = run(sc, static_cast<int>(runs[i]), SIGKILL);
      const auto s = kvbench::summarize(r.samples);
      table.row(kill_row("leader SIGKILL → next OnWon, bucket with markers", ttl, s, "-"));
      const auto m = kvbench::summarize(r.after_marker);
      table.row({"  marker seen → next OnWon (same runs)",
                 kvbench::fixed(ttl.count() / 1000.0, 1) + " s", std::to_string(m.n),
                 kvbench::ms(m.min, 1), kvbench::ms(m.p50, 1), kvbench::ms(m.p99, 1),
                 kvbench::ms(m.max, 1), "-", "-", "a round trip or two", "≤ 50 ms",
                 kvbench::verdict(m.max, 50), "-"});
      const auto plain = plain_p50.find(ttl.count());
      if (plain != plain_p50.end() && plain->second > 0)
        notes.push_back(
            "TTL " + std::to_string(ttl.count()) +
            " ms: p50 with markers / p50 without = " + kvbench::fixed(s.p50 / plain->second) +
            " (" + kvbench::ms(s.p50, 0) + " / " + kvbench::ms(plain->second, 0) + ")");
      for (auto& n : r.notes)
        notes.push_back("markers, TTL " + std::to_string(ttl.count()) + " ms: " + n);
    } catch (const std::exception& e) {
      ++failures;
      notes.push_back("SIGKILL on markers, TTL " + std::to_string(ttl.count()) +
                      " ms failed: " + e.what());
    }
  }
  if (sigterm_runs > 0) {
    const auto ttl = 5000ms;
    const std::string bucket = "FAILOVER_TERM";
    (void)kvbench::make_bucket(admin, bucket, ttl);
    std::fprintf(stderr, "SIGTERM, TTL 5000 ms, %ld runs\n", sigterm_runs);
    try {
      auto r = run({server.url(), bucket, ttl, members, binary}, static_cast<int>(sigterm_runs),
                   SIGTERM);
      const auto s = kvbench::summarize(r.samples);
      const double t = 5000;
      table.row({"leader SIGTERM (graceful stop) → next OnWon", "5.0 s", std::to_string(s.n),
                 kvbench::ms(s.min, 1), kvbench::ms(s.p50, 1), kvbench::ms(s.p99, 1),
                 kvbench::ms(s.max, 1), kvbench::fixed(s.p50 / t, 4), kvbench::fixed(s.p99 / t, 4),
                 "release: a few round trips", "-", "-", "7.83 s (1.57 × TTL)"});
      for (auto& n : r.notes)
        notes.push_back("SIGTERM: " + n);
    } catch (const std::exception& e) {
      ++failures;
      notes.push_back(std::string("SIGTERM failed: ") + e.what());
    }
  }
  table.print("kvelect failover (member processes; kill → successor's OnWon, CLOCK_MONOTONIC; "
              "load average at the end " +
              kvbench::load_average() + ")");
  for (const auto& n : notes)
    std::printf("note: %s\n", n.c_str());
  return failures == 0 ? 0 : 1;
}
