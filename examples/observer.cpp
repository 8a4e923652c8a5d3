// SPDX-License-Identifier: Apache-2.0
// A passive member (kvelect::Observer): it watches an election and reports every change of
// leader through OnNewLeader, but never campaigns. Shows the cheap leader() (the last one
// observed) next to read_leader() (one request to the server). Run it next to a few candidates:
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-observer [key=scheduler]
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-basic node-1      (in other terminals)
#include <kvelect/kvelect.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <csignal>
#include <cstdio>
#include <ctime>

using namespace std::chrono_literals;

namespace {

template <typename... Args>
void say(fmt::format_string<Args...> format, Args&&... args) {
  fmt::print("{:%H:%M:%S} {}\n", fmt::localtime(std::time(nullptr)),
             fmt::format(format, std::forward<Args>(args)...));
}

} // namespace

int main(int argc, char** argv) {
  const std::string key = argc > 1 ? argv[1] : "scheduler";
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr); // the watch thread inherits the mask

  try {
    auto connection = kvelect::Connection::connect(); // $NATS_URL or nats://127.0.0.1:4222
    kvelect::BucketConfig config;                     // KVELECT_ELECTIONS
    config.ttl = 10s;
    auto bucket = kvelect::Bucket::create(connection, config);

    // Read once from the server before watching: the answer is fresh, but costs a request.
    const auto now = kvelect::read_leader(bucket, key);
    say("{}: read from the server: {}", key, now ? *now : "no leader");

    kvelect::Observer observer(key, bucket,
                               kvelect::OnNewLeader([&](std::optional<std::string_view> leader) {
                                 if (leader)
                                   say("{}: {} leads", key, *leader);
                                 else
                                   say("{}: no leader", key);
                               }));
    observer.start();

    int signal = 0;
    sigwait(&signals, &signal);
    // leader() reads local state only: what the watch saw last.
    const auto last = observer.leader();
    say("{}: last observed leader: {}", key, last ? *last : "none");
    observer.stop();
  } catch (const kvelect::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
  return 0;
}
