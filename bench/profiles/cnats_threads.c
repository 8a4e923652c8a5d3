// SPDX-License-Identifier: Apache-2.0
// Threads of a process that only connects with cnats 3.4 (send-asap, as kvelect::Connection),
// opens a JetStream KV bucket and reads its status: what exists before any election.
#include <nats/nats.h>
#include <dirent.h>
#include <stdio.h>
static int threads(void) {
  int n = 0;
  DIR* d = opendir("/proc/self/task");
  struct dirent* e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.')
      ++n;
  closedir(d);
  return n;
}
int main(int argc, char** argv) {
  printf("start: %d\n", threads());
  natsOptions* o;
  natsOptions_Create(&o);
  natsOptions_SetURL(o, argv[1]);
  natsOptions_SetSendAsap(o, true);
  natsConnection* nc;
  if (natsConnection_Connect(&nc, o) != NATS_OK)
    return 1;
  printf("connected: %d\n", threads());
  jsCtx* js;
  natsConnection_JetStream(&js, nc, NULL);
  kvConfig c;
  kvConfig_Init(&c);
  c.Bucket = "T";
  c.TTL = 5000000000LL;
  kvStore* kv;
  if (js_CreateKeyValue(&kv, js, &c) != NATS_OK)
    return 2;
  printf("bucket made (a JetStream request): %d\n", threads());
  kvStatus* st;
  kvStore_Status(&st, kv);
  kvStatus_Destroy(st);
  uint64_t rev;
  kvStore_PutString(&rev, kv, "k", "v");
  printf("after kvStore_Status and a put: %d\n", threads());
  kvWatcher* w;
  kvStore_WatchAll(&w, kv, NULL);
  kvEntry* e = NULL;
  kvWatcher_Next(&e, w, 1000);
  kvEntry_Destroy(e);
  printf("after kvStore_WatchAll (synchronous watcher, no thread of ours): %d\n", threads());
  return 0;
}
