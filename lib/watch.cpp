// SPDX-License-Identifier: Apache-2.0
#include "watch.hpp"

#include "handles.hpp"

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

// Runs watchers made by `create` until `stop`: hands each event to `deliver` with the entry's
// key (empty for events that have none). A watcher that fails is reported and replaced after a
// pause; one flagged through `recreate` is replaced at once. `current` (guarded by `mu`) names
// the live watcher so that another thread can interrupt a blocked kvWatcher_Next by stopping it.
template <typename Create, typename Deliver>
void run_watchers(const std::stop_token& stop, std::atomic<bool>& recreate, std::mutex& mu,
                  kvWatcher*& current, const std::string& what, Create create, Deliver deliver) {
  std::uint64_t generation = 0;
  while (!stop.stop_requested()) {
    ++generation;
    recreate.store(false);
    kvWatcher* raw = nullptr;
    const natsStatus created = create(&raw);
    WatcherHandle watcher(raw);
    {
      std::lock_guard lock(mu);
      current = watcher.get();
    }
    // Clears `current` before the watcher is destroyed, on every path out of this iteration.
    struct Forget {
      std::mutex& mu;
      kvWatcher*& current;
      Forget(std::mutex& m, kvWatcher*& c) : mu(m), current(c) {}
      Forget(const Forget&) = delete;
      Forget& operator=(const Forget&) = delete;
      Forget(Forget&&) = delete;
      Forget& operator=(Forget&&) = delete;
      ~Forget() {
        std::lock_guard lock(mu);
        current = nullptr;
      }
    } forget{mu, current};
    if (stop.stop_requested())
      break;
    if (created != NATS_OK) {
      natsStatus ignored = NATS_OK;
      const char* text = nats_GetLastError(&ignored);
      deliver(WatchEvent{WatchEvent::Kind::failed,
                         {},
                         fmt::format("cannot watch {}: {}", what,
                                     text ? text : natsStatus_GetText(created)),
                         generation},
              std::string());
      std::this_thread::sleep_for(kRetryPause);
      continue;
    }
    while (!stop.stop_requested() && !recreate.load()) {
      kvEntry* next = nullptr;
      const natsStatus status = kvWatcher_Next(&next, watcher.get(), kPollMillis);
      EntryHandle entry(next);
      if (status == NATS_TIMEOUT)
        continue;
      if (status != NATS_OK) {
        if (stop.stop_requested() || recreate.load())
          break; // interrupted on purpose
        deliver(WatchEvent{WatchEvent::Kind::failed,
                           {},
                           fmt::format("watch of {} failed: {}", what, natsStatus_GetText(status)),
                           generation},
                std::string());
        std::this_thread::sleep_for(kRetryPause);
        break;
      }
      if (!entry) {
        deliver(WatchEvent{WatchEvent::Kind::initial_done, {}, {}, generation}, std::string());
        continue;
      }
      const char* key = kvEntry_Key(entry.get());
      deliver(WatchEvent{WatchEvent::Kind::entry, to_entry(entry.get()), {}, generation},
              std::string(key != nullptr ? key : ""));
    }
  }
}

} // namespace

// ---------------------------------------------------------------------------------------------
// KeyWatch

KeyWatch::KeyWatch(kvStore* bucket, std::string key, Sink sink)
    : bucket_(bucket), key_(std::move(key)), sink_(std::move(sink)),
      thread_([this](std::stop_token stop) { pump(std::move(stop)); }) {}

KeyWatch::~KeyWatch() {
  thread_.request_stop();
  interrupt();
  if (thread_.joinable())
    thread_.join();
}

void KeyWatch::recreate() noexcept {
  // Only a flag: stopping the watcher here would make the calling (campaign) thread wait for
  // cnats' consumer-delete request, up to a request timeout, while a lease may be ending. The
  // pump thread notices within one poll and recreates the watcher itself.
  recreate_.store(true);
}

void KeyWatch::interrupt() noexcept {
  std::lock_guard lock(mu_);
  if (current_ != nullptr)
    kvWatcher_Stop(current_);
}

void KeyWatch::pump(std::stop_token stop) {
  run_watchers(
      stop, recreate_, mu_, current_, fmt::format("key '{}'", key_),
      [this](kvWatcher** out) { return kvStore_Watch(out, bucket_, key_.c_str(), nullptr); },
      [this](WatchEvent event, const std::string&) { sink_(std::move(event)); });
}

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

BucketWatch::BucketWatch(kvStore* bucket)
    : bucket_(bucket), thread_([this](std::stop_token stop) { pump(std::move(stop)); }) {}

BucketWatch::~BucketWatch() {
  thread_.request_stop();
  interrupt();
  if (thread_.joinable())
    thread_.join();
}

std::unique_ptr<WatchHandle> BucketWatch::subscribe(std::string key, WatchSink sink) {
  std::lock_guard lock(mu_);
  const std::uint64_t id = next_id_++;
  if (initial_done_) {
    // The watch is live: what it has seen of the key is the key's state now.
    if (const auto it = last_.find(key); it != last_.end())
      sink(WatchEvent{WatchEvent::Kind::entry, it->second, {}, 0});
    sink(WatchEvent{WatchEvent::Kind::initial_done, {}, {}, 0});
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
  recreate_.store(true); // as KeyWatch::recreate: the pump thread does the work
}

void BucketWatch::interrupt() noexcept {
  std::lock_guard lock(watcher_mu_);
  if (current_ != nullptr)
    kvWatcher_Stop(current_);
}

void BucketWatch::deliver_all(const WatchEvent& event) {
  for (auto& [key, list] : subscribers_)
    for (auto& subscriber : list)
      subscriber.sink(event);
}

void BucketWatch::pump(std::stop_token stop) {
  run_watchers(
      stop, recreate_, watcher_mu_, current_, fmt::format("bucket '{}'", kvStore_Bucket(bucket_)),
      [this](kvWatcher** out) { return kvStore_WatchAll(out, bucket_, nullptr); },
      [this](const WatchEvent& event, const std::string& key) {
        std::lock_guard lock(mu_);
        switch (event.kind) {
        case WatchEvent::Kind::entry: {
          last_[key] = event.entry;
          const auto it = subscribers_.find(key);
          if (it != subscribers_.end())
            for (auto& subscriber : it->second)
              subscriber.sink(event);
          return;
        }
        case WatchEvent::Kind::initial_done: initial_done_ = true; break;
        case WatchEvent::Kind::failed: break;
        }
        deliver_all(event);
      });
}

} // namespace kvelect::detail
