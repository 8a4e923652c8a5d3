// SPDX-License-Identifier: Apache-2.0
#include "watch.hpp"

#include "handles.hpp"

#include <fmt/format.h>

#include <chrono>

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

} // namespace

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
  std::uint64_t generation = 0;
  while (!stop.stop_requested()) {
    ++generation;
    recreate_.store(false);
    kvWatcher* raw = nullptr;
    const natsStatus created = kvStore_Watch(&raw, bucket_, key_.c_str(), nullptr);
    WatcherHandle watcher(raw);
    {
      std::lock_guard lock(mu_);
      current_ = watcher.get();
    }
    // Clears current_ before the watcher is destroyed, on every path out of this iteration.
    struct Forget {
      KeyWatch* self;
      explicit Forget(KeyWatch* owner) : self(owner) {}
      Forget(const Forget&) = delete;
      Forget& operator=(const Forget&) = delete;
      Forget(Forget&&) = delete;
      Forget& operator=(Forget&&) = delete;
      ~Forget() {
        std::lock_guard lock(self->mu_);
        self->current_ = nullptr;
      }
    } forget{this};
    if (stop.stop_requested())
      break;
    if (created != NATS_OK) {
      natsStatus ignored = NATS_OK;
      const char* text = nats_GetLastError(&ignored);
      sink_({WatchEvent::Kind::failed,
             {},
             fmt::format("cannot watch key '{}': {}", key_,
                         text ? text : natsStatus_GetText(created)),
             generation});
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
        sink_({WatchEvent::Kind::failed,
               {},
               fmt::format("watch of key '{}' failed: {}", key_, natsStatus_GetText(status)),
               generation});
        std::this_thread::sleep_for(kRetryPause);
        break;
      }
      if (!entry) {
        sink_({WatchEvent::Kind::initial_done, {}, {}, generation});
        continue;
      }
      sink_({WatchEvent::Kind::entry, to_entry(entry.get()), {}, generation});
    }
  }
}

} // namespace kvelect::detail
