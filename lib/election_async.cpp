// SPDX-License-Identifier: Apache-2.0
// The election driver's asynchronous writes, in executor mode (docs/executor.md, "Asynchronous
// writes"): the publish, and the end of a wait for a reply that did not come.
#include "election_impl.hpp"

#include "status.hpp"

namespace kvelect {

void Election::Impl::send_async_write(core::SendWrite& write) {
  // The core took the send time when it asked for this write (core::Protocol::send_write), a
  // moment before this publish: a lease counts from no later than the write left.
  const auto sent = Clock::now();
  detail::WriteResult failed;
  const std::uint64_t id = write.id;
  const std::uint64_t ticket = writer_->writer().write(
      subject_, write.value, write.expected,
      [this, self = shared_from_this(), id](detail::WriteResult result) {
        post(WriteDone{id, std::move(result)});
      },
      failed);
  if (ticket == 0) {
    // Not sent (the connection is closed, out of memory): the result is known now, and comes
    // back through the inbox like any other, after this dispatch.
    post(WriteDone{id, std::move(failed)});
    return;
  }
  async_write_ = AsyncWrite{id, ticket, sent + writer_->route().timeout};
}

void Election::Impl::expire_async_write(TimePoint now) {
  if (!async_write_ || now < async_write_->deadline)
    return;
  const AsyncWrite expired = *async_write_;
  async_write_.reset();
  // A reply that arrived meanwhile is already in the inbox (cancel() then fails): it decides.
  if (!writer_ || !writer_->writer().cancel(expired.ticket))
    return;
  core_->on_write(core_time(now), expired.id, detail::classify_failure(NATS_TIMEOUT, {}));
  dispatch();
}

} // namespace kvelect
