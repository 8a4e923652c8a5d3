// SPDX-License-Identifier: Apache-2.0
// A downstream program that uses kvelect without a NATS server: it only needs the headers to
// compile and the library to link and load.
#include <kvelect/kvelect.hpp>
#include <kvelect/version.hpp>

#include <cstdio>
#include <string>
#include <string_view>

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "kvelect-consumer: FAILED: %s\n", what);
    ++failures;
  }
}

} // namespace

int main() {
  const kvelect::Error error(kvelect::Errc::invalid_key, "consumer test");
  check(error.code() == kvelect::Errc::invalid_key, "Error::code()");
  check(std::string_view(error.what()).find("consumer test") != std::string_view::npos,
        "Error::what()");

  check(kvelect::valid_key("a.b"), "valid_key(\"a.b\")");
  check(kvelect::to_string(kvelect::State::Leader) == "leader", "to_string(State::Leader)");
  check(std::string_view(KVELECT_VERSION).size() > 0, "KVELECT_VERSION");

  std::printf("kvelect-consumer: kvelect %s (%d.%d.%d), state %s, valid_key(\"a.b\") = %s\n",
              KVELECT_VERSION, KVELECT_VERSION_MAJOR, KVELECT_VERSION_MINOR, KVELECT_VERSION_PATCH,
              std::string(kvelect::to_string(kvelect::State::Leader)).c_str(),
              kvelect::valid_key("a.b") ? "true" : "false");
  return failures == 0 ? 0 : 1;
}
