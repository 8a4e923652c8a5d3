// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief kvelect::Executor: many elections on a few shared threads.
#pragma once

#include <kvelect/export.hpp>
#include <kvelect/options.hpp>

#include <cstddef>
#include <memory>

namespace kvelect {

namespace detail {
class ExecutorState;
}

/// Settings of an Executor.
struct ExecutorOptions {
  /// Threads that carry out the elections' KV requests (blocking cnats calls), at most: one
  /// starts with the executor, another only when a request has to wait for one. 1..64.
  int io_threads = 2;
  /// Elections on a bucket opened through kvelect (Bucket::open, Bucket::create) write by
  /// publishing, with the server's reply handled as it arrives, instead of a blocking request
  /// on the pool (docs/executor.md, "Asynchronous writes"). Reads stay on the pool. A plain
  /// kvStore* made with cnats uses the pool for everything.
  bool async_writes = true;
};

/// Runs the campaign loops of many elections on one thread, their KV requests on a small pool,
/// and watches each bucket once for all of them. By default every Election has threads of its
/// own (a campaign thread, a request thread and a watch thread); a process that holds hundreds
/// or thousands of elections passes `WithExecutor(executor)` to each instead, and then uses
/// 1 + 1..`io_threads` + one watch thread per bucket + one reply thread per connection with
/// asynchronous writes in all (docs/executor.md has the figures).
///
/// The protocol and its timing argument are the same in both modes (docs/protocol.md); the
/// executor only decides which thread runs each step. Requirements and differences:
/// - Callbacks of all its elections run on the executor's one thread, one at a time: a slow
///   callback delays every election of the executor (its lease deadlines included, as a slow
///   callback already does for its own election). Keep callbacks short.
/// - From a callback, stop() and resign() of *another* election of the same executor run that
///   election's steps on the calling thread until done; await() does not wait there (it would
///   block every election of the executor) and returns is_leader() at once.
/// - The shared watch of a bucket receives the changes of every key in it, including keys of
///   elections this process does not hold.
/// - Destroying the Executor stops every election still running on it (as stop() would);
///   starting an election on a destroyed Executor throws Error(Errc::invalid_argument).
///   Destroyed from a callback of one of its own elections, it cannot wait for them: they run
///   on until each is stopped, and then its threads end.
class KVELECT_API Executor {
public:
  /// Starts the executor's threads. Throws Error(Errc::invalid_option) for io_threads out of
  /// range.
  explicit Executor(ExecutorOptions options = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  Executor(Executor&&) = delete;
  Executor& operator=(Executor&&) = delete;

  /// How many elections run on it now.
  std::size_t elections() const;
  /// Threads it started: 1 campaign thread + the request threads started so far (1..io_threads)
  /// + one per watched bucket + one per connection with asynchronous writes (cnats' delivery
  /// thread of the write replies).
  std::size_t threads() const;

private:
  friend KVELECT_API Option WithExecutor(Executor& executor);
  std::shared_ptr<detail::ExecutorState> state_;
};

/// Runs the election on `executor` instead of threads of its own. The executor must be
/// constructed before the Election; see Executor for the differences.
KVELECT_API Option WithExecutor(Executor& executor);

} // namespace kvelect
