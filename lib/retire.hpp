// SPDX-License-Identifier: Apache-2.0
// Taking a subscription or a KV watcher off its connection before it is destroyed.
//
// cnats 3.4.1 (Debian 12's libnats) has a race between its reader thread and the destruction of
// a subscription: for an incoming message, natsConn_processMsg looks the subscription up, drops
// the connection's lock on the table, builds the message, and only then locks the subscription,
// which it holds no reference to. A subscription destroyed on another thread in between is freed
// memory by then: the reader locks a freed mutex, and cnats answers a failed pthread_mutex_lock
// with abort() (nats.c#637; later cnats versions take a reference, nats.c#638).
// tests/retire_test.cpp shows the race under valgrind and that retire() closes it.
//
// So nothing of kvelect destroys a live subscription at once: retire() first takes it off the
// connection's table (unsubscribe; for a watcher, kvWatcher_Stop), so that the reader can no
// longer find it, then waits until the reader is past any message it found before; the caller
// destroys it after that.
#pragma once

#include <nats/nats.h>

namespace kvelect::detail {

// `connection` may be null when it is not known (a kvStore* made by the caller: cnats 3.4 has no
// public way from it to its connection); the wait is then a pause instead of a round trip.
void retire(natsSubscription* subscription, natsConnection* connection) noexcept;
void retire(kvWatcher* watcher, natsConnection* connection) noexcept;

// The wait alone, for a subscription already off the table.
void wait_for_reader(natsConnection* connection) noexcept;

} // namespace kvelect::detail
