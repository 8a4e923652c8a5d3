// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief kvelect::Election: one member of a leader election held in a NATS JetStream KV bucket.
///
/// @code
/// kvelect::Election election("node-1", "scheduler", bucket,
///                            kvelect::OnWon([] { start_work(); }),
///                            kvelect::OnLost([] { stop_work(); }));
/// election.start();
/// @endcode
#pragma once

#include <kvelect/error.hpp>
#include <kvelect/export.hpp>
#include <kvelect/options.hpp>
#include <kvelect/state.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

// cnats' bucket handle; forward-declared so that this header does not include nats.h.
struct __kvStore;
typedef struct __kvStore kvStore; // NOLINT(modernize-use-using): must match nats.h

namespace kvelect {

/// A snapshot of an election's counters (the figures Choria exports, and more).
struct Stats {
  State state = State::Unknown;                      ///< the state when the snapshot was taken
  bool is_leader = false;                            ///< leading, with a running lease
  std::uint64_t candidate_campaigns = 0;             ///< campaigns while a candidate
  std::uint64_t leader_campaigns = 0;                ///< renewals while leader
  std::uint64_t wins = 0;                            ///< OnWon calls
  std::uint64_t losses = 0;                          ///< OnLost calls
  std::uint64_t create_attempts = 0;                 ///< writes that tried to take a vacant key
  std::uint64_t failed_requests = 0;                 ///< KV requests that failed (not lost races)
  std::chrono::milliseconds campaign_interval{0};    ///< 0.75 × TTL (before any backoff)
  std::chrono::microseconds last_acquire_time{0};    ///< campaign start → OnWon, last win
  std::chrono::microseconds last_renewal_latency{0}; ///< send → result, the last renewal
  std::chrono::microseconds max_renewal_latency{0};  ///< the slowest renewal so far
  std::string last_error;                            ///< empty when none
};

/// The interface shared by Election and NoopElection, for code that should not care which it
/// has (Trillian's Election interface). All methods are thread-safe.
class KVELECT_API LeaderElection {
public:
  virtual ~LeaderElection() = default;
  /// Starts campaigning on a thread of the election's own. Error(already_running) if running.
  virtual void start() = 0;
  /// Leaves the election: fires OnLost if leading, releases the key (unless configured not to),
  /// and joins the campaign thread. Idempotent; safe from a callback (then it cannot join its
  /// own thread: the thread ends when the callback returns).
  virtual void stop() noexcept = 0;
  /// True while this member leads with a running lease: from the moment its win is decided (just
  /// before OnWon runs) until its lease ends or it stands down (just before OnLost runs). It
  /// turns false at the lease end even while a callback blocks (docs/protocol.md, "Callbacks
  /// and the lease").
  virtual bool is_leader() const = 0;
  /// Unknown (not running), Candidate, or Leader (only while the lease runs).
  virtual State state() const = 0;
  /// The fencing token of the current leadership; nullopt while not leading.
  virtual std::optional<Token> token() const = 0;
  /// The leader as last observed (cheap, local); nullopt when no member leads.
  virtual std::optional<std::string> leader() const = 0;
  /// Blocks until this member leads or `timeout` passes; true if leading.
  virtual bool await(std::chrono::milliseconds timeout) = 0;
  /// Blocks until this member leads or `stop` is requested; true if leading.
  virtual bool await(std::stop_token stop) = 0;
  /// A token that is stop-requested the moment this leadership ends. Taken while not leading,
  /// it is already stopped.
  virtual std::stop_token leadership() const = 0;
  /// Stands down if leading (OnLost, then a safe release of the key). Returns whether it led.
  virtual bool resign() = 0;
};

/// A member of one election. Non-copyable, non-movable (callbacks capture its address).
class KVELECT_API Election final : public LeaderElection {
public:
  /// `name` is this member's identity, stored as the key's value (as Choria does); `key` names
  /// the election inside `bucket`. The bucket's TTL is read here. Throws kvelect::Error on bad
  /// input (see docs/errors.md).
  Election(std::string name, std::string key, kvStore* bucket,
           const std::vector<Option>& options = {});

  /// As above, with the options as arguments: `Election(name, key, bucket, OnWon(...), ...)`.
  template <typename... Options>
    requires(sizeof...(Options) > 0 && (std::is_convertible_v<Options, Option> && ...))
  Election(std::string name, std::string key, kvStore* bucket, Options&&... options)
      : Election(std::move(name), std::move(key), bucket,
                 std::vector<Option>{Option(std::forward<Options>(options))...}) {}

  ~Election() override;
  Election(const Election&) = delete;
  Election& operator=(const Election&) = delete;
  Election(Election&&) = delete;
  Election& operator=(Election&&) = delete;

  void start() override;
  void stop() noexcept override;
  /// Campaigns on the calling thread until `stop` is requested or stop() is called (Choria's
  /// blocking Start(ctx)). Error(already_running) if running.
  void run(std::stop_token stop);

  bool is_leader() const override;
  State state() const override;
  std::optional<Token> token() const override;
  std::optional<std::string> leader() const override;
  /// Reads the leader from the server now (one request). Error on a failed request.
  std::optional<std::string> read_leader() const;
  bool await(std::chrono::milliseconds timeout) override;
  bool await(std::stop_token stop) override;
  std::stop_token leadership() const override;
  bool resign() override;

  /// A snapshot of the counters.
  Stats stats() const;
  /// This member's name.
  const std::string& name() const noexcept;
  /// The election key.
  const std::string& key() const noexcept;
  /// The bucket's TTL, read at construction.
  std::chrono::milliseconds ttl() const noexcept;
  /// The candidate campaign interval without backoff (0.75 × TTL, clamped).
  std::chrono::milliseconds campaign_interval() const noexcept;

  class Impl;

private:
  std::shared_ptr<Impl> impl_;
};

/// A passive member (Doozer's non-participating mode): it watches an election and reports its
/// leader, never campaigns. Uses the same watch code as Election.
class KVELECT_API Observer final {
public:
  /// Watches `key` in `bucket`. Useful options: OnNewLeader, OnError, WithDebug.
  Observer(std::string key, kvStore* bucket, std::vector<Option> options = {});
  Observer(Observer&&) = delete;
  Observer& operator=(Observer&&) = delete;
  /// As above, with the options as arguments.
  template <typename... Options>
    requires(sizeof...(Options) > 0 && (std::is_convertible_v<Options, Option> && ...))
  Observer(std::string key, kvStore* bucket, Options&&... options)
      : Observer(std::move(key), bucket,
                 std::vector<Option>{Option(std::forward<Options>(options))...}) {}
  ~Observer();
  Observer(const Observer&) = delete;
  Observer& operator=(const Observer&) = delete;

  /// Starts watching on a thread of its own. Error(already_running) if running.
  void start();
  /// Stops watching and joins the thread. Idempotent.
  void stop() noexcept;
  /// The leader as last observed; nullopt when no member leads.
  std::optional<std::string> leader() const;
  /// Reads the leader from the server now.
  std::optional<std::string> read_leader() const;
  /// Forces a new election (see kvelect::evict). Returns the evicted leader, if there was one.
  std::optional<std::string> evict();

private:
  std::shared_ptr<Election::Impl> impl_;
};

/// Always the leader once started (Trillian's NoopElection): for single-node deployments and
/// tests of code written against LeaderElection. OnWon fires in start(), OnLost in stop().
class KVELECT_API NoopElection final : public LeaderElection {
public:
  /// `name` is what leader() reports; OnWon, OnLost and OnNewLeader are honoured.
  explicit NoopElection(std::string name = "noop", const std::vector<Option>& options = {});
  ~NoopElection() override;
  NoopElection(const NoopElection&) = delete;
  NoopElection& operator=(const NoopElection&) = delete;
  NoopElection(NoopElection&&) = delete;
  NoopElection& operator=(NoopElection&&) = delete;
  void start() override;
  void stop() noexcept override;
  bool is_leader() const override;
  State state() const override;
  std::optional<Token> token() const override;
  std::optional<std::string> leader() const override;
  bool await(std::chrono::milliseconds timeout) override;
  bool await(std::stop_token stop) override;
  std::stop_token leadership() const override;
  bool resign() override;

private:
  struct State_;
  std::unique_ptr<State_> s_;
};

/// Reads the current leader of `key` from the server; nullopt when no member leads.
KVELECT_API std::optional<std::string> read_leader(kvStore* bucket, std::string_view key);

/// Forces a new election (Choria's evict, Doozer's ForceMasterElection): marks the current
/// leader's key for eviction with a revision-checked write. A live leader stands down at once
/// and releases the key; if it is gone, the others wait out its lease first. Returns the evicted
/// leader, or nullopt if no member led.
KVELECT_API std::optional<std::string> evict(kvStore* bucket, std::string_view key);

/// True if `key` is a key the KV bucket accepts: `[-/_=.a-zA-Z0-9]+`, no leading, trailing or
/// doubled '.'.
KVELECT_API bool valid_key(std::string_view key) noexcept;

} // namespace kvelect
