#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Runs every kvelect benchmark with quick settings (about 5 minutes on 2 cores) and prints their
# tables. The full settings behind the figures in docs/benchmarks.md are listed there.
#
#   bench/run_all.sh BUILD_DIR/bench        (or: ninja -C BUILD_DIR bench-quick)
#
# Each binary starts its own nats-server (PATH or /usr/sbin). A failing benchmark does not stop
# the others; the exit status is non-zero if any failed.
set -u
dir=${1:-$(dirname "$0")}
status=0

run() {
  echo
  echo "==== $*"
  "$@" || { echo "==== FAILED ($?): $*"; status=1; }
}

run "$dir/kvelect-bench-latency" --handovers=60 --renewals=100 --coldstart-runs=10 --raw=1000
run "$dir/kvelect-bench-failover" --ttl-ms=2000 --runs=5 --sigterm-runs=5
run "$dir/kvelect-bench-members" --members=20,100 --runs=3 --steady-s=10 --vacancies=10
run "$dir/kvelect-bench-scale" --elections=100,1000 --steady-s=10
exit $status
