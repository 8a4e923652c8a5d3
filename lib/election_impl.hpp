// SPDX-License-Identifier: Apache-2.0
// The driver behind kvelect::Election and kvelect::Observer: it runs the protocol core
// (lib/core/protocol.hpp) on a thread of its own or on an Executor's thread, carries out the
// core's requests through cnats on a request thread, feeds it the key's watch and the clock, and
// calls the user's callbacks. Every protocol decision is the core's; docs/protocol.md gives
// their reasons, and its "The pieces" section what this driver adds.
#pragma once

#include <kvelect/election.hpp>

#include "clock.hpp"
#include "core/protocol.hpp"
#include "executor.hpp"
#include "kv.hpp"
#include "watch.hpp"

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <variant>
#include <vector>

namespace kvelect {

namespace detail {

// Runs blocking KV requests one at a time on a thread of its own, so that the campaign loop
// never waits for the network and can end a lease on time (docs/protocol.md, "The pieces").
class IoWorker {
public:
  IoWorker();
  ~IoWorker();
  IoWorker(const IoWorker&) = delete;
  IoWorker& operator=(const IoWorker&) = delete;
  IoWorker(IoWorker&&) = delete;
  IoWorker& operator=(IoWorker&&) = delete;
  void post(std::function<void()> job);

private:
  void run(std::stop_token stop);
  std::mutex mu_;
  std::condition_variable_any cv_;
  std::deque<std::function<void()>> jobs_;
  std::jthread thread_;
};

} // namespace detail

class Election::Impl : public detail::Steppable,
                       public std::enable_shared_from_this<Election::Impl> {
public:
  using Clock = detail::LeaseClock;
  using TimePoint = Clock::time_point;

  Impl(std::string name, std::string key, kvStore* bucket, const std::vector<Option>& options,
       bool observe_only);
  ~Impl() override;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  Impl(Impl&&) = delete;
  Impl& operator=(Impl&&) = delete;

  void start();
  void run(std::stop_token stop);
  void stop() noexcept override;
  std::optional<TimePoint> executor_step() override;

  bool is_leader() const;
  State state() const;
  std::optional<Token> token() const;
  std::optional<std::string> leader() const;
  std::optional<std::string> read_leader() const;
  bool await(std::chrono::milliseconds timeout);
  bool await(std::stop_token stop);
  std::stop_token leadership() const;
  bool resign();
  Stats stats() const;

  const std::string& name() const noexcept { return name_; }
  const std::string& key() const noexcept { return key_; }
  std::chrono::milliseconds ttl() const noexcept { return ttl_ms_; }
  std::chrono::milliseconds campaign_interval() const noexcept { return interval_ms_; }
  kvStore* bucket() const noexcept { return bucket_; }

private:
  // What the request thread and the watch hand back to the loop.
  struct WriteDone {
    std::uint64_t id = 0;
    detail::WriteResult result;
  };
  struct ReadDone {
    std::uint64_t id = 0;
    detail::ReadResult result;
  };
  struct BucketDone {
    std::uint64_t id = 0;
    core::BucketResult result;
  };
  using Inbox = std::variant<detail::WatchEvent, WriteDone, ReadDone, BucketDone>;

  // A run is begin_run(), step() until it returns false, finish(): on a thread of its own
  // (loop()) or on an Executor's thread (executor_step()).
  void loop(std::stop_token external);
  void begin_run();
  bool step();
  void finish();
  void drive_here(); // stop() of this election on its executor's thread, from a callback
  void feed(Inbox& item, core::Time now);
  // Publishes the core's view to API callers, then carries out its outputs in order. Outputs a
  // callback causes (a resign() or stop() from inside it) join the same queue.
  void dispatch();
  void carry_out(core::Output& output);
  void publish();
  void post(Inbox item, bool urgent = true);
  void post_io(std::function<void()> job);
  bool on_loop_thread() const noexcept;
  bool on_executor_thread() const noexcept;
  TimePoint next_deadline() const;
  static core::Time core_time(TimePoint t) noexcept { return core::Time(t.time_since_epoch()); }
  static TimePoint clock_time(core::Time t) noexcept;
  bool leading_now() const; // with mu_ held

  // User code: called with no lock held; an exception is reported, never propagated.
  template <typename F>
  void call_user(std::string_view what, F&& call);
  // A log line to WithDebug (every line) and WithLog (with its level).
  void log(LogLevel level, std::string_view line) const;

  // Immutable after construction.
  const std::string name_;
  const std::string key_;
  kvStore* const bucket_;
  Config config_;
  const bool observe_only_;
  std::shared_ptr<detail::ExecutorState> executor_; // null: threads of its own
  std::chrono::milliseconds ttl_ms_{0};
  std::chrono::milliseconds interval_ms_{0};
  detail::MarkerCheck markers_; // from WithJetStream: recognises the server's expiry markers
  std::unique_ptr<detail::KvPort> port_;

  // Lifecycle, guarded by lifecycle_mu_ (serialises start/stop/run against each other).
  std::mutex lifecycle_mu_;
  std::jthread thread_;

  // Shared with API callers, guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable_any wake_;    // the loop waits on it
  std::condition_variable_any changed_; // await(), resign() and stop() wait on it
  // A vector, not a deque: swapped out whole by each step, it leaves an idle election holding no
  // allocation (a deque keeps a ~0.5 KiB node and allocates two blocks per step; measured with
  // heaptrack in docs/executor.md, "Profiles of the misses").
  std::vector<Inbox> inbox_;
  bool running_ = false; // a loop is active or about to be
  bool stop_requested_ = false;
  std::uint64_t resign_requests_ = 0;
  std::uint64_t resign_handled_ = 0;
  bool last_resign_result_ = false;
  std::thread::id loop_thread_id_;
  core::PublicView view_;
  core::Counters counters_;
  std::stop_source leadership_{std::nostopstate};
  bool driven_here_ = false; // drive_here() waits on wake_ (executor mode)

  // Loop-owned: only the thread running the loop touches these.
  std::unique_ptr<core::Protocol> core_;
  bool begun_ = false;        // executor mode: begin_run() has run for the current run
  bool stepping_ = false;     // a step of this election is on the stack (executor mode)
  bool core_stopped_ = false; // stop() has been given to the core in this run
  bool start_failed_ = false; // begin_run() could not start the threads
  std::unique_ptr<detail::IoWorker> io_;
  std::unique_ptr<detail::WatchHandle> watch_;
  // Executor mode with asynchronous writes (docs/executor.md): the writer, the key's subject,
  // and the write waiting for its reply. A reply that has not come by `deadline` (the
  // connection's request timeout after the send, as kvStore_Update waits) is a write of unknown
  // outcome, as a timed-out request is.
  struct AsyncWrite {
    std::uint64_t id = 0;
    std::uint64_t ticket = 0;
    TimePoint deadline{};
  };
  void send_async_write(core::SendWrite& write);
  void expire_async_write(TimePoint now);
  std::unique_ptr<detail::ExecutorState::WriterLease> writer_;
  std::string subject_;
  std::optional<AsyncWrite> async_write_;
};

} // namespace kvelect
