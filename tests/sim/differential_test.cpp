// SPDX-License-Identifier: Apache-2.0
// The KV model (kv_model.hpp) against a real nats-server: the same operations on both, every
// result compared (outcomes, revisions, the current revision of a lost race, markers, expiry,
// MaxAge changes, a deleted and re-created bucket, a memory bucket across a server restart,
// and, on servers that have them (2.11 and later), expiry markers as reads and watches see them).
// The simulator's verdicts are only as good as this model, so this is the model's ground truth.
// Writes and reads go through lib/kv.cpp's cnats port, compiled in, so that results are
// classified exactly as the library classifies them; with lib/markers.cpp's check of empty values
// when the bucket has markers.
#include "kv_model.hpp"

#include "handles.hpp"
#include "markers.hpp"
#include "retire.hpp"

#include "nats_server.hpp"

#include <nats/nats.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace kvelect::sim {
namespace {

using namespace std::chrono_literals;

using Clock = std::chrono::steady_clock;

const char* op_name(Op op) {
  switch (op) {
  case Op::absent: return "absent";
  case Op::put: return "put";
  case Op::del: return "del";
  case Op::purge: return "purge";
  case Op::expired: return "expiry marker";
  }
  return "?";
}

std::string describe(const WriteResult& r) {
  return "outcome " + std::to_string(static_cast<int>(r.outcome)) + " revision " +
         std::to_string(r.revision) + " current " + std::to_string(r.current) +
         (r.no_responders ? " no_responders" : "") + " (" + r.message + ")";
}

class Differential : public ::testing::Test {
protected:
  void SetUp() override {
    KVELECT_REQUIRE_NATS_SERVER();
    server_ = std::make_unique<testing::NatsServer>();
    connect();
    t0_ = Clock::now();
  }

  void TearDown() override {
    watcher_.reset();
    port_.reset();
    kv_.reset();
    js_.reset();
    nc_.reset();
  }

  void connect() {
    natsOptions* raw = nullptr;
    ASSERT_EQ(natsOptions_Create(&raw), NATS_OK);
    detail::OptionsHandle options(raw);
    natsOptions_SetURL(options.get(), server_->url().c_str());
    natsOptions_SetTimeout(options.get(), 2000);
    // A restarted server is reconnected to at once, not after cnats' default 2 s.
    natsOptions_SetReconnectWait(options.get(), 20);
    natsOptions_SetMaxReconnect(options.get(), -1);
    natsConnection* nc = nullptr;
    ASSERT_EQ(natsConnection_Connect(&nc, options.get()), NATS_OK);
    nc_.reset(nc);
    jsOptions js_options;
    jsOptions_Init(&js_options);
    js_options.Wait = 1000; // a request nobody answers (a deleted bucket's read) costs 1 s
    jsCtx* js = nullptr;
    ASSERT_EQ(natsConnection_JetStream(&js, nc_.get(), &js_options), NATS_OK);
    js_.reset(js);
  }

  // Makes the bucket on the server and the model beside it.
  void make_bucket(std::chrono::milliseconds ttl, bool memory = true) {
    kvConfig cfg;
    kvConfig_Init(&cfg);
    cfg.Bucket = kBucket;
    cfg.History = 1;
    cfg.TTL = std::chrono::duration_cast<std::chrono::nanoseconds>(ttl).count();
    cfg.StorageType = memory ? js_MemoryStorage : js_FileStorage;
    kvStore* kv = nullptr;
    ASSERT_EQ(js_CreateKeyValue(&kv, js_.get(), &cfg), NATS_OK) << nats_GetLastError(nullptr);
    kv_.reset(kv);
    port_ = detail::make_cnats_port(kv_.get());
    const Nanos ttl_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(ttl).count();
    if (model_ == nullptr)
      model_ = std::make_unique<KvModel>(ttl_ns, stream_created(), memory);
    else
      model_->create_bucket(ttl_ns, stream_created());
  }

  Nanos now() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0_).count();
  }

  std::int64_t stream_created() {
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&si, js_.get(), kStream, nullptr, &jerr) != NATS_OK)
      return -1;
    const std::int64_t created = si->Created;
    jsStreamInfo_Destroy(si);
    return created;
  }

  // The key's last message on the server, markers included: {seq, op} or {0, absent}.
  std::pair<std::uint64_t, Op> last_message(const std::string& key) {
    natsMsg* msg = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const std::string subject = std::string("$KV.") + kBucket + "." + key;
    if (js_GetLastMsg(&msg, js_.get(), kStream, subject.c_str(), nullptr, &jerr) != NATS_OK)
      return {0, Op::absent};
    const std::uint64_t seq = natsMsg_GetSequence(msg);
    const char* operation = nullptr;
    const char* reason = nullptr;
    Op op = Op::put;
    if (natsMsgHeader_Get(msg, "KV-Operation", &operation) == NATS_OK && operation != nullptr)
      op = std::string(operation) == "DEL" ? Op::del : Op::purge;
    else if (natsMsgHeader_Get(msg, "Nats-Marker-Reason", &reason) == NATS_OK &&
             reason != nullptr && std::string(reason) == "MaxAge")
      op = Op::expired;
    natsMsg_Destroy(msg);
    return {seq, op};
  }

  // A header of the key's last message on the server ("" when it has none).
  std::string last_header(const std::string& key, const char* name) {
    natsMsg* raw = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const std::string subject = std::string("$KV.") + kBucket + "." + key;
    if (js_GetLastMsg(&raw, js_.get(), kStream, subject.c_str(), nullptr, &jerr) != NATS_OK)
      return {};
    const detail::Handle<natsMsg, natsMsg_Destroy> msg(raw);
    const char* value = nullptr;
    if (natsMsgHeader_Get(msg.get(), name, &value) != NATS_OK || value == nullptr)
      return {};
    return value;
  }

  // A bucket with expiry markers, made as the library makes it (lib/markers.cpp), read and
  // watched with its marker check; the model places markers kept `marker_ttl`.
  void make_marker_bucket(std::chrono::milliseconds ttl, std::chrono::milliseconds marker_ttl) {
    BucketConfig config;
    config.name = kBucket;
    config.ttl = ttl;
    config.storage = Storage::memory;
    config.expiry_markers = true;
    config.marker_ttl = marker_ttl;
    ASSERT_NO_THROW(detail::create_marker_stream(nc_.get(), config, 2000ms));
    kvStore* kv = nullptr;
    ASSERT_EQ(js_KeyValue(&kv, js_.get(), kBucket), NATS_OK);
    kv_.reset(kv);
    markers_ = detail::make_marker_check(js_.get(), kv_.get());
    port_ = detail::make_cnats_port(kv_.get(), &markers_);
    const auto ns = [](std::chrono::milliseconds d) {
      return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    };
    model_ = std::make_unique<KvModel>(ns(ttl), stream_created(), true);
    model_->set_markers(ns(marker_ttl));
    model_->on_message = [this](const std::string& key, const Message& message) {
      if (key == watched_key_)
        announced_.push_back({message.op, message.seq});
    };
  }

  struct Seen {
    Op op = Op::absent;
    std::uint64_t revision = 0;
    bool operator==(const Seen&) const = default;
  };

  // A cnats watcher of `key`, its events read as the library's watches read them (lib/watch.cpp:
  // the marker check on every empty value), to compare with what the model announces.
  void watch(const std::string& key) {
    kvWatchOptions options;
    kvWatchOptions_Init(&options);
    kvWatcher* raw = nullptr;
    ASSERT_EQ(kvStore_Watch(&raw, kv_.get(), key.c_str(), &options), NATS_OK);
    watcher_.reset(raw);
    watched_key_ = key;
  }

  // The events the watcher has delivered since the last call, against the model's. Called while
  // the last marker is still stored: the check reads its header by its revision, which a newer
  // message of the key (history 1) or the marker's own TTL removes.
  void expect_watched(const std::string& what) {
    std::vector<Seen> seen;
    const auto deadline = Clock::now() + 2s;
    while (seen.size() < announced_.size() && Clock::now() < deadline) {
      kvEntry* raw = nullptr;
      if (kvWatcher_Next(&raw, watcher_.get(), 100) != NATS_OK || raw == nullptr)
        continue; // a timeout, or the end of the initial values
      const detail::EntryHandle entry(raw);
      detail::Entry e;
      switch (kvEntry_Operation(entry.get())) {
      case kvOp_Delete: e.op = Op::del; break;
      case kvOp_Purge: e.op = Op::purge; break;
      default: e.op = Op::put; break;
      }
      e.revision = kvEntry_Revision(entry.get());
      const char* data = static_cast<const char*>(kvEntry_Value(entry.get()));
      e.value.assign(data != nullptr ? data : "",
                     static_cast<std::size_t>(kvEntry_ValueLen(entry.get())));
      markers_.refine(e);
      seen.push_back({e.op, e.revision});
    }
    ASSERT_EQ(seen.size(), announced_.size()) << what << ": events seen by the watcher";
    for (std::size_t i = 0; i < seen.size(); ++i) {
      EXPECT_EQ(seen[i].op, announced_[i].op)
          << what << ", event " << i << ": real " << op_name(seen[i].op) << ", model "
          << op_name(announced_[i].op);
      EXPECT_EQ(seen[i].revision, announced_[i].revision) << what << ", event " << i;
    }
    announced_.clear();
  }

  // cnats 3.4's kvStore_Create and kvStore_Put leave the revision at 0: it is read back.
  WriteResult classify(natsStatus status, const std::string& key) {
    if (status == NATS_OK) {
      WriteResult ok;
      ok.revision = last_message(key).first;
      return ok;
    }
    natsStatus ignored = NATS_OK;
    const char* text = status == NATS_ERR ? nats_GetLastError(&ignored) : nullptr;
    return detail::classify_failure(
        status, text != nullptr && *text != '\0' ? text : natsStatus_GetText(status));
  }

  void expect_same(const std::string& what, const WriteResult& real, const WriteResult& model) {
    EXPECT_EQ(real.outcome, model.outcome)
        << what << ": real " << describe(real) << ", model " << describe(model);
    EXPECT_EQ(real.revision, model.revision) << what;
    EXPECT_EQ(real.current, model.current) << what;
    EXPECT_EQ(real.no_responders, model.no_responders) << what;
  }

  void update(const std::string& key, const std::string& value, std::uint64_t expected) {
    const auto real = port_->write(key, value, expected);
    const auto model = model_->update(key, value, expected, now());
    expect_same("update " + key + " expecting " + std::to_string(expected), real, model);
  }

  void create(const std::string& key, const std::string& value) {
    std::uint64_t revision = 0;
    const auto real = classify(kvStore_Create(&revision, kv_.get(), key.c_str(), value.data(),
                                              static_cast<int>(value.size())),
                               key);
    const auto model = model_->create(key, value, now());
    expect_same("create " + key, real, model);
  }

  void put(const std::string& key, const std::string& value) {
    std::uint64_t revision = 0;
    const auto real =
        classify(kvStore_PutString(&revision, kv_.get(), key.c_str(), value.c_str()), key);
    const auto model = model_->put(key, value, now());
    expect_same("put " + key, real, model);
  }

  // kvStore_Delete and kvStore_Purge return no revision: the marker is read back instead.
  void erase(const std::string& key, bool purge) {
    const natsStatus status = purge ? kvStore_Purge(kv_.get(), key.c_str(), nullptr)
                                    : kvStore_Delete(kv_.get(), key.c_str());
    const auto model = purge ? model_->purge(key, now()) : model_->erase(key, now());
    const std::string what = std::string(purge ? "purge " : "delete ") + key;
    if (!model_->exists()) {
      EXPECT_NE(status, NATS_OK) << what;
      return;
    }
    ASSERT_EQ(status, NATS_OK) << what;
    const auto [seq, op] = last_message(key);
    EXPECT_EQ(seq, model.revision) << what;
    EXPECT_EQ(op, purge ? Op::purge : Op::del) << what;
    const Message* stored = model_->last(key, now());
    ASSERT_NE(stored, nullptr) << what;
    EXPECT_EQ(stored->op, op) << what;
  }

  void get(const std::string& key) {
    const auto real = port_->read(key);
    const auto model = model_->get(key, now());
    const std::string what = "get " + key;
    if (!model_->exists()) {
      // A deleted bucket: 2.9 lets the get time out, later servers answer "no responders"; the
      // model has both (KvModel::set_deleted_get_no_responders).
      EXPECT_TRUE(real.outcome == Outcome::unknown || real.outcome == Outcome::retryable)
          << what << ": real " << real.message;
      EXPECT_EQ(real.entry.op, Op::absent) << what;
      return;
    }
    EXPECT_EQ(real.outcome, model.outcome) << what << ": real " << real.message;
    EXPECT_EQ(real.entry.op, model.entry.op)
        << what << ": real " << op_name(real.entry.op) << ", model " << op_name(model.entry.op);
    EXPECT_EQ(real.entry.value, model.entry.value) << what;
    EXPECT_EQ(real.entry.revision, model.entry.revision) << what;
  }

  void set_max_age(std::chrono::milliseconds max_age) {
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    ASSERT_EQ(js_GetStreamInfo(&si, js_.get(), kStream, nullptr, &jerr), NATS_OK);
    si->Config->MaxAge = std::chrono::duration_cast<std::chrono::nanoseconds>(max_age).count();
    // The server refuses a duplicates window longer than MaxAge.
    si->Config->Duplicates = std::min(si->Config->Duplicates, si->Config->MaxAge);
    jsStreamInfo* updated = nullptr;
    const natsStatus status = js_UpdateStream(&updated, js_.get(), si->Config, nullptr, &jerr);
    jsStreamInfo_Destroy(si);
    ASSERT_EQ(status, NATS_OK) << nats_GetLastError(nullptr);
    jsStreamInfo_Destroy(updated);
    model_->set_max_age(std::chrono::duration_cast<std::chrono::nanoseconds>(max_age).count(),
                        now());
  }

  void expect_info() {
    const auto model = model_->info(now());
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const natsStatus status = js_GetStreamInfo(&si, js_.get(), kStream, nullptr, &jerr);
    if (model.outcome == Outcome::fatal) {
      EXPECT_EQ(status, NATS_NOT_FOUND) << "stream info of a deleted bucket";
      return;
    }
    ASSERT_EQ(status, NATS_OK);
    EXPECT_EQ(si->Config->MaxAge, model.facts.ttl.count());
    EXPECT_EQ(si->Created, model.facts.created_ns);
    EXPECT_EQ(si->State.LastSeq, model_->last_seq());
    jsStreamInfo_Destroy(si);
  }

  static constexpr const char* kBucket = "DIFF";
  static constexpr const char* kStream = "KV_DIFF";
  std::unique_ptr<testing::NatsServer> server_;
  detail::ConnectionHandle nc_;
  detail::JetStreamHandle js_;
  detail::KvHandle kv_;
  std::unique_ptr<detail::KvPort> port_;
  std::unique_ptr<KvModel> model_;
  detail::MarkerCheck markers_;
  // Taken off its connection before it is destroyed (lib/retire.hpp).
  std::unique_ptr<kvWatcher, detail::RetiringWatcherDeleter> watcher_;
  std::string watched_key_;
  std::vector<Seen> announced_;
  Clock::time_point t0_;
};

TEST_F(Differential, RevisionChecksMarkersAndOneSequencePerBucket) {
  make_bucket(60s);
  create("k", "alpha");    // 1
  create("k", "beta");     // lost race, current 1
  update("k", "beta", 1);  // 2
  update("k", "gamma", 1); // lost race, current 2
  update("other", "x", 0); // 3: one sequence for the whole bucket
  update("k", "gamma", 3); // lost race: 3 is another key's revision
  get("k");
  erase("k", false);       // 4: a delete marker is a message
  get("k");                // absent
  update("k", "delta", 0); // lost race, current 4: expected 0 fails over a tombstone
  update("k", "delta", 4); // 5
  erase("k", true);        // 6: purge marker
  get("k");
  create("k", "epsilon");             // 7: kvStore_Create succeeds over a marker
  update("never", "x", 5);            // lost race, current 0
  put("k", "foreign");                // 8: unconditional
  update("k", "kvelect:evict", 8);    // 9
  update("k", "kvelect:released", 9); // 10
  get("k");
  get("never");
  expect_info();
}

TEST_F(Differential, MaxAgeExpiresValuesAndMarkersSilently) {
  make_bucket(1s);
  update("k", "alpha", 0); // 1
  erase("gone", false);    // 2: a marker expires too
  std::this_thread::sleep_for(300ms);
  get("k");
  update("gone", "x", 0); // lost race over the marker, current 2
  std::this_thread::sleep_for(1200ms);
  get("k");               // expired: absent
  update("k", "beta", 1); // lost race, current 0: nothing is left of revision 1
  update("k", "beta", 0); // 3: the sequence does not go back
  update("gone", "y", 0); // 4: the marker expired as well
  expect_info();
}

TEST_F(Differential, MaxAgeChangeAppliesAtOnce) {
  make_bucket(60s);
  update("old", "alpha", 0); // 1
  std::this_thread::sleep_for(700ms);
  update("young", "beta", 0); // 2
  set_max_age(500ms);         // "old" is 0.7 s old: removed at once; "young" stays for now
  get("old");
  get("young");
  expect_info();
  std::this_thread::sleep_for(700ms);
  get("young");
  set_max_age(60s);
  update("old", "gamma", 0); // 3
  get("old");
  expect_info();
}

TEST_F(Differential, DeletedAndRecreatedBucket) {
  make_bucket(60s);
  update("k", "alpha", 0); // 1
  update("k", "beta", 1);  // 2
  jsErrCode jerr = static_cast<jsErrCode>(0);
  ASSERT_EQ(js_DeleteStream(js_.get(), kStream, nullptr, &jerr), NATS_OK);
  model_->delete_bucket();
  update("k", "gamma", 2); // no responders
  get("k");                // no responders too
  erase("k", false);
  expect_info();                     // not found
  std::this_thread::sleep_for(20ms); // a distinct creation time
  make_bucket(60s);
  update("k", "gamma", 2); // lost race, current 0
  update("k", "gamma", 0); // 1: the sequence restarts
  expect_info();
}

TEST_F(Differential, MemoryBucketAcrossServerRestart) {
  make_bucket(60s, true);
  update("k", "alpha", 0);
  update("k", "beta", 1);
  update("other", "x", 0);
  server_->restart();
  model_->restart_server(now());
  // Wait until the connection is back (the server answers stream info requests again).
  for (int i = 0; i < 200; ++i) {
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    const natsStatus status = js_GetStreamInfo(&si, js_.get(), kStream, nullptr, &jerr);
    jsStreamInfo_Destroy(si);
    if (status == NATS_OK || status == NATS_NOT_FOUND)
      break;
    std::this_thread::sleep_for(20ms);
  }
  expect_info();           // not found: the standalone server kept nothing of the memory stream
  update("k", "gamma", 2); // no responders
  make_bucket(60s, true);
  update("k", "gamma", 2); // lost race, current 0
  update("k", "gamma", 0); // 1
  expect_info();
}

// Expiry markers (docs/protocol.md, "Expiry markers"), on servers that have them: MaxAge removing
// a key's last message, a value or a delete marker, leaves a marker with a sequence of its own,
// which reads and watches see (through the library's check of its header) as Op::expired, which
// writes expecting 0 or creates fail over, and which goes after its own TTL without a trace.
// TTL 2 s and markers kept 1 s; every step is 0.5 s away from the server's due times.
TEST_F(Differential, ExpiryMarkers) {
  const auto version = testing::nats_server_version();
  if (!version.at_least(2, 11))
    GTEST_SKIP() << "nats-server " << version.str()
                 << " has no expiry markers (2.11 and later): run with "
                    "KVELECT_NATS_SERVER=$(bash scripts/nats-servers.sh --path sid)";
  make_marker_bucket(2s, 1s);
  watch("k");
  // Each step at its time after the first write, so that a slow step does not delay the rest.
  const auto start = Clock::now();
  const auto at = [&](std::chrono::milliseconds t) { std::this_thread::sleep_until(start + t); };
  update("k", "alpha", 0); // 1
  erase("gone", false);    // 2
  at(500ms);
  get("k");
  expect_watched("a value");
  at(2500ms); // 3 and 4 are markers since 2 s
  get("k");
  const auto [seq, op] = last_message("k");
  EXPECT_EQ(op, Op::expired) << "k's last message, " << seq;
  EXPECT_EQ(last_header("k", "Nats-Marker-Reason"), "MaxAge");
  EXPECT_EQ(last_header("k", "KV-Operation"), "") << "a marker is no KV delete or purge";
  EXPECT_EQ(last_header("k", "Nats-TTL"), "1s") << "the marker TTL, on the marker";
  expect_watched("a value's marker");
  get("gone");            // a delete marker that expired leaves an expiry marker too
  update("k", "beta", 0); // lost race, current 3
  create("k", "beta");    // lost race too: cnats sees the marker as a value, no second try
  update("k", "beta", 3); // 5, expires at 4.5 s
  at(3500ms);             // the marker 4 went at 3 s
  get("gone");
  update("gone", "y", 0); // 6
  get("k");
  at(5000ms); // k's marker 7 since 4.5 s
  get("k");
  expect_watched("a value and its marker");
  expect_info();
}

} // namespace
} // namespace kvelect::sim
