// SPDX-License-Identifier: Apache-2.0
#include "kv.hpp"

#include "handles.hpp"

#include <fmt/format.h>

namespace kvelect::detail {
namespace {

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

std::string last_error_text(natsStatus status) {
  // cnats keeps the thread's last error text and does not clear it on a timeout: only a generic
  // NATS_ERR carries a fresh text (e.g. a failed revision check). Anything else is its status.
  if (status != NATS_ERR)
    return natsStatus_GetText(status);
  natsStatus last = NATS_OK;
  const char* text = nats_GetLastError(&last);
  if (text != nullptr && *text != '\0')
    return text;
  return natsStatus_GetText(status);
}

class CnatsPort final : public KvPort {
public:
  explicit CnatsPort(kvStore* bucket) : bucket_(bucket) {}

  WriteResult write(std::string_view key, std::string_view value, std::uint64_t expected) override {
    const std::string k(key);
    std::uint64_t revision = 0;
    // kvStore_Update with last = 0 sends "expect no message for this subject": the first half
    // of kvStore_Create, without its second (tombstone) step, which the loop does itself with
    // the revision it learned, so that a delete between the two steps is a plain lost race.
    const natsStatus status = kvStore_Update(&revision, bucket_, k.c_str(), value.data(),
                                             static_cast<int>(value.size()), expected);
    if (status == NATS_OK)
      return {Outcome::ok, revision, 0, false, Errc::ok, {}};
    // The error text must be read on this thread, right after the call (cnats keeps it per
    // thread), before any other cnats call overwrites it.
    return classify_failure(status, last_error_text(status));
  }

  ReadResult read(std::string_view key) override {
    const std::string k(key);
    kvEntry* raw = nullptr;
    const natsStatus status = kvStore_Get(&raw, bucket_, k.c_str());
    EntryHandle entry(raw);
    ReadResult result;
    if (status == NATS_NOT_FOUND) {
      result.entry.op = Op::absent;
      return result;
    }
    if (status != NATS_OK) {
      const WriteResult failure = classify_failure(status, last_error_text(status));
      result.outcome = failure.outcome == Outcome::lost_race ? Outcome::retryable : failure.outcome;
      result.code = failure.code;
      result.message = failure.message;
      return result;
    }
    result.entry.op = Op::put;
    result.entry.revision = kvEntry_Revision(entry.get());
    const char* data = static_cast<const char*>(kvEntry_Value(entry.get()));
    result.entry.value.assign(data != nullptr ? data : "",
                              static_cast<std::size_t>(kvEntry_ValueLen(entry.get())));
    return result;
  }

private:
  kvStore* bucket_;
};

} // namespace

namespace {

// A status in words, for messages: cnats' own texts are capitalised labels ("Timeout"), which
// read badly after a colon and doubled up as "Timeout (Timeout)" when the error text was the
// status text itself.
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

// The failure's message: cnats' error text when it says more than the bare status (a generic
// NATS_ERR adds nothing to its text), else the status in words.
std::string failure_message(natsStatus status, std::string_view text) {
  const std::string_view label = natsStatus_GetText(status);
  if (text.empty() || text == label)
    return plain_status_text(status);
  if (status == NATS_ERR)
    return std::string(text);
  return fmt::format("{} ({})", text, plain_status_text(status));
}

} // namespace

WriteResult classify_failure(int nats_status, std::string_view text) {
  const auto status = static_cast<natsStatus>(nats_status);
  WriteResult r;
  r.message = failure_message(status, text);
  // Order matters: the revision-check failures carry the generic NATS_ERR status, and only the
  // text tells them apart from other API errors.
  if (contains(text, "wrong last sequence") || contains(text, "last sequence mismatch")) {
    r.outcome = Outcome::lost_race; // 10071 "wrong last sequence: N" and 10164 without N
    r.code = Errc::request_failed;
    const auto colon = text.find("sequence: ");
    if (colon != std::string_view::npos) {
      std::uint64_t n = 0;
      for (auto i = colon + 10; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i)
        n = n * 10 + static_cast<std::uint64_t>(text[i] - '0');
      r.current = n;
    }
  } else if (contains(text, "temporarily unavailable") || contains(text, "not ready")) {
    r.outcome = Outcome::retryable; // 10163: the new stream leader has not applied its log yet
    r.code = Errc::request_failed;
  } else if (contains(text, "stream not found")) {
    r.outcome = Outcome::fatal;
    r.code = Errc::bucket_deleted;
  } else if (contains(text, "ermission") || contains(text, "authorization")) {
    r.outcome = Outcome::fatal;
    r.code = Errc::permission_denied;
  } else if (status == NATS_TIMEOUT) {
    r.outcome = Outcome::unknown; // the request may have been applied; re-check before deciding
    r.code = Errc::timeout;
  } else if (status == NATS_CONNECTION_CLOSED) {
    r.outcome = Outcome::fatal;
    r.code = Errc::connection_closed;
  } else if (status == NATS_NO_RESPONDERS) {
    // No stream answered: a stream leader election in progress, or a deleted bucket. The loop
    // probes the bucket to tell which.
    r.outcome = Outcome::retryable;
    r.code = Errc::request_failed;
    r.no_responders = true;
  } else if (status == NATS_CONNECTION_DISCONNECTED || status == NATS_IO_ERROR ||
             status == NATS_STALE_CONNECTION || status == NATS_NOT_YET_CONNECTED) {
    r.outcome = Outcome::unknown;
    r.code = Errc::request_failed;
  } else {
    r.outcome = Outcome::unknown;
    r.code = Errc::nats_error;
  }
  return r;
}

std::unique_ptr<KvPort> make_cnats_port(kvStore* bucket) {
  return std::make_unique<CnatsPort>(bucket);
}

} // namespace kvelect::detail
