// SPDX-License-Identifier: Apache-2.0
// The simulated world: real time in integer nanoseconds, one event queue, one nats-server with
// one KV bucket (kv_model.hpp) on a clock of its own, a network between it and every member
// process, the members' watches, and an operator. No threads: the queue runs events in order of
// time, ties in order of scheduling, so one seed gives one run, always.
#pragma once

#include "checker.hpp"
#include "kv_model.hpp"
#include "member.hpp"
#include "rng.hpp"
#include "trace.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <vector>

namespace kvelect::sim {

// One-way network delays and losses, for every member's link. Delays are drawn per message.
struct NetProfile {
  Nanos delay_min = 50'000; // 50 µs
  Nanos delay_max = 1 * kMs;
  double spike_chance = 0; // a message takes delay_max .. spike_max instead
  Nanos spike_max = 0;
  double drop_request = 0; // lost before the server applies it
  double drop_reply = 0;   // lost after the server applied it (or a watch entry lost)
};

struct WorldConfig {
  std::uint64_t seed = 1;
  Nanos ttl = 5 * kSec;
  bool memory_bucket = true;
  std::string key = "leader";
  Nanos request_timeout = 2 * kSec;    // kvelect::Connection's default
  bool random_clocks = true;           // member clocks drawn from the seed; else all exact
  Nanos watch_retry = 250 * kMs;       // the watch pump's pause after a failed watcher
  double silent_after_reconnect = 0.3; // a watch whose link was cut goes silent (nats.c#988)
  NetProfile net;
  CheckConfig checks;
  std::size_t trace_capacity = 0; // records kept for the failure report (0: none)
  bool verbose = false;           // print every record as it happens
};

class World {
public:
  explicit World(WorldConfig config);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  // Members. add_member() makes the process; boot(i) starts it.
  int add_member(MemberSpec spec);
  Member& member(int i) { return *members_.at(static_cast<std::size_t>(i)); }
  [[nodiscard]] int members() const noexcept { return static_cast<int>(members_.size()); }

  // Time and events.
  [[nodiscard]] Nanos now() const noexcept { return now_; }
  void at(Nanos t, std::function<void()> fn);
  void after(Nanos d, std::function<void()> fn) { at(now_ + d, std::move(fn)); }
  // Runs events up to and including time `t`; false if a violation halted the run.
  bool run_until(Nanos t);
  void halt() { halted_ = true; }
  [[nodiscard]] std::uint64_t events() const noexcept { return events_; }

  // Network.
  NetProfile& net() noexcept { return config_.net; }
  void cut(int m, bool requests, bool replies); // lose what travels that way from now on
  void heal(int m);
  void silence_watch(int m);
  void resume_watch(int m); // a silenced watch delivers again, from the key's latest message
  // Extra delay for member m's watch entries only (a watch thread that lags behind the replies).
  void set_watch_lag(int m, Nanos lag) { watch_lag_.at(static_cast<std::size_t>(m)) = lag; }
  // A slow link: every request, reply and watch entry of member m takes `extra` more (a proxy
  // that delays, as tests/fault's UnknownWriteOutcome tests use).
  void set_link_delay(int m, Nanos extra) { links_.at(static_cast<std::size_t>(m)).slow = extra; }
  // The server.
  void pause_server(Nanos duration);
  // Two histories (docs/reliability.md, "What the lab found"): member m's server stops leading
  // the bucket's stream without knowing it, as a stream leader stopped with SIGSTOP. From now on
  // m's requests and watch wait there while the others go on with the real stream; after
  // `hold` it answers m's waiting requests from its copy of the bucket as it is now
  // (acknowledging writes that the real stream never gets), and m is back on the real stream.
  void stale_leader(int m, Nanos hold);
  // Acknowledged writes lost in a fail-over (nats-server 2.9 and 2.10 in the lab): the bucket
  // goes back to what it held at the last save_bucket(). Watches skip what they already
  // delivered, as an ordered consumer resumes after its last sequence.
  void save_bucket();
  void lose_writes_since_save();
  // A replica behind the stream answers member m's reads (a direct get): from the state of the
  // last save_bucket(), at the current time, so a value it holds may have expired there.
  void stale_reads(int m, bool on);
  void restart_server(Nanos down_for);
  void set_expiry_lag(Nanos lag);
  // The operator (its requests reach the server at once, or wait for a paused one).
  void op_delete();
  void op_purge();
  void op_evict();
  void op_put(const std::string& value);
  void op_set_ttl(Nanos ttl);
  void op_delete_bucket();
  void op_create_bucket(Nanos ttl);

  // Used by the members.
  void send(const Request& request);
  void open_watch(Member& m);  // a new watcher (start, RecreateWatch, the pump's retry)
  void close_watch(Member& m); // the run ended
  core::BucketFacts facts();   // what a new process reads when it makes its election

  // Inspection.
  KvModel& bucket() noexcept { return bucket_; }
  Checker& checker() noexcept { return checker_; }
  Trace& trace() noexcept { return trace_; }
  Rng& rng() noexcept { return rng_; }
  const WorldConfig& config() const noexcept { return config_; }
  [[nodiscard]] Nanos server_time(Nanos real) const { return server_clock_.local(real); }
  [[nodiscard]] Nanos real_at_server(Nanos server) const { return server_clock_.real_at(server); }
  [[nodiscard]] bool server_up() const noexcept { return !server_down_ && !server_paused_; }
  template <typename F>
  void note(int member, F&& make) {
    if (trace_.on())
      trace_.add(now_, member, make());
  }

private:
  // The queue holds small plain entries; the functions wait in slots. Moving a std::function
  // on every heap step cost a third of all the time in a plain debug build.
  struct Event {
    Nanos at;
    std::uint64_t seq;
    std::uint32_t slot;
    bool operator>(const Event& other) const {
      return at != other.at ? at > other.at : seq > other.seq;
    }
  };
  struct Link {
    bool cut_requests = false;
    bool cut_replies = false;
    Nanos up_fifo = 0;
    Nanos down_fifo = 0;
    std::shared_ptr<KvModel> stale; // stale_leader(): the deposed leader's copy of the bucket
    std::vector<Request> stale_queue;
    bool stale_reads = false; // stale_reads(): reads answered from saved_
    Nanos slow = 0;           // set_link_delay(): added to every message, each way
  };

  Nanos delay();
  void at_server(std::function<void()> fn); // runs now, or when a paused server resumes
  void receive(const Request& request);
  void answer(const Request& request, const Reply& reply);
  void feed_watches(const std::string& key, const Message& message);
  void schedule_expiry(); // a bucket with markers: tick the model when its next expiry is due
  void deliver_watch(Member& m, const Entry& entry, bool then_ready);
  void silence_all_watches(const char* why);
  void after_link_heals(Member& m);
  static Entry entry_of(const Message& message);

  // In this order: the server's clock is drawn first, and the bucket's creation time is read
  // from it.
  WorldConfig config_;
  Rng rng_;
  Trace trace_;
  ProcessClock server_clock_;
  KvModel bucket_;
  Checker checker_;
  std::vector<std::unique_ptr<Member>> members_;
  std::vector<Link> links_;
  std::vector<Nanos> watch_lag_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  std::vector<std::function<void()>> slots_;
  std::vector<std::uint32_t> free_slots_;
  Nanos now_ = 0;
  std::uint64_t seq_ = 0;
  std::uint64_t events_ = 0;
  bool halted_ = false;
  bool server_paused_ = false;
  bool server_down_ = false;
  std::uint64_t server_gen_ = 0;
  std::deque<std::function<void()>> server_backlog_;
  Nanos expiry_tick_due_ = kForever; // the server time of the expiry tick scheduled, if any
  std::shared_ptr<KvModel> saved_;   // save_bucket()
};

} // namespace kvelect::sim
