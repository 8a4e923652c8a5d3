// SPDX-License-Identifier: Apache-2.0
// Splits a command line into words the way a POSIX shell does, without running a shell:
// Choria's `election run NAME "sleep 10"` form. Quotes and backslashes only; no expansion of
// variables, globs, ~ or command substitution, and no operators (| ; & < > are plain text).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kvelect::cli {

class ShellSplitError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Blanks (space, tab, newline) separate words. 'single quotes' keep everything literally;
/// "double quotes" keep everything except that \ escapes $ ` " \ and newline; outside quotes
/// \ escapes any character, and \ newline is removed. Adjacent parts join into one word ("a"'b'c
/// is abc; "" is an empty word). Throws ShellSplitError for an unterminated quote or a trailing
/// backslash.
std::vector<std::string> shell_split(std::string_view line);

} // namespace kvelect::cli
