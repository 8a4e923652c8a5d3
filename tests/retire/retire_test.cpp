// SPDX-License-Identifier: Apache-2.0
// lib/retire.hpp's claim, checked against the real cnats and a real nats-server: ending a
// subscription that messages still reach by destroying it at once makes cnats 3.4.1's reader
// touch freed memory, and retiring it first (with the connection, or with the pause when the
// connection is unknown) does not. valgrind sees the freed memory; reader_delay widens the
// reader's window so that a hundred subscriptions are enough (retire_probe.cpp).
#include "nats_server.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

struct Outcome {
  int code = -1; // the exit code, or 128 + the signal
  std::string output;
};

Outcome run(const std::string& command) {
  Outcome outcome;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr)
    return outcome;
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0)
    outcome.output.append(buffer, n);
  const int status = ::pclose(pipe);
  if (WIFEXITED(status))
    outcome.code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status))
    outcome.code = 128 + WTERMSIG(status);
  return outcome;
}

// 99: valgrind saw an invalid access; a crash of the probe gives 128 + its signal.
constexpr int kValgrindError = 99;

class Retire : public ::testing::Test {
protected:
  void SetUp() override {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "the probe is built with a sanitizer, which valgrind cannot run; the plain "
                    "build runs this test";
#endif
    if (run("command -v valgrind").code != 0)
      GTEST_SKIP() << "valgrind is not installed (./dev installs it)";
  }

  // `delay_us`: how long the reader's window is made to last.
  Outcome probe(const std::string& mode, int delay_us = 2000) {
    return run("KVELECT_READER_DELAY_US=" + std::to_string(delay_us) +
               " LD_PRELOAD=" + KVELECT_READER_DELAY +
               " valgrind -q --fair-sched=yes --error-exitcode=" + std::to_string(kValgrindError) +
               " " + KVELECT_RETIRE_PROBE + " " + server_.url() + " " + mode + " 100");
  }

  kvelect::testing::NatsServer server_;
};

TEST_F(Retire, DestroyingASubscriptionAtOnceTouchesFreedMemory) {
  // The race itself, so that the two tests below could fail: without retire() the reader uses a
  // subscription after it was freed (or cnats aborts on its destroyed mutex).
  const Outcome outcome = probe("destroy");
  EXPECT_NE(outcome.code, 0) << outcome.output;
  EXPECT_TRUE(outcome.output.find("Invalid read") != std::string::npos || outcome.code > 128)
      << outcome.output;
}

// How many of the hundred ended while messages flowed to them (the probe's last line).
int with_message(const std::string& output) {
  const auto at = output.find("ended (");
  const auto comma = output.find("), ", at);
  return at == std::string::npos || comma == std::string::npos
             ? -1
             : std::atoi(output.c_str() + comma + 3);
}

TEST_F(Retire, RetiringWithTheConnectionLeavesTheReaderNothingFreed) {
  const Outcome outcome = probe("retire");
  EXPECT_EQ(outcome.code, 0) << outcome.output;
  // Not a pass by default: the reader was handing these subscriptions messages.
  EXPECT_GE(with_message(outcome.output), 90) << outcome.output;
}

TEST_F(Retire, RetiringWithThePauseLeavesTheReaderNothingFreed) {
  // The pause is 20 ms; a window of 1 ms, rather than 2, leaves room for valgrind's slowness on a
  // loaded machine (the reader must still get the CPU to leave the window within the pause).
  const Outcome outcome = probe("retire-paused", 1000);
  EXPECT_EQ(outcome.code, 0) << outcome.output;
  EXPECT_GE(with_message(outcome.output), 90) << outcome.output;
}

TEST_F(Retire, RetiringAWatcherLeavesTheReaderNothingFreed) {
  // The watch pump's path (retire(kvWatcher*)). Destroying a watcher at once seldom shows the
  // race here: cnats asks the server to delete the watcher's consumer after taking it off the
  // table, a round trip that closes the window by accident (docs/compatibility.md); this checks
  // that retiring a watcher of a flooded key leaves nothing freed behind.
  const Outcome outcome = probe("retire-watcher");
  EXPECT_EQ(outcome.code, 0) << outcome.output;
  EXPECT_GE(with_message(outcome.output), 90) << outcome.output;
}

} // namespace
