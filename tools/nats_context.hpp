// SPDX-License-Identifier: Apache-2.0
// NATS CLI contexts (ADR-21, github.com/nats-io/jsm.go natscontext): named JSON files
// $XDG_CONFIG_HOME/nats/context/NAME.json (default ~/.config/nats/context/), and the selected
// context's name in $XDG_CONFIG_HOME/nats/context.txt.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

namespace kvelect::cli {

/// The connection settings of a context that kvelect uses. Paths have "~/" expanded.
struct NatsContext {
  std::string name; ///< context name
  std::string path; ///< the file it was read from
  std::string url;  ///< comma-separated server URLs
  std::string user;
  std::string password;
  std::string token;
  std::string creds; ///< credentials file
  std::string nkey;  ///< NKey seed file
  std::string cert;  ///< TLS client certificate
  std::string key;   ///< TLS client key
  std::string ca;    ///< TLS CA
};

/// A context that cannot be used. usage(): the requested context does not exist (a bad
/// --context value) rather than a broken file.
class ContextError : public std::runtime_error {
public:
  ContextError(const std::string& what, bool usage) : std::runtime_error(what), usage_(usage) {}
  bool usage() const noexcept { return usage_; }

private:
  bool usage_;
};

/// $XDG_CONFIG_HOME/nats, else $HOME/.config/nats; "" if neither variable is set.
std::string nats_config_dir();

/// Loads the context to use: `requested` (--context or NATS_CONTEXT: a name, or the path of a
/// .json file), else the one named in CONFIG_DIR/context.txt, else none (nullopt). Throws
/// ContextError naming the context and the problem: unknown name, unreadable file, invalid
/// JSON, a field of the wrong type, or a setting kvelect cannot honour (nsc, user_jwt,
/// jetstream_domain, ...).
std::optional<NatsContext> load_nats_context(const std::string& requested,
                                             const std::string& config_dir);

} // namespace kvelect::cli
