// SPDX-License-Identifier: Apache-2.0
//
// Self-test of the test-support code: proves that NatsServer, NatsCluster and
// FaultProxy do what the integration tests rely on, using raw sockets only
// (a tiny echo server and a few lines of the NATS text protocol), so that a
// bug in kvelect or in the NATS client library cannot hide a bug here.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "fault_proxy.hpp"
#include "nats_server.hpp"

namespace kvelect::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// What one bounded read on a socket saw.
struct ReadOutcome {
  bool timed_out = false;
  bool eof = false;
  int error = 0; // errno of a failed recv (ECONNRESET for an RST)
  std::string data;
};

// Reads until `want` bytes arrived, EOF, an error, or the timeout.
ReadOutcome read_some(int fd, std::size_t want, std::chrono::milliseconds timeout) {
  ReadOutcome out;
  auto deadline = Clock::now() + timeout;
  char buf[65536];
  while (out.data.size() < want) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left <= 0ms || !wait_readable(fd, left)) {
      out.timed_out = true;
      return out;
    }
    ssize_t n = ::recv(fd, buf, std::min(sizeof buf, want - out.data.size()), 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      out.error = errno;
      return out;
    }
    if (n == 0) {
      out.eof = true;
      return out;
    }
    out.data.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

std::optional<std::string> read_line(int fd, std::chrono::milliseconds timeout) {
  std::string line;
  auto deadline = Clock::now() + timeout;
  while (line.size() < 2 || line.compare(line.size() - 2, 2, "\r\n") != 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    auto r = read_some(fd, 1, left);
    if (r.data.empty())
      return std::nullopt;
    line += r.data;
  }
  return line;
}

bool peer_closed_or_reset(const ReadOutcome& r) { return r.eof || r.error == ECONNRESET; }

// Echo server on 127.0.0.1 for proxy tests: deterministic traffic that does
// not depend on nats-server.
class EchoServer {
public:
  EchoServer() {
    listener_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (!listener_ ||
        ::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_.get(), 16) != 0 ||
        ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
      throw std::runtime_error("EchoServer setup failed");
    port_ = ntohs(addr.sin_port);
    thread_ = std::jthread([this](std::stop_token st) { run(st); });
  }
  int port() const { return port_; }
  std::size_t open_connections() const { return open_.load(); }

private:
  void run(std::stop_token st) {
    std::vector<UniqueFd> conns;
    std::vector<char> buf(65536);
    while (!st.stop_requested()) {
      std::vector<pollfd> pfds{{listener_.get(), POLLIN, 0}};
      for (auto& c : conns)
        pfds.push_back({c.get(), POLLIN, 0});
      // A short timeout is the simplest way to notice the stop request.
      if (::poll(pfds.data(), pfds.size(), 20) <= 0)
        continue;
      for (std::size_t i = 1; i < pfds.size(); ++i) {
        if (pfds[i].revents == 0)
          continue;
        ssize_t n = ::recv(conns[i - 1].get(), buf.data(), buf.size(), 0);
        if (n <= 0 || !send_all(conns[i - 1].get(),
                                std::string_view(buf.data(), static_cast<std::size_t>(n))))
          conns[i - 1].reset();
      }
      std::erase_if(conns, [](const UniqueFd& c) { return !c; });
      if (pfds[0].revents != 0) {
        UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (c)
          conns.push_back(std::move(c));
      }
      open_.store(conns.size());
    }
  }

  UniqueFd listener_;
  int port_ = 0;
  std::atomic<std::size_t> open_{0};
  std::jthread thread_; // last: joined before the listener closes
};

// Just enough of the NATS client protocol to issue JetStream API requests.
class RawNats {
public:
  explicit RawNats(int port) : fd_(connect_loopback(port, 2s)) {
    if (!fd_)
      throw std::runtime_error("RawNats: connect failed");
    auto info = read_line(fd_.get(), 2s);
    if (!info || info->rfind("INFO ", 0) != 0)
      throw std::runtime_error("RawNats: no INFO");
    send_all(
        fd_.get(),
        "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true,"
        "\"protocol\":1}\r\nPING\r\n");
    for (;;) {
      auto line = read_line(fd_.get(), 2s);
      if (!line)
        throw std::runtime_error("RawNats: no PONG");
      if (*line == "PONG\r\n")
        break;
    }
  }

  // Returns the reply payload, or nullopt (timeout, no responders, -ERR).
  std::optional<std::string> request(const std::string& subject, const std::string& payload,
                                     std::chrono::milliseconds timeout = 5s) {
    const std::string inbox = "_INBOX.selftest." + std::to_string(++sid_);
    const std::string sid = std::to_string(sid_);
    send_all(fd_.get(), "SUB " + inbox + " " + sid + "\r\nUNSUB " + sid + " 1\r\nPUB " + subject +
                            " " + inbox + " " + std::to_string(payload.size()) + "\r\n" + payload +
                            "\r\n");
    auto deadline = Clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      auto line = read_line(fd_.get(), left);
      if (!line)
        return std::nullopt;
      if (*line == "PING\r\n") {
        send_all(fd_.get(), "PONG\r\n");
      } else if (line->rfind("MSG ", 0) == 0 || line->rfind("HMSG ", 0) == 0) {
        // The last field is the total size; HMSG (headers) only carries the
        // 503 "no responders" status here.
        auto size = std::stoul(line->substr(line->find_last_of(' ') + 1));
        auto body = read_some(fd_.get(), size + 2, left);
        if (body.data.size() != size + 2 || line->rfind("HMSG ", 0) == 0)
          return std::nullopt;
        return body.data.substr(0, size);
      } else if (line->rfind("-ERR", 0) == 0) {
        return std::nullopt;
      }
    }
  }

private:
  UniqueFd fd_;
  int sid_ = 0;
};

std::string info_line_via(int port) {
  UniqueFd fd = connect_loopback(port, 2s);
  if (!fd)
    return "connect failed";
  return read_line(fd.get(), 3s).value_or("no line");
}

// ---------------------------------------------------------------------------
// NatsServer

TEST(SupportNatsServer, StartsOnLoopbackAndGreets) {
  KVELECT_REQUIRE_NATS_SERVER();
  std::string store;
  pid_t pid = -1;
  {
    NatsServer server;
    ASSERT_TRUE(server.running());
    pid = server.pid();
    EXPECT_GT(pid, 0);
    EXPECT_EQ(server.url(), "nats://127.0.0.1:" + std::to_string(server.port()));
    store = server.store_dir();
    EXPECT_TRUE(std::filesystem::is_directory(store));
    EXPECT_EQ(server.cluster_port(), 0);

    std::string info = info_line_via(server.port());
    EXPECT_EQ(info.rfind("INFO {", 0), 0u) << info;
    EXPECT_NE(info.find("\"jetstream\":true"), std::string::npos) << info;
    EXPECT_NE(info.find("\"host\":\"127.0.0.1\""), std::string::npos) << info;

    auto varz = server.monitor_get("/varz");
    ASSERT_TRUE(varz.has_value());
    EXPECT_EQ(varz->status, 200);
    EXPECT_NE(varz->body.find(server.server_name()), std::string::npos);
    EXPECT_NE(server.log_tail(200).find("Server is ready"), std::string::npos);
  }
  // Destruction stops and reaps the process and removes the owned store.
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
  EXPECT_FALSE(std::filesystem::exists(store));
}

TEST(SupportNatsServer, WithoutJetStream) {
  KVELECT_REQUIRE_NATS_SERVER();
  ServerOptions opts;
  opts.jetstream = false;
  opts.server_name = "plain-core";
  NatsServer server(opts);
  EXPECT_TRUE(server.store_dir().empty());
  EXPECT_EQ(server.server_name(), "plain-core");
  std::string info = info_line_via(server.port());
  EXPECT_EQ(info.find("\"jetstream\":true"), std::string::npos) << info;
}

TEST(SupportNatsServer, StreamSurvivesRestartAndCrashOnSameStore) {
  KVELECT_REQUIRE_NATS_SERVER();
  NatsServer server;
  const int port = server.port();
  const std::string store = server.store_dir();
  {
    RawNats nc(port);
    auto created = nc.request(
        "$JS.API.STREAM.CREATE.SELFTEST",
        R"({"name":"SELFTEST","subjects":["selftest.>"],"storage":"file","num_replicas":1})");
    ASSERT_TRUE(created.has_value());
    ASSERT_EQ(created->find("\"error\""), std::string::npos) << *created;
    auto ack = nc.request("selftest.one", "hello");
    ASSERT_TRUE(ack.has_value());
    ASSERT_NE(ack->find("\"seq\":1"), std::string::npos) << *ack;
  }
  auto stream_messages = [&]() -> std::string {
    RawNats nc(port);
    auto info = nc.request("$JS.API.STREAM.INFO.SELFTEST", "");
    return info.value_or("no reply");
  };

  const pid_t first = server.pid();
  server.restart(); // graceful stop, same port and store
  EXPECT_NE(server.pid(), first);
  EXPECT_EQ(server.port(), port);
  EXPECT_EQ(server.store_dir(), store);
  EXPECT_NE(stream_messages().find("\"messages\":1"), std::string::npos) << stream_messages();

  server.kill(); // crash
  EXPECT_FALSE(server.running());
  EXPECT_EQ(server.pid(), -1);
  EXPECT_FALSE(connect_loopback(port, 500ms)) << "port still accepts after kill()";
  server.restart(); // recovery from a crashed store
  ASSERT_TRUE(server.running());
  EXPECT_NE(stream_messages().find("\"messages\":1"), std::string::npos) << stream_messages();

  server.stop();
  EXPECT_FALSE(server.running());
  server.stop(); // idempotent
  server.kill();
}

TEST(SupportNatsServer, PauseFreezesAndResumeThaws) {
  KVELECT_REQUIRE_NATS_SERVER();
  NatsServer server;
  server.pause();
  EXPECT_TRUE(server.running());
  EXPECT_TRUE(server.paused());

  // The kernel still completes the TCP handshake (listen backlog), but the
  // frozen server never greets: exactly what a hung server looks like.
  UniqueFd fd = connect_loopback(server.port(), 1s);
  ASSERT_TRUE(fd);
  EXPECT_TRUE(read_some(fd.get(), 1, 300ms).timed_out);
  EXPECT_FALSE(server.monitor_get("/healthz", 300ms).has_value());

  server.resume();
  EXPECT_FALSE(server.paused());
  auto info = read_line(fd.get(), 3s);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->rfind("INFO ", 0), 0u);

  // stop() of a paused server must not hang on the SIGTERM it cannot handle.
  server.pause();
  auto t0 = Clock::now();
  server.stop();
  EXPECT_FALSE(server.running());
  EXPECT_LT(Clock::now() - t0, 4s);
}

TEST(SupportNatsServer, ServerDiesWithItsTestProcess) {
  KVELECT_REQUIRE_NATS_SERVER();
  // A forked "test binary" starts a server and then dies without running any
  // destructor; PR_SET_PDEATHSIG must take the server down with it.
  int pipefd[2];
  ASSERT_EQ(::pipe2(pipefd, O_CLOEXEC), 0);
  UniqueFd rd(pipefd[0]), wr(pipefd[1]);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    rd.reset();
    try {
      auto* server = new NatsServer(); // deliberately never destroyed
      std::string msg = std::to_string(server->pid()) + " " + server->store_dir() + "\n";
      ssize_t ignored = ::write(wr.get(), msg.data(), msg.size());
      (void)ignored;
    } catch (...) {
    }
    ::_exit(0);
  }
  wr.reset();
  std::string msg;
  char c;
  while (::read(rd.get(), &c, 1) == 1 && c != '\n')
    msg += c;
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_FALSE(msg.empty()) << "child could not start a server";
  const pid_t server_pid = std::stoi(msg.substr(0, msg.find(' ')));
  const std::string store = msg.substr(msg.find(' ') + 1);

  // The orphan is reaped by init (or a subreaper); a zombie counts as dead.
  auto alive = [&] {
    std::ifstream stat("/proc/" + std::to_string(server_pid) + "/stat");
    std::string all;
    if (!std::getline(stat, all))
      return false;
    auto close_paren = all.rfind(')');
    return close_paren != std::string::npos && close_paren + 2 < all.size() &&
           all[close_paren + 2] != 'Z';
  };
  auto deadline = Clock::now() + 5s;
  while (alive() && Clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(alive()) << "nats-server " << server_pid << " outlived its parent";
  if (alive())
    ::kill(server_pid, SIGKILL);
  std::error_code ec;
  std::filesystem::remove_all(store, ec); // nobody else owns it any more
}

TEST(SupportNatsServer, StartFailureIsReportedWithLog) {
  KVELECT_REQUIRE_NATS_SERVER();
  NatsServer first;
  ServerOptions opts;
  opts.port = first.port(); // explicitly taken: no retry can help
  try {
    NatsServer second(opts);
    ADD_FAILURE() << "second server on the same port started";
  } catch (const NatsServerStartError& e) {
    EXPECT_TRUE(e.process_exited());
    EXPECT_EQ(e.port_in_use(), first.port());
    const std::string what = e.what();
    EXPECT_NE(what.find("address already in use"), std::string::npos) << what;
    EXPECT_NE(what.find("kvelect-nats-logs-"), std::string::npos) << what; // the log path
  }
  EXPECT_TRUE(first.running());
  EXPECT_THROW(NatsCluster(1), std::invalid_argument);
}

TEST(SupportNatsServer, FreePortsAreDistinct) {
  auto ports = free_loopback_ports(8);
  EXPECT_EQ(std::set<int>(ports.begin(), ports.end()).size(), ports.size());
  for (int p : ports)
    EXPECT_GT(p, 0);
  EXPECT_GT(free_loopback_port(), 0);
}

// ---------------------------------------------------------------------------
// NatsCluster

TEST(SupportNatsCluster, FormsWithMetaLeaderAndSurvivesNodeRestart) {
  KVELECT_REQUIRE_NATS_SERVER();
  NatsCluster cluster(3);
  ASSERT_EQ(cluster.size(), 3);

  auto urls = cluster.urls();
  EXPECT_EQ(std::set<std::string>(urls.begin(), urls.end()).size(), 3u);
  EXPECT_EQ(cluster.url_list(), urls[0] + "," + urls[1] + "," + urls[2]);

  // Every node's monitoring endpoint reports the same meta leader, and it is
  // one of ours.
  const std::string leader = cluster.meta_leader();
  ASSERT_FALSE(leader.empty());
  const int leader_index = cluster.meta_leader_index();
  ASSERT_GE(leader_index, 0);
  EXPECT_EQ(cluster.node(leader_index).server_name(), leader);
  for (int i = 0; i < cluster.size(); ++i) {
    EXPECT_NE(cluster.node(i).cluster_port(), 0);
    auto jsz = cluster.node(i).monitor_get("/jsz");
    ASSERT_TRUE(jsz.has_value());
    EXPECT_NE(jsz->body.find("\"meta_cluster\""), std::string::npos);
    EXPECT_NE(jsz->body.find("\"" + leader + "\""), std::string::npos) << jsz->body;
  }

  // Clustered JetStream really works: an R3 stream can be created.
  {
    RawNats nc(cluster.node(0).port());
    auto created =
        nc.request("$JS.API.STREAM.CREATE.R3",
                   R"({"name":"R3","subjects":["r3.>"],"storage":"file","num_replicas":3})", 10s);
    ASSERT_TRUE(created.has_value());
    EXPECT_EQ(created->find("\"error\""), std::string::npos) << *created;
  }

  // Crash a follower and bring it back: it rejoins the same cluster.
  const int follower = (leader_index + 1) % cluster.size();
  cluster.node(follower).kill();
  EXPECT_TRUE(cluster.wait_healthy(15s)) << "remaining two nodes unhealthy";
  cluster.node(follower).restart();
  EXPECT_TRUE(cluster.wait_healthy(20s)) << cluster.node(follower).log_tail();
  EXPECT_THROW(cluster.node(3), std::out_of_range);
}

// ---------------------------------------------------------------------------
// FaultProxy

TEST(SupportFaultProxy, PassForwardsBothWaysIncludingBulk) {
  EchoServer echo;
  FaultProxy proxy("127.0.0.1", echo.port());
  EXPECT_EQ(proxy.url(), "nats://127.0.0.1:" + std::to_string(proxy.port()));
  EXPECT_EQ(proxy.mode(), FaultProxy::Mode::pass);

  UniqueFd fd = connect_loopback(proxy.port(), 1s);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(send_all(fd.get(), "hello\n"));
  EXPECT_EQ(read_some(fd.get(), 6, 2s).data, "hello\n");
  EXPECT_EQ(proxy.connections(), 1u);

  // 4 MiB each way: exercises partial writes and backpressure.
  std::string bulk(4 << 20, '\0');
  for (std::size_t i = 0; i < bulk.size(); ++i)
    bulk[i] = static_cast<char>('a' + i % 26);
  std::jthread writer([&] { send_all(fd.get(), bulk); });
  auto back = read_some(fd.get(), bulk.size(), 20s);
  writer.join();
  EXPECT_EQ(back.data.size(), bulk.size());
  EXPECT_TRUE(back.data == bulk);

  fd.reset(); // client closes: the proxy closes the pair
  auto deadline = Clock::now() + 2s;
  while ((proxy.connections() != 0 || echo.open_connections() != 0) && Clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(proxy.connections(), 0u);
  EXPECT_EQ(echo.open_connections(), 0u);
}

TEST(SupportFaultProxy, PassCarriesNatsProtocol) {
  KVELECT_REQUIRE_NATS_SERVER();
  NatsServer server;
  FaultProxy proxy("127.0.0.1", server.port());
  EXPECT_EQ(info_line_via(proxy.port()).rfind("INFO {", 0), 0u);
  RawNats nc(proxy.port()); // CONNECT/PING/PONG through the proxy
  auto info = nc.request("$JS.API.INFO", "");
  ASSERT_TRUE(info.has_value());
  EXPECT_NE(info->find("account_info_response"), std::string::npos) << *info;
}

TEST(SupportFaultProxy, DelayHoldsEveryChunkInOrder) {
  EchoServer echo;
  FaultProxy proxy("localhost", echo.port());
  UniqueFd fd = connect_loopback(proxy.port(), 1s);
  ASSERT_TRUE(fd);

  proxy.set_mode(FaultProxy::Mode::delay, 150ms);
  EXPECT_EQ(proxy.mode(), FaultProxy::Mode::delay);
  EXPECT_EQ(proxy.delay(), 150ms);
  auto t0 = Clock::now();
  ASSERT_TRUE(send_all(fd.get(), "first,"));
  std::this_thread::sleep_for(20ms);
  ASSERT_TRUE(send_all(fd.get(), "second"));
  auto got = read_some(fd.get(), 12, 3s);
  auto elapsed = Clock::now() - t0;
  EXPECT_EQ(got.data, "first,second");
  // Both directions are delayed: at least 2 x 150 ms for the round trip
  // (+20 ms for the second chunk), but not absurdly more.
  EXPECT_GE(elapsed, 320ms);
  EXPECT_LT(elapsed, 2s);

  proxy.set_mode(FaultProxy::Mode::pass);
  t0 = Clock::now();
  ASSERT_TRUE(send_all(fd.get(), "quick"));
  EXPECT_EQ(read_some(fd.get(), 5, 2s).data, "quick");
  EXPECT_LT(Clock::now() - t0, 100ms);
}

TEST(SupportFaultProxy, BlackholeDropsSilentlyAndHealsWithResetOfDamagedConnections) {
  EchoServer echo;
  FaultProxy proxy("127.0.0.1", echo.port());
  UniqueFd busy = connect_loopback(proxy.port(), 1s);
  UniqueFd idle = connect_loopback(proxy.port(), 1s);
  ASSERT_TRUE(busy && idle);
  ASSERT_TRUE(send_all(busy.get(), "x"));
  ASSERT_EQ(read_some(busy.get(), 1, 2s).data, "x");
  ASSERT_TRUE(send_all(idle.get(), "y"));
  ASSERT_EQ(read_some(idle.get(), 1, 2s).data, "y");

  proxy.set_mode(FaultProxy::Mode::blackhole);
  ASSERT_TRUE(send_all(busy.get(), "lost"));
  auto r = read_some(busy.get(), 1, 300ms);
  EXPECT_TRUE(r.timed_out) << "no answer and no close during the partition";
  EXPECT_TRUE(r.data.empty());
  EXPECT_EQ(proxy.connections(), 2u);

  // New connections are accepted but lead nowhere.
  UniqueFd late = connect_loopback(proxy.port(), 1s);
  ASSERT_TRUE(late);
  ASSERT_TRUE(send_all(late.get(), "hello?"));
  EXPECT_TRUE(read_some(late.get(), 1, 200ms).timed_out);
  EXPECT_EQ(proxy.connections(), 3u);

  proxy.set_mode(FaultProxy::Mode::pass);
  // Damaged streams are aborted, the idle one carries on.
  EXPECT_TRUE(peer_closed_or_reset(read_some(busy.get(), 1, 2s)));
  EXPECT_TRUE(peer_closed_or_reset(read_some(late.get(), 1, 2s)));
  ASSERT_TRUE(send_all(idle.get(), "still here"));
  EXPECT_EQ(read_some(idle.get(), 10, 2s).data, "still here");
  UniqueFd fresh = connect_loopback(proxy.port(), 1s);
  ASSERT_TRUE(fresh);
  ASSERT_TRUE(send_all(fresh.get(), "new"));
  EXPECT_EQ(read_some(fresh.get(), 3, 2s).data, "new");
}

TEST(SupportFaultProxy, ResetAbortsExistingAndNewConnections) {
  EchoServer echo;
  FaultProxy proxy("127.0.0.1", echo.port());
  UniqueFd fd = connect_loopback(proxy.port(), 1s);
  ASSERT_TRUE(fd);
  ASSERT_TRUE(send_all(fd.get(), "ping"));
  ASSERT_EQ(read_some(fd.get(), 4, 2s).data, "ping");

  proxy.set_mode(FaultProxy::Mode::reset);
  EXPECT_EQ(proxy.connections(), 0u); // set_mode() waits until it is applied
  auto r = read_some(fd.get(), 1, 2s);
  EXPECT_EQ(r.error, ECONNRESET) << "eof=" << r.eof << " timed_out=" << r.timed_out;

  const auto before = proxy.accepted();
  // The kernel completes the handshake, then the proxy resets. The RST can
  // win the race with connect_loopback()'s own SO_ERROR check, so a failed
  // connect is as good as a reset seen by the first read.
  if (UniqueFd again = connect_loopback(proxy.port(), 1s)) {
    EXPECT_TRUE(peer_closed_or_reset(read_some(again.get(), 1, 2s)));
  }
  EXPECT_EQ(proxy.accepted(), before + 1);

  // The server side was reset too.
  auto deadline = Clock::now() + 2s;
  while (echo.open_connections() != 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(echo.open_connections(), 0u);

  proxy.set_mode(FaultProxy::Mode::pass);
  UniqueFd fresh = connect_loopback(proxy.port(), 1s);
  ASSERT_TRUE(fresh);
  ASSERT_TRUE(send_all(fresh.get(), "back"));
  EXPECT_EQ(read_some(fresh.get(), 4, 2s).data, "back");
}

TEST(SupportFaultProxy, UnreachableTargetResetsClient) {
  const int dead_port = free_loopback_port(); // nothing listens there
  FaultProxy proxy("127.0.0.1", dead_port);
  // Either the reset already beats connect_loopback()'s check, or the first
  // read sees it.
  if (UniqueFd fd = connect_loopback(proxy.port(), 1s)) {
    EXPECT_TRUE(peer_closed_or_reset(read_some(fd.get(), 1, 2s)));
  }
  // The counters are published by the proxy thread a moment after the reset.
  auto deadline = Clock::now() + 2s;
  while ((proxy.accepted() == 0 || proxy.connections() != 0) && Clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(proxy.accepted(), 1u);
  EXPECT_EQ(proxy.connections(), 0u);
}

} // namespace
} // namespace kvelect::testing
