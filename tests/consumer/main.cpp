// SPDX-License-Identifier: Apache-2.0
// A downstream program that uses kvelect without a NATS server: it only needs the headers to
// compile and the library to link and load. It includes every public header, so that a header
// whose requirements the package does not carry (fmt for format.hpp) fails here, at compile or
// link time, rather than in a user's build.
#include <kvelect/backoff.hpp>
#include <kvelect/election.hpp>
#include <kvelect/error.hpp>
#include <kvelect/executor.hpp>
#include <kvelect/export.hpp>
#include <kvelect/format.hpp>
#include <kvelect/kvelect.hpp>
#include <kvelect/log.hpp>
#include <kvelect/nats.hpp>
#include <kvelect/options.hpp>
#include <kvelect/state.hpp>
#include <kvelect/version.hpp>
// The optional component's header, only where the build system found the component (meson.build
// and tests/consumer-cmake/CMakeLists.txt define KVELECT_CONSUMER_PROMETHEUS).
#if KVELECT_CONSUMER_PROMETHEUS
#include <kvelect/prometheus.hpp>
#endif

#include <fmt/format.h>

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
  check(kvelect::to_string(kvelect::LogLevel::warning) == "warning",
        "to_string(LogLevel::warning)");

  // format.hpp's formatters: fmt::format is compiled in libfmt, so this links only if the
  // package passes fmt on to its users.
  const std::string formatted =
      fmt::format("{} {}", kvelect::State::Leader, kvelect::Errc::invalid_key);
  check(formatted == "leader " + std::string(kvelect::to_string(kvelect::Errc::invalid_key)),
        "fmt::format of State and Errc");

  std::string prometheus = "not built";
#if KVELECT_CONSUMER_PROMETHEUS
  // A collector without an HTTP server: links kvelect_prometheus and prometheus-cpp-core.
  const kvelect::PrometheusMetrics metrics;
  check(metrics.size() == 0, "PrometheusMetrics::size()");
  prometheus = fmt::format("{} elections", metrics.size());
#endif

  std::printf("kvelect-consumer: kvelect %s (%d.%d.%d), state %s, valid_key(\"a.b\") = %s, "
              "formatted \"%s\", prometheus: %s\n",
              KVELECT_VERSION, KVELECT_VERSION_MAJOR, KVELECT_VERSION_MINOR, KVELECT_VERSION_PATCH,
              std::string(kvelect::to_string(kvelect::State::Leader)).c_str(),
              kvelect::valid_key("a.b") ? "true" : "false", formatted.c_str(), prometheus.c_str());
  return failures == 0 ? 0 : 1;
}
