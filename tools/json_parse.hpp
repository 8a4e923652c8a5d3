// SPDX-License-Identifier: Apache-2.0
// A small JSON reader (RFC 8259) for the files the CLI reads: NATS contexts. Whole documents in
// memory, numbers as double; enough for configuration files, not for speed.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kvelect::cli {

struct JsonValue {
  enum class Type { null, boolean, number, string, array, object };
  Type type = Type::null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<JsonValue> array;
  std::map<std::string, JsonValue> object; ///< a repeated key keeps its last value
};

/// "null", "a boolean", "a number", "a string", "an array", "an object".
const char* describe(JsonValue::Type type) noexcept;

/// Parses one JSON document (surrounding white space allowed). nullopt on a syntax error, with
/// `error` set to "line L, column C: what".
std::optional<JsonValue> parse_json(std::string_view text, std::string* error);

} // namespace kvelect::cli
