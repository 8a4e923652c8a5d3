// SPDX-License-Identifier: Apache-2.0
// Taking a subscription or a KV watcher off its connection before it is destroyed.
//
// cnats 3.4.1 (Debian 12's libnats) has a race between its reader thread and the destruction of
// a subscription: for an incoming message, the reader looks the subscription up, drops the lock
// of the connection's table, builds the message, and only then locks the subscription, which it
// holds no reference to. A subscription destroyed on another thread in between is freed memory
// by then, and the process dies (SIGSEGV, or SIGABRT from cnats when pthread_mutex_lock fails):
// docs/compatibility.md, "cnats 3.4.1"; tests/retire/retire_test.cpp shows it under valgrind.
//
// So retire() first takes the subscription off the connection's table (unsubscribe; for a
// watcher, kvWatcher_Stop), so that the reader can no longer find it, then waits until the reader
// is past any message it found before; the caller destroys it after that.
#pragma once

#include <nats/nats.h>

namespace kvelect::detail {

// `connection` may be null when it is not known (a kvStore* the caller made: cnats 3.4 has no
// public way from it to its connection); the wait is then a pause instead of a round trip. It
// blocks for up to a round trip (250 ms at most): not for a thread that must not wait for the
// network.
void retire(natsSubscription* subscription, natsConnection* connection) noexcept;
void retire(kvWatcher* watcher, natsConnection* connection) noexcept;

// A unique_ptr deleter that retires a watcher (above) and then destroys it.
struct RetiringWatcherDeleter {
  natsConnection* connection = nullptr;
  void operator()(kvWatcher* watcher) const noexcept {
    if (watcher == nullptr)
      return;
    retire(watcher, connection);
    kvWatcher_Destroy(watcher);
  }
};

} // namespace kvelect::detail
