// SPDX-License-Identifier: Apache-2.0
// Blocking until this member leads (Trillian's Await): Election::await(timeout) gives up after a
// while, Election::await(std::stop_token) waits until leadership or until asked to stop (here:
// Ctrl-C). Start one copy, then a second to see it wait for the first:
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-await node-1 [timeout-seconds=5]
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-await node-2     (Ctrl-C node-1: node-2 takes over)
#include <kvelect/kvelect.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <stop_token>
#include <thread>

using namespace std::chrono_literals;

namespace {

template <typename... Args>
void say(fmt::format_string<Args...> format, Args&&... args) {
  fmt::print("{:%H:%M:%S} {}\n", fmt::localtime(std::time(nullptr)),
             fmt::format(format, std::forward<Args>(args)...));
}

// Turns SIGINT and SIGTERM into a stop request: token() is stopped once either arrives. The
// signals must be blocked in every thread (main blocks them before any other thread starts).
class ShutdownSignal {
public:
  explicit ShutdownSignal(sigset_t signals)
      : waiter_([this, signals](std::stop_token self) {
          const timespec tick{0, 100'000'000};
          while (!self.stop_requested())
            if (sigtimedwait(&signals, nullptr, &tick) > 0) {
              source_.request_stop();
              return;
            }
        }) {}
  std::stop_token token() const { return source_.get_token(); }
  bool requested() const { return source_.stop_requested(); }

private:
  std::stop_source source_;
  std::jthread waiter_;
};

} // namespace

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "node-1";
  const auto timeout = std::chrono::seconds(argc > 2 ? std::atoi(argv[2]) : 5);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ShutdownSignal shutdown(signals);

  try {
    auto connection = kvelect::Connection::connect(); // $NATS_URL or nats://127.0.0.1:4222
    kvelect::BucketConfig config;                     // KVELECT_ELECTIONS
    config.ttl = 10s;
    auto bucket = kvelect::Bucket::create(connection, config);

    kvelect::Election election(name, "await-demo", bucket,
                               kvelect::OnLost([&] { say("{}: lost leadership", name); }));
    election.start();

    // 1. Bounded: a caller that has other things to do if it does not lead soon.
    if (election.await(std::chrono::duration_cast<std::chrono::milliseconds>(timeout))) {
      say("{}: leading within {}", name, timeout);
    } else {
      const auto leader = election.leader();
      say("{}: not leading after {} (leader: {}); waiting until leading or Ctrl-C", name, timeout,
          leader ? *leader : "none");
      // 2. Unbounded, but cancellable: returns false when `shutdown` is requested.
      if (election.await(shutdown.token()))
        say("{}: leading now", name);
    }

    // Lead until Ctrl-C (a real program would do its leader-only work here).
    std::mutex mu;
    std::condition_variable_any never;
    std::unique_lock lock(mu);
    never.wait(lock, shutdown.token(), [] { return false; }); // returns once stop is requested
    say("{}: stopping", name);
    election.stop(); // releases the key: a waiting copy takes over at once
  } catch (const kvelect::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
  return 0;
}
