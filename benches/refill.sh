#!/usr/bin/env bash
# How long a node that comes back after its partitions failed over takes to get its share of
# replicas again (docs/cluster.md, "Replicas and failover": refill), per
# `[cluster] replica_moves_per_node`. Each run starts a fresh cluster (one etcd member on
# tmpfs, three release nodes a, b, c on loopback with `replicas = 1`, 1 executor each, data
# dirs on disk), fills it with APPEND load through node a for FILL seconds, waits until every
# partition has an in-sync replica, kills c with SIGKILL, waits until c's partitions are
# failed over and every partition has an in-sync replica on a or b again, restarts c and
# measures from the restart until c owns P/3 partitions again (moves) and until every node
# holds P/3 replicas, all in sync, no replica move pending (replica moves run only in
# balancer rounds that change no owner, so after the owner moves). WIPE=1 empties c's data
# dir before the restart (a replaced disk, or copies past their grace period): every copy
# is then sent whole; without it c's old copies are reused and only what differs is sent.
#
#   benches/refill.sh
#   MOVES="2 4 8" ROUNDS=2 PARTITIONS=48 FILL=20 benches/refill.sh
#
# Environment: WIPE (0), MOVES ("2 4 8": the values compared), ROUNDS (1), PARTITIONS (48), FILL (20 s
# of APPEND load, 16 clients), USERS (200), RINGMAIL_BIN / LOAD_BIN (default target/release,
# built when missing), KEEP=1 keeps the work dir. Needs etcd and jq. Everything listens on
# 127.0.0.1 and is stopped by pid; every wait is bounded.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MOVES="${MOVES:-2 4 8}"
ROUNDS="${ROUNDS:-1}"
PARTITIONS="${PARTITIONS:-48}"
FILL="${FILL:-20}"
USERS="${USERS:-200}"
RINGMAIL="${RINGMAIL_BIN:-$ROOT/target/release/ringmail}"
LOAD="${LOAD_BIN:-$ROOT/target/release/ringmail-load}"

# shellcheck source=benches/cluster_lib.sh
source "$ROOT/benches/cluster_lib.sh"
require_cluster_tools

SHM=/dev/shm; [[ -d $SHM && -w $SHM ]] || SHM=/tmp
WORK="$(mktemp -d /tmp/ringmail-refill-bench.XXXXXX)"
ETCD_ROOT="$(mktemp -d "$SHM/ringmail-refill-bench-etcd.XXXXXX")"
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
declare -A IMAP PID

# Polls `cluster status --json` on node a until the jq filter $1 is true, for at most $2
# seconds; fails (printing the status) otherwise.
wait_status() {
    local filter=$1 limit=$2 what=$3 deadline=$((SECONDS + $2))
    while (( SECONDS < deadline )); do
        if [[ "$("$RINGMAIL" cluster status --json --data "$DIR_A" 2>/dev/null \
            | jq --argjson p "$PARTITIONS" "$filter" 2>/dev/null)" == true ]]; then
            return 0
        fi
        sleep 0.1
    done
    say "not within ${limit}s: $what"
    "$RINGMAIL" cluster status --data "$DIR_A" >&2 || true
    exit 1
}

start_node() { # name id
    local name=$1 id=$2 dir="$WORK/$1/$2"
    "$RINGMAIL" serve --data "$dir" >> "$WORK/$name-$id.log" 2>&1 &
    PID[$id]=$!
    PIDS+=($!)
    wait_port "${IMAP[$id]}" "node $id" || { cat "$WORK/$name-$id.log" >&2; exit 1; }
}

run() { # moves round
    local moves=$1 round=$2 name="m$1-$2" cport pport
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
    for id in a b c; do
        local dir="$WORK/$name/$id"
        mkdir -p "$dir"; chmod 700 "$dir"
        cp "$WORK/users" "$dir/users"; cp "$WORK/secret" "$dir/cluster.secret"
        IMAP[$id]="$(free_port)"
        cat > "$dir/ringmail.toml" <<EOF
[server]
executors = 1
log_level = "warn"

[imap]
listen = ["127.0.0.1:${IMAP[$id]}"]
listen_tls = []

[lmtp]
listen = []

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
replicas = 1
replica_moves_per_node = $moves
EOF
        start_node "$name" "$id"
    done
    DIR_A="$WORK/$name/a"
    local third=$((PARTITIONS / 3))
    local even='[.partitions[] | select(.state == "active" and .owner != null
        and ([.replicas[] | select(.in_sync)] | length) == 1 and (.replicas | length) == 1)]
        | length == $p'
    local share='. as $s | ["a","b","c"] | all(. as $n | [$s.partitions[].replicas[]
        | select(.node == $n)] | length == ($p / 3 | floor))'
    wait_status "$even" 120 "every partition owned with one in-sync replica"
    "$LOAD" append --port "${IMAP[a]}" --clients 16 --users "$USERS" --duration "$FILL" \
        --warmup 0 --quiet >/dev/null 2>&1 || true
    wait_status "$even" 120 "every partition in sync after the fill"
    local bytes
    bytes="$(du -sb "$WORK/$name/a" | cut -f1)"
    say "moves $moves, round $round: $((bytes / 1048576)) MiB on node a (owner and replica copies)"
    kill -9 "${PID[c]}"; wait "${PID[c]}" 2>/dev/null || true
    wait_status '[.partitions[] | select(.owner == "c" or any(.replicas[]; .node == "c"))] | length == 0' \
        60 "c's partitions failed over and its replicas replaced"
    wait_status "$even" 300 "every partition in sync on a and b"
    if [[ "${WIPE:-0}" == 1 ]]; then
        # c comes back with an empty disk: every copy it gets is sent whole.
        find "$WORK/$name/c" -mindepth 1 -maxdepth 1 -name 'p-*' -exec rm -rf {} +
    fi
    local started owned_at="" now json
    started="$(date +%s.%N)"
    start_node "$name" c
    local owns='[.partitions[] | select(.state == "active" and .owner == "c")] | length == ($p / 3 | floor)'
    local done_filter="($even) and ($share) and ([.partitions[].replicas[] | select(.leaving)] | length == 0)"
    local deadline=$((SECONDS + 1800))
    while true; do
        json="$("$RINGMAIL" cluster status --json --data "$DIR_A" 2>/dev/null || true)"
        now="$(date +%s.%N)"
        if [[ -z "$owned_at" && "$(jq --argjson p "$PARTITIONS" "$owns" <<<"$json" 2>/dev/null)" == true ]]; then
            owned_at="$(echo "$now - $started" | bc)"
        fi
        [[ "$(jq --argjson p "$PARTITIONS" "$done_filter" <<<"$json" 2>/dev/null)" == true ]] && break
        (( SECONDS < deadline )) || { say "replicas not even within 1800 s"; exit 1; }
        sleep 0.1
    done
    local took
    took="$(echo "$now - $started" | bc)"
    printf 'moves %-3s round %s  %5d MiB per node  wipe %s  c owned %d after %6.1f s, held %d replicas after %6.1f s\n' \
        "$moves" "$round" $((bytes / 1048576)) "${WIPE:-0}" "$third" "${owned_at:-0}" "$third" "$took" \
        | tee -a "$WORK/results"
    stop_all
    [[ "${KEEP:-0}" == 1 ]] || rm -rf "${WORK:?}/$name" "${ETCD_ROOT:?}/$name"
}

for round in $(seq 1 "$ROUNDS"); do
    for m in $MOVES; do run "$m" "$round"; done
done
echo
cat "$WORK/results"
