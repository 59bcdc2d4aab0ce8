#!/usr/bin/env bash
# Issue 15's replication benchmark: LMTP deliveries/s and the APPEND profile on a cluster of
# two release nodes with `replicas = 1, sync = true` against the same cluster with
# `replicas = 0`, in one run. Each run starts a fresh cluster (one etcd member on tmpfs, two
# nodes "a" and "b" on loopback, data dirs on disk, 1 executor each: the nodes and the load
# generator share this machine) with the setting under test; the partitions are split
# between the nodes and the load goes to node a, so in both settings about half the work is
# forwarded to b over the node link; with replicas = 1 every batch is also written and
# fsynced by the other node before it is acknowledged. Before measuring, a warm-up load
# creates every partition and (replicas = 1) the script waits until every partition has an
# in-sync replica. Settings alternate (0 1, then 1 0, ...) for ROUNDS rounds; printed per
# round and as the median of the per-round ratios (replicas 1 / replicas 0).
#
#   benches/replication.sh
#   ROUNDS=4 DURATION=15 benches/replication.sh
#   TMPFS=1 benches/replication.sh    # data dirs on tmpfs: shipping's CPU, not the disk
#
# Environment: ROUNDS (2), DURATION (10), WARMUP (2), CLIENTS (16 for lmtp, 16 for append),
# PARTITIONS (8: a few partitions per node, so group commits batch several clients' writes),
# PIN (1: node a on the first CPU this script may use, node b on the second; 0: as the kernel
# places them),
# USERS (100), PROFILES ("lmtp append"), RINGMAIL_BIN / LOAD_BIN (default target/release,
# built when missing), TMPFS (0), KEEP=1 keeps the work dir. Needs etcd and jq. Everything listens on
# 127.0.0.1 and is stopped by pid; every wait is bounded. See docs/cluster.md, "Benchmarks".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${ROUNDS:-2}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CLIENTS="${CLIENTS:-16}"
USERS="${USERS:-100}"
PROFILES="${PROFILES:-lmtp append}"
PARTITIONS="${PARTITIONS:-8}"
RINGMAIL="${RINGMAIL_BIN:-$ROOT/target/release/ringmail}"
LOAD="${LOAD_BIN:-$ROOT/target/release/ringmail-load}"

# shellcheck source=benches/cluster_lib.sh
source "$ROOT/benches/cluster_lib.sh"
require_cluster_tools

SHM=/dev/shm; [[ -d $SHM && -w $SHM ]] || SHM=/tmp
# TMPFS=1: the data dirs in memory too, so fdatasync is nearly free and what remains is the
# CPU and round trips of shipping (not the second fsync on one disk).
if [[ "${TMPFS:-0}" == 1 ]]; then WORK_BASE=$SHM; else WORK_BASE=/tmp; fi
WORK="$(mktemp -d "$WORK_BASE/ringmail-repl-bench.XXXXXX")"
ETCD_ROOT="$(mktemp -d "$SHM/ringmail-repl-bench-etcd.XXXXXX")"
PIDS=()
stop_all() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
cleanup() {
    stop_all
    rm -rf "$ETCD_ROOT"
    if [[ "${KEEP:-0}" == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

for i in $(seq 1 "$USERS"); do echo "user$i:{PLAIN}pass"; done > "$WORK/users"
head -c 32 /dev/urandom | base64 > "$WORK/secret"
declare -A IMAP LMTP PID
# Each node on a CPU of its own, as on a machine of its own (PIN=1, the default where there
# are two CPUs or more): without it both nodes' executors, and the io_uring workers that run
# their fdatasyncs, would share the CPU the kernel lists first. The load generator and etcd
# run where the scheduler puts them.
PINNED=0
declare -A CPU
if [[ "${PIN:-1}" == 1 ]] && (( $(nproc) >= 2 )) && command -v taskset >/dev/null; then
    mapfile -t ALLOWED < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)), sep="\n")')
    CPU=([a]="${ALLOWED[0]}" [b]="${ALLOWED[1]}")
    PINNED=1
fi

# A fresh cluster with `replicas = $1`, named $2: etcd, nodes a and b, every partition
# owned, used once (a warm-up delivery load) and, with replicas, in sync.
start_cluster() {
    local replicas=$1 name=$2 cport pport
    cport="$(free_port)"; pport="$(free_port)"
    etcd --name e0 --data-dir "$ETCD_ROOT/$name" \
        --listen-client-urls "http://127.0.0.1:$cport" \
        --advertise-client-urls "http://127.0.0.1:$cport" \
        --listen-peer-urls "http://127.0.0.1:$pport" \
        --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "e0=http://127.0.0.1:$pport" \
        --initial-cluster-state new --initial-cluster-token "$name" \
        > "$WORK/$name-etcd.log" 2>&1 &
    PIDS+=($!)
    wait_port "$cport" etcd
    for id in a b; do
        local dir="$WORK/$name/$id"
        mkdir -p "$dir"; chmod 700 "$dir"
        cp "$WORK/users" "$dir/users"; cp "$WORK/secret" "$dir/cluster.secret"
        IMAP[$id]="$(free_port)"; LMTP[$id]="$(free_port)"
        cat > "$dir/ringmail.toml" <<EOF
[server]
executors = 1
log_level = "warn,ringmail::replication=info"

[imap]
listen = ["127.0.0.1:${IMAP[$id]}"]
listen_tls = []

[lmtp]
listen = ["127.0.0.1:${LMTP[$id]}"]

[limits]
max_sessions_per_user_ip = 100000
max_preauth_per_ip = 100000

[metrics]
listen = []

[managesieve]
listen = []

[storage]
partitions = $PARTITIONS

[cluster]
name = "$name"
node = "$id"
etcd = ["http://127.0.0.1:$cport"]
listen = "127.0.0.1:$(free_port)"
secret_file = "cluster.secret"
replicas = $replicas
sync = true
EOF
        local launch=("$RINGMAIL")
        (( PINNED )) && launch=(taskset -c "${CPU[$id]}" "$RINGMAIL")
        "${launch[@]}" serve --data "$dir" > "$WORK/$name-$id.log" 2>&1 &
        PID[$id]=$!
        PIDS+=($!)
        wait_port "${IMAP[$id]}" "node $id" || { cat "$WORK/$name-$id.log" >&2; exit 1; }
    done
    local status=("$RINGMAIL" cluster status --json --data "$WORK/$name/a")
    # Settled: each node owns half the partitions and no move is pending (a move during a
    # run would freeze writes; the balancer spreads the partitions once both nodes are up).
    local settled=0
    for _ in $(seq 1 600); do
        if [[ "$("${status[@]}" 2>/dev/null | jq --argjson half $((PARTITIONS / 2)) \
            '[.partitions[] | select(.state == "active") | .owner] as $o
             | ($o | map(select(. == "a")) | length) == $half
               and ($o | map(select(. == "b")) | length) == $half' \
            2>/dev/null)" == true ]]; then
            settled=1; break
        fi
        sleep 0.1
    done
    (( settled )) || { say "cluster $name: partitions not spread over a and b"; "${status[@]}" >&2; exit 1; }
    "$LOAD" lmtp --port "${LMTP[a]}" --clients 4 --users "$USERS" --duration 3 --warmup 0 \
        --quiet >/dev/null 2>&1 || true
    if (( replicas > 0 )); then
        for _ in $(seq 1 600); do
            [[ "$("${status[@]}" 2>/dev/null | jq '[.partitions[] | select([.replicas[] | select(.in_sync)] | length > 0)] | length' 2>/dev/null || echo 0)" == "$PARTITIONS" ]] && return 0
            sleep 0.1
        done
        say "cluster $name: not every partition got an in-sync replica"; "${status[@]}" >&2; exit 1
    fi
}

run() { # replicas round
    local replicas=$1 round=$2 name="r$1-$2"
    start_cluster "$replicas" "$name"
    for profile in $PROFILES; do
        local port="${IMAP[a]}"
        [[ $profile == lmtp ]] && port="${LMTP[a]}"
        say "round $round, replicas = $replicas: $profile ($CLIENTS clients, ${DURATION}s + ${WARMUP}s warm-up)"
        "$LOAD" "$profile" --port "$port" --clients "$CLIENTS" --users "$USERS" \
            --duration "$DURATION" --warmup "$WARMUP" --quiet --json "$WORK/$profile-$name.json" \
            >/dev/null || true
        jq -r '"  \(.total_commands / '"$DURATION"' | round) commands/s, \(.error_count) errors"' \
            "$WORK/$profile-$name.json" >&2
    done
    grep -h "replica dropped\|behind, seeding" "$WORK/$name-a.log" "$WORK/$name-b.log" | head -3 >&2 || true
    stop_all
    # A run writes gigabytes (APPEND at full speed, twice with a replica): gone before the
    # next one, unless KEEP=1.
    [[ "${KEEP:-0}" == 1 ]] || rm -rf "${WORK:?}/$name" "${ETCD_ROOT:?}/$name"
}

for round in $(seq 1 "$ROUNDS"); do
    if (( round % 2 )); then order="0 1"; else order="1 0"; fi
    for r in $order; do run "$r" "$round"; done
done

echo
python3 - "$WORK" "$ROUNDS" "$DURATION" $PROFILES <<'PY'
import json, statistics, sys
work, rounds, duration, profiles = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
def rate(profile, replicas, r):
    j = json.load(open(f"{work}/{profile}-r{replicas}-{r}.json"))
    if profile == "lmtp":
        d = next((c for c in j["commands"] if c["command"] == "delivery"), None)
        if d:
            return d["per_second"]
    return j["total_commands"] / duration
print(f"{'profile':<8} {'round':<6} {'replicas=0/s':>13} {'replicas=1/s':>13} {'ratio':>7}")
for p in profiles:
    ratios = []
    for r in range(1, rounds + 1):
        a, b = rate(p, 0, r), rate(p, 1, r)
        ratios.append(b / a if a else 0)
        print(f"{p:<8} {r:<6} {a:13.1f} {b:13.1f} {ratios[-1]:7.3f}")
    print(f"{p:<8} {'median':<6} {'':13} {'':13} {statistics.median(ratios):7.3f}")
PY
