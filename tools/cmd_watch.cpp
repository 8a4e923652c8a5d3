// SPDX-License-Identifier: Apache-2.0
// kvelect watch [--election NAME] [--json]: a live, timestamped stream of election activity,
// from a KV watcher on the bucket (cnats kvStore_Watch / kvStore_WatchAll).
#include "commands.hpp"
#include "connection_events.hpp"
#include "duration.hpp"
#include "event_loop.hpp"
#include "json.hpp"
#include "metrics.hpp"
#include "retire.hpp"
#include "startup.hpp"
#include "status.hpp"
#include "timefmt.hpp"
#include "watch_tracker.hpp"

#include <nats/nats.h>

#include <fmt/format.h>

#include <csignal>
#include <memory>
#include <thread>

namespace kvelect::cli {
namespace {

// Takes the watcher off its connection before destroying it: destroying it at once can crash
// cnats 3.4.1 (lib/retire.hpp).
using WatcherPtr = std::unique_ptr<kvWatcher, detail::RetiringWatcherDeleter>;

struct EntryDeleter {
  void operator()(kvEntry* e) const noexcept {
    if (e != nullptr)
      kvEntry_Destroy(e);
  }
};
using EntryPtr = std::unique_ptr<kvEntry, EntryDeleter>;

std::string quoted(const std::optional<std::string>& name) {
  return name ? "'" + *name + "'" : std::string("-");
}

std::string activity_text(const WatchTracker::Activity& a, std::chrono::milliseconds ttl) {
  using Kind = WatchTracker::Kind;
  std::string details;
  switch (a.kind) {
  case Kind::current:
    details = a.leader ? fmt::format("leader {} (revision {})", quoted(a.leader), a.revision)
                       : fmt::format("no leader, value '{}' (revision {})", a.value, a.revision);
    break;
  case Kind::won:
    details = a.previous ? fmt::format("new leader {}, was {} (revision {})", quoted(a.leader),
                                       quoted(a.previous), a.revision)
                         : fmt::format("new leader {} (revision {})", quoted(a.leader), a.revision);
    break;
  case Kind::renewed:
    details = fmt::format("{} (revision {})", quoted(a.leader), a.revision);
    break;
  case Kind::released:
  case Kind::evicted:
  case Kind::deleted:
  case Kind::purged: details = fmt::format("{} (revision {})", quoted(a.leader), a.revision); break;
  case Kind::expired:
    details =
        fmt::format("{} (no renewal within the {} TTL)", quoted(a.leader), format_duration(ttl));
    break;
  }
  return fmt::format("{} {:<8} {}: {}", rfc3339(a.time), to_string(a.kind), a.election, details);
}

std::string activity_json(const WatchTracker::Activity& a) {
  JsonObject json;
  json.add("time", rfc3339(a.time))
      .add("election", a.election)
      .add("event", to_string(a.kind))
      .add("leader", a.leader);
  if (a.kind == WatchTracker::Kind::won)
    json.add("previous", a.previous);
  if (a.kind == WatchTracker::Kind::current)
    json.add("value", a.value);
  if (a.revision != 0)
    json.add("revision", a.revision);
  return json.str();
}

// Whether the key names a leader after `a`.
bool leads_after(const WatchTracker::Activity& a) {
  switch (a.kind) {
  case WatchTracker::Kind::current: return a.leader.has_value();
  case WatchTracker::Kind::won:
  case WatchTracker::Kind::renewed: return true;
  default: return false;
  }
}

} // namespace

int watch_command(const WatchOptions& o) {
  using namespace std::chrono;
  require_metrics_support(o.metrics);
  set_connection_event_sink([&o](const ConnectionEventLine& line) {
    emit_line(o.json ? connection_event_watch_json(line) : connection_event_watch_text(line));
  });
  block_signals();
  EventLoop loop;
  auto [connection, bucket] = connect_interruptibly(loop, [&] {
    Connection c = connect(o.common);
    Bucket b = open_bucket(c, o.common);
    return std::pair<Connection, Bucket>(std::move(c), std::move(b));
  });
  const milliseconds ttl = bucket.info().ttl;
  std::unique_ptr<WatchMetrics> metrics;
  if (!o.metrics.empty()) {
    metrics = serve_watch_metrics(o.metrics);
    write_line(stderr, fmt::format("kvelect: serving metrics at {}", metrics->url()));
  }

  auto make_watcher = [&]() -> WatcherPtr {
    kvWatcher* raw = nullptr;
    const natsStatus status = o.election.empty()
                                  ? kvStore_WatchAll(&raw, bucket.get(), nullptr)
                                  : kvStore_Watch(&raw, bucket.get(), o.election.c_str(), nullptr);
    if (status != NATS_OK)
      throw Failure(fmt::format("cannot watch bucket '{}': {}", o.common.bucket,
                                detail::failure_message(status)));
    return WatcherPtr(raw, detail::RetiringWatcherDeleter{connection.get()});
  };

  WatchTracker tracker(ttl);
  WatcherPtr watcher = make_watcher();
  bool initial = true;
  std::uint64_t last_revision = 0; // revisions are bucket-wide: skip replays after a re-watch
  if (!o.json)
    emit_line(fmt::format("# watching {} in bucket '{}' (ttl {})",
                          o.election.empty() ? std::string("all elections")
                                             : "election '" + o.election + "'",
                          o.common.bucket, format_duration(ttl)));

  auto print = [&](const std::vector<WatchTracker::Activity>& activities) {
    for (const auto& a : activities) {
      if (!emit_line(o.json ? activity_json(a) : activity_text(a, ttl)))
        return false;
      if (metrics)
        metrics->saw(a.election, to_string(a.kind), leads_after(a));
    }
    return true;
  };

  for (;;) {
    for (int sig : loop.poll_signals())
      if (sig != SIGCHLD)
        return kExitOk;
    if (!print(tracker.on_tick(system_clock::now())))
      return kExitOk;
    // Wait at most 200 ms (to notice signals) and not past the next expiry.
    milliseconds wait(200);
    if (auto next = tracker.next_expiry())
      wait = std::clamp(ceil<milliseconds>(*next - system_clock::now()), milliseconds(1), wait);
    kvEntry* raw = nullptr;
    const natsStatus status = kvWatcher_Next(&raw, watcher.get(), wait.count());
    EntryPtr entry(raw);
    if (status == NATS_TIMEOUT)
      continue;
    if (status != NATS_OK) {
      const std::string error = detail::failure_message(status);
      std::fprintf(stderr, "kvelect: watch failed (%s): watching again\n", error.c_str());
      std::this_thread::sleep_for(milliseconds(250));
      try {
        watcher = make_watcher();
        initial = true;
      } catch (const Failure& e) {
        std::fprintf(stderr, "kvelect: %s\n", e.what());
      }
      continue;
    }
    if (!entry) { // the end of the initial values
      initial = false;
      continue;
    }
    const std::uint64_t revision = kvEntry_Revision(entry.get());
    if (revision <= last_revision)
      continue;
    last_revision = revision;
    WatchTracker::Update update;
    update.key = kvEntry_Key(entry.get());
    switch (kvEntry_Operation(entry.get())) {
    case kvOp_Delete: update.op = WatchTracker::Op::del; break;
    case kvOp_Purge: update.op = WatchTracker::Op::purge; break;
    default: update.op = WatchTracker::Op::put; break;
    }
    const char* data = static_cast<const char*>(kvEntry_Value(entry.get()));
    if (data != nullptr)
      update.value.assign(data, static_cast<std::size_t>(kvEntry_ValueLen(entry.get())));
    update.revision = revision;
    update.initial = initial;
    // Initial values carry the server's write time (their age matters for expiry); live ones
    // our clock, so that a skewed server clock does not fake expiries.
    update.time = initial
                      ? std::min(from_unix_nanos(kvEntry_Created(entry.get())), system_clock::now())
                      : system_clock::now();
    if (!print(tracker.on_update(update)))
      return kExitOk;
  }
}

} // namespace kvelect::cli
