#!/usr/bin/env bash
# A/B of APPEND (IMAP) and LMTP delivery throughput between two ringmail binaries: both
# serve at once on fresh data dirs, `ringmail-load` runs against one at a time, the order
# flipping every round; per run the rate and the server CPU per 1,000 commands.
#
#   BASE_BIN=/tmp/rm-base NEW_BIN=target/release/ringmail benches/delivery_ab.sh
#   PROFS=lmtp ROUNDS=8 DUR=6 BASE_BIN=... NEW_BIN=... benches/delivery_ab.sh
#
# Environment: BASE_BIN, NEW_BIN (required), LOAD_BIN (default target/release/ringmail-load),
# PROFS (default "append lmtp"), ROUNDS (4), DUR (seconds per run, 6), CLIENTS (16).
# Needs python3 and jq. The work dir is removed at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOAD="${LOAD_BIN:-$ROOT/target/release/ringmail-load}"
ROUNDS=${ROUNDS:-4}; DUR=${DUR:-6}; CLIENTS=${CLIENTS:-16}
declare -A BIN=([base]="${BASE_BIN:?set BASE_BIN}" [new]="${NEW_BIN:?set NEW_BIN}")
WORK=$(mktemp -d /tmp/ringmail-ab.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
for i in $(seq 1 100); do echo "user$i:{PLAIN}pass"; done > "$WORK/users"
declare -A IP LP PID
for b in base new; do
    d="$WORK/$b"; mkdir -p "$d"; chmod 700 "$d"; cp "$WORK/users" "$d/users"
    IP[$b]=$(free_port); LP[$b]=$(free_port)
    cat > "$d/ringmail.toml" <<T
[imap]
listen = ["127.0.0.1:${IP[$b]}"]
listen_tls = ["127.0.0.1:$(free_port)"]
[lmtp]
listen = ["127.0.0.1:${LP[$b]}"]
[limits]
max_sessions_per_user_ip = 100000
[metrics]
listen = []
[managesieve]
listen = []
T
    "${BIN[$b]}" serve --data "$d" > "$d.log" 2>&1 &
    PID[$b]=$!; PIDS+=("$!")
done
sleep 3
echo "round profile binary per_second cpu_ms_per_1000 errors"
for r in $(seq 1 "$ROUNDS"); do
    if (( r % 2 )); then order="base new"; else order="new base"; fi
    for prof in ${PROFS:-append lmtp}; do
        for b in $order; do
            port=${IP[$b]}; [[ $prof == lmtp ]] && port=${LP[$b]}
            "$LOAD" "$prof" --port "$port" --clients "$CLIENTS" --users 100 --duration "$DUR" \
                --warmup 2 --pid "${PID[$b]}" --quiet --json "$WORK/$b-$prof-$r.json" >/dev/null 2>&1 || true
            jq -r --arg b "$b" --arg p "$prof" --arg r "$r" '
                def cmd($n): (.commands[] | select(.command == $n));
                "\($r) \($p) \($b) " + ((if $p == "lmtp" then cmd("delivery") else cmd("append") end).per_second | floor | tostring)
                + " " + (.server.cpu_ms_per_1000_commands | floor | tostring) + " " + (.error_count | tostring)' \
                "$WORK/$b-$prof-$r.json"
        done
    done
done
