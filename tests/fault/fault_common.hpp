// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the fault-injection tests: buckets, a raw watch of the election key that
// writes every change into the History (so a failure report shows what the server saw), and
// cluster look-ups (which node a client is connected to, which node leads a stream).
#pragma once

#include "history.hpp"

#include <kvelect/kvelect.hpp>

#include "fault_proxy.hpp"
#include "nats_server.hpp"

#include <nats/nats.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace kvelect::testing::fault {

using namespace std::chrono_literals;

// A bucket name unique in this process, from the current test's name.
std::string bucket_name(std::string_view prefix = "F");

Connection connect(const std::vector<std::string>& urls,
                   std::chrono::milliseconds timeout = std::chrono::seconds(2));

Bucket make_bucket(const Connection& connection, std::chrono::milliseconds ttl,
                   const std::string& name, Storage storage = Storage::memory, int replicas = 1);

// Polls `condition` every 5 ms until it holds or `timeout` passes.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A member spec for tests/member (one server URL, request timeout 1 s).
MemberSpec member_spec(const std::string& url, const std::string& bucket, const std::string& name,
                       const std::string& key = "job");
// A member spec for kvelect-fault-member: several URLs (it connects to the first), and the
// request timeout of kvelect::Connection's default (2 s) unless told otherwise.
MemberSpec fault_member_spec(const std::vector<std::string>& urls, const std::string& bucket,
                             const std::string& name, int timeout_ms = 2000);

// Deletes every consumer of a stream (e.g. the watchers of a KV bucket "B": stream "KV_B").
// Returns how many it deleted.
int delete_consumers(const Connection& connection, const std::string& stream);

// One key's changes as the test itself sees them, through a cnats watcher on its own thread.
// Each entry is also noted in the History as member "kv", kind "put"/"del"/"purge", detail
// "<value> rev <n>".
class KeyWatcher {
public:
  struct Entry {
    std::int64_t ns = 0; // when the test saw it (CLOCK_MONOTONIC)
    // When the server stored it (kvEntry_Created, the server's wall clock, converted to
    // CLOCK_MONOTONIC: the server runs on this machine). The value expires TTL after this.
    std::int64_t stamp_ns = 0;
    std::uint64_t revision = 0;
    std::string op; // put, del, purge
    std::string value;
  };
  KeyWatcher(kvStore* bucket, const std::string& key, History& history);
  ~KeyWatcher();
  KeyWatcher(const KeyWatcher&) = delete;
  KeyWatcher& operator=(const KeyWatcher&) = delete;

  // Waits for the first entry after revision `after` that satisfies `match`.
  std::optional<Entry> wait(const std::function<bool(const Entry&)>& match,
                            std::chrono::milliseconds timeout);
  std::vector<Entry> entries() const;

private:
  void pump(std::stop_token stop);
  kvStore* bucket_;
  std::string key_;
  History& history_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Entry> entries_;
  std::jthread thread_;
};

// True if `member`'s process was starved of CPU (runnable, not running) for 50 ms or more at a
// time within [from_ns, to_ns]: timing checks on it are then meaningless.
bool starved(const History& history, const std::string& member, std::int64_t from_ns,
             std::int64_t to_ns);

// Index of the cluster node that holds a client connection named `client_name` (from /connz),
// or -1.
int node_with_client(NatsCluster& cluster, const std::string& client_name);

// server_name of the stream's leader (js_GetStreamInfo), or "" if it cannot be read now.
std::string stream_leader(const Connection& connection, const std::string& stream);

// Index of the node with that server_name, or -1.
int node_index(NatsCluster& cluster, const std::string& server_name);

} // namespace kvelect::testing::fault

// Skips (or fails under CI) without nats-server, and skips when the member binary is unknown.
#define FAULT_REQUIRE_ENVIRONMENT()                                                                \
  do {                                                                                             \
    KVELECT_REQUIRE_NATS_SERVER();                                                                 \
    if (::kvelect::testing::fault::default_member_binary().empty()) {                              \
      if (::kvelect::testing::ci_environment()) {                                                  \
        FAIL() << "KVELECT_TEST_MEMBER is not set, and CI is set";                                 \
      } else {                                                                                     \
        GTEST_SKIP() << "KVELECT_TEST_MEMBER is not set (run through meson test)";                 \
      }                                                                                            \
    }                                                                                              \
  } while (false)
