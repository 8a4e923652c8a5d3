// SPDX-License-Identifier: Apache-2.0
// kvelect-fault-member: tests/member/member.cpp with two more knobs. Same output lines
//
//   <CLOCK_MONOTONIC ns> <name> ready|won <token>|lost|leader <name|->|error <message>|stopped
//
// but it takes several --server URLs and connects to the FIRST one (no randomisation), so that a
// test can put each member on a cluster node of its choice (cnats fails over to the others and
// reconnects for ever, as kvelect::Connection does); and --timeout sets the connect and
// JetStream request timeout (kvelect::Connection's default is 2000 ms; tests/member uses 1000).
//
// Usage: kvelect-fault-member --server URL [--server URL ...] --bucket NAME --key KEY
//          --name NAME [--skip-validation] [--splay MS] [--timeout MS] [--debug]
// SIGTERM/SIGINT: graceful stop (OnLost, release), exit 0. SIGUSR1: resign().
#include <kvelect/kvelect.hpp>

#include <nats/nats.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string>
#include <vector>

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

int fail(const std::string& what, natsStatus status) {
  natsStatus ignored = NATS_OK;
  const char* text = nats_GetLastError(&ignored);
  std::fprintf(stderr, "kvelect-fault-member: %s: %s\n", what.c_str(),
               text != nullptr && *text != '\0' ? text : natsStatus_GetText(status));
  return 1;
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> servers;
  std::string bucket_name, key;
  bool skip_validation = false, debug = false;
  long splay_ms = 0, timeout_ms = 1000;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--server" && has_value) {
      servers.emplace_back(argv[++i]);
    } else if (arg == "--bucket" && has_value) {
      bucket_name = argv[++i];
    } else if (arg == "--key" && has_value) {
      key = argv[++i];
    } else if (arg == "--name" && has_value) {
      member_name = argv[++i];
    } else if (arg == "--splay" && has_value) {
      splay_ms = std::strtol(argv[++i], nullptr, 10);
    } else if (arg == "--timeout" && has_value) {
      timeout_ms = std::strtol(argv[++i], nullptr, 10);
    } else if (arg == "--skip-validation") {
      skip_validation = true;
    } else if (arg == "--debug") {
      debug = true;
    } else {
      std::fprintf(stderr, "kvelect-fault-member: bad argument %s\n", arg.c_str());
      return 2;
    }
  }
  if (servers.empty() || bucket_name.empty() || key.empty() || member_name.empty()) {
    std::fprintf(stderr, "kvelect-fault-member: --server, --bucket, --key and --name "
                         "are required\n");
    return 2;
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  natsOptions* opts = nullptr;
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  kvStore* kv = nullptr;
  std::vector<const char*> urls;
  for (const auto& s : servers)
    urls.push_back(s.c_str());
  natsStatus s = natsOptions_Create(&opts);
  if (s == NATS_OK)
    s = natsOptions_SetServers(opts, urls.data(), static_cast<int>(urls.size()));
  if (s == NATS_OK)
    s = natsOptions_SetNoRandomize(opts, true);
  if (s == NATS_OK)
    s = natsOptions_SetName(opts, member_name.c_str());
  if (s == NATS_OK)
    s = natsOptions_SetTimeout(opts, timeout_ms);
  if (s == NATS_OK)
    s = natsOptions_SetMaxReconnect(opts, -1);
  if (s == NATS_OK)
    s = natsOptions_SetReconnectWait(opts, 250);
  if (s == NATS_OK)
    s = natsConnection_Connect(&nc, opts);
  if (s != NATS_OK)
    return fail("connect", s);
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = timeout_ms;
  s = natsConnection_JetStream(&js, nc, &js_options);
  if (s == NATS_OK)
    s = js_KeyValue(&kv, js, bucket_name.c_str());
  if (s != NATS_OK)
    return fail("open bucket " + bucket_name, s);

  int rc = 0;
  try {
    std::vector<kvelect::Option> options{
        kvelect::OnWon([](kvelect::Token token) { emit("won " + std::to_string(token)); }),
        kvelect::OnLost([] { emit("lost"); }),
        kvelect::OnNewLeader([](std::optional<std::string_view> leader) {
          emit("leader " + std::string(leader.value_or("-")));
        }),
        kvelect::OnError(
            [](const kvelect::Error& error) { emit(std::string("error ") + error.what()); }),
        kvelect::WithStartupSplay(std::chrono::milliseconds(splay_ms))};
    if (skip_validation)
      options.push_back(kvelect::SkipValidation());
    if (debug)
      options.push_back(kvelect::WithDebug([](std::string_view line) {
        std::lock_guard lock(out_mu);
        std::fprintf(stderr, "%lld %s debug %.*s\n", mono_ns(), member_name.c_str(),
                     static_cast<int>(line.size()), line.data());
      }));
    kvelect::Election election(member_name, key, kv, std::move(options));
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
    std::fprintf(stderr, "kvelect-fault-member: %s\n", error.what());
    rc = 1;
  }
  kvStore_Destroy(kv);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  natsOptions_Destroy(opts);
  return rc;
}
