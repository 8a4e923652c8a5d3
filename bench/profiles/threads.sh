#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Per-thread CPU (ms per second) and voluntary / involuntary context switches per second of a
# process over a window, from /proc/PID/task/*/stat and status (docs/executor.md, "Profiles of
# the misses"). Usage: threads.sh PID SECONDS. Thread names are the process's; `gdb -p PID
# -batch -ex "thread apply all bt"` tells which thread does what.
pid=$1; win=$2
snap() { for t in /proc/$pid/task/*; do tid=${t##*/}; read -r -a s < $t/stat 2>/dev/null || continue
  # fields: comm may contain spaces; assume not
  v=$(awk '/^voluntary_ctxt_switches/{print $2}' $t/status); nv=$(awk '/^nonvoluntary_ctxt_switches/{print $2}' $t/status)
  echo "$tid ${s[1]} ${s[13]} ${s[14]} $v $nv"; done; }
tmp=$(mktemp -d)
snap > $tmp/0; sleep $win; snap > $tmp/1
tck=$(getconf CLK_TCK)
join <(sort $tmp/0) <(sort $tmp/1) | awk -v w=$win -v t=$tck '{cpu=($8+$9-$3-$4)*1000/t; vcs=($10-$5)/w; ncs=($11-$6)/w; printf "%-8s %-16s cpu_ms_per_s=%7.2f  vol_cs_per_s=%8.1f  invol_cs_per_s=%6.1f\n",$1,$2,cpu/w,vcs,ncs; T+=cpu; V+=vcs} END {printf "total cpu_ms_per_s=%.2f vol_cs_per_s=%.1f\n", T/w, V}'
rm -r "$tmp"
