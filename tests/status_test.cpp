// SPDX-License-Identifier: Apache-2.0
// lib/status.cpp: the one table from cnats statuses to kvelect::Errc, and the error texts that go
// into messages. No server: cnats records its errors per thread whether or not one answers.
#include "status.hpp"

#include <gtest/gtest.h>

#include <nats/nats.h>

namespace kvelect::detail {
namespace {

TEST(Status, TableMapsTheStatusesTheLibraryMeetsToCodes) {
  EXPECT_EQ(errc_of(NATS_OK), Errc::ok);
  EXPECT_EQ(errc_of(NATS_TIMEOUT), Errc::timeout);
  EXPECT_EQ(errc_of(NATS_CONNECTION_CLOSED), Errc::connection_closed);
  EXPECT_EQ(errc_of(NATS_NOT_FOUND), Errc::not_found);
  EXPECT_EQ(errc_of(NATS_NO_SERVER), Errc::not_found);
  EXPECT_EQ(errc_of(NATS_INVALID_ARG), Errc::invalid_argument);
  EXPECT_EQ(errc_of(NATS_CONNECTION_AUTH_FAILED), Errc::permission_denied);
  EXPECT_EQ(errc_of(NATS_NOT_PERMITTED), Errc::permission_denied);
  EXPECT_EQ(errc_of(NATS_ERR), Errc::nats_error);
  EXPECT_TRUE(link_failure(NATS_CONNECTION_DISCONNECTED));
  EXPECT_FALSE(link_failure(NATS_TIMEOUT));
}

// A failed cnats call sets this thread's last error; a later call that fails with another status
// without setting one must not be described with the older text.
TEST(Status, AnOlderCallsErrorTextIsNotReused) {
  natsOptions* options = nullptr;
  ASSERT_EQ(natsOptions_Create(&options), NATS_OK);
  // A negative timeout, which cnats refuses: the thread's last error is NATS_INVALID_ARG now.
  const natsStatus refused = natsOptions_SetTimeout(options, -1);
  natsOptions_Destroy(options);
  ASSERT_EQ(refused, NATS_INVALID_ARG);
  natsStatus recorded = NATS_OK;
  const char* text = nats_GetLastError(&recorded);
  ASSERT_EQ(recorded, NATS_INVALID_ARG);
  ASSERT_NE(text, nullptr);
  EXPECT_FALSE(fresh_error_text(NATS_INVALID_ARG).empty());
  EXPECT_EQ(fresh_error_text(NATS_TIMEOUT), "");
  EXPECT_EQ(failure_message(NATS_TIMEOUT, fresh_error_text(NATS_TIMEOUT)),
            "no reply within the request timeout");
}

TEST(Status, MessagesNeverRepeatTheStatusLabel) {
  EXPECT_EQ(failure_message(NATS_TIMEOUT, "Timeout"), "no reply within the request timeout");
  EXPECT_EQ(failure_message(NATS_ERR, "wrong last sequence: 4"), "wrong last sequence: 4");
  EXPECT_EQ(failure_message(NATS_NO_RESPONDERS, "stream leader unknown"),
            "stream leader unknown (no responders (no stream leader, or no such stream))");
  EXPECT_EQ(without_source_location("(conn.c:1905): Authorization Violation"),
            "Authorization Violation");
  EXPECT_EQ(without_source_location("(not a location): kept"), "(not a location): kept");
}

} // namespace
} // namespace kvelect::detail
