// SPDX-License-Identifier: Apache-2.0
// Run by tests/retire/retire_test.cpp under valgrind, with reader_delay preloaded: subscribes to
// a subject that a second connection floods, takes one message, and ends the subscription, a
// hundred times, in one of these ways:
//
//   destroy         natsSubscription_Destroy at once: what lib/retire.hpp says crashes cnats 3.4.1
//   retire          kvelect's retire() with the connection, then destroy
//   retire-paused   retire() without the connection (the pause), then destroy
//   retire-watcher  the same with a KV watcher of a flooded key: retire() with the connection,
//                   then kvWatcher_Destroy
//
// Usage: retire_probe URL MODE [ITERATIONS]. Prints how many of them had a message (the reader
// was busy with the subscription) and exits 0 after the last one; valgrind tells the rest.
#include "retire.hpp"

#include <nats/nats.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

namespace {

// One watcher of a flooded key, retired and destroyed, `iterations` times; returns how many had
// an entry.
int watchers(natsConnection* reader, natsConnection* flooder, int iterations) {
  jsCtx* js = nullptr;
  kvStore* bucket = nullptr;
  kvConfig config;
  kvConfig_Init(&config);
  config.Bucket = "RETIRE";
  config.History = 1;
  if (natsConnection_JetStream(&js, reader, nullptr) != NATS_OK ||
      js_CreateKeyValue(&bucket, js, &config) != NATS_OK) {
    std::fprintf(stderr, "retire_probe: cannot create the bucket (JetStream?)\n");
    std::exit(2);
  }
  std::atomic<bool> done{false};
  std::thread flood([&] {
    while (!done.load()) {
      natsConnection_PublishString(flooder, "$KV.RETIRE.k", "x");
      natsConnection_FlushTimeout(flooder, 100);
    }
  });
  int with_entry = 0;
  for (int i = 0; i < iterations; ++i) {
    kvWatcher* watcher = nullptr;
    if (kvStore_Watch(&watcher, bucket, "k", nullptr) != NATS_OK)
      continue;
    kvEntry* entry = nullptr;
    if (kvWatcher_Next(&entry, watcher, 1000) == NATS_OK && entry != nullptr) {
      kvEntry_Destroy(entry);
      ++with_entry;
    }
    kvelect::detail::retire(watcher, reader);
    kvWatcher_Destroy(watcher);
  }
  done.store(true);
  flood.join();
  kvStore_Destroy(bucket);
  jsCtx_Destroy(js);
  return with_entry;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: retire_probe URL destroy|retire|retire-paused|retire-watcher "
                         "[ITERATIONS]\n");
    return 2;
  }
  const std::string mode = argv[2];
  int iterations = argc > 3 ? std::atoi(argv[3]) : 100;
  const int asked = iterations;
  if (mode != "destroy" && mode != "retire" && mode != "retire-paused" &&
      mode != "retire-watcher") {
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
  int with_message = 0;
  if (mode == "retire-watcher") {
    with_message = watchers(reader, flooder, iterations);
    iterations = 0;
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
    if (natsSubscription_NextMsg(&msg, sub, 1000) == NATS_OK) {
      natsMsg_Destroy(msg); // messages flow: the reader is busy with this subscription
      ++with_message;
    }
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
  std::printf("retire_probe: %d ended (%s), %d with a message\n", asked, mode.c_str(),
              with_message);
  return 0;
}
