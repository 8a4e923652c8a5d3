// SPDX-License-Identifier: Apache-2.0
// An operator tool that forces a new election (Doozer's ForceMasterElection, Choria's evict):
// the current leader of KEY stands down at once and releases the key, and a candidate takes
// over. By default it watches the handover with an Observer and Observer::evict(); with --once
// it calls kvelect::evict(bucket, key) and exits. Run it against running candidates, e.g.
// kvelect-basic (key "scheduler"):
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-evict scheduler
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-evict --once scheduler
#include <kvelect/kvelect.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <optional>
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

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  const bool once = !args.empty() && args.front() == "--once";
  if (once)
    args.erase(args.begin());
  if (args.size() != 1) {
    std::fprintf(stderr, "usage: %s [--once] KEY\n", argv[0]);
    return 2;
  }
  const std::string key(args.front());
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ShutdownSignal shutdown(signals);

  try {
    auto connection = kvelect::Connection::connect(); // $NATS_URL or nats://127.0.0.1:4222
    // An operator tool opens the bucket; it does not create one.
    auto bucket = kvelect::Bucket::open(connection, "KVELECT_ELECTIONS");

    if (once) {
      const auto evicted = kvelect::evict(bucket, key);
      say("{}: {}", key, evicted ? "evicted " + *evicted : "no leader to evict");
      return 0;
    }

    // Every leader change the observer reports, in order (nullopt: no leader).
    std::mutex mu;
    std::condition_variable_any changed;
    std::vector<std::optional<std::string>> seen;
    kvelect::Observer observer(
        key, bucket, kvelect::OnNewLeader([&](std::optional<std::string_view> leader) {
          say("{}: {}", key, leader ? std::string(*leader) + " leads" : "no leader");
          {
            std::lock_guard lock(mu);
            seen.emplace_back(leader);
          }
          changed.notify_all();
        }));
    observer.start();

    // Wait for the observer's first report (OnNewLeader fires on the first observation too), so
    // that it watches before the eviction and sees the handover from its start.
    std::size_t before = 0;
    {
      std::unique_lock lock(mu);
      if (!changed.wait_for(lock, shutdown.token(), 5s, [&] { return !seen.empty(); }))
        return shutdown.requested() ? 0 : 1;
      before = seen.size();
    }
    const auto evicted = observer.evict();
    if (!evicted) {
      say("{}: no leader to evict", key);
      return 0;
    }
    say("{}: evicted {}; waiting for the next leader", key, *evicted);

    // The next leader: the first one reported after the vacancy that the eviction made (the
    // evicted member may win again: it campaigns like the others).
    const auto ttl = kvelect::bucket_info(bucket).ttl;
    std::unique_lock lock(mu);
    std::optional<std::string> next;
    const bool done = changed.wait_for(lock, shutdown.token(), 3 * ttl, [&] {
      bool vacant = false;
      for (std::size_t i = before; i < seen.size(); ++i) {
        if (!seen[i])
          vacant = true;
        else if (vacant || *seen[i] != *evicted) {
          next = seen[i];
          return true;
        }
      }
      return false;
    });
    lock.unlock();
    if (done)
      say("{}: new leader {}", key, *next);
    else
      say("{}: no new leader yet", key);
    observer.stop();
  } catch (const kvelect::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
  return 0;
}
