#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The fault lab's checker on made-up histories (the meson test `lab_check`): a consistent run
# passes; an overlap of leaderships, a repeated token and a write accepted from a deposed leader
# each fail it. So the lab (tests/lab/lab.sh) cannot pass a run that has one of them.
#   check_selftest.sh PATH-TO-kvelect-lab-check
set -euo pipefail
check=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# write_run DIR B_WON_NS B_TOKEN A_LATE_WRITE: member a leads [2 s, 8 s) with token 5, member b
# wins at B_WON_NS with B_TOKEN; A_LATE_WRITE is a's last fenced write (ns token verdict).
write_run() {
  mkdir -p "$1/members" "$1/fence"
  printf '%s\n' "1000000000 a ready" "2000000000 a won 5" "8000000000 a lost" \
    "13000000000 a stopped" >"$1/members/a.out"
  printf '%s\n' "1000000000 b ready" "$2 b won $3" "12900000000 b lost" \
    "13000000000 b stopped" >"$1/members/b.out"
  printf '%s\n' "1500000000 fault 1 stop-member a SIGSTOPped" "7000000000 heal 1" \
    "12800000000 healed" "12850000000 stopping" "13100000000 end" >"$1/faults.log"
  printf '%s\n' "2000100000 a 5 accepted" "$4" >"$1/fence/log"
}

expect() { # want-status name dir
  local status=0
  "$check" --dir "$3" --ttl-ms 5000 >"$3.out" 2>&1 || status=$?
  if [[ $status != "$1" ]]; then
    echo "FAIL: $2: kvelect-lab-check exited $status, expected $1"
    cat "$3.out"
    exit 1
  fi
  echo "ok: $2 (exit $status): $(grep -m1 -E 'PROBLEM|RESULT' "$3.out")"
}

write_run "$tmp/good" 9000000000 7 "9000200000 b 7 accepted
9500000000 a 5 rejected"
expect 0 "a consistent run" "$tmp/good"
write_run "$tmp/overlap" 7000000000 7 "9000200000 b 7 accepted"
expect 1 "b wins while a still leads" "$tmp/overlap"
write_run "$tmp/repeat" 9000000000 5 "9000200000 b 5 accepted"
expect 1 "b wins with a's token" "$tmp/repeat"
write_run "$tmp/deposed" 9000000000 7 "9000100000 a 5 accepted"
expect 1 "a's write accepted after b won" "$tmp/deposed"
