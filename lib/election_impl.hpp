// SPDX-License-Identifier: Apache-2.0
// The campaign loop behind kvelect::Election and kvelect::Observer. The protocol and the reason
// for every timing decision are in docs/protocol.md; comments here point at its sections.
#pragma once

#include <kvelect/election.hpp>

#include "clock.hpp"
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

namespace kvelect {

namespace detail {

// Runs blocking KV requests one at a time on a thread of its own, so that the campaign loop
// never waits for the network and can end a lease on time (docs/protocol.md, "Threads").
class IoWorker {
public:
  IoWorker();
  ~IoWorker();
  IoWorker(const IoWorker&) = delete;
  IoWorker& operator=(const IoWorker&) = delete;
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
  using Duration = Clock::duration;

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
  // What the loop believes the key holds (docs/protocol.md, "Key states").
  struct KeyView {
    enum class Kind { unknown, absent, held, tombstone, released, evicting } kind = Kind::unknown;
    std::string value;
    std::uint64_t revision = 0;
    TimePoint observed_at{};
  };
  enum class Role { idle, candidate, pending, leader };
  enum class Purpose { acquire, renew, release, read_after_race, read_after_unknown, probe };
  enum class Vacancy { clean, guarded, reclaim };

  struct IoResult {
    Purpose purpose = Purpose::acquire;
    detail::WriteResult write;
    detail::ReadResult read;
    TimePoint sent{};
    std::uint64_t expected = 0;
    Vacancy vacancy = Vacancy::guarded;
    Purpose origin = Purpose::acquire; // for reads: the write they follow up
    std::uint64_t run = 0;             // the run that sent it (a late result of an earlier run
                                       // is dropped)
  };
  using Inbox = std::variant<detail::WatchEvent, IoResult>;

  // Loop. A run is begin_run(), step() until it returns false, finish(): on a thread of its own
  // (loop()) or on an Executor's thread (executor_step()).
  void loop(std::stop_token external);
  void begin_run();
  bool step();
  void begin_drain();
  bool drain(std::deque<Inbox>& batch);
  void finish();
  void reset_for_run();
  void drive_here(); // stop() of this election on its executor's thread, from a callback
  void post_io(std::function<void()> job);
  bool on_executor_thread() const noexcept;
  TimePoint next_deadline() const;
  void check_lease(TimePoint now);
  void run_timers(TimePoint now);
  void handle(detail::WatchEvent& event, TimePoint now);
  void handle(IoResult& result, TimePoint now);
  void handle_acquire(IoResult& result, TimePoint now);
  void handle_renew(IoResult& result, TimePoint now);
  void handle_read(IoResult& result, TimePoint now);
  void observe(const detail::Entry& entry, TimePoint now, bool from_watch);
  void maybe_attempt(TimePoint now, const char* reason);
  void pump_pending(TimePoint now);
  void send_write(Purpose purpose, std::string value, std::uint64_t expected, Vacancy vacancy);
  void send_read(Purpose origin, std::uint64_t hint, Vacancy vacancy);
  void send_probe(TimePoint now);
  void renew(TimePoint now);
  void become_leader(TimePoint now);
  void lose(const std::string& reason);
  bool step_down(const std::string& reason, std::uint64_t release_revision);
  // Gives the key back at `revision` now, or once the request in flight has returned.
  void release(std::uint64_t revision);
  void send_release(std::uint64_t revision);
  void fail(const Error& error);
  void report(const detail::WriteResult& failure, std::string_view what);
  std::chrono::milliseconds candidate_wait();
  void set_observed_leader(std::optional<std::string> leader);
  void expect_watch_to_reach(std::uint64_t revision, TimePoint now);
  bool on_loop_thread() const noexcept;
  void post(Inbox item, bool urgent = true);

  // Callbacks: called with no lock held; an exception is reported, never propagated.
  template <typename F>
  void guarded(std::string_view what, F&& call);
  void debug(std::string_view line) const;
  template <typename... Args>
  void debugf(const char* format, const Args&... args) const;

  // Immutable after construction.
  const std::string name_;
  const std::string key_;
  kvStore* const bucket_;
  Config config_;
  const bool observe_only_;
  std::shared_ptr<detail::ExecutorState> executor_; // null: threads of its own
  std::chrono::milliseconds ttl_ms_{0};
  std::chrono::milliseconds interval_ms_{0};
  Duration ttl_{};
  Duration guard_{};
  Duration renew_period_{};
  std::unique_ptr<detail::KvPort> port_;

  // Lifecycle, guarded by lifecycle_mu_ (serialises start/stop/run against each other).
  std::mutex lifecycle_mu_;
  std::jthread thread_;

  // Shared with API callers, guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable_any wake_;    // the loop waits on it
  std::condition_variable_any changed_; // await(), resign() and stop() wait on it
  std::deque<Inbox> inbox_;
  bool running_ = false; // a loop is active or about to be
  bool stop_requested_ = false;
  std::uint64_t resign_requests_ = 0;
  std::uint64_t resign_handled_ = 0;
  bool last_resign_result_ = false;
  std::thread::id loop_thread_id_;
  State public_state_ = State::Unknown;
  TimePoint lease_deadline_{};
  std::optional<Token> token_;
  std::optional<std::string> leader_;
  std::stop_source leadership_{std::nostopstate};
  Stats stats_;
  std::uint64_t run_generation_ = 0;
  bool driven_here_ = false; // drive_here() waits on wake_ (executor mode)

  // Loop-owned state: only the loop thread touches it.
  Role role_ = Role::idle;
  KeyView view_;
  bool stopping_ = false;
  bool begun_ = false;    // executor mode: begin_run() has run for the current run
  bool stepping_ = false; // a step of this election is on the stack (executor mode)
  bool draining_ = false; // stopping: waiting for the request in flight and the release
  bool release_sent_ = false;
  TimePoint give_up_{};
  bool fatal_ = false;
  bool io_busy_ = false;
  bool attempt_wanted_ = false;
  bool renew_wanted_ = false;
  std::uint64_t release_wanted_ = 0; // revision to release once the worker is free
  std::uint64_t held_revision_ = 0;  // latest revision we wrote and believe we hold
  Token win_revision_ = 0;
  TimePoint campaign_started_{};
  TimePoint last_holder_seen_{}; // last time another member's name was seen in the key
  bool holder_seen_ = false;
  TimePoint start_after_{};
  TimePoint next_campaign_ = TimePoint::max();
  TimePoint next_renewal_ = TimePoint::max();
  TimePoint expiry_attempt_ = TimePoint::max();
  TimePoint herd_attempt_ = TimePoint::max(); // a vacancy attempt after the herd wait
  bool herd_wait_done_ = false;
  int vacancy_losses_ = 0; // consecutive lost races for a vacancy
  TimePoint retry_at_ = TimePoint::max();
  TimePoint guard_until_ = TimePoint::max();
  TimePoint term_end_ = TimePoint::max();
  TimePoint next_health_ = TimePoint::max();
  TimePoint cooldown_until_{};
  TimePoint next_probe_{};
  TimePoint last_watch_event_{};
  TimePoint watch_deadline_ = TimePoint::max();
  std::uint64_t watch_revision_ = 0;
  std::uint64_t watch_expected_revision_ = 0;
  Duration expiry_retry_{};
  int failed_campaigns_ = 0;
  int chained_attempts_ = 0;
  bool healthy_ = true;
  bool leader_reported_ = false;
  std::optional<std::string> reported_leader_;
  std::unique_ptr<detail::IoWorker> io_;
  std::unique_ptr<detail::WatchHandle> watch_;
};

} // namespace kvelect
