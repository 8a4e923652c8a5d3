// SPDX-License-Identifier: Apache-2.0
// Helpers shared by kvelect's benchmarks: sample statistics, aligned tables, process figures read
// from /proc and getrusage, a nats-server's CPU time and /varz counters, a bucket stream's state,
// raw cnats round trips, and settings read from flags or environment variables.
//
// Every benchmark starts its own nats-server through the test-support NatsServer (loopback, free
// ports, killed with the benchmark process).
#pragma once

#include <kvelect/kvelect.hpp>

#include <nats/nats.h>

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace kvbench {

using Clock = std::chrono::steady_clock; // CLOCK_MONOTONIC on Linux

/// Milliseconds between two time points, as a double.
inline double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

/// CLOCK_MONOTONIC in nanoseconds: the clock the member processes print.
std::int64_t monotonic_ns();

// ---------------------------------------------------------------------------------------------
// Statistics

/// Order statistics of a sample. Percentiles use the nearest-rank method: p99 of 100 samples is
/// the 99th smallest, p99 of fewer than 100 samples is the largest.
struct Summary {
  std::size_t n = 0;
  double min = 0, p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};
Summary summarize(std::vector<double> samples);
double percentile_sorted(const std::vector<double>& sorted, double p);

// ---------------------------------------------------------------------------------------------
// Output

/// A Markdown table whose columns are padded to line up in a terminal, so it reads well both on
/// the console and pasted into docs/benchmarks.md.
class Table {
public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  std::string str() const;
  void print(const std::string& title = {}) const; // to stdout, flushed

private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

std::string fixed(double value, int decimals = 2);
/// "1.23 ms"
std::string ms(double value, int decimals = 2);
/// "met" / "MISSED" for a figure against an upper bound.
std::string verdict(double value, double bound);

// ---------------------------------------------------------------------------------------------
// Settings: "--name=value" / "--name value" flags (removed from argv), else $KVELECT_BENCH_NAME
// (upper case, '-' → '_'), else the default.

class Settings {
public:
  Settings(int& argc, char** argv);
  std::string str(std::string_view name, std::string fallback) const;
  long integer(std::string_view name, long fallback) const;
  double real(std::string_view name, double fallback) const;
  std::vector<long> list(std::string_view name, std::vector<long> fallback) const;
  bool flag(std::string_view name) const;
  /// The command line as given (for the report).
  const std::string& command_line() const { return command_line_; }

private:
  std::optional<std::string> find(std::string_view name) const;
  std::vector<std::pair<std::string, std::string>> flags_;
  std::string command_line_;
};

// ---------------------------------------------------------------------------------------------
// Process figures

/// CPU seconds (user + system) of this process, all threads, from getrusage(RUSAGE_SELF).
double process_cpu_seconds();
/// A line of /proc/self/status in KiB, e.g. "VmHWM" (peak RSS) or "VmRSS"; -1 if unreadable.
long proc_status_kib(const char* field);
/// /proc/loadavg's three load averages, e.g. "1.20 0.80 0.50".
std::string load_average();
/// Entries in /proc/self/task: the process's OS threads.
int os_thread_count();
/// CPU seconds (utime + stime) of another process, from /proc/<pid>/stat; -1 if unreadable.
double pid_cpu_seconds(pid_t pid);

// ---------------------------------------------------------------------------------------------
// Server figures

/// An unsigned number field of a JSON body, e.g. json_uint(varz, "in_msgs"). Flat search for
/// `"name":`, enough for nats-server's monitoring output.
std::optional<std::uint64_t> json_uint(std::string_view body, std::string_view name);

struct StreamFigures {
  std::uint64_t messages = 0;
  std::uint64_t last_seq = 0;
  std::int64_t consumers = 0;
};
/// js_GetStreamInfo on the bucket's stream "KV_<bucket>"; throws std::runtime_error on failure.
StreamFigures stream_figures(jsCtx* js, const std::string& bucket);

// ---------------------------------------------------------------------------------------------
// Raw cnats round trips, the yardstick for every network figure.

/// Revision-checked kvStore_Update of one key, from the calling thread, as an application would
/// do it without kvelect.
class RawUpdater {
public:
  RawUpdater(kvStore* bucket, std::string key);
  /// One kvStore_Update expecting the last revision; returns the round trip in ms.
  double once();

private:
  kvStore* bucket_;
  std::string key_;
  std::uint64_t revision_ = 0;
};

/// Revision-checked write of one key as a plain publish (header Nats-Expected-Last-Subject-
/// Sequence) with its reply on an asynchronous subscription: the round trip of an asynchronous
/// KV write, from just before the publish to the reply's arrival in cnats' delivery thread (the
/// physical limit of one campaign step; no handoff back to the caller is counted).
class RawAsyncPublisher {
public:
  RawAsyncPublisher(natsConnection* connection, kvStore* bucket, std::string key);
  ~RawAsyncPublisher();
  RawAsyncPublisher(const RawAsyncPublisher&) = delete;
  RawAsyncPublisher& operator=(const RawAsyncPublisher&) = delete;
  /// One write; returns the round trip in ms.
  double once();

private:
  static void on_reply(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* closure);
  natsConnection* connection_;
  kvStore* bucket_;
  std::string key_, subject_, inbox_;
  natsSubscription* sub_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  bool replied_ = false;
  std::string body_;
  std::chrono::steady_clock::time_point arrived_{};
  std::uint64_t revision_ = 0;
};

/// Two thread handoffs, as kvelect's campaign thread and I/O worker make per request: post a job
/// to a thread waiting on a condition variable, which posts an answer back the same way.
class PingPong {
public:
  PingPong();
  ~PingPong();
  PingPong(const PingPong&) = delete;
  PingPong& operator=(const PingPong&) = delete;
  /// One round trip (two handoffs) in ms.
  double once();

private:
  void serve();
  std::mutex mu_;
  std::condition_variable to_worker_, back_;
  std::uint64_t request_ = 0, reply_ = 0;
  bool quit_ = false;
  std::thread thread_;
};

/// Throws std::runtime_error with cnats' last error text when `status` is not NATS_OK.
void check_nats(natsStatus status, const char* what);

/// Connection to `url` with kvelect's defaults (2 s request timeout).
kvelect::Connection connect(const std::string& url, const std::string& name = "kvelect-bench");

/// A bucket for elections: history 1, `ttl`, file storage unless `memory`.
kvelect::Bucket make_bucket(const kvelect::Connection& connection, const std::string& name,
                            std::chrono::milliseconds ttl, bool memory = false);

} // namespace kvbench
