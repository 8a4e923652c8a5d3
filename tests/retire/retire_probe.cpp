// SPDX-License-Identifier: Apache-2.0
// Run by tests/retire/retire_test.cpp under valgrind, with reader_delay preloaded: subscribes to
// a subject that a second connection floods, takes one message, and ends the subscription, a
// hundred times, in one of three ways:
//   destroy          natsSubscription_Destroy at once (what lib/retire.hpp says crashes
//   cnats 3.4.1) retire           kvelect's retire() with the connection, then destroy
//   retire-paused    retire() without the connection (the pause), then destroy
// Usage: retire_probe URL MODE [ITERATIONS]. Exits 0 after the last one; valgrind tells the rest.
#include "retire.hpp"

#include <nats/nats.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: retire_probe URL destroy|retire|retire-paused [ITERATIONS]\n");
    return 2;
  }
  const std::string mode = argv[2];
  const int iterations = argc > 3 ? std::atoi(argv[3]) : 100;
  if (mode != "destroy" && mode != "retire" && mode != "retire-paused") {
    std::fprintf(stderr, "retire_probe: unknown mode '%s'\n", mode.c_str());
    return 2;
  }
  natsConnection* reader = nullptr;
  natsConnection* flooder = nullptr;
  if (natsConnection_ConnectTo(&reader, argv[1]) != NATS_OK ||
      natsConnection_ConnectTo(&flooder, argv[1]) != NATS_OK) {
    std::fprintf(stderr, "retire_probe: cannot connect to %s\n", argv[1]);
    return 2;
  }
  std::atomic<bool> done{false};
  std::thread flood([&] {
    while (!done.load()) {
      natsConnection_PublishString(flooder, "retire.flood", "x");
      natsConnection_FlushTimeout(flooder, 100);
    }
  });
  for (int i = 0; i < iterations; ++i) {
    natsSubscription* sub = nullptr;
    if (natsConnection_SubscribeSync(&sub, reader, "retire.flood") != NATS_OK)
      continue;
    natsConnection_FlushTimeout(reader, 1000); // the server has the subscription
    natsMsg* msg = nullptr;
    if (natsSubscription_NextMsg(&msg, sub, 1000) == NATS_OK)
      natsMsg_Destroy(msg); // messages flow: the reader is busy with this subscription
    if (mode == "retire")
      kvelect::detail::retire(sub, reader);
    else if (mode == "retire-paused")
      kvelect::detail::retire(sub, nullptr);
    natsSubscription_Destroy(sub);
  }
  done.store(true);
  flood.join();
  natsConnection_Destroy(flooder);
  natsConnection_Destroy(reader);
  nats_Close();
  std::printf("retire_probe: %d subscriptions ended (%s)\n", iterations, mode.c_str());
  return 0;
}
