// SPDX-License-Identifier: Apache-2.0
// The file `kvelect file` keeps while leader: its JSON content, and an atomic write (a temporary
// file in the same directory, fsync, rename) so that a reader never sees a partial file.
#pragma once

#include <kvelect/options.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace kvelect::cli {

struct LeaderRecord {
  std::string leader;
  std::chrono::system_clock::time_point since;
  Token token = 0;
  std::uint64_t count = 0; ///< wins of this process so far
};

/// {"leader": "...", "since": "RFC 3339", "token": N, "count": N} and a newline.
std::string leader_json(const LeaderRecord& record);

/// Writes `content` to `path` atomically. Throws std::system_error naming the path on failure
/// (the temporary file is removed).
void write_atomically(const std::string& path, const std::string& content);

/// True if `path` holds a file this tool wrote (it starts with {"leader": ).
bool looks_like_leader_file(const std::string& path);

} // namespace kvelect::cli
