// SPDX-License-Identifier: Apache-2.0
// kvelect evict ELECTION [--force]: force a new election (kvelect::evict).
#include "commands.hpp"

#include <kvelect/election.hpp>

#include <fmt/format.h>

#include <unistd.h>
#include <cstdio>
#include <iostream>
#include <string>

namespace kvelect::cli {

int evict_command(const EvictOptions& o) {
  const bool interactive = ::isatty(STDIN_FILENO) == 1;
  if (!o.force && !interactive)
    throw UsageError(fmt::format("refusing to evict the leader of '{}' without confirmation: "
                                 "stdin is not a terminal (use --force)",
                                 o.election));
  Connection connection = connect(o.common);
  Bucket bucket = open_bucket(connection, o.common);
  if (!o.force) {
    const auto leader = read_leader(bucket.get(), o.election);
    if (!leader) {
      emit_line(fmt::format("no leader of '{}' to evict", o.election));
      return kExitOk;
    }
    std::fprintf(stderr, "Evict '%s', the leader of '%s' in bucket '%s'? [y/N] ", leader->c_str(),
                 o.election.c_str(), o.common.bucket.c_str());
    std::fflush(stderr);
    std::string answer;
    if (!std::getline(std::cin, answer) || (answer != "y" && answer != "Y" && answer != "yes")) {
      std::fprintf(stderr, "not evicted\n");
      return kExitFailure;
    }
  }
  const auto evicted = evict(bucket.get(), o.election);
  if (evicted)
    emit_line(fmt::format("evicted '{}', the leader of '{}'", *evicted, o.election));
  else
    emit_line(fmt::format("no leader of '{}' to evict", o.election));
  return kExitOk;
}

} // namespace kvelect::cli
