// SPDX-License-Identifier: Apache-2.0
#include "trace.hpp"

#include <fmt/format.h>

#include <cstdio>

namespace kvelect::sim {

std::string seconds(Nanos t) {
  if (t == kForever)
    return "never";
  return fmt::format("{}{}.{:06}s", t < 0 ? "-" : "", (t < 0 ? -t : t) / kSec,
                     ((t < 0 ? -t : t) % kSec) / 1000);
}

void Trace::set_label(int member, std::string label) {
  if (member < 0)
    return;
  if (static_cast<std::size_t>(member) >= labels_.size())
    labels_.resize(static_cast<std::size_t>(member) + 1);
  labels_[static_cast<std::size_t>(member)] = std::move(label);
}

std::string Trace::format(const TraceRecord& record) const {
  std::string who = "world";
  if (record.member >= 0) {
    const auto i = static_cast<std::size_t>(record.member);
    who = i < labels_.size() ? labels_[i] : fmt::format("m{}", record.member);
  }
  return fmt::format("[{:>14}] {:<10} {}", seconds(record.at), who, record.what);
}

void Trace::add(Nanos at, int member, std::string what) {
  TraceRecord record{at, member, std::move(what)};
  if (verbose_)
    std::printf("%s\n", format(record).c_str());
  if (capacity_ == 0)
    return;
  if (ring_.size() < capacity_) {
    ring_.push_back(std::move(record));
    return;
  }
  ring_[next_] = std::move(record);
  next_ = (next_ + 1) % capacity_;
}

std::string Trace::tail(std::size_t lines) const {
  std::string out;
  const std::size_t n = ring_.size();
  const std::size_t take = std::min(lines, n);
  // Oldest record: ring_[next_] once the ring has wrapped, ring_[0] before.
  const std::size_t oldest = n < capacity_ ? 0 : next_;
  for (std::size_t k = n - take; k < n; ++k) {
    out += format(ring_[(oldest + k) % n]);
    out += '\n';
  }
  return out;
}

} // namespace kvelect::sim
