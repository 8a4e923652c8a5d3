// SPDX-License-Identifier: Apache-2.0
// Fencing tokens (docs/fencing.md): OnWon(Token) hands each new leadership a token that is larger
// than every earlier one. A store that remembers the largest token it has seen rejects writes
// from a leader that has been replaced, even when they arrive late. This program runs two members
// in one process and plays the story out: the first leader writes, is replaced while a write of
// its is still in flight, the new leader writes, and the old write then arrives and is rejected.
//   NATS_URL=nats://127.0.0.1:4222 ./kvelect-fencing
#include <kvelect/kvelect.hpp>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

template <typename... Args>
void say(fmt::format_string<Args...> format, Args&&... args) {
  fmt::print("{:%H:%M:%S} {}\n", fmt::localtime(std::time(nullptr)),
             fmt::format(format, std::forward<Args>(args)...));
}

// Turns SIGINT and SIGTERM into a stop request: token() is stopped once either arrives. The
// signals must be blocked in every thread (main blocks them before any other thread starts).
class ShutdownSignal {
public:
  explicit ShutdownSignal(sigset_t signals)
      : waiter_([this, signals](std::stop_token self) {
          const timespec tick{0, 100'000'000};
          while (!self.stop_requested())
            if (sigtimedwait(&signals, nullptr, &tick) > 0) {
              source_.request_stop();
              return;
            }
        }) {}
  std::stop_token token() const { return source_.get_token(); }
  bool requested() const { return source_.stop_requested(); }

private:
  std::stop_source source_;
  std::jthread waiter_;
};

// A toy downstream store: per resource, it keeps the largest fencing token it has seen and
// refuses writes that carry a smaller one.
class FencedStore {
public:
  bool write(const std::string& resource, const std::string& value, kvelect::Token token) {
    std::lock_guard lock(mu_);
    auto& record = records_[resource];
    if (token < record.fence) {
      say("  store: REJECTED {} = '{}' (token {} < fence {})", resource, value, token,
          record.fence);
      return false;
    }
    record.fence = token;
    record.value = value;
    say("  store: accepted {} = '{}' (token {})", resource, value, token);
    return true;
  }

private:
  struct Record {
    kvelect::Token fence = 0;
    std::string value;
  };
  std::mutex mu_;
  std::map<std::string, Record> records_;
};

struct Member {
  std::string name;
  std::atomic<kvelect::Token> won_token{0}; // from OnWon: what this member's writes carry
  std::unique_ptr<kvelect::Election> election;
};

} // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ShutdownSignal shutdown(signals);

  try {
    auto connection = kvelect::Connection::connect(); // $NATS_URL or nats://127.0.0.1:4222
    kvelect::BucketConfig config;                     // KVELECT_ELECTIONS
    config.ttl = 10s;
    auto bucket = kvelect::Bucket::create(connection, config);

    std::vector<std::unique_ptr<Member>> members;
    for (const char* name : {"alpha", "bravo"}) {
      auto member = std::make_unique<Member>();
      member->name = name;
      auto* m = member.get();
      member->election = std::make_unique<kvelect::Election>(
          m->name, "fencing-demo", bucket, kvelect::OnWon([m](kvelect::Token token) {
            m->won_token = token;
            say("{} won, fencing token {}", m->name, token);
          }),
          kvelect::OnLost([m] { say("{} lost leadership", m->name); }));
      members.push_back(std::move(member));
    }
    for (auto& m : members)
      m->election->start();

    // Polls (interruptibly) until a member other than `not_this` leads; nullptr on Ctrl-C or
    // after 30 s.
    std::mutex mu;
    std::condition_variable_any tick;
    auto wait_for_leader = [&](const Member* not_this) -> Member* {
      const auto deadline = std::chrono::steady_clock::now() + 30s;
      std::unique_lock lock(mu);
      while (!shutdown.requested() && std::chrono::steady_clock::now() < deadline) {
        for (auto& m : members)
          if (m.get() != not_this && m->election->is_leader())
            return m.get();
        tick.wait_for(lock, shutdown.token(), 10ms, [] { return false; });
      }
      return nullptr;
    };

    FencedStore store;
    Member* old_leader = wait_for_leader(nullptr);
    if (old_leader == nullptr)
      return shutdown.requested() ? 0 : 1;
    const kvelect::Token old_token = old_leader->won_token;
    say("{} writes with its token:", old_leader->name);
    store.write("job-42", "step 1 by " + old_leader->name, old_token);

    say("{} prepares a second write, then stalls (a GC pause, a slow disk, a partition) and "
        "stops leading meanwhile",
        old_leader->name);
    const std::string delayed_value = "step 2 by " + old_leader->name;
    old_leader->election->resign(); // the store cannot tell this from a lease that ran out

    Member* new_leader = wait_for_leader(old_leader);
    if (new_leader == nullptr)
      return shutdown.requested() ? 0 : 1;
    say("{} writes with its token:", new_leader->name);
    store.write("job-42", "step 2 by " + new_leader->name, new_leader->won_token);

    say("{}'s stalled write finally arrives, with the old token:", old_leader->name);
    store.write("job-42", delayed_value, old_token);

    for (auto& m : members)
      m->election->stop();
  } catch (const kvelect::Error& error) {
    std::fprintf(stderr, "error: %s\n", error.what());
    return 1;
  }
  return 0;
}
