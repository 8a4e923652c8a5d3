// SPDX-License-Identifier: Apache-2.0
// A watch on one election key: a thread that pumps a cnats kvWatcher and hands each entry to a
// sink. cnats 3.4's watchers are synchronous (kvWatcher_Next), so each needs a thread to wait.
#pragma once

#include "kv.hpp"

#include <atomic>
#include <functional>
#include <string>
#include <thread>

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
  std::uint64_t generation = 0; // which incarnation of the watcher produced this event
};

class KeyWatch {
public:
  using Sink = std::function<void(WatchEvent)>;
  KeyWatch(kvStore* bucket, std::string key, Sink sink);
  ~KeyWatch();
  KeyWatch(const KeyWatch&) = delete;
  KeyWatch& operator=(const KeyWatch&) = delete;

  // Drops the current watcher and makes a new one (nats.c#988: a watcher can go silent after a
  // reconnect, and the only cure is a new one). Returns at once; the thread does the work.
  void recreate() noexcept { recreate_.store(true); }

private:
  void pump(std::stop_token stop);

  kvStore* bucket_;
  std::string key_;
  Sink sink_;
  std::atomic<bool> recreate_{false};
  std::jthread thread_;
};

} // namespace kvelect::detail
