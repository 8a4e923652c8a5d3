// SPDX-License-Identifier: Apache-2.0
// Minimal JSON output: string escaping and a one-line object builder. Enough for the event
// lines and the leader file the CLI writes; it does not parse JSON.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvelect::cli {

/// `text` as a JSON string literal, quotes included. Escapes '"', '\\' and control characters
/// (\b \f \n \r \t, others as \u00XX); bytes that are not valid UTF-8 become U+FFFD, so the
/// result is always valid JSON.
std::string json_string(std::string_view text);

/// [a, b, ...] of JSON values given as text (e.g. json_string() results or JsonObject::str()).
std::string json_array(const std::vector<std::string>& values);

/// Builds one JSON object on one line, keys in insertion order: {"a": 1, "b": "x"}.
class JsonObject {
public:
  JsonObject& add(std::string_view key, std::string_view value);
  JsonObject& add(std::string_view key, const std::string& value) {
    return add(key, std::string_view(value));
  }
  JsonObject& add(std::string_view key, const char* value) {
    return add(key, std::string_view(value));
  }
  JsonObject& add(std::string_view key, std::uint64_t value);
  JsonObject& add(std::string_view key, std::int64_t value);
  JsonObject& add(std::string_view key, int value) { return add(key, std::int64_t{value}); }
  JsonObject& add(std::string_view key, bool value);
  JsonObject& add_null(std::string_view key);
  /// `raw` as it is: an array or object built elsewhere (it must be valid JSON).
  JsonObject& add_raw(std::string_view key, std::string_view raw);
  /// A string, or null for nullopt.
  JsonObject& add(std::string_view key, const std::optional<std::string>& value);
  /// The object, "{...}".
  std::string str() const;

private:
  void key(std::string_view key);
  std::string body_;
};

} // namespace kvelect::cli
