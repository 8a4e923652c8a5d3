#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The nats-server builds kvelect is tested against: Debian's packages of bookworm (Debian 12, the
# system's), trixie and sid, put into a project-local cache (.cache/nats-servers/SUITE/) without
# touching the system: each suite gets a private apt configuration (its own sources list, lists
# and cache directories, an empty dpkg status), the .deb is downloaded with `apt-get download`
# and unpacked with `dpkg -x`. nats-server is a static Go binary, so the unpacked file runs as is.
#
# Usage: scripts/nats-servers.sh [--refresh] [SUITE...]    (default suites: bookworm trixie sid)
#   Prints one line per suite: "SUITE VERSION PATH". A suite whose binary is already cached is
#   not downloaded again unless --refresh is given. A suite that cannot be fetched is reported
#   and the script exits 1 after trying the others: a missing server version is never skipped
#   silently.
#   scripts/nats-servers.sh --path SUITE   prints the cached binary's path (exit 1 if not cached)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${KVELECT_SERVER_CACHE:-$ROOT/.cache/nats-servers}
MIRROR=${KVELECT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
DEFAULT_SUITES=(bookworm trixie sid)

binary_of() { printf '%s/%s/root/usr/sbin/nats-server' "$CACHE" "$1"; }

version_of() { # the version nats-server prints of itself, e.g. 2.10.27
  "$1" --version 2>/dev/null | sed -n 's/^nats-server: v//p'
}

fetch() { # fetch SUITE
  local suite=$1 dir=$CACHE/$1
  local apt=$dir/apt
  rm -rf "$apt" "$dir/root" "$dir/deb"
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dir/deb"
  printf 'deb [signed-by=%s] %s %s main\n' "$KEYRING" "$MIRROR" "$suite" >"$apt/sources.list"
  local opts=(-q -o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Dir::State::Status=/dev/null
    -o "APT::Architecture=$(dpkg --print-architecture)" -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update >"$apt/update.log" 2>&1 || {
    cat "$apt/update.log" >&2
    return 1
  }
  (cd "$dir/deb" && apt-get "${opts[@]}" download nats-server) >"$apt/download.log" 2>&1 || {
    cat "$apt/download.log" >&2
    return 1
  }
  local deb
  deb=$(find "$dir/deb" -maxdepth 1 -name 'nats-server_*.deb' | head -n 1)
  [[ -n $deb ]] || {
    echo "no nats-server .deb was downloaded for $suite" >&2
    return 1
  }
  dpkg -x "$deb" "$dir/root"
  # Only the binary is needed: the lists are ~10 MB a suite.
  rm -rf "$apt/lists" "$apt/cache"
  [[ -x $(binary_of "$suite") ]] || {
    echo "$deb holds no usr/sbin/nats-server" >&2
    return 1
  }
}

refresh=0
suites=()
while (($#)); do
  case $1 in
  --refresh) refresh=1 ;;
  --path)
    bin=$(binary_of "${2:?--path needs a suite}")
    [[ -x $bin ]] || {
      echo "nats-server of $2 is not cached (run ./dev servers)" >&2
      exit 1
    }
    echo "$bin"
    exit 0
    ;;
  -*)
    echo "unknown option $1" >&2
    exit 2
    ;;
  *) suites+=("$1") ;;
  esac
  shift
done
((${#suites[@]})) || suites=("${DEFAULT_SUITES[@]}")

failed=()
for suite in "${suites[@]}"; do
  bin=$(binary_of "$suite")
  if ((refresh)) || [[ ! -x $bin ]]; then
    if ! fetch "$suite"; then
      echo "nats-servers: $suite: nats-server could not be fetched" >&2
      failed+=("$suite")
      continue
    fi
  fi
  version=$(version_of "$bin")
  if [[ -z $version ]]; then
    echo "nats-servers: $suite: $bin does not run" >&2
    failed+=("$suite")
    continue
  fi
  echo "$suite $version $bin"
done
if ((${#failed[@]})); then
  echo "nats-servers: MISSING: ${failed[*]}" >&2
  exit 1
fi
