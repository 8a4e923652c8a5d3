// SPDX-License-Identifier: Apache-2.0
// Watches of election keys: a thread that pumps a cnats kvWatcher (cnats 3.4's watchers are
// synchronous, kvWatcher_Next, so each needs a thread to wait) and hands each entry on. KeyWatch
// watches one key for one election; BucketWatch watches a whole bucket for an Executor.
#pragma once

#include "kv.hpp"
#include "markers.hpp"

struct __kvWatcher;
typedef struct __kvWatcher kvWatcher; // NOLINT(modernize-use-using)
struct __natsConnection;
typedef struct __natsConnection natsConnection; // NOLINT(modernize-use-using)

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace kvelect::detail {

struct WatchEvent {
  enum class Kind {
    entry,        // one entry of the key's history, in order
    initial_done, // the current value (if any) has been delivered; later entries are live
    failed,       // the watch broke; it is being recreated
  };
  Kind kind = Kind::entry;
  Entry entry;
  std::string message;
};

using WatchSink = std::function<void(WatchEvent)>;

// What an election holds of its watch: events arrive through the sink it gave, until the handle
// is destroyed (no event is delivered after its destructor returns).
class WatchHandle {
public:
  WatchHandle() = default;
  virtual ~WatchHandle() = default;
  WatchHandle(const WatchHandle&) = delete;
  WatchHandle& operator=(const WatchHandle&) = delete;
  WatchHandle(WatchHandle&&) = delete;
  WatchHandle& operator=(WatchHandle&&) = delete;
  // Drops the current watcher and makes a new one (nats.c#988: a watcher can go silent after a
  // reconnect, and the only cure is a new one). Returns at once; a watch thread does the work.
  virtual void recreate() noexcept = 0;
};

// One cnats watcher at a time, pumped by a thread of its own (cnats 3.4's watchers are
// synchronous): made by `create`, replaced after a pause when it fails and at once when asked
// (recreate()); each event goes to `deliver` with its entry's key (empty for events without one).
// The destructor interrupts a blocked kvWatcher_Next by stopping the watcher and joins the thread,
// so no event is delivered after it returns. KeyWatch and BucketWatch are built on it.
class WatcherPump {
public:
  using Create = std::function<int(kvWatcher** watcher)>; // returns a natsStatus
  using Deliver = std::function<void(WatchEvent event, const std::string& key)>;
  // `connection` is the bucket's, or null if not known: it makes retiring a watcher a round trip
  // rather than a pause (lib/retire.hpp).
  WatcherPump(std::string what, natsConnection* connection, Create create, Deliver deliver,
              MarkerCheck markers = {});
  ~WatcherPump();
  WatcherPump(const WatcherPump&) = delete;
  WatcherPump& operator=(const WatcherPump&) = delete;
  WatcherPump(WatcherPump&&) = delete;
  WatcherPump& operator=(WatcherPump&&) = delete;

  void recreate() noexcept;

private:
  void run(const std::stop_token& stop);
  // Stops the current watcher, which makes a kvWatcher_Next blocked on it return at once.
  void interrupt() noexcept;

  const std::string what_; // for messages: "key 'k'", "bucket 'b'"
  natsConnection* const connection_;
  const Create create_;
  const Deliver deliver_;
  const MarkerCheck markers_; // run on the pump thread: a marker costs it one request
  std::atomic<bool> recreate_{false};
  std::mutex mu_;
  kvWatcher* current_ = nullptr; // guarded by mu_; owned by the pump thread
  std::jthread thread_;          // last: started once everything above exists
};

// One key, one cnats watcher, one thread: the default, one per Election.
class KeyWatch final : public WatchHandle {
public:
  using Sink = WatchSink;
  KeyWatch(kvStore* bucket, std::string key, Sink sink, MarkerCheck markers = {});
  KeyWatch(const KeyWatch&) = delete;
  KeyWatch& operator=(const KeyWatch&) = delete;
  KeyWatch(KeyWatch&&) = delete;
  KeyWatch& operator=(KeyWatch&&) = delete;
  ~KeyWatch() override = default;

  void recreate() noexcept override { pump_.recreate(); }

private:
  kvStore* bucket_;
  std::string key_;
  Sink sink_;
  WatcherPump pump_; // last: destroyed (joined) first
};

// One watcher on a whole bucket, shared by every election of an Executor on that bucket: one
// thread and one server-side consumer instead of one per election. Entries are handed to the
// subscribers of their key; a subscriber that joins late gets the key's last entry first.
class BucketWatch {
public:
  explicit BucketWatch(kvStore* bucket, MarkerCheck markers = {});
  ~BucketWatch() = default;
  BucketWatch(const BucketWatch&) = delete;
  BucketWatch& operator=(const BucketWatch&) = delete;
  BucketWatch(BucketWatch&&) = delete;
  BucketWatch& operator=(BucketWatch&&) = delete;

  std::unique_ptr<WatchHandle> subscribe(std::string key, WatchSink sink);
  // Recreates the bucket's watcher; at most once per kMinRecreateGap, however many ask.
  void recreate() noexcept;

private:
  class Subscription;
  struct Subscriber {
    std::uint64_t id;
    WatchSink sink;
  };
  void dispatch(const WatchEvent& event, const std::string& key);
  void unsubscribe(const std::string& key, std::uint64_t id);

  kvStore* bucket_;
  std::mutex mu_; // guards everything below but pump_; held while sinks run
  std::unordered_map<std::string, std::vector<Subscriber>> subscribers_;
  std::unordered_map<std::string, Entry> last_; // the last entry of each key seen
  bool initial_done_ = false;
  std::uint64_t next_id_ = 1;
  std::chrono::steady_clock::time_point last_recreate_{};
  WatcherPump pump_; // last: destroyed (joined) first
};

} // namespace kvelect::detail
