// SPDX-License-Identifier: Apache-2.0
#include "world.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace kvelect::sim {

namespace {

ProcessClock draw_server_clock(Rng& rng, bool random) {
  // The server's wall clock (nanoseconds since the epoch): stamps, MaxAge and the stream's
  // creation time run on it. It drifts a little against real time, as an NTP-disciplined clock.
  ProcessClock clock;
  clock.offset = 1'700'000'000 * kSec + static_cast<Nanos>(rng.below(kSec));
  clock.rate_ppb = random ? rng.range(-20'000, 20'000) : 0;
  return clock;
}

const char* op_text(Op op) {
  switch (op) {
  case Op::absent: return "absent";
  case Op::put: return "put";
  case Op::del: return "del";
  case Op::purge: return "purge";
  case Op::expired: return "expiry marker";
  }
  return "?";
}

} // namespace

World::World(WorldConfig config)
    : config_(std::move(config)), rng_(config_.seed),
      trace_(config_.trace_capacity, config_.verbose),
      server_clock_(draw_server_clock(rng_, config_.random_clocks)),
      bucket_(config_.ttl, server_clock_.local(0), config_.memory_bucket),
      checker_(*this, config_.checks) {
  // Half the worlds answer a get of a deleted bucket as newer servers do. Taken from the seed
  // without a draw, so that the schedules of existing seeds stay as they were.
  bucket_.set_deleted_get_no_responders(((config_.seed >> 5U) & 1U) != 0);
  // Half the worlds have a bucket with limit markers (nats-server 2.11 and later), kept for the
  // server's minimum of 1 s; likewise from the seed without a draw.
  bucket_.set_markers(((config_.seed >> 6U) & 1U) != 0 ? kSec : 0);
  bucket_.on_message = [this](const std::string& key, const Message& message) {
    feed_watches(key, message);
    schedule_expiry();
  };
}

World::~World() = default;

int World::add_member(MemberSpec spec) {
  const int index = static_cast<int>(members_.size());
  ProcessClock clock;
  if (spec.clock) {
    clock = *spec.clock;
  } else if (config_.random_clocks) {
    // CLOCK_BOOTTIME: the host's uptime, and a rate 1e-4 .. 1e-3 off, either way.
    clock.offset = static_cast<Nanos>(rng_.below(1'000'000ULL * kSec));
    const auto rate = rng_.range(100'000, 1'000'000);
    clock.rate_ppb = rng_.chance(0.5) ? rate : -rate;
  }
  const std::uint64_t seed = rng_.next();
  members_.push_back(std::make_unique<Member>(*this, index, std::move(spec), clock, seed));
  links_.emplace_back();
  watch_lag_.push_back(0);
  trace_.set_label(index, fmt::format("m{} {}", index, members_.back()->name()));
  return index;
}

void World::at(Nanos t, std::function<void()> fn) {
  std::uint32_t slot = 0;
  if (free_slots_.empty()) {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.push_back(std::move(fn));
  } else {
    slot = free_slots_.back();
    free_slots_.pop_back();
    slots_[slot] = std::move(fn);
  }
  queue_.push(Event{std::max(t, now_), seq_++, slot});
}

bool World::run_until(Nanos t) {
  while (!halted_ && !queue_.empty() && queue_.top().at <= t) {
    const Event event = queue_.top();
    queue_.pop();
    now_ = event.at;
    ++events_;
    std::function<void()> fn = std::move(slots_[event.slot]);
    free_slots_.push_back(event.slot);
    fn();
  }
  if (!halted_)
    now_ = std::max(now_, t);
  return !halted_ && !checker_.failed();
}

Nanos World::delay() {
  const NetProfile& net = config_.net;
  if (net.spike_chance > 0 && rng_.chance(net.spike_chance))
    return rng_.range(net.delay_max, std::max(net.delay_max, net.spike_max));
  return rng_.range(net.delay_min, net.delay_max);
}

// ---------------------------------------------------------------------------------------------
// Requests

void World::send(const Request& request) {
  Link& link = links_.at(static_cast<std::size_t>(request.member));
  // The request timeout runs whatever happens to the request; the member ignores it if the
  // reply came first.
  at(request.deadline, [this, request] { member(request.member).timeout(request); });
  if (link.stale) {
    link.stale_queue.push_back(request); // waits at the stopped stream leader
    return;
  }
  if (link.cut_requests || server_down_ || rng_.chance(config_.net.drop_request)) {
    note(request.member, [&] { return fmt::format("  request {} lost on the way", request.id); });
    return;
  }
  // One TCP connection per member: requests reach the server in the order they were sent.
  const Nanos arrive = std::max(now_ + delay() + link.slow, link.up_fifo);
  link.up_fifo = arrive;
  at(arrive, [this, request, gen = server_gen_] {
    if (gen != server_gen_)
      return; // the server restarted meanwhile: the connection and the request are gone
    at_server([this, request] { receive(request); });
  });
}

void World::schedule_expiry() {
  // Only a bucket with markers needs its expiries on time: without them an expiry has no
  // visible effect until the next request, which evaluates it.
  if (!bucket_.markers())
    return;
  const Nanos due = bucket_.next_expiry();
  if (due == kForever || due >= expiry_tick_due_)
    return;
  expiry_tick_due_ = due;
  // 1 µs after the due time: the conversion from the server's clock may round down.
  at(std::max(real_at_server(due), now_) + 1000, [this, due] {
    if (expiry_tick_due_ == due)
      expiry_tick_due_ = kForever;
    if (!server_up())
      return; // the server's resume or restart schedules it again
    bucket_.tick(server_time(now_));
    schedule_expiry();
  });
}

void World::at_server(std::function<void()> fn) {
  if (server_down_)
    return;
  if (server_paused_) {
    server_backlog_.push_back(std::move(fn));
    return;
  }
  fn();
}

void World::receive(const Request& request) {
  const Nanos st = server_time(now_);
  Member& m = member(request.member);
  switch (request.kind) {
  case Request::Kind::write: {
    const WriteResult w = bucket_.update(config_.key, request.value, request.expected, st);
    note(request.member, [&] {
      return fmt::format(
          "  server: write {} '{}' expecting {} -> {}", request.id, request.value, request.expected,
          w.outcome == Outcome::ok          ? fmt::format("ok rev {}", w.revision)
          : w.outcome == Outcome::lost_race ? fmt::format("lost race, current {}", w.current)
                                            : w.message);
    });
    if (w.outcome == Outcome::ok && request.value == m.name())
      checker_.on_applied(request.member, request.incarnation, w.revision, st, bucket_.epoch());
    answer(request, w);
    return;
  }
  case Request::Kind::read: {
    const bool lagging = links_.at(static_cast<std::size_t>(request.member)).stale_reads && saved_;
    ReadResult r = lagging ? saved_->get(config_.key, st) : bucket_.get(config_.key, st);
    if (r.outcome == Outcome::unknown)
      return; // never answered (a deleted bucket): the member times out
    answer(request, r);
    return;
  }
  case Request::Kind::bucket: answer(request, bucket_.info(st)); return;
  }
}

void World::answer(const Request& request, const Reply& reply) {
  Link& link = links_.at(static_cast<std::size_t>(request.member));
  if (link.cut_replies || rng_.chance(config_.net.drop_reply)) {
    note(request.member, [&] { return fmt::format("  reply to {} lost", request.id); });
    return;
  }
  const Nanos arrive = std::max(now_ + delay() + link.slow, link.down_fifo);
  link.down_fifo = arrive;
  at(arrive, [this, request, reply] { member(request.member).reply(request, reply); });
}

core::BucketFacts World::facts() {
  auto info = bucket_.info(server_time(now_));
  return info.facts;
}

// ---------------------------------------------------------------------------------------------
// Watches

Entry World::entry_of(const Message& message) {
  Entry entry;
  entry.op = message.op;
  entry.value = message.value;
  entry.revision = message.seq;
  return entry;
}

void World::open_watch(Member& m) {
  auto& w = m.watch();
  ++w.generation;
  w.open = true;
  w.live = w.silent = w.missed = false;
  w.delivered_seq = 0;
  const int i = m.index();
  // Making a watcher is a request to the server: it takes a trip there.
  const Nanos trip = delay() + links_.at(static_cast<std::size_t>(i)).slow;
  at(now_ + trip, [this, i, gen = w.generation, inc = m.incarnation()] {
    Member& mm = member(i);
    auto& ww = mm.watch();
    if (mm.incarnation() != inc || ww.generation != gen || !ww.open)
      return;
    const bool unreachable = links_.at(static_cast<std::size_t>(i)).cut_requests ||
                             links_.at(static_cast<std::size_t>(i)).cut_replies || !server_up();
    if (unreachable || !bucket_.exists()) {
      // cnats fails to make the watcher (at its timeout, or at once with "stream not found");
      // the watch pump reports it and tries again after a pause (lib/watch.cpp).
      const Nanos fails_at = unreachable ? now_ + config_.request_timeout : now_ + delay();
      at(fails_at, [this, i, gen, inc, unreachable] {
        Member& m3 = member(i);
        if (m3.incarnation() != inc || m3.watch().generation != gen || !m3.watch().open)
          return;
        m3.watch_failed(gen, unreachable ? "cannot watch key: timeout"
                                         : "cannot watch key: stream not found");
        at(now_ + config_.watch_retry, [this, i, gen, inc] {
          Member& m4 = member(i);
          if (m4.incarnation() == inc && m4.watch().generation == gen && m4.watch().open)
            open_watch(m4);
        });
      });
      return;
    }
    ww.live = true;
    const Message* last = bucket_.last(config_.key, server_time(now_));
    if (last != nullptr) {
      deliver_watch(mm, entry_of(*last), true);
    } else {
      const Nanos slow = links_.at(static_cast<std::size_t>(i)).slow;
      const Nanos arrive = std::max(now_ + delay() + slow, ww.fifo);
      ww.fifo = arrive;
      at(arrive, [this, i, gen] { member(i).watch_ready(gen); });
    }
  });
}

void World::close_watch(Member& m) {
  auto& w = m.watch();
  ++w.generation;
  w.open = w.live = false;
}

void World::deliver_watch(Member& m, const Entry& entry, bool then_ready) {
  auto& w = m.watch();
  const int i = m.index();
  if (links_.at(static_cast<std::size_t>(i)).cut_replies) {
    w.missed = true;
    return;
  }
  const Nanos arrive = std::max(now_ + delay() + watch_lag_.at(static_cast<std::size_t>(i)) +
                                    links_.at(static_cast<std::size_t>(i)).slow,
                                w.fifo);
  w.fifo = arrive;
  w.delivered_seq = std::max(w.delivered_seq, entry.revision);
  at(arrive, [this, i, gen = w.generation, entry, then_ready] {
    Member& mm = member(i);
    mm.watch_entry(gen, entry);
    if (then_ready)
      mm.watch_ready(gen);
  });
}

void World::feed_watches(const std::string& key, const Message& message) {
  if (key != config_.key)
    return;
  note(-1, [&] {
    return fmt::format("  stored {} '{}' rev {}", op_text(message.op), message.value, message.seq);
  });
  for (auto& m : members_) {
    auto& w = m->watch();
    if (links_.at(static_cast<std::size_t>(m->index())).stale) {
      w.missed = true; // its server is not the stream's leader: it catches up when it resumes
      continue;
    }
    // An ordered consumer resumes after the last sequence it delivered: after acknowledged
    // writes were lost, it skips the sequences the stream gives out again.
    if (m->alive() && w.open && w.live && !w.silent && message.seq > w.delivered_seq)
      deliver_watch(*m, entry_of(message), false);
  }
}

void World::silence_watch(int i) {
  member(i).watch().silent = true;
  note(i, [] { return std::string("fault: watch goes silent (nats.c#988)"); });
}

void World::resume_watch(int i) {
  auto& w = member(i).watch();
  if (!w.silent)
    return;
  w.silent = false;
  w.missed = true;
  note(i, [] { return std::string("watch delivers again"); });
  after_link_heals(member(i));
}

void World::silence_all_watches(const char* why) {
  for (auto& m : members_)
    if (m->watch().open)
      m->watch().silent = true;
  note(-1, [&] { return fmt::format("every watch goes silent: {}", why); });
}

void World::after_link_heals(Member& m) {
  auto& w = m.watch();
  if (!w.open || !w.live || w.silent || !w.missed)
    return;
  w.missed = false;
  if (rng_.chance(config_.silent_after_reconnect)) {
    w.silent = true;
    note(m.index(), [] { return std::string("watch silent after the reconnect (nats.c#988)"); });
    return;
  }
  // cnats' ordered consumer resumes after the last sequence it delivered; with history 1 only
  // the key's latest message is left of what it missed.
  const Message* last = bucket_.last(config_.key, server_time(now_));
  if (last != nullptr && last->seq > w.delivered_seq)
    deliver_watch(m, entry_of(*last), false);
}

// ---------------------------------------------------------------------------------------------
// Faults

void World::cut(int i, bool requests, bool replies) {
  auto& link = links_.at(static_cast<std::size_t>(i));
  link.cut_requests = requests;
  link.cut_replies = replies;
  note(i, [&] {
    return fmt::format("fault: link cut ({}{})", requests ? "requests" : "",
                       replies ? (requests ? "+replies" : "replies") : "");
  });
}

void World::heal(int i) {
  auto& link = links_.at(static_cast<std::size_t>(i));
  const bool was_cut = link.cut_requests || link.cut_replies;
  link.cut_requests = link.cut_replies = false;
  if (!was_cut)
    return;
  note(i, [] { return std::string("link healed"); });
  after_link_heals(member(i));
}

void World::pause_server(Nanos duration) {
  if (server_paused_ || server_down_)
    return;
  server_paused_ = true;
  note(-1, [&] { return fmt::format("fault: server paused for {}", seconds(duration)); });
  at(now_ + duration, [this] {
    server_paused_ = false;
    note(-1, [&] {
      return fmt::format("server resumes: {} requests waiting", server_backlog_.size());
    });
    auto backlog = std::move(server_backlog_);
    server_backlog_.clear();
    for (auto& fn : backlog)
      fn();
    expiry_tick_due_ = kForever;
    schedule_expiry();
  });
}

void World::stale_leader(int i, Nanos hold) {
  auto& link = links_.at(static_cast<std::size_t>(i));
  if (link.stale)
    return;
  link.stale = std::make_shared<KvModel>(bucket_);
  link.stale->on_message = nullptr; // what it stores reaches nobody
  note(i, [&] {
    return fmt::format("fault: its server stops, a stale stream leader, for {}", seconds(hold));
  });
  // It answers from its log as it was when it stopped: its expiry timers have not run since.
  at(now_ + hold, [this, i, st = server_time(now_)] {
    auto& l = links_.at(static_cast<std::size_t>(i));
    const auto stale = std::move(l.stale);
    auto queue = std::move(l.stale_queue);
    l.stale.reset();
    l.stale_queue.clear();
    note(i, [&] {
      return fmt::format("its server resumes: answers {} requests from its stale log",
                         queue.size());
    });
    for (const Request& request : queue) {
      switch (request.kind) {
      case Request::Kind::write: {
        const WriteResult w = stale->update(config_.key, request.value, request.expected, st);
        note(request.member, [&] {
          return fmt::format("  stale server: write {} '{}' expecting {} -> {}", request.id,
                             request.value, request.expected,
                             w.outcome == Outcome::ok ? fmt::format("ok rev {}", w.revision)
                                                      : w.message);
        });
        answer(request, w);
        break;
      }
      case Request::Kind::read: answer(request, stale->get(config_.key, st)); break;
      case Request::Kind::bucket: answer(request, stale->info(st)); break;
      }
    }
    after_link_heals(member(i)); // its watch catches up with the real stream
  });
}

void World::save_bucket() {
  saved_ = std::make_shared<KvModel>(bucket_);
  saved_->on_message = nullptr;
}

void World::stale_reads(int i, bool on) {
  links_.at(static_cast<std::size_t>(i)).stale_reads = on;
  note(i, [&] {
    return std::string(on ? "fault: its reads come from a replica behind the stream"
                          : "its reads come from the stream again");
  });
}

void World::lose_writes_since_save() {
  if (!saved_)
    return;
  note(-1, [&] {
    return fmt::format("fault: a fail-over loses the writes after revision {} (last was {})",
                       saved_->last_seq(), bucket_.last_seq());
  });
  auto on_message = std::move(bucket_.on_message);
  bucket_ = *saved_;
  bucket_.on_message = std::move(on_message);
  saved_.reset();
  expiry_tick_due_ = kForever;
  schedule_expiry();
}

void World::restart_server(Nanos down_for) {
  if (server_down_)
    return;
  server_down_ = true;
  server_paused_ = false;
  server_backlog_.clear();
  ++server_gen_;
  bucket_.restart_server(server_time(now_));
  if (config_.memory_bucket)
    checker_.on_wipe(now_);
  note(-1, [&] {
    return fmt::format("fault: server restarts, down for {}{}", seconds(down_for),
                       config_.memory_bucket ? " (the memory bucket is lost)" : "");
  });
  for (auto& m : members_)
    if (m->watch().open)
      m->watch().missed = true;
  at(now_ + down_for, [this] {
    server_down_ = false;
    note(-1, [] { return std::string("server up again"); });
    expiry_tick_due_ = kForever;
    schedule_expiry();
    if (!bucket_.exists())
      silence_all_watches("their stream is gone");
    else
      for (auto& m : members_)
        after_link_heals(*m);
  });
}

void World::set_expiry_lag(Nanos lag) {
  bucket_.set_expiry_lag(lag);
  expiry_tick_due_ = kForever; // the due times moved: schedule anew
  schedule_expiry();
  note(-1, [&] { return fmt::format("server: expiry timer runs {} late", seconds(lag)); });
}

// ---------------------------------------------------------------------------------------------
// The operator

void World::op_delete() {
  at_server([this] {
    note(-1, [] { return std::string("operator: kv del"); });
    bucket_.erase(config_.key, server_time(now_));
  });
}

void World::op_purge() {
  at_server([this] {
    note(-1, [] { return std::string("operator: kv purge"); });
    bucket_.purge(config_.key, server_time(now_));
  });
}

void World::op_put(const std::string& value) {
  at_server([this, value] {
    note(-1, [&] { return fmt::format("operator: kv put '{}'", value); });
    bucket_.put(config_.key, value, server_time(now_));
  });
}

void World::op_evict() {
  at_server([this] {
    // kvelect::evict(): read, then write the mark expecting the revision read.
    const Nanos st = server_time(now_);
    const ReadResult read = bucket_.get(config_.key, st);
    if (read.outcome != Outcome::ok || read.entry.op != Op::put ||
        read.entry.value.rfind(detail::kReservedPrefix, 0) == 0)
      return;
    note(-1, [&] { return fmt::format("operator: evict '{}'", read.entry.value); });
    bucket_.update(config_.key, detail::kEvictValue, read.entry.revision, st);
  });
}

void World::op_set_ttl(Nanos ttl) {
  at_server([this, ttl] {
    const Nanos old = bucket_.max_age();
    if (!bucket_.exists())
      return;
    note(-1, [&] { return fmt::format("operator: MaxAge {} -> {}", seconds(old), seconds(ttl)); });
    bucket_.set_max_age(ttl, server_time(now_));
    checker_.on_ttl_change(now_, old);
    expiry_tick_due_ = kForever;
    schedule_expiry();
  });
}

void World::op_delete_bucket() {
  at_server([this] {
    if (!bucket_.exists())
      return;
    note(-1, [] { return std::string("operator: bucket deleted"); });
    bucket_.delete_bucket();
    checker_.on_wipe(now_);
    silence_all_watches("their stream is gone");
  });
}

void World::op_create_bucket(Nanos ttl) {
  at_server([this, ttl] {
    if (bucket_.exists())
      return;
    note(-1, [&] { return fmt::format("operator: bucket created, MaxAge {}", seconds(ttl)); });
    const Nanos old = bucket_.max_age(); // that of the bucket it replaces
    bucket_.create_bucket(ttl, server_time(now_));
    // To a leader, a bucket made anew with another MaxAge is a MaxAge change: it learns of both
    // at its next bucket read, within a renewal period (docs/protocol.md, "Bucket changes"), and
    // a renewal that lands in the new bucket meanwhile counts the TTL it knew (seed 5116888).
    if (old != ttl)
      checker_.on_ttl_change(now_, old);
  });
}

} // namespace kvelect::sim
