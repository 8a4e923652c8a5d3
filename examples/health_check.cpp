// SPDX-License-Identifier: Apache-2.0
// Health-gated leadership: WithHealthCheck(healthy, interval) runs `healthy()` on the campaign
// thread every `interval`. An unhealthy leader resigns; an unhealthy candidate does not campaign.
// Here the member is healthy while a file exists. Start two copies, then remove the leader's
// file to move leadership, and touch it again to let that member back in:
//   touch /tmp/node-1.healthy /tmp/node-2.healthy
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-health-check node-1 /tmp/node-1.healthy
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-health-check node-2 /tmp/node-2.healthy
//   rm /tmp/node-1.healthy      (if node-1 leads: it resigns and node-2 takes over)
#include <kvelect/kvelect.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>

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
  const std::filesystem::path health_file =
      argc > 2 ? argv[2] : "/tmp/kvelect-" + name + ".healthy";
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

    // Keep the check cheap and non-blocking: it runs on the campaign thread.
    std::atomic<int> last_health{-1};
    auto healthy = [&] {
      std::error_code ignored;
      const bool ok = std::filesystem::exists(health_file, ignored);
      if (last_health.exchange(ok ? 1 : 0) != (ok ? 1 : 0))
        say("{}: {} ({} {})", name, ok ? "healthy" : "UNHEALTHY", health_file.string(),
            ok ? "exists" : "is missing");
      return ok;
    };

    kvelect::Election election(
        name, "health-demo", bucket, kvelect::WithHealthCheck(healthy, 500ms),
        kvelect::OnWon([&] { say("{}: leading", name); }),
        kvelect::OnLost([&] { say("{}: not leading", name); }),
        kvelect::OnNewLeader([&](std::optional<std::string_view> leader) {
          say("{}: leader is {}", name, leader ? std::string(*leader) : "nobody");
        }));
    say("{}: healthy while {} exists", name, health_file.string());
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
