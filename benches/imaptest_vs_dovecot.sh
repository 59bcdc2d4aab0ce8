#!/usr/bin/env bash
# Dovecot's imaptest load against Dovecot and ringmail on this machine, in one run: commands
# per second and server CPU per 1000 commands for imaptest's stock mix and its LOGIN/LOGOUT
# profile (issue 17's "CPU per command at most 1/8 of Dovecot's"), then the ratios.
#
#   IMAPTEST=/path/to/imaptest benches/imaptest_vs_dovecot.sh
#   PROFILES="mix logins" CLIENTS=50 SECS=20 ROUNDS=2 IMAPTEST=... benches/imaptest_vs_dovecot.sh
#
# imaptest is not packaged by Debian: build dovecot/imaptest (branch release-2.3) against
# Debian's dovecot-dev (docs/loadtest.md, "imaptest"), then point IMAPTEST at the binary.
# Environment: PROFILES ("mix logins"), CLIENTS (50), USERS (100), SECS (20 per run), ROUNDS
# (1: each round runs every profile against Dovecot, then ringmail), MBOX (the mbox imaptest
# appends from; default: 300 seeded generated messages of 1-100 KB), RINGMAIL_BIN (default
# target/release/ringmail, built if missing), DURABILITY (ringmail's [storage] durability,
# "always"; "relaxed" shows what the fsyncs cost), DOVECOT_TUNED (see loadtest/dovecot.sh),
# KEEP=1 keeps the work dir. Loopback only; every run is bounded by SECS.
#
# Server CPU is utime+stime of the server's process tree over the run (children that exited
# counted through their parent's cutime/cstime), as ringmail-load's --pid measures it. Dovecot's
# tree is its master: imap, imap-login, auth and the rest. The command count is the sum of
# imaptest's "Totals" line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROFILES="${PROFILES:-mix logins}"
CLIENTS="${CLIENTS:-50}"
USERS="${USERS:-100}"
SECS="${SECS:-20}"
ROUNDS="${ROUNDS:-1}"
DURABILITY="${DURABILITY:-always}"
IMAPTEST="${IMAPTEST:-$(command -v imaptest || true)}"

# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

[[ -x "$IMAPTEST" ]] || { say "set IMAPTEST to an imaptest binary (docs/loadtest.md, \"imaptest\")"; exit 2; }
command -v dovecot >/dev/null 2>&1 || { say "installing dovecot-imapd"; apt-get install -y dovecot-imapd >/dev/null; }

RINGMAIL="${RINGMAIL_BIN:-$ROOT/target/release/ringmail}"
if [[ -z "${RINGMAIL_BIN:-}" ]]; then
    say "building ringmail (release)"
    (cd "$ROOT" && cargo build --release -p ringmail)
fi

WORK="$(mktemp -d /tmp/ringmail-imaptest.XXXXXX)"
chmod 755 "$WORK"
DOVECOT_PID=""
RINGMAIL_PID=""
cleanup() {
    [[ -n "$RINGMAIL_PID" ]] && kill "$RINGMAIL_PID" 2>/dev/null && wait "$RINGMAIL_PID" 2>/dev/null
    [[ -n "$DOVECOT_PID" ]] && kill "$DOVECOT_PID" 2>/dev/null && wait "$DOVECOT_PID" 2>/dev/null
    if [[ "${KEEP:-0}" == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

for i in $(seq 1 "$USERS"); do echo "user$i:{PLAIN}pass"; done > "$WORK/users"

MBOX="${MBOX:-}"
if [[ -z "$MBOX" ]]; then
    MBOX="$WORK/mail.mbox"
    python3 - "$MBOX" <<'PY'
import random, sys
from email.message import EmailMessage
from email.utils import format_datetime
import datetime
rng = random.Random(17)
words = "the mail server index search folder quarterly report meeting budget draft review".split()
with open(sys.argv[1], "w") as out:
    for i in range(300):
        m = EmailMessage()
        m["From"] = f"Sender {i % 37} <sender{i % 37}@example.com>"
        m["To"] = f"user{i % 100}@example.com"
        m["Subject"] = " ".join(rng.choice(words) for _ in range(rng.randint(2, 8)))
        m["Date"] = format_datetime(datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
                                    + datetime.timedelta(minutes=37 * i))
        m["Message-ID"] = f"<{i}.bench@example.com>"
        size = int(rng.lognormvariate(8.5, 1.0))
        size = max(1000, min(size, 100_000))
        lines = []
        while sum(len(x) + 1 for x in lines) < size:
            lines.append(" ".join(rng.choice(words) for _ in range(12)))
        m.set_content("\n".join(lines) + "\n")
        text = m.as_string().replace("\nFrom ", "\n>From ")
        out.write(f"From sender{i % 37}@example.com Thu Jan  1 00:00:00 2026\n{text}\n")
PY
fi

# --- Dovecot (loadtest/dovecot.sh), IMAP only.
DPORT="$(free_port)"
# shellcheck source=loadtest/dovecot.sh
source "$ROOT/loadtest/dovecot.sh"
say "starting Dovecot on 127.0.0.1:$DPORT"
start_dovecot "$WORK/dovecot" "$WORK/users" "$DPORT"

# --- ringmail: its own data dir, free ports, no per-address session cap (every client comes
# from 127.0.0.1).
RPORT="$(free_port)"
mkdir -p "$WORK/ringmail"
chmod 700 "$WORK/ringmail"
cp "$WORK/users" "$WORK/ringmail/users"
cat > "$WORK/ringmail/ringmail.toml" <<EOF
[imap]
listen = ["127.0.0.1:$RPORT"]
listen_tls = []

[lmtp]
listen = []

[metrics]
listen = []

[limits]
max_sessions_per_user_ip = 100000

[managesieve]
listen = []

[storage]
durability = "$DURABILITY"
EOF
say "starting ringmail on 127.0.0.1:$RPORT"
"$RINGMAIL" serve --data "$WORK/ringmail" > "$WORK/ringmail.log" 2>&1 &
RINGMAIL_PID=$!

wait_port "$DPORT" Dovecot || { cat "$WORK/dovecot/dovecot.log" >&2 || true; exit 1; }
wait_port "$RPORT" ringmail || { cat "$WORK/ringmail.log" >&2; exit 1; }

# CPU ticks of a process tree: the root's own and reaped children's, plus every live
# descendant's own.
tree_ticks() {
    python3 - "$1" <<'PY'
import os, sys
root = int(sys.argv[1])
stats, parent = {}, {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        s = open(f"/proc/{d}/stat").read()
    except OSError:
        continue
    f = s[s.rindex(")") + 2:].split()
    pid = int(d)
    parent[pid] = int(f[1])
    stats[pid] = [int(x) for x in f[11:15]]  # utime stime cutime cstime
def under(pid):
    while pid in parent and pid != root:
        pid = parent[pid]
    return pid == root
total = sum(stats[root]) if root in stats else 0
total += sum(v[0] + v[1] for p, v in stats.items() if p != root and under(p))
print(total)
PY
}

profile_args() {
    case "$1" in
        mix) echo "" ;;
        logins) echo "- select=0 list=0 status=0 fetch=0 fetch2=0 store=0 delete=0 expunge=0 append=0 logout=100" ;;
        *) say "unknown profile $1 (mix, logins)"; exit 2 ;;
    esac
}

HZ="$(getconf CLK_TCK)"
RESULTS="$WORK/results.tsv"
: > "$RESULTS"
run() { # server port pid profile round
    local server=$1 port=$2 pid=$3 profile=$4 round=$5 out="$WORK/$1-$4-$5.txt"
    local before after
    say "round $round: imaptest $profile against $server ($CLIENTS clients, ${SECS}s)"
    before="$(tree_ticks "$pid")"
    # shellcheck disable=SC2046
    timeout $((SECS + 60)) "$IMAPTEST" host=127.0.0.1 port="$port" user='user%d' pass=pass \
        users="$USERS" clients="$CLIENTS" secs="$SECS" mbox="$MBOX" \
        $(profile_args "$profile") > "$out" 2>&1 || true
    after="$(tree_ticks "$pid")"
    local commands errors
    commands="$(awk '/^Totals:/{t=1; next} t && /^ *[0-9]+( +[0-9]+)+ *$/{s=0; for(i=1;i<=NF;i++) s+=$i; print s; exit}' "$out")"
    errors="$(grep -ciE "^(error|panic|fatal)|error:" "$out" || true)"
    [[ -n "$commands" && "$commands" -gt 0 ]] || { say "$server $profile: no Totals line"; tail -5 "$out" >&2; return; }
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$profile" "$round" "$server" "$commands" \
        "$(( (after - before) * 1000 / HZ ))" "$errors" >> "$RESULTS"
}

for round in $(seq 1 "$ROUNDS"); do
    for profile in $PROFILES; do
        run dovecot "$DPORT" "$DOVECOT_PID" "$profile" "$round"
        run ringmail "$RPORT" "$RINGMAIL_PID" "$profile" "$round"
    done
done

echo
printf '%-7s %5s %12s %12s %8s %14s %14s %9s %s\n' profile round "dovecot/s" "ringmail/s" "x thru" "dc cpu ms/1k" "rm cpu ms/1k" "rm/dc cpu" "error lines (dc/rm)"
python3 - "$RESULTS" "$SECS" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
secs = float(sys.argv[2])
by = {}
for profile, rnd, server, commands, cpu_ms, errors in rows:
    by.setdefault((profile, rnd), {})[server] = (int(commands), int(cpu_ms), int(errors))
for (profile, rnd), s in by.items():
    if "dovecot" not in s or "ringmail" not in s:
        continue
    (dc, dcpu, de), (rc, rcpu, re) = s["dovecot"], s["ringmail"]
    dk, rk = dcpu * 1000 / dc, rcpu * 1000 / rc
    print(f"{profile:<7} {rnd:>5} {dc / secs:12.1f} {rc / secs:12.1f} {rc / dc:8.2f} "
          f"{dk:14.1f} {rk:14.1f} {rk / dk:9.3f} {de}/{re}")
PY
