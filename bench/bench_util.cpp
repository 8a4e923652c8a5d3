// SPDX-License-Identifier: Apache-2.0
#include "bench_util.hpp"
#include "retire.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <dirent.h>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <numeric>
#include <sstream>
#include <stdexcept>

namespace kvbench {

std::int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// ---------------------------------------------------------------------------------------------
// Statistics

double percentile_sorted(const std::vector<double>& sorted, double p) {
  if (sorted.empty())
    return 0;
  // Nearest rank: the smallest value with at least p of the sample at or below it.
  auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

Summary summarize(std::vector<double> samples) {
  Summary s;
  s.n = samples.size();
  if (samples.empty())
    return s;
  std::sort(samples.begin(), samples.end());
  s.min = samples.front();
  s.max = samples.back();
  s.p50 = percentile_sorted(samples, 0.50);
  s.p90 = percentile_sorted(samples, 0.90);
  s.p99 = percentile_sorted(samples, 0.99);
  s.mean = std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(s.n);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Output

namespace {

// Terminal columns of a UTF-8 string (the tables use →, ≤, ×): its code points.
std::size_t columns(const std::string& text) {
  std::size_t n = 0;
  for (unsigned char c : text)
    n += (c & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

} // namespace

std::string Table::str() const {
  std::vector<std::size_t> width(header_.size(), 3);
  auto measure = [&](const std::vector<std::string>& cells) {
    for (std::size_t i = 0; i < cells.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], columns(cells[i]));
  };
  measure(header_);
  for (const auto& r : rows_)
    measure(r);
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out = "|";
    for (std::size_t i = 0; i < width.size(); ++i) {
      const std::string cell = i < cells.size() ? cells[i] : std::string();
      out += " " + cell + std::string(width[i] - columns(cell), ' ') + " |";
    }
    return out + "\n";
  };
  std::string out = line(header_);
  out += "|";
  for (std::size_t w : width)
    out += " " + std::string(w, '-') + " |";
  out += "\n";
  for (const auto& r : rows_)
    out += line(r);
  return out;
}

void Table::print(const std::string& title) const {
  if (!title.empty())
    std::printf("\n%s\n\n", title.c_str());
  std::fputs(str().c_str(), stdout);
  std::fflush(stdout);
}

std::string fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string ms(double value, int decimals) { return fixed(value, decimals) + " ms"; }

std::string verdict(double value, double bound) { return value <= bound ? "met" : "MISSED"; }

// ---------------------------------------------------------------------------------------------
// Settings

namespace {

std::string env_name(std::string_view name) {
  std::string out = "KVELECT_BENCH_";
  for (char c : name)
    out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

} // namespace

Settings::Settings(int& argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    if (i > 0)
      command_line_ += ' ';
    command_line_ += argv[i];
  }
  // Our flags are the "--name[=value]" ones that Google Benchmark does not own
  // ("--benchmark_*", "--v"); they are taken out of argv so that it does not reject them.
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    const bool ours = arg.rfind("--", 0) == 0 && arg.rfind("--benchmark", 0) != 0 &&
                      arg.rfind("--v=", 0) != 0 && arg != "--v";
    if (!ours) {
      argv[out++] = argv[i];
      continue;
    }
    arg.erase(0, 2);
    const auto eq = arg.find('=');
    if (eq != std::string::npos) {
      flags_.emplace_back(arg.substr(0, eq), arg.substr(eq + 1));
    } else if (i + 1 < argc && std::strncmp(argv[i + 1], "--", 2) != 0) {
      flags_.emplace_back(arg, argv[++i]);
    } else {
      flags_.emplace_back(arg, "1");
    }
  }
  argc = out;
  argv[argc] = nullptr;
}

std::optional<std::string> Settings::find(std::string_view name) const {
  for (auto it = flags_.rbegin(); it != flags_.rend(); ++it)
    if (it->first == name)
      return it->second;
  const char* env = std::getenv(env_name(name).c_str()); // NOLINT(concurrency-mt-unsafe)
  if (env != nullptr && *env != '\0')
    return std::string(env);
  return std::nullopt;
}

std::string Settings::str(std::string_view name, std::string fallback) const {
  return find(name).value_or(std::move(fallback));
}

long Settings::integer(std::string_view name, long fallback) const {
  const auto v = find(name);
  return v ? std::strtol(v->c_str(), nullptr, 10) : fallback;
}

double Settings::real(std::string_view name, double fallback) const {
  const auto v = find(name);
  return v ? std::strtod(v->c_str(), nullptr) : fallback;
}

std::vector<long> Settings::list(std::string_view name, std::vector<long> fallback) const {
  const auto v = find(name);
  if (!v)
    return fallback;
  std::vector<long> out;
  std::stringstream ss(*v);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty())
      out.push_back(std::strtol(item.c_str(), nullptr, 10));
  return out;
}

bool Settings::flag(std::string_view name) const {
  const auto v = find(name);
  return v && *v != "0" && *v != "false";
}

// ---------------------------------------------------------------------------------------------
// Process figures

double process_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

long proc_status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0)
      return std::strtol(line.c_str() + prefix.size(), nullptr, 10);
  return -1;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

int os_thread_count() {
  int count = 0;
  if (DIR* dir = opendir("/proc/self/task")) {
    while (dirent* entry = readdir(dir))
      if (entry->d_name[0] != '.')
        ++count;
    closedir(dir);
  }
  return count;
}

double pid_cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat))
    return -1;
  // The command name (field 2) may hold spaces: the fields after it start past the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos)
    return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  // Fields 3.. follow; utime and stime are fields 14 and 15 (1-based), in clock ticks.
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14)
      utime = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15)
      stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// ---------------------------------------------------------------------------------------------
// Server figures

std::optional<std::uint64_t> json_uint(std::string_view body, std::string_view name) {
  const std::string needle = "\"" + std::string(name) + "\":";
  const auto at = body.find(needle);
  if (at == std::string_view::npos)
    return std::nullopt;
  std::size_t i = at + needle.size();
  while (i < body.size() && (body[i] == ' ' || body[i] == '\t'))
    ++i;
  if (i >= body.size() || body[i] < '0' || body[i] > '9')
    return std::nullopt;
  std::uint64_t value = 0;
  for (; i < body.size() && body[i] >= '0' && body[i] <= '9'; ++i)
    value = value * 10 + static_cast<std::uint64_t>(body[i] - '0');
  return value;
}

void check_nats(natsStatus status, const char* what) {
  if (status == NATS_OK)
    return;
  natsStatus ignored = NATS_OK;
  const char* text = nats_GetLastError(&ignored);
  throw std::runtime_error(std::string(what) + ": " +
                           (text != nullptr && *text != '\0' ? text : natsStatus_GetText(status)));
}

StreamFigures stream_figures(jsCtx* js, const std::string& bucket) {
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const std::string stream = "KV_" + bucket;
  check_nats(js_GetStreamInfo(&info, js, stream.c_str(), nullptr, &code), "js_GetStreamInfo");
  StreamFigures figures;
  figures.messages = info->State.Msgs;
  figures.last_seq = info->State.LastSeq;
  figures.consumers = info->State.Consumers;
  jsStreamInfo_Destroy(info);
  return figures;
}

// ---------------------------------------------------------------------------------------------
// Raw round trips

RawUpdater::RawUpdater(kvStore* bucket, std::string key) : bucket_(bucket), key_(std::move(key)) {
  check_nats(kvStore_PutString(&revision_, bucket_, key_.c_str(), "raw"), "kvStore_Put");
}

double RawUpdater::once() {
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::uint64_t revision = 0;
    const auto start = Clock::now();
    const natsStatus status =
        kvStore_UpdateString(&revision, bucket_, key_.c_str(), "raw", revision_);
    const auto end = Clock::now();
    if (status == NATS_OK) {
      revision_ = revision;
      return ms_between(start, end);
    }
    // The key expired (a short-TTL bucket) between two probes: put it back, time the next one.
    check_nats(kvStore_PutString(&revision_, bucket_, key_.c_str(), "raw"), "kvStore_Put");
  }
  throw std::runtime_error("kvStore_Update of " + key_ + " keeps failing");
}

// ---------------------------------------------------------------------------------------------
// Raw asynchronous publish

RawAsyncPublisher::RawAsyncPublisher(natsConnection* connection, kvStore* bucket, std::string key)
    : connection_(connection), bucket_(bucket), key_(std::move(key)),
      subject_("$KV." + std::string(kvStore_Bucket(bucket)) + "." + key_) {
  natsInbox* inbox = nullptr;
  check_nats(natsInbox_Create(&inbox), "natsInbox_Create");
  inbox_ = inbox;
  natsInbox_Destroy(inbox);
  check_nats(natsConnection_Subscribe(&sub_, connection_, inbox_.c_str(), on_reply, this),
             "natsConnection_Subscribe");
  check_nats(kvStore_PutString(&revision_, bucket_, key_.c_str(), "raw"), "kvStore_Put");
}

RawAsyncPublisher::~RawAsyncPublisher() {
  kvelect::detail::retire(sub_, connection_); // lib/retire.hpp
  natsSubscription_Destroy(sub_);
}

void RawAsyncPublisher::on_reply(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  const auto arrived = std::chrono::steady_clock::now();
  auto* self = static_cast<RawAsyncPublisher*>(closure);
  {
    std::lock_guard lock(self->mu_);
    self->arrived_ = arrived;
    self->body_.assign(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    self->replied_ = true;
  }
  self->cv_.notify_all();
  natsMsg_Destroy(msg);
}

double RawAsyncPublisher::once() {
  for (int attempt = 0; attempt < 3; ++attempt) {
    {
      std::lock_guard lock(mu_);
      replied_ = false;
    }
    natsMsg* msg = nullptr;
    check_nats(natsMsg_Create(&msg, subject_.c_str(), inbox_.c_str(), "raw", 3), "natsMsg_Create");
    const std::string last = std::to_string(revision_);
    check_nats(natsMsgHeader_Set(msg, "Nats-Expected-Last-Subject-Sequence", last.c_str()),
               "natsMsgHeader_Set");
    const auto start = std::chrono::steady_clock::now();
    const natsStatus status = natsConnection_PublishMsg(connection_, msg);
    natsMsg_Destroy(msg);
    check_nats(status, "natsConnection_PublishMsg");
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(5), [this] { return replied_; }))
      throw std::runtime_error("no reply to an asynchronous publish within 5 s");
    const auto seq = json_uint(body_, "seq");
    if (seq && body_.find("\"error\"") == std::string::npos) {
      revision_ = *seq;
      return ms_between(start, arrived_);
    }
    lock.unlock();
    // The key expired (a short-TTL bucket) between two probes: put it back, time the next one.
    check_nats(kvStore_PutString(&revision_, bucket_, key_.c_str(), "raw"), "kvStore_Put");
  }
  throw std::runtime_error("asynchronous publish to " + key_ + " keeps failing");
}

// ---------------------------------------------------------------------------------------------
// Thread handoff

PingPong::PingPong() : thread_([this] { serve(); }) {}

PingPong::~PingPong() {
  {
    std::lock_guard lock(mu_);
    quit_ = true;
  }
  to_worker_.notify_all();
  thread_.join();
}

void PingPong::serve() {
  std::unique_lock lock(mu_);
  for (;;) {
    to_worker_.wait(lock, [this] { return quit_ || request_ != reply_; });
    if (quit_)
      return;
    reply_ = request_;
    lock.unlock();
    back_.notify_all();
    lock.lock();
  }
}

double PingPong::once() {
  const auto start = Clock::now();
  std::uint64_t ticket = 0;
  {
    std::lock_guard lock(mu_);
    ticket = ++request_;
  }
  to_worker_.notify_all();
  {
    std::unique_lock lock(mu_);
    back_.wait(lock, [&] { return reply_ == ticket; });
  }
  return ms_between(start, Clock::now());
}

kvelect::Connection connect(const std::string& url, const std::string& name) {
  kvelect::ConnectOptions options;
  options.servers = {url};
  options.name = name;
  options.timeout = std::chrono::milliseconds(2000);
  return kvelect::Connection::connect(options);
}

kvelect::Bucket make_bucket(const kvelect::Connection& connection, const std::string& name,
                            std::chrono::milliseconds ttl, bool memory) {
  kvelect::BucketConfig config;
  config.name = name;
  config.ttl = ttl;
  config.storage = memory ? kvelect::Storage::memory : kvelect::Storage::file;
  return kvelect::Bucket::create(connection, config);
}

} // namespace kvbench
