// SPDX-License-Identifier: Apache-2.0
// kvelect-lab-member: the fault lab's program (docs/reliability.md), on the public API only.
//
//   kvelect-lab-member member --server URL [--server URL ...] --bucket B --key K --name N
//                              --fence DIR [--write-ms MS] [--work-ms MS]
//       One election member. Prints one line per event on stdout, flushed at once:
//         <CLOCK_BOOTTIME ns> <name> ready|won <token>|lost|leader <name|->|error <text>|stopped
//       It appends a record to the fenced store in DIR at once in OnWon, and then every
//       --write-ms (default 200) while it leads (token() has a value): it takes the token, works
//       for --work-ms (default 100), and writes with the token it took. SIGTERM/SIGINT: a
//       graceful stop. The library's debug lines go to stderr, on the same clock.
//   kvelect-lab-member create --server URL... --bucket B --ttl-ms MS --replicas R
//       Creates the election bucket (retrying while the cluster has no meta leader yet).
//   kvelect-lab-member stream-leader --server URL... --bucket B
//       Prints the name of the server that leads the bucket's stream (KV_<B>).
//   kvelect-lab-member stepdown --server URL... --bucket B
//       Asks the stream's leader to step down ($JS.API.STREAM.LEADER.STEPDOWN.KV_<B>).
//   kvelect-lab-member now
//       Prints CLOCK_BOOTTIME in ns: the lab script's clock for its fault events.
//
// CLOCK_BOOTTIME is one clock for every process on the host, whatever network namespace it runs
// in, so the checker (lab_check.cpp) can merge the members' events with the lab's faults.
//
// The fenced store is the lab's own small "resource": a directory with a file `high` (the highest
// token accepted so far) and a log `log`. A write takes an exclusive flock on `high`, rejects a
// token lower than the highest seen, and appends "<ns> <member> <token> accepted|rejected" to
// the log under the same lock, so the log's order is the store's order (docs/fencing.md).
#include <kvelect/kvelect.hpp>

#include <nats/nats.h>

#include <execinfo.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

std::mutex out_mu;
std::string member_name;

long long boot_ns() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void emit(const std::string& event) {
  std::lock_guard lock(out_mu);
  std::printf("%lld %s %s\n", boot_ns(), member_name.c_str(), event.c_str());
  std::fflush(stdout);
}

// One write to the fenced store. Returns true if accepted.
bool fenced_write(const std::string& dir, kvelect::Token token) {
  const std::string high_path = dir + "/high";
  const int fd = ::open(high_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return false;
  ::flock(fd, LOCK_EX);
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  const unsigned long long high = n > 0 ? std::strtoull(buf, nullptr, 10) : 0;
  const bool accepted = token >= high;
  if (accepted && token > high) {
    const std::string text = std::to_string(token) + "\n";
    (void)!::ftruncate(fd, 0);
    (void)!::pwrite(fd, text.data(), text.size(), 0);
  }
  if (FILE* log = std::fopen((dir + "/log").c_str(), "ae")) {
    std::fprintf(log, "%lld %s %llu %s\n", boot_ns(), member_name.c_str(),
                 static_cast<unsigned long long>(token), accepted ? "accepted" : "rejected");
    std::fclose(log);
  }
  ::flock(fd, LOCK_UN);
  ::close(fd);
  return accepted;
}

struct Args {
  std::string command;
  std::vector<std::string> servers;
  std::string bucket, key, fence;
  long ttl_ms = 5000, replicas = 3, write_ms = 200, work_ms = 100;
};

int usage(const std::string& what) {
  std::fprintf(stderr, "kvelect-lab-member: %s\n", what.c_str());
  return 2;
}

kvelect::Connection connect(const Args& args) {
  kvelect::ConnectOptions options;
  options.servers = args.servers;
  options.name = member_name.empty() ? std::string("kvelect-lab") : member_name;
  options.timeout = std::chrono::milliseconds(1000);
  return kvelect::Connection::connect(options);
}

// A JetStream API request; the reply's body, or nullopt.
std::optional<std::string> js_request(const kvelect::Connection& connection,
                                      const std::string& subject) {
  natsMsg* reply = nullptr;
  if (natsConnection_Request(&reply, connection.get(), subject.c_str(), "", 0, 2000) != NATS_OK)
    return std::nullopt;
  std::string body(natsMsg_GetData(reply), static_cast<std::size_t>(natsMsg_GetDataLength(reply)));
  natsMsg_Destroy(reply);
  return body;
}

int stream_leader(const Args& args) {
  auto connection = connect(args);
  auto body = js_request(connection, "$JS.API.STREAM.INFO.KV_" + args.bucket);
  if (!body)
    return 1;
  // The reply's "cluster":{"name":...,"leader":"n2",...}; no JSON parser needed for one field.
  const auto cluster = body->find("\"cluster\"");
  const auto key = body->find("\"leader\":\"", cluster == std::string::npos ? 0 : cluster);
  if (cluster == std::string::npos || key == std::string::npos)
    return 1;
  const auto begin = key + 10;
  std::printf("%s\n", body->substr(begin, body->find('"', begin) - begin).c_str());
  return 0;
}

int stepdown(const Args& args) {
  auto connection = connect(args);
  auto body = js_request(connection, "$JS.API.STREAM.LEADER.STEPDOWN.KV_" + args.bucket);
  if (!body)
    return 1;
  std::printf("%s\n", body->c_str());
  return body->find("\"success\":true") != std::string::npos ? 0 : 1;
}

int create(const Args& args) {
  // A fresh cluster needs a few seconds to elect its meta leader: retry for up to 60 s.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    try {
      auto connection = connect(args);
      kvelect::BucketConfig config;
      config.name = args.bucket;
      config.ttl = std::chrono::milliseconds(args.ttl_ms);
      config.replicas = static_cast<int>(args.replicas);
      auto bucket = kvelect::Bucket::create(connection, config);
      std::printf("bucket %s: replicas %lld\n", args.bucket.c_str(),
                  static_cast<long long>(bucket.info().replicas));
      return 0;
    } catch (const kvelect::Error& error) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr, "kvelect-lab-member: create %s: %s\n", args.bucket.c_str(),
                     error.what());
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
}

int member(const Args& args) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto connection = connect(args);
  auto bucket = kvelect::Bucket::open(connection, args.bucket);
  const std::string fence = args.fence;
  kvelect::Election election(
      member_name, args.key, bucket.get(), kvelect::OnWon([fence](kvelect::Token token) {
        emit("won " + std::to_string(token));
        fenced_write(fence, token);
      }),
      kvelect::OnLost([] { emit("lost"); }),
      kvelect::OnNewLeader([](std::optional<std::string_view> leader) {
        emit("leader " + std::string(leader.value_or("-")));
      }),
      kvelect::OnError(
          [](const kvelect::Error& error) { emit(std::string("error ") + error.what()); }),
      // The library's debug lines on stderr (members/<name>.err), on the
      // same clock: what a failed run needs for a replay in the simulator.
      kvelect::WithDebug([](std::string_view line) {
        std::lock_guard lock(out_mu);
        std::fprintf(stderr, "%lld %s debug %.*s\n", boot_ns(), member_name.c_str(),
                     static_cast<int>(line.size()), line.data());
      }));
  election.start();
  emit("ready");
  const timespec period{args.write_ms / 1000, (args.write_ms % 1000) * 1000000};
  for (;;) {
    const int signal = sigtimedwait(&signals, nullptr, &period);
    if (signal == SIGINT || signal == SIGTERM)
      break;
    // The leader's work: an item that takes --work-ms, then a fenced write carrying the token
    // it started with. A member stopped or cut off in the middle of an item writes late, with
    // a token that may be stale by then: that is the write the store must reject.
    if (auto token = election.token()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(args.work_ms));
      fenced_write(fence, *token);
    }
  }
  election.stop();
  emit("stopped");
  return 0;
}

// A member that dies of a signal says where, on stderr (the lab keeps it): a soak once lost a
// member to a silent abort() inside cnats with no core to read (docs/reliability.md). Only
// async-signal-safe calls, then the default action, so the lab still sees the signal and the
// core is still written.
void print_stack_and_die(int signal) {
  const char* what = signal == SIGABRT   ? "SIGABRT"
                     : signal == SIGSEGV ? "SIGSEGV"
                     : signal == SIGBUS  ? "SIGBUS"
                                         : "a fatal signal";
  (void)!write(STDERR_FILENO, "kvelect-lab-member: died of ", 28);
  (void)!write(STDERR_FILENO, what, std::strlen(what));
  (void)!write(STDERR_FILENO, "; stack:\n", 9);
  void* frames[64];
  backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

void report_fatal_signals() {
  void* warm_up[1];
  (void)backtrace(warm_up, 1); // loads libgcc now: not from inside a signal handler
  for (const int signal : {SIGABRT, SIGSEGV, SIGBUS})
    std::signal(signal, print_stack_and_die);
}

} // namespace

int main(int argc, char** argv) {
  report_fatal_signals();
  Args args;
  if (argc < 2)
    return usage("usage: kvelect-lab-member member|create|stream-leader|stepdown|now ...");
  args.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc)
      return usage("option " + arg + " needs a value");
    const std::string value = argv[++i];
    if (arg == "--server")
      args.servers.push_back(value);
    else if (arg == "--bucket")
      args.bucket = value;
    else if (arg == "--key")
      args.key = value;
    else if (arg == "--name")
      member_name = value;
    else if (arg == "--fence")
      args.fence = value;
    else if (arg == "--ttl-ms")
      args.ttl_ms = std::strtol(value.c_str(), nullptr, 10);
    else if (arg == "--replicas")
      args.replicas = std::strtol(value.c_str(), nullptr, 10);
    else if (arg == "--write-ms")
      args.write_ms = std::strtol(value.c_str(), nullptr, 10);
    else if (arg == "--work-ms")
      args.work_ms = std::strtol(value.c_str(), nullptr, 10);
    else
      return usage("bad argument " + arg);
  }
  if (args.command == "now") {
    std::printf("%lld\n", boot_ns());
    return 0;
  }
  if (args.servers.empty() || args.bucket.empty())
    return usage("--server and --bucket are required");
  try {
    if (args.command == "create")
      return create(args);
    if (args.command == "stream-leader")
      return stream_leader(args);
    if (args.command == "stepdown")
      return stepdown(args);
    if (args.command == "member") {
      if (args.key.empty() || member_name.empty() || args.fence.empty())
        return usage("member needs --key, --name and --fence");
      return member(args);
    }
  } catch (const kvelect::Error& error) {
    std::fprintf(stderr, "kvelect-lab-member %s: %s\n", args.command.c_str(), error.what());
    return 1;
  }
  return usage("unknown command " + args.command);
}
