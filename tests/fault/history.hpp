// SPDX-License-Identifier: Apache-2.0
//
// The fault suite's history checker and member processes.
//
// History: every member's OnWon/OnLost (and anything else worth seeing in a failure report) on
// one clock, CLOCK_MONOTONIC, which is shared by all processes of the machine. Member processes
// print their own timestamps (tests/member/member.cpp); in-process members record theirs with
// options_for(). check() turns the events into leadership intervals [won, lost) per member and
// reports every pair of intervals of different members that overlap, plus the longest stretch
// without a leader.
//
// A lease-based election is only as safe as its lease guard is long compared with how late a
// process runs: a member that is runnable but gets no CPU for longer than the guard fires its
// OnLost late, whatever the library does. So that a loaded test machine does not pass for a
// library bug, the History samples the scheduler statistics of every member process
// (watch_process): an overlap that follows such a stall of the member that should have stood
// down is reported as inconclusive, not as a failure. A member blocked in a system call (in
// the network, say) is not runnable and does not count as starved.
//
// MemberProcess: one election member in a process of its own (fork/exec of the member binary,
// PR_SET_PDEATHSIG), whose stdout lines are read on a thread and fed into a History. The test
// can SIGKILL, SIGTERM, SIGSTOP/SIGCONT and SIGUSR1 (resign) it; the destructor always kills and
// reaps it.
#pragma once

#include <kvelect/kvelect.hpp>

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace kvelect::testing::fault {

// CLOCK_MONOTONIC in nanoseconds: the clock of every event in a History.
std::int64_t monotonic_ns();

struct Event {
  std::int64_t ns = 0;
  std::string member;
  // "won", "lost", "killed" (the process was SIGKILLed: its leadership ends there),
  // "exited" (the process ended without a lost), "paused"/"resumed" (SIGSTOP/SIGCONT), and
  // anything else the members print ("ready", "leader", "error", "stopped") or the test notes.
  std::string kind;
  std::string detail;
};

// One leadership of one member, as check() sees it.
struct Interval {
  std::string member;
  std::int64_t begin = 0;
  std::int64_t end = 0;    // the check time for an interval still open
  bool open = false;       // no lost yet
  bool stale_tail = false; // [resume, lost) after a pause: excluded from the overlap check
};

struct HistoryReport {
  std::vector<std::string> problems; // overlaps and impossible sequences; empty when all is well
  // Overlaps that CPU starvation explains: the member that should have stood down first was
  // runnable but not running (see History::watch_process) for at least the starvation limit
  // shortly before its lost came. No lease-based election can be safe when a process does not
  // run for longer than its lease guard, so these are not counted as failures.
  std::vector<std::string> inconclusive;
  std::vector<Interval> intervals;
  std::int64_t longest_gap_ns = 0; // longest time without a leader, after the first win
  // Every stretch without a leader after the first win, [begin, end); the last one may run to
  // the check time.
  std::vector<std::pair<std::int64_t, std::int64_t>> gaps;
  std::int64_t first_won_ns = 0; // 0: nobody ever won
  std::int64_t origin_ns = 0;    // the History's creation: describe() prints times from it
  int wins = 0;
  int losses = 0;
  std::map<std::string, int> wins_by_member;
  bool ok() const { return problems.empty(); }
  double longest_gap_ms() const { return static_cast<double>(longest_gap_ns) / 1e6; }
  // The longest stretch without a leader within [since_ns, check time].
  std::int64_t longest_gap_since(std::int64_t since_ns) const;
  std::string describe() const;
};

// A stretch during which a thread of a watched process was runnable but not running (its
// run-queue wait in /proc/<pid>/task/<tid>/schedstat grew by at least half of the wall time).
struct Stall {
  std::string member;
  std::int64_t begin = 0;
  std::int64_t end = 0;
  std::int64_t waited_ns = 0;
};

class History {
public:
  History();
  ~History();
  History(const History&) = delete;
  History& operator=(const History&) = delete;

  // Records an event (thread-safe). `ns` is CLOCK_MONOTONIC.
  void record(Event event);
  // Records an event of `member` now.
  void note(const std::string& member, std::string kind, std::string detail = {});
  // OnWon/OnLost of an in-process Election, recording here on CLOCK_MONOTONIC.
  std::vector<Option> options_for(const std::string& member);

  // A member whose lost comes within `tail` after a "resumed" of the same member, as its first
  // won/lost event after the resume, fired it "at once on resume": the interval is cut at the
  // "paused" event and [resume, lost) is a stale tail, not counted as leadership. A paused
  // process cannot act, and is_leader() already answers false when the lease has ended; the
  // tail is only the time the process needs to run its first instructions. Default 1 s.
  void set_resume_tail(std::chrono::milliseconds tail);

  // Samples the scheduler statistics of every thread of `pid` (every 20 ms, on a thread of the
  // History) and records a "starved" event for each stall of at least 20 ms. MemberProcess
  // registers its process; options_for() registers the test process itself.
  void watch_process(pid_t pid, const std::string& member);
  // The longest stall of `member`'s process that overlaps [from_ns, to_ns].
  std::int64_t longest_stall(const std::string& member, std::int64_t from_ns,
                             std::int64_t to_ns) const;
  std::vector<Stall> stalls() const;
  // Records a stall (and a "starved" event); the sampler's output, public for the self-test.
  void record_stall(Stall stall);
  // Overlaps explained by a stall at least this long are inconclusive, not problems. 50 ms.
  void set_starvation_limit(std::chrono::milliseconds limit);

  // Builds the intervals and checks them. Open intervals end at `until_ns` (default: now).
  HistoryReport check(std::optional<std::int64_t> until_ns = std::nullopt) const;

  std::vector<Event> events() const;
  // Members whose last won/lost/killed/exited event is a won.
  std::vector<std::string> leaders() const;
  int count(std::string_view kind, std::string_view member = {}) const;
  // The first event of `kind` (by any member, or by `member`) at or after `after_ns`.
  std::optional<Event> first(std::string_view kind, std::int64_t after_ns = 0,
                             std::string_view member = {}) const;
  // Same, excluding events of `member`.
  std::optional<Event> first_not_by(std::string_view kind, std::string_view member,
                                    std::int64_t after_ns = 0) const;
  // Waits (condition variable, no polling) until `condition` holds for the events so far.
  bool wait_for(const std::function<bool(const std::vector<Event>&)>& condition,
                std::chrono::milliseconds timeout) const;
  // Waits until some member (other than `except`) fires `kind` at or after `after_ns`.
  std::optional<Event> wait_first(std::string_view kind, std::int64_t after_ns,
                                  std::chrono::milliseconds timeout,
                                  std::string_view except = {}) const;

  // All events, sorted, times in ms relative to the History's creation: for failure messages.
  std::string timeline() const;
  std::int64_t origin_ns() const { return origin_; }
  // Times in reports count from here. The fault lab (tests/lab) sets it to its first event: its
  // events are on CLOCK_BOOTTIME, not on this History's clock.
  void set_origin(std::int64_t ns) { origin_ = ns; }

private:
  void sample(std::stop_token stop);

  std::int64_t origin_;
  std::int64_t resume_tail_ns_ = 1'000'000'000;
  std::int64_t starvation_limit_ns_ = 50'000'000;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<Event> events_;
  std::vector<Stall> stalls_;
  std::map<pid_t, std::vector<std::string>> watched_; // pid -> members it runs
  std::jthread sampler_;                              // started by the first watch_process
};

// Runs history.check(), fails the current test (non-fatally) on any problem (see
// TimelineOnFailure for the intervals and the timeline), prints a warning for inconclusive
// overlaps, and publishes the longest leaderless gap (counted from `since_ns` if given, e.g. the
// start of a phase): RecordProperty(<label>_longest_gap_ms) and a printed line. Returns the
// report.
HistoryReport expect_consistent(const History& history, const std::string& label,
                                std::int64_t since_ns = 0);

// Prints the history's intervals and timeline if the current test has failed by the time it is
// destroyed. Declare it after the History and before the members.
class TimelineOnFailure {
public:
  explicit TimelineOnFailure(const History& history) : history_(history) {}
  ~TimelineOnFailure();
  TimelineOnFailure(const TimelineOnFailure&) = delete;
  TimelineOnFailure& operator=(const TimelineOnFailure&) = delete;

private:
  const History& history_;
};

// ---------------------------------------------------------------------------------------------

struct MemberSpec {
  std::string binary;               // empty: $KVELECT_TEST_MEMBER
  std::vector<std::string> servers; // one --server per entry (tests/member takes exactly one)
  std::string bucket;
  std::string key = "job";
  std::string name;
  bool skip_validation = true;
  bool keep_key = false;
  int splay_ms = 0;
  bool debug = false; // --debug: library debug lines on stderr (kept in a log)
  std::vector<std::string> extra_args;
};

// The path of the member binary: $KVELECT_TEST_MEMBER, or "" when unset.
std::string default_member_binary();

class MemberProcess {
public:
  // Spawns the member; its won/lost/... lines go into `history` (which must outlive this).
  // Throws std::runtime_error if it cannot be started.
  MemberProcess(MemberSpec spec, History& history);
  // SIGKILL (if still running), reap, join the reader. Keeps the stderr log (library debug
  // lines) if the test failed or KVELECT_KEEP_FAULT_LOGS=1.
  ~MemberProcess();
  MemberProcess(const MemberProcess&) = delete;
  MemberProcess& operator=(const MemberProcess&) = delete;

  const std::string& name() const { return spec_.name; }
  pid_t pid() const { return pid_; }

  // Waits until this member has printed `kind` at least `count` times in total.
  bool wait_for(std::string_view kind, std::chrono::milliseconds timeout, int count = 1) const;
  // Waits until this member prints `kind` at or after `after_ns`; returns the event.
  std::optional<Event> wait_next(std::string_view kind, std::int64_t after_ns,
                                 std::chrono::milliseconds timeout) const;
  int count(std::string_view kind) const;
  std::vector<Event> lines() const;
  // True while its last won/lost is a won.
  bool leading() const;
  // The last "leader <name|->" it printed.
  std::optional<std::string> last_leader_line() const;

  void kill();      // SIGKILL, reap; records "killed" (which ends a leadership) after the reap
  void terminate(); // SIGTERM: graceful stop (OnLost, release); does not wait
  void pause();     // SIGSTOP; returns once stopped; records "paused"
  void resume();    // records "resumed"; SIGCONT; returns once running
  void resign();    // SIGUSR1
  // Waits for the process to exit (after terminate()); reaps it. True if it exited in time.
  bool wait_exit(std::chrono::milliseconds timeout);
  // Exit status as from waitpid, once reaped.
  std::optional<int> wait_status() const;
  bool alive(); // running (paused counts); reaps a process that died
  std::string stderr_tail(int lines = 30) const;
  const std::string& log_path() const { return log_path_; }

private:
  void read_loop(int fd);
  bool reap(bool block);
  void on_line(const std::string& line);
  char proc_state() const;

  MemberSpec spec_;
  History& history_;
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string log_path_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<Event> lines_;
  bool eof_ = false;
  std::thread reader_;
};

} // namespace kvelect::testing::fault
