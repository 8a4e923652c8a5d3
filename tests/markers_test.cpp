// SPDX-License-Identifier: Apache-2.0
// Expiry markers (docs/protocol.md, "Expiry markers") against a real nats-server: a bucket made
// with them on a server that has them (2.11 and later), a clear refusal on an older one, a
// successor that takes over as soon as the server announces the expiry, and an operator's empty
// value that is not taken for a marker. Which tests run depends on the server the fixture starts
// (KVELECT_NATS_SERVER; `./dev servers` fetches 2.9, 2.10 and 2.15).
#include "common.hpp"

#include <fmt/format.h>

#include <atomic>

namespace kvelect::testing {
namespace {

using Clock = std::chrono::steady_clock;

bool server_has_markers() { return nats_server_version().at_least(2, 11); }

class MarkersTest : public ::testing::Test {
protected:
  void SetUp() override {
    KVELECT_REQUIRE_NATS_SERVER();
    server_ = std::make_unique<NatsServer>();
    connection_ = std::make_unique<Connection>(connect_to(server_->url()));
  }
  void TearDown() override {
    bucket_.reset();
    connection_.reset();
    server_.reset();
  }

  BucketConfig marker_config(std::chrono::milliseconds ttl) const {
    BucketConfig config;
    config.name = unique_name("M");
    config.ttl = ttl;
    config.storage = Storage::memory;
    config.expiry_markers = true;
    config.marker_ttl = 1s;
    return config;
  }

  std::unique_ptr<Election> member(const std::string& name, std::vector<Option> extra = {}) {
    std::vector<Option> options{SkipValidation(), WithStartupSplay(0ms),
                                WithJetStream(connection_->jetstream())};
    for (auto& option : design_options())
      options.push_back(option);
    return std::make_unique<Election>(name, "job", bucket_->get(), concat(options, extra));
  }

  void put(const std::string& value) {
    std::uint64_t revision = 0;
    ASSERT_EQ(
        kvStore_Put(&revision, bucket_->get(), "job", value.data(), static_cast<int>(value.size())),
        NATS_OK);
  }

  std::unique_ptr<NatsServer> server_;
  std::unique_ptr<Connection> connection_;
  std::unique_ptr<Bucket> bucket_;
};

TEST_F(MarkersTest, OlderServersRefuseABucketWithMarkers) {
  if (server_has_markers())
    GTEST_SKIP() << "nats-server " << nats_server_version().str() << " has expiry markers";
  try {
    Bucket::create(*connection_, marker_config(5s));
    FAIL() << "a bucket with expiry markers was made on nats-server "
           << nats_server_version().str();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), Errc::not_supported) << error.what();
    EXPECT_NE(std::string(error.what()).find("2.11"), std::string::npos) << error.what();
  }
}

TEST_F(MarkersTest, BucketWithMarkersReportsThem) {
  if (!server_has_markers())
    GTEST_SKIP() << "nats-server " << nats_server_version().str() << " has no expiry markers";
  const BucketConfig config = marker_config(5s);
  bucket_ = std::make_unique<Bucket>(Bucket::create(*connection_, config));
  const BucketInfo info = bucket_->info();
  EXPECT_EQ(info.history, 1);
  EXPECT_EQ(info.ttl, 5s);
  ASSERT_TRUE(info.marker_ttl.has_value());
  EXPECT_EQ(*info.marker_ttl, 1s);
  // Created again with the same settings: accepted; without markers: refused by the server.
  EXPECT_NO_THROW(Bucket::create(*connection_, config));
  BucketConfig plain = config;
  plain.expiry_markers = false;
  EXPECT_THROW(Bucket::create(*connection_, plain), Error);
  // A bucket without markers says so; a plain kvStore* cannot tell.
  BucketConfig other = marker_config(5s);
  other.expiry_markers = false;
  const Bucket without = Bucket::create(*connection_, other);
  ASSERT_TRUE(without.info().marker_ttl.has_value());
  EXPECT_EQ(*without.info().marker_ttl, 0ms);
  EXPECT_FALSE(bucket_info(bucket_->get()).marker_ttl.has_value());
  // Below the server's minimum.
  BucketConfig short_marker = marker_config(5s);
  short_marker.marker_ttl = 500ms;
  try {
    Bucket::create(*connection_, short_marker);
    FAIL() << "a marker TTL of 500 ms was accepted";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), Errc::invalid_option) << error.what();
  }
}

// A holder that died (its key is never renewed) and a candidate that first saw its key half a
// TTL after it was written: without markers the candidate waits one TTL from that sighting; with
// them it takes over as soon as the server removes the key, and without a takeover guard.
TEST_F(MarkersTest, SuccessorWinsRightAfterTheServerExpiresADeadHoldersKey) {
  if (!server_has_markers())
    GTEST_SKIP() << "nats-server " << nats_server_version().str() << " has no expiry markers";
  constexpr auto ttl = 2s;
  bucket_ = std::make_unique<Bucket>(Bucket::create(*connection_, marker_config(ttl)));
  const auto written = Clock::now();
  put("crashed-leader");
  std::this_thread::sleep_for(ttl / 2);

  std::atomic<bool> won{false};
  std::atomic<Clock::rep> won_at{0};
  std::mutex log_mu;
  std::vector<std::string> log;
  auto b = member("b", {OnWon([&] {
                          won_at = Clock::now().time_since_epoch().count();
                          won = true;
                        }),
                        WithDebug([&](std::string_view line) {
                          std::lock_guard lock(log_mu);
                          if (std::getenv("MARKERS_TEST_VERBOSE") != nullptr)
                            fmt::print(stderr, "b: {}\n", line);
                          log.emplace_back(line);
                        })});
  b->start();
  ASSERT_TRUE(eventually([&] { return won.load(); }, 4 * ttl));
  const auto after = Clock::time_point(Clock::duration(won_at.load())) - written;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(after).count();
  // The server removes the key one TTL after it stored it (its expiry timer may run a little
  // late); without the marker the win would come at about 1.5 TTL (3 s).
  EXPECT_GE(after, ttl - 100ms) << ms << " ms";
  EXPECT_LT(after, ttl + 600ms) << ms << " ms";
  b->stop(); // first: its last log lines take log_mu
  std::lock_guard lock(log_mu);
  bool saw_marker = false;
  for (const auto& line : log) {
    EXPECT_EQ(line.find("previous holder's lease"), std::string::npos) << line;
    saw_marker = saw_marker || line.find("(marker)") != std::string::npos;
  }
  EXPECT_TRUE(saw_marker) << "no 'key expired ... (marker)' line in the debug log";
}

// An operator's empty value is a value, not a marker: the leader it replaced loses, and no
// candidate takes the key before that value expires (then, with its marker, at once).
TEST_F(MarkersTest, AnOperatorsEmptyValueIsNotAMarker) {
  if (!server_has_markers())
    GTEST_SKIP() << "nats-server " << nats_server_version().str() << " has no expiry markers";
  constexpr auto ttl = 2s;
  bucket_ = std::make_unique<Bucket>(Bucket::create(*connection_, marker_config(ttl)));
  std::atomic<int> a_lost{0};
  std::atomic<bool> b_won{false};
  std::atomic<Clock::rep> b_won_at{0};
  auto a = member("a", {OnLost([&] { ++a_lost; })});
  a->start();
  ASSERT_TRUE(eventually([&] { return a->is_leader(); }, 5s));
  auto b = member("b", {OnWon([&] {
                    b_won_at = Clock::now().time_since_epoch().count();
                    b_won = true;
                  })});
  b->start();
  std::this_thread::sleep_for(200ms);
  a->stop(); // releases; b takes over at once
  ASSERT_TRUE(eventually([&] { return b_won.load(); }, 5s));
  b_won = false;
  // c has never led, so no cool-down holds it back.
  std::atomic<bool> c_won{false};
  std::atomic<Clock::rep> c_won_at{0};
  auto c = member("c", {OnWon([&] {
                    c_won_at = Clock::now().time_since_epoch().count();
                    c_won = true;
                  })});
  c->start();
  std::this_thread::sleep_for(200ms);
  // Now the empty put, which removes b's leadership.
  const auto put_at = Clock::now();
  put("");
  ASSERT_TRUE(eventually([&] { return !b->is_leader(); }, 2s));
  std::this_thread::sleep_for(ttl * 3 / 4);
  EXPECT_FALSE(b_won.load()) << "b took a key holding an operator's empty value";
  EXPECT_FALSE(c_won.load()) << "c took a key holding an operator's empty value";
  // The empty value expires one TTL after the put; its marker frees the key.
  ASSERT_TRUE(eventually([&] { return b_won.load() || c_won.load(); }, 3 * ttl));
  const auto won_at = b_won.load() ? b_won_at.load() : c_won_at.load();
  const auto after = Clock::time_point(Clock::duration(won_at)) - put_at;
  EXPECT_GE(after, ttl - 100ms);
  EXPECT_LT(after, ttl + 600ms);
  c->stop();
  b->stop();
}

} // namespace
} // namespace kvelect::testing
