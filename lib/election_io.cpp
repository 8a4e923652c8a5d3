// SPDX-License-Identifier: Apache-2.0
// The own-thread driver's request thread (IoWorker, lib/election_impl.hpp) and the bucket read
// that both drivers send for the core (the TTL and, with WithJetStream, the stream's creation
// time: docs/protocol.md, "Bucket changes").
#include "election_impl.hpp"

#include "handles.hpp"
#include "status.hpp"

#include <kvelect/nats.hpp>

#include <fmt/format.h>

#include <utility>

namespace kvelect::detail {

IoWorker::IoWorker() : thread_([this](std::stop_token stop) { run(std::move(stop)); }) {}

IoWorker::~IoWorker() {
  thread_.request_stop();
  if (thread_.joinable())
    thread_.join();
}

void IoWorker::post(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void IoWorker::run(std::stop_token stop) {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mu_);
      if (!cv_.wait(lock, stop, [this] { return !jobs_.empty(); }))
        return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

core::BucketResult read_stream_info(const MarkerCheck& jetstream) {
  core::BucketResult result;
  jsStreamInfo* raw = nullptr;
  auto jerr = static_cast<jsErrCode>(0);
  const natsStatus status =
      js_GetStreamInfo(&raw, jetstream.js, jetstream.stream.c_str(), nullptr, &jerr);
  const StreamInfoHandle info(raw);
  if (status == NATS_OK && info && info->Config != nullptr) {
    result.facts.ttl = std::chrono::nanoseconds(info->Config->MaxAge);
    result.facts.created_ns = info->Created;
    return result;
  }
  // Only "stream not found" proves the bucket is gone; anything else may pass.
  const bool gone = status == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr;
  result.outcome = gone ? detail::Outcome::fatal : detail::Outcome::retryable;
  result.code = gone ? Errc::not_found : errc_of(status);
  result.message = gone ? fmt::format("bucket '{}' does not exist", jetstream.stream.substr(3))
                        : failure_message(status);
  return result;
}

core::BucketResult read_bucket(kvStore* bucket, const MarkerCheck& jetstream) {
  if (jetstream.enabled())
    return read_stream_info(jetstream);
  core::BucketResult result;
  try {
    const BucketInfo info = bucket_info(bucket);
    result.facts.ttl = info.ttl;
  } catch (const Error& error) {
    // Only "not found" proves the bucket is gone; anything else may pass.
    result.outcome =
        error.code() == Errc::not_found ? detail::Outcome::fatal : detail::Outcome::retryable;
    result.code = error.code();
    result.message = error.what();
  }
  return result;
}

} // namespace kvelect::detail
