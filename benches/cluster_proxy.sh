#!/usr/bin/env bash
# Issue 14's proxy benchmark: ringmail-load's profiles against the node that owns every
# user (direct) and through a node that owns none (proxied: LOGIN there, then the session is
# proxied over the node link), interleaved ROUNDS times, in one run. Prints the rates, the
# ratio proxied/direct, and each node's CPU per 1000 commands from /proc/PID/stat.
#
#   benches/cluster_proxy.sh
#   PROFILES="logins mix" CLIENTS=50 DURATION=15 ROUNDS=3 benches/cluster_proxy.sh
#   MOVE_MB=1024 benches/cluster_proxy.sh     # also: move a partition of MOVE_MB under load
#
# Environment: PROFILES ("logins mix"), CLIENTS (50), DURATION (10), WARMUP (2), ROUNDS (2),
# USERS (100), EXECUTORS (executors per node, default 1: two nodes and the load generator
# share this machine), MOVE_MB (0: no move), RINGMAIL_BIN and LOAD_BIN (binaries to use;
# default target/release, built when missing), KEEP=1 keeps the work dir, PERF=1 profiles
# the proxying node during its runs (perf record) and prints the top of the profile.
# Needs etcd (Debian etcd-server) and jq. Everything listens on 127.0.0.1 and is stopped by
# pid at the end; every wait is bounded. See docs/cluster.md, "Benchmarks".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROFILES="${PROFILES:-logins mix}"
CLIENTS="${CLIENTS:-50}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
ROUNDS="${ROUNDS:-2}"
USERS="${USERS:-100}"
EXECUTORS="${EXECUTORS:-1}"
MOVE_MB="${MOVE_MB:-0}"
PARTITIONS=16
RINGMAIL="${RINGMAIL_BIN:-$ROOT/target/release/ringmail}"
LOAD="${LOAD_BIN:-$ROOT/target/release/ringmail-load}"

# shellcheck source=benches/cluster_lib.sh
source "$ROOT/benches/cluster_lib.sh"
require_cluster_tools

# The nodes' data dirs on disk (a move's synced writes are part of what is measured); etcd,
# which fsyncs every write of the map, on tmpfs where there is one.
WORK="$(mktemp -d /tmp/ringmail-cluster-bench.XXXXXX)"
SHM=/dev/shm; [[ -d $SHM && -w $SHM ]] || SHM=/tmp
ETCD_DIR="$(mktemp -d "$SHM/ringmail-cluster-bench-etcd.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$ETCD_DIR"
    if [[ "${KEEP:-0}" == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- etcd: three members.
ENDPOINTS=()
INITIAL=()
declare -a CPORT PPORT
for i in 0 1 2; do
    CPORT[$i]="$(free_port)"; PPORT[$i]="$(free_port)"
    INITIAL+=("e$i=http://127.0.0.1:${PPORT[$i]}")
    ENDPOINTS+=("\"http://127.0.0.1:${CPORT[$i]}\"")
done
for i in 0 1 2; do
    etcd --name "e$i" --data-dir "$ETCD_DIR/etcd$i" \
        --listen-client-urls "http://127.0.0.1:${CPORT[$i]}" \
        --advertise-client-urls "http://127.0.0.1:${CPORT[$i]}" \
        --listen-peer-urls "http://127.0.0.1:${PPORT[$i]}" \
        --initial-advertise-peer-urls "http://127.0.0.1:${PPORT[$i]}" \
        --initial-cluster "$(IFS=,; echo "${INITIAL[*]}")" \
        --initial-cluster-state new --initial-cluster-token "bench-$$" \
        > "$WORK/etcd$i.log" 2>&1 &
    PIDS+=($!)
done
for i in 0 1 2; do wait_port "${CPORT[$i]}" "etcd $i"; done

# --- two ringmail nodes: "owner" ends up owning every partition, "proxy" none.
for i in $(seq 1 "$USERS"); do echo "user$i:{PLAIN}pass"; done > "$WORK/users"
head -c 32 /dev/urandom | base64 > "$WORK/secret"
declare -A IMAP PID METRICS
start_node() { # id
    local id=$1 dir="$WORK/$1"
    mkdir -p "$dir"; chmod 700 "$dir"
    cp "$WORK/users" "$dir/users"; cp "$WORK/secret" "$dir/cluster.secret"
    IMAP[$id]="$(free_port)"
    METRICS[$id]="$(free_port)"
    cat > "$dir/ringmail.toml" <<EOF
[server]
executors = $EXECUTORS
log_level = "warn,ringmail::moves=info"

[imap]
listen = ["127.0.0.1:${IMAP[$id]}"]
listen_tls = []

[lmtp]
listen = ["127.0.0.1:$(free_port)"]

[limits]
max_sessions_per_user_ip = 100000
max_preauth_per_ip = 100000

[metrics]
listen = ["127.0.0.1:${METRICS[$id]}"]

[managesieve]
listen = []

[storage]
partitions = $PARTITIONS

[cluster]
name = "bench"
node = "$id"
etcd = [$(IFS=,; echo "${ENDPOINTS[*]}")]
listen = "127.0.0.1:$(free_port)"
secret_file = "cluster.secret"
EOF
    "$RINGMAIL" serve --data "$dir" > "$WORK/$id.log" 2>&1 &
    PID[$id]=$!
    PIDS+=($!)
    wait_port "${IMAP[$id]}" "node $id" || { cat "$WORK/$id.log" >&2; exit 1; }
}
start_node owner
start_node proxy
status() { "$RINGMAIL" cluster status --json --data "$WORK/owner"; }
owned_by() { status | jq "[.partitions[] | select(.owner == \"$1\")] | length"; }
settle() { # node count: up to 60 s
    for _ in $(seq 1 600); do
        [[ "$(owned_by "$1" 2>/dev/null || echo -1)" == "$2" ]] && return 0
        sleep 0.1
    done
    say "node $1 never owned $2 partitions"; status >&2; exit 1
}
# The balancer assigns 2 s after start; then drain the proxy, so the owner has all.
for _ in $(seq 1 200); do
    [[ "$(status 2>/dev/null | jq '[.partitions[] | select(.owner != null)] | length' 2>/dev/null || echo 0)" == "$PARTITIONS" ]] && break
    sleep 0.1
done
"$RINGMAIL" cluster drain proxy --data "$WORK/owner" >/dev/null
settle owner "$PARTITIONS"
say "node 'owner' owns all $PARTITIONS partitions, node 'proxy' none"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ="$(getconf CLK_TCK)"

run() { # via profile round
    local via=$1 profile=$2 round=$3 port
    port="${IMAP[$via]}"
    local out="$WORK/$profile-$via-$round.json"
    local o0 p0 o1 p1
    o0="$(cpu_ticks "${PID[owner]}")"; p0="$(cpu_ticks "${PID[proxy]}")"
    local perf=""
    if [[ "${PERF:-0}" == 1 && "$via" == proxy ]]; then
        # Where the proxying node spends its CPU (perf from Debian's linux-perf).
        perf record -F 499 -g -p "${PID[proxy]}" -o "$WORK/perf-$profile-$round.data" \
            -- sleep "$DURATION" >/dev/null 2>&1 &
        perf=$!
    fi
    "$LOAD" "$profile" --port "$port" --clients "$CLIENTS" --users "$USERS" \
        --duration "$DURATION" --warmup "$WARMUP" --quiet --json "$out" >/dev/null
    if [[ -n "$perf" ]]; then
        wait "$perf" || true
        perf report -i "$WORK/perf-$profile-$round.data" --no-children --percent-limit 1.5 \
            --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 >&2
    fi
    o1="$(cpu_ticks "${PID[owner]}")"; p1="$(cpu_ticks "${PID[proxy]}")"
    # CPU over warm-up and run; the commands of the whole run are counted the same way.
    jq -n --slurpfile r "$out" --arg via "$via" --argjson o $((o1 - o0)) --argjson p $((p1 - p0)) \
        --argjson hz "$HZ" --argjson warm "$WARMUP" --argjson dur "$DURATION" '
        $r[0] as $r
        | ($r.total_commands * ($dur + $warm) / $dur) as $all
        | {via: $via, rate: ($r.total_commands / $dur), errors: $r.error_count,
           owner_ms_per_1000: ($o * 1000 / $hz / $all * 1000),
           proxy_ms_per_1000: ($p * 1000 / $hz / $all * 1000)}' > "$out.sum"
    jq -r '"  \(.via): \(.rate | round) commands/s, \(.errors) errors, CPU per 1000 commands: owner \(.owner_ms_per_1000 * 10 | round / 10) ms, proxy \(.proxy_ms_per_1000 * 10 | round / 10) ms"' "$out.sum" >&2
}

for profile in $PROFILES; do
    for round in $(seq 1 "$ROUNDS"); do
        say "$profile round $round ($CLIENTS clients, ${DURATION}s + ${WARMUP}s warm-up)"
        if (( round % 2 )); then order="owner proxy"; else order="proxy owner"; fi
        for via in $order; do run "$via" "$profile" "$round"; done
    done
done

printf '\n%-8s %-6s %12s %12s %8s %22s\n' profile round "direct/s" "proxied/s" ratio "proxy/owner CPU/cmd"
for profile in $PROFILES; do
    for round in $(seq 1 "$ROUNDS"); do
        d="$WORK/$profile-owner-$round.json.sum"; x="$WORK/$profile-proxy-$round.json.sum"
        jq -r -n --slurpfile d "$d" --slurpfile x "$x" --arg p "$profile" --arg r "$round" '
            $d[0] as $d | $x[0] as $x
            | "\($p)\t\($r)\t\($d.rate | round)\t\($x.rate | round)\t\($x.rate / $d.rate * 100 | round / 100)\t\($x.proxy_ms_per_1000 / $x.owner_ms_per_1000 * 100 | round / 100)"' |
            awk -F'\t' '{ printf "%-8s %-6s %12s %12s %8s %22s\n", $1, $2, $3, $4, $5, $6 }'
    done
done

# --- a partition move under load: fill one partition with MOVE_MB of mail, then move it to
# the proxy node while the mix profile runs, and print the move's log line.
if (( MOVE_MB > 0 )); then
    python3 - "$WORK/big.mbox" "$MOVE_MB" <<'PY'
import sys
path, mb = sys.argv[1], int(sys.argv[2])
line = "x" * 76 + "\n"
body = line * (1024 * 1024 // len(line))
with open(path, "w") as f:
    for i in range(mb):
        f.write(f"From mover@example.org Thu Dec  3 10:00:00 2026\nSubject: filler {i}\n\n{body}\n")
PY
    # The proxy node takes its share back first, so the balancer is quiet during the move.
    "$RINGMAIL" cluster undrain proxy --data "$WORK/owner" >/dev/null
    settle proxy $(( PARTITIONS / 2 ))
    BIG=user1
    read -r _ P _ FROM _ < <("$RINGMAIL" cluster locate "$BIG" --data "$WORK/owner")
    if [[ "$FROM" == owner ]]; then TO=proxy; else TO=owner; fi
    say "importing ${MOVE_MB} MB into $BIG (partition $P, on node '$FROM')"
    "$RINGMAIL" import --user "$BIG" mbox "$WORK/big.mbox" --mailbox Filler --data "$WORK/$FROM" 2>/dev/null
    say "moving partition $P from '$FROM' to '$TO' under the mix profile"
    "$LOAD" mix --port "${IMAP[$FROM]}" --clients "$CLIENTS" --users "$USERS" \
        --duration 40 --quiet --json "$WORK/move-load.json" >/dev/null &
    LOADPID=$!
    sleep 3
    metric() { # name: the moving node's value
        curl -s "http://127.0.0.1:${METRICS[$FROM]}/metrics" | awk -v m="$1" '$1 == m {print $2}'
    }
    # The node has moved partitions before (the drain): wait for one more.
    before="$(metric 'ringmail_partition_moves_out_total{result="completed"}')"
    bytes_before="$(metric 'ringmail_partition_move_bytes_total')"
    moved=0
    started=$(date +%s.%N)
    "$RINGMAIL" cluster move "$P" "$TO" --data "$WORK/owner" >/dev/null
    for _ in $(seq 1 1200); do
        moved=$(( $(metric 'ringmail_partition_moves_out_total{result="completed"}') - ${before:-0} ))
        (( moved >= 1 )) && break
        sleep 0.1
    done
    took=$(echo "$(date +%s.%N) - $started" | bc)
    # The node's own log line for the move (partition, bytes, freeze_ms, total_ms).
    grep "partition=$P" "$WORK/$FROM.log" | grep -E "partition move" | tail -3 >&2 || true
    wait "$LOADPID" || true
    failed="$(metric 'ringmail_partition_moves_out_total{result="failed"}')"
    freeze="$(metric 'ringmail_partition_move_freeze_microseconds{which="last"}')"
    bytes=$(( $(metric 'ringmail_partition_move_bytes_total') - ${bytes_before:-0} ))
    say "move of partition $P: completed ${moved:-0}, failed attempts ${failed:-0}, $(( ${bytes:-0} / 1048576 )) MiB in about ${took} s, writes frozen $(echo "scale=1; ${freeze:-0} / 1000" | bc) ms"
    jq -r '"  load during the move: \(.total_commands) commands, \(.error_count) errors"' "$WORK/move-load.json" >&2
fi
