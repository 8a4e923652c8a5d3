// SPDX-License-Identifier: Apache-2.0
// kvelect-bench-scale: N independent elections in one process, one member each, all on one NATS
// connection and one bucket handle (TTL 5 s), the way an agent hosting many singletons would run
// them. Elections are made only through the public API (kvelect::Election), so a later shared
// executor is measured without changing this file.
//
// Each N runs in a fresh child process (this binary re-executed with --child N), with its own
// nats-server, so that peak RSS and thread counts belong to that N alone. The child:
//   1. connects, creates the bucket, constructs N Elections, start()s them (all at once, default
//      start-up splay; or --start-rate per second) and waits until all N lead, or until no new
//      win came for --stall-s seconds (then it reports how far it got and why: the errors the
//      elections reported through OnError, grouped);
//   2. settles 2 s, then measures a steady-state window (--steady-s, default 20 s; 60 s for the
//      figures in docs/benchmarks.md):
//        - process CPU-seconds: getrusage(RUSAGE_SELF) user + system, difference over the window;
//        - peak RSS: VmHWM of /proc/self/status at the end (peak since the process started, so it
//          includes start-up); VmRSS before the first Election is printed for scale;
//        - OS threads: entries of /proc/self/task, in the middle of the window;
//        - nats-server CPU-seconds: utime + stime of /proc/<pid>/stat, difference over the window;
//        - server messages: /varz in_msgs and out_msgs differences;
//        - JetStream consumers: /jsz "consumers" at the end (the server's own count);
//        - leadership losses in the window (should be 0) and failed requests;
//   3. stops all elections (from 32 threads) and reports how long that took.
// CPU figures are also given per minute (window CPU × 60 / window seconds). The parent prints
// each N's row as soon as its child is done, then the whole table.
//
// Settings (flag or $KVELECT_BENCH_<NAME>):
//   --elections 100,1000,5000   --steady-s 20   --memory (memory storage; default file)
//   --design both (threads, executor, executor-sync: an executor without asynchronous writes,
//            executors: executor-sync and executor side by side, both: threads and executor)
//   --start-rate 0 (elections start()ed per second; 0: all at once)   --stall-s 20
//   --stop-limit-s 30 (stopping all elections may take this long; then the child leaves without)
//   --child-timeout-s 600 (a child still running then is killed; its figures so far are kept)
#include "bench_util.hpp"

#include "nats_server.hpp"

#include <kvelect/executor.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <system_error>
#include <thread>

namespace {

using namespace std::chrono_literals;
using kvbench::Clock;

using Result = std::map<std::string, std::string>;

// One "RESULT <key> <value>" line per figure; the value may hold spaces.
void emit(const Result& r) {
  for (const auto& [k, v] : r)
    std::printf("RESULT %s %s\n", k.c_str(), v.c_str());
  std::fflush(stdout);
}

// Errors reported through OnError, grouped by their text with numbers masked.
class ErrorTally {
public:
  void add(const std::string& message) {
    std::string kind;
    for (char c : message.substr(0, 160))
      kind += (c >= '0' && c <= '9') ? '#' : c;
    // Runs of '#' collapse to one.
    std::string collapsed;
    for (char c : kind)
      if (c != '#' || collapsed.empty() || collapsed.back() != '#')
        collapsed += c;
    std::lock_guard lock(mu_);
    ++counts_[collapsed];
    ++total_;
  }
  long total() {
    std::lock_guard lock(mu_);
    return total_;
  }
  // "count × text" of the most frequent kinds.
  std::string top(std::size_t kinds) {
    std::lock_guard lock(mu_);
    std::vector<std::pair<long, std::string>> sorted;
    for (const auto& [text, count] : counts_)
      sorted.emplace_back(count, text);
    std::sort(sorted.rbegin(), sorted.rend());
    std::string out;
    for (std::size_t i = 0; i < sorted.size() && i < kinds; ++i)
      out += (i ? " | " : "") + std::to_string(sorted[i].first) + " × " + sorted[i].second;
    return out.empty() ? "none" : out;
  }

private:
  std::mutex mu_;
  std::map<std::string, long> counts_;
  long total_ = 0;
};

std::string jsz_consumers(const kvelect::testing::NatsServer& server) {
  const auto jsz = server.monitor_get("/jsz", 5s);
  if (!jsz)
    return "?";
  const auto consumers = kvbench::json_uint(jsz->body, "consumers");
  return consumers ? std::to_string(*consumers) : "?";
}

std::string mib(const char* field) {
  return kvbench::fixed(static_cast<double>(kvbench::proc_status_kib(field)) / 1024, 1);
}

int child(long n, double steady_s, bool memory, double start_rate, double stall_s,
          double stop_limit_s, const std::string& design) {
  Result r;
  r["n"] = std::to_string(n);
  r["design"] = design;
  std::istringstream load(kvbench::load_average());
  load >> r["load_at_start"]; // the 1-minute figure
  kvelect::testing::NatsServer server;
  auto connection = kvbench::connect(server.url(), "scale");
  auto bucket = kvbench::make_bucket(connection, "SCALE", 5s, memory);
  r["rss_before_mib"] = mib("VmRSS");

  std::atomic<long> wins{0}, losses{0};
  ErrorTally errors;
  // Design "executor": every election on one shared kvelect::Executor (declared before the
  // elections, so that it outlives them); "threads": threads of their own (the default).
  std::optional<kvelect::Executor> executor;
  // "executor-sync": the same without asynchronous writes (every request on the pool), the
  // executor's design before issue 14.
  if (design == "executor")
    executor.emplace();
  else if (design == "executor-sync")
    executor.emplace(kvelect::ExecutorOptions{2, false});
  std::vector<std::unique_ptr<kvelect::Election>> elections;
  elections.reserve(static_cast<std::size_t>(n));
  const auto t_construct = Clock::now();
  try {
    for (long i = 0; i < n; ++i)
      elections.push_back(std::make_unique<kvelect::Election>(
          "member", "e" + std::to_string(i), bucket.get(), kvelect::OnWon([&wins] { ++wins; }),
          kvelect::OnLost([&losses] { ++losses; }),
          kvelect::OnError([&errors](const kvelect::Error& e) { errors.add(e.what()); }),
          executor ? kvelect::WithExecutor(*executor) : kvelect::Option{}));
  } catch (const std::exception& e) {
    r["error"] = "constructing election #" + std::to_string(elections.size()) + ": " + e.what();
  }
  r["construct_s"] = kvbench::fixed(kvbench::ms_between(t_construct, Clock::now()) / 1000, 2);

  const auto t_start = Clock::now();
  std::size_t started = 0;
  if (!r.count("error")) {
    try {
      for (auto& e : elections) {
        if (start_rate > 0)
          std::this_thread::sleep_until(
              t_start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                            static_cast<double>(started) / start_rate)));
        e->start();
        ++started;
      }
    } catch (const std::system_error& e) {
      r["error"] = "start() of election #" + std::to_string(started) + ": std::system_error " +
                   std::to_string(e.code().value()) + " " + e.what() + " (threads " +
                   std::to_string(kvbench::os_thread_count()) + ")";
    } catch (const std::exception& e) {
      r["error"] = "start() of election #" + std::to_string(started) + ": " + e.what();
    }
  }
  r["started"] = std::to_string(started);
  // Wait until every started election leads, or until wins stop coming.
  const auto limit = std::max<Clock::duration>(120s, std::chrono::milliseconds(40 * n));
  auto last_report = Clock::now();
  auto last_win = Clock::now();
  long seen_wins = 0;
  bool stalled = false;
  while (static_cast<std::size_t>(wins.load()) < started && Clock::now() - t_start < limit) {
    std::this_thread::sleep_for(50ms);
    if (wins.load() != seen_wins) {
      seen_wins = wins.load();
      last_win = Clock::now();
    }
    if (kvbench::ms_between(last_win, Clock::now()) > stall_s * 1000) {
      stalled = true;
      break;
    }
    if (Clock::now() - last_report > 5s) {
      last_report = Clock::now();
      std::fprintf(stderr,
                   "  [N=%ld] %ld of %zu won after %.1f s; %d threads, %ld errors, %s consumers, "
                   "load %s\n",
                   n, wins.load(), started, kvbench::ms_between(t_start, Clock::now()) / 1000,
                   kvbench::os_thread_count(), errors.total(), jsz_consumers(server).c_str(),
                   kvbench::load_average().c_str());
    }
  }
  r["won"] = std::to_string(wins.load());
  r["all_won_s"] = kvbench::fixed(kvbench::ms_between(t_start, Clock::now()) / 1000, 2);
  r["startup_errors"] = std::to_string(errors.total());
  r["startup_error_kinds"] = errors.top(4);
  if (stalled)
    r["stalled"] = "no new win for " + kvbench::fixed(stall_s, 0) + " s";
  std::fprintf(stderr, "  [N=%ld] %ld won in %s s%s; errors: %s\n", n, wins.load(),
               r["all_won_s"].c_str(), stalled ? " (stalled)" : "",
               r["startup_error_kinds"].c_str());
  std::fprintf(stderr, "  [N=%ld] steady state for %.0f s\n", n, steady_s);

  std::this_thread::sleep_for(2s);
  const long losses0 = losses.load();
  const long errors0 = errors.total();
  const double cpu0 = kvbench::process_cpu_seconds();
  const double srv0 = kvbench::pid_cpu_seconds(server.pid());
  const auto varz0 = server.monitor_get("/varz", 5s);
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(steady_s / 2));
  r["threads"] = std::to_string(kvbench::os_thread_count());
  std::this_thread::sleep_for(std::chrono::duration<double>(steady_s / 2));
  const double window = kvbench::ms_between(t0, Clock::now()) / 1000;
  const double cpu = kvbench::process_cpu_seconds() - cpu0;
  const double srv = kvbench::pid_cpu_seconds(server.pid()) - srv0;
  const auto varz1 = server.monitor_get("/varz", 5s);
  r["window_s"] = kvbench::fixed(window, 1);
  r["cpu_s"] = kvbench::fixed(cpu, 2);
  r["cpu_s_per_min"] = kvbench::fixed(cpu * 60 / window, 2);
  r["server_cpu_s"] = kvbench::fixed(srv, 2);
  r["server_cpu_s_per_min"] = kvbench::fixed(srv * 60 / window, 2);
  r["peak_rss_mib"] = mib("VmHWM");
  r["rss_mib"] = mib("VmRSS");
  if (varz0 && varz1) {
    auto rate = [&](const char* field) {
      const auto a = kvbench::json_uint(varz0->body, field);
      const auto b = kvbench::json_uint(varz1->body, field);
      return a && b ? kvbench::fixed(static_cast<double>(*b - *a) / window, 1) : std::string("?");
    };
    r["server_in_msgs_per_s"] = rate("in_msgs");
    r["server_out_msgs_per_s"] = rate("out_msgs");
  }
  r["consumers"] = jsz_consumers(server);
  r["losses_in_window"] = std::to_string(losses.load() - losses0);
  r["errors_in_window"] = std::to_string(errors.total() - errors0);
  long leaders = 0;
  std::uint64_t failed = 0;
  for (auto& e : elections) {
    leaders += e->is_leader() ? 1 : 0;
    failed += e->stats().failed_requests;
  }
  r["leaders_at_end"] = std::to_string(leaders);
  r["failed_requests"] = std::to_string(failed);
  r["error_kinds"] = errors.top(4);

  // The figures go out before the shutdown, so that a shutdown that never ends (the parent kills
  // the child after --child-timeout-s) still leaves them.
  emit(r);
  r.clear();
  // Stop everything, from several threads: one stop() waits for the release round trip and for
  // the election's threads to end. Bounded by --stop-limit-s: elections that cannot reach the
  // server (a collapsed start-up) would take minutes, so then the process leaves without them.
  const auto t_stop = Clock::now();
  const std::size_t workers = std::min<std::size_t>(32, std::max<std::size_t>(1, elections.size()));
  std::atomic<std::size_t> next{0}, stopped{0};
  std::vector<std::thread> stoppers;
  for (std::size_t w = 0; w < workers; ++w)
    stoppers.emplace_back([&] {
      for (std::size_t i = next++; i < elections.size(); i = next++) {
        elections[i].reset();
        ++stopped;
      }
    });
  while (stopped.load() < elections.size() &&
         kvbench::ms_between(t_stop, Clock::now()) < stop_limit_s * 1000)
    std::this_thread::sleep_for(20ms);
  if (stopped.load() < elections.size()) {
    r["stop_all_s"] = "> " + kvbench::fixed(stop_limit_s, 0) + " (" +
                      std::to_string(stopped.load()) + " of " + std::to_string(elections.size()) +
                      " stopped)";
    emit(r);
    // The stuck elections cannot be joined: end the process without destructors. The server
    // goes with it (PR_SET_PDEATHSIG); its temporary store is removed here.
    const std::string store = server.store_dir();
    server.kill();
    std::error_code ignored;
    std::filesystem::remove_all(store, ignored);
    std::_Exit(0);
  }
  for (auto& t : stoppers)
    t.join();
  r["stop_all_s"] = kvbench::fixed(kvbench::ms_between(t_stop, Clock::now()) / 1000, 2);
  emit(r);
  return 0;
}

// Runs this binary with --child N; returns its RESULT fields (or an "error").
Result run_child(long n, const std::vector<std::string>& pass_on, double timeout_s) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe2 failed");
  std::vector<std::string> args{"kvelect-bench-scale", "--child", std::to_string(n)};
  args.insert(args.end(), pass_on.begin(), pass_on.end());
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  char exe[4096];
  const ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (len <= 0)
    throw std::runtime_error("readlink /proc/self/exe failed");
  exe[len] = '\0';
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    execv(exe, argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char chunk[4096];
  bool timed_out = false;
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd pfd{fds[0], POLLIN, 0};
    const int ready = poll(&pfd, 1, static_cast<int>(std::min<long>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR)
      break;
    if (ready <= 0)
      continue;
    const ssize_t got = read(fds[0], chunk, sizeof chunk);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      break;
    out.append(chunk, static_cast<std::size_t>(got));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  Result r;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("RESULT ", 0) != 0)
      continue;
    const auto space = line.find(' ', 7);
    if (space != std::string::npos)
      r[line.substr(7, space - 7)] = line.substr(space + 1);
  }
  std::string error = r.count("error") ? r["error"] : "";
  if (timed_out)
    error += (error.empty() ? "" : "; ") + std::string("killed after ") +
             kvbench::fixed(timeout_s, 0) + " s (--child-timeout-s)";
  else if (WIFSIGNALED(status))
    error += (error.empty() ? "" : "; ") + std::string("child killed by signal ") +
             strsignal(WTERMSIG(status));
  else if (r.empty())
    error = "child exited " + std::to_string(WEXITSTATUS(status)) + " without a result";
  if (!error.empty())
    r["error"] = error;
  return r;
}

std::string first_word(const char* path) {
  std::ifstream in(path);
  std::string word = "?";
  in >> word;
  return word;
}

std::string get(const Result& r, const char* key) {
  const auto it = r.find(key);
  return it == r.end() ? "-" : it->second;
}

const std::vector<std::string> kHeader{"elections",
                                       "design",
                                       "all won after",
                                       "CPU-s / window",
                                       "CPU-s / min",
                                       "peak RSS (VmHWM)",
                                       "RSS before",
                                       "OS threads",
                                       "server CPU-s / min",
                                       "JS consumers",
                                       "server in / out msgs/s",
                                       "losses in window",
                                       "leaders at end",
                                       "failed requests",
                                       "stop all",
                                       "load at start"};

std::vector<std::string> row(const Result& r) {
  return {get(r, "n"),
          get(r, "design"),
          get(r, "won") + " in " + get(r, "all_won_s") + " s",
          get(r, "cpu_s") + " / " + get(r, "window_s") + " s",
          get(r, "cpu_s_per_min"),
          get(r, "peak_rss_mib") + " MiB",
          get(r, "rss_before_mib") + " MiB",
          get(r, "threads"),
          get(r, "server_cpu_s_per_min"),
          get(r, "consumers"),
          get(r, "server_in_msgs_per_s") + " / " + get(r, "server_out_msgs_per_s"),
          get(r, "losses_in_window"),
          get(r, "leaders_at_end"),
          get(r, "failed_requests"),
          get(r, "stop_all_s") + " s",
          get(r, "load_at_start")};
}

} // namespace

int main(int argc, char** argv) {
  kvbench::Settings settings(argc, argv);
  const double steady_s = settings.real("steady-s", 20);
  const bool memory = settings.flag("memory");
  const double start_rate = settings.real("start-rate", 0);
  const double stall_s = settings.real("stall-s", 20);
  const double timeout_s = settings.real("child-timeout-s", 600);
  const double stop_limit_s = settings.real("stop-limit-s", 30);
  if (!kvelect::testing::nats_server_available()) {
    std::fprintf(stderr, "nats-server not found (PATH, /usr/sbin)\n");
    return 77;
  }
  if (const long n = settings.integer("child", 0); n > 0)
    return child(n, steady_s, memory, start_rate, stall_s, stop_limit_s,
                 settings.str("design", "threads"));

  const auto ns = settings.list("elections", {100, 1000, 5000});
  // Both designs side by side unless one is chosen (issue 7): "threads", "executor" or "both";
  // "executors" compares the executor without and with asynchronous writes (issue 14).
  const std::string designs = settings.str("design", "both");
  std::vector<std::string> design_list;
  if (designs == "both")
    design_list = {"threads", "executor"};
  else if (designs == "executors")
    design_list = {"executor-sync", "executor"};
  else if (designs == "threads" || designs == "executor" || designs == "executor-sync")
    design_list = {designs};
  else {
    std::fprintf(stderr,
                 "--design must be threads, executor, executor-sync, executors or both, not '%s'\n",
                 designs.c_str());
    return 2;
  }
  std::printf("kvelect-bench-scale: one process, one connection, one member per election, TTL 5 s, "
              "%s storage, %.0f s steady state, start: %s\n",
              memory ? "memory" : "file", steady_s,
              start_rate > 0 ? (kvbench::fixed(start_rate, 0) + " per second").c_str()
                             : "all at once");
  std::printf("command: %s\nload average at the start: %s\n", settings.command_line().c_str(),
              kvbench::load_average().c_str());
  std::printf("limits: ulimit -u %ld, kernel.threads-max %s, kernel.pid_max %s, "
              "vm.max_map_count %s\n",
              sysconf(_SC_CHILD_MAX), first_word("/proc/sys/kernel/threads-max").c_str(),
              first_word("/proc/sys/kernel/pid_max").c_str(),
              first_word("/proc/sys/vm/max_map_count").c_str());
  std::fflush(stdout);

  std::vector<std::string> pass_on{"--steady-s",   kvbench::fixed(steady_s, 1),
                                   "--start-rate", kvbench::fixed(start_rate, 1),
                                   "--stall-s",    kvbench::fixed(stall_s, 1)};
  if (memory)
    pass_on.emplace_back("--memory");
  std::vector<Result> results;
  for (long n : ns)
    for (const auto& design : design_list) {
      std::fprintf(stderr, "N = %ld, %s ...\n", n, design.c_str());
      auto args = pass_on;
      args.insert(args.end(), {"--design", design});
      results.push_back(run_child(n, args, timeout_s));
      // Each row as soon as it is known, in case a later N takes the machine down.
      kvbench::Table one(kHeader);
      one.row(row(results.back()));
      one.print("N = " + std::to_string(n) + ", " + design + " done");
    }

  kvbench::Table table(kHeader);
  for (const auto& r : results)
    table.row(row(r));
  table.print("kvelect scale: N elections in one process (load average at the end " +
              kvbench::load_average() + ")");

  kvbench::Table targets(
      {"elections", "design", "figure", "kvelect", "target", "verdict", "BASELINE (Go)"});
  for (const auto& r : results) {
    const std::string n = get(r, "n");
    const std::string design = get(r, "design");
    auto num = [&](const char* key) {
      const auto s = get(r, key);
      return s == "-" || s == "?" ? -1.0 : std::strtod(s.c_str(), nullptr);
    };
    auto judge = [&](const char* key, double bound) {
      return num(key) < 0 ? std::string("-") : kvbench::verdict(num(key), bound);
    };
    const bool executor = design.rfind("executor", 0) == 0;
    if (n == "1000") {
      targets.row({n, design, "process CPU-s / min", get(r, "cpu_s_per_min"),
                   executor ? "≤ 0.8 (issue 14)" : "≤ 3",
                   judge("cpu_s_per_min", executor ? 0.8 : 3), "7.7"});
      targets.row({n, design, "peak RSS", get(r, "peak_rss_mib") + " MiB",
                   executor ? "≤ 12 MiB (issue 14)" : "≤ 20 MiB",
                   judge("peak_rss_mib", executor ? 12 : 20), "31 MiB"});
      targets.row({n, design, "nats-server CPU-s / min", get(r, "server_cpu_s_per_min"),
                   executor ? "≤ 1.5 (issue 14)" : "≤ 2",
                   judge("server_cpu_s_per_min", executor ? 1.5 : 2), "3.9"});
      targets.row({n, design, "OS threads", get(r, "threads"), "-", "-", "8 (1,008 goroutines)"});
    } else if (n == "5000") {
      targets.row({n, design, "process CPU-s / min", get(r, "cpu_s_per_min"), "-", "-", "17.0"});
      targets.row({n, design, "peak RSS", get(r, "peak_rss_mib") + " MiB", "-", "-", "105 MiB"});
    } else if (n == "10000" && executor) {
      targets.row({n, design, "all won after start", get(r, "all_won_s") + " s", "≤ 3 s",
                   judge("all_won_s", 3), "-"});
      targets.row({n, design, "process CPU-s / min", get(r, "cpu_s_per_min"), "≤ 8",
                   judge("cpu_s_per_min", 8), "-"});
      targets.row({n, design, "peak RSS", get(r, "peak_rss_mib") + " MiB", "≤ 64 MiB",
                   judge("peak_rss_mib", 64), "-"});
      targets.row({n, design, "OS threads", get(r, "threads"), "≤ 6", judge("threads", 6), "-"});
    }
  }
  targets.print("targets (issues 7 and 14) and the Go reference (BASELINE.md, 60 s windows)");
  int failures = 0;
  for (const auto& r : results) {
    std::printf("N = %s (%s): errors reported through OnError during start-up: %s; during the "
                "window: %s (%s)%s\n",
                get(r, "n").c_str(), get(r, "design").c_str(), get(r, "startup_errors").c_str(),
                get(r, "errors_in_window").c_str(), get(r, "error_kinds").c_str(),
                r.count("stalled") ? ("; start-up stalled: " + get(r, "stalled")).c_str() : "");
    if (r.count("error") || r.count("stalled")) {
      ++failures;
      std::printf("N = %s FAILED: %s\n", get(r, "n").c_str(), get(r, "error").c_str());
    }
  }
  return failures == 0 ? 0 : 1;
}
