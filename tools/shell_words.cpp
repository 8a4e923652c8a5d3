// SPDX-License-Identifier: Apache-2.0
#include "shell_words.hpp"

namespace kvelect::cli {

std::vector<std::string> shell_split(std::string_view line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false; // a word has started (it may still be empty: "")
  std::size_t i = 0;
  const std::size_t n = line.size();
  while (i < n) {
    const char c = line[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) {
        words.push_back(std::move(word));
        word.clear();
        in_word = false;
      }
      ++i;
    } else if (c == '\\') {
      if (i + 1 >= n)
        throw ShellSplitError("the command ends with a backslash (\\) that escapes nothing");
      if (line[i + 1] != '\n') { // backslash-newline: a line continuation, no character
        word += line[i + 1];
        in_word = true;
      }
      i += 2;
    } else if (c == '\'') {
      const std::size_t end = line.find('\'', i + 1);
      if (end == std::string_view::npos)
        throw ShellSplitError("unterminated single quote (') in the command");
      word.append(line.substr(i + 1, end - i - 1));
      in_word = true;
      i = end + 1;
    } else if (c == '"') {
      std::size_t j = i + 1;
      for (;;) {
        if (j >= n)
          throw ShellSplitError("unterminated double quote (\") in the command");
        const char d = line[j];
        if (d == '"')
          break;
        if (d == '\\' && j + 1 < n &&
            (line[j + 1] == '$' || line[j + 1] == '`' || line[j + 1] == '"' ||
             line[j + 1] == '\\' || line[j + 1] == '\n')) {
          if (line[j + 1] != '\n')
            word += line[j + 1];
          j += 2;
          continue;
        }
        word += d;
        ++j;
      }
      in_word = true;
      i = j + 1;
    } else {
      word += c;
      in_word = true;
      ++i;
    }
  }
  if (in_word)
    words.push_back(std::move(word));
  return words;
}

} // namespace kvelect::cli
