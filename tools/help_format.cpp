// SPDX-License-Identifier: Apache-2.0
#include "help_format.hpp"

#include <sstream>

namespace kvelect::cli {

std::string indent_text(const std::string& text, std::size_t indent) {
  std::string out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty())
      out.append(indent, ' ');
    out += line;
    out += '\n';
  }
  return out;
}

std::string ManFormatter::make_help(const CLI::App* app, std::string name,
                                    CLI::AppFormatMode mode) const {
  const auto it = docs_.find(app);
  if (mode == CLI::AppFormatMode::Sub || it == docs_.end())
    return CLI::Formatter::make_help(app, std::move(name), mode);
  const CommandDoc& doc = it->second;
  std::ostringstream out;
  out << "NAME\n" << indent_text(name + " - " + app->get_description()) << '\n';
  out << "SYNOPSIS\n" << indent_text(doc.synopsis) << '\n';
  if (!doc.description.empty())
    out << "DESCRIPTION\n" << indent_text(doc.description);
  out << make_positionals(app);
  out << make_groups(app, mode);
  out << make_subcommands(app, mode);
  if (!app->get_footer().empty())
    out << "\nEXIT STATUS\n" << indent_text(app->get_footer());
  if (!doc.examples.empty())
    out << "\nEXAMPLES\n" << indent_text(doc.examples);
  return out.str();
}

} // namespace kvelect::cli
