// SPDX-License-Identifier: Apache-2.0
#include "status.hpp"

#include <fmt/format.h>

namespace kvelect::detail {

Errc errc_of(natsStatus status) {
  switch (status) {
  case NATS_OK: return Errc::ok;
  case NATS_NO_SERVER:
  case NATS_NOT_FOUND: return Errc::not_found;
  case NATS_TIMEOUT: return Errc::timeout;
  case NATS_CONNECTION_CLOSED: return Errc::connection_closed;
  case NATS_INVALID_ARG: return Errc::invalid_argument;
  case NATS_CONNECTION_AUTH_FAILED:
  case NATS_NOT_PERMITTED: return Errc::permission_denied;
  default: return Errc::nats_error;
  }
}

bool link_failure(natsStatus status) {
  return status == NATS_CONNECTION_DISCONNECTED || status == NATS_IO_ERROR ||
         status == NATS_STALE_CONNECTION || status == NATS_NOT_YET_CONNECTED;
}

std::string plain_status_text(natsStatus status) {
  switch (status) {
  case NATS_TIMEOUT: return "no reply within the request timeout";
  case NATS_CONNECTION_CLOSED: return "the connection is closed";
  case NATS_CONNECTION_DISCONNECTED: return "disconnected from the server";
  case NATS_NO_RESPONDERS: return "no responders (no stream leader, or no such stream)";
  case NATS_IO_ERROR: return "input/output error on the connection";
  case NATS_STALE_CONNECTION: return "stale connection";
  case NATS_NOT_YET_CONNECTED: return "not connected yet";
  case NATS_SLOW_CONSUMER: return "slow consumer";
  default: return natsStatus_GetText(status);
  }
}

std::string fresh_error_text(natsStatus status) {
  natsStatus recorded = NATS_OK;
  const char* text = nats_GetLastError(&recorded);
  if (recorded != status || text == nullptr)
    return {};
  return without_source_location(text);
}

std::string without_source_location(std::string text) {
  if (text.size() > 2 && text[0] == '(') {
    const auto end = text.find("): ");
    if (end != std::string::npos && text.find(".c:") < end)
      text.erase(0, end + 3);
  }
  return text;
}

std::string failure_message(natsStatus status, std::string_view text) {
  const std::string_view label = natsStatus_GetText(status);
  if (text.empty() || text == label)
    return plain_status_text(status);
  if (status == NATS_ERR)
    return std::string(text);
  return fmt::format("{} ({})", text, plain_status_text(status));
}

std::string failure_message(natsStatus status) {
  return failure_message(status, fresh_error_text(status));
}

} // namespace kvelect::detail
