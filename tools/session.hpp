// SPDX-License-Identifier: Apache-2.0
// One campaigning member for the commands run, file and campaign: the connection, the bucket
// and a kvelect::Election whose callbacks only post events to the main thread's EventLoop.
#pragma once

#include "cli_common.hpp"
#include "event_loop.hpp"

#include <kvelect/election.hpp>
#include <kvelect/nats.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

namespace kvelect::cli {

/// Called on the campaign thread with each event before it is posted to the loop, so that its
/// line is out before the member goes on: OnLost's line comes before the key is released, so a
/// reader of both members' output never sees the successor's "won" first. Must be quick.
/// The same signature serves as `settle`: called on the campaign thread after the event was
/// posted, it may wait (bounded) for the main thread to act on it before the member goes on,
/// e.g. for `run --terminate` to stop its command before a lost leadership's key is released.
using Announcer = std::function<void(const ElectionEvent&)>;

class ElectionSession {
public:
  /// Connects, opens the bucket and creates the election (not started); the library's lines go
  /// to `log` (election_options()). Throws Failure or kvelect::Error with a message naming the
  /// problem.
  ElectionSession(const CommonOptions& common, const ElectionFlags& flags, const Log& log,
                  std::string election, std::string member, EventLoop& loop,
                  Announcer announce = {}, Announcer settle = {});
  ~ElectionSession();
  ElectionSession(const ElectionSession&) = delete;
  ElectionSession& operator=(const ElectionSession&) = delete;

  Election& election() { return *election_; }
  const std::string& member() const { return member_; }
  const std::string& key() const { return key_; }
  const std::string& bucket_name() const { return bucket_name_; }

  /// True for an error after which the campaign loop has stopped.
  static bool ends_campaign(const Error& error);

private:
  std::string member_;
  std::string key_;
  std::string bucket_name_;
  Connection connection_;
  Bucket bucket_;
  std::atomic<Election*> self_{nullptr};
  std::unique_ptr<Election> election_;
};

} // namespace kvelect::cli
