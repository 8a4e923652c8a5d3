// SPDX-License-Identifier: Apache-2.0
// kvelect-lab-check: the fault lab's checker (docs/reliability.md).
//
//   kvelect-lab-check --dir RUNDIR --ttl-ms MS
//
// Reads what one lab run (tests/lab/lab.sh) left in RUNDIR, all on CLOCK_BOOTTIME:
//   members/<name>.out  every member's events (tests/lab/lab_member.cpp)
//   faults.log          "<ns> fault <id> <kind> <detail>", "<ns> heal <id>",
//                       "<ns> paused|resumed <member>", "<ns> healed" (the final heal),
//                       "<ns> stopping" (the members are told to stop), "<ns> end"
//   fence/log           the fenced store's log, in the store's order
// and reports: overlapping leaderships (History::check of tests/fault, which also cuts a paused
// member's leadership at the pause), tokens that repeat or go backwards, the longest leaderless
// gap against the TTL, the failover after each fault by kind (p50/max ÷ TTL), and the fenced
// writes accepted and rejected. Exit status 0 when the run is consistent, 1 when it is not, 2
// for bad input.
#include "history.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace fault = kvelect::testing::fault;
namespace fs = std::filesystem;

namespace {

struct Fault {
  std::int64_t begin = 0, heal = 0;
  std::string id, kind, detail;
};

struct Write {
  std::int64_t ns = 0;
  std::string member;
  std::uint64_t token = 0;
  bool accepted = false;
};

struct Won {
  std::int64_t ns = 0;
  std::string member;
  std::uint64_t token = 0;
};

double pct(std::vector<double> v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

} // namespace

int main(int argc, char** argv) {
  std::string dir;
  double ttl_ms = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    if (arg == "--dir")
      dir = argv[i + 1];
    else if (arg == "--ttl-ms")
      ttl_ms = std::stod(argv[i + 1]);
  }
  if (dir.empty() || ttl_ms <= 0) {
    std::fprintf(stderr, "usage: kvelect-lab-check --dir RUNDIR --ttl-ms MS\n");
    return 2;
  }
  const auto ttl_ns = static_cast<std::int64_t>(ttl_ms * 1e6);

  fault::History history;
  std::vector<fault::Event> all; // for the timeline
  std::vector<Won> wins;
  for (const auto& entry : fs::directory_iterator(dir + "/members")) {
    if (entry.path().extension() != ".out")
      continue;
    std::ifstream in(entry.path());
    for (std::string line; std::getline(in, line);) {
      std::istringstream words(line);
      fault::Event e;
      long long ns = 0;
      if (!(words >> ns >> e.member >> e.kind))
        continue;
      e.ns = ns;
      std::getline(words >> std::ws, e.detail);
      if (e.kind == "won")
        wins.push_back({e.ns, e.member, std::stoull(e.detail)});
      all.push_back(e);
      history.record(e);
    }
  }

  // Report times count from the first member event (History's own origin is CLOCK_MONOTONIC).
  std::int64_t first_ns = 0;
  for (const auto& e : all)
    if (first_ns == 0 || e.ns < first_ns)
      first_ns = e.ns;
  history.set_origin(first_ns);

  std::vector<Fault> faults;
  std::int64_t end_ns = 0, stopping_ns = 0;
  {
    std::ifstream in(dir + "/faults.log");
    for (std::string line; std::getline(in, line);) {
      std::istringstream words(line);
      long long ns = 0;
      std::string what;
      if (!(words >> ns >> what))
        continue;
      if (what == "fault") {
        Fault f;
        f.begin = ns;
        words >> f.id >> f.kind;
        std::getline(words >> std::ws, f.detail);
        faults.push_back(f);
        all.push_back({ns, "lab", "fault", f.id + " " + f.kind + " " + f.detail});
      } else if (what == "heal") {
        std::string id;
        words >> id;
        for (auto& f : faults)
          if (f.id == id)
            f.heal = ns;
        all.push_back({ns, "lab", "heal", id});
      } else if (what == "paused" || what == "resumed") {
        std::string member;
        words >> member;
        history.record({ns, member, what, {}});
        all.push_back({ns, member, what, {}});
      } else if (what == "stopping") {
        stopping_ns = ns;
      } else if (what == "end") {
        end_ns = ns;
      }
    }
  }
  if (end_ns == 0) {
    std::fprintf(stderr, "kvelect-lab-check: %s/faults.log has no end line\n", dir.c_str());
    return 2;
  }

  std::vector<Write> writes;
  {
    std::ifstream in(dir + "/fence/log");
    for (std::string line; std::getline(in, line);) {
      std::istringstream words(line);
      long long ns = 0;
      Write w;
      std::string verdict;
      if (words >> ns >> w.member >> w.token >> verdict) {
        w.ns = ns;
        w.accepted = verdict == "accepted";
        writes.push_back(w);
      }
    }
  }

  int failures = 0;
  const auto report = history.check(end_ns);
  std::printf("== kvelect fault lab: check of %s (TTL %.0f ms)\n", dir.c_str(), ttl_ms);
  std::printf("elections won: %d, leaderships lost: %d\n", report.wins, report.losses);
  for (const auto& [member, n] : report.wins_by_member)
    std::printf("  %s won %d\n", member.c_str(), n);
  std::printf("overlapping leaderships: %zu\n", report.problems.size());
  for (const auto& p : report.problems)
    std::printf("  PROBLEM: %s\n", p.c_str());
  failures += static_cast<int>(report.problems.size());

  // Tokens: every win must carry a larger token than every earlier win.
  std::sort(wins.begin(), wins.end(), [](const Won& a, const Won& b) { return a.ns < b.ns; });
  int regressions = 0;
  for (std::size_t i = 1; i < wins.size(); ++i)
    if (wins[i].token <= wins[i - 1].token) {
      ++regressions;
      std::printf("  PROBLEM: token %llu of %s does not exceed %llu of %s\n",
                  static_cast<unsigned long long>(wins[i].token), wins[i].member.c_str(),
                  static_cast<unsigned long long>(wins[i - 1].token), wins[i - 1].member.c_str());
    }
  std::printf("tokens repeated or going backwards: %d\n", regressions);
  failures += regressions;

  std::printf("longest leaderless gap: %.0f ms = %.2f x TTL\n",
              static_cast<double>(report.longest_gap_ns) / 1e6,
              static_cast<double>(report.longest_gap_ns) / static_cast<double>(ttl_ns));

  // Failover after each fault: the leader at the fault's start lost its leadership before the
  // next fault began; the time from the fault's start to the next leadership's start.
  std::vector<fault::Interval> lead;
  for (const auto& iv : report.intervals)
    if (!iv.stale_tail)
      lead.push_back(iv);
  std::sort(lead.begin(), lead.end(),
            [](const fault::Interval& a, const fault::Interval& b) { return a.begin < b.begin; });
  struct Row {
    int faults = 0, held = 0, no_leader = 0, unrecovered = 0;
    std::vector<double> failover; // ÷ TTL
  };
  std::map<std::string, Row> rows;
  for (std::size_t i = 0; i < faults.size(); ++i) {
    const auto& f = faults[i];
    // The last fault's window ends when the lab stops the members (their leaderships end then).
    const std::int64_t window_end =
        i + 1 < faults.size() ? faults[i + 1].begin : (stopping_ns > 0 ? stopping_ns : end_ns);
    auto& row = rows[f.kind];
    ++row.faults;
    const auto holder = std::find_if(lead.begin(), lead.end(), [&](const fault::Interval& iv) {
      return iv.begin <= f.begin && f.begin < iv.end;
    });
    if (holder == lead.end()) {
      ++row.no_leader;
      continue;
    }
    if (holder->open || holder->end >= window_end) {
      ++row.held;
      continue;
    }
    const auto next = std::find_if(lead.begin(), lead.end(), [&](const fault::Interval& iv) {
      return iv.begin >= holder->end;
    });
    if (next == lead.end() || next->begin >= window_end) {
      ++row.unrecovered;
      continue;
    }
    row.failover.push_back(static_cast<double>(next->begin - f.begin) /
                           static_cast<double>(ttl_ns));
  }
  std::printf("faults injected: %zu\n", faults.size());
  std::printf("  %-22s %6s %6s %8s %9s %6s %12s %12s\n", "kind", "faults", "held", "failover",
              "no-leader", "unrec", "p50/TTL", "max/TTL");
  for (const auto& [kind, row] : rows)
    std::printf("  %-22s %6d %6d %8zu %9d %6d %12.2f %12.2f\n", kind.c_str(), row.faults, row.held,
                row.failover.size(), row.no_leader, row.unrecovered, pct(row.failover, 0.5),
                pct(row.failover, 1.0));

  // The fenced store: its log is in its own order. Re-check what it did, and that no accepted
  // record came from a deposed leader: a write accepted with token T after some member had
  // already won with a larger token.
  int accepted = 0, rejected = 0, store_errors = 0, deposed = 0, unknown = 0;
  std::uint64_t high = 0;
  for (const auto& w : writes) {
    if (!w.accepted) {
      ++rejected;
      if (w.token >= high) {
        ++store_errors;
        std::printf("  PROBLEM: the store rejected token %llu (highest %llu)\n",
                    static_cast<unsigned long long>(w.token),
                    static_cast<unsigned long long>(high));
      }
      continue;
    }
    ++accepted;
    if (w.token < high) {
      ++store_errors;
      std::printf("  PROBLEM: the store accepted token %llu below %llu\n",
                  static_cast<unsigned long long>(w.token), static_cast<unsigned long long>(high));
    }
    high = std::max(high, w.token);
    const bool own = std::any_of(wins.begin(), wins.end(), [&](const Won& won) {
      return won.member == w.member && won.token == w.token && won.ns <= w.ns;
    });
    if (!own) {
      ++unknown;
      std::printf("  PROBLEM: %s wrote token %llu that it never won\n", w.member.c_str(),
                  static_cast<unsigned long long>(w.token));
    }
    const auto newer = std::find_if(wins.begin(), wins.end(), [&](const Won& won) {
      return won.token > w.token && won.ns < w.ns;
    });
    if (newer != wins.end()) {
      ++deposed;
      std::printf(
          "  PROBLEM: %s's write with token %llu accepted %.1f ms after %s won token %llu\n",
          w.member.c_str(), static_cast<unsigned long long>(w.token),
          static_cast<double>(w.ns - newer->ns) / 1e6, newer->member.c_str(),
          static_cast<unsigned long long>(newer->token));
    }
  }
  std::printf("fenced writes: %d accepted, %d rejected (stale token); accepted from a deposed "
              "leader: %d\n",
              accepted, rejected, deposed);
  failures += store_errors + deposed + unknown;
  if (accepted == 0) {
    std::printf("  PROBLEM: no fenced write was accepted: no leader ever worked\n");
    ++failures;
  }

  std::printf("LAB-SUMMARY faults=%zu wins=%d overlaps=%zu token_regressions=%d "
              "longest_gap_ttl=%.2f fenced_accepted=%d fenced_rejected=%d deposed_accepted=%d\n",
              faults.size(), report.wins, report.problems.size(), regressions,
              static_cast<double>(report.longest_gap_ns) / static_cast<double>(ttl_ns), accepted,
              rejected, deposed);
  if (failures > 0) {
    std::sort(all.begin(), all.end(),
              [](const fault::Event& a, const fault::Event& b) { return a.ns < b.ns; });
    std::printf("timeline (ms since the first member event; 'leader' lines left out):\n");
    for (const auto& e : all)
      if (e.kind != "leader")
        std::printf("  %+10.1f  %s %s %s\n", static_cast<double>(e.ns - first_ns) / 1e6,
                    e.member.c_str(), e.kind.c_str(), e.detail.c_str());
    std::printf("RESULT: FAILED (%d problems)\n", failures);
    return 1;
  }
  std::printf("RESULT: OK\n");
  return 0;
}
