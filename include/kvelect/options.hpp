// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Option builders for kvelect::Election (Choria's OnWon, OnLost, OnCampaign, WithBackoff,
/// WithDebug, plus kvelect's own). Pass any number of them, in any order, none required.
#pragma once

#include <kvelect/backoff.hpp>
#include <kvelect/error.hpp>
#include <kvelect/export.hpp>
#include <kvelect/log.hpp>
#include <kvelect/state.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

struct __jsCtx;
typedef struct __jsCtx jsCtx; // NOLINT(modernize-use-using): must match nats.h

namespace kvelect {

namespace detail {
class ExecutorState;
}

/// The fencing token: the KV revision of the write that won leadership. It only grows across
/// leaders of one bucket; see docs/fencing.md.
using Token = std::uint64_t;

/// Everything an Election can be configured with. Filled by the option builders below; the
/// defaults are documented on each field.
struct Config {
  std::function<void(Token)> on_won;                                  ///< became leader
  std::function<void()> on_lost;                                      ///< stopped being leader
  std::function<void(State)> on_campaign;                             ///< each campaign or renewal
  std::function<void(std::optional<std::string_view>)> on_new_leader; ///< nullopt: no leader
  std::function<void(const Error&)> on_error;          ///< request failures, fatal errors
  std::function<void(std::string_view)> debug;         ///< debug log lines
  std::function<void(LogLevel, std::string_view)> log; ///< log lines with their severity
  std::shared_ptr<const Backoff> backoff;              ///< default: fixed interval
  bool skip_validation = false; ///< lift the 5 s..1 h TTL limits and interval floors
  /// Upper bound of the random delay before the first campaign. Default 250 ms.
  std::chrono::milliseconds startup_splay{250};
  /// stop() releases the key so a successor takes over at once (default). false keeps Choria's
  /// behaviour: the key is left to expire after one TTL.
  bool release_on_stop = true;
  /// The leader resigns after holding leadership this long; 0 = no limit.
  std::chrono::milliseconds term_limit{0};
  std::function<bool()> health_check; ///< unhealthy: a leader resigns, a candidate waits
  std::chrono::milliseconds health_interval{1000}; ///< how often health_check runs
  /// Passive member (kvelect::Observer): watches and reports, never writes.
  bool observe_only = false;
  /// Set by WithJetStream: the JetStream context of the bucket's connection. Null: expiry
  /// markers are not recognised.
  jsCtx* jetstream = nullptr;
  /// Set by WithExecutor (include/kvelect/executor.hpp): run on a shared executor. Null: the
  /// election has threads of its own.
  std::shared_ptr<detail::ExecutorState> executor;
};

/// One option. Build them with the functions below.
struct Option {
  std::function<void(Config&)> apply; ///< sets its part of a Config
};

/// Called on the campaign thread when this member becomes leader.
KVELECT_API Option OnWon(std::function<void()> callback);
/// As OnWon, and receives the fencing token (the revision of the winning write).
KVELECT_API Option OnWon(std::function<void(Token)> callback);
/// Called on the campaign thread when this member stops being leader (loss, resign, stop, lease
/// end).
KVELECT_API Option OnLost(std::function<void()> callback);
/// Called on each campaign: every campaign interval for a candidate, every renewal for the leader.
KVELECT_API Option OnCampaign(std::function<void(State)> callback);
/// Called on every observed change of leader, the first observation included; nullopt means
/// that no member leads.
KVELECT_API Option OnNewLeader(std::function<void(std::optional<std::string_view>)> callback);
/// Called with each error: `error.fatal()` tells a stopped loop from one that retries.
KVELECT_API Option OnError(std::function<void(const Error&)> callback);
/// Candidate campaign intervals from a Backoff policy instead of the fixed 0.75 × TTL.
KVELECT_API Option WithBackoff(std::shared_ptr<const Backoff> policy);
/// Debug log lines, one per call, no trailing newline.
KVELECT_API Option WithDebug(std::function<void(std::string_view)> sink);
/// Every log line with its severity (LogLevel): the lines WithDebug receives, and the same
/// thread and rules (one line per call, no trailing newline, never under a library lock). Both
/// may be given; WithDebug stays for Choria parity.
KVELECT_API Option WithLog(std::function<void(LogLevel, std::string_view)> sink);
/// Lifts the TTL limits (5 s ≤ TTL ≤ 1 h) and the interval floors. For tests, and operators who
/// know why.
KVELECT_API Option SkipValidation();
/// Upper bound of the random start-up delay (default 250 ms; 0 disables it).
KVELECT_API Option WithStartupSplay(std::chrono::milliseconds max_splay);
/// Whether stop() releases the key (default true) or leaves it to expire (Choria's behaviour).
KVELECT_API Option WithReleaseOnStop(bool release);
/// The leader resigns after holding leadership for `limit`; others get the first chance to win.
KVELECT_API Option WithTermLimit(std::chrono::milliseconds limit);
/// The JetStream context of the connection the bucket was opened on (Connection::jetstream()),
/// which must outlive the election. With it a member recognises the server's expiry markers
/// (BucketConfig::expiry_markers, nats-server 2.11): it reads an empty value's headers to tell a
/// marker from an operator's empty put (cnats 3.4's kvEntry has none) and, on a marker, takes
/// over at once. Without it a marker is taken for an unknown holder's value: safe, but a
/// successor waits a TTL. It also reads the bucket's stream info (TTL and creation time) instead
/// of kvStore_Status, so that a bucket deleted and made anew is recognised within a renewal
/// period. See docs/protocol.md, "Expiry markers" and "Bucket changes".
KVELECT_API Option WithJetStream(jsCtx* jetstream);
/// `healthy()` runs on the campaign thread every `interval`: an unhealthy leader resigns, an
/// unhealthy candidate does not campaign.
KVELECT_API Option WithHealthCheck(std::function<bool()> healthy,
                                   std::chrono::milliseconds interval = std::chrono::seconds(1));

} // namespace kvelect
