// SPDX-License-Identifier: Apache-2.0
// The election protocol as a deterministic state machine: no threads, no locks, no clock and no
// I/O of its own. A driver (lib/election.cpp: a thread of its own or an Executor; the simulator in
// tests/sim) feeds it events, each with the current time, and carries out what it asks for, in
// order: requests to send, a watch to recreate, user callbacks to call. Every protocol decision
// lives here; docs/protocol.md gives the reason for each timing rule.
#pragma once

#include "../kv.hpp"

#include <kvelect/error.hpp>
#include <kvelect/log.hpp>
#include <kvelect/state.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <variant>

namespace kvelect::core {

// The protocol's time: a point on the driver's monotonic clock (CLOCK_BOOTTIME in the library,
// simulated time in tests/sim). The core never reads a clock; every event carries `now`.
struct ProtocolClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<ProtocolClock>;
  static constexpr bool is_steady = true;
};
using Duration = ProtocolClock::duration;
using Time = ProtocolClock::time_point;
inline constexpr Time kNever = Time::max();

using detail::Entry;
using detail::Op;
using detail::Outcome;
using detail::ReadResult;
using detail::WriteResult;

// What a member knows of its bucket, read from the stream's configuration: MaxAge and the
// stream's creation time, which tells one incarnation of a bucket from the next.
struct BucketFacts {
  Duration ttl{};
  std::int64_t created_ns = 0; // the stream's creation time (server wall clock), as an identity
};

// The answer to a bucket read (the stream's info).
struct BucketResult {
  Outcome outcome = Outcome::ok; // ok, retryable (cannot tell now), fatal (the bucket is gone)
  BucketFacts facts;             // when ok
  Errc code = Errc::ok;
  std::string message;
};

// Everything the core needs to know that does not change during a run.
struct Params {
  std::string name;          // this member's name; empty for an observer
  std::string key;           // the election key, for messages
  bool observe_only = false; // a passive member: it watches and reports, never writes
  BucketFacts bucket;        // as read when the election was made
  // The candidate campaign interval before any backoff (Choria: 0.75 × TTL). Recomputed by the
  // core if the bucket's TTL changes.
  Duration campaign_interval{};
  std::function<Duration(int failed_campaigns)> backoff; // empty: the campaign interval
  Duration startup_splay{};
  bool release_on_stop = true;
  Duration term_limit{};      // zero: none
  bool health_check = false;  // the driver has a health check to run when asked
  Duration health_interval{}; // how often to ask
  std::uint64_t seed = 0;     // random splay and herd waits
};

// Requests the driver sends. At most one is in flight at a time; its result comes back with the
// same id. A result with an id the core no longer waits for is ignored.
struct SendWrite {
  std::uint64_t id = 0;
  std::string value;
  std::uint64_t expected = 0; // the revision the key must have (0: no live value)
};
struct SendRead {
  std::uint64_t id = 0;
};
struct SendBucketRead {
  std::uint64_t id = 0;
};
// Drop the key's watcher and make a new one (a watcher can go silent after a reconnect,
// nats.c#988).
struct RecreateWatch {};

// User callbacks to call, in order, with no lock held.
struct CallOnWon {
  std::uint64_t token = 0;
};
struct CallOnLost {
  std::string reason;
};
struct CallOnNewLeader {
  std::optional<std::string> leader;
};
struct CallOnCampaign {
  State state = State::Candidate;
};
struct CallOnError {
  Error error;
};
struct CallHealthCheck {}; // run the health check; feed its answer to on_health()
struct DebugLine {
  std::string line;
  LogLevel level = LogLevel::debug;
};

using Output =
    std::variant<SendWrite, SendRead, SendBucketRead, RecreateWatch, CallOnWon, CallOnLost,
                 CallOnNewLeader, CallOnCampaign, CallOnError, CallHealthCheck, DebugLine>;

// What API callers may read (the driver publishes it under its lock after every event).
struct PublicView {
  State state = State::Unknown;
  bool leading = false;    // between OnWon and OnLost (is_leader() also checks lease_end)
  Time lease_end{};        // while leading: when the lease ends
  std::uint64_t token = 0; // while leading
  std::optional<std::string> leader;
  std::uint64_t leaderships = 0; // leaderships begun; a new one starts a new stop token
  Duration ttl{};
  Duration campaign_interval{};
};

// Counters for Stats (include/kvelect/election.hpp).
struct Counters {
  std::uint64_t candidate_campaigns = 0;
  std::uint64_t leader_campaigns = 0;
  std::uint64_t wins = 0;
  std::uint64_t losses = 0;
  std::uint64_t create_attempts = 0;
  std::uint64_t failed_requests = 0;
  Duration last_acquire_time{};
  Duration last_renewal_latency{};
  Duration max_renewal_latency{};
  std::string last_error;
};

class Protocol {
public:
  explicit Protocol(Params params);

  // Lifecycle. start() begins a run (it may follow a finished one); stop() leaves: OnLost if
  // leading, then the release, then finished(). Both are idempotent within a run.
  void start(Time now);
  void stop(Time now);
  // Stands down if leading (OnLost, release, a cool-down of one TTL). Returns whether it led.
  bool resign(Time now);

  // Events.
  void on_timer(Time now); // the time from next_wake() has come (early calls are harmless)
  void on_write(Time now, std::uint64_t id, const WriteResult& result);
  void on_read(Time now, std::uint64_t id, const ReadResult& result);
  void on_bucket(Time now, std::uint64_t id, const BucketResult& result);
  void on_watch_entry(Time now, const Entry& entry);
  void on_watch_ready(Time now); // the watch has delivered the key's current value, if any
  void on_watch_failed(Time now, const std::string& message);
  void on_health(Time now, bool healthy);

  // What to do. Outputs come out in the order they were decided.
  [[nodiscard]] bool has_output() const noexcept { return !out_.empty(); }
  Output take_output();
  // When the core next needs on_timer() (kNever: only an event can move it on).
  [[nodiscard]] Time next_wake() const;
  // The run is over: stopped (and the release answered or given up) or a fatal error.
  [[nodiscard]] bool finished() const noexcept { return phase_ == Phase::finished; }
  [[nodiscard]] bool running() const noexcept {
    return phase_ == Phase::running || phase_ == Phase::stopping;
  }
  [[nodiscard]] const PublicView& view() const noexcept { return view_; }
  [[nodiscard]] const Counters& counters() const noexcept { return counters_; }
  [[nodiscard]] Duration ttl() const noexcept { return ttl_; }
  [[nodiscard]] const BucketFacts& bucket() const noexcept { return bucket_; }

private:
  // What the member believes the key holds (docs/protocol.md, "Key states").
  struct KeyView {
    enum class Kind {
      unknown,
      absent,
      held,
      tombstone,
      released,
      evicting,
      expired
    } kind = Kind::unknown;
    std::string value;
    std::uint64_t revision = 0;
    Time observed_at{};
    bool inferred = false; // a tombstone inferred from a lost race, not an entry seen
  };
  // Why a vacancy is free, which decides whether a win must wait out a previous holder's lease
  // (docs/protocol.md, "Takeover guard").
  enum class Vacancy { clean, guarded, reclaim };

  // Roles. Each role's timers live in its own state, so a change of role cannot leave one
  // armed.
  struct Idle {}; // an observer, or between runs
  struct Candidate {
    Time next_campaign = kNever;
    Time expiry_attempt = kNever;
    Time herd_attempt = kNever;
    Time retry_at = kNever;
    Duration expiry_retry{};
    bool herd_wait_done = false;
    bool attempt_wanted = false; // an attempt waits for the request in flight
  };
  // Won the key; waiting for the bucket's TTL to be confirmed and for the takeover guard.
  struct Pending {
    std::uint64_t revision = 0; // our latest revision of the key
    std::uint64_t token = 0;    // the winning revision
    Time lease_end{};
    Time guard_until{};
    Time confirm_at{};          // when to (re)send the bucket read; kNever: sent or done
    bool ttl_confirmed = false; // a bucket read after the winning write saw our TTL
    bool clean = false;         // won over a clean release: no lease of another can run
    Time next_renewal = kNever;
    Time retry_at = kNever;
    bool renew_wanted = false;
    // Won at or below a revision already seen of the key (the server lost acknowledged writes):
    // no token is announced until our revision has passed this one ("Two histories").
    std::uint64_t token_floor = 0;
    // A win that waits out a guard (one it had at its reply, or one raised later) is announced
    // only after a renewal sent once the guard had passed has succeeded: our value may have been
    // overwritten meanwhile without our watch telling ("Takeover guard").
    Time won_sent{};            // when the winning write was sent
    Time renewed_sent = kNever; // the send time of our last successful renewal
  };
  struct Leader {
    std::uint64_t revision = 0;
    std::uint64_t token = 0;
    Time lease_end{};
    Time next_renewal = kNever;
    Time retry_at = kNever;
    Time term_end = kNever;
    Time next_bucket_check = kNever;
    bool renew_wanted = false;
  };
  using Role = std::variant<Idle, Candidate, Pending, Leader>;

  // The request in flight.
  enum class Purpose { acquire, renew, release, read, bucket };
  struct InFlight {
    std::uint64_t id = 0;
    Purpose purpose = Purpose::acquire;
    Time sent{};
    std::uint64_t expected = 0;
    Vacancy vacancy = Vacancy::guarded;
    bool after_unknown = false;        // a read that follows a write of unknown outcome
    bool verify_hold = false;          // a read that checks our hold survived a new bucket
    Purpose origin = Purpose::acquire; // for reads: the write they follow up
  };

  enum class Phase { idle, running, stopping, finished };

  // Events.
  void handle_acquire(Time now, const InFlight& request, const WriteResult& result);
  void handle_renew(Time now, const InFlight& request, const WriteResult& result);
  void handle_release(Time now, const InFlight& request, const WriteResult& result);
  void handle_read(Time now, const InFlight& request, const ReadResult& result);
  void observe(Time now, const Entry& entry, bool from_watch, bool inferred = false);
  // Whether `entry` says something else than what we know of the same revision: the server
  // gave that revision to two different writes ("Two histories").
  [[nodiscard]] bool contradicts_key(const Entry& entry) const;
  [[nodiscard]] bool contradicts_our_write(std::uint64_t revision) const;
  // A write result at a revision the key had with another value: forget the key, take nothing
  // from the result. Returns whether it did.
  bool refuse_contradicting_write(Time now, std::uint64_t revision, const char* what);
  void check_lease(Time now);
  void run_timers(Time now);
  void after_event(Time now);

  // Decisions.
  void maybe_attempt(Time now, const char* reason);
  void renew(Time now);
  void become_leader(Time now, Pending won);
  void remember_lease_end() noexcept; // of the role we are leaving (held_lease_end_)
  void become_candidate(Time now);    // a fresh Candidate role: no timer of the old role survives
  void lose(Time now, const std::string& reason);
  bool step_down(Time now, const std::string& reason);
  void release(Time now, std::uint64_t revision);
  void pump_pending(Time now);
  void fail(const Error& error);
  void report(Outcome outcome, Errc code, const std::string& message, const char* what);
  void set_leader(std::optional<std::string> leader);
  void apply_bucket_facts(Time now, const BucketFacts& facts);
  void apply_ttl(Time now, Duration ttl);
  void learn_new_bucket(Time now);
  void forget_key(Time now, const char* why);
  [[nodiscard]] Time win_guard() const noexcept {
    return std::max({guard_until_, bucket_guard_until_, reclaim_guard_until_});
  }
  [[nodiscard]] bool can_campaign(Time now) const noexcept;
  [[nodiscard]] bool writing() const noexcept;
  void expect_watch_to_reach(std::uint64_t revision, Time now);
  Duration candidate_wait() const;
  void recompute_timings();

  // Requests.
  std::uint64_t send_write(Time now, Purpose purpose, std::string value, std::uint64_t expected,
                           Vacancy vacancy);
  void send_read(Time now, Purpose origin, std::uint64_t hint, Vacancy vacancy, bool after_unknown);
  void send_bucket_read(Time now);

  // Outputs.
  template <typename T>
  void emit(T output) {
    out_.emplace_back(std::move(output));
  }
  template <typename... Args>
  void debugf(const char* format, const Args&... args);
  template <typename... Args>
  void logf(LogLevel level, const char* format, const Args&... args);
  void publish();

  Candidate* candidate() noexcept { return std::get_if<Candidate>(&role_); }
  Pending* pending() noexcept { return std::get_if<Pending>(&role_); }
  static bool must_renew_before_announcing(const Pending& p) noexcept {
    return p.guard_until > p.won_sent &&
           (p.renewed_sent == kNever || p.renewed_sent < p.guard_until);
  }
  Leader* leader() noexcept { return std::get_if<Leader>(&role_); }
  [[nodiscard]] bool holds_key() const noexcept {
    return std::holds_alternative<Pending>(role_) || std::holds_alternative<Leader>(role_);
  }
  std::uint64_t held_revision() const noexcept;
  std::uint64_t random_below(std::uint64_t bound);

  // Fixed for the election.
  Params params_;
  std::mt19937_64 rng_;

  // Timings, from the bucket's TTL (recomputed if it changes).
  Duration ttl_{};
  Duration lease_margin_{};      // a leader ends its lease this long before the key can expire
  Duration renew_period_{};      // a leader renews this often
  Duration campaign_interval_{}; // a candidate campaigns this often (before backoff)
  BucketFacts bucket_;

  // The run.
  Phase phase_ = Phase::idle;
  Role role_ = Idle{};
  KeyView key_;
  std::optional<InFlight> in_flight_;
  std::uint64_t next_id_ = 1;
  std::uint64_t release_wanted_ = 0; // a revision to release once the request in flight is done
  bool release_sent_ = false;        // stopping: the final release has gone out
  Time give_up_ = kNever;            // stopping: stop waiting for the release's reply
  Time start_after_{};               // the start-up splay
  Time cooldown_until_{};            // after a resign or a lost renewal: let others go first
  Time vacancy_seen_{};              // when the last guarded vacancy was first seen
  // The member chain: when we first saw the key's last write that named a member, and whether
  // we have seen every revision of the bucket since, all on this key ("Takeover guard").
  Time chain_seen_{};
  std::uint64_t chain_last_revision_ = 0;
  bool chain_unbroken_ = false;
  Time guard_until_{}; // no win is announced before this ("Takeover guard")
  // After we learned that the bucket was made anew: no win is announced before this, not even
  // over a clean release, whose writer may have started after the re-creation and known nothing
  // of the old bucket's leader ("Bucket changes").
  Time bucket_guard_until_{};
  // A reclaim after a late renewal: a member that won that revision in another history may lead
  // until then ("Two histories"). No clean release ends it: it did not come from that member.
  Time reclaim_guard_until_{};
  // The lease end of our last leadership or pending win, kept when we stand down: a renewal
  // acknowledged after it may come from another history, and is never released ("Release").
  Time held_lease_end_{};
  // After we learned that the bucket's TTL was lowered: an expiry marker does not end the guard
  // before this (the old TTL from then), since it proves an age of the new TTL only and a lease
  // may count the old one ("Expiry markers", "A changed TTL").
  Time ttl_lowered_guard_until_{};
  Time bucket_changed_at_ = kNever; // when we last learned of a new bucket
  Time observer_read_at_ = kNever;  // an observer reads the key when its value should expire
  Duration observer_retry_{};
  Time next_health_ = kNever;
  Time next_probe_{};
  Time next_bucket_read_ = kNever;
  bool bucket_read_wanted_ = false;
  bool healthy_ = true;
  int failed_campaigns_ = 0;
  int vacancy_losses_ = 0;
  int chained_attempts_ = 0;
  Time campaign_started_{};
  std::uint64_t own_revision_ = 0; // the last revision this member is known to have written
  // The highest revision of the key seen in this bucket, from any source; unlike what we know of
  // the key, kept when two histories make us forget the key ("Two histories").
  std::uint64_t highest_revision_ = 0;
  // The watch.
  Time last_watch_event_{};
  Time watch_deadline_ = kNever;
  std::uint64_t watch_revision_ = 0;
  std::uint64_t watch_expected_revision_ = 0;
  // Reporting.
  bool leader_reported_ = false;
  std::optional<std::string> reported_leader_;

  Time mutant_stale_deadline_ = kNever; // only the simulator's mutant 3 uses it (rules.hpp)
  PublicView view_;
  Counters counters_;
  std::deque<Output> out_;
};

} // namespace kvelect::core
