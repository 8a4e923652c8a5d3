// SPDX-License-Identifier: Apache-2.0
#include "json_parse.hpp"

#include <fmt/format.h>

#include <cstdlib>

namespace kvelect::cli {
namespace {

class Parser {
public:
  explicit Parser(std::string_view text) : text_(text) {}

  std::optional<JsonValue> document(std::string* error) {
    std::optional<JsonValue> value = parse_value(0);
    if (value) {
      skip_space();
      if (pos_ != text_.size())
        fail("unexpected text after the JSON value");
    }
    if (!error_.empty()) {
      if (error != nullptr)
        *error = where() + error_;
      return std::nullopt;
    }
    return value;
  }

private:
  static constexpr int kMaxDepth = 64;

  std::string where() const {
    int line = 1;
    int column = 1;
    for (std::size_t i = 0; i < error_pos_ && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return fmt::format("line {}, column {}: ", line, column);
  }
  void fail(const std::string& what) {
    if (error_.empty()) {
      error_ = what;
      error_pos_ = pos_;
    }
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word)
      return false;
    pos_ += word.size();
    return true;
  }

  std::optional<JsonValue> parse_value(int depth) {
    if (depth > kMaxDepth) {
      fail("nested too deeply");
      return std::nullopt;
    }
    skip_space();
    if (pos_ >= text_.size()) {
      fail("unexpected end of the text");
      return std::nullopt;
    }
    JsonValue value;
    const char c = text_[pos_];
    if (c == '{')
      return parse_object(depth);
    if (c == '[')
      return parse_array(depth);
    if (c == '"') {
      auto s = parse_string();
      if (!s)
        return std::nullopt;
      value.type = JsonValue::Type::string;
      value.string = std::move(*s);
      return value;
    }
    if (literal("true")) {
      value.type = JsonValue::Type::boolean;
      value.boolean = true;
      return value;
    }
    if (literal("false")) {
      value.type = JsonValue::Type::boolean;
      return value;
    }
    if (literal("null"))
      return value;
    if (c == '-' || (c >= '0' && c <= '9'))
      return parse_number();
    fail(fmt::format("unexpected character '{}'", c));
    return std::nullopt;
  }

  std::optional<JsonValue> parse_number() {
    const std::size_t start = pos_;
    if (text_[pos_] == '-')
      ++pos_;
    auto digits = [&] {
      const std::size_t from = pos_;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9')
        ++pos_;
      return pos_ > from;
    };
    if (!digits()) {
      fail("invalid number");
      return std::nullopt;
    }
    if (pos_ < text_.size() && text_[pos_] == '.') {
      ++pos_;
      if (!digits()) {
        fail("invalid number");
        return std::nullopt;
      }
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-'))
        ++pos_;
      if (!digits()) {
        fail("invalid number");
        return std::nullopt;
      }
    }
    JsonValue value;
    value.type = JsonValue::Type::number;
    value.number = std::strtod(std::string(text_.substr(start, pos_ - start)).c_str(), nullptr);
    return value;
  }

  static void append_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::optional<std::uint32_t> hex4() {
    if (pos_ + 4 > text_.size()) {
      fail("truncated \\u escape");
      return std::nullopt;
    }
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = text_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9')
        v |= static_cast<std::uint32_t>(h - '0');
      else if (h >= 'a' && h <= 'f')
        v |= static_cast<std::uint32_t>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F')
        v |= static_cast<std::uint32_t>(h - 'A' + 10);
      else {
        fail("invalid \\u escape");
        return std::nullopt;
      }
    }
    return v;
  }

  std::optional<std::string> parse_string() {
    ++pos_; // the opening quote
    std::string out;
    while (pos_ < text_.size()) {
      const char c = text_[pos_++];
      if (c == '"')
        return out;
      if (static_cast<unsigned char>(c) < 0x20) {
        --pos_;
        fail("control character in a string");
        return std::nullopt;
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= text_.size())
        break;
      const char e = text_[pos_++];
      switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        auto cp = hex4();
        if (!cp)
          return std::nullopt;
        if (*cp >= 0xD800 && *cp < 0xDC00 && text_.substr(pos_, 2) == "\\u") {
          pos_ += 2;
          auto low = hex4();
          if (!low)
            return std::nullopt;
          if (*low >= 0xDC00 && *low < 0xE000)
            *cp = 0x10000 + ((*cp - 0xD800) << 10) + (*low - 0xDC00);
          else
            *cp = 0xFFFD;
        } else if (*cp >= 0xD800 && *cp < 0xE000) {
          *cp = 0xFFFD;
        }
        append_utf8(out, *cp);
        break;
      }
      default:
        --pos_;
        fail(fmt::format("invalid escape '\\{}'", e));
        return std::nullopt;
      }
    }
    fail("unterminated string");
    return std::nullopt;
  }

  std::optional<JsonValue> parse_array(int depth) {
    ++pos_;
    JsonValue value;
    value.type = JsonValue::Type::array;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == ']') {
      ++pos_;
      return value;
    }
    for (;;) {
      auto element = parse_value(depth + 1);
      if (!element)
        return std::nullopt;
      value.array.push_back(std::move(*element));
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == ']') {
        ++pos_;
        return value;
      }
      fail("expected ',' or ']'");
      return std::nullopt;
    }
  }

  std::optional<JsonValue> parse_object(int depth) {
    ++pos_;
    JsonValue value;
    value.type = JsonValue::Type::object;
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '}') {
      ++pos_;
      return value;
    }
    for (;;) {
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != '"') {
        fail("expected a quoted key");
        return std::nullopt;
      }
      auto key = parse_string();
      if (!key)
        return std::nullopt;
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != ':') {
        fail("expected ':'");
        return std::nullopt;
      }
      ++pos_;
      auto member = parse_value(depth + 1);
      if (!member)
        return std::nullopt;
      value.object[*key] = std::move(*member);
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == '}') {
        ++pos_;
        return value;
      }
      fail("expected ',' or '}'");
      return std::nullopt;
    }
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::string error_;
  std::size_t error_pos_ = 0;
};

} // namespace

const char* describe(JsonValue::Type type) noexcept {
  switch (type) {
  case JsonValue::Type::null: return "null";
  case JsonValue::Type::boolean: return "a boolean";
  case JsonValue::Type::number: return "a number";
  case JsonValue::Type::string: return "a string";
  case JsonValue::Type::array: return "an array";
  case JsonValue::Type::object: return "an object";
  }
  return "?";
}

std::optional<JsonValue> parse_json(std::string_view text, std::string* error) {
  return Parser(text).document(error);
}

} // namespace kvelect::cli
