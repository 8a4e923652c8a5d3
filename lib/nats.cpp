// SPDX-License-Identifier: Apache-2.0
#include <kvelect/nats.hpp>

#include "handles.hpp"

#include <fmt/format.h>

#include <atomic>
#include <cstdlib>
#include <utility>

namespace kvelect {
namespace {

std::string last_error(natsStatus status) {
  natsStatus ignored = NATS_OK;
  const char* text = nats_GetLastError(&ignored);
  return (text != nullptr && *text != '\0') ? std::string(text)
                                            : std::string(natsStatus_GetText(status));
}

[[noreturn]] void throw_status(natsStatus status, const std::string& what) {
  Errc code = Errc::nats_error;
  switch (status) {
  case NATS_NO_SERVER:
  case NATS_NOT_FOUND: code = Errc::not_found; break;
  case NATS_TIMEOUT: code = Errc::timeout; break;
  case NATS_CONNECTION_CLOSED: code = Errc::connection_closed; break;
  case NATS_INVALID_ARG: code = Errc::invalid_argument; break;
  case NATS_CONNECTION_AUTH_FAILED:
  case NATS_NOT_PERMITTED: code = Errc::permission_denied; break;
  default: break;
  }
  throw Error(code, fmt::format("{}: {}", what, last_error(status)));
}

void check(natsStatus status, const std::string& what) {
  if (status != NATS_OK)
    throw_status(status, what);
}

} // namespace

struct Connection::Handles {
  detail::ConnectionHandle connection;
  detail::JetStreamHandle jetstream;
  std::atomic<std::uint64_t> reconnects{0};
};

namespace {

void on_reconnected(natsConnection* /*nc*/, void* closure) {
  static_cast<std::atomic<std::uint64_t>*>(closure)->fetch_add(1);
}

} // namespace

Connection Connection::connect(const ConnectOptions& options) {
  if (options.timeout.count() <= 0)
    throw Error(Errc::invalid_option, "connect: the timeout must be positive");
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
  check(natsOptions_SetReconnectedCB(opts.get(), on_reconnected, &handles->reconnects),
        "cannot set the reconnect handler");
  if (!options.credentials_file.empty())
    check(natsOptions_SetUserCredentialsFromFiles(opts.get(), options.credentials_file.c_str(),
                                                  nullptr),
          fmt::format("cannot use credentials file '{}'", options.credentials_file));
  natsConnection* raw_connection = nullptr;
  const natsStatus connected = natsConnection_Connect(&raw_connection, opts.get());
  if (connected != NATS_OK)
    throw_status(connected, fmt::format("cannot connect to {}", fmt::join(servers, ",")));
  handles->connection.reset(raw_connection);
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = options.timeout.count();
  jsCtx* raw_js = nullptr;
  check(natsConnection_JetStream(&raw_js, handles->connection.get(), &js_options),
        "cannot create a JetStream context");
  handles->jetstream.reset(raw_js);
  return Connection(std::move(handles));
}

Connection::Connection(std::unique_ptr<Handles> handles) : h_(std::move(handles)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() {
  if (h_) {
    // The JetStream context goes first: it holds a reference to the connection.
    h_->jetstream.reset();
    if (h_->connection)
      natsConnection_Close(h_->connection.get());
  }
}

natsConnection* Connection::get() const noexcept { return h_ ? h_->connection.get() : nullptr; }
jsCtx* Connection::jetstream() const noexcept { return h_ ? h_->jetstream.get() : nullptr; }
bool Connection::connected() const noexcept {
  return h_ && h_->connection && !natsConnection_IsClosed(h_->connection.get());
}
std::uint64_t Connection::reconnects() const noexcept { return h_ ? h_->reconnects.load() : 0; }

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
  return Bucket(kv);
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
  kvConfig cfg;
  kvConfig_Init(&cfg);
  cfg.Bucket = config.name.c_str();
  cfg.History = 1;
  // cnats passes this to the stream's MaxAge, which is in nanoseconds.
  cfg.TTL = std::chrono::duration_cast<std::chrono::nanoseconds>(config.ttl).count();
  cfg.Replicas = config.replicas;
  cfg.StorageType = config.storage == Storage::memory ? js_MemoryStorage : js_FileStorage;
  kvStore* kv = nullptr;
  check(js_CreateKeyValue(&kv, connection.jetstream(), &cfg),
        fmt::format("cannot create bucket '{}'", config.name));
  return Bucket(kv);
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

Bucket::Bucket(Bucket&& other) noexcept : kv_(std::exchange(other.kv_, nullptr)) {}
Bucket& Bucket::operator=(Bucket&& other) noexcept {
  if (this != &other) {
    if (kv_ != nullptr)
      kvStore_Destroy(kv_);
    kv_ = std::exchange(other.kv_, nullptr);
  }
  return *this;
}
Bucket::~Bucket() {
  if (kv_ != nullptr)
    kvStore_Destroy(kv_);
}

BucketInfo Bucket::info() const { return bucket_info(kv_); }

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
                                                      kvStore_Bucket(bucket), last_error(status)));
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
