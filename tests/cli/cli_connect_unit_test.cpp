// SPDX-License-Identifier: Apache-2.0
// The CLI's JSON reader (tools/json_parse.hpp), NATS context loading (tools/nats_context.hpp)
// and connection event lines (tools/connection_events.hpp), without a server.
#include "connection_events.hpp"
#include "json_parse.hpp"
#include "nats_context.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>
#include <cstdlib>
#include <fstream>

namespace kvelect::cli {
namespace {

TEST(JsonParse, ReadsObjectsStringsEscapesAndNumbers) {
  std::string error;
  const auto v = parse_json(R"( {"a": "x\"\\\/\n\u00e9\ud83d\ude00", "b": [1, -2.5e3, true, null],
                               "c": {"d": false}, "a2": ""} )",
                            &error);
  ASSERT_TRUE(v) << error;
  ASSERT_EQ(v->type, JsonValue::Type::object);
  EXPECT_EQ(v->object.at("a").string, "x\"\\/\n\xc3\xa9\xf0\x9f\x98\x80");
  const auto& b = v->object.at("b").array;
  ASSERT_EQ(b.size(), 4U);
  EXPECT_EQ(b[1].number, -2500);
  EXPECT_TRUE(b[2].boolean);
  EXPECT_EQ(b[3].type, JsonValue::Type::null);
  EXPECT_FALSE(v->object.at("c").object.at("d").boolean);
}

TEST(JsonParse, ErrorsSayWhere) {
  for (const char* bad :
       {"", "{", "{\"a\" 1}", "{\"a\": tru}", "[1,]", "\"\\x\"", "{} x", "\"unterminated", "01x"}) {
    std::string error;
    EXPECT_FALSE(parse_json(bad, &error)) << bad;
    EXPECT_NE(error.find("line 1, column"), std::string::npos) << bad << ": " << error;
  }
  std::string error;
  EXPECT_FALSE(parse_json("{\n  \"a\": ,\n}", &error));
  EXPECT_NE(error.find("line 2, column 8"), std::string::npos) << error;
}

class ContextFiles : public ::testing::Test {
protected:
  void SetUp() override {
    char pattern[] = "/tmp/kvelect-context-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    ::mkdir((dir_ + "/context").c_str(), 0700);
  }
  void TearDown() override {
    [[maybe_unused]] const int rc = std::system(("rm -rf '" + dir_ + "'").c_str());
  }
  void write(const std::string& relative, const std::string& text) {
    std::ofstream(dir_ + "/" + relative, std::ios::trunc) << text;
  }
  std::string dir_;
};

TEST_F(ContextFiles, NoneSelectedIsNoContext) {
  EXPECT_FALSE(load_nats_context("", dir_));
  write("context.txt", "  \n");
  EXPECT_FALSE(load_nats_context("", dir_));
}

TEST_F(ContextFiles, SelectedAndNamedContexts) {
  const char* home = std::getenv("HOME");
  write("context/one.json", R"({"description": "x", "url": "nats://a:4222,nats://b:4222",
    "user": "u", "password": "p", "token": "", "creds": "~/u.creds", "nkey": null,
    "cert": "/c.pem", "key": "/k.pem", "ca": "/ca.pem", "color_scheme": "", "tls_first": false})");
  write("context/two.json", R"({"token": "t"})");
  write("context.txt", "one\n");
  auto ctx = load_nats_context("", dir_);
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ctx->name, "one");
  EXPECT_EQ(ctx->url, "nats://a:4222,nats://b:4222");
  EXPECT_EQ(ctx->user, "u");
  EXPECT_EQ(ctx->password, "p");
  if (home != nullptr) {
    EXPECT_EQ(ctx->creds, std::string(home) + "/u.creds");
  }
  EXPECT_EQ(ctx->ca, "/ca.pem");
  ctx = load_nats_context("two", dir_);
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ctx->token, "t");
  ctx = load_nats_context(dir_ + "/context/two.json", "/nonexistent");
  ASSERT_TRUE(ctx);
  EXPECT_EQ(ctx->name, "two");
}

TEST_F(ContextFiles, ProblemsAreNamed) {
  auto message = [&](const std::string& requested) -> std::pair<std::string, bool> {
    try {
      load_nats_context(requested, dir_);
    } catch (const ContextError& e) {
      return {e.what(), e.usage()};
    }
    return {"", false};
  };
  EXPECT_EQ(message("nosuch").second, true);
  EXPECT_NE(message("nosuch").first.find("unknown NATS context 'nosuch'"), std::string::npos);
  EXPECT_NE(message("../x").first.find("invalid NATS context name"), std::string::npos);
  write("context/typed.json", R"({"url": 4222})");
  EXPECT_NE(message("typed").first.find("\"url\" must be a string, not a number"),
            std::string::npos);
  write("context/nsc.json", R"({"nsc": "nsc://op/acct/user"})");
  EXPECT_NE(message("nsc").first.find("\"nsc\""), std::string::npos);
  write("context/first.json", R"({"tls_first": true})");
  EXPECT_NE(message("first").first.find("tls_first"), std::string::npos);
  write("context/array.json", "[]");
  EXPECT_NE(message("array").first.find("not a JSON object"), std::string::npos);
  write("context.txt", "gone");
  EXPECT_NE(message("").first.find("selected NATS context 'gone'"), std::string::npos);
  EXPECT_FALSE(message("").second);
}

TEST(ConnectionEventLines, TextAndJson) {
  ConnectionEventLine line;
  line.event.kind = ConnectionEvent::Kind::disconnected;
  line.event.server = "nats://127.0.0.1:4222";
  line.event.error = "Connection refused";
  line.state = State::Leader;
  EXPECT_NE(connection_event_campaign_text(line).find(
                "disconnected leader    lost the connection to nats://127.0.0.1:4222: "
                "Connection refused; reconnecting"),
            std::string::npos)
      << connection_event_campaign_text(line);
  const std::string json = connection_event_campaign_json(line, "e", "m");
  EXPECT_NE(json.find(R"("election": "e", "member": "m", "event": "disconnected", "state": )"
                      R"("leader", "server": "nats://127.0.0.1:4222", "error": )"
                      R"("Connection refused"})"),
            std::string::npos)
      << json;
  line.event.kind = ConnectionEvent::Kind::reconnected;
  line.event.error.clear();
  EXPECT_EQ(connection_event_log(line), "kvelect: reconnected to nats://127.0.0.1:4222");
  EXPECT_EQ(connection_event_watch_json(line).find("\"error\""), std::string::npos);
}

} // namespace
} // namespace kvelect::cli
