#!/usr/bin/env bash
# Capacity of hotline behind Kamailio: calls per second and concurrent calls through the
# proxy, with one node or several, and what the proxy and each node cost per call.
#
# It starts NODES `hotline serve` nodes on loopback (each with its own data folder, SQLite
# records and RTP range), Kamailio with the shipped deploy/kamailio/kamailio.cfg in front of
# them (a nodes list generated in a temp folder), then `hotline load --target <proxy>`: CALLS
# calls at RATE new calls per second, each held HOLD seconds, walking the sample menu with
# keys and checking every prompt it hears. CPU (utime+stime from /proc/PID/stat) of Kamailio
# (all its processes), of each node and of the load tool is read before and after, memory
# is sampled every 0.5 s (RSS of each node, PSS summed over Kamailio's processes), and a
# summary is printed: calls offered / set up / failed, INVITE → 200 latency, keys lost, CPU
# per call of the proxy and of the nodes, and the CPU of other processes meanwhile.
#
# Usage (from anywhere; needs target/release/hotline and /usr/sbin/kamailio):
#   benches/cluster-capacity.sh [NODES] [CALLS] [RATE] [HOLD]
#   benches/cluster-capacity.sh 1 1000 100 20     # defaults: 1 node, 1000 calls, 100/s, 20 s
#   benches/cluster-capacity.sh 3 1000 100 20     # the same load spread over three nodes
# Environment (all optional):
#   HOTLINE=path      the hotline binary (default: target/release/hotline of this repository)
#   KAMAILIO=path     the Kamailio binary (default: /usr/sbin/kamailio)
#   PROXY_PORT=25070  the proxy's loopback port; node i listens on NODE_PORT+i (25080)
#   NODE_RATE=1000    each node's limits.new_calls_per_second and burst. The shipped default
#                     is 200/s per node; it is raised here so that the sweep measures the
#                     machine, not the admission policy (set NODE_RATE=200 to see the latter).
#   QUIET_PCT=20      before starting, wait (at most 60 s) until the machine has been below
#                     this % busy (of all cores) for 3 s; the run goes on regardless, and says so
#   RESULTS=file      append the summary as one JSON line to this file
#   KEEP=1            keep the temp folder (logs, configs, the load tool's JSON) afterwards
#
# Everything runs on 127.0.0.1; every wait is bounded; every process started here is
# stopped on exit. Needs jq. Exit status: the load tool's (0 = every call set up, no key
# lost, RTP p99 gap within 25 ms; 1 otherwise), or 2 when the cluster could not be started.
# The method and the figures: docs/cluster.md#capacity-through-the-proxy.
set -euo pipefail

NODES=${1:-1}
CALLS=${2:-1000}
RATE=${3:-100}
HOLD=${4:-20}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HOTLINE=${HOTLINE:-$REPO/target/release/hotline}
KAMAILIO=${KAMAILIO:-/usr/sbin/kamailio}
PROXY_PORT=${PROXY_PORT:-25070}
NODE_PORT=${NODE_PORT:-25080}
NODE_RATE=${NODE_RATE:-1000}
QUIET_PCT=${QUIET_PCT:-20}
RESULTS=${RESULTS:-}
KEEP=${KEEP:-0}

die() { echo "cluster-capacity: $*" >&2; exit 2; }
[[ $NODES =~ ^[1-9]$ ]] || die "NODES must be 1..9 (got $NODES)"
[[ $CALLS =~ ^[0-9]+$ && $RATE =~ ^[0-9]+$ && $HOLD =~ ^[0-9]+$ ]] || die "CALLS RATE HOLD are whole numbers"
[[ -x $HOTLINE ]] || die "no hotline binary at $HOTLINE (cargo build --release)"
[[ -x $KAMAILIO ]] || die "no kamailio at $KAMAILIO (Debian package kamailio)"
command -v jq >/dev/null || die "jq is needed"
# Node i gets RTP ports 20000+3000*i .. +2999 (1,500 calls), clear of the kernel's ephemeral
# range (32768-60999), where the callers' own sockets land.
(( 20000 + 3000 * NODES - 1 < 32768 )) || die "too many nodes for the RTP ranges"
(( CALLS <= 1500 * NODES )) || die "$CALLS calls do not fit $NODES node(s) of 1,500 RTP port pairs"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/hotline-cluster-capacity.XXXXXX")
KAM_PID=""
LOAD_PID=""
NODE_PIDS=()

# Stops the processes we started: SIGTERM to all, up to 5 s, then SIGKILL to what is left
# (a node with calls in progress drains for minutes on SIGTERM).
stop() {
    local pids=() pid i alive
    for pid in "$@"; do
        [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && pids+=("$pid")
    done
    (( ${#pids[@]} )) || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        (( alive )) || break
        sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
cleanup() {
    set +e
    stop "$LOAD_PID"
    stop "$KAM_PID" "${NODE_PIDS[@]}"
    if [[ $KEEP == 1 ]]; then
        echo "cluster-capacity: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
on_signal() {
    trap - INT TERM EXIT
    cleanup
    exit 130
}
trap cleanup EXIT
trap on_signal INT TERM

port_free() { ! ss -Hlun "sport = :$1" | grep -q .; }
# Waits (bounded, $2 seconds) until something listens on UDP port $1.
wait_bound() {
    local port=$1 secs=$2 i
    for ((i = 0; i < secs * 10; i++)); do
        ss -Hlun "sport = :$port" | grep -q . && return 0
        sleep 0.1
    done
    return 1
}
# The samplers below fork nothing (bash builtins only), so that sampling during the run does
# not show up as CPU of "other processes". Each sets a global.
# TICKS: utime+stime of process $1, in clock ticks (0 when it is gone).
ticks() {
    local s=""
    TICKS=0
    read -r s 2>/dev/null <"/proc/$1/stat" || return 0
    s=${s##*) }
    local -a f
    read -r -a f <<<"$s"
    TICKS=$(( f[11] + f[12] ))   # fields 14 and 15 (utime, stime); f[0] is field 3
}
# MEM: VmRSS of process $1 in KiB, or with $2 = Pss its proportional share (shared memory
# counted once over the processes that share it: Kamailio's workers share its memory).
mem() {
    local k v rest file=/proc/$1/status key=VmRSS:
    [[ ${2:-} == Pss ]] && file=/proc/$1/smaps_rollup key=Pss:
    MEM=0
    while read -r k v rest; do
        [[ $k == "$key" ]] && { MEM=$v; return 0; }
    done 2>/dev/null <"$file" || true
}
# The machine: busy and total jiffies over all cores.
machine() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }
HZ=$(getconf CLK_TCK)
CORES=$(nproc)

for ((i = 0; i < NODES; i++)); do
    port_free $((NODE_PORT + i)) || die "UDP port $((NODE_PORT + i)) is taken"
done
port_free "$PROXY_PORT" || die "UDP port $PROXY_PORT is taken"

# --- the nodes' configuration: the sample hotline.yaml, open at all hours -------------------
grep -q '^flows: flows$' "$REPO/hotline.yaml" && grep -q '^prompts: prompts$' "$REPO/hotline.yaml" \
    && grep -q 'weekly:' "$REPO/hotline.yaml" || die "hotline.yaml is not the sample this script expects"
mkconfig() {
    sed -e "s|^flows: flows\$|flows: $REPO/flows|" \
        -e "s|^prompts: prompts\$|prompts: $REPO/prompts|" \
        -e 's|weekly: {.*}|weekly: { mon-sun: 00:00-24:00 }|' \
        "$REPO/hotline.yaml"
    # Records stay SQLite, in the node's own data/ (the sample's `records:` line).
    echo "limits: { max_calls: 3000, new_calls_per_second: $NODE_RATE, burst: $NODE_RATE }"
}

# --- wait for a quiet machine (bounded) ------------------------------------------------------
quiet="no"
read -r b0 t0 < <(machine)
for ((i = 0; i < 20; i++)); do
    sleep 3
    read -r b1 t1 < <(machine)
    busy=$(( (b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
    b0=$b1 t0=$t1
    if (( busy < QUIET_PCT )); then quiet="yes ($busy %)"; break; fi
    quiet="no ($busy % busy after $(( (i + 1) * 3 )) s)"
done
echo "cluster-capacity: machine quiet before the run: $quiet" >&2

# --- nodes -----------------------------------------------------------------------------------
LIST=$TMP/nodes.list
: >"$LIST"
for ((i = 0; i < NODES; i++)); do
    dir=$TMP/node$i
    mkdir -p "$dir/data"
    mkconfig >"$dir/hotline.yaml"
    lo=$((20000 + 3000 * i))
    (cd "$dir" && exec "$HOTLINE" serve --config hotline.yaml \
        --sip "udp:127.0.0.1:$((NODE_PORT + i))" --rtp-ports "$lo-$((lo + 2999))" \
        --admin off --demo-shop off </dev/null >"$dir/engine.log" 2>&1) &
    NODE_PIDS+=("$!")
    echo "1 sip:127.0.0.1:$((NODE_PORT + i)) 0 0" >>"$LIST"
done
for ((i = 0; i < NODES; i++)); do
    wait_bound $((NODE_PORT + i)) 30 || { cat "$TMP/node$i/engine.log" >&2; die "node $i did not start"; }
done

# --- the proxy: the shipped configuration, defaults but for the address and the nodes list ---
mkdir -p "$TMP/run"
"$KAMAILIO" -f "$REPO/deploy/kamailio/kamailio.cfg" -DD -E -m 128 -M 8 \
    -Y "$TMP/run" -w "$TMP" \
    -A "LISTEN=udp:127.0.0.1:$PROXY_PORT" -A "NODES_LIST=\"$LIST\"" \
    </dev/null >"$TMP/kamailio.log" 2>&1 &
KAM_PID=$!
wait_bound "$PROXY_PORT" 30 || { cat "$TMP/kamailio.log" >&2; die "kamailio did not start"; }
sum_ticks() { local t=0 p; for p in "$@"; do ticks "$p"; t=$((t + TICKS)); done; SUM=$t; }
# sum_mem KIND PID...: KIND is VmRSS or Pss.
sum_mem() { local r=0 p k=$1; shift; for p in "$@"; do mem "$p" "$k"; r=$((r + MEM)); done; SUM=$r; }
# Kamailio's processes: the main one and everything it forked (they live as long as it does).
kam_pids() {
    local p
    echo "$KAM_PID"
    for p in $(pgrep -P "$KAM_PID" || true); do echo "$p"; pgrep -P "$p" || true; done
}
# Let every node answer the proxy's first OPTIONS probes (PROBE_INTERVAL is 3 s); the load
# tool then waits for the proxy itself to answer OPTIONS. The last 5 s of this wait give the
# idle cost of the proxy (its timers and the probes of the nodes).
sleep 1
mapfile -t KAM_ALL < <(kam_pids)
sum_ticks "${KAM_ALL[@]}"; kam_idle0=$SUM
sleep 5
sum_ticks "${KAM_ALL[@]}"; kam_idle_ticks=$((SUM - kam_idle0))
for pid in "${NODE_PIDS[@]}" "$KAM_PID"; do
    kill -0 "$pid" 2>/dev/null || die "process $pid exited during start-up (logs in $TMP; KEEP=1 keeps them)"
done

sum_ticks "${KAM_ALL[@]}"; kam0=$SUM
nodes0=()
for pid in "${NODE_PIDS[@]}"; do ticks "$pid"; nodes0+=("$TICKS"); done
read -r mb0 mt0 < <(machine)
sum_mem Pss "${KAM_ALL[@]}"; kam_mem_idle=$SUM
sum_mem VmRSS "${NODE_PIDS[@]}"; node_rss_idle=$SUM
start=$(date +%s.%N)

# --- the load ----------------------------------------------------------------------------------
"$HOTLINE" load --target "127.0.0.1:$PROXY_PORT" --engine-pid "${NODE_PIDS[0]}" \
    --config "$TMP/node0/hotline.yaml" --calls "$CALLS" --rate "$RATE" --hold "$HOLD" \
    --ready-timeout 30 --json >"$TMP/load.json" 2>"$TMP/load.log" &
LOAD_PID=$!
ramp=$(( (CALLS + RATE - 1) / RATE ))
limit=$(( ramp + HOLD + 120 ))   # the tool's own deadline is ramp + hold + 70 s
load_ticks=0
kam_mem_peak=0
node_rss_peak=0
for ((i = 0; i < limit * 2; i++)); do
    kill -0 "$LOAD_PID" 2>/dev/null || break
    ticks "$LOAD_PID"; (( TICKS > load_ticks )) && load_ticks=$TICKS
    sum_mem Pss "${KAM_ALL[@]}"; (( SUM > kam_mem_peak )) && kam_mem_peak=$SUM
    sum_mem VmRSS "${NODE_PIDS[@]}"; (( SUM > node_rss_peak )) && node_rss_peak=$SUM
    sleep 0.5
done
if kill -0 "$LOAD_PID" 2>/dev/null; then
    echo "cluster-capacity: the load tool ran past $limit s; stopping it" >&2
    stop "$LOAD_PID"
fi
set +e
wait "$LOAD_PID"
load_rc=$?
set -e
LOAD_PID=""
end=$(date +%s.%N)

sum_ticks "${KAM_ALL[@]}"; kam1=$SUM
nodes1=()
for pid in "${NODE_PIDS[@]}"; do ticks "$pid"; nodes1+=("$TICKS"); done
read -r mb1 mt1 < <(machine)

if [[ ! -s $TMP/load.json ]]; then
    tail -n 30 "$TMP/load.log" >&2
    die "the load tool printed no figures (exit $load_rc)"
fi

# --- summary -----------------------------------------------------------------------------------
node_ticks=0
per_node=""
for ((i = 0; i < NODES; i++)); do
    d=$(( nodes1[i] - nodes0[i] ))
    node_ticks=$((node_ticks + d))
    per_node+="$(awk -v d="$d" -v hz="$HZ" 'BEGIN { printf "%.2f", d / hz }') "
done
kam_ticks=$((kam1 - kam0))
machine_busy=$((mb1 - mb0))   # jiffies of all cores
# Other processes: the machine's busy time less what this run's processes used.
others_ticks=$((machine_busy - kam_ticks - node_ticks - load_ticks))
(( others_ticks < 0 )) && others_ticks=0

summary=$(jq -c \
    --argjson nodes "$NODES" --argjson hz "$HZ" --argjson cores "$CORES" \
    --argjson kam "$kam_ticks" --argjson node "$node_ticks" --argjson tool "$load_ticks" \
    --argjson others "$others_ticks" --argjson busy "$machine_busy" \
    --argjson wall "$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')" \
    --arg per_node "${per_node% }" --arg quiet "$quiet" \
    --argjson kam_mem_idle "$kam_mem_idle" --argjson kam_mem_peak "$kam_mem_peak" \
    --argjson node_rss_idle "$node_rss_idle" --argjson node_rss_peak "$node_rss_peak" \
    --argjson kam_idle "$kam_idle_ticks" --argjson rc "$load_rc" '
    def r(n): (. * pow(10; n) | round) / pow(10; n);
    . as $l
    | ($l.calls_set_up) as $up
    | {
        nodes: $nodes, calls: $l.calls, rate: $l.rate_per_s, hold_s: $l.hold_s,
        attempted: $l.calls_attempted, set_up: $up, failed: $l.calls_failed,
        refused: $l.calls_refused, failures: $l.failures,
        keys_pressed: $l.keys_pressed, keys_lost: $l.keys_lost,
        setup_p50_ms: ($l.setup_latency.p50_ms | r(2)), setup_p99_ms: ($l.setup_latency.p99_ms | r(2)),
        setup_max_ms: ($l.setup_latency.max_ms | r(2)),
        key_p99_ms: ($l.key_latency.p99_ms | r(1)),
        gap_p99_ms: ($l.gap.p99_ms | r(2)), packets_pct: (if $l.packets_expected > 0 then ($l.packets_received * 100 / $l.packets_expected | r(2)) else null end),
        concurrent_in_window: $l.concurrent_in_window,
        wall_s: $wall,
        proxy_cpu_s: ($kam / $hz | r(2)), proxy_idle_core_pct: ($kam_idle / $hz / 5 * 100 | r(2)),
        nodes_cpu_s: ($node / $hz | r(2)), node_cpu_s_each: $per_node,
        tool_cpu_s: ($tool / $hz | r(2)), others_cpu_s: ($others / $hz | r(2)),
        machine_busy_pct: ($busy / $hz / $wall / $cores * 100 | r(1)),
        proxy_ms_per_call: (if $up > 0 then ($kam / $hz * 1000 / $up | r(3)) else null end),
        node_ms_per_call: (if $up > 0 then ($node / $hz * 1000 / $up | r(1)) else null end),
        node_core_pct_per_call: (if $up > 0 then ($node / $hz / ($up * $l.hold_s) * 100 | r(4)) else null end),
        node0_steady_cpu_pct: ($l.engine_cpu.stat_pct // null | if . then r(1) else . end),
        proxy_pss_kib: {idle: $kam_mem_idle, peak: $kam_mem_peak},
        nodes_rss_kib: {idle: $node_rss_idle, peak: $node_rss_peak},
        quiet_before: $quiet, load_passed: $l.passed, verdicts: $l.verdicts, load_exit: $rc
      }' "$TMP/load.json")

jq -r '
  "nodes \(.nodes): \(.calls) calls at \(.rate)/s, hold \(.hold_s) s (wall \(.wall_s) s)",
  "  calls offered / set up / failed / refused: \(.attempted) / \(.set_up) / \(.failed) / \(.refused)  \(.failures | map("\(.[0]) \(.[1])") | join(", "))",
  "  INVITE -> 200 p50 / p99 / max: \(.setup_p50_ms) / \(.setup_p99_ms) / \(.setup_max_ms) ms; keys pressed / lost: \(.keys_pressed) / \(.keys_lost), key -> prompt p99 \(.key_p99_ms) ms",
  "  RTP gap p99 \(.gap_p99_ms) ms, packets \(.packets_pct) %, all up together: \(.concurrent_in_window)",
  "  proxy CPU \(.proxy_cpu_s) s = \(.proxy_ms_per_call) ms per call (idle: \(.proxy_idle_core_pct) % of a core); memory (PSS, all processes) idle / peak \(.proxy_pss_kib.idle) / \(.proxy_pss_kib.peak) KiB",
  "  nodes CPU \(.nodes_cpu_s) s (each: \(.node_cpu_s_each)) = \(.node_ms_per_call) ms per call, \(.node_core_pct_per_call) % of a core per call up; RSS idle / peak (all nodes) \(.nodes_rss_kib.idle) / \(.nodes_rss_kib.peak) KiB",
  "  load tool CPU \(.tool_cpu_s) s; other processes \(.others_cpu_s) s; machine \(.machine_busy_pct) % busy over the run",
  "  result: \(if .load_passed then "pass" else "FAIL \(.verdicts | join("; "))" end)"
' <<<"$summary"
if [[ -n $RESULTS ]]; then echo "$summary" >>"$RESULTS"; fi
exit "$load_rc"
