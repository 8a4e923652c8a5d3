// SPDX-License-Identifier: Apache-2.0
#include "connect_flags.hpp"

#include "nats_context.hpp"

#include <CLI/CLI.hpp>

#include <nats/nats.h>

namespace kvelect::cli {
namespace {

CLI::Validator existing_file() { return CLI::Validator(CLI::ExistingFile).description(""); }

std::vector<std::string> split_urls(const std::string& text) {
  std::vector<std::string> urls;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    std::string url =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    const auto first = url.find_first_not_of(" \t");
    if (first != std::string::npos)
      urls.push_back(url.substr(first, url.find_last_not_of(" \t") - first + 1));
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  return urls;
}

const std::string& pick(const std::string& flag, const std::string& context) {
  return flag.empty() ? context : flag;
}

} // namespace

void add_connection_flags(CLI::App* app, CommonOptions& c, const std::string& group) {
  app->add_option("-s,--server", c.servers,
                  "NATS server URL; repeat the flag or separate URLs with commas (default: the "
                  "context's, else nats://127.0.0.1:4222)")
      ->delimiter(',')
      // One URL list per occurrence: `info --server URL KEY` must leave KEY to the command.
      ->allow_extra_args(false)
      ->type_name("URL")
      ->envname("NATS_URL")
      ->group(group);
  app->add_option("--user", c.user,
                  "user name; without --password it is sent as a token, as the nats CLI does")
      ->type_name("USER")
      ->envname("NATS_USER")
      ->group(group);
  app->add_option("--password", c.password, "password of --user")
      ->type_name("PASSWORD")
      ->envname("NATS_PASSWORD")
      ->group(group);
  app->add_option("--token", c.token, "authentication token")
      ->type_name("TOKEN")
      ->envname("NATS_TOKEN")
      ->group(group);
  app->add_option("--creds", c.creds, "NATS credentials file (JWT and NKey seed)")
      ->type_name("FILE")
      ->envname("NATS_CREDS")
      ->check(existing_file())
      ->group(group);
  app->add_option("--nkey", c.nkey, "file holding a user NKey seed (SU...)")
      ->type_name("FILE")
      ->envname("NATS_NKEY")
      ->check(existing_file())
      ->group(group);
  app->add_option("--tlscert", c.tls_cert, "TLS client certificate (PEM), with --tlskey")
      ->type_name("FILE")
      ->envname("NATS_CERT")
      ->check(existing_file())
      ->group(group);
  app->add_option("--tlskey", c.tls_key, "TLS client private key (PEM)")
      ->type_name("FILE")
      ->envname("NATS_KEY")
      ->check(existing_file())
      ->group(group);
  app->add_option("--tlsca", c.tls_ca,
                  "certificate authorities (PEM) to verify the server with; implies TLS")
      ->type_name("FILE")
      ->envname("NATS_CA")
      ->check(existing_file())
      ->group(group);
  app->add_option("--context", c.context,
                  "NATS CLI context to connect with: a name under $XDG_CONFIG_HOME/nats/context/ "
                  "(default: the selected context, if any) or a .json file")
      ->type_name("NAME")
      ->envname("NATS_CONTEXT")
      ->group(group);
  app->add_flag("--no-context", c.no_context, "ignore NATS contexts, the selected one included")
      ->group(group);
}

ConnectOptions resolve_connect_options(const CommonOptions& c, std::string* context_name) {
  std::optional<NatsContext> context;
  if (!c.no_context) {
    try {
      context = load_nats_context(c.context, nats_config_dir());
    } catch (const ContextError& e) {
      if (e.usage())
        throw UsageError(e.what());
      throw Failure(e.what());
    }
  }
  const NatsContext ctx = context.value_or(NatsContext{});
  if (context_name != nullptr)
    *context_name = context ? context->name : std::string();

  ConnectOptions o;
  o.name = "kvelect-cli";
  o.timeout = c.timeout;
  o.servers = !c.servers.empty() ? c.servers : split_urls(ctx.url);

  // Authentication comes from the flags or from the context, never a mix of both.
  const bool flags_auth = !c.user.empty() || !c.password.empty() || !c.token.empty() ||
                          !c.creds.empty() || !c.nkey.empty();
  o.user = flags_auth ? c.user : ctx.user;
  o.password = flags_auth ? c.password : ctx.password;
  o.token = flags_auth ? c.token : ctx.token;
  o.credentials_file = flags_auth ? c.creds : ctx.creds;
  o.nkey_seed_file = flags_auth ? c.nkey : ctx.nkey;
  if (!o.user.empty() && o.password.empty() && o.token.empty()) {
    o.token = o.user; // the nats CLI's "Username or Token"
    o.user.clear();
  }
  o.tls_cert_file = pick(c.tls_cert, ctx.cert);
  o.tls_key_file = pick(c.tls_key, ctx.key);
  o.tls_ca_file = pick(c.tls_ca, ctx.ca);
  // In the flags' words what ConnectOptions would say in its fields' names.
  if (flags_auth && !c.password.empty() && c.user.empty())
    throw UsageError("--password needs --user");
  if (o.tls_cert_file.empty() != o.tls_key_file.empty())
    throw UsageError(o.tls_cert_file.empty() ? "--tlskey needs --tlscert (the client certificate)"
                                             : "--tlscert needs --tlskey (its private key)");
  return o;
}

void close_nats_library() noexcept {
  [[maybe_unused]] const natsStatus status = nats_CloseAndWait(2000);
}

} // namespace kvelect::cli
