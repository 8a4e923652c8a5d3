// SPDX-License-Identifier: Apache-2.0
#include "executor.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace kvelect {
namespace detail {

ExecutorState::ExecutorState(ExecutorOptions options) : options_(options) {
  if (options_.io_threads < 1 || options_.io_threads > 64)
    throw Error(Errc::invalid_option,
                fmt::format("executor io_threads {} is outside 1..64", options_.io_threads));
  // One request thread now; more, up to io_threads, only when a request has to wait for one
  // (post_io). With asynchronous writes the pool serves reads alone, and one thread is what a
  // steady state needs (docs/executor.md, "Profiles of the misses").
  add_io_thread();
}

void ExecutorState::add_io_thread() {
  io_threads_.emplace_back([this](std::stop_token stop) { run_io(stop); });
  io_thread_count_.store(io_threads_.size());
}

void ExecutorState::start(const std::shared_ptr<ExecutorState>& self) {
  // The campaign thread holds the state: if the Executor is destroyed on this very thread (from
  // a callback), the thread outlives it and ends the state itself (run()).
  thread_ = std::jthread([self](std::stop_token stop) { self->run(stop); });
  thread_id_ = thread_.get_id();
}

ExecutorState::~ExecutorState() { shutdown(); }

void ExecutorState::shutdown() noexcept {
  std::vector<std::shared_ptr<Steppable>> running;
  {
    std::lock_guard lock(mu_);
    if (closed_ && !thread_.joinable())
      return;
    closed_ = true;
    if (on_thread()) {
      // Destroyed from a callback of one of its elections: it cannot wait for them here. They
      // run on until each is stopped; then the campaign thread ends everything (run()).
      exit_when_idle_ = true;
      return;
    }
    for (auto& [raw, task] : tasks_)
      running.push_back(task.task);
  }
  // Each stop() waits for its election's steps on the executor thread, releases included.
  for (auto& task : running)
    task->stop();
  running.clear();
  thread_.request_stop();
  cv_.notify_all();
  if (thread_.joinable())
    thread_.join();
  stop_io_and_watches();
}

void ExecutorState::stop_io_and_watches() noexcept {
  std::vector<std::jthread> threads;
  {
    // No thread is added after this (post_io).
    std::lock_guard lock(io_mu_);
    io_stopped_ = true;
    threads.swap(io_threads_);
  }
  for (auto& t : threads)
    t.request_stop();
  io_cv_.notify_all();
  for (auto& t : threads)
    if (t.joinable())
      t.join();
  std::deque<std::function<void()>> dropped; // destroyed outside the lock: a job's captures
  {                                          // may wait for a round trip (AsyncWriter)
    std::lock_guard lock(io_mu_);
    dropped.swap(io_jobs_);
  }
  dropped.clear();
  std::lock_guard lock(watch_mu_);
  watches_.clear();
}

void ExecutorState::attach(const std::shared_ptr<Steppable>& task) {
  {
    std::lock_guard lock(mu_);
    if (closed_)
      throw Error(Errc::invalid_argument, "the election's executor has been destroyed");
    auto& entry = tasks_[task.get()];
    entry.task = task;
    if (!entry.queued) {
      entry.queued = true;
      ready_.push_back(task.get());
    }
  }
  cv_.notify_all();
}

void ExecutorState::detach(Steppable* task) {
  std::lock_guard lock(mu_);
  tasks_.erase(task);
}

void ExecutorState::wake(Steppable* task) {
  {
    std::lock_guard lock(mu_);
    const auto it = tasks_.find(task);
    if (it == tasks_.end() || it->second.queued)
      return;
    it->second.queued = true;
    ready_.push_back(task);
    if (!sleeping_)
      return; // awake: it looks at ready_ before it sleeps again
  }
  cv_.notify_all();
}

bool ExecutorState::on_thread() const noexcept { return std::this_thread::get_id() == thread_id_; }

void ExecutorState::run(const std::stop_token& stop) {
  std::vector<std::shared_ptr<Steppable>> batch;
  while (!stop.stop_requested()) {
    batch.clear();
    {
      std::unique_lock lock(mu_);
      if (exit_when_idle_ && tasks_.empty()) {
        // The Executor was destroyed on this thread and its last election has now stopped.
        lock.unlock();
        stop_io_and_watches();
        thread_.detach();
        return;
      }
      for (;;) {
        if (stop.stop_requested())
          return;
        const auto now = LeaseClock::now();
        // Due timers make their tasks ready. A timer whose sequence is not the task's current
        // one was replaced by a later step: skipped.
        while (!timers_.empty() && timers_.top().at <= now) {
          const Timer timer = timers_.top();
          timers_.pop();
          const auto it = tasks_.find(timer.task);
          if (it == tasks_.end() || it->second.timer_seq != timer.seq)
            continue;
          it->second.scheduled = TimePoint::max(); // no timer of it is pending any more
          if (it->second.queued)
            continue;
          it->second.queued = true;
          ready_.push_back(timer.task);
        }
        if (!ready_.empty())
          break;
        // Sliced waits: converting a far deadline between clocks could overflow.
        const auto until = timers_.empty()
                               ? now + std::chrono::seconds(1)
                               : std::min(timers_.top().at, now + std::chrono::seconds(1));
        sleeping_ = true;
        cv_.wait_for(lock, until - now);
        sleeping_ = false;
      }
      for (Steppable* raw : ready_) {
        const auto it = tasks_.find(raw);
        if (it == tasks_.end())
          continue;
        it->second.queued = false;
        batch.push_back(it->second.task);
      }
      ready_.clear();
    }
    for (auto& task : batch) {
      {
        // stop() of another election, from a callback, may have run this one to its end.
        std::lock_guard lock(mu_);
        if (tasks_.find(task.get()) == tasks_.end())
          continue;
      }
      const auto next = task->executor_step();
      if (!next)
        continue; // the run ended and detached itself; it may already be attached anew
      std::lock_guard lock(mu_);
      const auto it = tasks_.find(task.get());
      if (it == tasks_.end())
        continue;
      // The pending timer already says when (a step out of turn, woken by an event).
      if (*next == TimePoint::max() || *next == it->second.scheduled)
        continue;
      it->second.scheduled = *next;
      timers_.push({*next, task.get(), ++it->second.timer_seq});
    }
    // The last reference to a finished election may be the batch's: dropped here, outside mu_.
  }
}

void ExecutorState::post_io(std::function<void()> job) {
  {
    std::lock_guard lock(io_mu_);
    io_jobs_.push_back(std::move(job));
    // More requests waiting than threads waiting for them: one more thread, within io_threads.
    if (!io_stopped_ && io_jobs_.size() > io_idle_ &&
        io_threads_.size() < static_cast<std::size_t>(options_.io_threads)) {
      try {
        add_io_thread();
      } catch (...) { // NOLINT(bugprone-empty-catch): out of threads; the running ones serve it
      }
    }
  }
  io_cv_.notify_one();
}

void ExecutorState::read_bucket(kvStore* bucket, const MarkerCheck& jetstream, BucketDone done) {
  bool send = false;
  {
    std::lock_guard lock(reads_mu_);
    auto& reads = reads_[bucket];
    if (!reads.jetstream.enabled())
      reads.jetstream = jetstream;
    reads.waiting.push_back(std::move(done));
    send = !std::exchange(reads.in_flight, true);
  }
  if (send)
    send_bucket_read(bucket);
}

void ExecutorState::send_bucket_read(kvStore* bucket) {
  post_io([this, bucket] {
    // Requests made while a read was out get the next read, on this same thread (posting it
    // would ask the pool for a second thread while this one is about to be free).
    bool again = true;
    while (again) {
      // The requests answered are those made before this read goes out, taken here on the
      // pool thread right before it is sent.
      std::vector<BucketDone> batch;
      MarkerCheck jetstream;
      {
        std::lock_guard lock(reads_mu_);
        auto& reads = reads_[bucket];
        batch.swap(reads.waiting);
        jetstream = reads.jetstream;
      }
      const core::BucketResult result = detail::read_bucket(bucket, jetstream);
      for (auto& done : batch)
        done(result);
      batch.clear(); // may drop the last reference to an election: outside reads_mu_
      again = false;
      std::lock_guard lock(reads_mu_);
      const auto it = reads_.find(bucket);
      if (it != reads_.end()) {
        again = !it->second.waiting.empty();
        if (!again)
          reads_.erase(it);
      }
    }
  });
}

void ExecutorState::run_io(const std::stop_token& stop) {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(io_mu_);
      ++io_idle_;
      const bool got = io_cv_.wait(lock, stop, [this] { return !io_jobs_.empty(); });
      --io_idle_;
      if (!got)
        return;
      job = std::move(io_jobs_.front());
      io_jobs_.pop_front();
    }
    job();
  }
}

class ExecutorState::SharedWatchHandle final : public WatchHandle {
public:
  SharedWatchHandle(ExecutorState& owner, kvStore* bucket) : owner_(owner), bucket_(bucket) {}
  SharedWatchHandle(const SharedWatchHandle&) = delete;
  SharedWatchHandle& operator=(const SharedWatchHandle&) = delete;
  SharedWatchHandle(SharedWatchHandle&&) = delete;
  SharedWatchHandle& operator=(SharedWatchHandle&&) = delete;
  ~SharedWatchHandle() override {
    subscription_.reset();
    owner_.release_watch(bucket_);
  }
  void recreate() noexcept override {
    if (subscription_)
      subscription_->recreate();
  }
  std::unique_ptr<WatchHandle> subscription_;

private:
  ExecutorState& owner_;
  kvStore* bucket_;
};

std::unique_ptr<WatchHandle> ExecutorState::watch(kvStore* bucket, std::string key, WatchSink sink,
                                                  const MarkerCheck& markers) {
  BucketWatch* hub = nullptr;
  {
    std::lock_guard lock(watch_mu_);
    auto& slot = watches_[bucket];
    if (!slot.watch)
      slot.watch = std::make_unique<BucketWatch>(bucket, markers);
    ++slot.users;
    hub = slot.watch.get();
  }
  auto handle = std::make_unique<SharedWatchHandle>(*this, bucket);
  handle->subscription_ = hub->subscribe(std::move(key), std::move(sink));
  return handle;
}

void ExecutorState::release_watch(kvStore* bucket) noexcept {
  std::unique_ptr<BucketWatch> last;
  {
    std::lock_guard lock(watch_mu_);
    const auto it = watches_.find(bucket);
    if (it == watches_.end() || --it->second.users > 0)
      return;
    last = std::move(it->second.watch);
    watches_.erase(it);
  }
  // The last election on this bucket handle has ended: its watch ends now, before that
  // election's stop() returns, so that the caller may then destroy the handle. This waits for
  // cnats' consumer delete (one round trip; a request timeout if the server does not answer)
  // and for a flush (lib/retire.hpp: up to 250 ms more), as a stopping election with a watch of
  // its own does.
}

std::unique_ptr<ExecutorState::WriterLease> ExecutorState::writer(kvStore* bucket) {
  if (!options_.async_writes)
    return nullptr;
  auto route = route_of(bucket);
  if (!route)
    return nullptr;
  AsyncWriter* writer = nullptr;
  {
    std::lock_guard lock(writer_mu_);
    auto& slot = writers_[route->connection];
    if (!slot.writer) {
      try {
        // Its subscription is destroyed on the request pool, not on the campaign thread where
        // the last election ends: that waits for a round trip (lib/retire.hpp).
        slot.writer = std::make_unique<AsyncWriter>(
            route->connection, [this](std::function<void()> job) { post_io(std::move(job)); });
      } catch (...) {
        writers_.erase(route->connection);
        throw;
      }
    }
    ++slot.users;
    writer = slot.writer.get();
  }
  natsConnection* connection = route->connection;
  return std::make_unique<WriterLease>(*this, connection, writer, std::move(*route));
}

ExecutorState::WriterLease::~WriterLease() { owner_.release_writer(connection_); }

void ExecutorState::release_writer(natsConnection* connection) noexcept {
  std::unique_ptr<AsyncWriter> last;
  {
    std::lock_guard lock(writer_mu_);
    const auto it = writers_.find(connection);
    if (it == writers_.end() || --it->second.users > 0)
      return;
    last = std::move(it->second.writer);
    writers_.erase(it);
  }
  // Unsubscribed here, outside the lock, before the last election's stop() returns (the
  // connection may be closed right after); its subscription is destroyed on the request pool.
}

std::size_t ExecutorState::elections() const {
  std::lock_guard lock(mu_);
  return tasks_.size();
}

std::size_t ExecutorState::threads() const {
  std::size_t watches = 0;
  {
    std::lock_guard lock(watch_mu_);
    watches = watches_.size();
  }
  std::size_t writers = 0;
  {
    // Each writer's reply subscription has a cnats delivery thread.
    std::lock_guard lock(writer_mu_);
    writers = writers_.size();
  }
  return 1 + io_thread_count_.load() + watches + writers;
}

} // namespace detail

Executor::Executor(ExecutorOptions options)
    : state_(std::make_shared<detail::ExecutorState>(options)) {
  state_->start(state_);
}

Executor::~Executor() { state_->shutdown(); }

std::size_t Executor::elections() const { return state_->elections(); }
std::size_t Executor::threads() const { return state_->threads(); }

Option WithExecutor(Executor& executor) {
  return Option{[state = executor.state_](Config& config) { config.executor = state; }};
}

} // namespace kvelect
