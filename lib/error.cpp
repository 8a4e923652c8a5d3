// SPDX-License-Identifier: Apache-2.0
#include <kvelect/error.hpp>
#include <kvelect/log.hpp>
#include <kvelect/state.hpp>

namespace kvelect {
namespace {

class Category final : public std::error_category {
public:
  const char* name() const noexcept override { return "kvelect"; }
  std::string message(int value) const override { return to_string(static_cast<Errc>(value)); }
};

} // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

std::error_code make_error_code(Errc code) noexcept {
  return {static_cast<int>(code), error_category()};
}

Error::Error(Errc code, const std::string& message) : std::runtime_error(message), code_(code) {}

bool Error::fatal() const noexcept {
  return code_ == Errc::bucket_deleted || code_ == Errc::permission_denied ||
         code_ == Errc::connection_closed || code_ == Errc::no_resources;
}

const char* to_string(Errc code) noexcept {
  switch (code) {
  case Errc::ok: return "ok";
  case Errc::invalid_name: return "invalid_name";
  case Errc::invalid_key: return "invalid_key";
  case Errc::null_bucket: return "null_bucket";
  case Errc::bucket_without_ttl: return "bucket_without_ttl";
  case Errc::ttl_too_short: return "ttl_too_short";
  case Errc::ttl_too_long: return "ttl_too_long";
  case Errc::invalid_option: return "invalid_option";
  case Errc::connection_closed: return "connection_closed";
  case Errc::already_running: return "already_running";
  case Errc::bucket_unavailable: return "bucket_unavailable";
  case Errc::request_failed: return "request_failed";
  case Errc::bucket_deleted: return "bucket_deleted";
  case Errc::permission_denied: return "permission_denied";
  case Errc::timeout: return "timeout";
  case Errc::not_found: return "not_found";
  case Errc::invalid_argument: return "invalid_argument";
  case Errc::nats_error: return "nats_error";
  case Errc::callback_failed: return "callback_failed";
  case Errc::no_resources: return "no_resources";
  case Errc::not_supported: return "not_supported";
  }
  return "unknown_error";
}

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
  case LogLevel::debug: return "debug";
  case LogLevel::info: return "info";
  case LogLevel::warning: return "warning";
  case LogLevel::error: return "error";
  }
  return "debug";
}

std::string_view to_string(State state) noexcept {
  switch (state) {
  case State::Unknown: return "unknown";
  case State::Candidate: return "candidate";
  case State::Leader: return "leader";
  }
  return "unknown";
}

} // namespace kvelect
