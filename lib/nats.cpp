// SPDX-License-Identifier: Apache-2.0
#include <kvelect/nats.hpp>

#include "bucket_routes.hpp"
#include "handles.hpp"
#include "markers.hpp"
#include "nkey.hpp"
#include "status.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <system_error>
#include <utility>

namespace kvelect {
namespace {

// The text of a failed call's error: cnats' own words about it if it left any, else the status
// in words.
std::string error_text(natsStatus status) {
  std::string text = detail::fresh_error_text(status);
  return text.empty() ? detail::plain_status_text(status) : text;
}

[[noreturn]] void throw_status(natsStatus status, const std::string& what) {
  throw Error(detail::errc_of(status), fmt::format("{}: {}", what, error_text(status)));
}

void check(natsStatus status, const std::string& what) {
  if (status != NATS_OK)
    throw_status(status, what);
}

} // namespace

// What cnats' connection callbacks reach, through a raw pointer (their closure). Shared by the
// Connection and, when ~Connection returns before cnats delivered the close, by itself (hold)
// until that last callback frees it: cnats calls a connection's callbacks one at a time, in
// order, on its callback thread, and the close is the last of them.
struct CallbackState {
  std::mutex mu;
  std::condition_variable cv;
  int busy = 0;          // user callbacks running now
  bool detached = false; // ~Connection started: no more user callbacks
  bool closed = false;   // cnats delivered the closed callback
  std::string server;    // the server last connected to
  std::unique_ptr<std::shared_ptr<CallbackState>> hold; // self-reference, see above
  std::atomic<std::uint64_t> reconnects{0};
  ConnectionCallback on_disconnected;
  ConnectionCallback on_reconnected;
  ConnectionCallback on_closed;
};

struct Connection::Handles {
  std::shared_ptr<CallbackState> callbacks; // first: the handles below may still reach it
  detail::ConnectionHandle connection;
  detail::JetStreamHandle jetstream;
  std::chrono::milliseconds timeout{2000}; // ConnectOptions::timeout: the request timeout
};

namespace {

// True on a thread that is running one of our callbacks: ~Connection must not wait there.
thread_local int t_in_callback = 0;

std::string connected_url(natsConnection* nc) {
  char buffer[512] = {};
  if (natsConnection_GetConnectedUrl(nc, buffer, sizeof buffer) == NATS_OK)
    return buffer;
  return {};
}

std::string connection_error(natsConnection* nc) {
  const char* text = nullptr;
  const natsStatus status = natsConnection_GetLastError(nc, &text);
  if (status == NATS_OK)
    return {};
  return text != nullptr && *text != '\0' ? detail::without_source_location(text)
                                          : detail::plain_status_text(status);
}

void deliver(natsConnection* nc, CallbackState* state, ConnectionEvent::Kind kind) {
  ConnectionEvent event;
  event.kind = kind;
  const ConnectionCallback* callback = nullptr;
  {
    std::lock_guard lock(state->mu);
    if (kind == ConnectionEvent::Kind::reconnected) {
      state->reconnects.fetch_add(1);
      if (std::string url = connected_url(nc); !url.empty())
        state->server = std::move(url);
    }
    event.server = state->server;
    const ConnectionCallback& chosen =
        kind == ConnectionEvent::Kind::disconnected  ? state->on_disconnected
        : kind == ConnectionEvent::Kind::reconnected ? state->on_reconnected
                                                     : state->on_closed;
    if (!state->detached && chosen) {
      callback = &chosen; // the callbacks never change after connect()
      ++state->busy;
    }
  }
  if (callback != nullptr) {
    if (kind != ConnectionEvent::Kind::reconnected)
      event.error = connection_error(nc);
    ++t_in_callback;
    try {
      (*callback)(event);
    } catch (...) { // NOLINT(bugprone-empty-catch): an exception must not unwind into cnats
    }
    --t_in_callback;
    std::lock_guard lock(state->mu);
    --state->busy;
    state->cv.notify_all();
  }
}

void on_disconnected(natsConnection* nc, void* closure) {
  deliver(nc, static_cast<CallbackState*>(closure), ConnectionEvent::Kind::disconnected);
}

void on_reconnected(natsConnection* nc, void* closure) {
  deliver(nc, static_cast<CallbackState*>(closure), ConnectionEvent::Kind::reconnected);
}

void on_closed(natsConnection* nc, void* closure) {
  auto* state = static_cast<CallbackState*>(closure);
  deliver(nc, state, ConnectionEvent::Kind::closed);
  std::unique_ptr<std::shared_ptr<CallbackState>> hold;
  {
    std::lock_guard lock(state->mu);
    state->closed = true;
    hold = std::move(state->hold);
    state->cv.notify_all();
  }
  // `hold` may be the last reference: `state` is gone after this line.
}

// A file the caller named must be readable: say so now rather than through cnats' text.
void check_readable(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw Error(Errc::invalid_argument,
                fmt::format("cannot read the {} '{}': {}", what, path,
                            std::error_code(errno, std::generic_category()).message()));
}

void validate(const ConnectOptions& o) {
  if (o.timeout.count() <= 0)
    throw Error(Errc::invalid_option, "connect: the timeout must be positive");
  if (!o.user.empty() && o.password.empty())
    throw Error(Errc::invalid_option,
                fmt::format("connect: user '{}' needs a password (for a token alone, use the "
                            "token)",
                            o.user));
  if (o.user.empty() && !o.password.empty())
    throw Error(Errc::invalid_option, "connect: a password needs a user");
  std::vector<const char*> ways;
  if (!o.user.empty())
    ways.push_back("user and password");
  if (!o.token.empty())
    ways.push_back("token");
  if (!o.nkey_seed_file.empty())
    ways.push_back("nkey");
  if (!o.credentials_file.empty())
    ways.push_back("credentials file");
  if (ways.size() > 1)
    throw Error(Errc::invalid_option, fmt::format("connect: give one way to authenticate, not {}",
                                                  fmt::join(ways, " + ")));
  if (o.tls_cert_file.empty() != o.tls_key_file.empty())
    throw Error(Errc::invalid_option,
                o.tls_cert_file.empty()
                    ? "connect: a TLS client key needs its certificate (tls_cert_file)"
                    : "connect: a TLS client certificate needs its key (tls_key_file)");
  if (!o.credentials_file.empty())
    check_readable(o.credentials_file, "credentials file");
  if (!o.nkey_seed_file.empty())
    check_readable(o.nkey_seed_file, "NKey seed file");
  if (!o.tls_ca_file.empty())
    check_readable(o.tls_ca_file, "TLS CA file");
  if (!o.tls_cert_file.empty())
    check_readable(o.tls_cert_file, "TLS certificate file");
  if (!o.tls_key_file.empty())
    check_readable(o.tls_key_file, "TLS key file");
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void set_auth(natsOptions* opts, const ConnectOptions& o) {
  if (!o.user.empty())
    check(natsOptions_SetUserInfo(opts, o.user.c_str(), o.password.c_str()),
          "cannot set the user and password");
  if (!o.token.empty())
    check(natsOptions_SetToken(opts, o.token.c_str()), "cannot set the token");
  if (!o.credentials_file.empty())
    check(natsOptions_SetUserCredentialsFromFiles(opts, o.credentials_file.c_str(), nullptr),
          fmt::format("cannot use credentials file '{}'", o.credentials_file));
  if (!o.nkey_seed_file.empty()) {
    const auto seed = detail::find_user_seed(read_text(o.nkey_seed_file));
    if (!seed)
      throw Error(
          Errc::invalid_argument,
          fmt::format("the NKey seed file '{}' holds no user seed (SU...)", o.nkey_seed_file));
    const std::string public_key = detail::user_public_key(*seed);
    check(natsOptions_SetNKeyFromSeed(opts, public_key.c_str(), o.nkey_seed_file.c_str()),
          fmt::format("cannot use the NKey seed file '{}'", o.nkey_seed_file));
  }
}

bool uses_tls(const ConnectOptions& o, const std::vector<std::string>& servers) {
  const bool tls_url = std::any_of(servers.begin(), servers.end(),
                                   [](const std::string& s) { return s.rfind("tls://", 0) == 0; });
  return o.tls_required || tls_url || !o.tls_ca_file.empty() || !o.tls_cert_file.empty() ||
         !o.tls_hostname.empty();
}

void set_tls(natsOptions* opts, const ConnectOptions& o, const std::vector<std::string>& servers) {
  if (!uses_tls(o, servers))
    return;
  check(natsOptions_SetSecure(opts, true), "cannot enable TLS");
  if (!o.tls_ca_file.empty())
    check(natsOptions_LoadCATrustedCertificates(opts, o.tls_ca_file.c_str()),
          fmt::format("cannot use the TLS CA file '{}'", o.tls_ca_file));
  if (!o.tls_cert_file.empty())
    check(natsOptions_LoadCertificatesChain(opts, o.tls_cert_file.c_str(), o.tls_key_file.c_str()),
          fmt::format("cannot use the TLS certificate '{}' with the key '{}'", o.tls_cert_file,
                      o.tls_key_file));
  if (!o.tls_hostname.empty())
    check(natsOptions_SetExpectedHostname(opts, o.tls_hostname.c_str()),
          "cannot set the expected TLS host name");
}

} // namespace

const char* to_string(ConnectionEvent::Kind kind) noexcept {
  switch (kind) {
  case ConnectionEvent::Kind::disconnected: return "disconnected";
  case ConnectionEvent::Kind::reconnected: return "reconnected";
  case ConnectionEvent::Kind::closed: return "closed";
  }
  return "?";
}

Connection Connection::connect(const ConnectOptions& options) {
  validate(options);
  std::vector<std::string> servers = options.servers;
  if (servers.empty()) {
    const char* env = std::getenv("NATS_URL"); // NOLINT(concurrency-mt-unsafe): read once
    servers.emplace_back(env != nullptr && *env != '\0' ? env : "nats://127.0.0.1:4222");
  }
  std::vector<const char*> urls;
  urls.reserve(servers.size());
  for (const auto& s : servers) {
    if (s.empty())
      throw Error(Errc::invalid_argument, "connect: a server URL is empty");
    urls.push_back(s.c_str());
  }
  auto handles = std::make_unique<Handles>();
  handles->callbacks = std::make_shared<CallbackState>();
  CallbackState* state = handles->callbacks.get();
  state->on_disconnected = options.on_disconnected;
  state->on_reconnected = options.on_reconnected;
  state->on_closed = options.on_closed;
  natsOptions* raw_options = nullptr;
  check(natsOptions_Create(&raw_options), "cannot create connection options");
  detail::OptionsHandle opts(raw_options);
  check(natsOptions_SetServers(opts.get(), urls.data(), static_cast<int>(urls.size())),
        fmt::format("invalid server list '{}'", fmt::join(servers, ",")));
  check(natsOptions_SetName(opts.get(), options.name.c_str()), "invalid connection name");
  check(natsOptions_SetTimeout(opts.get(), options.timeout.count()), "invalid timeout");
  // Each publish goes to the socket at once instead of waking cnats' flusher thread: election
  // traffic is a few small requests, latency-bound, with nothing to batch. At 1,000 elections
  // per process this saves a thread wake-up per request (docs/executor.md).
  check(natsOptions_SetSendAsap(opts.get(), true), "cannot set send-asap");
  // Reconnect for ever: an election must survive a server restart (the lease, not the
  // connection, decides leadership).
  check(natsOptions_SetMaxReconnect(opts.get(), -1), "cannot set reconnects");
  check(natsOptions_SetReconnectWait(opts.get(), 250), "cannot set the reconnect wait");
  check(natsOptions_SetDisconnectedCB(opts.get(), on_disconnected, state),
        "cannot set the disconnect handler");
  check(natsOptions_SetReconnectedCB(opts.get(), on_reconnected, state),
        "cannot set the reconnect handler");
  check(natsOptions_SetClosedCB(opts.get(), on_closed, state), "cannot set the close handler");
  set_auth(opts.get(), options);
  set_tls(opts.get(), options, servers);
  // cnats 3.4.1 sends its CONNECT without the signature when the signature of the server's nonce
  // begins with a zero byte (seen in nats-server's trace), so one connection in 256 that signs
  // a nonce (an NKey seed or a credentials file) is refused as "Authorization Violation". Each
  // attempt signs a fresh nonce: four make a spurious refusal a 1-in-4-billion event, and a
  // real refusal costs only three more quick round trips (docs/compatibility.md).
  const bool signs_nonce = !options.nkey_seed_file.empty() || !options.credentials_file.empty();
  constexpr int kSignedConnectAttempts = 4;
  natsConnection* raw_connection = nullptr;
  natsStatus connected = NATS_OK;
  for (int attempt = 1;; ++attempt) {
    connected = natsConnection_Connect(&raw_connection, opts.get());
    if (connected != NATS_CONNECTION_AUTH_FAILED || !signs_nonce ||
        attempt == kSignedConnectAttempts)
      break;
  }
  if (connected != NATS_OK) {
    // A server that wants a client certificate and got none closes the connection after the
    // handshake (TLS 1.3), which cnats reports as a missing PONG: say what is likely.
    const bool tls = uses_tls(options, servers);
    if (tls && options.tls_cert_file.empty() && connected != NATS_SSL_ERROR &&
        connected != NATS_NO_SERVER && connected != NATS_CONNECTION_AUTH_FAILED) {
      const std::string text = error_text(connected);
      throw Error(Errc::nats_error,
                  fmt::format("cannot connect to {}: {} (over TLS without a client certificate: "
                              "does the server require one?)",
                              fmt::join(servers, ","), text));
    }
    throw_status(connected, fmt::format("cannot connect to {}", fmt::join(servers, ",")));
  }
  handles->connection.reset(raw_connection);
  {
    std::lock_guard lock(state->mu);
    state->server = connected_url(raw_connection);
  }
  // From here on ~Connection closes it (and keeps the callbacks' state alive for cnats) should
  // anything below throw.
  Connection result(std::move(handles));
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = options.timeout.count();
  jsCtx* raw_js = nullptr;
  check(natsConnection_JetStream(&raw_js, result.h_->connection.get(), &js_options),
        "cannot create a JetStream context");
  result.h_->jetstream.reset(raw_js);
  result.h_->timeout = options.timeout;
  return result;
}

Connection::Connection(std::unique_ptr<Handles> handles) : h_(std::move(handles)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    Connection old(std::move(*this)); // closed by ~Connection, callbacks' state kept for cnats
    h_ = std::move(other.h_);
  }
  return *this;
}
Connection::~Connection() {
  if (!h_)
    return;
  const std::shared_ptr<CallbackState>& state = h_->callbacks;
  if (state) {
    // No user callback from here on, and none still running when this returns (unless this
    // runs inside one: then waiting would deadlock).
    std::unique_lock lock(state->mu);
    state->detached = true;
    if (t_in_callback == 0)
      state->cv.wait(lock, [&] { return state->busy == 0; });
  }
  // The JetStream context goes first: it holds a reference to the connection.
  h_->jetstream.reset();
  if (h_->connection)
    natsConnection_Close(h_->connection.get());
  if (state) {
    // cnats delivers the close later, on its thread, to a closure that must still exist.
    std::lock_guard lock(state->mu);
    if (!state->closed && h_->connection)
      state->hold = std::make_unique<std::shared_ptr<CallbackState>>(state);
  }
}

natsConnection* Connection::get() const noexcept { return h_ ? h_->connection.get() : nullptr; }
jsCtx* Connection::jetstream() const noexcept { return h_ ? h_->jetstream.get() : nullptr; }
bool Connection::connected() const noexcept {
  return h_ && h_->connection && !natsConnection_IsClosed(h_->connection.get());
}
std::chrono::milliseconds Connection::timeout() const noexcept {
  return h_ ? h_->timeout : std::chrono::milliseconds(0);
}
std::uint64_t Connection::reconnects() const noexcept {
  return h_ && h_->callbacks ? h_->callbacks->reconnects.load() : 0;
}

namespace {

void check_connection(const Connection& connection) {
  if (connection.jetstream() == nullptr)
    throw Error(Errc::invalid_argument, "the connection was moved from");
  if (!connection.connected())
    throw Error(Errc::connection_closed, "the connection is closed");
}

void check_bucket_name(std::string_view name) {
  if (name.empty())
    throw Error(Errc::invalid_argument, "bucket name is empty");
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok)
      throw Error(Errc::invalid_argument,
                  fmt::format("bucket name '{}' is invalid (allowed: [-_a-zA-Z0-9])", name));
  }
}

} // namespace

Bucket Bucket::open(const Connection& connection, std::string_view name) {
  check_connection(connection);
  check_bucket_name(name);
  kvStore* kv = nullptr;
  const std::string n(name);
  const natsStatus status = js_KeyValue(&kv, connection.jetstream(), n.c_str());
  if (status == NATS_NOT_FOUND)
    throw Error(Errc::not_found, fmt::format("bucket '{}' does not exist", name));
  check(status, fmt::format("cannot open bucket '{}'", name));
  // Elections on an Executor write to it by publishing (lib/async_writer.hpp), and watches
  // retire their watchers with a flush on its connection (lib/retire.hpp): lib/bucket_routes.hpp.
  detail::register_bucket(kv, connection.get(), name, connection.timeout());
  return Bucket(kv, connection.get(), connection.timeout());
}

Bucket Bucket::create(const Connection& connection, const BucketConfig& config) {
  check_connection(connection);
  check_bucket_name(config.name);
  if (config.ttl.count() <= 0)
    throw Error(Errc::bucket_without_ttl,
                fmt::format("bucket '{}' needs a positive TTL for elections", config.name));
  if (config.replicas < 1 || config.replicas > 5)
    throw Error(Errc::invalid_option, fmt::format("bucket '{}': replicas must be 1 to 5, not {}",
                                                  config.name, config.replicas));
  if (config.expiry_markers)
    // cnats 3.4 cannot ask for markers: the stream is made by the API request itself.
    detail::create_marker_stream(connection.get(), config, connection.timeout());
  kvConfig cfg;
  kvConfig_Init(&cfg);
  cfg.Bucket = config.name.c_str();
  cfg.History = 1;
  // cnats passes this to the stream's MaxAge, which is in nanoseconds.
  cfg.TTL = std::chrono::duration_cast<std::chrono::nanoseconds>(config.ttl).count();
  cfg.Replicas = config.replicas;
  cfg.StorageType = config.storage == Storage::memory ? js_MemoryStorage : js_FileStorage;
  kvStore* kv = nullptr;
  if (config.expiry_markers)
    check(js_KeyValue(&kv, connection.jetstream(), config.name.c_str()),
          fmt::format("cannot open bucket '{}'", config.name));
  else
    check(js_CreateKeyValue(&kv, connection.jetstream(), &cfg),
          fmt::format("cannot create bucket '{}'", config.name));
  detail::register_bucket(kv, connection.get(), config.name, connection.timeout());
  return Bucket(kv, connection.get(), connection.timeout());
}

void Bucket::remove(const Connection& connection, std::string_view name) {
  check_connection(connection);
  check_bucket_name(name);
  const std::string n(name);
  const natsStatus status = js_DeleteKeyValue(connection.jetstream(), n.c_str());
  if (status == NATS_NOT_FOUND)
    throw Error(Errc::not_found, fmt::format("bucket '{}' does not exist", name));
  check(status, fmt::format("cannot delete bucket '{}'", name));
}

Bucket::Bucket(Bucket&& other) noexcept
    : kv_(std::exchange(other.kv_, nullptr)),
      connection_(std::exchange(other.connection_, nullptr)), timeout_(other.timeout_) {}
Bucket& Bucket::operator=(Bucket&& other) noexcept {
  if (this != &other) {
    if (kv_ != nullptr) {
      detail::unregister_bucket(kv_);
      kvStore_Destroy(kv_);
    }
    kv_ = std::exchange(other.kv_, nullptr);
    connection_ = std::exchange(other.connection_, nullptr);
    timeout_ = other.timeout_;
  }
  return *this;
}
Bucket::~Bucket() {
  if (kv_ != nullptr) {
    detail::unregister_bucket(kv_);
    kvStore_Destroy(kv_);
  }
}

BucketInfo Bucket::info() const {
  BucketInfo info = bucket_info(kv_);
  if (connection_ != nullptr) {
    const auto markers = detail::read_stream_markers(connection_, "KV_" + info.name, timeout_);
    info.marker_ttl = std::chrono::duration_cast<std::chrono::milliseconds>(markers.marker_ttl);
  }
  return info;
}

BucketInfo bucket_info(kvStore* bucket) {
  if (bucket == nullptr)
    throw Error(Errc::null_bucket, "bucket is null: pass an open kvStore*");
  kvStatus* raw = nullptr;
  const natsStatus status = kvStore_Status(&raw, bucket);
  detail::StatusHandle owned(raw);
  if (status == NATS_CONNECTION_CLOSED)
    throw Error(
        Errc::connection_closed,
        fmt::format("cannot read bucket '{}': the connection is closed", kvStore_Bucket(bucket)));
  if (status == NATS_NOT_FOUND)
    throw Error(Errc::not_found, fmt::format("bucket '{}' does not exist", kvStore_Bucket(bucket)));
  if (status != NATS_OK)
    throw Error(Errc::bucket_unavailable, fmt::format("cannot read bucket '{}' status: {}",
                                                      kvStore_Bucket(bucket), error_text(status)));
  BucketInfo info;
  info.name = kvStatus_Bucket(owned.get());
  // kvStatus_TTL reports the stream's MaxAge, in nanoseconds.
  info.ttl = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::nanoseconds(kvStatus_TTL(owned.get())));
  info.history = kvStatus_History(owned.get());
  info.replicas = kvStatus_Replicas(owned.get());
  info.values = kvStatus_Values(owned.get());
  return info;
}

} // namespace kvelect
