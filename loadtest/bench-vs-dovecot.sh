#!/usr/bin/env bash
# Side-by-side benchmark: the same ringmail-load profiles, with the same client count, against
# Dovecot and ringmail on this machine, then the ratios.
#
#   loadtest/bench-vs-dovecot.sh                      # logins, 50 clients, 10 s each
#   PROFILES="logins mix" CLIENTS=100 DURATION=30 loadtest/bench-vs-dovecot.sh
#   PROFILES=lmtp CLIENTS=16 DURATION=10 loadtest/bench-vs-dovecot.sh   # LMTP deliveries
#
# Environment: PROFILES (default "logins"), CLIENTS (50), DURATION (10), WARMUP (2),
# USERS (CLIENTS, at least 100), THREADS (ringmail-load threads, default its CPU count),
# DOVECOT_TUNED (1, default: imap processes reused, service_count = 1000; 0: Dovecot's stock
# one process per session), CARGO_TARGET_DIR (where the release binaries are built),
# RINGMAIL_BIN and LOAD_BIN (use
# these binaries instead of building), KEEP=1 to keep the work dir, RECIPIENTS (lmtp:
# recipients per message, default 1).
# Needs root (to install and run Dovecot), cargo, jq. See docs/loadtest.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROFILES="${PROFILES:-logins}"
CLIENTS="${CLIENTS:-50}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
USERS="${USERS:-$(( CLIENTS > 100 ? CLIENTS : 100 ))}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
THREAD_ARGS=()
[[ -n "${THREADS:-}" ]] && THREAD_ARGS=(--threads "$THREADS")

say() { printf '== %s\n' "$*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if ! command -v dovecot >/dev/null 2>&1; then
    say "installing dovecot-imapd"
    apt-get install -y dovecot-imapd >/dev/null
fi
# Both servers serve IMAP and LMTP in every run; Debian ships Dovecot's LMTP separately.
if [[ ! -x /usr/lib/dovecot/lmtp ]]; then
    say "installing dovecot-lmtpd"
    apt-get install -y dovecot-lmtpd >/dev/null
fi
command -v jq >/dev/null 2>&1 || { say "jq is needed for the ratios (apt-get install -y jq)"; exit 2; }

# RINGMAIL_BIN / LOAD_BIN: use binaries built elsewhere instead of building here.
RINGMAIL="${RINGMAIL_BIN:-$TARGET_DIR/release/ringmail}"
LOAD="${LOAD_BIN:-$TARGET_DIR/release/ringmail-load}"
BUILD=()
[[ -z "${RINGMAIL_BIN:-}" ]] && BUILD+=(-p ringmail)
[[ -z "${LOAD_BIN:-}" ]] && BUILD+=(-p ringmail-load)
if (( ${#BUILD[@]} )); then
    say "building ${BUILD[*]} (release)"
    (cd "$ROOT" && cargo build --release "${BUILD[@]}")
fi

WORK="$(mktemp -d /tmp/ringmail-bench.XXXXXX)"
chmod 755 "$WORK"
DOVECOT_PID=""
RINGMAIL_PID=""
cleanup() {
    [[ -n "$RINGMAIL_PID" ]] && kill "$RINGMAIL_PID" 2>/dev/null && wait "$RINGMAIL_PID" 2>/dev/null
    [[ -n "$DOVECOT_PID" ]] && kill "$DOVECOT_PID" 2>/dev/null && wait "$DOVECOT_PID" 2>/dev/null
    if [[ "${KEEP:-0}" == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# The same users for both servers: Dovecot's passwd-file format, which ringmail reads too.
for i in $(seq 1 "$USERS"); do echo "user$i:{PLAIN}pass"; done > "$WORK/users"

# --- Dovecot (loadtest/dovecot.sh): loopback only, its own base_dir, Maildir, no TLS, auth
# cache on, LMTP too.
DPORT="$(free_port)"
DLPORT="$(free_port)"
say "starting Dovecot on 127.0.0.1:$DPORT (IMAP), 127.0.0.1:$DLPORT (LMTP)"
# shellcheck source=loadtest/dovecot.sh
source "$ROOT/loadtest/dovecot.sh"
start_dovecot "$WORK/dovecot" "$WORK/users" "$DPORT" "$DLPORT"

# --- ringmail: its own data dir, free ports, no per-address connection cap (every client
# comes from 127.0.0.1 here).
RPORT="$(free_port)"
RTLSPORT="$(free_port)"
RLPORT="$(free_port)"
mkdir -p "$WORK/ringmail"
chmod 700 "$WORK/ringmail"
cp "$WORK/users" "$WORK/ringmail/users"
cat > "$WORK/ringmail/ringmail.toml" <<EOF
[imap]
listen = ["127.0.0.1:$RPORT"]
listen_tls = ["127.0.0.1:$RTLSPORT"]

[lmtp]
listen = ["127.0.0.1:$RLPORT"]

[limits]
max_sessions_per_user_ip = 100000

[managesieve]
listen = []
EOF
say "starting ringmail on 127.0.0.1:$RPORT (IMAP), 127.0.0.1:$RLPORT (LMTP)"
"$RINGMAIL" serve --data "$WORK/ringmail" > "$WORK/ringmail.log" 2>&1 &
RINGMAIL_PID=$!

wait_port() {
    local port=$1 name=$2
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    say "$name did not open port $port"; return 1
}
wait_port "$DPORT" Dovecot || { cat "$WORK/dovecot/dovecot.log" >&2 || true; exit 1; }
wait_port "$RPORT" ringmail || { cat "$WORK/ringmail.log" >&2; exit 1; }
wait_port "$DLPORT" "Dovecot LMTP" || { cat "$WORK/dovecot/dovecot.log" >&2 || true; exit 1; }
wait_port "$RLPORT" "ringmail LMTP" || { cat "$WORK/ringmail.log" >&2; exit 1; }

run_load() { # server imap-port lmtp-port pid profile
    local server=$1 port=$2 lmtp_port=$3 pid=$4 profile=$5
    local extra=()
    if [[ "$profile" == lmtp ]]; then
        port=$lmtp_port
        extra=(--recipients "${RECIPIENTS:-1}")
    fi
    say "$profile against $server ($CLIENTS clients, ${DURATION}s + ${WARMUP}s warm-up)"
    local cmd=("$LOAD" "$profile" --port "$port" --clients "$CLIENTS" --users "$USERS"
        --duration "$DURATION" --warmup "$WARMUP" --pid "$pid" --quiet
        --json "$WORK/$server-$profile.json" "${THREAD_ARGS[@]}" "${extra[@]}")
    echo "+ ${cmd[*]}" >&2
    # A run with errors exits 1; its summary is still written and compared.
    "${cmd[@]}" || true
}

for profile in $PROFILES; do
    run_load dovecot "$DPORT" "$DLPORT" "$DOVECOT_PID" "$profile"
    run_load ringmail "$RPORT" "$RLPORT" "$RINGMAIL_PID" "$profile"
done

# --- Ratios: ringmail / Dovecot for throughput (higher is better for ringmail), Dovecot /
# ringmail for latency and CPU (higher is better for ringmail too).
echo
printf '%-8s %-10s %12s %12s %8s %10s %10s %8s\n' profile command "dovecot/s" "ringmail/s" "x thru" "dc p99ms" "rm p99ms" "x p99"
for profile in $PROFILES; do
    d="$WORK/dovecot-$profile.json"; r="$WORK/ringmail-$profile.json"
    [[ -f "$d" && -f "$r" ]] || { echo "$profile: a run wrote no summary"; continue; }
    jq -r --slurpfile r "$r" '
        .commands[] as $d
        | ($r[0].commands[] | select(.command == $d.command)) as $x
        | [$d.command, $d.per_second, $x.per_second,
           (if $d.per_second > 0 then $x.per_second / $d.per_second else 0 end),
           $d.p99_ms, $x.p99_ms,
           (if $x.p99_ms > 0 then $d.p99_ms / $x.p99_ms else 0 end)] | @tsv' "$d" |
    while IFS=$'\t' read -r cmd dps rps thru dp99 rp99 lat; do
        printf '%-8s %-10s %12.1f %12.1f %8.2f %10.3f %10.3f %8.2f\n' "$profile" "$cmd" "$dps" "$rps" "$thru" "$dp99" "$rp99" "$lat"
    done
    jq -r --slurpfile r "$r" '
        (.total_commands / .seconds) as $d | ($r[0].total_commands / $r[0].seconds) as $x
        | "  all commands: dovecot \($d | round)/s, ringmail \($x | round)/s, ringmail/dovecot \(if $d > 0 then ($x / $d * 100 | round / 100) else "n/a" end)"' "$d"
    if [[ "$profile" == lmtp ]]; then
        # Deliveries (one per recipient stored), the phases' latency and the cost of one.
        jq -r --slurpfile r "$r" '
            def cmd($n): (.commands[] | select(.command == $n)) // {per_second: 0, p50_ms: 0, p90_ms: 0, p99_ms: 0, max_ms: 0};
            def r2: . * 100 | round / 100;
            (cmd("delivery").per_second) as $d | ($r[0] | cmd("delivery").per_second) as $x
            | "  deliveries/s: dovecot \($d | r2), ringmail \($x | r2), ringmail/dovecot \(if $d > 0 then ($x / $d | r2) else "n/a" end)",
              (["rcpt_to", "data", "delivery"][] as $c
               | "  \($c) p50/p90/p99/max ms: dovecot \(cmd($c) | [.p50_ms, .p90_ms, .p99_ms, .max_ms] | map(r2) | join("/")), ringmail \($r[0] | cmd($c) | [.p50_ms, .p90_ms, .p99_ms, .max_ms] | map(r2) | join("/"))"),
              (.server.cpu_ms_per_1000_deliveries // 0) as $dc | ($r[0].server.cpu_ms_per_1000_deliveries // 0) as $xc
              | "  server CPU per 1000 deliveries: dovecot \($dc | r2) ms, ringmail \($xc | r2) ms, dovecot/ringmail \(if $xc > 0 then ($dc / $xc | r2) else "n/a" end)"' "$d"
    fi
    for s in dovecot ringmail; do
        jq -r --arg s "$s" '"  \($s): \(.total_commands) commands, \(.error_count) errors, " +
            (if .server then "server CPU \(.server.cpu_ms_per_1000_commands | . * 100 | round / 100) ms/1000 commands, RSS \(.server.rss_kib) KiB in \(.server.processes) processes" else "no server stats" end) +
            ", load generator CPU \(.client_cpu_share * 100 | round)%"' "$WORK/$s-$profile.json"
    done
done
