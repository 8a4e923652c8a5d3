// SPDX-License-Identifier: Apache-2.0
// The smallest useful kvelect program: join the election "scheduler" and do leader-only work
// while leading. Run several copies with different names:
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-basic node-1
#include <kvelect/kvelect.hpp>

#include <csignal>
#include <cstdio>
#include <thread>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  const std::string name = argc > 1 ? argv[1] : "node-1";
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr); // the campaign threads inherit the mask

  try {
    auto connection = kvelect::Connection::connect(); // $NATS_URL or nats://127.0.0.1:4222
    kvelect::BucketConfig config;                     // KVELECT_ELECTIONS, file storage, 1 replica
    config.ttl = 10s;
    auto bucket = kvelect::Bucket::create(connection, config);

    kvelect::Election election(
        name, "scheduler", bucket, kvelect::OnWon([&](kvelect::Token token) {
          std::printf("%s: leading (fencing token %llu)\n", name.c_str(),
                      static_cast<unsigned long long>(token));
        }),
        kvelect::OnLost([&] { std::printf("%s: not leading\n", name.c_str()); }));
    election.start();

    int signal = 0;
    sigwait(&signals, &signal); // until Ctrl-C: stop() hands leadership over at once
    election.stop();
  } catch (const kvelect::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
  return 0;
}
