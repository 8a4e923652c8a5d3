// SPDX-License-Identifier: Apache-2.0
#include "nats_context.hpp"

#include "json_parse.hpp"

#include <fmt/format.h>

#include <sys/stat.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace kvelect::cli {
namespace {

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos)
    return {};
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

// The nats CLI's rule: not empty, no "..", no path separator.
bool valid_name(const std::string& name) {
  return !name.empty() && name.find("..") == std::string::npos &&
         name.find('/') == std::string::npos;
}

std::string expand_home(const std::string& path) {
  if (path.rfind("~/", 0) != 0)
    return path;
  const char* home = std::getenv("HOME"); // NOLINT(concurrency-mt-unsafe): before threads
  return home != nullptr && *home != '\0' ? std::string(home) + path.substr(1) : path;
}

NatsContext parse_context(const std::string& name, const std::string& path) {
  const auto text = read_text(path);
  if (!text)
    throw ContextError(
        fmt::format("cannot read NATS context '{}' ({}): {}", name, path, std::strerror(errno)),
        false);
  std::string error;
  const auto json = parse_json(*text, &error);
  if (!json)
    throw ContextError(
        fmt::format("NATS context '{}' ({}) is not valid JSON: {}", name, path, error), false);
  if (json->type != JsonValue::Type::object)
    throw ContextError(fmt::format("NATS context '{}' ({}) is not a JSON object", name, path),
                       false);
  NatsContext context;
  context.name = name;
  context.path = path;
  const struct {
    const char* field;
    std::string NatsContext::*target;
    bool is_path;
  } fields[] = {
      {"url", &NatsContext::url, false},
      {"user", &NatsContext::user, false},
      {"password", &NatsContext::password, false},
      {"token", &NatsContext::token, false},
      {"creds", &NatsContext::creds, true},
      {"nkey", &NatsContext::nkey, true},
      {"cert", &NatsContext::cert, true},
      {"key", &NatsContext::key, true},
      {"ca", &NatsContext::ca, true},
  };
  // Settings that change where or how to connect, which kvelect (cnats 3.4) cannot apply:
  // refused rather than silently ignored.
  const char* const unsupported[] = {"nsc",
                                     "user_jwt",
                                     "user_seed",
                                     "socks_proxy",
                                     "jetstream_domain",
                                     "jetstream_api_prefix",
                                     "jetstream_event_prefix",
                                     "inbox_prefix",
                                     "windows_cert_store",
                                     "windows_cert_match",
                                     "windows_ca_certs_match"};
  for (const auto& [key, value] : json->object) {
    bool known = false;
    for (const auto& f : fields) {
      if (key != f.field)
        continue;
      known = true;
      if (value.type == JsonValue::Type::null)
        break;
      if (value.type != JsonValue::Type::string)
        throw ContextError(fmt::format("NATS context '{}' ({}): \"{}\" must be a string, not {}",
                                       name, path, key, describe(value.type)),
                           false);
      context.*(f.target) = f.is_path ? expand_home(value.string) : value.string;
    }
    if (known)
      continue;
    const bool set = (value.type == JsonValue::Type::string && !value.string.empty()) ||
                     (value.type == JsonValue::Type::boolean && value.boolean) ||
                     (value.type == JsonValue::Type::array && !value.array.empty());
    if (key == "tls_first" && set)
      throw ContextError(fmt::format("NATS context '{}' ({}) sets \"tls_first\": kvelect's NATS "
                                     "client (cnats 3.4) cannot do the TLS handshake first",
                                     name, path),
                         false);
    for (const char* u : unsupported)
      if (key == u && set)
        throw ContextError(fmt::format("NATS context '{}' ({}) sets \"{}\", which kvelect does "
                                       "not support",
                                       name, path, key),
                           false);
    // Anything else (description, color_scheme, ...) does not concern the connection.
  }
  return context;
}

} // namespace

std::string nats_config_dir() {
  // NOLINTBEGIN(concurrency-mt-unsafe): read before any thread starts
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  if (xdg != nullptr && *xdg != '\0')
    return std::string(xdg) + "/nats";
  const char* home = std::getenv("HOME");
  // NOLINTEND(concurrency-mt-unsafe)
  if (home != nullptr && *home != '\0')
    return std::string(home) + "/.config/nats";
  return {};
}

std::optional<NatsContext> load_nats_context(const std::string& requested,
                                             const std::string& config_dir) {
  if (!requested.empty()) {
    // Like the nats CLI, a path to an existing .json file is a context of its own.
    const bool json_file = requested.size() > 5 &&
                           requested.compare(requested.size() - 5, 5, ".json") == 0 &&
                           is_file(requested);
    if (json_file) {
      const auto slash = requested.rfind('/');
      const std::string base = slash == std::string::npos ? requested : requested.substr(slash + 1);
      return parse_context(base.substr(0, base.size() - 5), requested);
    }
    if (!valid_name(requested))
      throw ContextError(fmt::format("invalid NATS context name '{}'", requested), true);
    const std::string path = config_dir + "/context/" + requested + ".json";
    if (config_dir.empty() || !is_file(path))
      throw ContextError(fmt::format("unknown NATS context '{}' (no file {})", requested,
                                     config_dir.empty() ? "context/" + requested + ".json" : path),
                         true);
    return parse_context(requested, path);
  }
  if (config_dir.empty())
    return std::nullopt;
  const std::string selected_file = config_dir + "/context.txt";
  const auto selected = read_text(selected_file);
  if (!selected)
    return std::nullopt;
  const std::string name = trim(*selected);
  if (name.empty())
    return std::nullopt;
  const std::string path = config_dir + "/context/" + name + ".json";
  if (!valid_name(name) || !is_file(path))
    throw ContextError(fmt::format("the selected NATS context '{}' ({}) does not exist (no "
                                   "file {}); select another with 'nats context select' or "
                                   "use --no-context",
                                   name, selected_file, path),
                       false);
  return parse_context(name, path);
}

} // namespace kvelect::cli
