#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The fault lab (docs/reliability.md): a three-node JetStream cluster and election members, each
# in a network namespace of its own on a private bridge, faults scheduled from a seed, a fenced
# store, and a checker over the whole history. `./dev lab` runs it.
#
#   tests/lab/lab.sh --build DIR [--seed N] [--minutes M] [--ttl S] [--server PATH] [--keep]
#                    [--kinds KIND,KIND...]
#
# --minutes: how long faults are injected (default 4); --ttl: the bucket's TTL in seconds
# (default 5, the library's lower limit); --server: the nats-server binary (default: the one
# on PATH); --keep: keep the run directory even when the run passes; --kinds: inject only these
# fault kinds (default: all of them; the list is below).
#
# Exit status: 0 the run is consistent; 1 it is not (the seed and the fault schedule are
# printed to replay it); 77 skipped (not root, no `ip` or `nft`, no network namespaces): a skip
# is not a pass. Everything the lab makes is named kvlab-<pid>-*: the namespaces (the bridge
# lives inside kvlab-<pid>-hub, so nothing touches the host's own namespace or routes), and
# /run/kvlab/<pid>.lock, which the run holds while it lives. Namespaces of runs whose lock is no
# longer held (a run that died) are removed, with their processes, before a run starts.
set -uo pipefail

build=build seed='' minutes=4 ttl=5 server=nats-server keep=0 only=
while (($#)); do
  case $1 in
  --build) build=$2 && shift 2 ;;
  --seed) seed=$2 && shift 2 ;;
  --minutes) minutes=$2 && shift 2 ;;
  --ttl) ttl=$2 && shift 2 ;;
  --server) server=$2 && shift 2 ;;
  --keep) keep=1 && shift ;;
  --kinds) only=$2 && shift 2 ;;
  *) echo "lab.sh: bad argument $1" >&2 && exit 2 ;;
  esac
done
[[ -z $seed ]] && seed=$(($(od -An -N4 -tu4 /dev/urandom)))
member_bin=$build/tests/lab/kvelect-lab-member
check_bin=$build/tests/lab/kvelect-lab-check

skip() {
  echo "SKIPPED: the fault lab $*" >&2
  exit 77
}
[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, veth, nftables)"
command -v ip >/dev/null || skip "needs ip (Debian: iproute2)"
command -v nft >/dev/null || skip "needs nft (Debian: nftables)"
command -v flock >/dev/null || skip "needs flock (Debian: util-linux)"
[[ -x $member_bin && -x $check_bin ]] || {
  echo "lab.sh: build $member_bin and $check_bin first" >&2
  exit 2
}
member_path=$(realpath "$member_bin") # members start in the run's directory
server=$(command -v "$server") || {
  echo "lab.sh: no nats-server" >&2
  exit 2
}

log() { printf '[lab %s] %s\n' "$(date -u +%T)" "$*"; }
now() { "$member_bin" now; }

# --- stale runs, then our own lock -------------------------------------------------------------
lockdir=/run/kvlab
mkdir -p "$lockdir"
for ns in $(ip netns list | awk '{print $1}' | grep '^kvlab-'); do
  id=${ns#kvlab-}
  id=${id%%-*}
  # A live run holds its lock: leave its namespaces alone.
  if [[ -e $lockdir/$id.lock ]] && ! flock -n "$lockdir/$id.lock" true; then
    continue
  fi
  log "removing $ns, left by a run that died"
  for pid in $(ip netns pids "$ns"); do kill -9 "$pid" 2>/dev/null; done
  ip netns del "$ns"
done
for f in "$lockdir"/*.lock; do
  [[ -e $f ]] && flock -n "$f" rm -f "$f"
done
lockfile=$lockdir/$$.lock
exec 9>"$lockfile"
flock -n 9 || skip "could not lock $lockfile"

P=kvlab-$$-
hub=${P}hub
run=$(mktemp -d "${TMPDIR:-/tmp}/kvlab-run-XXXXXX")
mkdir -p "$run/members" "$run/fence"
declare -A pid=()                            # node -> pid (n1..n3 servers, m1..m3 members)
servers=(n1 n2 n3) members=(m1 m2 m3)
declare -A addr=([n1]=10.77.0.1 [n2]=10.77.0.2 [n3]=10.77.0.3 [m1]=10.77.0.11 [m2]=10.77.0.12
  [m3]=10.77.0.13 [ctl]=10.77.0.100)
server_addrs="10.77.0.1 10.77.0.2 10.77.0.3"
urls="--server nats://10.77.0.1:4222 --server nats://10.77.0.2:4222 --server nats://10.77.0.3:4222"
faults=$run/faults.log
status=1

teardown() {
  trap - EXIT INT TERM
  for node in "${!pid[@]}"; do kill -CONT "${pid[$node]}" 2>/dev/null; done
  for node in "${!pid[@]}"; do kill -KILL "${pid[$node]}" 2>/dev/null; done
  wait 2>/dev/null
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P"); do ip netns del "$ns"; done
  rm -f "$lockfile"
  if ((status == 0 && !keep)); then
    rm -rf "$run"
  else
    echo "lab: run directory kept at $run"
  fi
  exit "$status"
}
trap teardown EXIT
trap 'echo "lab: interrupted"; status=130; exit 130' INT TERM

replay() {
  echo "lab: to replay: ./dev lab --seed $seed --minutes $minutes${only:+ --kinds $only}   (TTL ${ttl}s, $server)"
  echo "lab: members' events in $run/members/*.out, the library's debug lines in *.err"
  echo "lab: the fault schedule (seconds since the first fault):"
  awk '$2=="fault"||$2=="heal"{ if (!t0) t0=$1; printf "  %8.2f  %s\n", ($1-t0)/1e9, substr($0, index($0,$2)) }' "$faults"
}

# --- the network ------------------------------------------------------------------------------
netns_ok=0
ip netns add "$hub" 2>/dev/null && netns_ok=1
((netns_ok)) || {
  status=77
  skip "cannot create network namespaces here (ip netns add failed)"
}
ip -n "$hub" link add br0 type bridge && ip -n "$hub" link set br0 up || exit 1

add_node() { # name: a namespace with eth0 on the bridge and an empty nftables table
  local ns=$P$1
  ip netns add "$ns" &&
    ip -n "$ns" link set lo up &&
    ip -n "$ns" link add eth0 type veth peer name "$1" netns "$hub" &&
    ip -n "$hub" link set "$1" master br0 up &&
    ip -n "$ns" addr add "${addr[$1]}/24" dev eth0 &&
    ip -n "$ns" link set eth0 up &&
    ip netns exec "$ns" nft -f - <<EOF
table inet kvlab {
  chain out { type filter hook output priority 0; policy accept; }
  chain in { type filter hook input priority 0; policy accept; }
}
EOF
}
for node in "${servers[@]}" "${members[@]}" ctl; do
  add_node "$node" || exit 1
done
# netem is a kernel module some kernels lack (this lab's CI kernel among them): probe it.
netem=0
ip netns exec "${P}ctl" tc qdisc add dev eth0 root netem delay 1ms 2>/dev/null && netem=1
ip netns exec "${P}ctl" tc qdisc del dev eth0 root 2>/dev/null

nft_in() { ip netns exec "$P$1" nft "${@:2}"; }
drop() { # node out|in peer-address...: drop that node's packets to / from the peers
  local node=$1 dir=$2 field=daddr
  shift 2
  [[ $dir == in ]] && field=saddr
  for a in "$@"; do nft_in "$node" add rule inet kvlab "$dir" ip "$field" "$a" drop; done
}
heal_network() {
  for node in "${servers[@]}" "${members[@]}"; do
    nft_in "$node" flush chain inet kvlab out
    nft_in "$node" flush chain inet kvlab in
    ((netem)) && ip netns exec "$P$node" tc qdisc del dev eth0 root 2>/dev/null
  done
  return 0
}

# --- servers and members ----------------------------------------------------------------------
start_server() { # n1|n2|n3; the file store in $run/<node>/js survives a restart
  local node=$1 dir=$run/$1 routes=()
  mkdir -p "$dir"
  for peer in "${servers[@]}"; do
    [[ $peer == "$node" ]] || routes+=("nats-route://${addr[$peer]}:6222")
  done
  cat >"$dir/nats.conf" <<EOF
server_name: $node
listen: ${addr[$node]}:4222
jetstream { store_dir: "$dir/js", max_memory_store: 64MB, max_file_store: 1GB }
cluster { name: kvlab, listen: ${addr[$node]}:6222, routes: [ $(
    IFS=,
    echo "${routes[*]}"
  ) ] }
EOF
  # 9>&- (here and for every child that may outlive a killed run: sleep, ctl): the lock is the
  # run's alone; a child that kept it would make a dead run look alive.
  ip netns exec "$P$node" "$server" -c "$dir/nats.conf" >>"$dir/server.log" 2>&1 9>&- &
  pid[$node]=$!
}
start_member() { # m1..m3: m1 and m2 know only their own server, m3 knows all three
  local node=$1 servers_args
  case $node in
  m1) servers_args="--server nats://10.77.0.1:4222" ;;
  m2) servers_args="--server nats://10.77.0.2:4222" ;;
  *) servers_args=$urls ;;
  esac
  # In the members' directory with core dumps allowed: a member that dies leaves its core
  # there (where the kernel's core_pattern writes one), kept with the run. The subshell execs
  # into the member, so $! is the member's pid.
  # shellcheck disable=SC2086 # the URL options are words
  (
    cd "$run/members" && ulimit -c unlimited 2>/dev/null
    exec ip netns exec "$P$node" "$member_path" member $servers_args --bucket LAB --key job \
      --name "$node" --fence "$run/fence" >"$run/members/$node.out" 2>"$run/members/$node.err" 9>&-
  ) &
  pid[$node]=$!
}
ctl() { # command: kvelect-lab-member from the control namespace, which no fault touches
  # shellcheck disable=SC2086
  ip netns exec "${P}ctl" "$member_bin" "$1" $urls --bucket LAB "${@:2}" 2>>"$run/ctl.err" 9>&-
}
stream_leader() { ctl stream-leader || echo "?"; }
election_leader() { # the member whose last won/lost line is a won, or "?"
  local m last
  for m in "${members[@]}"; do
    last=$(grep -E '^[0-9]+ [^ ]+ (won|lost)( |$)' "$run/members/$m.out" | tail -1 | cut -d' ' -f3)
    [[ $last == won ]] && echo "$m" && return
  done
  echo "?"
}

log "seed $seed, $minutes min of faults, TTL ${ttl}s, $("$server" --version) ($server)," \
  "netem $( ((netem)) && echo available || echo 'not in this kernel: loss only')"
log "run directory $run; namespaces ${P}*"
for node in "${servers[@]}"; do start_server "$node"; done
if ! ctl create --ttl-ms $((ttl * 1000)) --replicas 3 >"$run/create.out"; then
  echo "lab: the cluster did not come up; server logs in $run/n*/server.log" >&2
  tail -n 5 "$run"/n*/server.log "$run/ctl.err" >&2
  exit 1
fi
log "$(cat "$run/create.out"), stream leader $(stream_leader)"
for node in "${members[@]}"; do start_member "$node"; done

# --- faults -----------------------------------------------------------------------------------
kinds=(part-server-leader part-server-follower part-member asym-server asym-member lossy
  kill-server stop-server stop-member stepdown)
if [[ -n $only ]]; then
  IFS=, read -r -a kinds <<<"$only"
  for kind in "${kinds[@]}"; do
    [[ $kind =~ ^(part-server-leader|part-server-follower|part-member|asym-server|asym-member|lossy|kill-server|stop-server|stop-member|stepdown)$ ]] || {
      echo "lab.sh: unknown fault kind $kind" >&2
      exit 2
    }
  done
fi
RANDOM=$seed
fault_id=0 heal_steps=()

mark() { echo "$(now) $*" >>"$faults"; }
other_servers() { for n in "${servers[@]}"; do [[ $n == "$1" ]] || echo "${addr[$n]}"; done; }
pick_server() { # r: the stream leader for even r (if known), another server for odd r
  local leader
  leader=$(stream_leader)
  if [[ $leader != n[123] ]]; then
    echo "${servers[$(($1 % 3))]}"
  elif (($1 % 2 == 0)); then
    echo "$leader"
  else
    local others=()
    for n in "${servers[@]}"; do [[ $n == "$leader" ]] || others+=("$n"); done
    echo "${others[$(($1 / 2 % 2))]}"
  fi
}
pick_member() { # the election's leader if there is one, else one chosen by r
  local leader
  leader=$(election_leader)
  [[ $leader == m[123] ]] && echo "$leader" || echo "${members[$(($1 % 3))]}"
}

inject() { # kind r1 r2: one fault. Marks it, then does it; sets heal_steps to what undoes it
  local kind=$1 r1=$2 r2=$3 node detail dir=out acts=() leader
  heal_steps=(heal_network)
  ((r2 % 2)) && dir=in
  case $kind in
  part-server-leader | part-server-follower)
    leader=$(stream_leader)
    if [[ $kind == part-server-leader ]]; then
      node=$leader
      [[ $node == n[123] ]] || node=${servers[$((r1 % 3))]}
    else
      node=$(pick_server $((2 * r1 + 1)))
    fi
    acts=("drop $node out $(other_servers "$node")" "drop $node in $(other_servers "$node")")
    detail="$node cut off from the other servers (stream leader $leader)"
    ;;
  part-member)
    node=$(pick_member "$r1")
    acts=("drop $node out $server_addrs" "drop $node in $server_addrs")
    detail="$node cut off from every server"
    ;;
  asym-server)
    node=$(pick_server "$r1")
    acts=("drop $node $dir $(other_servers "$node")")
    detail="$node: packets $dir (to|from) the other servers dropped, the other direction kept"
    ;;
  asym-member)
    node=$(pick_member "$r1")
    acts=("drop $node $dir $server_addrs")
    detail="$node: packets $dir (to|from) the servers dropped, the other direction kept"
    ;;
  lossy)
    local loss=$((10 + r2 % 21)) delay=$((50 + r2 % 200)) jitter=$((10 + r2 % 50)) targets
    targets="$(pick_server "$r1") $(pick_member "$r1")"
    for node in $targets; do
      if ((netem)); then
        acts+=("ip netns exec $P$node tc qdisc add dev eth0 root netem delay ${delay}ms ${jitter}ms loss $loss%")
      else
        acts+=("nft_in $node add rule inet kvlab out numgen random mod 100 '<' $loss drop"
          "nft_in $node add rule inet kvlab in numgen random mod 100 '<' $loss drop")
      fi
    done
    detail="$targets: $loss% loss each way (nftables; no netem in this kernel)"
    ((netem)) && detail="$targets: netem delay ${delay}ms jitter ${jitter}ms loss $loss%"
    ;;
  kill-server)
    node=$(pick_server "$r1")
    acts=("kill -KILL ${pid[$node]}" "wait ${pid[$node]}")
    heal_steps=(heal_network "start_server $node")
    detail="$node SIGKILLed (stream leader $(stream_leader)); restarted with its store at heal"
    ;;
  stop-server)
    node=$(pick_server "$r1")
    acts=("kill -STOP ${pid[$node]}")
    heal_steps=(heal_network "kill -CONT ${pid[$node]}")
    detail="$node SIGSTOPped (stream leader $(stream_leader))"
    ;;
  stop-member)
    node=$(pick_member "$r1")
    # The checker cuts the member's leadership at "paused" (History): a stopped process cannot
    # act, and what it does at once on SIGCONT is not leadership (tests/fault/history.hpp).
    acts=("kill -STOP ${pid[$node]}" "sleep 0.05" "mark paused $node")
    heal_steps=(heal_network "mark resumed $node" "kill -CONT ${pid[$node]}")
    detail="$node SIGSTOPped"
    ;;
  stepdown)
    acts=("ctl stepdown >/dev/null")
    detail="stream leader $(stream_leader) asked to step down"
    ;;
  esac
  fault_id=$((fault_id + 1))
  mark fault "$fault_id" "$kind" "$detail"
  local act
  for act in "${acts[@]}"; do eval "$act" 2>/dev/null; done
  log "fault $fault_id $kind: $detail"
}

heal() {
  local step
  for step in "${heal_steps[@]}"; do eval "$step"; done
  heal_steps=(heal_network)
  mark heal "$fault_id"
}

sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))" 9>&-; }

# Settle before the first fault: a leader should be elected within a TTL or two.
sleep_ms $((2 * ttl * 1000))
deadline=$(($(date +%s) + minutes * 60))
round=()
while (($(date +%s) < deadline)); do
  if ((${#round[@]} == 0)); then # a new round: every kind once, in an order drawn from the seed
    round=("${kinds[@]}")
    for ((i = ${#round[@]} - 1; i > 0; i--)); do
      j=$((RANDOM % (i + 1)))
      tmp=${round[i]} && round[i]=${round[j]} && round[j]=$tmp
    done
  fi
  kind=${round[0]}
  round=("${round[@]:1}")
  r1=$RANDOM r2=$RANDOM hold=$((ttl * 1000 + RANDOM % (ttl * 1500))) settle=$((ttl * 1000 + RANDOM % (ttl * 1000)))
  inject "$kind" "$r1" "$r2"
  [[ $kind == stepdown ]] || sleep_ms "$hold"
  heal
  sleep_ms "$settle"
done

# --- the end: heal, a leader again, stop the members, check -----------------------------------
heal_network
for node in "${!pid[@]}"; do kill -CONT "${pid[$node]}" 2>/dev/null; done
ok=1
mark healed
for ((i = 0; i < 6 * ttl; i++)); do
  [[ $(election_leader) == m[123] ]] && break
  sleep 0.5
done
if [[ $(election_leader) != m[123] ]]; then
  echo "lab: LIVENESS: no leader within $((3 * ttl)) s after the final heal" >&2
  ok=0
fi
mark stopping
for node in "${members[@]}"; do
  if ! kill -0 "${pid[$node]}" 2>/dev/null; then
    echo "lab: member $node died; its stderr:" >&2
    tail -20 "$run/members/$node.err" >&2
    ok=0
  fi
  kill -TERM "${pid[$node]}" 2>/dev/null
done
for core in "$run"/members/core*; do
  [[ -e $core ]] && echo "lab: a member's core dump: $core (gdb $member_path $core)" >&2
done
for node in "${members[@]}"; do
  wait "${pid[$node]}" 2>/dev/null
  unset "pid[$node]"
done
mark end
log "faults done; checking"
"$check_bin" --dir "$run" --ttl-ms $((ttl * 1000)) | tee "$run/report.txt"
check=${PIPESTATUS[0]}
if ((check == 0 && ok)); then
  status=0
  log "PASSED (seed $seed)"
else
  status=1
  log "FAILED (seed $seed)"
  replay
fi
