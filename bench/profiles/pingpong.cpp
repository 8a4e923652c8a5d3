// SPDX-License-Identifier: Apache-2.0
// CPU cost of one thread wake-up on this machine: two threads hand a token back and forth
// through a mutex + condition variable; prints CPU microseconds per hand-off.
#include <sys/resource.h>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>
static double cpu() {
  rusage r;
  getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}
int main(int argc, char** argv) {
  const int n = argc > 1 ? atoi(argv[1]) : 50000;
  std::mutex mu;
  std::condition_variable cv;
  int turn = 0;
  const double c0 = cpu();
  const auto t0 = std::chrono::steady_clock::now();
  std::thread other([&] {
    for (int i = 0; i < n; ++i) {
      std::unique_lock l(mu);
      cv.wait(l, [&] { return turn == 1; });
      turn = 0;
      cv.notify_all();
    }
  });
  for (int i = 0; i < n; ++i) {
    std::unique_lock l(mu);
    turn = 1;
    cv.notify_all();
    cv.wait(l, [&] { return turn == 0; });
  }
  other.join();
  const double c = cpu() - c0;
  const double w = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "%d round trips (%d hand-offs): CPU %.1f us per hand-off, wall %.1f us per hand-off\n", n,
      2 * n, c / (2.0 * n) * 1e6, w / (2.0 * n) * 1e6);
}
