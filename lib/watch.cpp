// SPDX-License-Identifier: Apache-2.0
#include "watch.hpp"

#include "bucket_routes.hpp"
#include "handles.hpp"
#include "retire.hpp"
#include "status.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <memory>

namespace kvelect::detail {
namespace {

// How long one kvWatcher_Next may block. Entries return as soon as they arrive and the destructor
// interrupts the wait by stopping the watcher; this bounds how late a recreate request is acted
// on and how often an idle watch thread wakes up.
constexpr std::int64_t kPollMillis = 1000;
// Pause before recreating a watcher that failed, so that a server that is down is not hammered.
constexpr auto kRetryPause = std::chrono::milliseconds(250);

Entry to_entry(kvEntry* e) {
  Entry entry;
  entry.revision = kvEntry_Revision(e);
  switch (kvEntry_Operation(e)) {
  case kvOp_Delete: entry.op = Op::del; break;
  case kvOp_Purge: entry.op = Op::purge; break;
  default: entry.op = Op::put; break;
  }
  const char* data = static_cast<const char*>(kvEntry_Value(e));
  if (entry.op == Op::put && data != nullptr)
    entry.value.assign(data, static_cast<std::size_t>(kvEntry_ValueLen(e)));
  return entry;
}

// The bucket's connection if kvelect opened the bucket (Bucket::open registers it), else null.
natsConnection* connection_of(kvStore* bucket) {
  const auto route = route_of(bucket);
  return route ? route->connection : nullptr;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// WatcherPump

WatcherPump::WatcherPump(std::string what, natsConnection* connection, Create create,
                         Deliver deliver, MarkerCheck markers)
    : what_(std::move(what)), connection_(connection), create_(std::move(create)),
      deliver_(std::move(deliver)), markers_(std::move(markers)),
      thread_([this](std::stop_token stop) { run(stop); }) {}

WatcherPump::~WatcherPump() {
  thread_.request_stop();
  interrupt();
  if (thread_.joinable())
    thread_.join();
}

void WatcherPump::recreate() noexcept {
  // Only a flag: stopping the watcher here would make the calling (campaign) thread wait for
  // cnats' consumer-delete request, up to a request timeout, while a lease may be ending. The
  // pump thread notices within one poll and recreates the watcher itself.
  recreate_.store(true);
}

void WatcherPump::interrupt() noexcept {
  std::lock_guard lock(mu_);
  if (current_ != nullptr)
    kvWatcher_Stop(current_);
}

void WatcherPump::run(const std::stop_token& stop) {
  while (!stop.stop_requested()) {
    recreate_.store(false);
    kvWatcher* raw = nullptr;
    const auto created = static_cast<natsStatus>(create_(&raw));
    WatcherHandle watcher(raw);
    {
      std::lock_guard lock(mu_);
      current_ = watcher.get();
    }
    // On every path out of this iteration, before the watcher is destroyed: clears current_,
    // then takes the watcher off the connection and lets cnats' reader finish with it
    // (lib/retire.hpp: destroying it at once can crash cnats 3.4.1).
    struct RetireOnExit {
      WatcherPump& self;
      kvWatcher* watcher;
      RetireOnExit(WatcherPump& owner, kvWatcher* w) : self(owner), watcher(w) {}
      RetireOnExit(const RetireOnExit&) = delete;
      RetireOnExit& operator=(const RetireOnExit&) = delete;
      RetireOnExit(RetireOnExit&&) = delete;
      RetireOnExit& operator=(RetireOnExit&&) = delete;
      ~RetireOnExit() {
        {
          std::lock_guard lock(self.mu_);
          self.current_ = nullptr;
        }
        retire(watcher, self.connection_);
      }
    } retire_guard{*this, watcher.get()};
    if (stop.stop_requested())
      break;
    if (created != NATS_OK) {
      // Read right after the failed call: the text cnats recorded for it, never an older one.
      const std::string text = failure_message(created);
      deliver_(
          WatchEvent{WatchEvent::Kind::failed, {}, fmt::format("cannot watch {}: {}", what_, text)},
          std::string());
      std::this_thread::sleep_for(kRetryPause);
      continue;
    }
    while (!stop.stop_requested() && !recreate_.load()) {
      kvEntry* next = nullptr;
      const natsStatus status = kvWatcher_Next(&next, watcher.get(), kPollMillis);
      EntryHandle entry(next);
      if (status == NATS_TIMEOUT)
        continue;
      if (status != NATS_OK) {
        if (stop.stop_requested() || recreate_.load())
          break; // interrupted on purpose
        deliver_(
            WatchEvent{WatchEvent::Kind::failed,
                       {},
                       fmt::format("watch of {} failed: {}", what_, plain_status_text(status))},
            std::string());
        std::this_thread::sleep_for(kRetryPause);
        break;
      }
      if (!entry) {
        deliver_(WatchEvent{WatchEvent::Kind::initial_done, {}, {}}, std::string());
        continue;
      }
      const char* key = kvEntry_Key(entry.get());
      Entry e = to_entry(entry.get());
      // cnats 3.4 reports the server's markers as empty values ("Expiry markers").
      markers_.refine(e);
      deliver_(WatchEvent{WatchEvent::Kind::entry, std::move(e), {}},
               std::string(key != nullptr ? key : ""));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// KeyWatch

KeyWatch::KeyWatch(kvStore* bucket, std::string key, Sink sink, MarkerCheck markers)
    : bucket_(bucket), key_(std::move(key)), sink_(std::move(sink)),
      pump_(
          fmt::format("key '{}'", key_), connection_of(bucket),
          [this](kvWatcher** out) { return kvStore_Watch(out, bucket_, key_.c_str(), nullptr); },
          [this](WatchEvent event, const std::string&) { sink_(std::move(event)); },
          std::move(markers)) {}

// ---------------------------------------------------------------------------------------------
// BucketWatch

namespace {
// However many elections ask for it, a bucket's shared watcher is recreated at most this often.
constexpr auto kMinRecreateGap = std::chrono::seconds(1);
} // namespace

class BucketWatch::Subscription final : public WatchHandle {
public:
  Subscription(BucketWatch& owner, std::string key, std::uint64_t id)
      : owner_(owner), key_(std::move(key)), id_(id) {}
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  Subscription(Subscription&&) = delete;
  Subscription& operator=(Subscription&&) = delete;
  ~Subscription() override { owner_.unsubscribe(key_, id_); }
  void recreate() noexcept override { owner_.recreate(); }

private:
  BucketWatch& owner_;
  std::string key_;
  std::uint64_t id_;
};

BucketWatch::BucketWatch(kvStore* bucket, MarkerCheck markers)
    : bucket_(bucket),
      pump_(
          fmt::format("bucket '{}'", kvStore_Bucket(bucket)), connection_of(bucket),
          [this](kvWatcher** out) { return kvStore_WatchAll(out, bucket_, nullptr); },
          [this](const WatchEvent& event, const std::string& key) { dispatch(event, key); },
          std::move(markers)) {}

std::unique_ptr<WatchHandle> BucketWatch::subscribe(std::string key, WatchSink sink) {
  std::lock_guard lock(mu_);
  const std::uint64_t id = next_id_++;
  if (initial_done_) {
    // The watch is live: what it has seen of the key is the key's state now.
    if (const auto it = last_.find(key); it != last_.end())
      sink(WatchEvent{WatchEvent::Kind::entry, it->second, {}});
    sink(WatchEvent{WatchEvent::Kind::initial_done, {}, {}});
  }
  subscribers_[key].push_back({id, std::move(sink)});
  return std::make_unique<Subscription>(*this, std::move(key), id);
}

void BucketWatch::unsubscribe(const std::string& key, std::uint64_t id) {
  std::lock_guard lock(mu_);
  const auto it = subscribers_.find(key);
  if (it == subscribers_.end())
    return;
  auto& list = it->second;
  list.erase(
      std::remove_if(list.begin(), list.end(), [id](const Subscriber& s) { return s.id == id; }),
      list.end());
  if (list.empty())
    subscribers_.erase(it);
}

void BucketWatch::recreate() noexcept {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (now - last_recreate_ < kMinRecreateGap)
    return;
  last_recreate_ = now;
  pump_.recreate();
}

void BucketWatch::dispatch(const WatchEvent& event, const std::string& key) {
  std::lock_guard lock(mu_);
  if (event.kind == WatchEvent::Kind::entry) {
    last_[key] = event.entry;
    if (const auto it = subscribers_.find(key); it != subscribers_.end())
      for (auto& subscriber : it->second)
        subscriber.sink(event);
    return;
  }
  // "Initial values done" and failures concern every key.
  if (event.kind == WatchEvent::Kind::initial_done)
    initial_done_ = true;
  for (auto& [each_key, list] : subscribers_)
    for (auto& subscriber : list)
      subscriber.sink(event);
}

} // namespace kvelect::detail
