// SPDX-License-Identifier: Apache-2.0
#include "history.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

namespace kvelect::testing::fault {

std::int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

namespace {

std::string ms(std::int64_t ns) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f ms", static_cast<double>(ns) / 1e6);
  return buf;
}

bool is_boundary(const std::string& kind) {
  return kind == "won" || kind == "lost" || kind == "killed" || kind == "exited";
}

} // namespace

// ---------------------------------------------------------------------------------------------
// History

History::History() : origin_(monotonic_ns()) {}

History::~History() {
  sampler_.request_stop();
  if (sampler_.joinable())
    sampler_.join();
}

void History::watch_process(pid_t pid, const std::string& member) {
  std::lock_guard lock(mu_);
  auto& names = watched_[pid];
  if (std::find(names.begin(), names.end(), member) == names.end())
    names.push_back(member);
  if (!sampler_.joinable())
    sampler_ = std::jthread([this](std::stop_token stop) { sample(std::move(stop)); });
}

namespace {

// Run-queue wait of one thread, in ns (second field of /proc/<pid>/task/<tid>/schedstat).
std::optional<std::int64_t> run_queue_wait(pid_t pid, const char* tid) {
  char path[320];
  std::snprintf(path, sizeof path, "/proc/%d/task/%s/schedstat", static_cast<int>(pid), tid);
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return std::nullopt;
  char buf[128];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0)
    return std::nullopt;
  buf[n] = '\0';
  long long run = 0, wait = 0;
  if (std::sscanf(buf, "%lld %lld", &run, &wait) != 2)
    return std::nullopt;
  return wait;
}

} // namespace

void History::sample(std::stop_token stop) {
  constexpr std::int64_t kMinStall = 20'000'000;
  struct ThreadState {
    std::int64_t wait = 0;
    std::int64_t stall_begin = 0;
    std::int64_t stall_wait = 0;
    std::int64_t stall_end = 0;
    std::vector<std::size_t> published; // indexes into stalls_ of this stall, once long enough
    std::int64_t seen = 0;              // tick that last saw the thread
  };
  std::map<std::pair<pid_t, std::string>, ThreadState> threads;
  // A stall is published as soon as it is long enough (so that a check made while it lasts
  // sees it) and extended while it goes on; its "starved" event is recorded when it ends.
  auto publish = [&](ThreadState& st, const std::vector<std::string>& names) {
    if (st.stall_wait < kMinStall)
      return;
    std::lock_guard lock(mu_);
    if (st.published.empty()) {
      for (const auto& name : names) {
        st.published.push_back(stalls_.size());
        stalls_.push_back({name, st.stall_begin, st.stall_end, st.stall_wait});
      }
    } else {
      for (const auto index : st.published) {
        stalls_[index].end = st.stall_end;
        stalls_[index].waited_ns = st.stall_wait;
      }
    }
  };
  auto finish = [&](ThreadState& st) {
    if (!st.published.empty()) {
      std::vector<Event> events;
      {
        std::lock_guard lock(mu_);
        for (const auto index : st.published) {
          char detail[64];
          std::snprintf(detail, sizeof detail, "%.1f ms without CPU",
                        static_cast<double>(stalls_[index].waited_ns) / 1e6);
          events.push_back({stalls_[index].begin, stalls_[index].member, "starved", detail});
        }
      }
      for (auto& event : events)
        record(std::move(event));
    }
    st.published.clear();
    st.stall_wait = 0;
  };
  std::int64_t last = monotonic_ns();
  while (!stop.stop_requested()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::int64_t now = monotonic_ns();
    const std::int64_t elapsed = now - last;
    std::map<pid_t, std::vector<std::string>> watched;
    {
      std::lock_guard lock(mu_);
      watched = watched_;
    }
    for (const auto& [pid, names] : watched) {
      char dir_path[48];
      std::snprintf(dir_path, sizeof dir_path, "/proc/%d/task", static_cast<int>(pid));
      DIR* dir = ::opendir(dir_path);
      if (dir == nullptr)
        continue;
      while (const dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] == '.')
          continue;
        const auto wait = run_queue_wait(pid, entry->d_name);
        if (!wait)
          continue;
        auto [it, fresh] = threads.try_emplace({pid, entry->d_name});
        ThreadState& st = it->second;
        st.seen = now;
        if (!fresh) {
          // Runnable but not running for at least half of the tick: starved.
          const std::int64_t delta = *wait - st.wait;
          if (delta * 2 >= elapsed) {
            if (st.stall_wait == 0)
              st.stall_begin = last;
            st.stall_wait += delta;
            st.stall_end = now;
            publish(st, names);
          } else if (st.stall_wait > 0) {
            finish(st);
          }
        }
        st.wait = *wait;
      }
      ::closedir(dir);
    }
    // Threads that are gone end their stalls.
    for (auto it = threads.begin(); it != threads.end();) {
      if (it->second.seen != now) {
        finish(it->second);
        it = threads.erase(it);
      } else {
        ++it;
      }
    }
    last = now;
  }
  for (auto& [key, st] : threads)
    finish(st);
}

std::int64_t History::longest_stall(const std::string& member, std::int64_t from_ns,
                                    std::int64_t to_ns) const {
  std::lock_guard lock(mu_);
  std::int64_t longest = 0;
  for (const auto& stall : stalls_)
    if (stall.member == member && stall.end >= from_ns && stall.begin <= to_ns)
      longest = std::max(longest, stall.waited_ns);
  return longest;
}

void History::record_stall(Stall stall) {
  char detail[64];
  std::snprintf(detail, sizeof detail, "%.1f ms without CPU",
                static_cast<double>(stall.waited_ns) / 1e6);
  Event event{stall.begin, stall.member, "starved", detail};
  {
    std::lock_guard lock(mu_);
    stalls_.push_back(std::move(stall));
  }
  record(std::move(event));
}

std::vector<Stall> History::stalls() const {
  std::lock_guard lock(mu_);
  return stalls_;
}

void History::set_starvation_limit(std::chrono::milliseconds limit) {
  std::lock_guard lock(mu_);
  starvation_limit_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(limit).count();
}

void History::record(Event event) {
  {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(event));
  }
  cv_.notify_all();
}

void History::note(const std::string& member, std::string kind, std::string detail) {
  record({monotonic_ns(), member, std::move(kind), std::move(detail)});
}

std::vector<Option> History::options_for(const std::string& member) {
  watch_process(::getpid(), member);
  return {OnWon([this, member](Token token) { note(member, "won", std::to_string(token)); }),
          OnLost([this, member] { note(member, "lost"); })};
}

void History::set_resume_tail(std::chrono::milliseconds tail) {
  std::lock_guard lock(mu_);
  resume_tail_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(tail).count();
}

std::vector<Event> History::events() const {
  std::lock_guard lock(mu_);
  auto copy = events_;
  std::stable_sort(copy.begin(), copy.end(),
                   [](const Event& a, const Event& b) { return a.ns < b.ns; });
  return copy;
}

HistoryReport History::check(std::optional<std::int64_t> until_ns) const {
  const std::int64_t until = until_ns.value_or(monotonic_ns());
  std::int64_t tail_limit = 0;
  std::int64_t starvation_limit = 0;
  {
    std::lock_guard lock(mu_);
    tail_limit = resume_tail_ns_;
    starvation_limit = starvation_limit_ns_;
  }
  const auto sorted = events();
  HistoryReport report;
  report.origin_ns = origin_;

  struct MemberState {
    std::optional<std::int64_t> open;    // start of the current leadership
    std::optional<std::int64_t> paused;  // last "paused" inside the current leadership
    std::optional<std::int64_t> resumed; // "resumed" after that pause, no won/lost since
    bool dead = false;
  };
  std::map<std::string, MemberState> members;

  for (const auto& e : sorted) {
    if (e.ns > until)
      break;
    auto& m = members[e.member];
    if (e.kind == "won") {
      ++report.wins;
      ++report.wins_by_member[e.member];
      if (report.first_won_ns == 0)
        report.first_won_ns = e.ns;
      if (m.dead)
        report.problems.push_back(e.member + " fired won after its process ended");
      if (m.open) {
        report.problems.push_back(e.member + " fired won at +" + ms(e.ns - origin_) +
                                  " while already leading since +" + ms(*m.open - origin_));
      } else {
        m.open = e.ns;
      }
      m.paused.reset();
      m.resumed.reset();
    } else if (e.kind == "lost") {
      ++report.losses;
      if (!m.open) {
        report.problems.push_back(e.member + " fired lost at +" + ms(e.ns - origin_) +
                                  " without leading");
      } else if (m.paused && m.resumed && e.ns - *m.resumed <= tail_limit) {
        // Lost at once on resume: leadership ended (at the latest) when the process stopped.
        report.intervals.push_back({e.member, *m.open, *m.paused, false, false});
        report.intervals.push_back({e.member, *m.resumed, e.ns, false, true});
      } else {
        report.intervals.push_back({e.member, *m.open, e.ns, false, false});
      }
      m.open.reset();
      m.paused.reset();
      m.resumed.reset();
    } else if (e.kind == "killed" || e.kind == "exited") {
      if (m.open)
        report.intervals.push_back({e.member, *m.open, e.ns, false, false});
      m.open.reset();
      m.dead = true;
    } else if (e.kind == "paused") {
      if (m.open)
        m.paused = e.ns;
      m.resumed.reset();
    } else if (e.kind == "resumed") {
      if (m.open && m.paused)
        m.resumed = e.ns;
    }
  }
  for (auto& [name, m] : members)
    if (m.open)
      report.intervals.push_back({name, *m.open, until, true, false});

  std::sort(report.intervals.begin(), report.intervals.end(),
            [](const Interval& a, const Interval& b) { return a.begin < b.begin; });

  for (std::size_t i = 0; i < report.intervals.size(); ++i) {
    const auto& a = report.intervals[i];
    if (a.stale_tail)
      continue;
    for (std::size_t j = i + 1; j < report.intervals.size(); ++j) {
      const auto& b = report.intervals[j];
      if (b.stale_tail || a.member == b.member)
        continue;
      if (a.begin < b.end && b.begin < a.end) {
        const auto overlap = std::min(a.end, b.end) - std::max(a.begin, b.begin);
        std::string text = "OVERLAP of " + ms(overlap) + ": " + a.member + " led [+" +
                           ms(a.begin - origin_) + ", +" + ms(a.end - origin_) +
                           (a.open ? " (open)" : "") + ") and " + b.member + " led [+" +
                           ms(b.begin - origin_) + ", +" + ms(b.end - origin_) +
                           (b.open ? " (open)" : "") + ")";
        // `a` began first: it should have stood down before `b` won. Was its process starved
        // of CPU around then?
        const auto stall = longest_stall(a.member, b.begin - 1'000'000'000, a.end);
        if (stall >= starvation_limit)
          report.inconclusive.push_back(text + "; " + a.member +
                                        " was runnable but not running for " + ms(stall) +
                                        " just before");
        else
          report.problems.push_back(std::move(text));
      }
    }
  }

  // Longest stretch without a leader, from the first win to `until`.
  std::optional<std::int64_t> covered;
  for (const auto& iv : report.intervals) {
    if (iv.stale_tail)
      continue;
    if (!covered) {
      covered = iv.end;
      continue;
    }
    if (iv.begin > *covered)
      report.gaps.emplace_back(*covered, iv.begin);
    covered = std::max(*covered, iv.end);
  }
  if (covered && until > *covered)
    report.gaps.emplace_back(*covered, until);
  for (const auto& [begin, end] : report.gaps)
    report.longest_gap_ns = std::max(report.longest_gap_ns, end - begin);
  return report;
}

std::int64_t HistoryReport::longest_gap_since(std::int64_t since_ns) const {
  std::int64_t longest = 0;
  for (const auto& [begin, end] : gaps)
    if (end > since_ns)
      longest = std::max(longest, end - std::max(begin, since_ns));
  return longest;
}

std::string HistoryReport::describe() const {
  std::ostringstream out;
  out << "wins " << wins << ", losses " << losses << ", longest leaderless gap "
      << ms(longest_gap_ns) << "\n";
  for (const auto& p : problems)
    out << "PROBLEM: " << p << "\n";
  for (const auto& p : inconclusive)
    out << "INCONCLUSIVE (CPU starvation): " << p << "\n";
  out << "intervals (ms since the history began):\n";
  for (const auto& iv : intervals)
    out << "  " << iv.member << " [+" << ms(iv.begin - origin_ns) << ", +" << ms(iv.end - origin_ns)
        << ")" << (iv.open ? " open" : "") << (iv.stale_tail ? " stale tail after resume" : "")
        << "\n";
  return out.str();
}

std::vector<std::string> History::leaders() const {
  std::map<std::string, bool> leading;
  for (const auto& e : events())
    if (is_boundary(e.kind))
      leading[e.member] = e.kind == "won";
  std::vector<std::string> result;
  for (const auto& [name, on] : leading)
    if (on)
      result.push_back(name);
  return result;
}

int History::count(std::string_view kind, std::string_view member) const {
  std::lock_guard lock(mu_);
  return static_cast<int>(std::count_if(events_.begin(), events_.end(), [&](const Event& e) {
    return e.kind == kind && (member.empty() || e.member == member);
  }));
}

std::optional<Event> History::first(std::string_view kind, std::int64_t after_ns,
                                    std::string_view member) const {
  for (const auto& e : events())
    if (e.kind == kind && e.ns >= after_ns && (member.empty() || e.member == member))
      return e;
  return std::nullopt;
}

std::optional<Event> History::first_not_by(std::string_view kind, std::string_view member,
                                           std::int64_t after_ns) const {
  for (const auto& e : events())
    if (e.kind == kind && e.ns >= after_ns && e.member != member)
      return e;
  return std::nullopt;
}

bool History::wait_for(const std::function<bool(const std::vector<Event>&)>& condition,
                       std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return condition(events_); });
}

std::optional<Event> History::wait_first(std::string_view kind, std::int64_t after_ns,
                                         std::chrono::milliseconds timeout,
                                         std::string_view except) const {
  std::optional<Event> found;
  wait_for(
      [&](const std::vector<Event>& events) {
        for (const auto& e : events)
          if (e.kind == kind && e.ns >= after_ns && (except.empty() || e.member != except) &&
              (!found || e.ns < found->ns))
            found = e;
        return found.has_value();
      },
      timeout);
  return found;
}

std::string History::timeline() const {
  std::ostringstream out;
  out << "timeline (ms since the history began):\n";
  for (const auto& e : events()) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "  %+10.1f  ", static_cast<double>(e.ns - origin_) / 1e6);
    out << buf << e.member << " " << e.kind;
    if (!e.detail.empty())
      out << " " << e.detail;
    out << "\n";
  }
  return out.str();
}

HistoryReport expect_consistent(const History& history, const std::string& label,
                                std::int64_t since_ns) {
  auto report = history.check();
  std::string problems;
  for (const auto& p : report.problems)
    problems += "  " + p + "\n";
  // The intervals and the full timeline: printed by TimelineOnFailure.
  EXPECT_TRUE(report.ok()) << label << ": the history is not consistent\n" << problems;
  for (const auto& text : report.inconclusive) {
    std::printf("[fault] %s: WARNING, not counted: %s\n", label.c_str(), text.c_str());
    ::testing::Test::RecordProperty(label + "_inconclusive", text);
  }
  const double gap_ms = static_cast<double>(report.longest_gap_since(since_ns)) / 1e6;
  ::testing::Test::RecordProperty(label + "_longest_gap_ms", static_cast<int>(gap_ms));
  std::printf("[fault] %s: longest leaderless gap %.1f ms (wins %d, losses %d)\n", label.c_str(),
              gap_ms, report.wins, report.losses);
  std::fflush(stdout);
  return report;
}

TimelineOnFailure::~TimelineOnFailure() {
  if (::testing::Test::HasFailure()) {
    const auto report = history_.check();
    std::printf("%s%s", report.describe().c_str(), history_.timeline().c_str());
    std::fflush(stdout);
  }
}

// ---------------------------------------------------------------------------------------------
// MemberProcess

std::string default_member_binary() {
  const char* path = std::getenv("KVELECT_TEST_MEMBER"); // NOLINT(concurrency-mt-unsafe)
  return path != nullptr ? std::string(path) : std::string();
}

namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

// Only async-signal-safe calls between fork and exec.
[[noreturn]] void exec_child(pid_t parent, const char* binary, char* const* argv, int out_fd,
                             int err_fd, int null_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent)
    ::_exit(127);
  ::dup2(null_fd, 0);
  ::dup2(out_fd, 1);
  ::dup2(err_fd, 2);
  if (::close_range(3, ~0U, 0) != 0)
    for (int fd = 3; fd < 4096; ++fd)
      ::close(fd);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGUSR1, SIGHUP})
    ::sigaction(sig, &dfl, nullptr);
  ::execv(binary, argv);
  static const char msg[] = "kvelect fault suite: execv(member) failed\n";
  (void)!::write(2, msg, sizeof msg - 1);
  ::_exit(127);
}

} // namespace

MemberProcess::MemberProcess(MemberSpec spec, History& history)
    : spec_(std::move(spec)), history_(history) {
  if (spec_.binary.empty())
    spec_.binary = default_member_binary();
  if (spec_.binary.empty())
    throw std::runtime_error("no member binary: set KVELECT_TEST_MEMBER (meson test does)");
  std::vector<std::string> args{spec_.binary};
  for (const auto& s : spec_.servers)
    args.insert(args.end(), {"--server", s});
  args.insert(args.end(), {"--bucket", spec_.bucket, "--key", spec_.key, "--name", spec_.name,
                           "--splay", std::to_string(spec_.splay_ms)});
  if (spec_.skip_validation)
    args.emplace_back("--skip-validation");
  if (spec_.keep_key)
    args.emplace_back("--keep-key");
  if (spec_.debug)
    args.emplace_back("--debug");
  args.insert(args.end(), spec_.extra_args.begin(), spec_.extra_args.end());
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);

  const char* tmp = std::getenv("TMPDIR"); // NOLINT(concurrency-mt-unsafe)
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                        "/kvelect-fault-" + spec_.name + "-XXXXXX";
  std::vector<char> path(pattern.begin(), pattern.end());
  path.push_back('\0');
  const int log_fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (log_fd < 0)
    throw_errno("mkostemp " + pattern);
  log_path_ = path.data();
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int pipe_fds[2] = {-1, -1};
  if (null_fd < 0 || ::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    ::close(log_fd);
    if (null_fd >= 0)
      ::close(null_fd);
    throw_errno("pipe2");
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0)
    exec_child(parent, argv[0], argv.data(), pipe_fds[1], log_fd, null_fd);
  const int fork_errno = errno;
  ::close(pipe_fds[1]);
  ::close(log_fd);
  ::close(null_fd);
  if (pid < 0) {
    ::close(pipe_fds[0]);
    errno = fork_errno;
    throw_errno("fork");
  }
  pid_ = pid;
  history_.note(spec_.name, "spawned", "pid " + std::to_string(pid));
  history_.watch_process(pid, spec_.name);
  reader_ = std::thread([this, fd = pipe_fds[0]] { read_loop(fd); });
}

MemberProcess::~MemberProcess() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
  if (reader_.joinable())
    reader_.join();
  const char* keep = std::getenv("KVELECT_KEEP_FAULT_LOGS"); // NOLINT(concurrency-mt-unsafe)
  if (::testing::Test::HasFailure() || (keep != nullptr && *keep != '\0' && *keep != '0')) {
    std::printf("[fault] member %s: stderr log kept at %s\n", spec_.name.c_str(),
                log_path_.c_str());
  } else if (!log_path_.empty()) {
    ::unlink(log_path_.c_str());
  }
}

void MemberProcess::read_loop(int fd) {
  std::string buffer;
  char chunk[4096];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    buffer.append(chunk, static_cast<std::size_t>(n));
    std::size_t newline;
    while ((newline = buffer.find('\n')) != std::string::npos) {
      on_line(buffer.substr(0, newline));
      buffer.erase(0, newline + 1);
    }
  }
  ::close(fd);
  {
    std::lock_guard lock(mu_);
    eof_ = true;
  }
  cv_.notify_all();
}

void MemberProcess::on_line(const std::string& line) {
  Event event;
  std::istringstream in(line);
  long long ns = 0;
  std::string name;
  if (in >> ns >> name >> event.kind) {
    event.ns = ns;
    event.member = name;
    std::getline(in >> std::ws, event.detail);
  } else {
    event = {monotonic_ns(), spec_.name, "garbage", line};
  }
  {
    std::lock_guard lock(mu_);
    lines_.push_back(event);
  }
  cv_.notify_all();
  history_.record(std::move(event));
}

bool MemberProcess::wait_for(std::string_view kind, std::chrono::milliseconds timeout,
                             int count) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    return std::count_if(lines_.begin(), lines_.end(),
                         [&](const Event& e) { return e.kind == kind; }) >= count;
  });
}

std::optional<Event> MemberProcess::wait_next(std::string_view kind, std::int64_t after_ns,
                                              std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  std::optional<Event> found;
  cv_.wait_for(lock, timeout, [&] {
    for (const auto& e : lines_)
      if (e.kind == kind && e.ns >= after_ns) {
        found = e;
        return true;
      }
    return false;
  });
  return found;
}

int MemberProcess::count(std::string_view kind) const {
  std::lock_guard lock(mu_);
  return static_cast<int>(
      std::count_if(lines_.begin(), lines_.end(), [&](const Event& e) { return e.kind == kind; }));
}

std::vector<Event> MemberProcess::lines() const {
  std::lock_guard lock(mu_);
  return lines_;
}

bool MemberProcess::leading() const {
  std::lock_guard lock(mu_);
  for (auto it = lines_.rbegin(); it != lines_.rend(); ++it)
    if (it->kind == "won" || it->kind == "lost")
      return it->kind == "won";
  return false;
}

std::optional<std::string> MemberProcess::last_leader_line() const {
  std::lock_guard lock(mu_);
  for (auto it = lines_.rbegin(); it != lines_.rend(); ++it)
    if (it->kind == "leader")
      return it->detail;
  return std::nullopt;
}

bool MemberProcess::reap(bool block) {
  if (status_)
    return true;
  if (pid_ <= 0)
    return false;
  int st = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &st, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    status_ = st;
    return true;
  }
  return false;
}

void MemberProcess::kill() {
  if (pid_ <= 0 || status_)
    return;
  ::kill(pid_, SIGKILL);
  reap(true);
  history_.note(spec_.name, "killed");
}

void MemberProcess::terminate() {
  if (pid_ > 0 && !status_)
    ::kill(pid_, SIGTERM);
}

void MemberProcess::resign() {
  if (pid_ > 0 && !status_)
    ::kill(pid_, SIGUSR1);
}

char MemberProcess::proc_state() const {
  std::ifstream stat("/proc/" + std::to_string(pid_) + "/stat");
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto paren = content.rfind(')');
  if (paren == std::string::npos || paren + 2 >= content.size())
    return '?';
  return content[paren + 2];
}

void MemberProcess::pause() {
  if (pid_ <= 0 || status_)
    throw std::logic_error("pause: member " + spec_.name + " is not running");
  ::kill(pid_, SIGSTOP);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (proc_state() != 'T' && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  history_.note(spec_.name, "paused");
}

void MemberProcess::resume() {
  if (pid_ <= 0 || status_)
    throw std::logic_error("resume: member " + spec_.name + " is not running");
  history_.note(spec_.name, "resumed");
  ::kill(pid_, SIGCONT);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (proc_state() == 'T' && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::microseconds(200));
}

bool MemberProcess::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reap(false)) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  history_.note(spec_.name, "exited", "status " + std::to_string(*status_));
  return true;
}

std::optional<int> MemberProcess::wait_status() const { return status_; }

bool MemberProcess::alive() {
  if (status_ || pid_ <= 0)
    return false;
  if (reap(false)) {
    history_.note(spec_.name, "exited", "status " + std::to_string(*status_));
    return false;
  }
  return true;
}

std::string MemberProcess::stderr_tail(int lines) const {
  std::ifstream in(log_path_);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);)
    all.push_back(line);
  std::string out;
  for (std::size_t i = all.size() > static_cast<std::size_t>(lines)
                           ? all.size() - static_cast<std::size_t>(lines)
                           : 0;
       i < all.size(); ++i)
    out += all[i] + "\n";
  return out;
}

} // namespace kvelect::testing::fault
