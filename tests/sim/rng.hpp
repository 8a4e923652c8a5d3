// SPDX-License-Identifier: Apache-2.0
// The simulator's only source of randomness: xoshiro256** seeded through splitmix64 from one
// 64-bit seed. Our own generator, not <random>'s distributions, because the standard leaves
// their algorithms to the implementation: a seed must replay the same run on every toolchain.
#pragma once

#include <cstdint>

namespace kvelect::sim {

// 128-bit arithmetic for exact clock and range maps (a GCC/Clang extension; __extension__
// keeps -Wpedantic quiet about it).
__extension__ typedef __int128 Int128;           // NOLINT(modernize-use-using)
__extension__ typedef unsigned __int128 UInt128; // NOLINT(modernize-use-using)

inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

class Rng {
public:
  explicit Rng(std::uint64_t seed) {
    for (auto& word : s_)
      word = splitmix64(seed);
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // 0 .. bound-1 (0 for bound 0). Lemire's multiply-shift; its tiny bias does not matter here.
  std::uint64_t below(std::uint64_t bound) {
    if (bound == 0)
      return 0;
    return static_cast<std::uint64_t>((static_cast<UInt128>(next()) * bound) >> 64);
  }
  // lo .. hi inclusive.
  std::int64_t range(std::int64_t lo, std::int64_t hi) {
    if (hi <= lo)
      return lo;
    return lo + static_cast<std::int64_t>(below(static_cast<std::uint64_t>(hi - lo) + 1));
  }
  // [0, 1)
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return uniform() < p; }
  // An independent generator for one part of the world, so that adding a random draw in one
  // part does not shift every other part's draws.
  Rng fork() { return Rng(next()); }

private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4]{};
};

} // namespace kvelect::sim
