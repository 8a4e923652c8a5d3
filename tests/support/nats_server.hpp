// SPDX-License-Identifier: Apache-2.0
//
// Real nats-server processes for integration tests: one server (NatsServer)
// or an N-node JetStream cluster (NatsCluster), all on 127.0.0.1, with
// crash/stop/restart/pause controls for fault-injection tests.
//
// Readiness: every server is started with a monitoring port (-m). A server is
// "ready" when its client port accepts a TCP connection and sends the
// "INFO {...}" greeting, and its /healthz endpoint answers 200:
//   - standalone JetStream server: plain /healthz, which in nats-server 2.9
//     also checks that every stream found in the store directory was
//     recovered (matters for restart() on an existing store);
//   - cluster member: /healthz?js-enabled-only=true, i.e. JetStream is up on
//     that node. Contact with a meta leader is NOT required for one node,
//     because a node restarted while the rest of its cluster is down can never
//     get one on its own. NatsCluster::wait_healthy() checks the whole cluster.
//
// Processes: started with fork/execve, PR_SET_PDEATHSIG(SIGKILL) so they die
// if the test binary dies, no inherited descriptors, stdout/stderr appended
// to a log file (log_path()) in a per-process directory
// $TMPDIR/kvelect-nats-logs-XXXXXX. The directory is kept, and its path
// printed, when any test of the process failed (or the process died, or
// KVELECT_KEEP_NATS_LOGS=1); it is removed at exit after a clean run.
//
// Not thread-safe: drive one NatsServer/NatsCluster from one thread. The
// kernel's parent-death signal fires when the *thread* that forked the server
// exits, so create servers on a thread that outlives them (the test's own
// thread, as usual).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "net_util.hpp"

namespace kvelect::testing {

struct ServerOptions {
  bool jetstream = true;
  std::string store_dir;    // empty: a fresh temporary dir owned (and removed) by the server object
  int port = 0;             // 0: pick a free loopback port
  std::string server_name;  // empty: generated
  std::string cluster_name; // non-empty: run in a cluster
  int cluster_port = 0;     // 0 with cluster_name set: pick a free port
  std::vector<std::string> routes; // e.g. "nats-route://127.0.0.1:PORT"
  int monitor_port = 0;            // HTTP monitoring port (always enabled); 0: pick a free port
  // Text of a configuration file (e.g. tls {...}, authorization {...}), written beside the log
  // and passed with -c. The command-line flags above win over it.
  std::string config;
};

// Thrown when a server does not become ready. process_exited() tells whether
// the process died by itself rather than hanging until the timeout;
// port_in_use() is the port it could not bind ("address already in use"),
// or 0.
class NatsServerStartError : public std::runtime_error {
public:
  NatsServerStartError(const std::string& what, bool process_exited, int port_in_use = 0)
      : std::runtime_error(what), process_exited_(process_exited), port_in_use_(port_in_use) {}
  bool process_exited() const noexcept { return process_exited_; }
  int port_in_use() const noexcept { return port_in_use_; }

private:
  bool process_exited_;
  int port_in_use_;
};

class NatsServer {
public:
  // Starts nats-server and waits (15 s limit) until it is ready; throws
  // NatsServerStartError (with the log tail and log path) otherwise. Ports
  // picked automatically are re-picked, up to 3 attempts, if another process
  // grabbed one in the meantime.
  explicit NatsServer(ServerOptions options = {});
  // SIGTERM, up to 5 s grace, then SIGKILL; reaps the process; removes an
  // owned store dir. Never throws. Keeps the log file.
  ~NatsServer();

  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;
  NatsServer(NatsServer&&) = delete;
  NatsServer& operator=(NatsServer&&) = delete;

  std::string url() const; // "nats://127.0.0.1:PORT"
  int port() const { return port_; }
  pid_t pid() const { return pid_; } // -1 when not running (never a stale, reaped pid)
  const std::string& store_dir() const { return store_dir_; } // "" without JetStream
  int cluster_port() const { return cluster_port_; }          // 0 when not clustered
  int monitor_port() const { return monitor_port_; }
  const std::string& server_name() const { return options_.server_name; }
  const std::string& log_path() const { return log_path_; }
  const ServerOptions& options() const { return options_; } // with generated values filled in

  void kill();    // SIGKILL + waitpid (simulated crash). No-op when not running.
  void stop();    // SIGTERM, wait up to 5 s, then SIGKILL. No-op when not running.
  void restart(); // stop() if running, start again with the same ports, store dir and options; wait
                  // until ready
  void pause();   // SIGSTOP; returns once the kernel reports the process stopped. Throws
                  // std::logic_error if not running.
  void
  resume(); // SIGCONT; returns once the process runs again. Throws std::logic_error if not running.
  bool running() const; // alive (paused counts as alive); reaps the process if it died on its own
  bool paused() const { return paused_; }
  std::string log_tail(int lines = 40) const;

  // GET on this server's monitoring port, e.g. "/jsz", "/healthz", "/varz".
  std::optional<HttpResponse>
  monitor_get(std::string_view path,
              std::chrono::milliseconds timeout = std::chrono::seconds(2)) const;

private:
  friend class NatsCluster;

  void pick_ports();
  void spawn();
  std::string log_since_spawn() const;
  void wait_ready(std::chrono::steady_clock::time_point deadline);
  void begin_stop() noexcept;
  void finish_stop(std::chrono::steady_clock::time_point deadline) noexcept;
  bool reap(bool block) const noexcept;

  class TempDir;

  ServerOptions options_;
  std::string binary_;
  std::unique_ptr<TempDir> owned_store_;
  std::string store_dir_;
  std::string log_path_;
  int port_ = 0;
  int cluster_port_ = 0;
  int monitor_port_ = 0;
  std::uintmax_t log_offset_ = 0; // log size when the current process was spawned
  mutable pid_t pid_ = -1;        // mutable: running() const reaps a crashed child
  mutable bool paused_ = false;
};

// N nodes on loopback, full-mesh routes, one cluster name, JetStream on each.
class NatsCluster {
public:
  // Starts every node and waits (30 s limit in total) until each one is ready
  // and all of them report the same JetStream meta leader. Throws
  // std::runtime_error with every node's log tail otherwise, and
  // std::invalid_argument for nodes < 2 (nats-server refuses clustered
  // JetStream without routes; use a plain NatsServer instead).
  explicit NatsCluster(int nodes = 3);
  ~NatsCluster(); // stops all nodes concurrently (SIGTERM to all, then wait)

  NatsCluster(const NatsCluster&) = delete;
  NatsCluster& operator=(const NatsCluster&) = delete;

  NatsServer& node(int i); // throws std::out_of_range
  const NatsServer& node(int i) const;
  int size() const { return static_cast<int>(nodes_.size()); }
  const std::string& name() const { return name_; }
  std::vector<std::string> urls() const; // all client URLs, node order
  std::string url_list() const;          // comma-joined, for natsOptions_SetServers or --server

  // Name of the JetStream meta leader as reported by /jsz of the first running
  // node that reports one; "" if none does.
  std::string meta_leader() const;
  // Index of the node whose server_name() is the current meta leader, or -1.
  int meta_leader_index() const;
  // Waits until every running node answers /healthz with 200 (so it is in
  // contact with, and current with, the meta leader) and all running nodes
  // agree on a meta leader that is itself running. Use after kill()/restart()
  // of nodes. Returns false on timeout.
  bool wait_healthy(std::chrono::milliseconds timeout = std::chrono::seconds(30));

private:
  std::string name_;
  std::vector<std::unique_ptr<NatsServer>> nodes_;
};

// Path of the nats-server executable: $KVELECT_NATS_SERVER when set (the server
// matrix of scripts/nats-servers.sh; empty result if that is not an executable
// file: an explicit choice never falls back to another server), else PATH
// first, then the sbin directories (Debian installs it in /usr/sbin, which is
// not in every user's PATH). Empty when not found.
std::string nats_server_path();
bool nats_server_available(); // !nats_server_path().empty()
// Why nats_server_path() is empty, for a test's failure message.
std::string nats_server_missing_reason();
// The version the server binary prints of itself ("nats-server: v2.10.27"), as
// {major, minor, patch}; {0, 0, 0} if it cannot be read. Read once per process.
struct ServerVersion {
  int major = 0, minor = 0, patch = 0;
  bool at_least(int maj, int min) const { return major > maj || (major == maj && minor >= min); }
  std::string str() const;
};
ServerVersion nats_server_version();
// True when the CI environment variable is set to a non-empty value.
bool ci_environment();

} // namespace kvelect::testing

// Use at the start of a TEST body or SetUp(): without nats-server, skip the
// test on a developer machine, but fail it under CI (CI=... set), where a
// silently skipped integration suite would hide a broken setup, and whenever
// KVELECT_NATS_SERVER names a server that is not there.
#define KVELECT_REQUIRE_NATS_SERVER()                                                              \
  do {                                                                                             \
    if (!::kvelect::testing::nats_server_available()) {                                            \
      if (::kvelect::testing::ci_environment() || std::getenv("KVELECT_NATS_SERVER") != nullptr) { \
        FAIL() << ::kvelect::testing::nats_server_missing_reason();                                \
      } else {                                                                                     \
        GTEST_SKIP() << ::kvelect::testing::nats_server_missing_reason() << "; skipping";          \
      }                                                                                            \
    }                                                                                              \
  } while (false)
