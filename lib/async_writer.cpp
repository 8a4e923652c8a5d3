// SPDX-License-Identifier: Apache-2.0
#include "async_writer.hpp"

#include "handles.hpp"
#include "retire.hpp"
#include "status.hpp"

#include <fmt/format.h>

#include <charconv>

namespace kvelect::detail {

namespace {

// The value of `"name":` in a flat JSON text: a number or a string (escapes are not undone:
// the server's texts here have none that matter for the classification).
std::string_view json_field(std::string_view body, std::string_view name) {
  const std::string key = fmt::format("\"{}\":", name);
  auto at = body.find(key);
  if (at == std::string_view::npos)
    return {};
  at += key.size();
  while (at < body.size() && body[at] == ' ')
    ++at;
  if (at < body.size() && body[at] == '"') {
    const auto end = body.find('"', at + 1);
    return end == std::string_view::npos ? std::string_view{} : body.substr(at + 1, end - at - 1);
  }
  auto end = at;
  while (end < body.size() && body[end] >= '0' && body[end] <= '9')
    ++end;
  return body.substr(at, end - at);
}

} // namespace

WriteResult parse_ack(bool status_503, std::string_view body) {
  if (status_503)
    return classify_failure(NATS_NO_RESPONDERS, {});
  if (body.find("\"error\"") != std::string_view::npos) {
    // A JetStream API error: the same texts kvStore_Update reports (10071 "wrong last sequence:
    // N", 10164, 10163, ...), classified by the same table.
    std::string_view text = json_field(body, "description");
    if (text.empty())
      text = body;
    return classify_failure(NATS_ERR, text);
  }
  const std::string_view seq = json_field(body, "seq");
  std::uint64_t revision = 0;
  const auto [end, error] = std::from_chars(seq.data(), seq.data() + seq.size(), revision);
  if (error != std::errc() || revision == 0 || seq.empty()) {
    WriteResult r;
    r.outcome = Outcome::unknown; // something answered, but not as JetStream does: re-check
    r.code = Errc::request_failed;
    r.message = fmt::format("unexpected reply to a KV write: '{}'", body.substr(0, 200));
    return r;
  }
  return {Outcome::ok, revision, 0, false, Errc::ok, {}};
}

// ---------------------------------------------------------------------------------------------
// AsyncWriter

struct AsyncWriter::Shared {
  std::mutex mu;
  std::unordered_map<std::uint64_t, Done> pending;
  std::uint64_t next = 1;
  std::string prefix; // "<inbox>."
  bool closed = false;
};

namespace {

// Runs on the subscription's delivery thread: the result goes to the election at once.
void on_reply(natsConnection* /*nc*/, natsSubscription* /*sub*/, natsMsg* raw, void* closure) {
  const MsgHandle msg(raw);
  auto& shared = **static_cast<std::shared_ptr<AsyncWriter::Shared>*>(closure);
  const std::string_view subject = natsMsg_GetSubject(msg.get());
  std::uint64_t ticket = 0;
  if (subject.size() > shared.prefix.size())
    std::from_chars(subject.data() + shared.prefix.size(), subject.data() + subject.size(), ticket);
  AsyncWriter::Done done;
  {
    std::lock_guard lock(shared.mu);
    const auto it = shared.pending.find(ticket);
    if (shared.closed || it == shared.pending.end())
      return; // timed out (cancelled) or the writer is gone: nobody waits for it
    done = std::move(it->second);
    shared.pending.erase(it);
  }
  const char* data = natsMsg_GetData(msg.get());
  const std::string_view body(data != nullptr ? data : "",
                              static_cast<std::size_t>(natsMsg_GetDataLength(msg.get())));
  done(parse_ack(natsMsg_IsNoResponders(msg.get()), body));
}

// cnats calls it once the subscription is closed and its handler has returned for the last time.
void on_complete(void* closure) {
  delete static_cast<std::shared_ptr<AsyncWriter::Shared>*>(closure);
}

// The last owner of a retiring subscription retires and destroys it, whichever thread that is
// (the job that ran, a job dropped unrun, or the writer's destructor).
class RetiringSubscription {
public:
  RetiringSubscription(SubscriptionHandle subscription, natsConnection* connection)
      : subscription_(std::move(subscription)), connection_(connection) {}
  ~RetiringSubscription() { retire(subscription_.get(), connection_); }
  RetiringSubscription(const RetiringSubscription&) = delete;
  RetiringSubscription& operator=(const RetiringSubscription&) = delete;
  RetiringSubscription(RetiringSubscription&&) = delete;
  RetiringSubscription& operator=(RetiringSubscription&&) = delete;

private:
  SubscriptionHandle subscription_; // destroyed after the destructor's body: after retire()
  natsConnection* connection_;
};

} // namespace

AsyncWriter::AsyncWriter(natsConnection* connection, Defer defer)
    : connection_(connection), defer_(std::move(defer)), shared_(std::make_shared<Shared>()) {
  natsInbox* inbox = nullptr;
  if (const natsStatus s = natsInbox_Create(&inbox); s != NATS_OK)
    throw Error(errc_of(s), fmt::format("cannot make a reply inbox: {}", failure_message(s)));
  shared_->prefix = fmt::format("{}.", inbox);
  natsInbox_Destroy(inbox);
  auto closure = std::make_unique<std::shared_ptr<Shared>>(shared_);
  natsSubscription* raw = nullptr;
  const std::string subject = shared_->prefix + "*";
  if (const natsStatus s =
          natsConnection_Subscribe(&raw, connection_, subject.c_str(), on_reply, closure.get());
      s != NATS_OK)
    throw Error(errc_of(s),
                fmt::format("cannot subscribe to the KV write replies: {}", failure_message(s)));
  subscription_.reset(raw);
  // Replies come as fast as elections write; never drop one for a pending limit (a dropped
  // reply would only cost a timeout, but a needless one).
  natsSubscription_SetPendingLimits(raw, -1, -1);
  if (natsSubscription_SetOnCompleteCB(raw, on_complete, closure.get()) == NATS_OK)
    (void)closure.release(); // cnats frees it through on_complete
  else
    leaked_ = std::move(closure); // kept until the writer is destroyed, and then for ever
}

AsyncWriter::~AsyncWriter() {
  std::unordered_map<std::uint64_t, Done> dropped; // destroyed outside the lock, as in cancel()
  {
    std::lock_guard lock(shared_->mu);
    shared_->closed = true;
    dropped.swap(shared_->pending);
  }
  // No reply is handled from here on (closed), and none reaches the subscription once it is off
  // the connection's table: unsubscribed now, before the last election's stop() returns.
  if (subscription_)
    (void)natsSubscription_Unsubscribe(subscription_.get());
  // Destroyed once cnats' reader is done with it (lib/retire.hpp), here or in `defer_`'s job;
  // the subscription holds its connection, so the connection may be closed meanwhile.
  auto retiring = std::make_shared<RetiringSubscription>(std::move(subscription_), connection_);
  if (defer_) {
    try {
      // The job owns it: it ends where the job is destroyed, after running or dropped unrun.
      defer_([owned = std::move(retiring)] { (void)owned; });
    } catch (...) { // NOLINT(bugprone-empty-catch): not deferred; ended on this thread
    }
  }
  retiring.reset(); // when not deferred
  // A closure cnats would not take back: the handler may still run once, so it stays.
  (void)leaked_.release();
}

std::uint64_t AsyncWriter::write(const std::string& subject, std::string_view value,
                                 std::uint64_t expected, Done done, WriteResult& failed) {
  std::uint64_t ticket = 0;
  {
    std::lock_guard lock(shared_->mu);
    ticket = shared_->next++;
    shared_->pending.emplace(ticket, std::move(done));
  }
  const std::string reply = fmt::format("{}{}", shared_->prefix, ticket);
  natsMsg* raw = nullptr;
  natsStatus s = natsMsg_Create(&raw, subject.c_str(), reply.c_str(), value.data(),
                                static_cast<int>(value.size()));
  const MsgHandle msg(raw);
  // The revision check kvStore_Update makes: "0" expects no message on the subject.
  const std::string last = std::to_string(expected);
  if (s == NATS_OK)
    s = natsMsgHeader_Set(msg.get(), "Nats-Expected-Last-Subject-Sequence", last.c_str());
  if (s == NATS_OK)
    s = natsConnection_PublishMsg(connection_, msg.get());
  if (s == NATS_OK)
    return ticket;
  failed = classify_failure(s, fresh_error_text(s));
  cancel(ticket);
  return 0;
}

bool AsyncWriter::cancel(std::uint64_t ticket) noexcept {
  Done dropped; // destroyed outside the lock: it may hold the last reference to an election
  std::lock_guard lock(shared_->mu);
  const auto it = shared_->pending.find(ticket);
  if (it == shared_->pending.end())
    return false;
  dropped = std::move(it->second);
  shared_->pending.erase(it);
  return true;
}

} // namespace kvelect::detail
