// SPDX-License-Identifier: Apache-2.0
// Preloaded into retire_probe (tests/retire/retire_test.cpp): cnats' reader builds each incoming
// message with natsMsg_create between looking its subscription up and locking it, the window of
// the race lib/retire.hpp describes. Sleeping there widens that window from microseconds to
// KVELECT_READER_DELAY_US (default 2000), so that a run of a hundred subscriptions hits it.
#include <dlfcn.h>

#include <cstdlib>
#include <ctime>

namespace {
// cnats 3.4's internal natsMsg_create(msg, subject, subjLen, reply, replyLen, buf, bufLen,
// hdrLen): exported and called through the PLT, so a preloaded one takes its place.
using CreateFn = int (*)(void**, const char*, int, const char*, int, const char*, int, int);
} // namespace

extern "C" __attribute__((visibility("default"))) int
natsMsg_create(void** msg, const char* subject, int subject_len, const char* reply, int reply_len,
               const char* buf, int buf_len, int header_len) {
  static const auto real = reinterpret_cast<CreateFn>(dlsym(RTLD_NEXT, "natsMsg_create"));
  const char* text = std::getenv("KVELECT_READER_DELAY_US"); // NOLINT(concurrency-mt-unsafe)
  const long delay = text != nullptr ? std::atol(text) : 2000;
  const timespec pause{delay / 1000000, (delay % 1000000) * 1000};
  nanosleep(&pause, nullptr);
  return real(msg, subject, subject_len, reply, reply_len, buf, buf_len, header_len);
}
