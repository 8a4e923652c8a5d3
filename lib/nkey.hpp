// SPDX-License-Identifier: Apache-2.0
// NKey seeds (the "SU..." strings of nsc and the nats CLI's --nkey files): cnats signs with a seed
// file but wants the public key beside it, which kvelect derives here.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kvelect::detail {

/// The seed ("SU...") in the text of a seed file: the first word that decodes as a user seed.
/// nullopt if there is none.
std::optional<std::string> find_user_seed(std::string_view file_text);

/// The public key ("U...") of a user seed. Throws Error(invalid_argument) for a malformed seed,
/// Error(invalid_option) when kvelect was built without libcrypto.
std::string user_public_key(std::string_view seed);

} // namespace kvelect::detail
