// SPDX-License-Identifier: Apache-2.0
// kvelect-bench-latency: the round-trip-bound figures, with Google Benchmark (manual time: every
// iteration is one measured event, timed by the benchmark itself on CLOCK_MONOTONIC).
//
//   raw/*            cnats round trips without kvelect (kvStore_Update, _Create, _Get): the
//                    yardstick.
//   handover/resign  leader resign() → successor's OnWon; 3 in-process members, TTL 5 s.
//   handover/stop    leader stop()   → successor's OnWon (then the member is started again).
//   renewal          one campaign step: a leader's renewal, campaign thread send → result
//                    processed (Stats::last_renewal_latency), vs kvStore_Update.
//   coldstart/N      N members start() → first OnWon, default start-up splay (250 ms).
//
// Every benchmark starts its own nats-server and measures raw kvStore_Update round trips
// interleaved with its own samples (same server, same bucket handle, same moment), so that a
// ratio is taken in one run. After the Google Benchmark table, a summary table prints p50/p99
// beside the targets of issue 3. Settings (flag or $KVELECT_BENCH_<NAME>):
//   --handovers N (100)  --renewals N (200)  --renewal-ttl-ms MS (250)  --coldstart-runs N (20)
//   --raw N (2000)  --memory (memory storage instead of file)
//   --trace-slow-ms MS (0: off): print the members' debug lines around handovers slower than MS
#include "bench_util.hpp"
#include "retire.hpp"

#include "nats_server.hpp"

#include <benchmark/benchmark.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using kvbench::Clock;
using kvbench::ms_between;
using kvelect::testing::NatsServer;

struct Options {
  long handovers = 100;
  long renewals = 200;
  long renewal_ttl_ms = 250;
  long coldstart_runs = 20;
  long raw = 2000;
  bool memory = false;
  double trace_slow_ms = 0; // > 0: print the members' debug lines around slower handovers
};
Options opts;

// One row of the closing summary table.
struct Row {
  std::string figure;
  kvbench::Summary s;
  std::string target;
  std::string note;
};
std::mutex rows_mu;
std::vector<Row> rows;

void add_row(Row row) {
  std::lock_guard lock(rows_mu);
  rows.push_back(std::move(row));
}

std::string storage_note() { return opts.memory ? "memory storage" : "file storage"; }

// Publishes p50/p99 of the samples as Google Benchmark counters (shown in its table).
void set_counters(benchmark::State& state, const kvbench::Summary& s, const char* prefix = "") {
  state.counters[std::string(prefix) + "p50_ms"] = s.p50;
  state.counters[std::string(prefix) + "p99_ms"] = s.p99;
  state.counters[std::string(prefix) + "max_ms"] = s.max;
}

// Records each member's OnWon on one clock.
class WinLog {
public:
  struct Win {
    int member;
    Clock::time_point at;
  };
  void won(int member) {
    {
      std::lock_guard lock(mu_);
      wins_.push_back({member, Clock::now()});
    }
    cv_.notify_all();
  }
  // The first win at or after `since` by a member other than `except`.
  std::optional<Win> wait_win(Clock::time_point since, int except,
                              std::chrono::milliseconds limit) {
    std::unique_lock lock(mu_);
    std::optional<Win> found;
    cv_.wait_for(lock, limit, [&] {
      for (const auto& w : wins_)
        if (w.at >= since && w.member != except) {
          found = w;
          return true;
        }
      return false;
    });
    return found;
  }
  std::size_t count_since(Clock::time_point since) {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const auto& w : wins_)
      n += w.at >= since ? 1 : 0;
    return n;
  }
  void clear() {
    std::lock_guard lock(mu_);
    wins_.clear();
  }

private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Win> wins_;
};

// A member as a separate process would have it: its own connection and bucket handle.
struct Member {
  kvelect::Connection connection;
  kvelect::Bucket bucket;
  std::unique_ptr<kvelect::Election> election;
};

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (condition())
      return true;
    std::this_thread::sleep_for(2ms);
  }
  return condition();
}

double seconds(double ms) { return ms / 1000.0; }

// ---------------------------------------------------------------------------------------------
// raw/*: cnats alone.

enum class RawOp { update, create, create_failed, get };

void BM_Raw(benchmark::State& state, RawOp op) {
  try {
    NatsServer server;
    auto connection = kvbench::connect(server.url());
    auto bucket = kvbench::make_bucket(connection, "RAW", 5s, opts.memory);
    kvbench::RawUpdater updater(bucket, "upd");
    std::uint64_t rev = 0;
    kvbench::check_nats(kvStore_PutString(&rev, bucket, "taken", "x"), "kvStore_Put");
    int fresh = 0;
    auto one = [&]() -> double {
      switch (op) {
      case RawOp::update: return updater.once();
      case RawOp::create: {
        const std::string key = "c" + std::to_string(fresh++);
        const auto start = Clock::now();
        kvbench::check_nats(kvStore_CreateString(&rev, bucket, key.c_str(), "x"), "kvStore_Create");
        return ms_between(start, Clock::now());
      }
      case RawOp::create_failed: {
        const auto start = Clock::now();
        const natsStatus s = kvStore_CreateString(&rev, bucket, "taken", "x");
        const auto end = Clock::now();
        if (s == NATS_OK)
          throw std::runtime_error("kvStore_Create on an existing key succeeded");
        return ms_between(start, end);
      }
      case RawOp::get: {
        kvEntry* entry = nullptr;
        const auto start = Clock::now();
        const natsStatus s = kvStore_Get(&entry, bucket, "taken");
        const auto end = Clock::now();
        kvEntry_Destroy(entry);
        kvbench::check_nats(s, "kvStore_Get");
        return ms_between(start, end);
      }
      }
      return 0;
    };
    for (int i = 0; i < 200; ++i) // warm-up: connection buffers, server caches
      one();
    std::vector<double> samples;
    for (auto _ : state) {
      const double t = one();
      samples.push_back(t);
      state.SetIterationTime(seconds(t));
    }
    const auto s = kvbench::summarize(samples);
    set_counters(state, s);
    static const char* names[] = {"kvStore_Update (revision-checked)", "kvStore_Create (fresh key)",
                                  "kvStore_Create (key exists: fails)", "kvStore_Get"};
    static const char* go[] = {"BASELINE: 0.235 ms", "", "BASELINE: 0.456 ms", ""};
    add_row({std::string("raw ") + names[static_cast<int>(op)], s, "-",
             std::string(go[static_cast<int>(op)]) + (go[static_cast<int>(op)][0] ? "; " : "") +
                 storage_note()});
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// raw/handoff: two thread handoffs (condition variable there and back), no network: what the
// campaign thread → I/O worker → campaign thread path adds to every request.
void BM_Handoff(benchmark::State& state) {
  kvbench::PingPong pingpong;
  for (int i = 0; i < 200; ++i)
    pingpong.once();
  std::vector<double> samples;
  for (auto _ : state) {
    const double t = pingpong.once();
    samples.push_back(t);
    state.SetIterationTime(seconds(t));
    std::this_thread::sleep_for(1ms); // let the worker go idle, as the I/O worker does
  }
  const auto s = kvbench::summarize(samples);
  set_counters(state, s);
  add_row({"thread handoff there and back (condition variable, no network)", s, "-",
           "the cost kvelect's I/O worker adds per request"});
}

// ---------------------------------------------------------------------------------------------
// handover/*: 3 members, the leader resigns or stops, a successor fires OnWon.

void BM_Handover(benchmark::State& state, bool use_stop) {
  try {
    NatsServer server;
    constexpr int kMembers = 3;
    WinLog log;
    std::vector<std::unique_ptr<Member>> members;
    {
      auto admin = kvbench::connect(server.url());
      (void)kvbench::make_bucket(admin, "HANDOVER", 5s, opts.memory);
    }
    // --trace-slow-ms: the members' debug lines, to explain a slow handover.
    std::mutex trace_mu;
    std::vector<std::pair<Clock::time_point, std::string>> trace;
    auto tracer = [&](int i) {
      return kvelect::WithDebug([&trace_mu, &trace, i](std::string_view line) {
        if (opts.trace_slow_ms <= 0)
          return;
        std::lock_guard lock(trace_mu);
        trace.emplace_back(Clock::now(), "m" + std::to_string(i) + " " + std::string(line));
      });
    };
    for (int i = 0; i < kMembers; ++i) {
      auto connection = kvbench::connect(server.url(), "m" + std::to_string(i));
      auto bucket = kvelect::Bucket::open(connection, "HANDOVER");
      auto m = std::make_unique<Member>(Member{std::move(connection), std::move(bucket), nullptr});
      m->election =
          std::make_unique<kvelect::Election>("m" + std::to_string(i), "handover", m->bucket.get(),
                                              kvelect::OnWon([&log, i] { log.won(i); }), tracer(i));
      members.push_back(std::move(m));
    }
    for (auto& m : members)
      m->election->start();
    kvbench::RawUpdater raw(members[0]->bucket.get(), "raw-probe");

    auto leader_index = [&]() -> int {
      for (int i = 0; i < kMembers; ++i)
        if (members[i]->election->is_leader())
          return i;
      return -1;
    };
    // Stable: one leader, and every member has seen it.
    auto settled = [&] {
      const int l = leader_index();
      if (l < 0)
        return false;
      const std::string name = "m" + std::to_string(l);
      for (auto& m : members)
        if (m->election->leader() != name)
          return false;
      return true;
    };
    // Every member past its start-up splay (it has campaigned once), and a stable leader.
    if (!wait_until(
            [&] {
              for (auto& m : members)
                if (m->election->stats().candidate_campaigns == 0)
                  return false;
              return settled();
            },
            15s))
      throw std::runtime_error("no stable leader within 15 s");

    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> pause_ms(20, 80);
    std::vector<double> samples, raw_samples, call_samples;
    for (auto _ : state) {
      // A pause, so that handovers do not line up with each other; raw probes inside it.
      std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
      for (int k = 0; k < 3; ++k)
        raw_samples.push_back(raw.once());
      std::this_thread::sleep_for(5ms);
      const int from = leader_index();
      if (from < 0)
        throw std::runtime_error("no leader before a handover");
      const auto t0 = Clock::now();
      if (use_stop)
        members[from]->election->stop();
      else
        members[from]->election->resign();
      call_samples.push_back(ms_between(t0, Clock::now()));
      const auto win = log.wait_win(t0, from, 15s);
      if (!win)
        throw std::runtime_error("no successor within 15 s");
      const double t = ms_between(t0, win->at);
      samples.push_back(t);
      state.SetIterationTime(seconds(t));
      if (opts.trace_slow_ms > 0) {
        std::lock_guard lock(trace_mu);
        if (t > opts.trace_slow_ms) {
          std::fprintf(stderr, "slow handover: %.3f ms (m%d stopped/resigned at +0)\n", t, from);
          for (const auto& [at, line] : trace)
            if (at >= t0 - 300ms)
              std::fprintf(stderr, "  %+9.3f ms %s\n", ms_between(t0, at), line.c_str());
        }
        trace.clear();
      }
      if (use_stop) {
        // Started again, it waits out its start-up splay (up to 250 ms) before it campaigns, and
        // would take no vacancy meanwhile: wait for its first campaign, so that every handover
        // starts with all candidates campaigning.
        auto& e = *members[from]->election;
        const auto campaigns = e.stats().candidate_campaigns;
        e.start();
        if (!wait_until([&] { return e.stats().candidate_campaigns > campaigns; }, 15s))
          throw std::runtime_error("restarted member did not campaign within 15 s");
      }
      if (!wait_until(settled, 15s))
        throw std::runtime_error("no stable leader within 15 s after a handover");
      log.clear();
    }
    for (auto& m : members)
      m->election->stop();
    const auto s = kvbench::summarize(samples);
    const auto r = kvbench::summarize(raw_samples);
    const auto c = kvbench::summarize(call_samples);
    set_counters(state, s);
    state.counters["raw_p50_ms"] = r.p50;
    state.counters["raw_p99_ms"] = r.p99;
    state.counters["p50_ratio"] = s.p50 / r.p50;
    const std::string what = use_stop ? "stop()" : "resign()";
    add_row({"handover: leader " + what + " → successor OnWon (3 members, TTL 5 s)", s,
             "p99 ≤ 20 ms: " + kvbench::verdict(s.p99, 20.0),
             "p50 = " + kvbench::fixed(s.p50 / r.p50, 1) + " × raw Update p50, p99 = " +
                 kvbench::fixed(s.p99 / r.p99, 1) + " × raw Update p99"});
    add_row({"  the " + what + " call itself, until it returned", c, "-",
             use_stop ? "OnLost, release acknowledged, threads joined"
                      : "OnLost fired, release handed to the I/O worker"});
    add_row({"  raw kvStore_Update, same run (" + what + " benchmark)", r, "-",
             std::to_string(r.n) + " probes between handovers"});
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// renewal: one campaign step of the library vs the raw request it makes.
//
// A leader renews with a revision-checked kvStore_Update, sent by its I/O worker; the campaign
// thread takes the send time before handing the request over and the result time when it
// processes the result: Stats::last_renewal_latency. OnCampaign(Leader) fires right before each
// renewal, and a renewal is only scheduled once the previous result was processed, so each
// OnCampaign reads the previous renewal's latency exactly once. A short TTL (SkipValidation)
// makes renewals frequent (every TTL/4); the request path does not depend on the TTL.

void BM_Renewal(benchmark::State& state, bool on_executor) {
  try {
    NatsServer server;
    auto connection = kvbench::connect(server.url());
    auto bucket = kvbench::make_bucket(connection, "RENEWAL",
                                       std::chrono::milliseconds(opts.renewal_ttl_ms), opts.memory);
    // renewal/executor: the election on an Executor, whose writes are asynchronous publishes
    // (docs/executor.md); renewal: threads of its own, blocking requests.
    std::optional<kvelect::Executor> executor;
    if (on_executor)
      executor.emplace();
    std::mutex mu;
    std::condition_variable cv;
    std::vector<double> pending;
    std::uint64_t callbacks = 0;
    kvelect::Election* self = nullptr;
    kvelect::Election election(
        "leader", "renewal", bucket.get(), kvelect::SkipValidation(),
        kvelect::WithStartupSplay(0ms), kvelect::OnCampaign([&](kvelect::State st) {
          if (st != kvelect::State::Leader || self == nullptr)
            return;
          const auto stats = self->stats();
          std::lock_guard lock(mu);
          if (++callbacks > 1) // the first one has no previous renewal
            pending.push_back(static_cast<double>(stats.last_renewal_latency.count()) / 1000.0);
          cv.notify_all();
        }),
        executor ? kvelect::WithExecutor(*executor) : kvelect::Option{});
    self = &election;
    election.start();
    if (!election.await(10s))
      throw std::runtime_error("not leader within 10 s");
    kvbench::RawUpdater raw(bucket.get(), "raw-probe");
    kvbench::RawAsyncPublisher raw_async(connection.get(), bucket.get(), "raw-async-probe");
    kvbench::PingPong pingpong;
    // A third yardstick: kvStore_Update of a key that a watcher on the same connection follows,
    // as the leader follows its own key: each write then also brings a watch delivery that the
    // connection's reader thread and a watch thread handle while the reply is on its way.
    kvbench::RawUpdater watched(bucket.get(), "raw-watched");
    kvWatcher* watcher = nullptr;
    kvbench::check_nats(kvStore_Watch(&watcher, bucket.get(), "raw-watched", nullptr),
                        "kvStore_Watch");
    std::atomic<bool> watching{true};
    std::thread watch_thread([&] {
      while (watching.load()) {
        kvEntry* entry = nullptr;
        if (kvWatcher_Next(&entry, watcher, 100) == NATS_OK && entry != nullptr)
          kvEntry_Destroy(entry);
      }
    });
    std::vector<double> samples, raw_samples, handoff_samples, watched_samples, async_samples;
    for (auto _ : state) {
      double t = 0;
      {
        std::unique_lock lock(mu);
        if (!cv.wait_for(lock, 10s, [&] { return !pending.empty(); }))
          throw std::runtime_error("no renewal within 10 s");
        t = pending.front();
        pending.erase(pending.begin());
      }
      samples.push_back(t);
      state.SetIterationTime(seconds(t));
      // Raw probes on the same bucket handle (same connection), between two renewals: the
      // renewal went out right after the callback, and is long done 5 ms later.
      std::this_thread::sleep_for(5ms);
      for (int k = 0; k < 3; ++k)
        raw_samples.push_back(raw.once());
      for (int k = 0; k < 3; ++k)
        async_samples.push_back(raw_async.once());
      for (int k = 0; k < 3; ++k) {
        std::this_thread::sleep_for(1ms);
        handoff_samples.push_back(pingpong.once());
      }
      for (int k = 0; k < 3; ++k) {
        std::this_thread::sleep_for(1ms);
        watched_samples.push_back(watched.once());
      }
    }
    watching.store(false);
    watch_thread.join();
    kvelect::detail::retire(watcher, nullptr); // lib/retire.hpp
    kvWatcher_Destroy(watcher);
    const auto stats = election.stats();
    election.stop();
    const auto s = kvbench::summarize(samples);
    const auto r = kvbench::summarize(raw_samples);
    const auto h = kvbench::summarize(handoff_samples);
    const auto w = kvbench::summarize(watched_samples);
    const auto a = kvbench::summarize(async_samples);
    set_counters(state, s);
    state.counters["raw_async_p50_ms"] = a.p50;
    state.counters["async_p50_ratio"] = s.p50 / a.p50;
    state.counters["raw_p50_ms"] = r.p50;
    state.counters["raw_p99_ms"] = r.p99;
    state.counters["handoff_p50_ms"] = h.p50;
    state.counters["watched_raw_p50_ms"] = w.p50;
    state.counters["p50_ratio"] = s.p50 / r.p50;
    state.counters["failed_requests"] = static_cast<double>(stats.failed_requests);
    add_row({std::string("campaign step: leader renewal") +
                 (on_executor ? " on an Executor (async writes)" : " (threads of its own)") +
                 ", send → result processed (TTL " + std::to_string(opts.renewal_ttl_ms) + " ms)",
             s, "p50 ÷ raw async ≤ 1.1: " + kvbench::verdict(s.p50 / a.p50, 1.1),
             "p50 = " + kvbench::fixed(s.p50 / r.p50, 2) +
                 " × raw Update p50, p99 = " + kvbench::fixed(s.p99 / r.p99, 2) + " × raw p99; " +
                 std::to_string(stats.failed_requests) + " failed requests"});
    add_row({"  raw kvStore_Update, same run, same connection (renewal benchmark)", r, "-",
             std::to_string(r.n) + " probes between renewals"});
    add_row({"  raw async publish round trip, same run, same connection (renewal benchmark)", a,
             "-", "renewal p50 = " + kvbench::fixed(s.p50 / a.p50, 2) + " × this p50"});
    add_row({"  thread handoff there and back, same run (renewal benchmark)", h, "-",
             "raw p50 + handoff p50 = " + kvbench::ms(r.p50 + h.p50, 3)});
    add_row({"  raw kvStore_Update of a watched key, same run (renewal benchmark)", w, "-",
             "renewal p50 = " + kvbench::fixed(s.p50 / w.p50, 2) + " × this p50"});
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// coldstart/N: N members, each with its own connection, start() together on a fresh key; the
// time to the first OnWon. Default start-up splay (random 0..250 ms per member).

void BM_ColdStart(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  try {
    NatsServer server;
    {
      auto admin = kvbench::connect(server.url());
      (void)kvbench::make_bucket(admin, "COLD", 5s, opts.memory);
    }
    std::vector<std::unique_ptr<Member>> members;
    for (int i = 0; i < n; ++i) {
      auto connection = kvbench::connect(server.url(), "m" + std::to_string(i));
      auto bucket = kvelect::Bucket::open(connection, "COLD");
      members.push_back(
          std::make_unique<Member>(Member{std::move(connection), std::move(bucket), nullptr}));
    }
    WinLog log;
    std::vector<double> samples;
    std::size_t extra_wins = 0;
    int run = 0;
    for (auto _ : state) {
      const std::string key = "cold-" + std::to_string(run++);
      for (int i = 0; i < n; ++i)
        members[i]->election = std::make_unique<kvelect::Election>(
            "m" + std::to_string(i), key, members[i]->bucket.get(),
            kvelect::OnWon([&log, i] { log.won(i); }));
      log.clear();
      const auto t0 = Clock::now();
      for (auto& m : members)
        m->election->start();
      const auto win = log.wait_win(t0, -1, 15s);
      if (!win)
        throw std::runtime_error("no leader within 15 s");
      const double t = ms_between(t0, win->at);
      samples.push_back(t);
      state.SetIterationTime(seconds(t));
      // Let every member's first campaign happen (splay ≤ 250 ms), then check for a second win.
      std::this_thread::sleep_for(400ms);
      extra_wins += log.count_since(t0) - 1;
      for (auto& m : members)
        m->election.reset(); // stops: the leader releases the key
    }
    const auto s = kvbench::summarize(samples);
    set_counters(state, s);
    state.counters["extra_wins"] = static_cast<double>(extra_wins);
    add_row({"cold start: " + std::to_string(n) + " members start() → first OnWon", s,
             "≤ 1 s: " + kvbench::verdict(s.max, 1000.0),
             "BASELINE (Go, 3 processes): median 4.99 s → " + kvbench::fixed(4990.0 / s.p50, 0) +
                 "× faster; " + std::to_string(extra_wins) + " extra wins"});
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void print_summary() {
  kvbench::Table table({"figure", "n", "min", "p50", "p90", "p99", "max", "target", "note"});
  std::lock_guard lock(rows_mu);
  for (const auto& r : rows)
    table.row({r.figure, std::to_string(r.s.n), kvbench::ms(r.s.min, 3), kvbench::ms(r.s.p50, 3),
               kvbench::ms(r.s.p90, 3), kvbench::ms(r.s.p99, 3), kvbench::ms(r.s.max, 3), r.target,
               r.note});
  table.print("kvelect latency summary (loopback, nats-server 2.9, " + storage_note() +
              "; percentiles by nearest rank; load average at the end " + kvbench::load_average() +
              ")");
}

} // namespace

int main(int argc, char** argv) {
  kvbench::Settings settings(argc, argv);
  opts.handovers = settings.integer("handovers", opts.handovers);
  opts.renewals = settings.integer("renewals", opts.renewals);
  opts.renewal_ttl_ms = settings.integer("renewal-ttl-ms", opts.renewal_ttl_ms);
  opts.coldstart_runs = settings.integer("coldstart-runs", opts.coldstart_runs);
  opts.raw = settings.integer("raw", opts.raw);
  opts.memory = settings.flag("memory");
  opts.trace_slow_ms = settings.real("trace-slow-ms", 0);

  if (!kvelect::testing::nats_server_available()) {
    std::fprintf(stderr, "nats-server not found (PATH, /usr/sbin)\n");
    return 77;
  }
  auto manual = [](benchmark::internal::Benchmark* b, long iterations) {
    b->Iterations(iterations)->UseManualTime()->Unit(benchmark::kMillisecond);
  };
  manual(benchmark::RegisterBenchmark("raw/update", BM_Raw, RawOp::update), opts.raw);
  manual(benchmark::RegisterBenchmark("raw/create", BM_Raw, RawOp::create), opts.raw);
  manual(benchmark::RegisterBenchmark("raw/create_failed", BM_Raw, RawOp::create_failed), opts.raw);
  manual(benchmark::RegisterBenchmark("raw/get", BM_Raw, RawOp::get), opts.raw);
  manual(benchmark::RegisterBenchmark("raw/handoff", BM_Handoff), opts.raw);
  manual(benchmark::RegisterBenchmark("handover/resign", BM_Handover, false), opts.handovers);
  manual(benchmark::RegisterBenchmark("handover/stop", BM_Handover, true), opts.handovers);
  manual(benchmark::RegisterBenchmark("renewal", BM_Renewal, false), opts.renewals);
  manual(benchmark::RegisterBenchmark("renewal/executor", BM_Renewal, true), opts.renewals);
  manual(benchmark::RegisterBenchmark("coldstart", BM_ColdStart)->Arg(3)->Arg(10),
         opts.coldstart_runs);

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  print_summary();
  return 0;
}
