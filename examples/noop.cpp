// SPDX-License-Identifier: Apache-2.0
// Code written against the kvelect::LeaderElection interface runs unchanged with a real
// Election or with NoopElection (Trillian's NoopElection: always the leader once started, no
// NATS at all), chosen here by a flag: single-node deployments and tests need no server.
//   ./kvelect-noop --noop node-1                              (no server needed)
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-noop node-1     (a real election, key "noop-demo")
#include <kvelect/kvelect.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

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

// The service: it only knows the interface. Leader-only work runs while it leads, until `stop`.
void run_service(kvelect::LeaderElection& election, std::stop_token stop) {
  election.start();
  std::mutex mu;
  std::condition_variable_any tick;
  while (!stop.stop_requested() && election.await(stop)) {
    const auto scope = election.leadership();
    say("leading as {} (state {}, token {})", election.leader().value_or("?"),
        kvelect::to_string(election.state()), election.token().value_or(0));
    // Work until the leadership ends or the service is stopped, whichever comes first.
    std::stop_source either;
    const std::stop_callback lost(scope, [&] { either.request_stop(); });
    const std::stop_callback stopped(stop, [&] { either.request_stop(); });
    while (!either.stop_requested()) {
      say("working");
      std::unique_lock lock(mu);
      tick.wait_for(lock, either.get_token(), 2s, [] { return false; });
    }
  }
  election.stop();
  say("stopped (state {})", kvelect::to_string(election.state()));
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  const bool noop = !args.empty() && args.front() == "--noop";
  if (noop)
    args.erase(args.begin());
  const std::string name = args.empty() ? "node-1" : std::string(args.front());
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ShutdownSignal shutdown(signals);

  try {
    auto on_lost = kvelect::OnLost([] { say("not leading"); });
    if (noop) {
      say("NoopElection: always the leader, no NATS");
      kvelect::NoopElection election(name, {on_lost});
      run_service(election, shutdown.token());
      return 0;
    }
    auto connection = kvelect::Connection::connect(); // $NATS_URL or nats://127.0.0.1:4222
    kvelect::BucketConfig config;                     // KVELECT_ELECTIONS
    config.ttl = 10s;
    auto bucket = kvelect::Bucket::create(connection, config);
    say("Election: key noop-demo in bucket {}", config.name);
    kvelect::Election election(name, "noop-demo", bucket, {on_lost});
    run_service(election, shutdown.token());
  } catch (const kvelect::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
  return 0;
}
