// SPDX-License-Identifier: Apache-2.0
#include "fault_common.hpp"

#include "retire.hpp"

#ifndef KVELECT_FAULT_MEMBER
#error "KVELECT_FAULT_MEMBER must name the kvelect-fault-member binary (tests/fault/meson.build)"
#endif

#include <atomic>
#include <cctype>
#include <cstdio>
#include <ctime>

namespace kvelect::testing::fault {

std::string bucket_name(std::string_view prefix) {
  static std::atomic<int> counter{0};
  std::string name(prefix);
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info != nullptr) {
    name += "_";
    for (char c : std::string(info->name()))
      name += (std::isalnum(static_cast<unsigned char>(c)) != 0) ? c : '_';
  }
  name += "_" + std::to_string(counter++);
  return name;
}

Connection connect(const std::vector<std::string>& urls, std::chrono::milliseconds timeout) {
  ConnectOptions options;
  options.servers = urls;
  options.timeout = timeout;
  options.name = "fault-test";
  return Connection::connect(options);
}

Bucket make_bucket(const Connection& connection, std::chrono::milliseconds ttl,
                   const std::string& name, Storage storage, int replicas) {
  BucketConfig config;
  config.name = name;
  config.ttl = ttl;
  config.storage = storage;
  config.replicas = replicas;
  return Bucket::create(connection, config);
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition())
      return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

MemberSpec member_spec(const std::string& url, const std::string& bucket, const std::string& name,
                       const std::string& key) {
  MemberSpec spec;
  spec.servers = {url};
  spec.bucket = bucket;
  spec.name = name;
  spec.key = key;
  spec.debug = true; // library debug lines go to the member's log, kept when a test fails
  return spec;
}

MemberSpec fault_member_spec(const std::vector<std::string>& urls, const std::string& bucket,
                             const std::string& name, int timeout_ms) {
  MemberSpec spec;
  spec.binary = KVELECT_FAULT_MEMBER;
  spec.servers = urls;
  spec.bucket = bucket;
  spec.name = name;
  spec.debug = true;
  spec.extra_args = {"--timeout", std::to_string(timeout_ms)};
  return spec;
}

int delete_consumers(const Connection& connection, const std::string& stream) {
  jsConsumerNamesList* names = nullptr;
  jsErrCode error = static_cast<jsErrCode>(0);
  if (js_ConsumerNames(&names, connection.jetstream(), stream.c_str(), nullptr, &error) != NATS_OK)
    return 0;
  int deleted = 0;
  for (int i = 0; i < names->Count; ++i)
    if (js_DeleteConsumer(connection.jetstream(), stream.c_str(), names->List[i], nullptr,
                          &error) == NATS_OK)
      ++deleted;
  jsConsumerNamesList_Destroy(names);
  return deleted;
}

// ---------------------------------------------------------------------------------------------

KeyWatcher::KeyWatcher(kvStore* bucket, const std::string& key, History& history)
    : bucket_(bucket), key_(key), history_(history),
      thread_([this](std::stop_token stop) { pump(std::move(stop)); }) {}

KeyWatcher::~KeyWatcher() {
  thread_.request_stop();
  if (thread_.joinable())
    thread_.join();
}

void KeyWatcher::pump(std::stop_token stop) {
  kvWatcher* watcher = nullptr;
  while (!stop.stop_requested() &&
         kvStore_Watch(&watcher, bucket_, key_.c_str(), nullptr) != NATS_OK)
    std::this_thread::sleep_for(50ms);
  if (watcher == nullptr)
    return;
  while (!stop.stop_requested()) {
    kvEntry* raw = nullptr;
    const natsStatus status = kvWatcher_Next(&raw, watcher, 50);
    const std::int64_t now = monotonic_ns();
    if (status != NATS_OK || raw == nullptr)
      continue;
    Entry entry;
    entry.ns = now;
    entry.revision = kvEntry_Revision(raw);
    timespec real{};
    clock_gettime(CLOCK_REALTIME, &real);
    const std::int64_t realtime =
        static_cast<std::int64_t>(real.tv_sec) * 1'000'000'000 + real.tv_nsec;
    entry.stamp_ns = kvEntry_Created(raw) - (realtime - monotonic_ns());
    switch (kvEntry_Operation(raw)) {
    case kvOp_Delete: entry.op = "del"; break;
    case kvOp_Purge: entry.op = "purge"; break;
    default: entry.op = "put"; break;
    }
    if (const char* data = static_cast<const char*>(kvEntry_Value(raw)))
      entry.value.assign(data, static_cast<std::size_t>(kvEntry_ValueLen(raw)));
    kvEntry_Destroy(raw);
    history_.record({now, "kv", entry.op, entry.value + " rev " + std::to_string(entry.revision)});
    {
      std::lock_guard lock(mu_);
      entries_.push_back(entry);
    }
    cv_.notify_all();
  }
  // The key still changes: take the watcher off the connection first (lib/retire.hpp).
  kvelect::detail::retire(watcher, nullptr);
  kvWatcher_Destroy(watcher);
}

std::optional<KeyWatcher::Entry> KeyWatcher::wait(const std::function<bool(const Entry&)>& match,
                                                  std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  std::optional<Entry> found;
  cv_.wait_for(lock, timeout, [&] {
    for (const auto& e : entries_)
      if (match(e)) {
        found = e;
        return true;
      }
    return false;
  });
  return found;
}

std::vector<KeyWatcher::Entry> KeyWatcher::entries() const {
  std::lock_guard lock(mu_);
  return entries_;
}

// ---------------------------------------------------------------------------------------------

bool starved(const History& history, const std::string& member, std::int64_t from_ns,
             std::int64_t to_ns) {
  return history.longest_stall(member, from_ns, to_ns) >= 50'000'000;
}

int node_with_client(NatsCluster& cluster, const std::string& client_name) {
  for (int i = 0; i < cluster.size(); ++i) {
    auto& node = cluster.node(i);
    if (!node.running() || node.paused())
      continue;
    const auto response = node.monitor_get("/connz?limit=1024", 2s);
    if (!response || response->status != 200)
      continue;
    // The connection list is JSON; a client's name appears as "name": "<client_name>".
    const std::string& body = response->body;
    for (std::string needle :
         {"\"name\": \"" + client_name + "\"", "\"name\":\"" + client_name + "\""})
      if (body.find(needle) != std::string::npos)
        return i;
  }
  return -1;
}

std::string stream_leader(const Connection& connection, const std::string& stream) {
  jsStreamInfo* info = nullptr;
  jsErrCode error = static_cast<jsErrCode>(0);
  const natsStatus status =
      js_GetStreamInfo(&info, connection.jetstream(), stream.c_str(), nullptr, &error);
  std::string leader;
  if (status == NATS_OK && info != nullptr && info->Cluster != nullptr &&
      info->Cluster->Leader != nullptr)
    leader = info->Cluster->Leader;
  if (info != nullptr)
    jsStreamInfo_Destroy(info);
  return leader;
}

int node_index(NatsCluster& cluster, const std::string& server_name) {
  for (int i = 0; i < cluster.size(); ++i)
    if (cluster.node(i).server_name() == server_name)
      return i;
  return -1;
}

} // namespace kvelect::testing::fault
