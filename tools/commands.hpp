// SPDX-License-Identifier: Apache-2.0
// The kvelect commands: option structs filled by the CLI11 parser in main.cpp, and one function
// per command returning the process exit code. They throw UsageError (exit 2), Failure or
// kvelect::Error (exit 1); main() turns those into messages.
#pragma once

#include "cli_common.hpp"
#include "log.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace kvelect::cli {

struct RunOptions {
  CommonOptions common;
  ElectionFlags flags;
  std::string election;
  std::vector<std::string> command;
  bool argv_form = false; ///< given after '--': used verbatim, else shell-split (Choria's form)
  bool terminate = false;
  std::chrono::milliseconds grace{5000};
  std::string on_won;
  std::string on_lost;
  std::chrono::milliseconds hook_timeout{10000};
  bool quiet = false;
  LogFormat log_format = LogFormat::text;
};

struct FileOptions {
  CommonOptions common;
  ElectionFlags flags;
  std::vector<std::string> args; ///< ELECTION PATH (checked by file_command: see Choria's order)
  std::string check;             ///< --check FILE: only check that FILE is fresh
  std::chrono::milliseconds max_age{60000};
  LogFormat log_format = LogFormat::text;
};

struct InfoOptions {
  CommonOptions common;
  std::string pattern; ///< ECMAScript regex, searched in each election name; empty: all
  bool json = false;
};

struct WatchOptions {
  CommonOptions common;
  std::string election; ///< empty: every key of the bucket
  bool json = false;    ///< --json or --log-format json
  std::string metrics;  ///< --metrics ADDR; empty: none
};

struct EvictOptions {
  CommonOptions common;
  std::string election;
  bool force = false;
};

struct CampaignOptions {
  CommonOptions common;
  ElectionFlags flags;
  std::string election;
  bool json = false; ///< --json or --log-format json
};

struct BucketAddOptions {
  CommonOptions common;
  std::string name; ///< empty: --bucket
  std::chrono::milliseconds ttl{30000};
  int replicas = 1;
  std::string storage = "file";
  bool markers = false;                       ///< --markers: expiry markers (nats-server 2.11)
  std::chrono::milliseconds marker_ttl{1000}; ///< --marker-ttl
};

int run_command(const RunOptions& options);
int file_command(const FileOptions& options);
int info_command(const InfoOptions& options);
int watch_command(const WatchOptions& options);
int evict_command(const EvictOptions& options);
int campaign_command(const CampaignOptions& options);
struct BucketRmOptions {
  CommonOptions common;
  std::string name; ///< empty: --bucket
  bool force = false;
};

struct BucketInfoOptions {
  CommonOptions common;
  std::string name; ///< empty: --bucket
  bool json = false;
};

int bucket_add_command(const BucketAddOptions& options);
int bucket_rm_command(const BucketRmOptions& options);
int bucket_info_command(const BucketInfoOptions& options);

} // namespace kvelect::cli
