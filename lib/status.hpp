// SPDX-License-Identifier: Apache-2.0
// cnats statuses in kvelect's terms: the one table from a natsStatus to an Errc, and the texts
// that go into kvelect::Error messages. Every cnats call site of the library uses these.
#pragma once

#include <kvelect/error.hpp>

#include <nats/nats.h>

#include <string>
#include <string_view>

namespace kvelect::detail {

// The error code of a failed cnats call, from its status alone. Request paths of the campaign
// loop refine it from the error text first (a lost revision check, a deleted stream, a refused
// permission: classify_failure in kv.hpp), and fall back to this.
Errc errc_of(natsStatus status);

// True for statuses of a broken or not yet working link, after which a request may or may not
// have been applied: the campaign loop retries them (Errc::request_failed there).
bool link_failure(natsStatus status);

// A status in words, for messages: cnats' own texts are capitalised labels ("Timeout") that
// read badly after a colon and doubled up as "Timeout (Timeout)" when a message repeated them.
std::string plain_status_text(natsStatus status);

// cnats' text about the call that just failed with `status` on this thread, or "" if it left
// none. cnats keeps the last error per thread and does not clear it when a later call fails
// without setting one (a timeout, say): a text recorded with another status is an older call's
// and is not used. Read it right after the call, before another cnats call on this thread.
std::string fresh_error_text(natsStatus status);

// cnats prefixes some texts with where it set them ("(conn.c:1905): Authorization Violation");
// kvelect's messages are for operators, so that goes.
std::string without_source_location(std::string text);

// The message part for a failed call: cnats' fresh text when it says more than the bare status,
// with the status in words beside it; else the status in words.
std::string failure_message(natsStatus status, std::string_view text);
// The same for the cnats call that just failed with `status` on this thread (its fresh text):
// call it right after the call, as fresh_error_text.
std::string failure_message(natsStatus status);

} // namespace kvelect::detail
