// SPDX-License-Identifier: Apache-2.0
// kvelect-test-member: one election member in its own process, for tests and benchmarks that
// kill, pause or cut off a member. It prints one line per event on stdout, flushed at once:
//
//   <CLOCK_MONOTONIC ns> <name> ready
//   <CLOCK_MONOTONIC ns> <name> won <token>
//   <CLOCK_MONOTONIC ns> <name> lost
//   <CLOCK_MONOTONIC ns> <name> leader <name|->
//   <CLOCK_MONOTONIC ns> <name> error <message>
//   <CLOCK_MONOTONIC ns> <name> stopped
//
// CLOCK_MONOTONIC is one clock for every process on the machine, so a test can merge the
// events of many members and check that no two leadership intervals overlap.
//
// Usage: kvelect-test-member --server URL --bucket NAME --key KEY --name NAME
//          [--skip-validation] [--keep-key] [--splay MS] [--debug]
// SIGTERM/SIGINT: a graceful stop (OnLost, release unless --keep-key), then exit 0.
// SIGUSR1: resign().
#include <kvelect/kvelect.hpp>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>

namespace {

std::mutex out_mu;
std::string member_name;

long long mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void emit(const std::string& event) {
  std::lock_guard lock(out_mu);
  std::printf("%lld %s %s\n", mono_ns(), member_name.c_str(), event.c_str());
  std::fflush(stdout);
}

int usage(const char* problem) {
  std::fprintf(stderr, "kvelect-test-member: %s\n", problem);
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  std::string server, bucket_name, key;
  bool skip_validation = false, keep_key = false, debug = false;
  long splay_ms = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "--server") {
      const char* v = value();
      if (v == nullptr)
        return usage("--server needs a value");
      server = v;
    } else if (arg == "--bucket") {
      const char* v = value();
      if (v == nullptr)
        return usage("--bucket needs a value");
      bucket_name = v;
    } else if (arg == "--key") {
      const char* v = value();
      if (v == nullptr)
        return usage("--key needs a value");
      key = v;
    } else if (arg == "--name") {
      const char* v = value();
      if (v == nullptr)
        return usage("--name needs a value");
      member_name = v;
    } else if (arg == "--splay") {
      const char* v = value();
      if (v == nullptr)
        return usage("--splay needs a value");
      splay_ms = std::strtol(v, nullptr, 10);
    } else if (arg == "--skip-validation") {
      skip_validation = true;
    } else if (arg == "--keep-key") {
      keep_key = true;
    } else if (arg == "--debug") {
      debug = true;
    } else {
      return usage(("unknown argument " + arg).c_str());
    }
  }
  if (server.empty() || bucket_name.empty() || key.empty() || member_name.empty())
    return usage("--server, --bucket, --key and --name are required");

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    kvelect::ConnectOptions options;
    options.servers = {server};
    options.name = member_name;
    options.timeout = std::chrono::milliseconds(1000);
    auto connection = kvelect::Connection::connect(options);
    auto bucket = kvelect::Bucket::open(connection, bucket_name);
    std::vector<kvelect::Option> opts{
        kvelect::OnWon([](kvelect::Token token) { emit("won " + std::to_string(token)); }),
        kvelect::OnLost([] { emit("lost"); }),
        kvelect::OnNewLeader([](std::optional<std::string_view> leader) {
          emit("leader " + std::string(leader.value_or("-")));
        }),
        kvelect::OnError(
            [](const kvelect::Error& error) { emit(std::string("error ") + error.what()); }),
        kvelect::WithStartupSplay(std::chrono::milliseconds(splay_ms)),
        kvelect::WithReleaseOnStop(!keep_key),
        // As the CLI's members: expiry markers are recognised on a bucket that has them
        // (docs/protocol.md, "Expiry markers"); elsewhere this changes nothing.
        kvelect::WithJetStream(connection.jetstream())};
    if (skip_validation)
      opts.push_back(kvelect::SkipValidation());
    if (debug)
      opts.push_back(kvelect::WithDebug([](std::string_view line) {
        std::lock_guard lock(out_mu);
        std::fprintf(stderr, "%lld %s debug %.*s\n", mono_ns(), member_name.c_str(),
                     static_cast<int>(line.size()), line.data());
      }));
    kvelect::Election election(member_name, key, bucket.get(), std::move(opts));
    election.start();
    emit("ready");
    for (;;) {
      int signal = 0;
      sigwait(&signals, &signal);
      if (signal == SIGUSR1) {
        election.resign();
        continue;
      }
      break;
    }
    election.stop();
    emit("stopped");
  } catch (const kvelect::Error& error) {
    std::fprintf(stderr, "kvelect-test-member: %s\n", error.what());
    return 1;
  }
  return 0;
}
