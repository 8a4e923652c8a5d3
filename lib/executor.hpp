// SPDX-License-Identifier: Apache-2.0
// The shared side of kvelect::Executor: one campaign thread stepping many elections, a pool of
// request threads, and one BucketWatch per bucket (docs/executor.md).
#pragma once

#include <kvelect/executor.hpp>

#include "async_writer.hpp"
#include "bucket_routes.hpp"
#include "clock.hpp"
#include "core/protocol.hpp"
#include "watch.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <thread>
#include <unordered_map>
#include <vector>

namespace kvelect::detail {

// What the executor runs: an election's campaign loop, one step at a time.
class Steppable {
public:
  Steppable() = default;
  virtual ~Steppable() = default;
  Steppable(const Steppable&) = delete;
  Steppable& operator=(const Steppable&) = delete;
  Steppable(Steppable&&) = delete;
  Steppable& operator=(Steppable&&) = delete;
  // One step on the executor's thread: handles what arrived and the timers that are due.
  // Returns when to step again at the latest, or nullopt when the run has ended (it has then
  // detached itself).
  virtual std::optional<LeaseClock::time_point> executor_step() = 0;
  // Ends the run as stop() does; called when the executor is destroyed.
  virtual void stop() noexcept = 0;
};

// Reads the bucket's TTL for the core, and with a JetStream context (WithJetStream) the stream's
// creation time too: the identity by which a bucket deleted and made anew is told from the old
// one ("Bucket changes"; kvStore_Status does not expose it). A missing bucket is fatal, anything
// else retryable (lib/election.cpp).
core::BucketResult read_bucket(kvStore* bucket, const MarkerCheck& jetstream);

class ExecutorState {
public:
  explicit ExecutorState(ExecutorOptions options);
  ~ExecutorState();
  ExecutorState(const ExecutorState&) = delete;
  ExecutorState& operator=(const ExecutorState&) = delete;
  ExecutorState(ExecutorState&&) = delete;
  ExecutorState& operator=(ExecutorState&&) = delete;

  // Starts the campaign thread, which holds `self`.
  void start(const std::shared_ptr<ExecutorState>& self);
  // Stops every attached election, then the threads. After it, attach() throws.
  void shutdown() noexcept;

  void attach(const std::shared_ptr<Steppable>& task);
  void detach(Steppable* task);
  // Steps `task` soon (something arrived for it). Any thread; ignored for detached tasks.
  void wake(Steppable* task);
  bool on_thread() const noexcept;

  // Runs a blocking job on the request pool.
  void post_io(std::function<void()> job);
  // Reads the bucket's configuration on the request pool for `done`. Elections of one bucket
  // share reads: one read at a time per bucket, answering every request made before it was sent
  // (so each answer comes from a read sent after its request, as the core needs; docs/executor.md).
  // `jetstream`: as for the watch, the first election with a JetStream context decides (one
  // kvStore* has one connection).
  using BucketDone = std::function<void(const core::BucketResult&)>;
  void read_bucket(kvStore* bucket, const MarkerCheck& jetstream, BucketDone done);
  // A subscription to `key` on the bucket's shared watch (made on first use).
  // `markers`: how the bucket's shared watch recognises expiry markers; the first election to
  // watch a bucket handle decides (every election on one kvStore* shares its connection).
  std::unique_ptr<WatchHandle> watch(kvStore* bucket, std::string key, WatchSink sink,
                                     const MarkerCheck& markers = {});

  // The asynchronous writer of the bucket's connection (one per connection, made on first use,
  // ended with its last user), with the bucket's subject prefix and request timeout; null if
  // async_writes is off or the bucket was not opened through kvelect.
  class WriterLease {
  public:
    WriterLease(ExecutorState& owner, natsConnection* connection, AsyncWriter* writer,
                BucketRoute route)
        : owner_(owner), connection_(connection), writer_(writer), route_(std::move(route)) {}
    ~WriterLease();
    WriterLease(const WriterLease&) = delete;
    WriterLease& operator=(const WriterLease&) = delete;
    WriterLease(WriterLease&&) = delete;
    WriterLease& operator=(WriterLease&&) = delete;
    AsyncWriter& writer() const noexcept { return *writer_; }
    const BucketRoute& route() const noexcept { return route_; }

  private:
    ExecutorState& owner_;
    natsConnection* connection_;
    AsyncWriter* writer_;
    BucketRoute route_;
  };
  std::unique_ptr<WriterLease> writer(kvStore* bucket);

  std::size_t elections() const;
  std::size_t threads() const;

private:
  using TimePoint = LeaseClock::time_point;
  struct Task {
    std::shared_ptr<Steppable> task;
    std::uint64_t timer_seq = 0;
    TimePoint scheduled = TimePoint::max();
    bool queued = false;
  };
  struct Timer {
    TimePoint at{};
    Steppable* task = nullptr;
    std::uint64_t seq = 0;
    bool operator>(const Timer& other) const { return at > other.at; }
  };
  void run(const std::stop_token& stop);
  void stop_io_and_watches() noexcept;
  void run_io(const std::stop_token& stop);

  const ExecutorOptions options_;
  mutable std::mutex mu_;
  std::condition_variable_any cv_;
  bool closed_ = false;
  bool exit_when_idle_ = false; // destroyed on its own thread: end when the last task has gone
  bool sleeping_ = false;       // the campaign thread waits on cv_: only then does wake() notify
  std::unordered_map<Steppable*, Task> tasks_;
  std::deque<Steppable*> ready_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;

  std::mutex io_mu_;
  std::condition_variable_any io_cv_;
  std::deque<std::function<void()>> io_jobs_;

  // One shared watch per bucket handle, made by the first election on it and ended with the
  // last one: the bucket handle may be destroyed once its elections have stopped.
  class SharedWatchHandle;
  struct SharedWatch {
    std::unique_ptr<BucketWatch> watch;
    std::size_t users = 0;
  };
  void release_watch(kvStore* bucket) noexcept;
  mutable std::mutex watch_mu_;
  std::map<kvStore*, SharedWatch> watches_;

  struct BucketReads {
    std::vector<BucketDone> waiting;
    bool in_flight = false;
    MarkerCheck jetstream;
  };
  void send_bucket_read(kvStore* bucket);
  std::mutex reads_mu_;
  std::map<kvStore*, BucketReads> reads_;

  struct SharedWriter {
    std::unique_ptr<AsyncWriter> writer;
    std::size_t users = 0;
  };
  void release_writer(natsConnection* connection) noexcept;
  mutable std::mutex writer_mu_;
  std::map<natsConnection*, SharedWriter> writers_;

  // Starts a request thread; io_mu_ held (or in the constructor).
  void add_io_thread();
  std::size_t io_idle_ = 0; // request threads waiting for a job; guarded by io_mu_
  bool io_stopped_ = false; // guarded by io_mu_
  std::atomic<std::size_t> io_thread_count_{0}; // for threads(), read without io_mu_

  std::thread::id thread_id_;
  std::vector<std::jthread> io_threads_; // guarded by io_mu_ once the constructor has returned
  std::jthread thread_;                  // last: started once everything above exists
};

} // namespace kvelect::detail
