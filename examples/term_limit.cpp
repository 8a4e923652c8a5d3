// SPDX-License-Identifier: Apache-2.0
// Term limits (the lease-lock elector's TermLimit): with WithTermLimit(limit), a leader resigns
// after holding leadership for `limit`, and the other candidates get the first chance to win.
// Two copies take turns, one term each:
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-term-limit node-1 [limit-seconds=15]
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-term-limit node-2
#include <kvelect/kvelect.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
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
  const std::string name = argc > 1 ? argv[1] : "node-1";
  const std::chrono::seconds limit(argc > 2 ? std::atoi(argv[2]) : 15);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr); // the campaign thread inherits the mask

  try {
    auto connection = kvelect::Connection::connect(); // $NATS_URL or nats://127.0.0.1:4222
    kvelect::BucketConfig config;                     // KVELECT_ELECTIONS
    config.ttl = 10s;
    auto bucket = kvelect::Bucket::create(connection, config);

    std::chrono::steady_clock::time_point won_at;
    kvelect::Election election(name, "term-demo", bucket, kvelect::WithTermLimit(limit),
                               kvelect::OnWon([&](kvelect::Token token) {
                                 won_at = std::chrono::steady_clock::now();
                                 say("{}: leading (token {}), term limit {}", name, token, limit);
                               }),
                               kvelect::OnLost([&] {
                                 const auto held = std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::steady_clock::now() - won_at);
                                 say("{}: not leading any more, after {}", name, held);
                               }),
                               kvelect::OnNewLeader([&](std::optional<std::string_view> leader) {
                                 if (leader && *leader != name)
                                   say("{}: {} leads", name, *leader);
                               }));
    election.start();

    int signal = 0;
    sigwait(&signals, &signal);
    election.stop();
  } catch (const kvelect::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
  return 0;
}
