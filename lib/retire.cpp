// SPDX-License-Identifier: Apache-2.0
#include "retire.hpp"

#include <nats/nats.h>

#include <chrono>
#include <thread>

namespace kvelect::detail {

namespace {

// How long the round trip that proves the reader has moved on may take. Past it the wait has
// lasted far longer than the reader's window anyway.
constexpr int64_t kFlushMillis = 250;

// The wait when no round trip is possible. The reader's window holds no waiting, only building
// one message (an allocation and a copy: microseconds); a pause a thousand times longer covers a
// reader that the scheduler took off the CPU inside it, short of a stall of the whole machine.
constexpr auto kPause = std::chrono::milliseconds(20);

// Returns once cnats' reader is past any message it found for a subscription just taken off the
// connection's table.
void wait_for_reader(natsConnection* connection) noexcept {
  // A closed connection may still have its reader: cnats marks it closed before it joins the
  // reader thread. So a closed one gets the pause too.
  if (connection != nullptr && !natsConnection_IsClosed(connection)) {
    // The server answers a PING after everything it sent before it, and the one reader thread
    // handles that PONG only once it is done with every earlier message: when the flush
    // returns, no message taken for the retired subscription is still being handled.
    const auto started = std::chrono::steady_clock::now();
    const natsStatus status = natsConnection_FlushTimeout(connection, kFlushMillis);
    if (status == NATS_OK)
      return;
    if (std::chrono::steady_clock::now() - started >= kPause)
      return; // a timeout: the wait was long enough
  }
  std::this_thread::sleep_for(kPause);
}

} // namespace

void retire(natsSubscription* subscription, natsConnection* connection) noexcept {
  if (subscription == nullptr)
    return;
  // A failure means it is off the table already (a closed connection, an auto-unsubscribe).
  (void)natsSubscription_Unsubscribe(subscription);
  wait_for_reader(connection);
}

void retire(kvWatcher* watcher, natsConnection* connection) noexcept {
  if (watcher == nullptr)
    return;
  // Unsubscribes the watcher's subscription (and asks the server to delete its consumer); a
  // failure means a watcher stopped already.
  (void)kvWatcher_Stop(watcher);
  wait_for_reader(connection);
}

} // namespace kvelect::detail
