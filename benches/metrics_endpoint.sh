#!/usr/bin/env bash
# The cost of the metrics endpoint on the hot path: ringmail-load's mix profile against a
# server with `[metrics] listen = []` and against one whose endpoint is scraped once a second
# (curl, bounded), in alternating runs on one data dir. Prints per-run throughput and server
# CPU per 1000 commands, then the on/off ratios of the means. See docs/monitoring.md.
#
#   BIN=/tmp/stats-bin RUNS=3 DURATION=10 CLIENTS=50 benches/metrics_endpoint.sh
#
# BIN holds release builds of `ringmail` and `ringmail-load`. Needs curl, jq, python3.
set -euo pipefail
BIN=${BIN:-target/release}
RUNS=${RUNS:-3}; DURATION=${DURATION:-10}; CLIENTS=${CLIENTS:-50}; WARMUP=${WARMUP:-2}
WORK=$(mktemp -d /tmp/stats-bench.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port); TLS=$(free_port); MPORT=$(free_port)
mkdir -p "$WORK/data"; chmod 700 "$WORK/data"
for i in $(seq 1 100); do echo "user$i:{PLAIN}pass"; done > "$WORK/data/users"
PID=""
cleanup() { [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
config() { # metrics listen list
  cat > "$WORK/data/ringmail.toml" <<EOT
[imap]
listen = ["127.0.0.1:$PORT"]
listen_tls = ["127.0.0.1:$TLS"]
[lmtp]
listen = []
[limits]
max_sessions_per_user_ip = 100000
[metrics]
listen = [$1]
[managesieve]
listen = []
EOT
}
run() { # mode n
  local mode=$1 n=$2
  if [[ $mode == on ]]; then config "\"127.0.0.1:$MPORT\""; else config ""; fi
  "$BIN/ringmail" serve --data "$WORK/data" > "$WORK/server-$mode-$n.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
  local scraper=""
  if [[ $mode == on ]]; then
    # Scrape once a second for the whole run (bounded), as Prometheus would.
    ( for _ in $(seq 1 $((DURATION + WARMUP + 2))); do curl -sf "http://127.0.0.1:$MPORT/metrics" -o /dev/null || true; sleep 1; done ) &
    scraper=$!
  fi
  "$BIN/ringmail-load" mix --port "$PORT" --clients "$CLIENTS" --users 100 --duration "$DURATION" \
     --warmup "$WARMUP" --pid "$PID" --quiet --json "$WORK/$mode-$n.json" || true
  [[ -n $scraper ]] && { kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; }
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  jq -r --arg m "$mode" --arg n "$n" '"\($m) run \($n): \(.total_commands) commands in \(.seconds)s = \(.total_commands / .seconds | round)/s, \(.error_count) errors, server CPU \(.server.cpu_ms_per_1000_commands // "n/a") ms/1000 cmds"' "$WORK/$mode-$n.json"
}
for n in $(seq 1 "$RUNS"); do run off "$n"; run on "$n"; done
off=$(jq -s 'map(.total_commands / .seconds) | add / length' "$WORK"/off-*.json)
on=$(jq -s 'map(.total_commands / .seconds) | add / length' "$WORK"/on-*.json)
off_cpu=$(jq -s 'map(.server.cpu_ms_per_1000_commands) | add / length' "$WORK"/off-*.json)
on_cpu=$(jq -s 'map(.server.cpu_ms_per_1000_commands) | add / length' "$WORK"/on-*.json)
python3 -c "print(f'server CPU per 1000 commands: off {float($off_cpu):.1f} ms, on {float($on_cpu):.1f} ms, on/off = {float($on_cpu)/float($off_cpu):.4f}')"
python3 -c "print(f'throughput: mean off {float($off):.1f}/s, mean on {float($on):.1f}/s, on/off = {float($on)/float($off):.4f} ({(float($on)/float($off)-1)*100:+.2f}%)')"
