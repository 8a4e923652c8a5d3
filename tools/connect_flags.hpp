// SPDX-License-Identifier: Apache-2.0
// The connection flags of every command, with the nats CLI's names and environment variables,
// and how they combine with a NATS context into kvelect::ConnectOptions (docs/cli.md,
// "Connecting").
#pragma once

#include "cli_common.hpp"

#include <kvelect/nats.hpp>

#include <string>

namespace CLI {
class App;
}

namespace kvelect::cli {

/// Adds --server, --user, --password, --token, --creds, --nkey, --tlscert, --tlskey, --tlsca,
/// --context and --no-context to `app`, in `group`.
void add_connection_flags(CLI::App* app, CommonOptions& options, const std::string& group);

/// ConnectOptions from the flags (and their environment variables) over the NATS context, if
/// any: a flag wins over the context's field; any authentication flag replaces all of the
/// context's authentication. A user without a password is a token, as in the nats CLI. Throws
/// UsageError for an unknown --context, Failure for a context that cannot be used. `context_name`
/// gets the name of the context used ("" for none).
ConnectOptions resolve_connect_options(const CommonOptions& options, std::string* context_name);

/// Stops cnats' threads (nats_CloseAndWait, bounded) once every connection is gone, before the
/// process exits: OpenSSL frees its locks in an atexit handler, which must not race with a cnats
/// thread that still uses them (ThreadSanitizer saw that after a TLS connect).
void close_nats_library() noexcept;

} // namespace kvelect::cli
