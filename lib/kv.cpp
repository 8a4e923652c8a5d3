// SPDX-License-Identifier: Apache-2.0
#include "kv.hpp"

#include "handles.hpp"
#include "markers.hpp"
#include "status.hpp"

namespace kvelect::detail {
namespace {

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

class CnatsPort final : public KvPort {
public:
  CnatsPort(kvStore* bucket, MarkerCheck markers) : bucket_(bucket), markers_(std::move(markers)) {}

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
    return classify_failure(status, fresh_error_text(status));
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
      const WriteResult failure = classify_failure(status, fresh_error_text(status));
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
    markers_.refine(result.entry); // an expiry marker reads as an empty value
    if (result.entry.op == Op::purge || result.entry.op == Op::del)
      result.entry = Entry{}; // as cnats reports a delete or purge: no live value
    return result;
  }

private:
  kvStore* bucket_;
  MarkerCheck markers_;
};

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
    r.code = errc_of(status);
  } else if (status == NATS_CONNECTION_CLOSED) {
    r.outcome = Outcome::fatal;
    r.code = errc_of(status);
  } else if (status == NATS_NO_RESPONDERS) {
    // No stream answered: a stream leader election in progress, or a deleted bucket. The loop
    // probes the bucket to tell which.
    r.outcome = Outcome::retryable;
    r.code = Errc::request_failed;
    r.no_responders = true;
  } else if (link_failure(status)) {
    r.outcome = Outcome::unknown; // sent or not: the link broke around it
    r.code = Errc::request_failed;
  } else {
    r.code = errc_of(status);
    r.outcome = r.code == Errc::permission_denied ? Outcome::fatal : Outcome::unknown;
  }
  return r;
}

std::unique_ptr<KvPort> make_cnats_port(kvStore* bucket, const MarkerCheck* markers) {
  return std::make_unique<CnatsPort>(bucket, markers != nullptr ? *markers : MarkerCheck{});
}

} // namespace kvelect::detail
