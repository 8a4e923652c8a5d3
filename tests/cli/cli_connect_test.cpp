// SPDX-License-Identifier: Apache-2.0
// The kvelect binary's connection flags, environment variables and NATS contexts against real
// nats-servers: TLS, mutual TLS, user/password, token, NKey (credentials made at test time by
// tests/support/test_pki.hpp), credentials files (decentralized JWT authentication,
// tests/support/test_jwt.hpp), context selection and precedence; and the connection event lines
// of campaign, watch, run and file when the server goes away and comes back.
#include "cli_harness.hpp"

#include "nats_server.hpp"
#include "test_jwt.hpp"
#include "test_pki.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <cstdlib>
#include <memory>
#include <regex>
#include <set>

namespace kvelect::clitest {
namespace {

using kvelect::testing::NatsServer;
using kvelect::testing::ServerOptions;
using kvelect::testing::TestPki;

// Sets environment variables for the kvelect processes started while it lives (they inherit
// the test's environment), and restores the previous values.
class ScopedEnv {
public:
  ScopedEnv(std::initializer_list<std::pair<std::string, std::string>> vars) {
    for (const auto& [name, value] : vars) {
      const char* old = std::getenv(name.c_str()); // NOLINT(concurrency-mt-unsafe)
      saved_.emplace_back(name, old != nullptr ? std::optional<std::string>(old) : std::nullopt);
      ::setenv(name.c_str(), value.c_str(), 1); // NOLINT(concurrency-mt-unsafe)
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : saved_) {
      if (value)
        ::setenv(name.c_str(), value->c_str(), 1); // NOLINT(concurrency-mt-unsafe)
      else
        ::unsetenv(name.c_str()); // NOLINT(concurrency-mt-unsafe)
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class CliConnect : public ::testing::Test {
protected:
  void SetUp() override {
    KVELECT_REQUIRE_NATS_SERVER();
    ASSERT_FALSE(kvelect_bin().empty()) << "KVELECT_BIN is not set";
    ASSERT_FALSE(dir_.path().empty());
    // No context of the developer's may leak in: an empty configuration directory.
    config_ = dir_.file("config");
    ::mkdir(config_.c_str(), 0700);
    ::mkdir((config_ + "/nats").c_str(), 0700);
    ::mkdir((config_ + "/nats/context").c_str(), 0700);
  }
  std::unique_ptr<NatsServer> server(const std::string& config) {
    ServerOptions options;
    options.config = config;
    return std::make_unique<NatsServer>(options);
  }
  // `bucket add` (memory storage): a connect and a JetStream round trip.
  Result bucket_add(const std::vector<std::string>& flags) {
    ScopedEnv env({{"XDG_CONFIG_HOME", config_}});
    return run_kvelect(
        std::vector<std::string>{"bucket", "add", "CONNECT", "--ttl", "5s", "--storage", "memory"} +
            flags,
        dir_.path());
  }
  void write_context(const std::string& name, const std::string& json) {
    write_file(config_ + "/nats/context/" + name + ".json", json);
  }
  void select_context(const std::string& name) {
    write_file(config_ + "/nats/context.txt", name + "\n");
  }

  TempDir dir_;
  std::string config_;
};

TEST_F(CliConnect, TlsAndMutualTlsWithFlagsAndEnvironment) {
  const TestPki pki(dir_.path());
  ASSERT_TRUE(pki.ok()) << pki.error();
  auto s = server(pki.server_tls_block(true));
  Result r = bucket_add({"--server", s->url(), "--tlsca", pki.ca, "--tlscert", pki.client_cert,
                         "--tlskey", pki.client_key});
  EXPECT_EQ(r.code, 0) << r.output();
  EXPECT_TRUE(contains(r.out, "bucket 'CONNECT' ready")) << r.output();
  {
    ScopedEnv env({{"NATS_URL", s->url()},
                   {"NATS_CA", pki.ca},
                   {"NATS_CERT", pki.client_cert},
                   {"NATS_KEY", pki.client_key}});
    r = bucket_add({});
    EXPECT_EQ(r.code, 0) << r.output();
  }
  // No client certificate: the server refuses the handshake; a clear error, exit 1.
  r = bucket_add({"--server", s->url(), "--tlsca", pki.ca});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "kvelect: error: cannot connect to " + s->url())) << r.output();
  EXPECT_TRUE(contains(r.err, "without a client certificate")) << r.output();
  // A CA that did not sign the server's certificate.
  r = bucket_add({"--server", s->url(), "--tlsca", pki.other_ca, "--tlscert", pki.client_cert,
                  "--tlskey", pki.client_key});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "certificate")) << r.output();
  // A certificate without its key: a usage problem named before connecting.
  r = bucket_add({"--server", s->url(), "--tlsca", pki.ca, "--tlscert", pki.client_cert});
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "--tlscert needs --tlskey")) << r.output();
  r = bucket_add({"--server", s->url(), "--tlsca", dir_.file("missing.pem")});
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "--tlsca")) << r.output();
}

TEST_F(CliConnect, UserPasswordAndToken) {
  auto users = server("authorization { users = [ {user: alice, password: s3cret} ] }\n");
  Result r = bucket_add({"--server", users->url(), "--user", "alice", "--password", "s3cret"});
  EXPECT_EQ(r.code, 0) << r.output();
  {
    ScopedEnv env({{"NATS_USER", "alice"}, {"NATS_PASSWORD", "s3cret"}});
    r = bucket_add({"--server", users->url()});
    EXPECT_EQ(r.code, 0) << r.output();
  }
  r = bucket_add({"--server", users->url(), "--user", "alice", "--password", "wrong"});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "Authorization Violation")) << r.output();
  EXPECT_FALSE(contains(r.err, "(")) << "plain text expected: " << r.output();

  auto token = server("authorization { token: \"t0k3n-for-kvelect\" }\n");
  r = bucket_add({"--server", token->url(), "--token", "t0k3n-for-kvelect"});
  EXPECT_EQ(r.code, 0) << r.output();
  // As in the nats CLI, --user without --password is a token.
  r = bucket_add({"--server", token->url(), "--user", "t0k3n-for-kvelect"});
  EXPECT_EQ(r.code, 0) << r.output();
  {
    ScopedEnv env({{"NATS_TOKEN", "t0k3n-for-kvelect"}});
    r = bucket_add({"--server", token->url()});
    EXPECT_EQ(r.code, 0) << r.output();
  }
  r = bucket_add({"--server", token->url(), "--token", "t0k3n-for-kvelect", "--user", "alice",
                  "--password", "s3cret"});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "one way to authenticate")) << r.output();
}

TEST_F(CliConnect, NkeySeedFile) {
  std::string error;
  const auto key = kvelect::testing::make_user_nkey(dir_.path(), &error);
  ASSERT_TRUE(key) << error;
  auto s = server("authorization { users = [ {nkey: " + key->public_key + "} ] }\n");
  const std::string seed = dir_.file("user.nk");
  write_file(seed, key->seed + "\n");
  Result r = bucket_add({"--server", s->url(), "--nkey", seed});
  EXPECT_EQ(r.code, 0) << r.output();
  {
    ScopedEnv env({{"NATS_NKEY", seed}});
    r = bucket_add({"--server", s->url()});
    EXPECT_EQ(r.code, 0) << r.output();
  }
  r = bucket_add({"--server", s->url()});
  EXPECT_EQ(r.code, 1) << r.output();
}

// A server in operator mode (JWTs, a memory resolver): --creds, NATS_CREDS and a context's
// "creds" connect; a missing or broken creds file is named; a user of an account the server
// does not know is refused with the server's reason.
TEST_F(CliConnect, CredentialsFileFromFlagEnvironmentAndContext) {
  const kvelect::testing::TestOperator op(dir_.path());
  if (!kvelect::testing::TestOperator::available())
    GTEST_SKIP() << op.error();
  ASSERT_TRUE(op.ok()) << op.error();
  auto s = server(op.server_config());
  const std::string creds = op.write_user_creds(dir_.file("user.creds"));
  Result r = bucket_add({"--server", s->url(), "--creds", creds});
  EXPECT_EQ(r.code, 0) << r.output();
  EXPECT_TRUE(contains(r.out, "bucket 'CONNECT' ready")) << r.output();
  {
    ScopedEnv env({{"NATS_CREDS", creds}});
    r = bucket_add({"--server", s->url()});
    EXPECT_EQ(r.code, 0) << r.output();
  }
  write_context("jwt", "{\"url\": \"" + s->url() + "\", \"creds\": \"" + creds + "\"}");
  r = bucket_add({"--context", "jwt"});
  EXPECT_EQ(r.code, 0) << r.output();
  // A campaign through the context: JetStream KV works for the user, not only the connect.
  {
    ScopedEnv env({{"XDG_CONFIG_HOME", config_}});
    Kvelect campaign({"campaign", "--context", "jwt", "--bucket", "CONNECT", "--json", "--name",
                      "a", "--splay", "0", "e"},
                     dir_.path(), "campaign");
    EXPECT_TRUE(eventually([&] { return contains(campaign.out(), "\"event\": \"won\""); }))
        << campaign.output();
    campaign.signal(SIGTERM);
    EXPECT_EQ(campaign.wait(20s), 0) << campaign.output();
  }

  // Without credentials the server refuses (operator mode has no anonymous users).
  r = bucket_add({"--server", s->url()});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "Authorization Violation")) << r.output();
  // A missing file: a usage problem naming it; the same through the context.
  const std::string missing = dir_.file("missing.creds");
  r = bucket_add({"--server", s->url(), "--creds", missing});
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "missing.creds")) << r.output();
  write_context("gone", "{\"url\": \"" + s->url() + "\", \"creds\": \"" + missing + "\"}");
  r = bucket_add({"--context", "gone"});
  EXPECT_NE(r.code, 0) << r.output();
  EXPECT_TRUE(contains(r.err, "missing.creds")) << r.output();
  // A file that holds no credentials: a runtime error naming it.
  const std::string garbage = dir_.file("garbage.creds");
  write_file(garbage, "not a credentials file\n");
  r = bucket_add({"--server", s->url(), "--creds", garbage});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "garbage.creds")) << r.output();
  // A well-formed file of an account this server does not trust: refused by the server.
  const std::string stranger = op.write_unknown_account_creds(dir_.file("stranger.creds"));
  r = bucket_add({"--server", s->url(), "--creds", stranger});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "kvelect: error: cannot connect to " + s->url())) << r.output();
  EXPECT_TRUE(contains(r.err, "Authorization Violation")) << r.output();
}

TEST_F(CliConnect, ContextsSelectedNamedAndOverridden) {
  const TestPki pki(dir_.path());
  ASSERT_TRUE(pki.ok()) << pki.error();
  auto s = server(pki.server_tls_block(false) +
                  "authorization { users = [ {user: alice, password: s3cret} ] }\n");
  write_context("good", "{\n  \"description\": \"the test server\",\n  \"url\": \"" + s->url() +
                            "\",\n  \"user\": \"alice\",\n  \"password\": \"s3cret\",\n"
                            "  \"ca\": \"" +
                            pki.ca + "\",\n  \"jetstream_domain\": \"\"\n}\n");
  write_context("badpass", "{\"url\": \"" + s->url() +
                               "\", \"user\": \"alice\", \"password\": \"wrong\", \"ca\": \"" +
                               pki.ca + "\"}");
  write_context("nowhere", "{\"url\": \"nats://127.0.0.1:1\", \"user\": \"alice\", "
                           "\"password\": \"s3cret\", \"ca\": \"" +
                               pki.ca + "\"}");
  write_context("domain", "{\"url\": \"" + s->url() + "\", \"jetstream_domain\": \"hub\"}");
  write_context("broken", "{\"url\": ");

  // No selection, no --context: the default server, where nothing listens here.
  Result r = bucket_add({"--server", "nats://127.0.0.1:1"});
  EXPECT_EQ(r.code, 1) << r.output();

  // The selected context.
  select_context("good");
  r = bucket_add({});
  EXPECT_EQ(r.code, 0) << r.output();
  // --context overrides the selection; NATS_CONTEXT too.
  r = bucket_add({"--context", "badpass"});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "Authorization Violation")) << r.output();
  EXPECT_TRUE(contains(r.err, "NATS context 'badpass'")) << r.output();
  {
    ScopedEnv env({{"NATS_CONTEXT", "badpass"}});
    r = bucket_add({});
    EXPECT_EQ(r.code, 1) << r.output();
    EXPECT_TRUE(contains(r.err, "NATS context 'badpass'")) << r.output();
  }
  // Flags override the context: authentication as a whole, the server URL alone.
  r = bucket_add({"--context", "badpass", "--user", "alice", "--password", "s3cret"});
  EXPECT_EQ(r.code, 0) << r.output();
  r = bucket_add({"--context", "nowhere", "--server", s->url()});
  EXPECT_EQ(r.code, 0) << r.output();
  // A context file given by path.
  r = bucket_add({"--context", config_ + "/nats/context/good.json"});
  EXPECT_EQ(r.code, 0) << r.output();
  // --no-context ignores the selected one (no CA: the TLS server's certificate is refused).
  r = bucket_add({"--no-context", "--server", s->url()});
  EXPECT_EQ(r.code, 1) << r.output();
  // Problems are named.
  r = bucket_add({"--context", "nosuch"});
  EXPECT_EQ(r.code, 2) << r.output();
  EXPECT_TRUE(contains(r.err, "unknown NATS context 'nosuch'")) << r.output();
  r = bucket_add({"--context", "broken"});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "is not valid JSON")) << r.output();
  r = bucket_add({"--context", "domain"});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "\"jetstream_domain\"")) << r.output();
  select_context("gone");
  r = bucket_add({});
  EXPECT_EQ(r.code, 1) << r.output();
  EXPECT_TRUE(contains(r.err, "selected NATS context 'gone'")) << r.output();
}

TEST_F(CliConnect, ConnectionEventLinesWhenTheServerGoesAndComesBack) {
  NatsServer s;
  const std::vector<std::string> common = {"--server", s.url(), "--bucket", "EVENTS"};
  Result r =
      run_kvelect(std::vector<std::string>{"bucket", "add", "--ttl", "1s"} + common, dir_.path());
  ASSERT_EQ(r.code, 0) << r.output();
  const std::vector<std::string> fast = {"--skip-validation", "--splay", "0"};
  Kvelect campaign(std::vector<std::string>{"campaign", "--json", "--name", "a", "e"} + common +
                       fast,
                   dir_.path(), "campaign");
  Kvelect watch(std::vector<std::string>{"watch"} + common, dir_.path(), "watch");
  // --terminate: a lease lost while the server is away stops the command, not run.
  Kvelect run(std::vector<std::string>{"run", "--terminate", "--name", "b", "e2"} + common + fast +
                  lasting_command(),
              dir_.path(), "run");
  ASSERT_TRUE(eventually([&] { return contains(campaign.out(), "\"event\": \"won\""); }))
      << campaign.output();
  ASSERT_TRUE(eventually([&] { return contains(watch.out(), "# watching"); })) << watch.output();
  ASSERT_TRUE(eventually([&] { return contains(run.err(), "started 'sh -c"); })) << run.output();

  s.stop();
  EXPECT_TRUE(eventually([&] { return contains(campaign.out(), "\"event\": \"disconnected\""); }))
      << campaign.output();
  EXPECT_TRUE(eventually([&] { return contains(watch.out(), " disconnected "); }))
      << watch.output();
  EXPECT_TRUE(eventually([&] { return contains(run.err(), "kvelect: lost the connection to"); }))
      << run.output();

  s.restart();
  EXPECT_TRUE(eventually([&] { return contains(campaign.out(), "\"event\": \"reconnected\""); }))
      << campaign.output();
  EXPECT_TRUE(eventually([&] { return contains(watch.out(), "reconnected to " + s.url()); }))
      << watch.output();
  EXPECT_TRUE(eventually([&] { return contains(run.err(), "kvelect: reconnected to " + s.url()); }))
      << run.output();

  // The JSON lines parse as campaign's do, with the server.
  bool checked = false;
  for (const std::string& line : lines_of(campaign.out())) {
    if (json_field(line, "event") != std::optional<std::string>("reconnected"))
      continue;
    EXPECT_EQ(json_field(line, "election"), std::optional<std::string>("e")) << line;
    EXPECT_EQ(json_field(line, "member"), std::optional<std::string>("a")) << line;
    EXPECT_EQ(json_field(line, "server"), std::optional<std::string>(s.url())) << line;
    EXPECT_TRUE(json_field(line, "state")) << line;
    EXPECT_TRUE(json_field(line, "time")) << line;
    checked = true;
  }
  EXPECT_TRUE(checked) << campaign.output();

  // A requested stop prints no connection events of its own.
  campaign.signal(SIGTERM);
  ASSERT_TRUE(campaign.wait());
  EXPECT_FALSE(contains(campaign.out(), "\"event\": \"closed\"")) << campaign.output();
}

// The same events in the other commands' forms: run's and file's logs as JSON (level "warning",
// the event, the server), file's text log, and watch --json.
TEST_F(CliConnect, ConnectionEventLinesOfRunFileAndWatchInJson) {
  NatsServer s;
  const std::vector<std::string> common = {"--server", s.url(), "--bucket", "EVENTS"};
  Result r =
      run_kvelect(std::vector<std::string>{"bucket", "add", "--ttl", "1s"} + common, dir_.path());
  ASSERT_EQ(r.code, 0) << r.output();
  const std::vector<std::string> fast = {"--skip-validation", "--splay", "0"};
  // --terminate: a lease lost while the server is away stops the command, not run.
  Kvelect run(
      std::vector<std::string>{"run", "--terminate", "--log-format", "json", "--name", "a", "e1"} +
          common + fast + lasting_command(),
      dir_.path(), "run");
  Kvelect file_json(std::vector<std::string>{"file", "--log-format", "json", "--name", "b", "e2",
                                             dir_.file("e2.leader")} +
                        common + fast,
                    dir_.path(), "file_json");
  Kvelect file_text(std::vector<std::string>{"file", "--name", "c", "e3", dir_.file("e3.leader")} +
                        common + fast,
                    dir_.path(), "file_text");
  Kvelect watch(std::vector<std::string>{"watch", "--json"} + common, dir_.path(), "watch");
  ASSERT_TRUE(eventually([&] { return contains(run.err(), "\"event\": \"started\""); }))
      << run.output();
  ASSERT_TRUE(eventually([&] { return contains(file_json.err(), "\"event\": \"won\""); }))
      << file_json.output();
  ASSERT_TRUE(eventually([&] { return contains(file_text.err(), "won leadership"); }))
      << file_text.output();
  // watch --json has no header: its first line says it is watching.
  ASSERT_TRUE(eventually([&] { return contains(watch.out(), "\"election\": \"e3\""); }))
      << watch.output();

  const auto has_event = [](const std::string& text, const std::string& event) {
    for (const std::string& line : lines_of(text))
      if (json_field(line, "event") == std::optional<std::string>(event))
        return true;
    return false;
  };
  s.stop();
  for (const auto* json : {&run, &file_json})
    EXPECT_TRUE(eventually([&] { return has_event(json->err(), "disconnected"); }))
        << json->output();
  EXPECT_TRUE(eventually([&] { return has_event(watch.out(), "disconnected"); })) << watch.output();
  EXPECT_TRUE(eventually([&] {
    return contains(file_text.err(), "kvelect: lost the connection to");
  })) << file_text.output();
  s.restart();
  for (const auto* json : {&run, &file_json})
    EXPECT_TRUE(eventually([&] { return has_event(json->err(), "reconnected"); }))
        << json->output();
  EXPECT_TRUE(eventually([&] { return has_event(watch.out(), "reconnected"); })) << watch.output();
  EXPECT_TRUE(eventually([&] {
    return contains(file_text.err(), "kvelect: reconnected to " + s.url());
  })) << file_text.output();

  for (const auto* json : {&run, &file_json})
    for (const std::string& line : lines_of(json->err())) {
      const auto event = json_field(line, "event");
      if (event != std::optional<std::string>("disconnected") &&
          event != std::optional<std::string>("reconnected"))
        continue;
      EXPECT_EQ(json_field(line, "level"), std::optional<std::string>("warning")) << line;
      EXPECT_EQ(json_field(line, "server"), std::optional<std::string>(s.url())) << line;
      EXPECT_TRUE(json_field(line, "time") && json_field(line, "message")) << line;
    }
  for (const std::string& line : lines_of(watch.out()))
    if (json_field(line, "event") == std::optional<std::string>("reconnected")) {
      EXPECT_EQ(json_field(line, "server"), std::optional<std::string>(s.url())) << line;
      EXPECT_TRUE(json_field(line, "time")) << line;
    }
}

// The library's lines (WithLog) reach each command's log with their level: warnings (a failed
// renewal when the server is gone) without --debug, info and debug lines only with it; JSON lines
// carry the level.
TEST_F(CliConnect, LibraryLinesWithTheirLevel) {
  NatsServer s;
  const std::vector<std::string> common = {"--server", s.url(), "--bucket", "LIBLOG"};
  Result r =
      run_kvelect(std::vector<std::string>{"bucket", "add", "--ttl", "1s"} + common, dir_.path());
  ASSERT_EQ(r.code, 0) << r.output();
  const std::vector<std::string> fast = {"--skip-validation", "--splay", "0"};
  Kvelect plain(std::vector<std::string>{"campaign", "--name", "a", "e1"} + common + fast,
                dir_.path(), "plain");
  Kvelect debug(std::vector<std::string>{"campaign", "--json", "--debug", "--name", "b", "e2"} +
                    common + fast,
                dir_.path(), "debug");
  // --terminate: the loss stops the command and run campaigns on.
  Kvelect run(
      std::vector<std::string>{"run", "--terminate", "--log-format", "json", "--name", "c", "e3"} +
          common + fast + lasting_command(),
      dir_.path(), "run");
  ASSERT_TRUE(eventually([&] { return contains(plain.out(), " won "); })) << plain.output();
  ASSERT_TRUE(eventually([&] { return contains(debug.out(), "\"event\": \"won\""); }))
      << debug.output();
  ASSERT_TRUE(eventually([&] { return contains(run.err(), "\"event\": \"started\""); }))
      << run.output();
  // --debug: the library's debug and info lines, as JSON with their level, on stderr.
  const auto library_levels = [](const std::string& text) {
    std::set<std::string> levels;
    for (const std::string& line : lines_of(text))
      if (json_field(line, "event") == std::optional<std::string>("library"))
        levels.insert(json_field(line, "level").value_or("?"));
    return levels;
  };
  EXPECT_TRUE(eventually([&] {
    const auto levels = library_levels(debug.err());
    return levels.count("debug") == 1 && levels.count("info") == 1;
  })) << debug.output();
  // Without it: none of those (the won election is campaign's own line, not the library's).
  EXPECT_FALSE(contains(plain.err(), "kvelect: debug: ")) << plain.output();
  EXPECT_FALSE(contains(plain.err(), "kvelect: info: ")) << plain.output();
  EXPECT_TRUE(library_levels(run.err()).empty()) << run.output();

  s.stop(); // requests fail, the watch falls silent: the library warns
  // e.g. "renewal failed: no reply within the request timeout", "watch silent for two TTLs"
  const std::regex warning(R"(\d{4}-\d\d-\d\dT[\d:.]+Z kvelect: warning: \S)");
  EXPECT_TRUE(eventually([&] { return std::regex_search(plain.err(), warning); }, 30s))
      << plain.output();
  EXPECT_TRUE(eventually([&] { return library_levels(run.err()).count("warning") == 1; }, 30s))
      << run.output();
  EXPECT_TRUE(eventually([&] { return library_levels(debug.err()).count("warning") == 1; }, 30s))
      << debug.output();
  EXPECT_FALSE(contains(plain.err(), "kvelect: debug: ")) << plain.output();
  for (const std::string& line : lines_of(run.err()))
    if (json_field(line, "event") == std::optional<std::string>("library")) {
      EXPECT_TRUE(json_field(line, "level") == std::optional<std::string>("warning") ||
                  json_field(line, "level") == std::optional<std::string>("error"))
          << line;
      EXPECT_EQ(json_field(line, "election"), std::optional<std::string>("e3")) << line;
      EXPECT_TRUE(json_field(line, "time") && json_field(line, "message")) << line;
    }
  // A failed request is said once in run's log: the library's warning, no "error" line of its own.
  EXPECT_FALSE(contains(run.err(), "\"event\": \"error\"")) << run.output();
}

// The server comes back refusing the credentials: cnats closes the connection, campaign prints
// "closed" with the reason, and the campaign ends (exit 1).
TEST_F(CliConnect, ClosedLineWhenTheServerRefusesTheReconnect) {
  auto first = server("authorization { users = [ {user: alice, password: s3cret} ] }\n");
  const std::vector<std::string> common = {"--server", first->url(), "--bucket",   "CLOSED",
                                           "--user",   "alice",      "--password", "s3cret"};
  Result r =
      run_kvelect(std::vector<std::string>{"bucket", "add", "--ttl", "1s"} + common, dir_.path());
  ASSERT_EQ(r.code, 0) << r.output();
  Kvelect campaign(std::vector<std::string>{"campaign", "--json", "--name", "a", "e",
                                            "--skip-validation", "--splay", "0"} +
                       common,
                   dir_.path(), "campaign");
  // --terminate: a loss before the close stops the command but not run.
  Kvelect run(std::vector<std::string>{"run", "--terminate", "--log-format", "json", "--name", "b",
                                       "e2", "--skip-validation", "--splay", "0"} +
                  common + lasting_command(),
              dir_.path(), "run");
  Kvelect file(std::vector<std::string>{"file", "--name", "c", "e3", dir_.file("e3.leader"),
                                        "--skip-validation", "--splay", "0"} +
                   common,
               dir_.path(), "file");
  ASSERT_TRUE(eventually([&] { return contains(campaign.out(), "\"event\": \"won\""); }))
      << campaign.output();
  ASSERT_TRUE(eventually([&] { return contains(run.err(), "\"event\": \"started\""); }))
      << run.output();
  ASSERT_TRUE(eventually([&] { return contains(file.err(), "won leadership"); })) << file.output();
  const int port = first->port();
  first.reset();
  ServerOptions again;
  again.port = port;
  again.config = "authorization { users = [ {user: alice, password: changed} ] }\n";
  NatsServer second(again);
  EXPECT_TRUE(eventually([&] { return contains(campaign.out(), "\"event\": \"closed\""); }))
      << campaign.output();
  for (const std::string& line : lines_of(campaign.out()))
    if (json_field(line, "event") == std::optional<std::string>("closed")) {
      EXPECT_TRUE(contains(json_field(line, "error").value_or(""), "Authorization Violation"))
          << line;
    }
  const auto code = campaign.wait(20s);
  ASSERT_TRUE(code) << campaign.output();
  EXPECT_EQ(*code, 1) << campaign.output();
  // run (JSON) and file (text) say it too, and end likewise.
  EXPECT_TRUE(eventually([&] { return contains(run.err(), "\"event\": \"closed\""); }))
      << run.output();
  for (const std::string& line : lines_of(run.err()))
    if (json_field(line, "event") == std::optional<std::string>("closed")) {
      EXPECT_EQ(json_field(line, "level"), std::optional<std::string>("warning")) << line;
      EXPECT_TRUE(contains(json_field(line, "error").value_or(""), "Authorization Violation"))
          << line;
    }
  EXPECT_TRUE(eventually([&] { return contains(file.err(), "kvelect: connection to "); }))
      << file.output();
  EXPECT_TRUE(contains(file.err(), "closed")) << file.output();
  EXPECT_EQ(run.wait(20s), 1) << run.output();
  EXPECT_EQ(file.wait(20s), 1) << file.output();
}

} // namespace
} // namespace kvelect::clitest
