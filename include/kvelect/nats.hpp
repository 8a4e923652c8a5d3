// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Small RAII helpers over cnats so that users write no boilerplate: connect, open a
/// bucket, create an election bucket. Election itself takes a plain kvStore*, so agents that
/// already hold one need none of this.
#pragma once

#include <kvelect/error.hpp>
#include <kvelect/export.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct __natsConnection;
typedef struct __natsConnection natsConnection; // NOLINT(modernize-use-using): must match nats.h
struct __kvStore;
typedef struct __kvStore kvStore; // NOLINT(modernize-use-using): must match nats.h
struct __jsCtx;
typedef struct __jsCtx jsCtx; // NOLINT(modernize-use-using): must match nats.h

namespace kvelect {

/// A change of a connection's state, as told to the ConnectOptions callbacks.
struct ConnectionEvent {
  /// What happened.
  enum class Kind {
    disconnected, ///< the connection to the server was lost; cnats is reconnecting
    reconnected,  ///< cnats reconnected (possibly to another server of the list)
    closed,       ///< the connection is closed for good (not by ~Connection)
  };
  Kind kind = Kind::disconnected; ///< what happened
  /// The server: the one reconnected to, else the last one connected to ("" if unknown).
  std::string server;
  /// cnats' last error on this connection, when it has one (e.g. why the server went away).
  std::string error;
};

/// "disconnected", "reconnected" or "closed".
KVELECT_API const char* to_string(ConnectionEvent::Kind kind) noexcept;

/// A ConnectOptions event callback.
using ConnectionCallback = std::function<void(const ConnectionEvent&)>;

/// How to reach the NATS servers, and how to log in.
///
/// Authentication: at most one of user + password, token, nkey_seed_file and credentials_file.
/// TLS: the connection uses TLS when a server URL starts with tls://, when tls_required is set,
/// or when any tls_* option is given; the server's certificate chain is then verified (there is
/// no option to skip that). Connection::connect checks the combination and that every file given
/// can be read before it connects, and throws Error(invalid_option) or Error(invalid_argument)
/// naming the problem.
struct ConnectOptions {
  /// Server URLs; empty means $NATS_URL, else nats://127.0.0.1:4222.
  std::vector<std::string> servers;
  std::string credentials_file; ///< a .creds file (JWT + NKey seed); empty for none
  std::string user;             ///< user name; needs password
  std::string password;         ///< password of user
  std::string token;            ///< an authentication token
  /// A file holding a user NKey seed ("SU...", as nsc and the nats CLI's --nkey use); the public
  /// key is derived from it. Needs kvelect built with OpenSSL's libcrypto.
  std::string nkey_seed_file;
  /// PEM file of the certificate authorities that signed the server's certificate (needed for
  /// a private CA).
  std::string tls_ca_file;
  std::string tls_cert_file; ///< PEM client certificate (mutual TLS); needs tls_key_file
  std::string tls_key_file;  ///< PEM private key of tls_cert_file
  bool tls_required = false; ///< use TLS even without tls:// URLs or tls_* files
  /// The host name the server's certificate must carry. cnats checks the certificate's host
  /// names only when this is set (its chain is always verified).
  std::string tls_hostname;
  std::string name = "kvelect"; ///< connection name shown by the server
  /// Timeout of the initial connect and of each JetStream/KV request.
  std::chrono::milliseconds timeout{2000};

  /// Called when the connection is lost (cnats then reconnects for ever).
  ///
  /// The event callbacks run on cnats' callback thread, one at a time and in the order of the
  /// events; they should return quickly (the thread serves every connection of the process).
  /// They may call into kvelect (e.g. Election::state()), and may destroy the Connection.
  /// None of them is called for the close done by ~Connection, and none runs any more once
  /// ~Connection has returned.
  ConnectionCallback on_disconnected;
  ConnectionCallback on_reconnected; ///< called after a reconnect; see on_disconnected
  /// Called when the connection is closed other than by ~Connection (e.g. the server refused a
  /// reconnect's credentials twice); see on_disconnected.
  ConnectionCallback on_closed;
};

/// A NATS connection with a JetStream context. Move-only; the destructor closes it.
class KVELECT_API Connection {
public:
  /// Connects. Error(invalid_option) or Error(invalid_argument) for options that do not go
  /// together or a file that cannot be read (before connecting), Error(not_found) if no server
  /// answers, Error(permission_denied) if the server refuses the credentials, Error(nats_error)
  /// for other failures (a TLS handshake that fails, ...), each naming the problem.
  static Connection connect(const ConnectOptions& options = {});
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  Connection(Connection&&) noexcept;            ///< moves the connection; the source is empty
  Connection& operator=(Connection&&) noexcept; ///< closes this one, takes the other
  ~Connection();

  /// The cnats connection, for calls kvelect does not wrap.
  natsConnection* get() const noexcept;
  /// The JetStream context (its request timeout is ConnectOptions::timeout).
  jsCtx* jetstream() const noexcept;
  /// True while the connection is not closed.
  bool connected() const noexcept;
  /// How many times cnats has reconnected this connection.
  std::uint64_t reconnects() const noexcept;

  struct Handles;

private:
  friend class Bucket; // reads the request timeout
  explicit Connection(std::unique_ptr<Handles> handles);
  std::unique_ptr<Handles> h_;
};

/// Storage of a bucket's stream.
enum class Storage { file, memory };

/// Settings for a bucket made for elections.
struct BucketConfig {
  std::string name = "KVELECT_ELECTIONS";                  ///< bucket name, [-_a-zA-Z0-9]+
  std::chrono::milliseconds ttl{std::chrono::seconds(30)}; ///< how long a leader's key lives
  int replicas = 1;                                        ///< 1 to 5
  Storage storage = Storage::file;                         ///< where the stream is stored
};

/// A bucket's properties, as kvelect reads them.
struct BucketInfo {
  std::string name;                 ///< bucket name
  std::chrono::milliseconds ttl{0}; ///< the stream's MaxAge; 0 = none
  std::int64_t history = 0;         ///< values kept per key (elections want 1)
  std::int64_t replicas = 0;        ///< stream replicas
  std::uint64_t values = 0;         ///< messages in the stream
};

/// An open KV bucket. Move-only; the destructor releases the handle.
class KVELECT_API Bucket {
public:
  /// Opens an existing bucket; Error(not_found) if there is none of that name.
  static Bucket open(const Connection& connection, std::string_view name);
  /// Creates a bucket fit for elections (history 1, the TTL, replicas, storage), or opens it if
  /// it exists with the same settings.
  static Bucket create(const Connection& connection, const BucketConfig& config);
  /// Deletes a bucket; Error(not_found) if there is none.
  static void remove(const Connection& connection, std::string_view name);

  Bucket(const Bucket&) = delete;
  Bucket& operator=(const Bucket&) = delete;
  Bucket(Bucket&&) noexcept;            ///< moves the handle; the source is empty
  Bucket& operator=(Bucket&&) noexcept; ///< releases this handle, takes the other
  ~Bucket();

  /// The cnats handle, for Election and for calls kvelect does not wrap.
  kvStore* get() const noexcept { return kv_; }
  operator kvStore*() const noexcept { return kv_; } // NOLINT(google-explicit-constructor)
  /// Reads the bucket's status from the server.
  BucketInfo info() const;

private:
  explicit Bucket(kvStore* kv) noexcept : kv_(kv) {}
  kvStore* kv_ = nullptr;
};

/// Reads a bucket's status (TTL, history, replicas). Errors: null_bucket, connection_closed,
/// not_found (no such bucket), bucket_unavailable (any other failure to read it).
KVELECT_API BucketInfo bucket_info(kvStore* bucket);

} // namespace kvelect
