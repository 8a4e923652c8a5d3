// SPDX-License-Identifier: Apache-2.0
// Man-page style --help for CLI11: NAME, SYNOPSIS, DESCRIPTION, the options, EXIT STATUS and
// EXAMPLES, from texts registered per command.
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <memory>
#include <string>

namespace kvelect::cli {

struct CommandDoc {
  std::string synopsis;    ///< one usage line per line, without the leading indent
  std::string description; ///< paragraphs separated by blank lines
  std::string examples;    ///< optional
};

class ManFormatter : public CLI::Formatter {
public:
  /// Registers the texts of `app`. Its one-line summary is app->get_description(); EXIT STATUS
  /// is app->get_footer().
  void document(const CLI::App* app, CommandDoc doc) { docs_[app] = std::move(doc); }
  std::string make_help(const CLI::App* app, std::string name,
                        CLI::AppFormatMode mode) const override;

private:
  std::map<const CLI::App*, CommandDoc> docs_;
};

/// `text` with every non-empty line indented by `indent` spaces.
std::string indent_text(const std::string& text, std::size_t indent = 4);

} // namespace kvelect::cli
