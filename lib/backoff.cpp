// SPDX-License-Identifier: Apache-2.0
#include <kvelect/backoff.hpp>
#include <kvelect/error.hpp>

#include <algorithm>
#include <random>
#include <utility>

namespace kvelect::backoff {
namespace {

using std::chrono::milliseconds;

class Stepped final : public Backoff {
public:
  explicit Stepped(std::vector<milliseconds> steps) : steps_(std::move(steps)) {}

  milliseconds duration(int n) const override {
    const auto index =
        static_cast<std::size_t>(std::clamp<int>(n, 0, static_cast<int>(steps_.size()) - 1));
    // Randomised per call so that members that failed together do not retry together
    // (the thundering herd of a fixed interval).
    thread_local std::minstd_rand rng{std::random_device{}()};
    std::uniform_real_distribution<double> factor(0.5, 1.5);
    return milliseconds(
        static_cast<milliseconds::rep>(static_cast<double>(steps_[index].count()) * factor(rng)));
  }

private:
  std::vector<milliseconds> steps_;
};

// Choria's policies step from 500 ms up to the ceiling in even increments.
std::vector<milliseconds> ramp(milliseconds ceiling) {
  std::vector<milliseconds> steps;
  for (milliseconds step{500}; step < ceiling; step += milliseconds(500))
    steps.push_back(step);
  steps.push_back(ceiling);
  return steps;
}

} // namespace

std::shared_ptr<const Backoff> stepped(std::vector<milliseconds> steps) {
  if (steps.empty())
    throw Error(Errc::invalid_option, "backoff policy needs at least one step");
  for (auto step : steps)
    if (step.count() <= 0)
      throw Error(Errc::invalid_option, "backoff steps must be positive durations");
  return std::make_shared<Stepped>(std::move(steps));
}

std::shared_ptr<const Backoff> twenty_seconds() { return stepped(ramp(std::chrono::seconds(20))); }

std::shared_ptr<const Backoff> five_seconds() { return stepped(ramp(std::chrono::seconds(5))); }

} // namespace kvelect::backoff
