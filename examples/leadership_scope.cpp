// SPDX-License-Identifier: Apache-2.0
// Leader-only work bounded by the leadership itself (Trillian's Observe "mastership context"):
// Election::leadership() returns a std::stop_token that is stop-requested the moment this
// leadership ends, for whatever reason (lost lease, eviction, resign, stop). The work loop runs
// `while (!scope.stop_requested())`, and its waits are interrupted by the same token. Run two
// copies and Ctrl-C the one that works:
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-leadership-scope node-1
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-leadership-scope node-2
#include <kvelect/kvelect.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <condition_variable>
#include <csignal>
#include <cstdio>
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

    kvelect::Election election(name, "scope-demo", bucket);
    // On Ctrl-C, leave the election: that ends the leadership, which stops the work loop below.
    std::stop_callback leave(shutdown.token(), [&] { election.stop(); });
    election.start();

    std::mutex mu;
    std::condition_variable_any tick;
    while (!shutdown.requested()) {
      if (!election.await(shutdown.token()))
        break; // Ctrl-C while a candidate
      const auto token = election.token();
      // Taken after await(): a token taken while not leading is stopped already.
      const std::stop_token scope = election.leadership();
      say("{}: leading (fencing token {}), starting work", name, token.value_or(0));

      for (int unit = 1; !scope.stop_requested(); ++unit) {
        say("{}: work unit {}", name, unit);
        // Sleep one second, or less if the leadership ends meanwhile.
        std::unique_lock lock(mu);
        tick.wait_for(lock, scope, 1s, [] { return false; });
      }
      say("{}: leadership ended, work stopped", name);
    }
    say("{}: stopping", name);
  } catch (const kvelect::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
  return 0;
}
