// SPDX-License-Identifier: Apache-2.0
// Expiry markers against a real nats-server: a bucket made with them on a server that has them
// (2.11 and later), a clear refusal on an older one. Which tests run depends on the server the
// fixture starts (KVELECT_NATS_SERVER; `./dev servers` fetches 2.9, 2.10 and 2.15).
#include "common.hpp"

#include <fmt/format.h>

namespace kvelect::testing {
namespace {

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

} // namespace
} // namespace kvelect::testing
