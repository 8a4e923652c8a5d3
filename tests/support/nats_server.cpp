// SPDX-License-Identifier: Apache-2.0
#include "nats_server.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <system_error>
#include <thread>

extern char** environ;

namespace kvelect::testing {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kStartTimeout = 15s;
constexpr auto kStopGrace = 5s;
constexpr auto kClusterTimeout = 30s;

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

std::atomic<int>& sequence() {
  static std::atomic<int> seq{0};
  return seq;
}

std::string make_temp_dir(const std::string& prefix) {
  std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    throw_errno("mkdtemp " + tmpl);
  return tmpl;
}

// One log directory per test process, created on first use. When a test
// fails the server logs are what explains it, so they are kept; a run in
// which nothing failed removes them at exit rather than filling /tmp.
// KVELECT_KEEP_NATS_LOGS=1 keeps them always. A crashed or killed test
// process never gets to the removal, so its logs stay too.
class LogDirectory {
public:
  LogDirectory() : path_(make_temp_dir("kvelect-nats-logs-")) {}
  ~LogDirectory() {
    const char* keep_env = std::getenv("KVELECT_KEEP_NATS_LOGS");
    bool keep = keep_env != nullptr && *keep_env != '\0' && std::strcmp(keep_env, "0") != 0;
    try {
      keep = keep || ::testing::UnitTest::GetInstance()->Failed();
    } catch (...) {
      keep = true;
    }
    if (keep) {
      std::fprintf(stderr, "[kvelect::testing] nats-server logs kept in %s\n", path_.c_str());
    } else {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  LogDirectory(const LogDirectory&) = delete;
  LogDirectory& operator=(const LogDirectory&) = delete;
  const std::string& path() const { return path_; }

private:
  std::string path_;
};

const std::string& log_directory() {
  static const LogDirectory dir;
  return dir.path();
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty())
      out += sep;
    out += p;
  }
  return out;
}

std::string describe_status(int status) {
  if (WIFEXITED(status))
    return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return std::string("killed by signal ") + ::strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

std::string read_file_from(const std::string& path, std::streamoff offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return {};
  in.seekg(offset);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string last_lines(const std::string& text, int lines) {
  if (lines <= 0)
    return {};
  std::size_t pos = text.size();
  // Ignore a trailing newline so it does not count as an empty last line.
  if (pos > 0 && text[pos - 1] == '\n')
    --pos;
  int found = 0;
  while (pos > 0) {
    if (text[pos - 1] == '\n' && ++found == lines)
      break;
    --pos;
  }
  return text.substr(pos);
}

// The port a nats-server log says it could not bind, e.g.
//   ... listen tcp 127.0.0.1:44453: bind: address already in use
// or 0 when the log has no such line.
int port_in_use(const std::string& log) {
  auto at = log.find("address already in use");
  if (at == std::string::npos)
    return 0;
  auto line_start = log.rfind('\n', at);
  auto host = log.find("127.0.0.1:", line_start == std::string::npos ? 0 : line_start);
  if (host == std::string::npos || host > at)
    return 0;
  int port = 0;
  for (auto i = host + 10; i < log.size() && log[i] >= '0' && log[i] <= '9'; ++i)
    port = port * 10 + (log[i] - '0');
  return port;
}

// True when something on 127.0.0.1:port greets like a NATS server. Checking
// the greeting (not just connect()) guards against a foreign process that
// happens to listen on a port we picked.
bool nats_greets(int port) {
  UniqueFd fd = connect_loopback(port, 500ms);
  if (!fd)
    return false;
  std::string got;
  char buf[1024];
  auto deadline = Clock::now() + 1s;
  while (got.find("\r\n") == std::string::npos && got.size() < std::size_t{64} * 1024) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms || !wait_readable(fd.get(), left))
      return false;
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got.rfind("INFO ", 0) == 0;
}

// Extracts meta_cluster.leader from a /jsz response without a JSON library:
// scan the "meta_cluster" object and take the string value of its top-level
// "leader" key. Returns "" when absent (no leader known yet).
std::string jsz_meta_leader(const std::string& body) {
  auto key = body.find("\"meta_cluster\"");
  if (key == std::string::npos)
    return {};
  auto i = body.find('{', key);
  if (i == std::string::npos)
    return {};
  auto read_string = [&](std::size_t& pos) { // pos at opening quote
    std::string s;
    for (++pos; pos < body.size() && body[pos] != '"'; ++pos) {
      if (body[pos] == '\\' && pos + 1 < body.size())
        ++pos;
      s += body[pos];
    }
    ++pos; // past the closing quote
    return s;
  };
  auto skip_ws = [&](std::size_t& pos) {
    while (pos < body.size() && std::strchr(" \t\r\n", body[pos]) != nullptr)
      ++pos;
  };
  int depth = 0;
  while (i < body.size()) {
    char c = body[i];
    if (c == '"') {
      std::string s = read_string(i);
      if (depth == 1) {
        skip_ws(i);
        if (i < body.size() && body[i] == ':' && s == "leader") {
          ++i;
          skip_ws(i);
          if (i < body.size() && body[i] == '"')
            return read_string(i);
          return {};
        }
      }
      continue;
    }
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0)
        break;
    }
    ++i;
  }
  return {};
}

// Runs in the forked child: only async-signal-safe calls until execve, since
// the parent may have other threads (whose locks the child inherits held).
[[noreturn]] void exec_child(const char* binary, char* const* argv, int log_fd, int null_fd,
                             pid_t parent, int max_fd) {
  // If the test binary dies (crash, abort, sanitizer exit) the server must
  // not outlive it and keep ports/CPU busy.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The parent may have died between fork() and prctl(): then nobody would
  // ever deliver the death signal.
  if (::getppid() != parent)
    ::_exit(127);

  if (::dup2(null_fd, STDIN_FILENO) < 0 || ::dup2(log_fd, STDOUT_FILENO) < 0 ||
      ::dup2(log_fd, STDERR_FILENO) < 0)
    ::_exit(127);
  // Close every inherited descriptor (sockets of proxies, other servers' logs,
  // gtest's files): a server holding a test's socket open would keep that
  // connection alive after the test closed it.
  if (::close_range(3, ~0U, 0) != 0) {
    for (int fd = 3; fd < max_fd; ++fd)
      ::close(fd);
  }

  // Signal state survives execve: undo anything the test process blocked or
  // ignored, so SIGTERM and SIGPIPE behave as for a normally started server.
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP)
      ::sigaction(sig, &dfl, nullptr);
  }

  ::execve(binary, argv, environ);
  static const char msg[] = "kvelect test support: execve(nats-server) failed\n";
  ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
  ::_exit(127);
}

} // namespace

// A temporary directory removed (recursively) on destruction.
class NatsServer::TempDir {
public:
  explicit TempDir(const std::string& prefix) : path_(make_temp_dir(prefix)) {}
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

private:
  std::string path_;
};

// ---------------------------------------------------------------------------
// Free functions

namespace {

bool usable_executable(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
}

} // namespace

std::string nats_server_path() {
  const auto usable = usable_executable;
  if (const char* chosen = std::getenv("KVELECT_NATS_SERVER"); chosen != nullptr)
    return usable(chosen) ? std::string(chosen) : std::string();
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest(path);
    while (true) {
      auto colon = rest.find(':');
      std::string dir(rest.substr(0, colon));
      if (dir.empty())
        dir = ".";
      if (std::string candidate = dir + "/nats-server"; usable(candidate))
        return candidate;
      if (colon == std::string_view::npos)
        break;
      rest.remove_prefix(colon + 1);
    }
  }
  for (const char* dir : {"/usr/local/sbin", "/usr/sbin", "/sbin"}) {
    if (std::string candidate = std::string(dir) + "/nats-server"; usable(candidate))
      return candidate;
  }
  return {};
}

bool nats_server_available() { return !nats_server_path().empty(); }

std::string nats_server_missing_reason() {
  if (const char* chosen = std::getenv("KVELECT_NATS_SERVER"); chosen != nullptr)
    return std::string("KVELECT_NATS_SERVER=") + chosen +
           " is not an executable file (./dev servers fetches the matrix's servers)";
  return "nats-server executable not found (PATH, /usr/sbin)";
}

std::string ServerVersion::str() const {
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

ServerVersion nats_server_version() {
  static const ServerVersion version = [] {
    ServerVersion v;
    const std::string binary = nats_server_path();
    if (binary.empty())
      return v;
    // popen runs a shell; the path is quoted for it.
    std::string quoted = "'";
    for (char c : binary)
      quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    quoted += "' --version 2>&1";
    FILE* out = ::popen(quoted.c_str(), "r");
    if (out == nullptr)
      return v;
    char line[256] = {};
    const bool got = std::fgets(line, sizeof line, out) != nullptr;
    ::pclose(out);
    if (got)
      std::sscanf(line, "nats-server: v%d.%d.%d", &v.major, &v.minor, &v.patch);
    return v;
  }();
  return version;
}

bool ci_environment() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && *ci != '\0';
}

// ---------------------------------------------------------------------------
// NatsServer

NatsServer::NatsServer(ServerOptions options) : options_(std::move(options)) {
  binary_ = nats_server_path();
  if (binary_.empty())
    throw std::runtime_error(nats_server_missing_reason());
  // Which server a log's tests ran against (the server matrix runs the same binaries on several).
  static std::once_flag announced;
  std::call_once(announced, [this] {
    std::fprintf(stderr, "[kvelect::testing] nats-server %s at %s\n",
                 nats_server_version().str().c_str(), binary_.c_str());
  });

  const int seq = sequence()++;
  if (options_.server_name.empty())
    options_.server_name = "kvelect-" + std::to_string(::getpid()) + "-" + std::to_string(seq);
  if (options_.jetstream) {
    if (options_.store_dir.empty()) {
      owned_store_ = std::make_unique<TempDir>("kvelect-nats-store-");
      store_dir_ = owned_store_->path();
    } else {
      store_dir_ = options_.store_dir;
    }
  }
  std::string file = std::to_string(seq) + "-" + options_.server_name + ".log";
  for (char& c : file) {
    if (std::strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", c) ==
        nullptr)
      c = '_';
  }
  log_path_ = log_directory() + "/" + file;

  for (int attempt = 1;; ++attempt) {
    pick_ports();
    try {
      spawn();
      wait_ready(Clock::now() + kStartTimeout);
      return;
    } catch (const NatsServerStartError& e) {
      // A port picked by free_loopback_ports() can be taken by someone else
      // before nats-server binds it: pick again rather than fail the test.
      // A clash on a port the caller chose is the caller's problem.
      const int clash = e.port_in_use();
      const bool ours = clash != 0 && ((options_.port == 0 && clash == port_) ||
                                       (options_.monitor_port == 0 && clash == monitor_port_) ||
                                       (options_.cluster_port == 0 && clash == cluster_port_));
      if (!ours || attempt >= 3)
        throw;
    }
  }
}

NatsServer::~NatsServer() {
  bool failed = false;
  try {
    failed = ::testing::Test::HasFailure();
  } catch (...) {
  }
  begin_stop();
  finish_stop(Clock::now() + kStopGrace);
  if (failed)
    std::fprintf(stderr, "[kvelect::testing] log of nats-server %s kept at %s\n",
                 options_.server_name.c_str(), log_path_.c_str());
}

std::string NatsServer::url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

void NatsServer::pick_ports() {
  const bool clustered = !options_.cluster_name.empty();
  int wanted = (options_.port == 0) + (options_.monitor_port == 0) +
               (clustered && options_.cluster_port == 0);
  std::vector<int> fresh = free_loopback_ports(wanted);
  auto next = fresh.begin();
  port_ = options_.port != 0 ? options_.port : *next++;
  monitor_port_ = options_.monitor_port != 0 ? options_.monitor_port : *next++;
  cluster_port_ = !clustered ? 0 : options_.cluster_port != 0 ? options_.cluster_port : *next++;
}

void NatsServer::spawn() {
  std::vector<std::string> args{binary_,
                                "-a",
                                "127.0.0.1", // never listen beyond loopback
                                "-p",
                                std::to_string(port_),
                                "-m",
                                std::to_string(monitor_port_), // binds -a too: 127.0.0.1
                                "--server_name",
                                options_.server_name};
  if (options_.jetstream) {
    args.insert(args.end(), {"-js", "-sd", store_dir_});
  }
  if (!options_.config.empty()) {
    const std::string config_path = log_path_ + ".conf";
    std::ofstream(config_path, std::ios::trunc) << options_.config;
    args.insert(args.end(), {"-c", config_path});
  }
  if (!options_.cluster_name.empty()) {
    args.insert(args.end(), {"--cluster_name", options_.cluster_name, "--cluster",
                             "nats://127.0.0.1:" + std::to_string(cluster_port_)});
    if (!options_.routes.empty())
      args.insert(args.end(), {"--routes", join(options_.routes, ",")});
  }
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);

  UniqueFd log_fd(::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (!log_fd)
    throw_errno("open " + log_path_);
  struct stat st {};
  log_offset_ = ::fstat(log_fd.get(), &st) == 0 ? static_cast<std::uintmax_t>(st.st_size) : 0;
  // A marker per start makes restarts easy to find in the appended log.
  std::string header = "==== kvelect test support: starting " + join(args, " ") + "\n";
  if (::write(log_fd.get(), header.data(), header.size()) < 0)
    throw_errno("write " + log_path_);
  UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!null_fd)
    throw_errno("open /dev/null");

  long max_fd = ::sysconf(_SC_OPEN_MAX);
  if (max_fd < 0 || max_fd > 65536)
    max_fd = 65536; // fallback close loop only
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0)
    throw_errno("fork");
  if (pid == 0)
    exec_child(binary_.c_str(), argv.data(), log_fd.get(), null_fd.get(), parent,
               static_cast<int>(max_fd));
  pid_ = pid;
  paused_ = false;
}

void NatsServer::wait_ready(Clock::time_point deadline) {
  // Standalone JetStream: the full /healthz also verifies that the streams in
  // the store dir were recovered. Cluster member: only "JetStream enabled",
  // see the header for why.
  const bool cluster_member = !options_.cluster_name.empty();
  const std::string health =
      options_.jetstream && cluster_member ? "/healthz?js-enabled-only=true" : "/healthz";
  bool greeted = false;
  std::string last_health = "no answer";
  for (;;) {
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid_, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == pid_ || r < 0) {
      pid_ = -1;
      std::string why = r < 0 ? "vanished" : describe_status(status);
      const std::string log = log_since_spawn();
      throw NatsServerStartError("nats-server " + options_.server_name + " " + why +
                                     " during startup; log: " + log_path_ + "\n" +
                                     last_lines(log, 40),
                                 true, port_in_use(log));
    }
    if (!greeted)
      greeted = nats_greets(port_);
    if (greeted) {
      if (auto res = http_get(monitor_port_, health, 1s)) {
        if (res->status == 200)
          return;
        last_health = std::to_string(res->status) + " " + res->body;
      }
    }
    if (Clock::now() >= deadline) {
      kill();
      std::string msg = "nats-server " + options_.server_name + " not ready within ";
      msg +=
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kStartTimeout).count());
      msg += " s (client port " + std::to_string(port_);
      msg += greeted ? " greeted, " : " silent, ";
      msg.append(health).append(": ").append(last_health);
      msg.append("); log: ").append(log_path_).append("\n");
      msg += last_lines(log_since_spawn(), 40);
      throw NatsServerStartError(msg, false);
    }
    std::this_thread::sleep_for(20ms);
  }
}

bool NatsServer::reap(bool block) const noexcept {
  if (pid_ <= 0)
    return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_ || (r < 0 && errno == ECHILD)) {
    pid_ = -1;
    paused_ = false;
    return true;
  }
  return false;
}

void NatsServer::begin_stop() noexcept {
  if (pid_ <= 0)
    return;
  ::kill(pid_, SIGTERM);
  // A stopped process only acts on SIGTERM once continued.
  if (paused_)
    ::kill(pid_, SIGCONT);
  paused_ = false;
}

void NatsServer::finish_stop(Clock::time_point deadline) noexcept {
  auto nap = 1ms;
  while (pid_ > 0) {
    if (reap(false))
      return;
    if (Clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      reap(true);
      return;
    }
    std::this_thread::sleep_for(nap);
    nap = std::min(nap * 2, std::chrono::milliseconds(20));
  }
}

void NatsServer::kill() {
  if (pid_ <= 0)
    return;
  ::kill(pid_, SIGKILL);
  reap(true);
}

void NatsServer::stop() {
  begin_stop();
  finish_stop(Clock::now() + kStopGrace);
}

void NatsServer::restart() {
  if (running())
    stop();
  spawn();
  wait_ready(Clock::now() + kStartTimeout);
}

void NatsServer::pause() {
  if (!running())
    throw std::logic_error("NatsServer::pause: " + options_.server_name + " is not running");
  if (paused_)
    return;
  ::kill(pid_, SIGSTOP);
  // Wait for the stop to take effect so that the caller's next step really
  // talks to a frozen server.
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WUNTRACED);
  } while (r < 0 && errno == EINTR);
  if (r == pid_ && WIFSTOPPED(status)) {
    paused_ = true;
    return;
  }
  pid_ = -1;
  throw std::logic_error("NatsServer::pause: " + options_.server_name + " exited");
}

void NatsServer::resume() {
  if (!running())
    throw std::logic_error("NatsServer::resume: " + options_.server_name + " is not running");
  if (!paused_)
    return;
  ::kill(pid_, SIGCONT);
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WCONTINUED);
  } while (r < 0 && errno == EINTR);
  paused_ = false;
  if (r == pid_ && !WIFCONTINUED(status))
    pid_ = -1; // it died instead
}

bool NatsServer::running() const { return pid_ > 0 && !reap(false); }

std::string NatsServer::log_since_spawn() const {
  return read_file_from(log_path_, static_cast<std::streamoff>(log_offset_));
}

std::string NatsServer::log_tail(int lines) const {
  return last_lines(read_file_from(log_path_, 0), lines);
}

std::optional<HttpResponse> NatsServer::monitor_get(std::string_view path,
                                                    std::chrono::milliseconds timeout) const {
  return http_get(monitor_port_, path, timeout);
}

// ---------------------------------------------------------------------------
// NatsCluster

NatsCluster::NatsCluster(int nodes) {
  if (nodes < 2)
    throw std::invalid_argument(
        "NatsCluster needs at least 2 nodes (nats-server refuses clustered JetStream "
        "without routes); use NatsServer for a single server");
  const auto deadline = Clock::now() + kClusterTimeout;
  name_ = "kvelect-" + std::to_string(::getpid()) + "-c" + std::to_string(sequence()++);

  for (int attempt = 1;; ++attempt) {
    nodes_.clear();
    // All ports of all nodes at once: the route list needs every cluster port
    // before the first node starts, and the ports must be distinct.
    const std::vector<int> ports = free_loopback_ports(3 * nodes);
    try {
      for (int i = 0; i < nodes; ++i) {
        ServerOptions o;
        o.jetstream = true;
        const auto base = 3 * static_cast<std::size_t>(i);
        o.port = ports[base];
        o.cluster_port = ports[base + 1];
        o.monitor_port = ports[base + 2];
        o.cluster_name = name_;
        o.server_name = name_ + "-n" + std::to_string(i);
        for (int j = 0; j < nodes; ++j) {
          if (j != i)
            o.routes.push_back("nats-route://127.0.0.1:" +
                               std::to_string(ports[(3 * static_cast<std::size_t>(j)) + 1]));
        }
        nodes_.push_back(std::make_unique<NatsServer>(std::move(o)));
      }
      break;
    } catch (const NatsServerStartError& e) {
      // A port taken by someone else between picking and binding: retry
      // with fresh ports while there is time.
      if (e.port_in_use() == 0 || attempt >= 3 || Clock::now() >= deadline)
        throw;
    }
  }

  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (!wait_healthy(std::max(left, std::chrono::milliseconds(1000)))) {
    std::string msg =
        "NatsCluster " + name_ + ": no healthy JetStream cluster with a meta leader within " +
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kClusterTimeout).count()) +
        " s";
    for (const auto& n : nodes_) {
      auto h = n->monitor_get("/healthz", 1s);
      msg += "\n--- " + n->server_name() + " /healthz: " +
             (h ? std::to_string(h->status) + " " + h->body : std::string("no answer")) +
             "; log: " + n->log_path() + "\n" + n->log_tail(15);
    }
    throw std::runtime_error(msg);
  }
}

NatsCluster::~NatsCluster() {
  // Signal every node first and then wait, so shutdown costs one grace
  // period rather than one per node.
  for (auto& n : nodes_)
    n->begin_stop();
  const auto deadline = Clock::now() + kStopGrace;
  for (auto& n : nodes_)
    n->finish_stop(deadline);
}

NatsServer& NatsCluster::node(int i) { return *nodes_.at(static_cast<std::size_t>(i)); }
const NatsServer& NatsCluster::node(int i) const { return *nodes_.at(static_cast<std::size_t>(i)); }

std::vector<std::string> NatsCluster::urls() const {
  std::vector<std::string> out;
  for (const auto& n : nodes_)
    out.push_back(n->url());
  return out;
}

std::string NatsCluster::url_list() const { return join(urls(), ","); }

std::string NatsCluster::meta_leader() const {
  for (const auto& n : nodes_) {
    if (!n->running() || n->paused())
      continue;
    if (auto r = n->monitor_get("/jsz", 1s); r && r->status == 200) {
      if (std::string leader = jsz_meta_leader(r->body); !leader.empty())
        return leader;
    }
  }
  return {};
}

int NatsCluster::meta_leader_index() const {
  std::string leader = meta_leader();
  for (int i = 0; i < size(); ++i) {
    if (!leader.empty() && nodes_[static_cast<std::size_t>(i)]->server_name() == leader)
      return i;
  }
  return -1;
}

bool NatsCluster::wait_healthy(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    bool ok = true;
    std::set<std::string> live_names;
    std::set<std::string> leaders;
    for (const auto& n : nodes_) {
      if (!n->running() || n->paused())
        continue; // a frozen node cannot answer
      live_names.insert(n->server_name());
      auto h = n->monitor_get("/healthz", 1s);
      auto j = h && h->status == 200 ? n->monitor_get("/jsz", 1s) : std::nullopt;
      if (!j || j->status != 200) {
        ok = false;
        break;
      }
      leaders.insert(jsz_meta_leader(j->body));
    }
    if (ok && !live_names.empty() && leaders.size() == 1 && live_names.count(*leaders.begin()) == 1)
      return true;
    if (Clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(50ms);
  }
}

} // namespace kvelect::testing
