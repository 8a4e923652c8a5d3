// SPDX-License-Identifier: Apache-2.0
#include "election_impl.hpp"

#include "handles.hpp"

#include <kvelect/nats.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <random>
#include <utility>

namespace kvelect {

using namespace std::chrono_literals;
using detail::Entry;
using detail::Op;
using detail::Outcome;
using detail::WatchEvent;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

namespace {

// Choria's limits on the bucket TTL (lifted by SkipValidation()).
constexpr milliseconds kMinTtl = 5s;
constexpr milliseconds kMaxTtl = 1h;
constexpr std::size_t kMaxNameLength = 1024;

// A candidate tries to take an expired key this long after the TTL it computed, so that the
// server's expiry timer has run (docs/protocol.md, "Expiry").
constexpr auto kExpiryMargin = 5ms;
// Retries of an expiry attempt that found the key still there double from this up to the cap.
constexpr auto kExpiryRetryFirst = 10ms;
constexpr auto kExpiryRetryCap = 200ms;
// A renewal that failed without an answer is retried this soon: the lease, not the retry count,
// decides when the leader gives up (docs/protocol.md, "Renewal").
constexpr auto kRenewRetry = 50ms;
// The least time between a renewal's send and the end of the lease it renews, for the request,
// its retries and the campaign thread's scheduling on a loaded machine.
constexpr auto kRenewalWindow = 250ms;
// A watch that has not shown a revision we know was written after this long is recreated.
constexpr auto kWatchCatchUp = 1s;
// Herd control (docs/protocol.md, "Herd control"): a candidate that lost the race for the last
// vacancy waits a random 0 .. window before writing for the next one, the window doubling from
// the first value with each consecutive loss up to the cap. A winner writes at once.
constexpr auto kHerdWindowFirst = 2ms;
constexpr auto kHerdWindowCap = 64ms;

std::uint64_t random_below(std::uint64_t bound) {
  if (bound == 0)
    return 0;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_int_distribution<std::uint64_t>(0, bound - 1)(rng);
}

bool is_marker(std::string_view value) {
  return value.substr(0, detail::kReservedPrefix.size()) == detail::kReservedPrefix;
}

Config make_config(const std::vector<Option>& options) {
  Config config;
  for (const auto& option : options)
    if (option.apply)
      option.apply(config);
  return config;
}

// The member a key value names, if it names one.
std::optional<std::string> member_of(const Entry& entry) {
  if (entry.op != Op::put || entry.value.empty() || is_marker(entry.value))
    return std::nullopt;
  return entry.value;
}

} // namespace

bool valid_key(std::string_view key) noexcept {
  if (key.empty() || key.front() == '.' || key.back() == '.')
    return false;
  char previous = 0;
  for (char c : key) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '/' || c == '_' || c == '=' || c == '.';
    if (!ok || (c == '.' && previous == '.'))
      return false;
    previous = c;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// IoWorker

namespace detail {

IoWorker::IoWorker() : thread_([this](std::stop_token stop) { run(std::move(stop)); }) {}

IoWorker::~IoWorker() {
  thread_.request_stop();
  if (thread_.joinable())
    thread_.join();
}

void IoWorker::post(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void IoWorker::run(std::stop_token stop) {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mu_);
      if (!cv_.wait(lock, stop, [this] { return !jobs_.empty(); }))
        return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

} // namespace detail

// ---------------------------------------------------------------------------------------------
// Construction and validation

Election::Impl::Impl(std::string name, std::string key, kvStore* bucket,
                     const std::vector<Option>& options, bool observe_only)
    : name_(std::move(name)), key_(std::move(key)), bucket_(bucket), config_(make_config(options)),
      observe_only_(observe_only), executor_(config_.executor) {
  if (!observe_only_) {
    if (name_.empty())
      throw Error(Errc::invalid_name, "member name is empty");
    if (name_.size() > kMaxNameLength)
      throw Error(Errc::invalid_name, fmt::format("member name is {} bytes long, the limit is {}",
                                                  name_.size(), kMaxNameLength));
    if (is_marker(name_))
      throw Error(Errc::invalid_name,
                  fmt::format("member name '{}' uses the reserved prefix 'kvelect:'", name_));
  }
  if (key_.empty())
    throw Error(Errc::invalid_key, "election key is empty");
  if (!valid_key(key_))
    throw Error(Errc::invalid_key,
                fmt::format("election key '{}' is not a valid KV key (allowed: [-/_=.a-zA-Z0-9], "
                            "no leading, trailing or doubled '.')",
                            key_));
  if (bucket_ == nullptr)
    throw Error(Errc::null_bucket, "bucket is null: pass an open kvStore*");

  const BucketInfo info = bucket_info(bucket_); // throws connection_closed / bucket_unavailable
  if (info.ttl <= 0ms)
    throw Error(Errc::bucket_without_ttl,
                fmt::format("bucket '{}' has no TTL (MaxAge): a dead leader would never expire; "
                            "create it with a TTL",
                            info.name));
  ttl_ms_ = info.ttl;
  if (!config_.skip_validation && ttl_ms_ < kMinTtl)
    throw Error(Errc::ttl_too_short, fmt::format("bucket '{}' TTL {} ms is below the {} ms minimum",
                                                 info.name, ttl_ms_.count(), kMinTtl.count()));
  if (!config_.skip_validation && ttl_ms_ > kMaxTtl)
    throw Error(Errc::ttl_too_long, fmt::format("bucket '{}' TTL {} ms is above the {} ms maximum",
                                                info.name, ttl_ms_.count(), kMaxTtl.count()));

  // Choria: campaign every 0.75 × TTL, at least 1 s, and at least 1 s below the TTL.
  interval_ms_ = ttl_ms_ * 3 / 4;
  if (!config_.skip_validation) {
    if (interval_ms_ < 1s)
      throw Error(Errc::invalid_option,
                  fmt::format("campaign interval {} ms is below 1 s", interval_ms_.count()));
    if (ttl_ms_ - interval_ms_ < 1s)
      throw Error(Errc::invalid_option,
                  fmt::format("campaign interval {} ms is within 1 s of the TTL {} ms",
                              interval_ms_.count(), ttl_ms_.count()));
  }
  if (interval_ms_ <= 0ms)
    interval_ms_ = 1ms;

  ttl_ = duration_cast<Duration>(ttl_ms_);
  // The lease guard: a leader gives up its lease this long before the key can expire on the
  // server. It absorbs the leader's own scheduling delay in firing OnLost and the drift between
  // its clock and the server's (docs/protocol.md, "Lease").
  guard_ = std::clamp<Duration>(ttl_ / 10, 20ms, 500ms);
  // Renew at the campaign interval, but early enough that a renewal leaves time for retries
  // inside the lease: at least a third of the TTL, and at least kRenewalWindow before the lease
  // ends; never more often than every TTL/4 (docs/protocol.md, "Renewal").
  renew_period_ = std::max<Duration>(
      ttl_ / 4, std::min<Duration>({duration_cast<Duration>(interval_ms_), ttl_ * 2 / 3,
                                    ttl_ - guard_ - kRenewalWindow}));

  port_ = detail::make_cnats_port(bucket_);
  stats_.campaign_interval = interval_ms_;
}

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
    public_state_ = observe_only_ ? State::Unknown : State::Candidate;
  }
  if (thread_.joinable()) // a loop that ended by itself (fatal error, stop from a callback)
    thread_.join();
  if (executor_) {
    try {
      executor_->attach(shared_from_this());
    } catch (...) {
      std::lock_guard lock(mu_);
      running_ = false;
      public_state_ = State::Unknown;
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
    // Called from a callback: the thread cannot join itself. Mark the stop, end leadership now
    // so that OnLost has fired before stop() returns, and let the loop finish when the callback
    // returns; teardown fires no further callbacks.
    {
      std::lock_guard lock(mu_);
      stop_requested_ = true;
    }
    stopping_ = true;
    if (role_ == Role::leader)
      lose("stopped");
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
    drive_here();
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
    if (const auto* result = std::get_if<IoResult>(&item); result && result->run != run_generation_)
      return; // a result of an earlier run, finished on a shared request thread
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
  std::lock_guard lock(mu_);
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

void Election::Impl::reset_for_run() {
  role_ = observe_only_ ? Role::idle : Role::candidate;
  view_ = {};
  stopping_ = fatal_ = io_busy_ = attempt_wanted_ = renew_wanted_ = false;
  release_wanted_ = held_revision_ = 0;
  win_revision_ = 0;
  holder_seen_ = false;
  const auto now = Clock::now();
  // Start-up splay: members started together do not all write at once (PRIOR-ART G).
  start_after_ = now + duration_cast<Duration>(milliseconds(random_below(
                           static_cast<std::uint64_t>(config_.startup_splay.count()) + 1)));
  next_campaign_ = observe_only_ ? TimePoint::max() : start_after_;
  next_renewal_ = expiry_attempt_ = retry_at_ = guard_until_ = term_end_ = TimePoint::max();
  herd_attempt_ = TimePoint::max();
  herd_wait_done_ = false;
  vacancy_losses_ = 0;
  watch_deadline_ = TimePoint::max();
  next_health_ = config_.health_check && !observe_only_ ? now : TimePoint::max();
  cooldown_until_ = {};
  last_watch_event_ = now;
  watch_revision_ = watch_expected_revision_ = 0;
  expiry_retry_ = kExpiryRetryFirst;
  failed_campaigns_ = 0;
  chained_attempts_ = 0;
  healthy_ = true;
  leader_reported_ = false;
  reported_leader_.reset();
  campaign_started_ = now;
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
        // While draining only results matter: the stop has been seen.
        return !inbox_.empty() ||
               (!draining_ && (stop_requested_ || resign_requests_ != resign_handled_));
      });
    }
    if (!step())
      break;
  }
  finish();
}

void Election::Impl::begin_run() {
  {
    std::lock_guard lock(mu_);
    loop_thread_id_ = std::this_thread::get_id();
    public_state_ = observe_only_ ? State::Unknown : State::Candidate;
    inbox_.clear();
    ++run_generation_;
  }
  reset_for_run();
  draining_ = release_sent_ = false;
  auto sink = [this](WatchEvent event) {
    // The echo of our own write need not wake the loop: the write's reply brings the same
    // news (docs/protocol.md, "Watching the key").
    const bool echo = event.kind == WatchEvent::Kind::entry && event.entry.op == Op::put &&
                      event.entry.value == name_;
    post(std::move(event), !echo);
  };
  try {
    if (executor_) {
      watch_ = executor_->watch(bucket_, key_, sink);
    } else {
      io_ = std::make_unique<detail::IoWorker>();
      watch_ = std::make_unique<detail::KeyWatch>(bucket_, key_, sink);
    }
  } catch (const std::exception& e) {
    // No thread could be started (the process is out of threads or memory): the loop cannot
    // run; the first step ends it.
    fail(Error(Errc::no_resources,
               fmt::format("cannot start the threads of election '{}': {}", key_, e.what())));
    return;
  }
  debugf("campaigning as '{}' for '{}': ttl {} ms, interval {} ms, lease guard {} ms", name_, key_,
         ttl_ms_.count(), interval_ms_.count(), duration_cast<milliseconds>(guard_).count());
}

bool Election::Impl::step() {
  std::deque<Inbox> batch;
  bool stop = false;
  {
    std::lock_guard lock(mu_);
    batch.swap(inbox_);
    stop = stop_requested_;
  }
  if (!draining_) {
    // The lease is checked before anything else is looked at: a process that was paused past
    // its lease reports OnLost first (docs/protocol.md, "Lease").
    TimePoint now = Clock::now();
    check_lease(now);
    if (!stop && !stopping_ && !fatal_) {
      std::size_t handled = 0;
      while (handled < batch.size()) {
        auto& item = batch[handled++];
        if (auto* event = std::get_if<WatchEvent>(&item))
          handle(*event, now);
        else if (auto* result = std::get_if<IoResult>(&item))
          handle(*result, now);
        pump_pending(now);
        now = Clock::now();
        check_lease(now);
        if (fatal_ || stopping_)
          break;
      }
      // What was not handled goes to the drain below (a request's result among it).
      batch.erase(batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(handled));
      if (!fatal_ && !stopping_) {
        std::unique_lock lock(mu_);
        if (resign_requests_ != resign_handled_) {
          const std::uint64_t target = resign_requests_;
          lock.unlock();
          const bool led = step_down("resigned", held_revision_);
          lock.lock();
          resign_handled_ = target;
          last_resign_result_ = led;
          changed_.notify_all();
        }
      }
      if (!fatal_ && !stopping_) {
        run_timers(Clock::now());
        pump_pending(Clock::now());
      }
    }
    {
      std::lock_guard lock(mu_);
      stop = stop || stop_requested_;
    }
    if (!stop && !stopping_ && !fatal_)
      return true;
    begin_drain();
  }
  return drain(batch);
}

void Election::Impl::begin_drain() {
  stopping_ = true;
  draining_ = true;
  if (role_ == Role::leader)
    lose("stopped");
  role_ = Role::idle;
  // The release below waits for the request in flight and for its own reply, bounded: a server
  // that does not answer costs at most this long (docs/protocol.md, "Release").
  give_up_ = Clock::now() + std::min<Duration>(ttl_, 5s);
}

bool Election::Impl::drain(std::deque<Inbox>& batch) {
  for (auto& item : batch)
    if (auto* result = std::get_if<IoResult>(&item)) {
      io_busy_ = false;
      const bool wrote = result->purpose == Purpose::renew || result->purpose == Purpose::acquire;
      if (wrote && result->write.outcome == Outcome::ok)
        held_revision_ = result->write.revision;
      else if (result->purpose == Purpose::release)
        release_wanted_ = 0;
    }
  // Release the key so that a successor takes over at once (docs/protocol.md, "Release"). Only
  // a revision-checked write: if anyone wrote since our last renewal, the release fails and
  // touches nothing.
  if (fatal_ || !config_.release_on_stop || observe_only_)
    return false;
  if (Clock::now() >= give_up_)
    return false;
  if (io_busy_)
    return true; // the request in flight first, or the release's own reply
  if (release_sent_)
    return false;
  const std::uint64_t revision = held_revision_ != 0 ? held_revision_ : release_wanted_;
  if (revision == 0)
    return false;
  send_release(revision);
  release_sent_ = true;
  return true;
}

void Election::Impl::finish() {
  // The last callback of the run: once running_ is false below, stop() may return (on an
  // executor it does not join anything), and no callback may run after that.
  debugf("left election '{}'", key_);
  watch_.reset();
  io_.reset();
  // Off the executor before the run is seen to end: a start() right after stop() returns
  // attaches anew, and nothing may then drop that new attachment.
  if (executor_)
    executor_->detach(this);
  {
    std::lock_guard lock(mu_);
    public_state_ = State::Unknown;
    lease_deadline_ = {};
    token_.reset();
    stats_.state = State::Unknown;
    stats_.is_leader = false;
    running_ = false;
    loop_thread_id_ = {};
    inbox_.clear();
    ++run_generation_; // results still on their way belong to no run
  }
  changed_.notify_all();
}

Election::Impl::TimePoint Election::Impl::next_deadline() const {
  if (draining_)
    return give_up_;
  TimePoint next = std::min({next_renewal_, retry_at_, guard_until_, term_end_, next_health_});
  // A leader checks that its watch caught up whenever it runs anyway, at the latest at its next
  // renewal (docs/protocol.md, "Watching the key").
  if (role_ != Role::leader && role_ != Role::pending)
    next = std::min(next, watch_deadline_);
  // Only the roles whose run_timers() branch advances these timers may wait for them; otherwise
  // a past deadline would wake the loop again at once (a leader busy-looping).
  if (role_ == Role::candidate)
    next = std::min({next, next_campaign_, expiry_attempt_, herd_attempt_});
  if (observe_only_)
    next = std::min(next, expiry_attempt_);
  if (role_ == Role::leader || role_ == Role::pending)
    next = std::min(next, lease_deadline_);
  // Watch silence check: the loop wakes at least once per TTL.
  next = std::min(next, last_watch_event_ + 2 * ttl_);
  return next;
}

// ---------------------------------------------------------------------------------------------
// Timers

void Election::Impl::check_lease(TimePoint now) {
  if (role_ != Role::leader && role_ != Role::pending)
    return;
  TimePoint deadline;
  {
    std::lock_guard lock(mu_);
    deadline = lease_deadline_;
  }
  if (now < deadline)
    return;
  if (role_ == Role::leader) {
    lose(fmt::format("lease ended: no renewal succeeded within {} ms",
                     duration_cast<milliseconds>(ttl_ - guard_).count()));
  } else {
    role_ = Role::candidate;
    guard_until_ = TimePoint::max();
    debug("lease ended while waiting out the takeover guard");
  }
  // We may still hold the key, but cannot know: a late renewal result will tell.
  next_renewal_ = TimePoint::max();
}

std::chrono::milliseconds Election::Impl::candidate_wait() {
  if (config_.backoff)
    return std::max(config_.backoff->duration(failed_campaigns_), 1ms);
  return interval_ms_;
}

void Election::Impl::run_timers(TimePoint now) {
  if (now >= next_health_) {
    bool healthy = true;
    guarded("health check", [&] { healthy = config_.health_check(); });
    if (healthy != healthy_)
      debugf("health check: {}", healthy ? "healthy" : "unhealthy");
    healthy_ = healthy;
    next_health_ = now + duration_cast<Duration>(config_.health_interval);
    if (!healthy_ && role_ == Role::leader)
      step_down("unhealthy", held_revision_);
    if (healthy_ && role_ == Role::candidate)
      maybe_attempt(now, "healthy again");
  }
  if (stopping_ || fatal_)
    return;
  if (role_ == Role::pending && now >= guard_until_)
    become_leader(now);
  if (role_ == Role::leader && now >= term_end_) {
    term_end_ = TimePoint::max();
    step_down("term limit reached", held_revision_);
  }
  if ((role_ == Role::leader || role_ == Role::pending) && now >= next_renewal_)
    renew(now);
  if (role_ == Role::candidate && now >= next_campaign_) {
    next_campaign_ = now + duration_cast<Duration>(candidate_wait());
    {
      std::lock_guard lock(mu_);
      ++stats_.candidate_campaigns;
    }
    guarded("OnCampaign", [&] {
      if (config_.on_campaign)
        config_.on_campaign(State::Candidate);
    });
    maybe_attempt(now, "campaign");
  }
  if (role_ == Role::candidate && now >= herd_attempt_) {
    herd_attempt_ = TimePoint::max();
    herd_wait_done_ = true;
    maybe_attempt(now, "vacancy, after the herd wait");
  }
  if (role_ == Role::candidate && now >= expiry_attempt_) {
    expiry_attempt_ = TimePoint::max();
    maybe_attempt(now, "expiry");
  }
  if (observe_only_ && now >= expiry_attempt_) {
    // An observer cannot see an expiry in the watch (nats-server 2.9 announces none): it reads
    // the key when the holder's value should have expired.
    expiry_attempt_ = TimePoint::max();
    if (io_busy_)
      expiry_attempt_ = now + kExpiryRetryFirst;
    else
      send_read(Purpose::acquire, 0, Vacancy::guarded);
  }
  if (now >= retry_at_) {
    retry_at_ = TimePoint::max();
    if (role_ == Role::candidate)
      maybe_attempt(now, "retry");
    else if (role_ == Role::leader || role_ == Role::pending)
      renew(now);
  }
  if (now >= watch_deadline_) {
    watch_deadline_ = TimePoint::max();
    if (watch_revision_ < watch_expected_revision_) {
      debugf("watch is behind (saw revision {}, expected {}): recreating it", watch_revision_,
             watch_expected_revision_);
      watch_->recreate();
    }
  }
  if (now >= last_watch_event_ + 2 * ttl_) {
    debug("watch silent for two TTLs: recreating it");
    last_watch_event_ = now;
    watch_->recreate();
  }
}

// ---------------------------------------------------------------------------------------------
// Requests

void Election::Impl::send_write(Purpose purpose, std::string value, std::uint64_t expected,
                                Vacancy vacancy) {
  io_busy_ = true;
  const TimePoint sent = Clock::now();
  if (purpose == Purpose::acquire) {
    std::lock_guard lock(mu_);
    ++stats_.create_attempts;
  }
  // The job holds the election: on an executor's request thread it can outlive the run.
  post_io([this, self = shared_from_this(), run = run_generation_, purpose,
           value = std::move(value), expected, vacancy, sent] {
    IoResult result;
    result.run = run;
    result.purpose = purpose;
    result.write = port_->write(key_, value, expected);
    result.sent = sent;
    result.expected = expected;
    result.vacancy = vacancy;
    post(std::move(result));
  });
}

void Election::Impl::send_read(Purpose origin, std::uint64_t hint, Vacancy vacancy) {
  io_busy_ = true;
  const TimePoint sent = Clock::now();
  post_io([this, self = shared_from_this(), run = run_generation_, origin, hint, vacancy, sent] {
    IoResult result;
    result.run = run;
    result.purpose = Purpose::read_after_race;
    result.origin = origin;
    result.read = port_->read(key_);
    result.sent = sent;
    result.expected = hint;
    result.vacancy = vacancy;
    post(std::move(result));
  });
}

void Election::Impl::send_probe(TimePoint now) {
  // Asks whether the bucket still exists. At most once a second: it only tells a deleted bucket
  // (fatal) from a passing outage (retried anyway).
  if (io_busy_ || now < next_probe_)
    return;
  next_probe_ = now + 1s;
  io_busy_ = true;
  post_io([this, self = shared_from_this(), run = run_generation_] {
    IoResult result;
    result.run = run;
    result.purpose = Purpose::probe;
    try {
      (void)bucket_info(bucket_);
      result.write.outcome = Outcome::ok;
    } catch (const Error& error) {
      result.write.outcome = error.code() == Errc::not_found ? Outcome::fatal : Outcome::retryable;
      result.write.code = error.code() == Errc::not_found ? Errc::bucket_deleted : error.code();
      result.write.message = error.what();
    }
    post(std::move(result));
  });
}

void Election::Impl::maybe_attempt(TimePoint now, const char* reason) {
  if (observe_only_ || role_ != Role::candidate || stopping_ || fatal_)
    return;
  if (now < start_after_ || now < cooldown_until_ || !healthy_)
    return;
  if (io_busy_) {
    attempt_wanted_ = true;
    return;
  }
  using Kind = KeyView::Kind;
  const bool vacant =
      view_.kind == Kind::released || view_.kind == Kind::tombstone || view_.kind == Kind::absent;
  if (vacant && vacancy_losses_ > 0 && !herd_wait_done_) {
    if (herd_attempt_ != TimePoint::max())
      return; // already waiting
    // Lost the last vacancy race: many members are likely to want this one too. Let a random
    // few write first; the watch shows their win before most of us have written.
    const auto window = std::min<Duration>(
        kHerdWindowCap, kHerdWindowFirst * (1 << std::min(vacancy_losses_ - 1, 5)));
    herd_attempt_ = now + Duration(static_cast<Duration::rep>(
                              random_below(static_cast<std::uint64_t>(window.count()) + 1)));
    return;
  }
  herd_wait_done_ = false;
  switch (view_.kind) {
  case Kind::released:
    debugf("{}: key released at revision {}, taking it", reason, view_.revision);
    send_write(Purpose::acquire, name_, view_.revision, Vacancy::clean);
    return;
  case Kind::tombstone:
    debugf("{}: key deleted at revision {}, taking it", reason, view_.revision);
    send_write(Purpose::acquire, name_, view_.revision, Vacancy::guarded);
    return;
  case Kind::absent:
  case Kind::unknown:
    debugf("{}: key {}, creating it", reason, view_.kind == Kind::absent ? "absent" : "unknown");
    send_write(Purpose::acquire, name_, 0, Vacancy::guarded);
    return;
  case Kind::held:
  case Kind::evicting: {
    // Held: the value expires one TTL after it was written, and it was written before we saw it.
    // Evicting: the holder may be gone; its lease ends within one TTL of its last renewal.
    const TimePoint due =
        (view_.kind == Kind::held ? view_.observed_at : last_holder_seen_) + ttl_ + kExpiryMargin;
    if (now < due) {
      expiry_attempt_ = std::min(expiry_attempt_, due);
      return;
    }
    const std::uint64_t expected = view_.kind == Kind::held ? 0 : view_.revision;
    debugf("{}: key held by '{}' should have expired, taking it", reason, view_.value);
    send_write(Purpose::acquire, name_, expected, Vacancy::guarded);
    return;
  }
  }
}

void Election::Impl::renew(TimePoint now) {
  next_renewal_ = TimePoint::max();
  if (io_busy_) {
    renew_wanted_ = true;
    return;
  }
  if (role_ == Role::leader) {
    {
      std::lock_guard lock(mu_);
      ++stats_.leader_campaigns;
    }
    guarded("OnCampaign", [&] {
      if (config_.on_campaign)
        config_.on_campaign(State::Leader);
    });
    if (role_ != Role::leader || stopping_)
      return; // the callback resigned or stopped
  }
  (void)now;
  send_write(Purpose::renew, name_, held_revision_, Vacancy::reclaim);
}

// ---------------------------------------------------------------------------------------------
// Results

void Election::Impl::handle(IoResult& result, TimePoint now) {
  io_busy_ = false;
  switch (result.purpose) {
  case Purpose::acquire: handle_acquire(result, now); break;
  case Purpose::renew: handle_renew(result, now); break;
  case Purpose::release:
    if (result.write.outcome == Outcome::ok) {
      debugf("released the key at revision {}", result.expected);
      expect_watch_to_reach(result.write.revision, now);
    } else {
      debugf("release not applied: {}", result.write.message);
    }
    if (held_revision_ == result.expected)
      held_revision_ = 0;
    break;
  case Purpose::read_after_race:
  case Purpose::read_after_unknown: handle_read(result, now); break;
  case Purpose::probe:
    if (result.write.outcome == Outcome::fatal) {
      fail(Error(Errc::bucket_deleted,
                 fmt::format("bucket of election '{}' is gone: {}", key_, result.write.message)));
      return;
    }
    break;
  }
  pump_pending(now);
}

void Election::Impl::pump_pending(TimePoint now) {
  if (fatal_ || stopping_ || io_busy_)
    return;
  // Work that waited for the worker, most urgent first.
  if (release_wanted_ != 0) {
    send_release(std::exchange(release_wanted_, 0));
    return;
  }
  if (renew_wanted_ && (role_ == Role::leader || role_ == Role::pending)) {
    renew_wanted_ = false;
    renew(now);
    return;
  }
  if (attempt_wanted_) {
    attempt_wanted_ = false;
    maybe_attempt(now, "deferred");
  }
}

void Election::Impl::handle_acquire(IoResult& result, TimePoint now) {
  const auto& w = result.write;
  switch (w.outcome) {
  case Outcome::ok: {
    chained_attempts_ = 0;
    held_revision_ = w.revision;
    win_revision_ = w.revision;
    // The key holds our name now: a watch that reports an older state (its initial "absent"
    // arriving after the win, a replay) must not override what the write proved.
    view_.kind = KeyView::Kind::held;
    view_.value = name_;
    view_.revision = w.revision;
    view_.observed_at = now;
    expect_watch_to_reach(w.revision, now);
    if (role_ != Role::candidate || stopping_) {
      // Stopped or stood down meanwhile: give the key back.
      release_wanted_ = w.revision;
      return;
    }
    {
      std::lock_guard lock(mu_);
      // The lease runs from when the winning request was sent: the server stamped the value
      // after that, so it cannot expire before sent + TTL (docs/protocol.md, "Lease").
      lease_deadline_ = result.sent + ttl_ - guard_;
    }
    next_renewal_ = result.sent + renew_period_;
    // Takeover guard (docs/protocol.md): a vacancy not made by a clean release may hide a
    // holder whose lease still runs; its lease ends within one TTL of when we last saw it.
    TimePoint safe_from = TimePoint::min();
    if (result.vacancy == Vacancy::guarded && holder_seen_)
      safe_from = last_holder_seen_ + ttl_;
    if (now >= safe_from) {
      become_leader(now);
    } else {
      role_ = Role::pending;
      guard_until_ = safe_from;
      debugf("won revision {}, waiting {} ms for the previous holder's lease to end", w.revision,
             duration_cast<milliseconds>(safe_from - now).count());
    }
    return;
  }
  case Outcome::lost_race:
    ++failed_campaigns_;
    vacancy_losses_ = std::min(vacancy_losses_ + 1, 8);
    // Re-read the key: it may be a tombstone whose revision we need, or a new holder.
    send_read(Purpose::acquire, w.current, result.vacancy);
    return;
  case Outcome::retryable:
    ++failed_campaigns_;
    report(w, "campaign");
    if (w.no_responders)
      send_probe(now);
    retry_at_ = std::min(retry_at_, now + 100ms);
    return;
  case Outcome::unknown:
    report(w, "campaign");
    // The write may have landed: read before deciding (PRIOR-ART F.5).
    result.origin = Purpose::acquire;
    send_read(Purpose::read_after_unknown, result.expected, result.vacancy);
    return;
  case Outcome::fatal: fail(Error(w.code, w.message)); return;
  }
}

void Election::Impl::handle_renew(IoResult& result, TimePoint now) {
  const auto& w = result.write;
  switch (w.outcome) {
  case Outcome::ok: {
    held_revision_ = w.revision;
    expect_watch_to_reach(w.revision, now);
    const auto latency = std::chrono::duration_cast<std::chrono::microseconds>(now - result.sent);
    {
      std::lock_guard lock(mu_);
      stats_.last_renewal_latency = latency;
      stats_.max_renewal_latency = std::max(stats_.max_renewal_latency, latency);
    }
    if (role_ == Role::leader || role_ == Role::pending) {
      std::lock_guard lock(mu_);
      lease_deadline_ = result.sent + ttl_ - guard_;
    } else if (role_ == Role::candidate && !stopping_) {
      if (release_wanted_ != 0) {
        // We meant to give the key back (become_leader): give back this newer revision.
        release_wanted_ = w.revision;
        held_revision_ = 0;
        return;
      }
      // The renewal landed after our lease had already ended: we still hold the key and nobody
      // else can have won it since, so take it back with a fresh revision check.
      debugf("late renewal landed at revision {}: reclaiming", w.revision);
      send_write(Purpose::acquire, name_, w.revision, Vacancy::reclaim);
      return;
    }
    next_renewal_ = result.sent + renew_period_;
    return;
  }
  case Outcome::lost_race:
    held_revision_ = 0;
    if (role_ == Role::leader)
      lose("renewal failed: the key was changed by someone else");
    else
      role_ = Role::candidate;
    // Someone else changed the key: an eviction mark, an operator, a member that took it after
    // our lease ended. Whatever it was, we must not take it straight back: the others get the
    // first chance, as after a resign (the reply can arrive before the watch shows the change).
    cooldown_until_ = now + ttl_;
    view_.kind = KeyView::Kind::unknown;
    send_read(Purpose::renew, w.current, Vacancy::guarded);
    return;
  case Outcome::retryable:
    report(w, "renewal");
    if (w.no_responders)
      send_probe(now);
    retry_at_ = std::min(retry_at_, now + kRenewRetry);
    return;
  case Outcome::unknown:
    report(w, "renewal");
    send_read(Purpose::read_after_unknown, result.expected, Vacancy::reclaim);
    return;
  case Outcome::fatal: fail(Error(w.code, w.message)); return;
  }
}

void Election::Impl::handle_read(IoResult& result, TimePoint now) {
  const auto& r = result.read;
  if (r.outcome != Outcome::ok) {
    report({r.outcome, 0, 0, false, r.code, r.message}, "read");
    if (r.outcome == Outcome::fatal) {
      fail(Error(r.code, r.message));
      return;
    }
    retry_at_ = std::min(retry_at_, now + 100ms);
    return;
  }
  const Entry& entry = r.entry;
  const bool after_unknown =
      result.purpose == Purpose::read_after_unknown || result.origin == Purpose::read_after_unknown;
  // A write whose outcome was unknown: did our value land?
  if (after_unknown && entry.op == Op::put && entry.value == name_ &&
      entry.revision > result.expected) {
    if (role_ == Role::candidate && !stopping_) {
      // A write of ours landed (this campaign's, or an older renewal that arrived late), but
      // the server stamped it at a time we do not know, so no lease can count from it. Take the
      // key back with a revision-checked write: it succeeds only if nobody wrote since, and its
      // lease counts from its own send time (docs/protocol.md, "Unknown outcomes").
      debugf("a write of unknown outcome landed at revision {}: reclaiming", entry.revision);
      send_write(Purpose::acquire, name_, entry.revision, result.vacancy);
      return;
    }
    if (role_ == Role::leader || role_ == Role::pending) {
      // Our renewal landed; keep its revision but do not extend the lease (we do not know when
      // it was applied). The next renewal is sent at once.
      held_revision_ = entry.revision;
      next_renewal_ = now;
      return;
    }
  }
  if (after_unknown && (role_ == Role::leader || role_ == Role::pending)) {
    if (entry.op == Op::put && entry.value == name_ && entry.revision == held_revision_) {
      retry_at_ = std::min(retry_at_, now + kRenewRetry); // not applied: send it again
      return;
    }
    held_revision_ = 0;
    if (role_ == Role::leader)
      lose("renewal outcome unknown and the key no longer holds our revision");
    else
      role_ = Role::candidate;
    cooldown_until_ = now + ttl_; // as after a lost revision check (handle_renew)
  }
  if (entry.op == Op::absent && result.expected != 0) {
    // The write's revision check named a revision, yet no live value is there: a tombstone.
    detail::Entry tombstone;
    tombstone.op = Op::del;
    tombstone.revision = result.expected;
    observe(tombstone, now, false);
  } else {
    observe(entry, now, false);
  }
  if (role_ == Role::candidate && chained_attempts_ < 2 &&
      (view_.kind == KeyView::Kind::tombstone || view_.kind == KeyView::Kind::released ||
       view_.kind == KeyView::Kind::absent)) {
    ++chained_attempts_;
    maybe_attempt(now, "after re-read");
  } else if ((role_ == Role::candidate || observe_only_) && view_.kind == KeyView::Kind::held &&
             result.origin == Purpose::acquire) {
    // An expiry attempt found the key still there: the server's expiry may lag by a few ms.
    if (now + kExpiryRetryFirst >= view_.observed_at + ttl_) {
      expiry_attempt_ = std::min(expiry_attempt_, now + expiry_retry_);
      expiry_retry_ = std::min<Duration>(expiry_retry_ * 2, kExpiryRetryCap);
    }
    chained_attempts_ = 0;
  } else {
    chained_attempts_ = 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Watch

void Election::Impl::handle(WatchEvent& event, TimePoint now) {
  last_watch_event_ = now;
  switch (event.kind) {
  case WatchEvent::Kind::failed:
    debug(event.message);
    {
      std::lock_guard lock(mu_);
      stats_.last_error = event.message;
    }
    send_probe(now);
    return;
  case WatchEvent::Kind::initial_done:
    if (view_.kind == KeyView::Kind::unknown)
      observe(Entry{}, now, true); // no entry: the key is absent
    return;
  case WatchEvent::Kind::entry: observe(event.entry, now, true); return;
  }
}

void Election::Impl::expect_watch_to_reach(std::uint64_t revision, TimePoint now) {
  if (revision > watch_revision_ && revision > watch_expected_revision_) {
    watch_expected_revision_ = revision;
    if (watch_deadline_ == TimePoint::max())
      watch_deadline_ = now + kWatchCatchUp;
  }
}

void Election::Impl::observe(const Entry& entry, TimePoint now, bool from_watch) {
  using Kind = KeyView::Kind;
  if (from_watch) {
    watch_revision_ = std::max(watch_revision_, entry.revision);
    if (watch_revision_ >= watch_expected_revision_)
      watch_deadline_ = TimePoint::max();
  }
  // Entries older than what we know are replays (a recreated watcher, a stale read).
  if (entry.op != Op::absent && entry.revision != 0 && entry.revision < view_.revision)
    return;

  const bool ours_now = (role_ == Role::leader || role_ == Role::pending) && entry.op == Op::put &&
                        entry.value == name_ && entry.revision >= win_revision_;

  // The leader watches its own key: any write that is not ours ends leadership at once. Entries
  // at or below our latest revision are older than our own write: stale, not foreign.
  const bool foreign = (role_ == Role::leader || role_ == Role::pending) && !ours_now &&
                       (entry.op == Op::absent ? !from_watch : entry.revision > held_revision_);
  if (foreign) {
    const bool evicted = entry.op == Op::put && entry.value == detail::kEvictValue;
    const std::string reason = evicted ? "evicted"
                               : entry.op == Op::put
                                   ? fmt::format("key overwritten by '{}'", entry.value)
                                   : std::string("key deleted");
    held_revision_ = 0;
    if (role_ == Role::leader) {
      if (evicted) {
        step_down(reason, 0);
        // Hand the key over at once: a revision-checked release of the eviction mark.
        release_wanted_ = entry.revision;
      } else {
        lose(reason);
      }
    } else {
      role_ = Role::candidate;
      guard_until_ = TimePoint::max();
      debugf("lost the pending win: {}", reason);
    }
    next_renewal_ = TimePoint::max();
  }

  view_.observed_at = now;
  view_.revision = entry.revision;
  view_.value = entry.value;
  switch (entry.op) {
  case Op::absent: view_.kind = Kind::absent; break;
  case Op::del:
  case Op::purge: view_.kind = Kind::tombstone; break;
  case Op::put:
    if (entry.value == detail::kReleasedValue)
      view_.kind = Kind::released;
    else if (entry.value == detail::kEvictValue)
      view_.kind = Kind::evicting;
    else
      view_.kind = Kind::held;
    break;
  }

  const auto holder = member_of(entry);
  if (holder && *holder != name_) {
    // Evidence that another member may hold a lease (docs/protocol.md, "Takeover guard"). Our
    // own name is no such evidence: it is our write (perhaps one whose result is still on its
    // way), or a dead incarnation of this member.
    last_holder_seen_ = now;
    holder_seen_ = true;
    cooldown_until_ = {}; // someone else leads: we are an ordinary candidate again
  }
  if (!holder_seen_ && !leader_reported_ &&
      (view_.kind == Kind::tombstone || view_.kind == Kind::evicting)) {
    // A tombstone or an eviction mark seen first may hide a holder we never saw, whose lease
    // may still run: count it as seen now, so a win waits out one TTL.
    last_holder_seen_ = now;
    holder_seen_ = true;
  }

  // Who leads, as far as we can see. A member names itself only while it leads: its own name
  // seen at any other time is a write of its own whose lease it does not hold (the echo of a
  // renewal that was in flight when it resigned or its lease ended, a write of unknown outcome
  // that landed, a pending win), so it names no leader (docs/protocol.md, "Reporting the
  // leader").
  if (holder && *holder == name_ && !observe_only_)
    set_observed_leader(role_ == Role::leader ? std::optional<std::string>(name_) : std::nullopt);
  else
    set_observed_leader(holder);

  if (view_.kind == Kind::held || view_.kind == Kind::evicting) {
    if (!ours_now && (role_ == Role::candidate || observe_only_)) {
      const TimePoint due =
          (view_.kind == Kind::held ? now : last_holder_seen_) + ttl_ + kExpiryMargin;
      expiry_attempt_ = due;
      expiry_retry_ = kExpiryRetryFirst;
    }
    return;
  }
  // A vacancy: campaign now.
  if (role_ == Role::candidate)
    maybe_attempt(now, from_watch ? "vacancy seen" : "vacancy read");
}

// ---------------------------------------------------------------------------------------------
// Transitions

void Election::Impl::become_leader(TimePoint now) {
  vacancy_losses_ = 0;
  // The win's reply, or the end of the takeover guard, may come after the lease it started has
  // already ended (a stalled process, a reply slower than TTL − guard). OnWon must never fire
  // for an ended lease. Taking the key back would only repeat the race on a link that slow, and
  // the key would stay ours without a leader, so give it back (revision-checked: it touches
  // nothing if someone else wrote) and let the others go first (docs/protocol.md, "Lease").
  now = std::max(now, Clock::now());
  TimePoint deadline;
  {
    std::lock_guard lock(mu_);
    deadline = lease_deadline_;
  }
  if (now >= deadline) {
    role_ = Role::candidate;
    guard_until_ = TimePoint::max();
    next_renewal_ = TimePoint::max();
    cooldown_until_ = now + ttl_;
    const auto revision = std::exchange(held_revision_, 0);
    debugf("the lease of revision {} ended before the win could be announced: releasing it",
           revision);
    release(revision); // with a renewal in flight, see handle_renew
    return;
  }
  role_ = Role::leader;
  guard_until_ = TimePoint::max();
  failed_campaigns_ = 0;
  term_end_ = config_.term_limit.count() > 0 ? now + duration_cast<Duration>(config_.term_limit)
                                             : TimePoint::max();
  const Token token = win_revision_;
  {
    std::lock_guard lock(mu_);
    public_state_ = State::Leader;
    token_ = token;
    leadership_ = std::stop_source();
    ++stats_.wins;
    stats_.state = State::Leader;
    stats_.is_leader = true;
    stats_.last_acquire_time =
        std::chrono::duration_cast<std::chrono::microseconds>(now - campaign_started_);
    leader_ = name_; // leader() agrees with is_leader() from the first moment
  }
  changed_.notify_all();
  debugf("won election '{}' with token {}", key_, token);
  guarded("OnWon", [&] {
    if (config_.on_won)
      config_.on_won(token);
  });
  if (role_ == Role::leader)
    set_observed_leader(name_);
}

void Election::Impl::lose(const std::string& reason) {
  if (role_ != Role::leader)
    return;
  role_ = Role::candidate;
  term_end_ = TimePoint::max();
  campaign_started_ = Clock::now();
  {
    std::lock_guard lock(mu_);
    public_state_ = stopping_ ? State::Unknown : State::Candidate;
    token_.reset();
    lease_deadline_ = {};
    leadership_.request_stop();
    ++stats_.losses;
    stats_.state = public_state_;
    stats_.is_leader = false;
  }
  changed_.notify_all();
  debugf("lost leadership of '{}': {}", key_, reason);
  // OnLost fires even while stopping: stop() promises it exactly once when leading.
  guarded("OnLost", [&] {
    if (config_.on_lost)
      config_.on_lost();
  });
  if (!stopping_)
    set_observed_leader(std::nullopt);
}

bool Election::Impl::step_down(const std::string& reason, std::uint64_t release_revision) {
  if (role_ == Role::pending) {
    role_ = Role::candidate;
    guard_until_ = TimePoint::max();
    release_wanted_ = held_revision_;
    held_revision_ = 0;
    return false;
  }
  if (role_ != Role::leader)
    return false;
  lose(reason);
  // Others get the first chance: we do not campaign again until another leader is seen or a
  // TTL has passed (term limits, eviction, health, resign()).
  cooldown_until_ = Clock::now() + ttl_;
  if (release_revision != 0) {
    held_revision_ = 0;
    release(release_revision);
  }
  return true;
}

void Election::Impl::release(std::uint64_t revision) {
  if (revision == 0)
    return;
  if (io_busy_)
    release_wanted_ = revision; // pump_pending() sends it when the request in flight is done
  else
    send_release(revision);
}

void Election::Impl::send_release(std::uint64_t revision) {
  // Revision-checked: if anyone wrote since `revision`, it fails and touches nothing
  // (docs/protocol.md, "Release").
  send_write(Purpose::release, std::string(detail::kReleasedValue), revision, Vacancy::clean);
}

void Election::Impl::fail(const Error& error) {
  debugf("fatal: {}", error.what());
  {
    std::lock_guard lock(mu_);
    stats_.last_error = error.what();
  }
  guarded("OnError", [&] {
    if (config_.on_error)
      config_.on_error(error);
  });
  if (role_ == Role::leader)
    lose(error.what());
  fatal_ = true;
}

void Election::Impl::report(const detail::WriteResult& failure, std::string_view what) {
  const std::string message = fmt::format("{} failed: {}", what, failure.message);
  debug(message);
  {
    std::lock_guard lock(mu_);
    ++stats_.failed_requests;
    stats_.last_error = message;
  }
  guarded("OnError", [&] {
    if (config_.on_error)
      config_.on_error(
          Error(failure.code == Errc::ok ? Errc::request_failed : failure.code, message));
  });
}

void Election::Impl::set_observed_leader(std::optional<std::string> leader) {
  if (leader_reported_ && reported_leader_ == leader)
    return;
  leader_reported_ = true;
  reported_leader_ = leader;
  {
    std::lock_guard lock(mu_);
    leader_ = leader;
  }
  if (stopping_)
    return;
  guarded("OnNewLeader", [&] {
    if (config_.on_new_leader)
      config_.on_new_leader(leader ? std::optional<std::string_view>(*leader) : std::nullopt);
  });
}

template <typename F>
void Election::Impl::guarded(std::string_view what, F&& call) {
  try {
    call();
  } catch (const std::exception& e) {
    const std::string message = fmt::format("{} callback threw: {}", what, e.what());
    debug(message);
    if (what != "OnError" && config_.on_error) {
      try {
        config_.on_error(Error(Errc::callback_failed, message));
      } catch (...) { // NOLINT(bugprone-empty-catch): an OnError that throws is only logged
        debug("OnError callback threw");
      }
    }
  } catch (...) {
    debug(fmt::format("{} callback threw a non-standard exception", what));
  }
}

void Election::Impl::debug(std::string_view line) const {
  if (!config_.debug)
    return;
  try {
    config_.debug(line);
  } catch (...) { // NOLINT(bugprone-empty-catch): a debug sink must not break the loop
  }
}

template <typename... Args>
void Election::Impl::debugf(const char* format, const Args&... args) const {
  if (config_.debug)
    debug(fmt::format(fmt::runtime(format), args...));
}

// ---------------------------------------------------------------------------------------------
// Queries

bool Election::Impl::is_leader() const {
  std::lock_guard lock(mu_);
  // The lease deadline is checked here too, so a paused or cut-off leader answers false the
  // moment its lease ends, even before the loop has run (docs/protocol.md, "Lease").
  return public_state_ == State::Leader && Clock::now() < lease_deadline_;
}

State Election::Impl::state() const {
  std::lock_guard lock(mu_);
  if (public_state_ == State::Leader && Clock::now() >= lease_deadline_)
    return State::Candidate;
  return public_state_;
}

std::optional<Token> Election::Impl::token() const {
  std::lock_guard lock(mu_);
  if (public_state_ != State::Leader || Clock::now() >= lease_deadline_)
    return std::nullopt;
  return token_;
}

std::optional<std::string> Election::Impl::leader() const {
  std::lock_guard lock(mu_);
  return leader_;
}

std::optional<std::string> Election::Impl::read_leader() const {
  return kvelect::read_leader(bucket_, key_);
}

bool Election::Impl::await(std::chrono::milliseconds timeout) {
  if (on_executor_thread()) // waiting would stop every election of the executor
    return is_leader();
  const auto deadline = Clock::now() + duration_cast<Duration>(std::min<milliseconds>(
                                           std::max(timeout, 0ms), milliseconds(24h * 365)));
  std::unique_lock lock(mu_);
  for (;;) {
    if (public_state_ == State::Leader && Clock::now() < lease_deadline_)
      return true;
    const auto now = Clock::now();
    if (now >= deadline)
      return false;
    // Waits are sliced: converting a far deadline between clocks could overflow.
    changed_.wait_for(lock, std::min<Duration>(deadline - now, 1s));
  }
}

bool Election::Impl::await(std::stop_token stop) {
  if (on_executor_thread())
    return is_leader();
  std::unique_lock lock(mu_);
  for (;;) {
    if (public_state_ == State::Leader && Clock::now() < lease_deadline_)
      return true;
    if (stop.stop_requested())
      return false;
    // Wake at least every 100 ms: a lease can end without a notification.
    changed_.wait_for(lock, stop, 100ms, [] { return false; });
  }
}

std::stop_token Election::Impl::leadership() const {
  std::lock_guard lock(mu_);
  if (public_state_ == State::Leader && Clock::now() < lease_deadline_)
    return leadership_.get_token();
  std::stop_source ended;
  ended.request_stop();
  return ended.get_token();
}

bool Election::Impl::resign() {
  if (on_loop_thread())
    return step_down("resigned", held_revision_);
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

Stats Election::Impl::stats() const {
  std::lock_guard lock(mu_);
  Stats copy = stats_;
  copy.state = public_state_;
  copy.is_leader = public_state_ == State::Leader && Clock::now() < lease_deadline_;
  return copy;
}

// ---------------------------------------------------------------------------------------------
// Election

Election::Election(std::string name, std::string key, kvStore* bucket,
                   const std::vector<Option>& options)
    : impl_(std::make_shared<Impl>(std::move(name), std::move(key), bucket, options, false)) {}

Election::~Election() { impl_->stop(); }

void Election::start() { impl_->start(); }
void Election::stop() noexcept { impl_->stop(); }
void Election::run(std::stop_token stop) { impl_->run(std::move(stop)); }
bool Election::is_leader() const { return impl_->is_leader(); }
State Election::state() const { return impl_->state(); }
std::optional<Token> Election::token() const { return impl_->token(); }
std::optional<std::string> Election::leader() const { return impl_->leader(); }
std::optional<std::string> Election::read_leader() const { return impl_->read_leader(); }
bool Election::await(std::chrono::milliseconds timeout) { return impl_->await(timeout); }
bool Election::await(std::stop_token stop) { return impl_->await(std::move(stop)); }
std::stop_token Election::leadership() const { return impl_->leadership(); }
bool Election::resign() { return impl_->resign(); }
Stats Election::stats() const { return impl_->stats(); }
const std::string& Election::name() const noexcept { return impl_->name(); }
const std::string& Election::key() const noexcept { return impl_->key(); }
std::chrono::milliseconds Election::ttl() const noexcept { return impl_->ttl(); }
std::chrono::milliseconds Election::campaign_interval() const noexcept {
  return impl_->campaign_interval();
}

// ---------------------------------------------------------------------------------------------
// Observer

Observer::Observer(std::string key, kvStore* bucket, std::vector<Option> options) {
  options.push_back(SkipValidation()); // an observer accepts any bucket that has a TTL
  impl_ = std::make_shared<Election::Impl>(std::string(), std::move(key), bucket, options, true);
}
Observer::~Observer() { impl_->stop(); }
void Observer::start() { impl_->start(); }
void Observer::stop() noexcept { impl_->stop(); }
std::optional<std::string> Observer::leader() const { return impl_->leader(); }
std::optional<std::string> Observer::read_leader() const { return impl_->read_leader(); }
std::optional<std::string> Observer::evict() {
  return kvelect::evict(impl_->bucket(), impl_->key());
}

// ---------------------------------------------------------------------------------------------
// Free functions

namespace {

void check_bucket_and_key(kvStore* bucket, std::string_view key) {
  if (bucket == nullptr)
    throw Error(Errc::null_bucket, "bucket is null: pass an open kvStore*");
  if (!valid_key(key))
    throw Error(Errc::invalid_key, fmt::format("election key '{}' is not a valid KV key", key));
}

} // namespace

std::optional<std::string> read_leader(kvStore* bucket, std::string_view key) {
  check_bucket_and_key(bucket, key);
  auto port = detail::make_cnats_port(bucket);
  const auto result = port->read(key);
  if (result.outcome != Outcome::ok)
    throw Error(result.code, fmt::format("cannot read election '{}': {}", key, result.message));
  return member_of(result.entry);
}

std::optional<std::string> evict(kvStore* bucket, std::string_view key) {
  check_bucket_and_key(bucket, key);
  auto port = detail::make_cnats_port(bucket);
  for (int attempt = 0; attempt < 5; ++attempt) {
    const auto read = port->read(key);
    if (read.outcome != Outcome::ok)
      throw Error(read.code, fmt::format("cannot read election '{}': {}", key, read.message));
    auto holder = member_of(read.entry);
    if (!holder)
      return std::nullopt;
    // Revision-checked, so it marks exactly the leader we read and nobody who won since.
    const auto written = port->write(key, detail::kEvictValue, read.entry.revision);
    if (written.outcome == Outcome::ok)
      return holder;
    if (written.outcome != Outcome::lost_race)
      throw Error(written.code,
                  fmt::format("cannot evict the leader of '{}': {}", key, written.message));
  }
  throw Error(Errc::request_failed,
              fmt::format("cannot evict the leader of '{}': the key kept changing", key));
}

} // namespace kvelect
