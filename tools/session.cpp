// SPDX-License-Identifier: Apache-2.0
#include "session.hpp"

#include "connection_events.hpp"

#include <utility>

namespace kvelect::cli {

bool ElectionSession::ends_campaign(const Error& error) {
  // Error::fatal(): bucket_deleted, permission_denied, connection_closed end the campaign loop.
  return error.fatal();
}

ElectionSession::ElectionSession(const CommonOptions& common, const ElectionFlags& flags,
                                 const Log& log, std::string election, std::string member,
                                 EventLoop& loop, Announcer announce, Announcer settle)
    : member_(std::move(member)), key_(std::move(election)), bucket_name_(common.bucket),
      connection_(connect(common)), bucket_(open_bucket(connection_, common)) {
  // The callbacks run on the campaign thread: they announce the event (its line) and post it to
  // the main thread, and return at once.
  auto deliver = [&loop, announce = std::move(announce),
                  settle = std::move(settle)](ElectionEvent event) {
    if (announce)
      announce(event);
    if (!settle) {
      loop.post(std::move(event));
      return;
    }
    const ElectionEvent copy = event;
    loop.post(std::move(event));
    settle(copy);
  };
  auto state_now = [this] {
    Election* e = self_.load();
    return e != nullptr ? e->state() : State::Unknown;
  };
  std::vector<Option> options = election_options(flags, log);
  options.push_back(OnWon([deliver](Token token) {
    ElectionEvent event;
    event.kind = ElectionEvent::Kind::won;
    event.state = State::Leader;
    event.token = token;
    deliver(std::move(event));
  }));
  options.push_back(OnLost([deliver, state_now] {
    ElectionEvent event;
    event.kind = ElectionEvent::Kind::lost;
    event.state = state_now();
    deliver(std::move(event));
  }));
  options.push_back(OnCampaign([deliver](State state) {
    ElectionEvent event;
    event.kind = ElectionEvent::Kind::campaign;
    event.state = state;
    deliver(std::move(event));
  }));
  options.push_back(OnNewLeader([deliver, state_now](std::optional<std::string_view> leader) {
    ElectionEvent event;
    event.kind = ElectionEvent::Kind::leader;
    event.state = state_now();
    if (leader)
      event.leader = std::string(*leader);
    deliver(std::move(event));
  }));
  options.push_back(OnError([deliver, state_now](const Error& error) {
    ElectionEvent event;
    event.kind = ElectionEvent::Kind::error;
    event.state = state_now();
    event.error = error.what();
    event.fatal = ends_campaign(error);
    deliver(std::move(event));
  }));
  // The CLI's members recognise the server's expiry markers (docs/protocol.md, "Expiry
  // markers"): the bucket was opened on this connection.
  options.push_back(WithJetStream(connection_.jetstream()));
  election_ = std::make_unique<Election>(member_, key_, bucket_.get(), std::move(options));
  self_.store(election_.get());
  set_connection_state_source([this] { return election_->state(); }); // connection event lines
}

ElectionSession::~ElectionSession() {
  set_connection_state_source({});
  if (election_)
    election_->stop();
  self_.store(nullptr);
}

} // namespace kvelect::cli
