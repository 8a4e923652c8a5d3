// SPDX-License-Identifier: Apache-2.0
#include "member.hpp"

#include "world.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace kvelect::sim {

namespace {

constexpr const char* kTimer = "timer";

template <typename... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <typename... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

std::string describe(const Reply& reply) {
  return std::visit(
      Overloaded{[](const WriteResult& w) {
                   switch (w.outcome) {
                   case Outcome::ok: return fmt::format("ok rev {}", w.revision);
                   case Outcome::lost_race: return fmt::format("lost race, current {}", w.current);
                   default: return fmt::format("{} ({})", static_cast<int>(w.outcome), w.message);
                   }
                 },
                 [](const ReadResult& r) {
                   if (r.outcome != Outcome::ok)
                     return fmt::format("read failed {} ({})", static_cast<int>(r.outcome),
                                        r.message);
                   if (r.entry.op == Op::absent)
                     return std::string("read: absent");
                   return fmt::format("read: '{}' rev {}", r.entry.value, r.entry.revision);
                 },
                 [](const core::BucketResult& b) {
                   if (b.outcome != Outcome::ok)
                     return fmt::format("bucket read failed {} ({})", static_cast<int>(b.outcome),
                                        b.message);
                   return fmt::format("bucket: ttl {} created {}", seconds(b.facts.ttl.count()),
                                      b.facts.created_ns);
                 }},
      reply);
}

} // namespace

Nanos ProcessClock::real_at(Nanos at) const {
  if (at >= kForever / 4)
    return kForever;
  const Int128 target = static_cast<Int128>(at) - offset;
  auto r = static_cast<Nanos>(target * 1'000'000'000 / (1'000'000'000 + rate_ppb));
  while (local(r) < at)
    ++r;
  while (local(r - 1) >= at)
    --r;
  return r;
}

Member::Member(World& world, int index, MemberSpec spec, ProcessClock clock, std::uint64_t seed)
    : world_(world), index_(index), spec_(std::move(spec)), clock_(clock), seed_(seed) {}

Member::~Member() = default;

template <typename F>
void Member::note(F&& make) {
  world_.note(index_, std::forward<F>(make));
}

core::Params Member::params() const {
  core::Params p;
  p.name = spec_.name;
  p.key = world_.config().key;
  p.bucket = world_.facts();
  // Choria's campaign interval, 0.75 × TTL, as lib/election.cpp computes it (validation off:
  // the simulator also runs TTLs below the library's 5 s minimum).
  p.campaign_interval =
      std::max<core::Duration>(p.bucket.ttl * 3 / 4, std::chrono::milliseconds(1));
  p.startup_splay = core::Duration(spec_.startup_splay);
  p.release_on_stop = spec_.release_on_stop;
  p.term_limit = core::Duration(spec_.term_limit);
  p.health_check = spec_.health_check;
  p.health_interval = core::Duration(spec_.health_interval);
  p.seed = seed_ + incarnation_ * 0x9E3779B97F4A7C15ULL;
  return p;
}

Nanos Member::lease_end_local() const {
  return core_ ? core_->view().lease_end.time_since_epoch().count() : 0;
}

// ---------------------------------------------------------------------------------------------
// The process

void Member::boot() {
  if (alive_)
    return;
  if (!world_.bucket().exists()) {
    // An application cannot make its election without the bucket (Election's constructor
    // reads it): it tries again a second later.
    note([] { return std::string("process cannot start: no bucket; retrying in 1 s"); });
    world_.after(kSec, [this, inc = incarnation_] {
      if (inc == incarnation_)
        boot();
    });
    return;
  }
  ++incarnation_;
  alive_ = true;
  paused_ = false;
  backlog_.clear();
  outstanding_.clear();
  in_flight_.reset();
  stopped_by_app_ = false;
  core_ = std::make_unique<core::Protocol>(params());
  note([&] { return fmt::format("process starts (incarnation {})", incarnation_); });
  world_.checker().on_boot(*this, world_.now());
  api_start();
}

void Member::crash() {
  if (!alive_)
    return;
  note([] { return std::string("fault: process crashes"); });
  world_.checker().on_crash(*this, world_.now());
  alive_ = false;
  paused_ = false;
  core_.reset();
  ++timer_gen_;
  ++pause_gen_;
  timer_at_ = kForever;
  backlog_.clear();
  outstanding_.clear();
  in_flight_.reset();
  world_.close_watch(*this);
}

void Member::pause(Nanos duration) {
  if (!alive_ || paused_)
    return;
  paused_ = true;
  note([&] { return fmt::format("fault: process paused (SIGSTOP) for {}", seconds(duration)); });
  world_.checker().on_link_trouble(*this, world_.now());
  world_.checker().on_eligibility(*this, world_.now());
  world_.after(duration, [this, gen = ++pause_gen_, inc = incarnation_] {
    if (gen != pause_gen_ || inc != incarnation_ || !alive_)
      return;
    paused_ = false;
    auto backlog = std::move(backlog_);
    backlog_.clear();
    note([&] {
      return fmt::format("process resumes (SIGCONT): {} events waiting", backlog.size());
    });
    world_.checker().on_eligibility(*this, world_.now());
    // Everything that came meanwhile is handled at once, in the order it came, at the time of
    // the resumption: the burst a stopped process sees.
    for (auto& [what, feed] : backlog)
      if (alive_ && !paused_)
        step(what, feed);
    arm_timer();
  });
}

void Member::api_start() {
  deliver("start", [this](core::Protocol& p, core::Time now) {
    if (p.running())
      return;
    ++run_;
    in_flight_.reset();
    outstanding_.clear();
    stopped_by_app_ = false;
    p.start(now);
    world_.open_watch(*this);
    world_.checker().on_run_start(*this, world_.now());
  });
}

void Member::api_stop() {
  deliver("stop", [this](core::Protocol& p, core::Time now) {
    stopped_by_app_ = true;
    p.stop(now);
    world_.checker().on_eligibility(*this, world_.now());
  });
}

void Member::api_resign() {
  deliver("resign", [this](core::Protocol& p, core::Time now) {
    const bool led = p.resign(now);
    note([&] { return fmt::format("resign() -> {}", led); });
    world_.checker().on_resign(*this, world_.now(), led);
  });
}

void Member::set_healthy(bool healthy) {
  if (healthy_ == healthy)
    return;
  healthy_ = healthy;
  note([&] {
    return fmt::format("health check now answers {}", healthy ? "healthy" : "unhealthy");
  });
  world_.checker().on_eligibility(*this, world_.now());
}

// ---------------------------------------------------------------------------------------------
// Events

void Member::reply(const Request& request, const Reply& reply) { result(request, reply, false); }

void Member::timeout(const Request& request) {
  world_.checker().on_link_trouble(*this, world_.now());
  Reply reply;
  switch (request.kind) {
  case Request::Kind::write: {
    WriteResult w;
    w.outcome = Outcome::unknown;
    w.code = Errc::timeout;
    w.message = "timeout";
    reply = w;
    break;
  }
  case Request::Kind::read: {
    ReadResult r;
    r.outcome = Outcome::unknown;
    r.code = Errc::timeout;
    r.message = "timeout";
    reply = r;
    break;
  }
  case Request::Kind::bucket: {
    core::BucketResult b;
    b.outcome = Outcome::retryable;
    b.code = Errc::timeout;
    b.message = "timeout";
    reply = b;
    break;
  }
  }
  result(request, reply, true);
}

void Member::result(const Request& request, const Reply& reply, bool timed_out) {
  // A result for a process that is gone, or for an earlier run, is dropped, as lib/election.cpp
  // drops them; so is whichever of reply and timeout comes second.
  if (!alive_ || request.incarnation != incarnation_ || request.run != run_)
    return;
  const auto it = std::find(outstanding_.begin(), outstanding_.end(), request.id);
  if (it == outstanding_.end())
    return;
  outstanding_.erase(it);
  deliver("result", [this, request, reply, timed_out](core::Protocol& p, core::Time now) {
    if (in_flight_ == request.id)
      in_flight_.reset();
    note([&] {
      return fmt::format("<- {} {}{}", request.id, timed_out ? "timed out: " : "", describe(reply));
    });
    switch (request.kind) {
    case Request::Kind::write: p.on_write(now, request.id, std::get<WriteResult>(reply)); break;
    case Request::Kind::read: p.on_read(now, request.id, std::get<ReadResult>(reply)); break;
    case Request::Kind::bucket:
      p.on_bucket(now, request.id, std::get<core::BucketResult>(reply));
      break;
    }
  });
}

void Member::watch_entry(std::uint64_t generation, const Entry& entry) {
  if (!alive_ || generation != watch_.generation || !watch_.open)
    return;
  deliver("watch", [this, entry](core::Protocol& p, core::Time now) {
    note([&] {
      return fmt::format("<- watch {} '{}' rev {}",
                         entry.op == Op::put       ? "put"
                         : entry.op == Op::del     ? "del"
                         : entry.op == Op::expired ? "expiry marker"
                                                   : "purge",
                         entry.value, entry.revision);
    });
    p.on_watch_entry(now, entry);
  });
}

void Member::watch_ready(std::uint64_t generation) {
  if (!alive_ || generation != watch_.generation || !watch_.open)
    return;
  deliver("watch", [this](core::Protocol& p, core::Time now) {
    note([] { return std::string("<- watch ready"); });
    p.on_watch_ready(now);
  });
}

void Member::watch_failed(std::uint64_t generation, const std::string& message) {
  if (!alive_ || generation != watch_.generation || !watch_.open)
    return;
  deliver("watch", [this, message](core::Protocol& p, core::Time now) {
    note([&] { return "<- watch failed: " + message; });
    p.on_watch_failed(now, message);
  });
}

// ---------------------------------------------------------------------------------------------
// Stepping the core

void Member::deliver(const char* what, Feed feed) {
  if (!alive_ || !core_)
    return;
  if (paused_) {
    backlog_.emplace_back(what, std::move(feed));
    return;
  }
  step(what, feed);
}

void Member::step(const char* what, const Feed& feed) {
  const Nanos real = world_.now();
  const core::Time now{core::Duration(clock_.local(real))};
  Checker& checker = world_.checker();
  checker.before_step(*this, real);
  ++steps_;
  const bool timer = what == kTimer;
  if (timer)
    ++timer_steps_;
  feed(*core_, now);
  drain(now, real);
  if (!alive_ || !core_)
    return;
  checker.after_step(*this, real, timer);
  if (core_->finished() && finished_run_ != run_)
    after_finish(real);
  arm_timer();
}

void Member::drain(core::Time now, Nanos real) {
  Checker& checker = world_.checker();
  while (core_->has_output()) {
    core::Output out = core_->take_output();
    std::visit(Overloaded{
                   [&](core::SendWrite& w) {
                     send(Request::Kind::write, w.id, std::move(w.value), w.expected, real);
                   },
                   [&](core::SendRead& r) { send(Request::Kind::read, r.id, {}, 0, real); },
                   [&](core::SendBucketRead& b) { send(Request::Kind::bucket, b.id, {}, 0, real); },
                   [&](core::RecreateWatch&) {
                     note([] { return std::string("-> recreate watch"); });
                     world_.open_watch(*this);
                   },
                   [&](core::CallOnWon& won) {
                     note([&] {
                       return fmt::format("OnWon token {} (lease ends in {})", won.token,
                                          seconds(lease_end_local() - clock_.local(real)));
                     });
                     checker.on_won(*this, real, won.token);
                   },
                   [&](core::CallOnLost& lost) {
                     note([&] { return "OnLost: " + lost.reason; });
                     checker.on_lost(*this, real, lost.reason);
                   },
                   [&](core::CallOnNewLeader& leader) {
                     note([&] { return "OnNewLeader " + leader.leader.value_or("(none)"); });
                     checker.on_new_leader(*this, real, leader.leader);
                   },
                   [&](core::CallOnCampaign&) {},
                   [&](core::CallOnError& error) {
                     note([&] {
                       return fmt::format("OnError{}: {}", error.error.fatal() ? " (fatal)" : "",
                                          error.error.what());
                     });
                   },
                   [&](core::CallHealthCheck&) { core_->on_health(now, healthy_); },
                   [&](core::DebugLine& line) { note([&] { return "  | " + line.line; }); },
               },
               out);
  }
}

void Member::send(Request::Kind kind, std::uint64_t id, std::string value, std::uint64_t expected,
                  Nanos real) {
  if (in_flight_)
    world_.checker().on_second_request(*this, real, *in_flight_, id);
  in_flight_ = id;
  outstanding_.push_back(id);
  Request request;
  request.kind = kind;
  request.member = index_;
  request.incarnation = incarnation_;
  request.run = run_;
  request.id = id;
  request.value = std::move(value);
  request.expected = expected;
  request.sent = real;
  request.deadline = clock_.real_at(clock_.local(real) + world_.config().request_timeout);
  if (kind == Request::Kind::write)
    ++writes_sent_;
  note([&] {
    switch (kind) {
    case Request::Kind::write:
      return fmt::format("-> {} write '{}' expecting {}", id, request.value, expected);
    case Request::Kind::read: return fmt::format("-> {} read", id);
    case Request::Kind::bucket: return fmt::format("-> {} bucket read", id);
    }
    return std::string();
  });
  world_.send(request);
}

void Member::after_finish(Nanos real) {
  finished_run_ = run_;
  world_.close_watch(*this);
  world_.checker().on_run_end(*this, real);
  note([&] { return std::string("election run finished"); });
  if (stopped_by_app_)
    return;
  // A fatal error ended the run (the bucket is gone): the application starts it again later,
  // as a supervisor would.
  world_.after(2 * kSec, [this, inc = incarnation_] {
    if (inc == incarnation_ && alive_ && !stopped_by_app_ && core_ && !core_->running())
      api_start();
  });
}

void Member::arm_timer() {
  if (!alive_ || !core_)
    return;
  const core::Time wake = core_->next_wake();
  if (wake == core::kNever) {
    ++timer_gen_;
    timer_at_ = kForever;
    return;
  }
  const Nanos real = std::max(world_.now(), clock_.real_at(wake.time_since_epoch().count()));
  if (real == timer_at_)
    return;
  timer_at_ = real;
  world_.at(real, [this, gen = ++timer_gen_] {
    if (gen != timer_gen_)
      return;
    timer_at_ = kForever;
    deliver(kTimer, [](core::Protocol& p, core::Time now) { p.on_timer(now); });
  });
}

} // namespace kvelect::sim
