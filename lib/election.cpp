// SPDX-License-Identifier: Apache-2.0
// The driver of an election (lib/election_impl.hpp): threads, the clock, cnats and the user's
// callbacks around the protocol core. It makes no protocol decision of its own.
#include "election_impl.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace kvelect {

using namespace std::chrono_literals;
using detail::Op;
using detail::WatchEvent;

Election::Impl::~Impl() {
  stop();
  // The last reference can be the loop thread's own (an Election destroyed from its callback):
  // the thread has finished its work and cannot join itself.
  if (thread_.joinable() && thread_.get_id() == std::this_thread::get_id())
    thread_.detach();
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

void Election::Impl::start() {
  std::lock_guard life(lifecycle_mu_);
  {
    std::lock_guard lock(mu_);
    if (running_)
      throw Error(Errc::already_running, fmt::format("election '{}' is already running", key_));
    running_ = true;
    stop_requested_ = false;
    view_.state = observe_only_ ? State::Unknown : State::Candidate;
  }
  if (thread_.joinable()) // a loop that ended by itself (fatal error, stop from a callback)
    thread_.join();
  if (executor_) {
    try {
      executor_->attach(shared_from_this());
    } catch (...) {
      std::lock_guard lock(mu_);
      running_ = false;
      view_.state = State::Unknown;
      throw;
    }
    return;
  }
  // The thread keeps the Impl alive, so an Election destroyed from its own callback does not
  // pull the loop's state from under it.
  thread_ = std::jthread(
      [self = shared_from_this()](std::stop_token stop) { self->loop(std::move(stop)); });
}

void Election::Impl::run(std::stop_token stop) {
  if (executor_) {
    // The executor runs the steps; the caller's thread only waits for the token or the end.
    start();
    {
      std::unique_lock lock(mu_);
      changed_.wait(lock, stop, [this] { return !running_; });
    }
    this->stop();
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (running_)
      throw Error(Errc::already_running, fmt::format("election '{}' is already running", key_));
    running_ = true;
    stop_requested_ = false;
  }
  loop(std::move(stop));
}

void Election::Impl::stop() noexcept {
  if (on_loop_thread()) {
    // Called from a callback: the thread cannot join itself. Leadership ends now, so that OnLost
    // has fired before stop() returns; the loop finishes when the callback returns, and the
    // teardown fires no further callbacks.
    {
      std::lock_guard lock(mu_);
      stop_requested_ = true;
    }
    if (!core_stopped_) {
      core_stopped_ = true;
      try {
        core_->stop(core_time(Clock::now()));
        dispatch();
      } catch (...) { // NOLINT(bugprone-empty-catch): out of memory; the loop ends all the same
      }
    }
    return;
  }
  if (executor_ && on_executor_thread()) {
    // From a callback of another election of the same executor: the executor's thread is
    // ours, so this election's steps run here until it has ended.
    {
      std::lock_guard lock(mu_);
      if (!running_)
        return;
      stop_requested_ = true;
    }
    try {
      drive_here();
    } catch (...) { // NOLINT(bugprone-empty-catch): out of memory; the run is over regardless
    }
    return;
  }
  std::lock_guard life(lifecycle_mu_);
  {
    std::unique_lock lock(mu_);
    stop_requested_ = true;
    wake_.notify_all();
    if (executor_)
      executor_->wake(this);
    // run() on another thread: wait for it to leave the loop.
    changed_.wait(lock, [this] { return !running_; });
  }
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id())
    thread_.join();
}

bool Election::Impl::resign() {
  if (on_loop_thread()) {
    const bool led = core_->resign(core_time(Clock::now()));
    dispatch();
    return led;
  }
  if (on_executor_thread()) {
    // A callback of another election of the same executor: run one step of this one here.
    std::uint64_t ticket = 0;
    {
      std::lock_guard lock(mu_);
      if (!running_)
        return false;
      ticket = ++resign_requests_;
    }
    if (executor_step())
      executor_->wake(this); // the executor reschedules it after this out-of-turn step
    std::lock_guard lock(mu_);
    return resign_handled_ >= ticket && last_resign_result_;
  }
  std::unique_lock lock(mu_);
  if (!running_)
    return false;
  const std::uint64_t ticket = ++resign_requests_;
  wake_.notify_all();
  if (executor_)
    executor_->wake(this);
  changed_.wait(lock, [&] { return resign_handled_ >= ticket || !running_; });
  return resign_handled_ >= ticket && last_resign_result_;
}

bool Election::Impl::on_loop_thread() const noexcept {
  if (executor_)
    return executor_->on_thread() && stepping_; // stepping_ is only touched on that thread
  std::lock_guard lock(mu_);
  return running_ && loop_thread_id_ == std::this_thread::get_id();
}

bool Election::Impl::on_executor_thread() const noexcept {
  return executor_ && executor_->on_thread();
}

void Election::Impl::post(Inbox item, bool urgent) {
  {
    std::lock_guard lock(mu_);
    inbox_.push_back(std::move(item));
    if (!urgent)
      return; // handled with whatever wakes the loop next
    if (executor_ && !driven_here_) {
      // The executor's thread steps it; nobody waits on wake_.
      executor_->wake(this);
      return;
    }
  }
  wake_.notify_all();
}

void Election::Impl::post_io(std::function<void()> job) {
  if (executor_)
    executor_->post_io(std::move(job));
  else
    io_->post(std::move(job));
}

// ---------------------------------------------------------------------------------------------
// The loop

std::optional<Election::Impl::TimePoint> Election::Impl::executor_step() {
  if (!begun_) {
    begin_run();
    begun_ = true;
  }
  stepping_ = true;
  const bool go = step();
  stepping_ = false;
  if (!go) {
    finish();
    begun_ = false;
    return std::nullopt;
  }
  return next_deadline();
}

void Election::Impl::drive_here() {
  for (;;) {
    const auto next = executor_step();
    if (!next)
      return; // finish() has detached it
    std::unique_lock lock(mu_);
    const auto now = Clock::now();
    driven_here_ = true;
    wake_.wait_until(lock, std::min<TimePoint>(*next, now + 1s),
                     [this] { return !inbox_.empty(); });
    driven_here_ = false;
  }
}

void Election::Impl::loop(std::stop_token external) {
  // Wake the loop when the caller's token is stopped.
  std::stop_callback on_external_stop(external, [this] {
    {
      std::lock_guard lock(mu_);
      stop_requested_ = true;
    }
    wake_.notify_all();
  });
  begin_run();
  for (;;) {
    {
      std::unique_lock lock(mu_);
      const TimePoint deadline = next_deadline();
      wake_.wait_until(lock, deadline, [this] {
        // While stopping only results matter: the stop has been seen.
        return !inbox_.empty() ||
               (!core_stopped_ && (stop_requested_ || resign_requests_ != resign_handled_));
      });
    }
    if (!step())
      break;
  }
  finish();
}

Election::Impl::TimePoint Election::Impl::next_deadline() const {
  const core::Time next = core_->next_wake();
  const TimePoint wake = next == core::kNever ? TimePoint::max() : clock_time(next);
  return async_write_ ? std::min(wake, async_write_->deadline) : wake;
}

void Election::Impl::begin_run() {
  {
    std::lock_guard lock(mu_);
    loop_thread_id_ = std::this_thread::get_id();
    inbox_.clear();
  }
  core_stopped_ = false;
  start_failed_ = false;
  auto sink = [this](WatchEvent event) {
    // The echo of our own write need not wake the loop: the write's reply brings the same
    // news (docs/protocol.md, "Watching the key").
    const bool echo = event.kind == WatchEvent::Kind::entry && event.entry.op == Op::put &&
                      !observe_only_ && event.entry.value == name_;
    post(std::move(event), !echo);
  };
  core_->start(core_time(Clock::now()));
  dispatch();
  try {
    if (executor_) {
      watch_ = executor_->watch(bucket_, key_, sink, markers_);
      if (!observe_only_) {
        writer_ = executor_->writer(bucket_);
        if (writer_)
          subject_ = writer_->route().subject_prefix + key_;
      }
    } else {
      io_ = std::make_unique<detail::IoWorker>();
      watch_ = std::make_unique<detail::KeyWatch>(bucket_, key_, sink, markers_);
    }
  } catch (const std::exception& e) {
    // No thread could be started (the process is out of threads or memory): the loop cannot
    // run; the first step ends it.
    const Error error(Errc::no_resources,
                      fmt::format("cannot start the threads of election '{}': {}", key_, e.what()));
    call_user("OnError", [&] {
      if (config_.on_error)
        config_.on_error(error);
    });
    {
      std::lock_guard lock(mu_);
      counters_.last_error = error.what();
    }
    io_.reset();
    watch_.reset();
    writer_.reset();
    start_failed_ = true;
  }
}

bool Election::Impl::step() {
  std::vector<Inbox> batch;
  bool stop = false;
  std::uint64_t resign_target = 0;
  {
    std::lock_guard lock(mu_);
    batch.swap(inbox_);
    stop = stop_requested_;
    resign_target = resign_requests_;
  }
  if (start_failed_) {
    // begin_run() could not start the threads: end the run.
    core_stopped_ = true;
    core_->stop(core_time(Clock::now()));
    dispatch();
    return false;
  }
  // Every core event checks the lease before anything else: a process that was paused past its
  // lease reports OnLost first (docs/protocol.md, "Lease"). Watch events that arrived go first
  // (each checks the lease itself): the echo of a member's own write does not wake the loop, so
  // it can wait in the inbox until the next timer, and the timers must not take it for a watch
  // that fell behind ("Watching the key"; with asynchronous writes the reply often comes before
  // the echo, and a needless recreate replays the whole bucket's watch).
  for (auto& item : batch) {
    if (std::holds_alternative<WatchEvent>(item)) {
      feed(item, core_time(Clock::now()));
      dispatch();
    }
  }
  core_->on_timer(core_time(Clock::now()));
  dispatch();
  expire_async_write(Clock::now());
  for (auto& item : batch) {
    if (std::holds_alternative<WatchEvent>(item))
      continue;
    feed(item, core_time(Clock::now()));
    dispatch();
  }
  bool resigned = false;
  bool led = false;
  {
    std::lock_guard lock(mu_);
    resigned = resign_target != resign_handled_;
  }
  if (resigned) {
    led = core_->resign(core_time(Clock::now()));
    dispatch();
    std::lock_guard lock(mu_);
    resign_handled_ = resign_target;
    last_resign_result_ = led;
    changed_.notify_all();
  }
  {
    std::lock_guard lock(mu_);
    stop = stop || stop_requested_;
  }
  if (stop && !core_stopped_) {
    core_stopped_ = true;
    core_->stop(core_time(Clock::now()));
    dispatch();
  }
  return !core_->finished() && core_->running();
}

void Election::Impl::feed(Inbox& item, core::Time now) {
  if (auto* event = std::get_if<WatchEvent>(&item)) {
    switch (event->kind) {
    case WatchEvent::Kind::entry: core_->on_watch_entry(now, event->entry); return;
    case WatchEvent::Kind::initial_done: core_->on_watch_ready(now); return;
    case WatchEvent::Kind::failed: core_->on_watch_failed(now, event->message); return;
    }
  } else if (auto* write = std::get_if<WriteDone>(&item)) {
    if (async_write_ && async_write_->id == write->id)
      async_write_.reset();
    core_->on_write(now, write->id, write->result);
  } else if (auto* read = std::get_if<ReadDone>(&item)) {
    core_->on_read(now, read->id, read->result);
  } else if (auto* bucket = std::get_if<BucketDone>(&item)) {
    core_->on_bucket(now, bucket->id, bucket->result);
  }
}

void Election::Impl::finish() {
  // The last callback of the run: once running_ is false below, stop() may return (on an
  // executor it does not join anything), and no callback may run after that.
  log(LogLevel::info, fmt::format("left election '{}'", key_));
  if (async_write_ && writer_)
    writer_->writer().cancel(async_write_->ticket);
  async_write_.reset();
  writer_.reset();
  watch_.reset();
  io_.reset();
  // Off the executor before the run is seen to end: a start() right after stop() returns
  // attaches anew, and nothing may then drop that new attachment.
  if (executor_)
    executor_->detach(this);
  {
    std::lock_guard lock(mu_);
    view_.state = State::Unknown;
    view_.leading = false;
    view_.lease_end = {};
    view_.token = 0;
    if (leadership_.stop_possible())
      leadership_.request_stop();
    running_ = false;
    loop_thread_id_ = {};
    inbox_.clear();
  }
  changed_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// Outputs

void Election::Impl::publish() {
  {
    std::lock_guard lock(mu_);
    const auto& next = core_->view();
    if (next.leaderships != view_.leaderships && next.leading)
      leadership_ = std::stop_source(); // a new leadership: a new token
    if (view_.leading && !next.leading && leadership_.stop_possible())
      leadership_.request_stop();
    view_ = next;
    counters_ = core_->counters();
  }
  changed_.notify_all();
}

void Election::Impl::dispatch() {
  publish();
  while (core_->has_output()) {
    core::Output output = core_->take_output();
    carry_out(output);
  }
}

void Election::Impl::carry_out(core::Output& output) {
  std::visit(
      [&](auto& o) {
        using O = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<O, core::SendWrite>) {
          if (writer_) {
            send_async_write(o);
            return;
          }
          // The job holds the election: on an executor's request thread it can outlive the run.
          post_io([this, self = shared_from_this(), o = std::move(o)] {
            post(WriteDone{o.id, port_->write(key_, o.value, o.expected)});
          });
        } else if constexpr (std::is_same_v<O, core::SendRead>) {
          post_io([this, self = shared_from_this(), id = o.id] {
            post(ReadDone{id, port_->read(key_)});
          });
        } else if constexpr (std::is_same_v<O, core::SendBucketRead>) {
          if (executor_) {
            // Shared with the other elections of the bucket (docs/executor.md).
            executor_->read_bucket(
                bucket_, markers_,
                [this, self = shared_from_this(), id = o.id](const core::BucketResult& result) {
                  post(BucketDone{id, result});
                });
            return;
          }
          post_io([this, self = shared_from_this(), id = o.id] {
            post(BucketDone{id, detail::read_bucket(bucket_, markers_)});
          });
        } else if constexpr (std::is_same_v<O, core::RecreateWatch>) {
          if (watch_)
            watch_->recreate();
        } else if constexpr (std::is_same_v<O, core::CallOnWon>) {
          call_user("OnWon", [&] {
            if (config_.on_won)
              config_.on_won(o.token);
          });
        } else if constexpr (std::is_same_v<O, core::CallOnLost>) {
          call_user("OnLost", [&] {
            if (config_.on_lost)
              config_.on_lost();
          });
        } else if constexpr (std::is_same_v<O, core::CallOnNewLeader>) {
          call_user("OnNewLeader", [&] {
            if (config_.on_new_leader)
              config_.on_new_leader(o.leader ? std::optional<std::string_view>(*o.leader)
                                             : std::nullopt);
          });
        } else if constexpr (std::is_same_v<O, core::CallOnCampaign>) {
          call_user("OnCampaign", [&] {
            if (config_.on_campaign)
              config_.on_campaign(o.state);
          });
        } else if constexpr (std::is_same_v<O, core::CallOnError>) {
          call_user("OnError", [&] {
            if (config_.on_error)
              config_.on_error(o.error);
          });
        } else if constexpr (std::is_same_v<O, core::CallHealthCheck>) {
          bool healthy = true;
          call_user("health check", [&] { healthy = config_.health_check(); });
          core_->on_health(core_time(Clock::now()), healthy);
          publish();
        } else if constexpr (std::is_same_v<O, core::DebugLine>) {
          log(o.level, o.line);
        }
      },
      output);
}

template <typename F>
void Election::Impl::call_user(std::string_view what, F&& call) {
  try {
    call();
  } catch (const std::exception& e) {
    const std::string message = fmt::format("{} callback threw: {}", what, e.what());
    log(LogLevel::error, message);
    if (what != "OnError" && config_.on_error) {
      try {
        config_.on_error(Error(Errc::callback_failed, message));
      } catch (...) { // NOLINT(bugprone-empty-catch): an OnError that throws is only logged
        log(LogLevel::error, "OnError callback threw");
      }
    }
  } catch (...) {
    log(LogLevel::error, fmt::format("{} callback threw a non-standard exception", what));
  }
}

void Election::Impl::log(LogLevel level, std::string_view line) const {
  // A sink that throws must not break the loop.
  if (config_.debug) {
    try {
      config_.debug(line);
    } catch (...) { // NOLINT(bugprone-empty-catch): see above
    }
  }
  if (config_.log) {
    try {
      config_.log(level, line);
    } catch (...) { // NOLINT(bugprone-empty-catch): see above
    }
  }
}

} // namespace kvelect
