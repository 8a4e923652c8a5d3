// SPDX-License-Identifier: Apache-2.0
// The simulator's trace: the last N things that happened, for the report of a failed run, or
// everything, printed as it happens, when a seed is replayed verbosely. Records are formatted
// only when tracing is on: a batch of seeds runs with it off, and a failed seed is run once more
// with it on (a seed replays exactly), so a run that passes never pays for the text.
#pragma once

#include "kv_model.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace kvelect::sim {

struct TraceRecord {
  Nanos at = 0;     // real (simulated) time
  int member = -1;  // -1: the world (server, network, operator)
  std::string what; // already formatted text
};

class Trace {
public:
  Trace(std::size_t capacity, bool verbose) : capacity_(capacity), verbose_(verbose) {
    ring_.reserve(capacity_);
  }
  // Whether records are kept at all: callers format their text only when this is true.
  [[nodiscard]] bool on() const noexcept { return capacity_ > 0 || verbose_; }
  // Member labels for printing ("m1 bravo").
  void set_label(int member, std::string label);
  void add(Nanos at, int member, std::string what);
  [[nodiscard]] bool verbose() const noexcept { return verbose_; }
  // The last `lines` records, oldest first, one per line.
  [[nodiscard]] std::string tail(std::size_t lines) const;
  [[nodiscard]] std::string format(const TraceRecord& record) const;

private:
  std::size_t capacity_;
  bool verbose_;
  std::vector<TraceRecord> ring_;
  std::size_t next_ = 0; // where the next record goes once the ring is full
  std::vector<std::string> labels_;
};

// "12.345678s"
std::string seconds(Nanos t);

} // namespace kvelect::sim
