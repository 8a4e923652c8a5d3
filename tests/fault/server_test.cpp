// SPDX-License-Identifier: Apache-2.0
// Fault injection on the servers: a nats-server paused (SIGSTOP) longer than the TTL, killed and
// restarted on the same store, and nodes of a 3-node JetStream cluster killed under an R3
// bucket (the node the leader talks to, then the stream's leader). Members run in processes of
// their own; the merged history must never show two leaders at once.
#include "fault_common.hpp"

#include <fmt/format.h>

namespace kvelect::testing::fault {
namespace {

constexpr std::int64_t kMs = 1'000'000;

std::int64_t ns_of(std::chrono::nanoseconds d) { return d.count(); }

std::string await_single_leader(const History& history, std::chrono::milliseconds timeout = 15s) {
  std::string leader;
  eventually(
      [&] {
        const auto leaders = history.leaders();
        if (leaders.size() == 1)
          leader = leaders.front();
        return leaders.size() == 1;
      },
      timeout);
  return leader;
}

// Exactly one member believes it leads, and the key on the server names it.
bool settled(const History& history, kvStore* bucket, std::string* leader_out = nullptr) {
  const auto leaders = history.leaders();
  if (leaders.size() != 1)
    return false;
  try {
    if (read_leader(bucket, "job") != leaders.front())
      return false;
  } catch (const Error&) {
    return false;
  }
  if (leader_out != nullptr)
    *leader_out = leaders.front();
  return true;
}

void expect_members_alive(std::vector<std::unique_ptr<MemberProcess>>& members) {
  for (auto& m : members)
    EXPECT_TRUE(m->alive()) << m->name() << " died, status " << m->wait_status().value_or(-1)
                            << "\n"
                            << m->stderr_tail();
}

class ServerFaults : public ::testing::Test {
protected:
  void SetUp() override { FAULT_REQUIRE_ENVIRONMENT(); }
};

TEST_F(ServerFaults, ServerPausedLongerThanTheTtl) {
  constexpr auto ttl = 2s;
  NatsServer server;
  auto connection = connect({server.url()});
  const std::string name = bucket_name();
  auto bucket = make_bucket(connection, ttl, name);
  History history;
  TimelineOnFailure guard(history);
  std::vector<std::unique_ptr<MemberProcess>> members;
  for (int i = 0; i < 3; ++i)
    members.push_back(std::make_unique<MemberProcess>(
        member_spec(server.url(), name, fmt::format("m{}", i)), history));
  const std::string old = await_single_leader(history);
  ASSERT_FALSE(old.empty());
  std::this_thread::sleep_for(1s);

  server.pause();
  const std::int64_t paused = monotonic_ns();
  history.note("test", "server paused");
  std::this_thread::sleep_for(ttl + 1500ms);
  const std::int64_t resumed = monotonic_ns();
  history.note("test", "server resumed");
  server.resume();

  // The leader's lease ended while the server was paused: it stood down on its own clock.
  ASSERT_TRUE(eventually([&] { return history.first("lost", paused, old).has_value(); }, 10s))
      << old << " never fired lost";
  const auto lost = history.first("lost", paused, old);
  if (!starved(history, old, paused, lost->ns)) {
    EXPECT_LT(lost->ns, resumed) << "the lease did not end while the server was unreachable";
    // TTL − guard at most, plus scheduling noise.
    EXPECT_LE(lost->ns - paused, ns_of(ttl + 500ms)) << "lost later than a lease can last";
  }
  // Nobody won while the server was paused. (That the old leader's lost came before anyone's
  // won is the history's no-overlap check.)
  const auto first_won = history.wait_first("won", paused, 15s);
  ASSERT_TRUE(first_won.has_value()) << "nobody won after the server resumed";
  EXPECT_GT(first_won->ns, resumed);
  std::printf("[fault] server paused: %s lost %.1f ms after the pause; %s won %.1f ms after "
              "the resume\n",
              old.c_str(), static_cast<double>(lost->ns - paused) / 1e6, first_won->member.c_str(),
              static_cast<double>(first_won->ns - resumed) / 1e6);
  // Eventually exactly one leader again.
  ASSERT_TRUE(eventually([&] { return settled(history, bucket.get()); }, 15s));
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(eventually([&] { return settled(history, bucket.get()); }, 10s));
  expect_members_alive(members);
  expect_consistent(history, "server_paused");
}

TEST_F(ServerFaults, ServerKilledAndRestartedOnTheSameStore) {
  constexpr auto ttl = 2s;
  NatsServer server;
  auto connection = connect({server.url()});
  const std::string name = bucket_name();
  // File storage: the bucket must survive the crash.
  auto bucket = make_bucket(connection, ttl, name, Storage::file);
  History history;
  TimelineOnFailure guard(history);
  std::vector<std::unique_ptr<MemberProcess>> members;
  for (int i = 0; i < 3; ++i)
    members.push_back(std::make_unique<MemberProcess>(
        member_spec(server.url(), name, fmt::format("m{}", i)), history));
  const std::string old = await_single_leader(history);
  ASSERT_FALSE(old.empty());
  std::this_thread::sleep_for(1s);

  server.kill();
  const std::int64_t killed = monotonic_ns();
  history.note("test", "server killed");
  std::this_thread::sleep_for(ttl + 500ms);
  // The leader stood down on its own clock while no server answered.
  ASSERT_TRUE(eventually([&] { return history.leaders().empty(); }, 10s))
      << old << " still leads " << (monotonic_ns() - killed) / kMs << " ms after the server died";
  const auto lost = history.first("lost", killed, old);
  ASSERT_TRUE(lost.has_value());
  if (!starved(history, old, killed, lost->ns)) {
    EXPECT_LE(lost->ns - killed, ns_of(ttl + 500ms)); // TTL − guard, plus scheduling noise
  }

  server.restart();
  const std::int64_t restarted = monotonic_ns();
  history.note("test", "server restarted");
  std::string leader;
  ASSERT_TRUE(eventually([&] { return settled(history, bucket.get(), &leader); }, 30s))
      << "no leader after the restart";
  std::printf("[fault] server restart: %s leads %.1f ms after the restart\n", leader.c_str(),
              static_cast<double>(history.first("won", restarted)->ns - restarted) / 1e6);
  std::this_thread::sleep_for(3s);
  EXPECT_TRUE(eventually([&] { return settled(history, bucket.get()); }, 10s));
  expect_members_alive(members);
  // No burst of callbacks.
  const auto report = expect_consistent(history, "server_restart");
  for (const auto& [member, wins] : report.wins_by_member)
    EXPECT_LT(wins, 5) << member << " won " << wins << " times";
}

// A 3-node cluster and an R3 bucket. Each member is given every node's URL, its own node first
// (it connects there and fails over to the others).
TEST_F(ServerFaults, ClusterNodesKilled) {
  constexpr auto ttl = 2s;
  NatsCluster cluster(3);
  auto connection = connect(cluster.urls());
  const std::string name = bucket_name();
  auto bucket = make_bucket(connection, ttl, name, Storage::file, 3);
  ASSERT_EQ(bucket.info().replicas, 3);
  History history;
  TimelineOnFailure guard(history);
  std::vector<std::unique_ptr<MemberProcess>> members;
  const auto urls = cluster.urls();
  for (int i = 0; i < 3; ++i) {
    std::vector<std::string> own_node_first;
    for (int j = 0; j < 3; ++j)
      own_node_first.push_back(urls[static_cast<std::size_t>((i + j) % 3)]);
    members.push_back(std::make_unique<MemberProcess>(
        fault_member_spec(own_node_first, name, fmt::format("m{}", i)), history));
  }
  std::string leader;
  ASSERT_TRUE(eventually([&] { return settled(history, bucket.get(), &leader); }, 20s));
  std::this_thread::sleep_for(1s);

  // 1. The node the leader is connected to.
  int node = -1;
  ASSERT_TRUE(eventually([&] { return (node = node_with_client(cluster, leader)) >= 0; }, 5s));
  history.note("test",
               "kill node " + cluster.node(node).server_name() + " (leader " + leader + "'s node)");
  const std::int64_t t1 = monotonic_ns();
  cluster.node(node).kill();
  std::this_thread::sleep_for(ttl);
  ASSERT_TRUE(eventually([&] { return settled(history, bucket.get(), &leader); }, 30s))
      << "no leader after the leader's node died";
  std::printf("[fault] cluster: node %d (the leader's) killed; %s leads %.1f ms later\n", node,
              leader.c_str(), static_cast<double>(monotonic_ns() - t1) / 1e6);
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(eventually([&] { return settled(history, bucket.get()); }, 10s));
  expect_consistent(history, "cluster_leader_node_killed", t1);

  cluster.node(node).restart();
  history.note("test", "node restarted");
  if (!cluster.wait_healthy(30s)) {
    // nats-server 2.10.27 once left the restarted node "not current with the meta leader" for
    // the whole 30 s (its log: "Filestore [_meta_] Stream state outdated ... will rebuild"; a
    // fresh-clone CI run of 61cfe6d): a server-side stall, not the election's. Restart the node
    // once more before giving up.
    history.note("test", "cluster not healthy 30 s after the restart: restarting the node again");
    cluster.node(node).restart();
    ASSERT_TRUE(cluster.wait_healthy(30s)) << "the cluster did not recover";
  }
  ASSERT_TRUE(eventually([&] { return settled(history, bucket.get(), &leader); }, 20s));

  // 2. The stream's leader node.
  std::string stream_leader_name;
  ASSERT_TRUE(eventually(
      [&] { return !(stream_leader_name = stream_leader(connection, "KV_" + name)).empty(); },
      10s));
  const int stream_node = node_index(cluster, stream_leader_name);
  ASSERT_GE(stream_node, 0) << stream_leader_name;
  history.note("test", "kill node " + stream_leader_name + " (the stream leader)");
  const std::int64_t t2 = monotonic_ns();
  cluster.node(stream_node).kill();
  std::this_thread::sleep_for(ttl);
  ASSERT_TRUE(eventually([&] { return settled(history, bucket.get(), &leader); }, 30s))
      << "no leader after the stream leader's node died";
  std::printf("[fault] cluster: node %d (stream leader) killed; %s leads %.1f ms later\n",
              stream_node, leader.c_str(), static_cast<double>(monotonic_ns() - t2) / 1e6);
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(eventually([&] { return settled(history, bucket.get()); }, 10s));
  expect_members_alive(members);
  const auto report = expect_consistent(history, "cluster_stream_leader_killed", t2);
  for (const auto& [member, wins] : report.wins_by_member)
    EXPECT_LT(wins, 6) << member << " won " << wins << " times";
}

} // namespace
} // namespace kvelect::testing::fault
