// SPDX-License-Identifier: Apache-2.0
// Revision-checked KV writes as plain publishes with an asynchronous reply, for elections on an
// Executor (docs/executor.md, "Asynchronous writes"): the campaign thread publishes and returns;
// the server's acknowledgement arrives on one wildcard subscription per connection, whose
// callback hands the result to the election. No thread waits for a reply.
#pragma once

#include "handles.hpp"
#include "kv.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace kvelect::detail {

// What the server's reply to a revision-checked publish says, in the terms of KvPort::write.
// `status_503` is a "no responders" status message (no stream took the subject); `body` the
// JSON acknowledgement otherwise.
WriteResult parse_ack(bool status_503, std::string_view body);

class AsyncWriter {
public:
  using Done = std::function<void(WriteResult)>;
  // Runs a job elsewhere: destroying the subscription waits for a round trip (lib/retire.hpp),
  // which the thread that destroys the writer may not afford. Empty: the destructor waits.
  using Defer = std::function<void(std::function<void()> job)>;
  // Subscribes to a fresh inbox on `connection`. Throws Error on failure.
  explicit AsyncWriter(natsConnection* connection, Defer defer = {});
  // Unsubscribes at once; writes still waiting are dropped without calling their Done. The
  // subscription is destroyed once cnats' reader is done with it, by `defer`'s job if given.
  ~AsyncWriter();
  AsyncWriter(const AsyncWriter&) = delete;
  AsyncWriter& operator=(const AsyncWriter&) = delete;
  AsyncWriter(AsyncWriter&&) = delete;
  AsyncWriter& operator=(AsyncWriter&&) = delete;

  // Publishes `value` to `subject` if the subject's last sequence is `expected` (0: no message).
  // Returns a ticket; `done` runs later on cnats' delivery thread with the result, unless the
  // ticket is cancelled first. If the publish itself fails, returns 0 and sets `failed`.
  std::uint64_t write(const std::string& subject, std::string_view value, std::uint64_t expected,
                      Done done, WriteResult& failed);
  // Forgets a write: true if its result had not been delivered (its Done will never run).
  bool cancel(std::uint64_t ticket) noexcept;

  struct Shared; // what the subscription's callback reaches: outlives the writer until cnats
                 // has finished with the subscription

private:
  natsConnection* connection_;
  Defer defer_;
  std::shared_ptr<Shared> shared_;
  SubscriptionHandle subscription_;
  std::unique_ptr<std::shared_ptr<Shared>> leaked_; // the closure, if cnats could not own it
};

} // namespace kvelect::detail
