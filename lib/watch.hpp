// SPDX-License-Identifier: Apache-2.0
// A watch on one election key: a thread that pumps a cnats kvWatcher and hands each entry to a
// sink. cnats 3.4's watchers are synchronous (kvWatcher_Next), so each needs a thread to wait.
#pragma once

#include "kv.hpp"

struct __kvWatcher;
typedef struct __kvWatcher kvWatcher; // NOLINT(modernize-use-using)

#include <atomic>
#include <functional>
#include <mutex>
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
  void recreate() noexcept;

private:
  void pump(std::stop_token stop);
  // Stops the current watcher, which makes a kvWatcher_Next blocked on it return at once.
  void interrupt() noexcept;

  kvStore* bucket_;
  std::string key_;
  Sink sink_;
  std::atomic<bool> recreate_{false};
  std::mutex mu_;
  kvWatcher* current_ = nullptr; // guarded by mu_; owned by the pump thread
  std::jthread thread_;
};

} // namespace kvelect::detail
