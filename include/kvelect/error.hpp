// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief kvelect::Error and its error codes.
#pragma once

#include <kvelect/export.hpp>

#include <stdexcept>
#include <string>
#include <system_error>

namespace kvelect {

/// What went wrong. Every code is documented in docs/errors.md; the numeric values are stable.
enum class Errc : int {
  ok = 0,
  invalid_name = 1,       ///< member name empty, too long, or reserved (starts with "kvelect:")
  invalid_key = 2,        ///< election key empty or not a valid KV key
  null_bucket = 3,        ///< a null kvStore* was passed
  bucket_without_ttl = 4, ///< the bucket has no TTL (MaxAge), so a dead leader would never expire
  ttl_too_short = 5,      ///< bucket TTL below the 5 s limit (SkipValidation() lifts it)
  ttl_too_long = 6,       ///< bucket TTL above the 1 h limit (SkipValidation() lifts it)
  invalid_option = 7,     ///< an option value is out of range (negative duration, null policy, ...)
  connection_closed = 8,  ///< the NATS connection behind the bucket is closed (fatal)
  already_running = 9,    ///< start() or run() on an election that is running
  bucket_unavailable = 10, ///< the bucket's status could not be read (missing stream, no JetStream)
  request_failed = 11,     ///< a KV request failed; the campaign loop retries (non-fatal)
  bucket_deleted = 12,     ///< the bucket was deleted under a running election (fatal)
  permission_denied = 13,  ///< the server refused a request for lack of permission (fatal)
  timeout = 14,            ///< a request or wait timed out
  not_found = 15,          ///< a bucket, key or server was not found
  invalid_argument = 16,   ///< any other bad argument to a kvelect function
  nats_error = 17,         ///< a cnats call failed; the message carries cnats' own text
  callback_failed = 18,    ///< a user callback threw; reported through WithDebug/OnError
  no_resources = 19,       ///< an election's threads could not be started (fatal)
  not_supported =
      20, ///< the server lacks what was asked for (expiry markers need nats-server 2.11)
};

/// The std::error_category of kvelect::Errc ("kvelect").
KVELECT_API const std::error_category& error_category() noexcept;

/// Lets `std::error_code ec = kvelect::Errc::...` work.
KVELECT_API std::error_code make_error_code(Errc code) noexcept;

/// The one exception type kvelect throws. `what()` names the problem; `code()` is for switching on.
class KVELECT_API Error : public std::runtime_error {
public:
  /// An error with `code` and a message that names the problem.
  Error(Errc code, const std::string& message);

  /// The kvelect error code.
  Errc code() const noexcept { return code_; }
  /// True for errors after which a campaign loop cannot go on: bucket_deleted, permission_denied,
  /// connection_closed and no_resources.
  bool fatal() const noexcept;

private:
  Errc code_;
};

/// Stable lower-case name of an error code, e.g. "ttl_too_short".
KVELECT_API const char* to_string(Errc code) noexcept;

} // namespace kvelect

/// @cond INTERNAL
template <>
struct std::is_error_code_enum<kvelect::Errc> : std::true_type {};
/// @endcond
