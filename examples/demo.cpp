// SPDX-License-Identifier: Apache-2.0
// The README's demo: starts a throwaway nats-server, runs four candidates in one process, and
// prints a timeline of who leads through a graceful handover and a crash-like failover.
#include <kvelect/kvelect.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const auto demo_start = std::chrono::steady_clock::now();
std::mutex print_mu;

template <typename... Args>
void say(fmt::format_string<Args...> format, Args&&... args) {
  const auto elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - demo_start);
  std::lock_guard lock(print_mu);
  fmt::print("[{:7.3f}s] {}\n", elapsed.count(), fmt::format(format, std::forward<Args>(args)...));
  std::fflush(stdout);
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

// A throwaway JetStream server on a free loopback port; killed and cleaned up on exit.
class LocalServer {
public:
  LocalServer() : port_(free_port()) {
    char dir_template[] = "/tmp/kvelect-demo-XXXXXX";
    dir_ = ::mkdtemp(dir_template);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const std::string port = std::to_string(port_);
      const std::string log = dir_ + "/server.log";
      std::freopen(log.c_str(), "w", stdout);
      std::freopen(log.c_str(), "a", stderr);
      ::execlp("nats-server", "nats-server", "-js", "-a", "127.0.0.1", "-p", port.c_str(), "-sd",
               dir_.c_str(), static_cast<char*>(nullptr));
      std::_Exit(127);
    }
  }
  ~LocalServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  std::string url() const { return fmt::format("nats://127.0.0.1:{}", port_); }

private:
  int port_;
  std::string dir_;
  pid_t pid_ = -1;
};

kvelect::Connection connect_with_retry(const std::string& url) {
  for (int attempt = 0;; ++attempt) {
    try {
      kvelect::ConnectOptions options;
      options.servers = {url};
      options.name = "kvelect-demo";
      return kvelect::Connection::connect(options);
    } catch (const kvelect::Error&) {
      if (attempt == 100)
        throw;
      std::this_thread::sleep_for(50ms);
    }
  }
}

} // namespace

int main() {
  try {
    LocalServer server;
    auto connection = connect_with_retry(server.url());
    const auto ttl = 5s;
    kvelect::BucketConfig config;
    config.name = "DEMO";
    config.ttl = ttl;
    config.storage = kvelect::Storage::memory;
    auto bucket = kvelect::Bucket::create(connection, config);
    say("nats-server at {}, bucket DEMO with TTL {}", server.url(), ttl);

    std::vector<std::unique_ptr<kvelect::Election>> members;
    for (const char* name : {"alpha", "bravo", "charlie", "delta"}) {
      const std::string member = name;
      members.push_back(std::make_unique<kvelect::Election>(
          member, "scheduler", bucket.get(), kvelect::OnWon([member](kvelect::Token token) {
            say("{:8} WON  leadership (fencing token {})", member, token);
          }),
          kvelect::OnLost([member] { say("{:8} LOST leadership", member); }),
          // Act 2 stops a leader without releasing its key, as a crash would leave it.
          kvelect::WithReleaseOnStop(false)));
    }
    say("starting 4 candidates");
    for (auto& m : members)
      m->start();

    auto current_leader = [&]() -> kvelect::Election* {
      for (auto& m : members)
        if (m->is_leader())
          return m.get();
      return nullptr;
    };
    auto wait_for_leader = [&](std::chrono::milliseconds limit) -> kvelect::Election* {
      const auto until = std::chrono::steady_clock::now() + limit;
      while (std::chrono::steady_clock::now() < until) {
        if (auto* leader = current_leader())
          return leader;
        std::this_thread::sleep_for(1ms);
      }
      return nullptr;
    };

    auto* leader = wait_for_leader(10s);
    if (leader == nullptr)
      throw kvelect::Error(kvelect::Errc::timeout, "no leader was elected");
    std::this_thread::sleep_for(1s);

    say("--- act 1: {} resigns (it releases the key at once)", leader->name());
    auto t0 = std::chrono::steady_clock::now();
    leader->resign();
    auto* next = wait_for_leader(10s);
    if (next == nullptr)
      throw kvelect::Error(kvelect::Errc::timeout, "no handover happened");
    say("handover took {:.1f} ms: {} leads",
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(),
        next->name());
    std::this_thread::sleep_for(1s);

    say("--- act 2: {} goes away and leaves its key behind, as a crash would", next->name());
    t0 = std::chrono::steady_clock::now();
    next->stop(); // WithReleaseOnStop(false): the others must wait for the key to expire
    auto* survivor = wait_for_leader(3 * ttl);
    if (survivor == nullptr)
      throw kvelect::Error(kvelect::Errc::timeout, "no failover happened");
    say("failover after {:.2f} s (bucket TTL {}): {} leads",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), ttl,
        survivor->name());
    std::this_thread::sleep_for(500ms);
    say("--- the end: stopping everyone");
    members.clear();
  } catch (const kvelect::Error& error) {
    std::fprintf(stderr, "demo failed: %s\n", error.what());
    return 1;
  }
  return 0;
}
