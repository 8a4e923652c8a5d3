// SPDX-License-Identifier: Apache-2.0
// kvelect-bench-members: M members in one election (bucket TTL 5 s), each with its own NATS
// connection as if each were its own process. For each M (own nats-server):
//
//   1. time to a single leader: --runs times, M fresh members start() together on a fresh key
//      (default start-up splay); the time to the first OnWon, then 1 s later the number of wins
//      (must be 1) and the create attempts the start-up cost (Stats::create_attempts summed);
//   2. steady state (the last run's members, after 6 s of settling, over --steady-s seconds):
//        - server requests per second: the /varz in_msgs difference (every message any client
//          published to the server: KV writes and reads, JetStream API requests, flow-control
//          replies) divided by the window;
//        - stream writes per second: the difference of the bucket stream's last sequence
//          (js_GetStreamInfo), i.e. successful KV writes (renewals);
//        - out_msgs per second (replies and watch deliveries), process and nats-server CPU;
//   3. create attempts per vacancy: --vacancies times, the leader resign()s; the sum of every
//      member's Stats::create_attempts before and after (once a successor has won and the sum has
//      been still for 300 ms), and the resign() → successor's OnWon time.
//
// Settings (flag or $KVELECT_BENCH_<NAME>):
//   --members 20,100   --runs 3   --steady-s 20   --vacancies 10   --memory
#include "bench_util.hpp"

#include "nats_server.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>

namespace {

using namespace std::chrono_literals;
using kvbench::Clock;
using kvbench::ms_between;

struct Win {
  int member;
  Clock::time_point at;
};

class WinLog {
public:
  void won(int member) {
    {
      std::lock_guard lock(mu_);
      wins_.push_back({member, Clock::now()});
    }
    cv_.notify_all();
  }
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

private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Win> wins_;
};

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
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

// Destroys (stops) every member's election, from several threads: one stop() waits for the
// release round trip and for the election's threads to end.
void stop_all(std::vector<std::unique_ptr<Member>>& members) {
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> stoppers;
  for (int w = 0; w < 16; ++w)
    stoppers.emplace_back([&] {
      for (std::size_t i = next++; i < members.size(); i = next++)
        members[i]->election.reset();
    });
  for (auto& t : stoppers)
    t.join();
}

std::uint64_t sum_attempts(const std::vector<std::unique_ptr<Member>>& members) {
  std::uint64_t sum = 0;
  for (const auto& m : members)
    sum += m->election->stats().create_attempts;
  return sum;
}

struct Figures {
  int m = 0;
  std::vector<double> to_leader_ms;
  std::vector<double> startup_attempts;
  std::size_t extra_wins = 0;
  double in_per_s = -1, out_per_s = -1, writes_per_s = -1, cpu_per_min = -1, srv_per_min = -1;
  double window_s = 0;
  int threads = 0;
  std::vector<double> attempts_per_vacancy;
  std::vector<double> vacancy_handover_ms;
  std::string error;
};

Figures run(int m, int runs, double steady_s, int vacancies, bool memory) {
  Figures f;
  f.m = m;
  kvelect::testing::NatsServer server;
  auto admin = kvbench::connect(server.url(), "admin");
  (void)kvbench::make_bucket(admin, "MANY", 5s, memory);
  std::vector<std::unique_ptr<Member>> members;
  for (int i = 0; i < m; ++i) {
    auto connection = kvbench::connect(server.url(), "m" + std::to_string(i));
    auto bucket = kvelect::Bucket::open(connection, "MANY");
    members.push_back(
        std::make_unique<Member>(Member{std::move(connection), std::move(bucket), nullptr}));
  }
  WinLog log;
  int leader = -1;
  for (int run = 0; run < runs; ++run) {
    const std::string key = "many-" + std::to_string(run);
    for (int i = 0; i < m; ++i)
      members[i]->election = std::make_unique<kvelect::Election>(
          "m" + std::to_string(i), key, members[i]->bucket.get(),
          kvelect::OnWon([&log, i] { log.won(i); }));
    const auto t0 = Clock::now();
    for (auto& mem : members)
      mem->election->start();
    const auto win = log.wait_win(t0, -1, 30s);
    if (!win)
      throw std::runtime_error("no leader within 30 s");
    f.to_leader_ms.push_back(ms_between(t0, win->at));
    leader = win->member;
    std::this_thread::sleep_for(1s);
    f.extra_wins += log.count_since(t0) - 1;
    f.startup_attempts.push_back(static_cast<double>(sum_attempts(members)));
    std::fprintf(stderr, "  [M=%d] run %d: leader after %.1f ms, %zu wins, %.0f create attempts\n",
                 m, run, f.to_leader_ms.back(), log.count_since(t0), f.startup_attempts.back());
    if (run + 1 < runs)
      stop_all(members);
  }

  // Steady state.
  const std::string leader_name = "m" + std::to_string(leader);
  if (!wait_until(
          [&] {
            for (auto& mem : members)
              if (mem->election->leader() != leader_name)
                return false;
            return true;
          },
          10s))
    f.error = "not every member saw the leader within 10 s";
  std::this_thread::sleep_for(6s);
  const auto varz0 = server.monitor_get("/varz");
  const auto stream0 = kvbench::stream_figures(admin.jetstream(), "MANY");
  const double cpu0 = kvbench::process_cpu_seconds();
  const double srv0 = kvbench::pid_cpu_seconds(server.pid());
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(steady_s));
  f.window_s = ms_between(t0, Clock::now()) / 1000;
  f.cpu_per_min = (kvbench::process_cpu_seconds() - cpu0) * 60 / f.window_s;
  f.srv_per_min = (kvbench::pid_cpu_seconds(server.pid()) - srv0) * 60 / f.window_s;
  const auto stream1 = kvbench::stream_figures(admin.jetstream(), "MANY");
  const auto varz1 = server.monitor_get("/varz");
  f.threads = kvbench::os_thread_count();
  f.writes_per_s = static_cast<double>(stream1.last_seq - stream0.last_seq) / f.window_s;
  if (varz0 && varz1) {
    auto rate = [&](const char* field) {
      const auto a = kvbench::json_uint(varz0->body, field);
      const auto b = kvbench::json_uint(varz1->body, field);
      return a && b ? static_cast<double>(*b - *a) / f.window_s : -1.0;
    };
    f.in_per_s = rate("in_msgs");
    f.out_per_s = rate("out_msgs");
  }
  std::fprintf(stderr, "  [M=%d] steady: %.2f in msgs/s, %.2f stream writes/s\n", m, f.in_per_s,
               f.writes_per_s);

  // Vacancies.
  for (int v = 0; v < vacancies; ++v) {
    std::this_thread::sleep_for(200ms);
    const std::uint64_t before = sum_attempts(members);
    const auto t_resign = Clock::now();
    members[leader]->election->resign();
    const auto win = log.wait_win(t_resign, leader, 15s);
    if (!win)
      throw std::runtime_error("no successor within 15 s after resign()");
    f.vacancy_handover_ms.push_back(ms_between(t_resign, win->at));
    leader = win->member;
    // Let the losers' attempts finish: the sum still for 300 ms.
    std::uint64_t after = sum_attempts(members);
    for (auto still_since = Clock::now(); Clock::now() - still_since < 300ms;) {
      std::this_thread::sleep_for(20ms);
      const std::uint64_t now = sum_attempts(members);
      if (now != after) {
        after = now;
        still_since = Clock::now();
      }
    }
    f.attempts_per_vacancy.push_back(static_cast<double>(after - before));
  }
  stop_all(members);
  return f;
}

} // namespace

int main(int argc, char** argv) {
  kvbench::Settings settings(argc, argv);
  const auto ms_list = settings.list("members", {20, 100});
  const int runs = static_cast<int>(settings.integer("runs", 3));
  const double steady_s = settings.real("steady-s", 20);
  const int vacancies = static_cast<int>(settings.integer("vacancies", 10));
  const bool memory = settings.flag("memory");
  if (!kvelect::testing::nats_server_available()) {
    std::fprintf(stderr, "nats-server not found (PATH, /usr/sbin)\n");
    return 77;
  }
  std::printf("kvelect-bench-members: M members (own connection each) in one election, TTL 5 s, "
              "%s storage\n",
              memory ? "memory" : "file");
  std::printf("command: %s\nload average at the start: %s\n", settings.command_line().c_str(),
              kvbench::load_average().c_str());
  std::fflush(stdout);

  std::vector<Figures> all;
  int failures = 0;
  for (long m : ms_list) {
    std::fprintf(stderr, "M = %ld ...\n", m);
    try {
      all.push_back(run(static_cast<int>(m), runs, steady_s, vacancies, memory));
    } catch (const std::exception& e) {
      Figures f;
      f.m = static_cast<int>(m);
      f.error = e.what();
      all.push_back(f);
    }
  }

  kvbench::Table table({"members", "time to single leader p50 / max (n)", "extra wins",
                        "create attempts at start-up", "server in msgs/s", "stream writes/s",
                        "server out msgs/s", "process CPU-s/min", "server CPU-s/min", "threads",
                        "create attempts per vacancy mean (min..max, n)",
                        "resign → OnWon p50 / max"});
  for (const auto& f : all) {
    const auto t = kvbench::summarize(f.to_leader_ms);
    const auto a = kvbench::summarize(f.startup_attempts);
    const auto v = kvbench::summarize(f.attempts_per_vacancy);
    const auto h = kvbench::summarize(f.vacancy_handover_ms);
    table.row(
        {std::to_string(f.m),
         kvbench::ms(t.p50, 1) + " / " + kvbench::ms(t.max, 1) + " (" + std::to_string(t.n) + ")",
         std::to_string(f.extra_wins), kvbench::fixed(a.mean, 1), kvbench::fixed(f.in_per_s, 2),
         kvbench::fixed(f.writes_per_s, 2), kvbench::fixed(f.out_per_s, 2),
         kvbench::fixed(f.cpu_per_min, 2), kvbench::fixed(f.srv_per_min, 2),
         std::to_string(f.threads),
         kvbench::fixed(v.mean, 1) + " (" + kvbench::fixed(v.min, 0) + ".." +
             kvbench::fixed(v.max, 0) + ", " + std::to_string(v.n) + ")",
         kvbench::ms(h.p50, 1) + " / " + kvbench::ms(h.max, 1)});
  }
  table.print("kvelect: M members in one election (steady-state window " +
              kvbench::fixed(steady_s, 0) + " s; load average at the end " +
              kvbench::load_average() + ")");
  for (const auto& f : all)
    if (!f.error.empty()) {
      ++failures;
      std::printf("M = %d: %s\n", f.m, f.error.c_str());
    }
  return failures == 0 ? 0 : 1;
}
