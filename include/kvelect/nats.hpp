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

/// How to reach the NATS servers.
struct ConnectOptions {
  /// Server URLs; empty means $NATS_URL, else nats://127.0.0.1:4222.
  std::vector<std::string> servers;
  std::string credentials_file; ///< a .creds file (JWT + NKey seed); empty for none
  std::string name = "kvelect"; ///< connection name shown by the server
  /// Timeout of the initial connect and of each JetStream/KV request.
  std::chrono::milliseconds timeout{2000};
};

/// A NATS connection with a JetStream context. Move-only; the destructor closes it.
class KVELECT_API Connection {
public:
  /// Connects; Error(not_found) if no server answers, Error(nats_error) for other failures.
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
