// SPDX-License-Identifier: Apache-2.0
// One simulated process running one election: it owns a core::Protocol, feeds it every event
// with its own clock's reading, and carries out what the core asks for through the world (one
// request in flight at a time, as the core promises, checked here). Every callback is reported
// to the checker with the real time at which it ran.
#pragma once

#include "kv_model.hpp"
#include "rng.hpp"

#include "core/protocol.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace kvelect::sim {

class World;

// A host's CLOCK_BOOTTIME: its own offset and rate. It keeps running while the process is paused
// and across a restart of the process (the host stays up).
struct ProcessClock {
  Nanos offset = 0;
  std::int64_t rate_ppb = 0; // +100'000: runs 1e-4 fast
  [[nodiscard]] Nanos local(Nanos real) const {
    return offset + real +
           static_cast<Nanos>((static_cast<Int128>(real) * rate_ppb) / 1'000'000'000);
  }
  // The earliest real time whose local reading is at least `at`.
  [[nodiscard]] Nanos real_at(Nanos at) const;
};

struct MemberSpec {
  std::string name;
  Nanos term_limit = 0;      // 0: none
  bool health_check = false; // asks CallHealthCheck every health_interval
  Nanos health_interval = kSec;
  Nanos startup_splay = 250 * kMs;
  bool release_on_stop = true;
  std::optional<ProcessClock> clock; // default: drawn from the seed
};

using Reply = std::variant<WriteResult, ReadResult, core::BucketResult>;

struct Request {
  enum class Kind { write, read, bucket } kind = Kind::write;
  int member = 0;
  std::uint64_t incarnation = 0; // the process that sent it
  std::uint64_t run = 0;         // the election run that sent it
  std::uint64_t id = 0;
  std::string value;
  std::uint64_t expected = 0;
  Nanos sent = 0;     // real time
  Nanos deadline = 0; // real time of the request timeout (the member's clock)
};

class Member {
public:
  Member(World& world, int index, MemberSpec spec, ProcessClock clock, std::uint64_t seed);
  ~Member();
  Member(const Member&) = delete;
  Member& operator=(const Member&) = delete;

  // The process.
  void boot();  // a new process: a new Protocol with the same name, started
  void crash(); // gone at once; the key and any request on the wire are left behind
  void pause(Nanos duration);
  // The application's calls (delayed until a paused process runs again).
  void api_start();
  void api_stop();
  void api_resign();
  void set_healthy(bool healthy);

  // From the world.
  void reply(const Request& request, const Reply& reply);
  void timeout(const Request& request);
  void watch_entry(std::uint64_t generation, const Entry& entry);
  void watch_ready(std::uint64_t generation);
  void watch_failed(std::uint64_t generation, const std::string& message);

  // Inspection.
  [[nodiscard]] int index() const noexcept { return index_; }
  [[nodiscard]] const std::string& name() const noexcept { return spec_.name; }
  [[nodiscard]] const MemberSpec& spec() const noexcept { return spec_; }
  [[nodiscard]] const ProcessClock& clock() const noexcept { return clock_; }
  [[nodiscard]] bool alive() const noexcept { return alive_; }
  [[nodiscard]] bool paused() const noexcept { return paused_; }
  [[nodiscard]] bool healthy() const noexcept { return healthy_; }
  [[nodiscard]] bool running() const noexcept { return alive_ && core_ && core_->running(); }
  [[nodiscard]] std::uint64_t incarnation() const noexcept { return incarnation_; }
  [[nodiscard]] const core::Protocol* core() const noexcept { return core_.get(); }
  [[nodiscard]] Nanos local(Nanos real) const { return clock_.local(real); }
  [[nodiscard]] Nanos lease_end_local() const;
  [[nodiscard]] std::uint64_t steps() const noexcept { return steps_; }
  [[nodiscard]] std::uint64_t timer_steps() const noexcept { return timer_steps_; }
  [[nodiscard]] std::uint64_t writes_sent() const noexcept { return writes_sent_; }

  // The key's watch, as the world serves it.
  struct Watch {
    std::uint64_t generation = 0;
    bool open = false;   // the election runs and has a watcher
    bool live = false;   // the watcher exists on the server and is fed new messages
    bool silent = false; // nats.c#988: delivers nothing more until recreated
    bool missed = false; // entries were lost on a cut link since the last delivery
    std::uint64_t delivered_seq = 0;
    Nanos fifo = 0; // entries arrive in order
  };
  Watch& watch() noexcept { return watch_; }

private:
  using Feed = std::function<void(core::Protocol&, core::Time)>;
  void deliver(const char* what, Feed feed);
  void step(const char* what, const Feed& feed);
  void drain(core::Time now, Nanos real);
  void arm_timer();
  void send(Request::Kind kind, std::uint64_t id, std::string value, std::uint64_t expected,
            Nanos real);
  void after_finish(Nanos real);
  void result(const Request& request, const Reply& reply, bool timed_out);
  core::Params params() const;
  template <typename F>
  void note(F&& make);

  World& world_;
  int index_;
  MemberSpec spec_;
  ProcessClock clock_;
  std::uint64_t seed_;
  std::unique_ptr<core::Protocol> core_;
  bool alive_ = false;
  bool paused_ = false;
  bool healthy_ = true;
  bool stopped_by_app_ = false;
  std::uint64_t incarnation_ = 0;
  std::uint64_t run_ = 0;
  std::uint64_t pause_gen_ = 0;
  std::vector<std::pair<const char*, Feed>> backlog_; // events that came while paused
  std::optional<std::uint64_t> in_flight_;            // the request the core waits for
  std::vector<std::uint64_t> outstanding_;            // sent, neither answered nor timed out yet
  std::uint64_t finished_run_ = 0;                    // the last run whose end was handled
  std::uint64_t timer_gen_ = 0;
  Nanos timer_at_ = kForever;
  Watch watch_;
  std::uint64_t steps_ = 0;
  std::uint64_t timer_steps_ = 0;
  std::uint64_t writes_sent_ = 0;
};

} // namespace kvelect::sim
