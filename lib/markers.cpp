// SPDX-License-Identifier: Apache-2.0
#include "markers.hpp"

#include "handles.hpp"
#include "status.hpp"

#include <fmt/format.h>

#include <cstring>

namespace kvelect::detail {
namespace {

using MsgHandle = Handle<natsMsg, natsMsg_Destroy>;

// kvelect's Connection uses the default JetStream API prefix (no domain).
constexpr std::string_view kApiPrefix = "$JS.API.";

// Sends one JetStream API request and returns the answer's payload.
std::string api_request(natsConnection* nc, const std::string& subject, const std::string& body,
                        std::chrono::milliseconds timeout, const std::string& what) {
  if (nc == nullptr)
    throw Error(Errc::invalid_argument, fmt::format("{}: no connection", what));
  natsMsg* raw = nullptr;
  const natsStatus status =
      natsConnection_Request(&raw, nc, subject.c_str(), body.data(), static_cast<int>(body.size()),
                             static_cast<std::int64_t>(timeout.count()));
  // cnats' text about this call, read before any other cnats call on this thread (lib/status.hpp).
  const std::string text = status == NATS_OK ? std::string() : fresh_error_text(status);
  MsgHandle reply(raw);
  if (status == NATS_TIMEOUT)
    throw Error(Errc::timeout, fmt::format("{}: no answer within {} ms", what, timeout.count()));
  if (status == NATS_NO_RESPONDERS)
    throw Error(Errc::bucket_unavailable,
                fmt::format("{}: no responders (is JetStream enabled?)", what));
  if (status != NATS_OK)
    throw Error(errc_of(status), fmt::format("{}: {}", what, failure_message(status, text)));
  const char* data = natsMsg_GetData(reply.get());
  return {data != nullptr ? data : "",
          static_cast<std::size_t>(natsMsg_GetDataLength(reply.get()))};
}

// The position just after `"key":` (its first occurrence), or npos.
std::size_t value_at(std::string_view text, std::string_view key) {
  const std::string needle = fmt::format("\"{}\":", key);
  const auto at = text.find(needle);
  return at == std::string_view::npos ? at : at + needle.size();
}

} // namespace

std::optional<std::int64_t> json_number(std::string_view text, std::string_view key) {
  auto i = value_at(text, key);
  if (i == std::string_view::npos || i >= text.size())
    return std::nullopt;
  bool negative = false;
  if (text[i] == '-') {
    negative = true;
    ++i;
  }
  if (i >= text.size() || text[i] < '0' || text[i] > '9')
    return std::nullopt;
  std::int64_t n = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i)
    n = n * 10 + (text[i] - '0');
  return negative ? -n : n;
}

std::optional<bool> json_bool(std::string_view text, std::string_view key) {
  const auto i = value_at(text, key);
  if (i == std::string_view::npos)
    return std::nullopt;
  if (text.substr(i, 4) == "true")
    return true;
  if (text.substr(i, 5) == "false")
    return false;
  return std::nullopt;
}

std::optional<std::string> json_string_value(std::string_view text, std::string_view key) {
  auto i = value_at(text, key);
  if (i == std::string_view::npos || i >= text.size() || text[i] != '"')
    return std::nullopt;
  std::string out;
  for (++i; i < text.size() && text[i] != '"'; ++i) {
    if (text[i] == '\\' && i + 1 < text.size())
      ++i; // an escaped character, kept as it is (enough for the server's error texts)
    out += text[i];
  }
  return out;
}

StreamMarkers read_stream_markers(natsConnection* nc, std::string_view stream,
                                  std::chrono::milliseconds timeout) {
  const std::string what = fmt::format("cannot read stream '{}'", stream);
  const std::string reply =
      api_request(nc, fmt::format("{}STREAM.INFO.{}", kApiPrefix, stream), {}, timeout, what);
  if (reply.find("\"error\":") != std::string::npos) {
    const auto code = json_number(reply, "code");
    const std::string text = json_string_value(reply, "description").value_or(reply);
    if (code == 404)
      throw Error(Errc::not_found, fmt::format("stream '{}' does not exist", stream));
    throw Error(Errc::bucket_unavailable, fmt::format("{}: {}", what, text));
  }
  StreamMarkers m;
  m.allow_msg_ttl = json_bool(reply, "allow_msg_ttl").value_or(false);
  m.marker_ttl =
      std::chrono::nanoseconds(json_number(reply, "subject_delete_marker_ttl").value_or(0));
  return m;
}

void create_marker_stream(natsConnection* nc, const BucketConfig& config,
                          std::chrono::milliseconds timeout) {
  const std::string stream = "KV_" + config.name;
  if (config.marker_ttl < kMinMarkerTtl)
    throw Error(Errc::invalid_option,
                fmt::format("bucket '{}': the marker TTL must be at least 1 s, not {} ms",
                            config.name, config.marker_ttl.count()));
  // Servers before 2.11 ignore stream settings they do not know (they would make a bucket
  // without markers and say nothing): ask for the JetStream API level first, which 2.11 added
  // (level 1), as ADR-48 says clients should.
  const std::string info = api_request(nc, std::string(kApiPrefix) + "INFO", {}, timeout,
                                       "cannot read the server's JetStream information");
  const auto level = json_number(info, "level");
  if (!level || *level < 1)
    throw Error(Errc::not_supported,
                fmt::format("bucket '{}': expiry markers need nats-server 2.11 or newer (the "
                            "server reports no JetStream API level 1)",
                            config.name));
  const auto ns = [](std::chrono::milliseconds d) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  };
  // The stream of a KV bucket as cnats 3.4's js_CreateKeyValue makes it for history 1 (one
  // subject per key, discard new, rollups allowed, no deletes of messages, direct gets), plus
  // the two marker settings.
  const std::string body = fmt::format(
      R"({{"name":"{}","subjects":["$KV.{}.>"],"retention":"limits","max_consumers":-1,)"
      R"("max_msgs":-1,"max_bytes":-1,"max_age":{},"max_msgs_per_subject":1,"max_msg_size":-1,)"
      R"("discard":"new","storage":"{}","num_replicas":{},"allow_rollup_hdrs":true,)"
      R"("deny_delete":true,"allow_direct":true,"allow_msg_ttl":true,)"
      R"("subject_delete_marker_ttl":{}}})",
      stream, config.name, ns(config.ttl), config.storage == Storage::memory ? "memory" : "file",
      config.replicas, ns(config.marker_ttl));
  const std::string what = fmt::format("cannot create bucket '{}'", config.name);
  const std::string reply =
      api_request(nc, fmt::format("{}STREAM.CREATE.{}", kApiPrefix, stream), body, timeout, what);
  if (reply.find("\"error\":") != std::string::npos)
    throw Error(
        Errc::nats_error,
        fmt::format("{}: {}", what, json_string_value(reply, "description").value_or(reply)));
  // Read it back: a server that dropped the settings has made a bucket without markers.
  const StreamMarkers got = read_stream_markers(nc, stream, timeout);
  if (!got.allow_msg_ttl || got.marker_ttl.count() != ns(config.marker_ttl))
    throw Error(Errc::not_supported,
                fmt::format("bucket '{}' was made without expiry markers: the server dropped "
                            "subject_delete_marker_ttl (it needs nats-server 2.11 or newer)",
                            config.name));
}

MarkerReason marker_reason(std::string_view value) {
  if (value == "MaxAge")
    return MarkerReason::max_age;
  if (value == "Purge")
    return MarkerReason::purge;
  if (value == "Remove")
    return MarkerReason::remove;
  return MarkerReason::none;
}

std::optional<MarkerReason> fetch_marker_reason(jsCtx* js, std::string_view stream,
                                                std::uint64_t sequence) {
  if (js == nullptr || sequence == 0)
    return std::nullopt;
  const std::string name(stream);
  natsMsg* raw = nullptr;
  auto jerr = static_cast<jsErrCode>(0);
  const natsStatus status = js_GetMsg(&raw, js, name.c_str(), sequence, nullptr, &jerr);
  MsgHandle msg(raw);
  if (status != NATS_OK)
    return std::nullopt;
  const char* value = nullptr;
  if (natsMsgHeader_Get(msg.get(), "Nats-Marker-Reason", &value) != NATS_OK || value == nullptr)
    return MarkerReason::none;
  return marker_reason(value);
}

void MarkerCheck::refine(Entry& entry) const {
  if (js == nullptr || entry.op != Op::put || !entry.value.empty() || entry.revision == 0)
    return;
  const auto reason = fetch_marker_reason(js, stream, entry.revision);
  if (!reason)
    return;
  switch (*reason) {
  case MarkerReason::max_age: entry.op = Op::expired; break;
  case MarkerReason::purge: entry.op = Op::purge; break;
  case MarkerReason::remove: entry.op = Op::del; break;
  case MarkerReason::none: break;
  }
}

MarkerCheck make_marker_check(jsCtx* js, kvStore* bucket) {
  MarkerCheck check;
  if (js == nullptr || bucket == nullptr)
    return check;
  check.js = js;
  check.stream = std::string("KV_") + kvStore_Bucket(bucket);
  return check;
}

} // namespace kvelect::detail
