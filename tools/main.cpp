// SPDX-License-Identifier: Apache-2.0
// kvelect: the command-line tool of the kvelect library. Parsing (CLI11) and dispatch; the
// commands live in cmd_*.cpp.
#include "cli_common.hpp"
#include "commands.hpp"
#include "connect_flags.hpp"
#include "duration.hpp"
#include "help_format.hpp"
#include "metrics.hpp"

#include <kvelect/election.hpp>
#include <kvelect/error.hpp>
#include <kvelect/version.hpp>

#include <CLI/CLI.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <memory>
#include <regex>

namespace kvelect::cli {
namespace {

constexpr const char* kConnectionGroup = "CONNECTION OPTIONS";
constexpr const char* kOptionsGroup = "OPTIONS";
constexpr const char* kAdvancedGroup = "ADVANCED OPTIONS";

const char* const kExitStatus = "0  success\n"
                                "1  runtime failure: no server, no such bucket, a failed "
                                "request\n"
                                "2  bad usage: unknown flag, bad value, missing argument\n";

CLI::Validator duration_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        std::string error;
        return parse_duration(value, &error) ? std::string() : error;
      },
      "", "duration");
}

CLI::Validator election_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (valid_key(value))
          return {};
        return fmt::format("invalid election name '{}': use letters, digits and - / _ = . "
                           "(no leading, trailing or doubled '.')",
                           value);
      },
      "", "election");
}

CLI::Validator bucket_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        const bool ok = !value.empty() && value.find_first_not_of(
                                              "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789-_") == std::string::npos;
        return ok ? std::string()
                  : fmt::format("invalid bucket name '{}': use letters, digits, - and _", value);
      },
      "", "bucket");
}

CLI::Validator regex_validator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        try {
          std::regex check(value, std::regex::ECMAScript);
          return {};
        } catch (const std::regex_error& e) {
          return fmt::format("invalid regular expression '{}': {}", value, e.what());
        }
      },
      "", "regex");
}

CLI::Option* add_duration(CLI::App* app, const std::string& flags,
                          std::chrono::milliseconds& target, const std::string& description) {
  CLI::Option* option = app->add_option_function<std::string>(
      flags,
      [&target](const std::string& value) {
        if (auto parsed = parse_duration(value))
          target = *parsed;
      },
      description);
  option->check(duration_validator())->type_name("DURATION")->default_str(format_duration(target));
  return option;
}

void add_common(CLI::App* app, CommonOptions& c) {
  add_connection_flags(app, c, kConnectionGroup);
  app->add_option("-b,--bucket", c.bucket,
                  "the KV bucket holding the elections; CHORIA_LEADER_ELECTION shares "
                  "elections with Choria's Go members")
      ->envname("KVELECT_BUCKET")
      ->type_name("BUCKET")
      ->capture_default_str()
      ->check(bucket_validator())
      ->group(kConnectionGroup);
  app->add_option("-n,--name", c.name,
                  "this member's name, stored as the leader's value (default: HOST-PID, the "
                  "host name and the process id)")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            return value.empty() ? "must not be empty (leave --name out for the default "
                                   "HOST-PID)"
                                 : "";
          },
          "", "name"))
      ->type_name("NAME")
      ->group(kConnectionGroup);
  add_duration(app, "--timeout", c.timeout, "timeout of the connection and of each request")
      ->envname("NATS_TIMEOUT")
      ->group(kAdvancedGroup);
}

void add_election_flags(CLI::App* app, ElectionFlags& f) {
  app->add_flag("--skip-validation", f.skip_validation,
                "accept a bucket TTL outside 5s..1h (e.g. 1s buckets in tests)")
      ->group(kAdvancedGroup);
  add_duration(app, "--splay", f.splay,
               "upper bound of the random delay before the first "
               "campaign (0 disables it)")
      ->group(kAdvancedGroup);
  app->add_flag("--debug", f.debug,
                "also log the library's info and debug lines (its warnings and errors are "
                "always logged)")
      ->group(kAdvancedGroup);
  app->add_option("--metrics", f.metrics,
                  "serve the election's Prometheus metrics at http://ADDR/metrics (e.g. "
                  "127.0.0.1:9464; port 0 picks one)" +
                      std::string(metrics_supported() ? "" : "; not in this build"))
      ->type_name("ADDR")
      ->group(kAdvancedGroup);
}

// --log-format text|json for the commands that log (run, file, campaign, watch).
CLI::Option* add_log_format(CLI::App* app, std::function<void(LogFormat)> set) {
  return app
      ->add_option_function<std::string>(
          "--log-format",
          [set = std::move(set)](const std::string& value) {
            LogFormat format = LogFormat::text;
            parse_log_format(value, &format);
            set(format);
          },
          "text (lines with RFC 3339 times) or json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}).description(""))
      ->type_name("text|json")
      ->default_str("text")
      ->group(kOptionsGroup);
}

CLI::Option* add_election(CLI::App* app, std::string& target) {
  return app->add_option("ELECTION", target, "the election: a key in the bucket")
      ->required()
      ->type_name("")
      ->check(election_validator());
}

// The innermost command the parser reached, for "see --help" hints.
std::string command_path(const CLI::App& app) {
  std::string path = app.get_name();
  const CLI::App* current = &app;
  for (;;) {
    const auto selected = current->get_subcommands();
    if (selected.empty())
      return path;
    current = selected.front();
    path += " " + current->get_name();
  }
}

// The names of a command's subcommands, in the order they were added.
std::vector<std::string> subcommand_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    names.push_back(sub->get_name());
  return names;
}

const CLI::App* find_subcommand(const CLI::App& app, const std::string& name) {
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    if (sub->get_name() == name)
      return sub;
  return nullptr;
}

// An option that some command has (the common flags are on every command), for flags given
// before the command name.
const CLI::Option* find_option(const CLI::App& app, const std::string& name) {
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (const CLI::Option* option = sub->get_option_no_throw(name))
      return option;
    if (const CLI::Option* option = find_option(*sub, name))
      return option;
  }
  return nullptr;
}

// `kvelect --server URL info` as `kvelect info --server URL`: flags before the command name
// move behind it (behind 'bucket add' for a nested command), since CLI11 only knows them per
// command. An unknown command name is a UsageError that lists the commands. Anything else is
// left for the parser to judge.
std::vector<std::string> hoist_leading_flags(const CLI::App& app, std::vector<std::string> args) {
  std::size_t i = 0;
  while (i < args.size() && args[i].size() > 1 && args[i][0] == '-' && args[i] != "--") {
    const std::string& arg = args[i];
    if (arg == "-h" || arg == "--help" || arg == "--version")
      return args;
    const std::string name = arg.substr(0, arg.find('='));
    const CLI::Option* option = find_option(app, name);
    if (option == nullptr)
      return args; // the parser names it
    const bool takes_value = option->get_type_size() != 0 && arg.find('=') == std::string::npos;
    i += takes_value ? 2 : 1;
  }
  if (i == 0 || i >= args.size()) {
    if (i < args.size() && find_subcommand(app, args[i]) == nullptr && args[i] != "--")
      throw UsageError(fmt::format("unknown command '{}'; the commands are: {}", args[i],
                                   fmt::join(subcommand_names(app), ", ")));
    if (i == 0 && !args.empty()) {
      // kvelect bucket foo
      if (const CLI::App* sub = find_subcommand(app, args[0]);
          sub != nullptr && !subcommand_names(*sub).empty() && args.size() > 1 &&
          args[1][0] != '-' && find_subcommand(*sub, args[1]) == nullptr)
        throw UsageError(fmt::format("unknown command '{} {}'; the {} commands are: {}", args[0],
                                     args[1], args[0], fmt::join(subcommand_names(*sub), ", ")));
    }
    return args;
  }
  const CLI::App* sub = find_subcommand(app, args[i]);
  if (sub == nullptr)
    throw UsageError(fmt::format("unknown command '{}'; the commands are: {}", args[i],
                                 fmt::join(subcommand_names(app), ", ")));
  std::size_t insert_at = i + 1;
  if (!subcommand_names(*sub).empty() && insert_at < args.size() && args[insert_at][0] != '-') {
    if (find_subcommand(*sub, args[insert_at]) == nullptr)
      throw UsageError(fmt::format("unknown command '{} {}'; the {} commands are: {}", args[i],
                                   args[insert_at], args[i],
                                   fmt::join(subcommand_names(*sub), ", ")));
    ++insert_at;
  }
  std::vector<std::string> result(args.begin() + static_cast<std::ptrdiff_t>(i),
                                  args.begin() + static_cast<std::ptrdiff_t>(insert_at));
  result.insert(result.end(), args.begin(), args.begin() + static_cast<std::ptrdiff_t>(i));
  result.insert(result.end(), args.begin() + static_cast<std::ptrdiff_t>(insert_at), args.end());
  return result;
}

void print_error(const std::string& message, const std::string& hint_command) {
  std::fprintf(stderr, "kvelect: error: %s\n", message.c_str());
  if (!hint_command.empty())
    std::fprintf(stderr, "Run '%s --help' for usage.\n", hint_command.c_str());
}

int real_main(int argc, char** argv) {
  CLI::App app("leader elections in a NATS JetStream Key-Value bucket", "kvelect");
  auto formatter = std::make_shared<ManFormatter>();
  formatter->column_width(34);
  formatter->label("Positionals", "ARGUMENTS");
  formatter->label("Subcommands", "COMMANDS");
  app.formatter(formatter);
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(KVELECT_VERSION));
  app.get_help_ptr()->group(kOptionsGroup);
  app.get_version_ptr()->group(kOptionsGroup);
  app.footer(kExitStatus);
  formatter->document(
      &app,
      {"kvelect COMMAND [OPTIONS] [ARGS...]\nkvelect COMMAND --help",
       "Elects one leader among processes through a NATS JetStream Key-Value bucket, with the\n"
       "protocol of Choria's Go election package: the leader's name is the value of the\n"
       "election's key, renewed before the bucket's TTL expires it.\n"
       "\n"
       "Every command takes --bucket, --name and the nats CLI's connection flags (--server,\n"
       "--creds, --user, --tlsca, --context, ...; NATS contexts are read as the nats CLI\n"
       "does); durations are written 500ms, 30s, 5m or 1h (also sums such as 1m30s).\n",
       "kvelect bucket add --ttl 30s\n"
       "kvelect run scheduler -- /usr/local/bin/scheduler --serve\n"
       "kvelect info\n"
       "kvelect watch\n"});

  std::function<int()> action;

  // run ------------------------------------------------------------------------------------
  RunOptions run_options;
  CLI::App* run = app.add_subcommand("run", "campaign, and run a command while leader");
  add_election(run, run_options.election);
  run->add_option("COMMAND", run_options.command,
                  "the command and its arguments: after '--' as separate words, or as one "
                  "quoted string split like a shell does (Choria's form); started when "
                  "leadership is won")
      ->required()
      ->type_name("");
  run->add_flag("--terminate", run_options.terminate,
                "on losing leadership stop the command (SIGINT, then SIGTERM after the grace "
                "period, then SIGKILL after another), and start it again on the next win")
      ->group(kOptionsGroup);
  add_duration(run, "--grace", run_options.grace,
               "how long the command gets after each termination signal")
      ->group(kOptionsGroup);
  run->add_option("--on-won", run_options.on_won,
                  "shell command run (/bin/sh -c) each time leadership is won")
      ->type_name("CMD")
      ->group(kOptionsGroup);
  run->add_option("--on-lost", run_options.on_lost,
                  "shell command run (/bin/sh -c) each time leadership is lost")
      ->type_name("CMD")
      ->group(kOptionsGroup);
  add_duration(run, "--hook-timeout", run_options.hook_timeout,
               "a hook still running after this long is killed")
      ->group(kOptionsGroup);
  run->add_flag("-q,--quiet", run_options.quiet, "print errors only, not transitions")
      ->group(kOptionsGroup);
  add_log_format(run, [&](LogFormat f) { run_options.log_format = f; });
  add_common(run, run_options.common);
  add_election_flags(run, run_options.flags);
  run->footer(std::string(kExitStatus) +
              "Otherwise: the command's exit code, or 128+N if a signal N killed it (0 when it\n"
              "ended by a stop signal kvelect forwarded); 127 if the command was not found, 126\n"
              "if it is not executable.\n");
  formatter->document(
      run,
      {"kvelect run [OPTIONS] ELECTION -- COMMAND [ARGS...]\n"
       "kvelect run [OPTIONS] ELECTION \"COMMAND [ARGS...]\"",
       "Campaigns in ELECTION and starts COMMAND (in a process group of its own) when this\n"
       "member wins. After '--' the words are taken as they are; without it (Choria's form)\n"
       "they are joined and split as a shell would, without a shell (quotes, backslashes;\n"
       "no variables or globs). COMMAND is looked up before connecting: exit 127 if it is not\n"
       "found, 126 if it is not executable.\n"
       "While COMMAND runs:\n"
       "  - about 1 s after it is started it gets SIGUSR1, and again whenever leadership is\n"
       "    won back; losing leadership sends SIGUSR2 (to COMMAND's process only); a command\n"
       "    that does not handle these signals dies of them, so use --terminate for such\n"
       "    commands;\n"
       "  - with --terminate, losing leadership sends SIGINT, then SIGTERM after --grace, then\n"
       "    SIGKILL after another --grace; the next win starts COMMAND again.\n"
       "kvelect exits when COMMAND exits by itself, with COMMAND's exit code, after leaving\n"
       "the election (the key is released, so another member takes over at once).\n"
       "\n"
       "SIGINT, SIGTERM, SIGHUP or SIGQUIT to kvelect are forwarded to COMMAND's process\n"
       "group (SIGKILL follows after --grace; a second signal sends SIGKILL at once); once\n"
       "COMMAND is gone kvelect releases leadership and exits 0 if COMMAND ended by that\n"
       "signal (or with 0), else with COMMAND's exit code. SIGTSTP (Ctrl-Z) suspends COMMAND's\n"
       "group and kvelect; on SIGCONT a lease that ran out meanwhile is acted on first.\n"
       "If kvelect itself dies, COMMAND receives SIGTERM (PR_SET_PDEATHSIG).\n"
       "\n"
       "COMMAND and the hooks get KVELECT_ELECTION, KVELECT_MEMBER, KVELECT_BUCKET and\n"
       "KVELECT_TOKEN (the fencing token of the win) in their environment; hooks also get\n"
       "KVELECT_EVENT (won or lost). Hooks run one at a time, in order, without blocking the\n"
       "campaign; a hook that outlives --hook-timeout is killed. kvelect's lines go to stderr\n"
       "with RFC 3339 times (--log-format json: one object per line).\n",
       "kvelect run scheduler \"/usr/local/bin/scheduler --serve\"\n"
       "kvelect run --name node1 scheduler -- /usr/local/bin/scheduler\n"
       "kvelect run --terminate --grace 10s cron -- crond -f\n"
       "kvelect run vip --on-won 'ip addr add 10.0.0.5/24 dev eth0' \\\n"
       "    --on-lost 'ip addr del 10.0.0.5/24 dev eth0' -- sleep infinity\n"});
  run->callback([&] { action = [&] { return run_command(run_options); }; });

  // file -----------------------------------------------------------------------------------
  FileOptions file_options;
  CLI::App* file = app.add_subcommand("file", "keep a file present while leader");
  // ELECTION PATH are checked by file_command(): Choria's FILE NAME order gets a usage error,
  // and --check FILE needs neither.
  file->add_option("ELECTION PATH", file_options.args,
                   "the election, and the file to keep while leader")
      ->expected(0, 3)
      ->type_name("");
  file->add_option("--check", file_options.check,
                   "only check FILE: exit 0 if it exists and was refreshed within --max-age, "
                   "else 1 (for cron jobs; no server contacted)")
      ->type_name("FILE")
      ->group(kOptionsGroup);
  add_duration(file, "--max-age", file_options.max_age, "how old FILE may be for --check")
      ->group(kOptionsGroup);
  add_log_format(file, [&](LogFormat f) { file_options.log_format = f; });
  add_common(file, file_options.common);
  add_election_flags(file, file_options.flags);
  file->footer(std::string(kExitStatus) + "With --check: 0 if FILE is fresh, 1 if it is missing "
                                          "or stale.\n");
  formatter->document(
      file,
      {"kvelect file [OPTIONS] ELECTION PATH\nkvelect file --check PATH [--max-age DURATION]",
       "Campaigns in ELECTION. While this member leads, PATH exists and holds\n"
       "  {\"leader\": NAME, \"since\": RFC3339, \"token\": TOKEN, \"count\": WINS}\n"
       "written atomically (a temporary file and rename); it is rewritten if removed, and its\n"
       "modification time is refreshed every few seconds while the lease runs. PATH is removed\n"
       "on losing leadership (before the key is released) and on exit (SIGINT, SIGTERM). The\n"
       "directory must be writable before campaigning; a write that fails as leader resigns\n"
       "and exits 1. A file left at PATH by an earlier kvelect is removed at start; any other\n"
       "file there makes kvelect refuse to start.\n"
       "\n"
       "--check PATH exits 0 if PATH exists and its modification time is within --max-age\n"
       "(default 1m), else 1 with a message, as Choria's 'election file --check'.\n"
       "Choria's argument order (FILE NAME) is refused with a usage error.\n",
       "kvelect file backup /run/backup.leader\n"
       "* * * * * root kvelect file --check /run/backup.leader && run-backup\n"});
  file->callback([&] { action = [&] { return file_command(file_options); }; });

  // info -----------------------------------------------------------------------------------
  InfoOptions info_options;
  CLI::App* info = app.add_subcommand("info", "show the bucket and the elections' leaders");
  info->add_flag("--json", info_options.json,
                 "one JSON object: the bucket's fields and an \"elections\" array")
      ->group(kOptionsGroup);
  info->add_option("ELECTION-REGEX", info_options.pattern,
                   "show only elections whose name matches this regular expression")
      ->type_name("")
      ->check(regex_validator());
  add_common(info, info_options.common);
  info->footer(std::string(kExitStatus) + "Warnings about the bucket do not change the exit "
                                          "status.\n");
  formatter->document(
      info, {"kvelect info [OPTIONS] [ELECTION-REGEX] [--json]",
             "Shows the bucket (storage, TTL, history, replicas and their health) with a WARNING\n"
             "line for each way it is unfit for elections: history other than 1, a TTL below 5s\n"
             "or above 1h, no stream leader, an offline or lagging replica. Then a table of the\n"
             "elections (the bucket's keys) matching ELECTION-REGEX (ECMAScript syntax, searched\n"
             "anywhere in the name), with their leaders ('-': none) and last writes.\n"
             "With --json, one object: the bucket's fields (as 'bucket info --json') and an\n"
             "\"elections\" array of {election, leader, revision, updated, age_ms}.\n",
             "kvelect info\nkvelect info '^sched'\nkvelect info --json | jq .elections\n"});
  info->callback([&] { action = [&] { return info_command(info_options); }; });

  // watch ----------------------------------------------------------------------------------
  WatchOptions watch_options;
  CLI::App* watch = app.add_subcommand("watch", "print election activity as it happens");
  watch->add_option("-e,--election", watch_options.election, "watch only this election")
      ->type_name("NAME")
      ->check(election_validator())
      ->group(kOptionsGroup);
  watch->add_flag("--json", watch_options.json, "one JSON object per line (--log-format json)")
      ->group(kOptionsGroup);
  add_log_format(watch, [&](LogFormat f) { watch_options.json = f == LogFormat::json; });
  watch
      ->add_option("--metrics", watch_options.metrics,
                   "serve counts of the activity seen at http://ADDR/metrics (e.g. "
                   "127.0.0.1:9464; port 0 picks one)" +
                       std::string(metrics_supported() ? "" : "; not in this build"))
      ->type_name("ADDR")
      ->group(kAdvancedGroup);
  add_common(watch, watch_options.common);
  watch->footer(kExitStatus);
  formatter->document(
      watch,
      {"kvelect watch [OPTIONS] [--election NAME] [--json]",
       "Prints a line per change of an election key, with a timestamp, until interrupted:\n"
       "  current   the value when the watch started\n"
       "  won       a member took the key (a new leader)\n"
       "  renewed   the leader renewed its lease\n"
       "  released  the leader gave the key up (kvelect:released)\n"
       "  evicted   the leader was evicted (kvelect:evict)\n"
       "  deleted, purged   the key was deleted or purged\n"
       "  expired   no renewal within the bucket's TTL: the value has expired\n"
       "nats-server announces no expiry, so 'expired' is inferred from the TTL. A candidate's\n"
       "failed campaign writes nothing and so is not seen; run 'kvelect campaign' for a\n"
       "member's own view. Each line is flushed as it is printed.\n",
       "kvelect watch\nkvelect watch --election scheduler --json\n"});
  watch->callback([&] { action = [&] { return watch_command(watch_options); }; });

  // evict ----------------------------------------------------------------------------------
  EvictOptions evict_options;
  CLI::App* evict_app = app.add_subcommand("evict", "force a new election");
  add_election(evict_app, evict_options.election);
  evict_app->add_flag("-f,--force", evict_options.force, "do not ask for confirmation")
      ->group(kOptionsGroup);
  add_common(evict_app, evict_options.common);
  evict_app->footer(std::string(kExitStatus) +
                    "Exit status 2 also when stdin is not a terminal and --force is missing;\n"
                    "1 when the confirmation is declined.\n");
  formatter->document(
      evict_app,
      {"kvelect evict [OPTIONS] ELECTION [--force]",
       "Marks the leader of ELECTION for eviction (a revision-checked write of kvelect:evict).\n"
       "A live leader stands down at once and releases the key; if it is gone, the others\n"
       "wait out its lease first. Asks for confirmation on a terminal unless --force is given;\n"
       "without a terminal --force is required. Prints the evicted leader, or that there was\n"
       "no leader.\n",
       "kvelect evict scheduler\nkvelect evict --force scheduler\n"});
  evict_app->callback([&] { action = [&] { return evict_command(evict_options); }; });

  // campaign -------------------------------------------------------------------------------
  CampaignOptions campaign_options;
  CLI::App* campaign = app.add_subcommand("campaign", "join an election and print its events");
  add_election(campaign, campaign_options.election);
  campaign
      ->add_flag("--json", campaign_options.json, "one JSON object per line (--log-format json)")
      ->group(kOptionsGroup);
  add_log_format(campaign, [&](LogFormat f) { campaign_options.json = f == LogFormat::json; });
  add_common(campaign, campaign_options.common);
  add_election_flags(campaign, campaign_options.flags);
  campaign->footer(kExitStatus);
  formatter->document(
      campaign,
      {"kvelect campaign [OPTIONS] ELECTION [--json]",
       "Joins ELECTION as a member and prints each event with a timestamp as it happens:\n"
       "campaign (each campaign, and each renewal while leader), won, lost, leader (a new\n"
       "leader observed, or none) and error. SIGINT or SIGTERM leaves the election, releasing\n"
       "leadership. With --json each line is one object:\n"
       "  {\"time\": \"2026-11-22T05:49:21.491726Z\", \"election\": \"...\", \"member\": \"...\",\n"
       "   \"event\": \"won\", \"state\": \"leader\", \"token\": 42}\n"
       "where 'leader' events add \"leader\" (a name, or null for no leader) and 'error' events\n"
       "add \"error\" (the message).\n",
       "kvelect campaign --name a scheduler\nkvelect campaign --json scheduler | jq .\n"});
  campaign->callback([&] { action = [&] { return campaign_command(campaign_options); }; });

  // bucket add -----------------------------------------------------------------------------
  CLI::App* bucket = app.add_subcommand("bucket", "manage election buckets");
  bucket->require_subcommand(1);
  bucket->footer(kExitStatus);
  formatter->document(bucket, {"kvelect bucket add [OPTIONS] [NAME] --ttl DURATION\n"
                               "kvelect bucket info [OPTIONS] [NAME] [--json]\n"
                               "kvelect bucket rm [OPTIONS] [NAME] [--force]",
                               "Bucket management. See 'kvelect bucket COMMAND --help'.\n", ""});
  BucketAddOptions add_options;
  CLI::App* add = bucket->add_subcommand("add", "create a bucket fit for elections");
  add->add_option("NAME", add_options.name, "the bucket's name (default: --bucket)")
      ->type_name("")
      ->check(bucket_validator());
  add_duration(add, "--ttl", add_options.ttl,
               "how long a leader's key lives without renewal (5s..1h for elections)")
      ->group(kOptionsGroup);
  add->add_option("--replicas", add_options.replicas, "number of stream replicas")
      ->check(CLI::Range(1, 5))
      ->capture_default_str()
      ->group(kOptionsGroup);
  add->add_option("--storage", add_options.storage, "stream storage")
      ->check(CLI::IsMember({"file", "memory"}))
      ->capture_default_str()
      ->type_name("file|memory")
      ->group(kOptionsGroup);
  add->add_flag("--markers", add_options.markers,
                "the server leaves a marker when the TTL removes a key, so members see a dead "
                "leader's key expire (nats-server 2.11 or newer)")
      ->group(kOptionsGroup);
  add_duration(add, "--marker-ttl", add_options.marker_ttl,
               "how long the server keeps a marker (at least 1s; with --markers)")
      ->group(kOptionsGroup);
  add_common(add, add_options.common);
  add->footer(kExitStatus);
  formatter->document(
      add,
      {"kvelect bucket add [OPTIONS] [NAME] --ttl DURATION [--replicas N] [--storage file|memory]\n"
       "                   [--markers [--marker-ttl DURATION]]",
       "Creates a KV bucket for elections: history 1 and the given TTL (the lease length).\n"
       "--markers asks the server (2.11 or newer; older ones are refused) for a marker when\n"
       "the TTL removes a key: members then take over as soon as a dead leader's key expires.\n"
       "An existing bucket with the same settings is accepted as is; one with other settings\n"
       "is an error that names each difference. A TTL outside 5s..1h\n"
       "draws a warning: elections refuse it without --skip-validation.\n",
       "kvelect bucket add --ttl 30s\nkvelect bucket add CHORIA_LEADER_ELECTION --ttl 10s "
       "--replicas 3\nkvelect bucket add --ttl 10s --markers\n"});
  add->callback([&] { action = [&] { return bucket_add_command(add_options); }; });

  // bucket info ----------------------------------------------------------------------------
  BucketInfoOptions binfo_options;
  CLI::App* binfo = bucket->add_subcommand("info", "show a bucket's settings and health");
  binfo->add_option("NAME", binfo_options.name, "the bucket's name (default: --bucket)")
      ->type_name("")
      ->check(bucket_validator());
  binfo->add_flag("--json", binfo_options.json, "one JSON object")->group(kOptionsGroup);
  add_common(binfo, binfo_options.common);
  binfo->footer(kExitStatus);
  formatter->document(
      binfo, {"kvelect bucket info [OPTIONS] [NAME] [--json]",
              "Shows the bucket's settings (storage, TTL, history, replicas, values) and its\n"
              "stream's cluster health, with a WARNING line for each way it is unfit for\n"
              "elections, as 'kvelect info' does without the elections table. With --json, one\n"
              "object: bucket, stream, storage, ttl_ms, history, replicas, values, cluster and\n"
              "warnings.\n",
              "kvelect bucket info\nkvelect bucket info CHORIA_LEADER_ELECTION --json\n"});
  binfo->callback([&] { action = [&] { return bucket_info_command(binfo_options); }; });

  // bucket rm ------------------------------------------------------------------------------
  BucketRmOptions rm_options;
  CLI::App* rm = bucket->add_subcommand("rm", "remove a bucket and its elections");
  rm->add_option("NAME", rm_options.name, "the bucket's name (default: --bucket)")
      ->type_name("")
      ->check(bucket_validator());
  rm->add_flag("-f,--force", rm_options.force, "do not ask for confirmation")->group(kOptionsGroup);
  add_common(rm, rm_options.common);
  rm->footer(std::string(kExitStatus) +
             "Exit status 2 also when stdin is not a terminal and --force is missing;\n"
             "1 when the confirmation is declined or the bucket does not exist.\n");
  formatter->document(
      rm, {"kvelect bucket rm [OPTIONS] [NAME] [--force]",
           "Deletes the bucket (its stream) with every election in it; running members end\n"
           "with a fatal 'bucket deleted' error. Asks for confirmation on a terminal unless\n"
           "--force is given; without a terminal --force is required.\n",
           "kvelect bucket rm --force TEST_ELECTIONS\n"});
  rm->callback([&] { action = [&] { return bucket_rm_command(rm_options); }; });

  // Man-page style headings for every command's help.
  std::function<void(CLI::App*)> headings = [&](CLI::App* command) {
    if (CLI::Option* help = command->get_help_ptr(); help != nullptr)
      help->group(kOptionsGroup);
    for (CLI::App* sub : command->get_subcommands([](CLI::App*) { return true; })) {
      sub->group("COMMANDS");
      headings(sub);
    }
  };
  headings(&app);

  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    args = hoist_leading_flags(app, std::move(args));
  } catch (const UsageError& e) {
    print_error(e.what(), "kvelect");
    return kExitUsage;
  }
  try {
    // CLI11 takes the arguments reversed when given as a vector.
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success))
      return app.exit(e); // --help, --version
    std::string message = e.what();
    if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr && app.get_subcommands().empty())
      message = fmt::format("a subcommand is required: {}", fmt::join(subcommand_names(app), ", "));
    if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
      // CLI11 lists the unexpected arguments with the "--" separator among them; name only
      // the offending ones.
      std::vector<std::string> extras;
      for (const CLI::App* sub = &app; sub != nullptr;) {
        for (const auto& arg : sub->remaining())
          if (arg != "--")
            extras.push_back(arg);
        const auto selected = sub->get_subcommands();
        sub = selected.empty() ? nullptr : selected.front();
      }
      if (!extras.empty())
        message = fmt::format("unexpected argument{}: {}", extras.size() > 1 ? "s" : "",
                              fmt::join(extras, " "));
      const bool separator =
          std::any_of(args.begin(), args.end(), [](const std::string& a) { return a == "--"; });
      if (run->parsed() && !separator)
        message += " (put '--' before the command if it has options of its own)";
    }
    print_error(message, command_path(app));
    return kExitUsage;
  }
  if (!action)
    return kExitUsage; // not reached: a subcommand is required
  // `run NAME -- argv...` takes the words verbatim; without '--' they are Choria's quoted form.
  run_options.argv_form =
      std::any_of(args.begin(), args.end(), [](const std::string& a) { return a == "--"; });

  try {
    return action();
  } catch (const UsageError& e) {
    print_error(e.what(), command_path(app));
    return kExitUsage;
  } catch (const Failure& e) {
    print_error(e.what(), "");
    return kExitFailure;
  } catch (const Error& e) {
    const bool usage = e.code() == Errc::invalid_name || e.code() == Errc::invalid_key;
    print_error(describe(e), usage ? command_path(app) : "");
    return usage ? kExitUsage : kExitFailure;
  } catch (const std::exception& e) {
    print_error(e.what(), "");
    return kExitFailure;
  }
}

} // namespace
} // namespace kvelect::cli

int main(int argc, char** argv) {
  const int code = kvelect::cli::real_main(argc, argv);
  kvelect::cli::close_nats_library(); // every connection is gone: see connect_flags.hpp
  return code;
}
