// SPDX-License-Identifier: Apache-2.0
// Round trip of a revision-checked KV publish with its reply on an asynchronous subscription,
// sent back to back or after an idle gap: what an idle server and client cost a round trip.
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int replied;
static char body[256];
static double arrived;
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
static void on_reply(natsConnection* nc, natsSubscription* sub, natsMsg* m, void* c) {
  double t = now();
  pthread_mutex_lock(&mu);
  snprintf(body, sizeof body, "%.*s", natsMsg_GetDataLength(m), natsMsg_GetData(m));
  arrived = t;
  replied = 1;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
  natsMsg_Destroy(m);
}
static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}
int main(int argc, char** argv) {
  natsOptions* o;
  natsOptions_Create(&o);
  natsOptions_SetURL(o, argv[1]);
  natsOptions_SetSendAsap(o, true);
  natsConnection* nc;
  if (natsConnection_Connect(&nc, o) != NATS_OK)
    return 1;
  jsCtx* js;
  natsConnection_JetStream(&js, nc, NULL);
  kvConfig c;
  kvConfig_Init(&c);
  c.Bucket = "GAP";
  c.TTL = 5000000000LL;
  kvStore* kv;
  if (js_CreateKeyValue(&kv, js, &c) != NATS_OK)
    return 2;
  uint64_t rev;
  kvStore_PutString(&rev, kv, "k", "v");
  natsSubscription* sub;
  natsConnection_Subscribe(&sub, nc, "_GAP_REPLY", on_reply, NULL);
  int n = atoi(argv[2]);
  long gaps[] = {0, 5000, 60000};
  for (int g = 0; g < 3; ++g) {
    double* s = calloc(n, sizeof(double));
    for (int i = 0; i < n; ++i) {
      if (gaps[g]) {
        struct timespec ts = {0, gaps[g] * 1000};
        nanosleep(&ts, NULL);
      }
      natsMsg* m;
      natsMsg_Create(&m, "$KV.GAP.k", "_GAP_REPLY", "v", 1);
      char last[32];
      snprintf(last, sizeof last, "%llu", (unsigned long long)rev);
      natsMsgHeader_Set(m, "Nats-Expected-Last-Subject-Sequence", last);
      pthread_mutex_lock(&mu);
      replied = 0;
      pthread_mutex_unlock(&mu);
      double t0 = now();
      natsConnection_PublishMsg(nc, m);
      natsMsg_Destroy(m);
      pthread_mutex_lock(&mu);
      while (!replied)
        pthread_cond_wait(&cv, &mu);
      s[i] = arrived - t0;
      char* seq = strstr(body, "\"seq\":");
      if (seq)
        rev = strtoull(seq + 6, NULL, 10);
      pthread_mutex_unlock(&mu);
    }
    qsort(s, n, sizeof(double), cmp);
    printf("gap %5ld us before each publish: p50 %6.1f us  p90 %6.1f us  (n %d)\n", gaps[g],
           s[n / 2], s[n * 9 / 10], n);
    free(s);
  }
  return 0;
}
