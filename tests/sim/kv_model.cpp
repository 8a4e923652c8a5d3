// SPDX-License-Identifier: Apache-2.0
#include "kv_model.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace kvelect::sim {

std::string wrong_last_sequence(std::uint64_t current) {
  return "wrong last sequence: " + std::to_string(current);
}

KvModel::KvModel(Nanos max_age, Nanos created_ns, bool memory_storage)
    : max_age_(max_age), created_ns_(created_ns), memory_(memory_storage) {}

WriteResult KvModel::no_responders() {
  // A deleted stream has no subscription on its subjects: the request finds nobody, and the
  // library has to ask for the stream's info to tell a deleted bucket from a leader election.
  WriteResult r;
  r.outcome = Outcome::retryable;
  r.no_responders = true;
  r.code = Errc::request_failed;
  r.message = "no responders available for request";
  return r;
}

void KvModel::expire(Nanos now) {
  // The server removes a message once its age reaches MaxAge, when its expiry timer runs; the
  // timer may run `expiry_lag_` late. Evaluating it lazily, at the next request, gives the same
  // answers: an expiry has no other visible effect (nats-server 2.9 announces none).
  if (max_age_ <= 0 || !exists_)
    return;
  std::vector<std::pair<Nanos, std::string>> marked; // (removal time, key)
  for (auto it = keys_.begin(); it != keys_.end();) {
    const Nanos due = expires_at(it->second);
    if (now >= due) {
      // With limit markers, the removal of a key's last message leaves a marker; a marker
      // itself goes without one.
      if (markers() && it->second.op != Op::expired)
        marked.emplace_back(due, it->first);
      it = keys_.erase(it);
    } else {
      ++it;
    }
  }
  if (marked.empty())
    return;
  // The server places each marker when it removes the message, in that order: evaluated late,
  // the markers still get the removal times as their stamps (so they expire when the server's
  // do) and their sequences in removal order (differential_test.cpp, ExpiryMarkers).
  std::sort(marked.begin(), marked.end());
  for (const auto& [due, key] : marked)
    store(key, Op::expired, {}, due);
  // A marker placed that late may be due itself by now; it goes without a marker, so this
  // second pass ends the recursion.
  expire(now);
}

Nanos KvModel::expires_at(const Message& message) const {
  const Nanos age = message.op == Op::expired ? std::min(max_age_, marker_ttl_) : max_age_;
  return message.stamp + age + expiry_lag_;
}

Nanos KvModel::next_expiry() const {
  if (max_age_ <= 0 || !exists_)
    return kForever;
  Nanos next = kForever;
  for (const auto& [key, message] : keys_)
    next = std::min(next, expires_at(message));
  return next;
}

WriteResult KvModel::store(const std::string& key, Op op, std::string_view value, Nanos now) {
  Message message;
  message.op = op;
  message.value = op == Op::put ? std::string(value) : std::string();
  message.seq = ++last_seq_;
  message.stamp = now;
  // History 1 (MaxMsgsPerSubject 1; a purge marker also rolls the subject up): the new message
  // replaces the key's previous one.
  keys_[key] = message;
  if (on_message)
    on_message(key, message);
  WriteResult r;
  r.outcome = Outcome::ok;
  r.revision = message.seq;
  return r;
}

WriteResult KvModel::update(const std::string& key, std::string_view value, std::uint64_t expected,
                            Nanos now) {
  if (!exists_)
    return no_responders();
  expire(now);
  const auto it = keys_.find(key);
  const std::uint64_t current = it == keys_.end() ? 0 : it->second.seq;
  if (current != expected) {
    WriteResult r;
    r.outcome = Outcome::lost_race;
    r.current = current;
    r.code = Errc::request_failed;
    r.message = wrong_last_sequence(current);
    return r;
  }
  return store(key, Op::put, value, now);
}

WriteResult KvModel::create(const std::string& key, std::string_view value, Nanos now) {
  WriteResult first = update(key, value, 0, now);
  if (first.outcome != Outcome::lost_race)
    return first;
  const auto it = keys_.find(key);
  // cnats 3.4 sees an expiry marker as a value (it has no header to tell): no second try.
  if (it == keys_.end() || it->second.op == Op::put || it->second.op == Op::expired)
    return first;
  return update(key, value, it->second.seq, now);
}

WriteResult KvModel::put(const std::string& key, std::string_view value, Nanos now) {
  if (!exists_)
    return no_responders();
  expire(now);
  return store(key, Op::put, value, now);
}

WriteResult KvModel::erase(const std::string& key, Nanos now) {
  if (!exists_)
    return no_responders();
  expire(now);
  return store(key, Op::del, {}, now);
}

WriteResult KvModel::purge(const std::string& key, Nanos now) {
  if (!exists_)
    return no_responders();
  expire(now);
  return store(key, Op::purge, {}, now);
}

ReadResult KvModel::get(const std::string& key, Nanos now) {
  ReadResult r;
  if (!exists_) {
    if (deleted_get_no_responders_) {
      const WriteResult nobody = no_responders();
      r.outcome = nobody.outcome;
      r.code = nobody.code;
      r.message = nobody.message;
      return r;
    }
    // nats-server 2.9.10 with cnats 3.4.1 never answers a get of a deleted stream: it times out
    // (differential_test.cpp), so the outcome is unknown.
    r.outcome = Outcome::unknown;
    r.code = Errc::timeout;
    r.message = "timeout";
    return r;
  }
  expire(now);
  const auto it = keys_.find(key);
  if (it == keys_.end() || it->second.op == Op::del || it->second.op == Op::purge)
    return r; // ok, op absent: no message, or a delete/purge marker
  // An expiry marker is reported as the library's port reports it after reading its header.
  r.entry.op = it->second.op;
  r.entry.value = it->second.value;
  r.entry.revision = it->second.seq;
  return r;
}

core::BucketResult KvModel::info(Nanos now) {
  core::BucketResult r;
  if (!exists_) {
    r.outcome = Outcome::fatal;
    r.code = Errc::bucket_deleted;
    r.message = "stream not found";
    return r;
  }
  expire(now);
  r.facts.ttl = core::Duration(max_age_);
  r.facts.created_ns = created_ns_;
  return r;
}

void KvModel::set_max_age(Nanos max_age, Nanos now) {
  max_age_ = max_age;
  // nats-server runs its expiry check when the configuration changes: messages older than the
  // new MaxAge go at once.
  expire(now);
}

void KvModel::delete_bucket() {
  exists_ = false;
  keys_.clear();
}

void KvModel::create_bucket(Nanos max_age, Nanos created_ns) {
  exists_ = true;
  keys_.clear();
  max_age_ = max_age;
  created_ns_ = created_ns;
  last_seq_ = 0;
  ++epoch_;
}

void KvModel::restart_server(Nanos now) {
  if (!memory_) {
    expire(now);
    return;
  }
  // A standalone server keeps no memory stream across a restart, not even its configuration:
  // the bucket is gone (10059 stream not found) until someone creates it again
  // (differential_test.cpp, nats-server 2.9.10).
  delete_bucket();
  ++epoch_;
}

const Message* KvModel::last(const std::string& key, Nanos now) {
  if (!exists_)
    return nullptr;
  expire(now);
  const auto it = keys_.find(key);
  return it == keys_.end() ? nullptr : &it->second;
}

} // namespace kvelect::sim
