#!/usr/bin/env bash
# Issue 17's large-mailbox targets: one mailbox of MESSAGES (default 1,000,000) generated
# messages, imported offline, then warm SEARCH latencies over IMAP: flags, dates, FROM,
# SUBJECT and a rare BODY word, plus what the mailbox costs (import time, data dir size,
# server PSS, the first SELECT after a restart).
#
#   benches/million.sh                         # 1,000,000 messages (about 1.6 GB of mail)
#   MESSAGES=100000 RUNS=5 benches/million.sh
#
# Each search is timed with imaplib (as a Python client sees it) and with a socket reader
# that only waits for the tagged reply (the server's time plus the loopback transfer).
#
# Environment: MESSAGES, RUNS (timed repetitions of each search, default 3; the medians are
# printed, after one untimed warm-up run), SEED (1), RINGMAIL_BIN (default
# target/release/ringmail, built if missing), KEEP=1 keeps the work dir (reuse it with
# WORK=DIR to skip generation and import). Loopback only; every command is bounded.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MESSAGES="${MESSAGES:-1000000}"
RUNS="${RUNS:-3}"
SEED="${SEED:-1}"

# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

RINGMAIL="${RINGMAIL_BIN:-$ROOT/target/release/ringmail}"
if [[ -z "${RINGMAIL_BIN:-}" ]]; then
    say "building ringmail (release)"
    (cd "$ROOT" && cargo build --release -p ringmail)
fi

if [[ -n "${WORK:-}" ]]; then
    REUSE=1
else
    REUSE=0
    WORK="$(mktemp -d /tmp/ringmail-million.XXXXXX)"
fi
PID=""
cleanup() {
    [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    if [[ "${KEEP:-0}" == 1 || "$REUSE" == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

DATA="$WORK/data"
PORT="$(free_port)"
write_config() {
    mkdir -p "$DATA"
    chmod 700 "$DATA"
    cat > "$DATA/ringmail.toml" <<EOF
[imap]
listen = ["127.0.0.1:$PORT"]
listen_tls = []

[lmtp]
listen = []

[metrics]
listen = []

[managesieve]
listen = []
EOF
    echo 'bench:{PLAIN}pass' > "$DATA/users"
}

if [[ "$REUSE" == 0 ]]; then
    say "generating $MESSAGES messages"
    python3 - "$WORK/mail.mbox" "$MESSAGES" "$SEED" <<'PY'
import random, sys, datetime
path, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
words = ("the of and to in is for on that with as this by from at be are was have it not "
         "meeting report budget draft review quarter invoice travel schedule project update "
         "team customer release server mailbox search index folder contract agenda notes").split()
first = "Anna Ben Carla David Elena Farid Greta Hugo Ines Jonas Karin Lukas Maria Nils Olga Paul".split()
last = "Berg Costa Dahl Eklund Fischer Garcia Hansen Ivanova Jensen Kowalski Lund Meyer Novak".split()
senders = [(f"{rng.choice(first)} {rng.choice(last)}", f"s{i}@example{i % 50}.com") for i in range(5000)]
start = datetime.datetime(2016, 1, 1, tzinfo=datetime.timezone.utc)
span = 10 * 365 * 86400
days = "Mon Tue Wed Thu Fri Sat Sun".split()
months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
# Ten messages carry the rare sender and the rare body word, spread over the mailbox.
rare = {int((k + 0.5) * n / 10) for k in range(10)}
with open(path, "w", buffering=1 << 20) as out:
    for i in range(n):
        t = start + datetime.timedelta(seconds=span * i // n + rng.randrange(3600))
        date = f"{days[t.weekday()]}, {t.day:02d} {months[t.month - 1]} {t.year} {t.hour:02d}:{t.minute:02d}:{t.second:02d} +0000"
        name, addr = ("Quentin Rarename", "quentin@rare.example") if i in rare else rng.choice(senders)
        subject = " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 14)))
                 for _ in range(rng.randint(5, 25))]
        if i in rare:
            lines.insert(len(lines) // 2, "the xylophonist arrives on tuesday")
        body = "\n".join(lines)
        out.write(f"From {addr} {days[t.weekday()]} {months[t.month - 1]} {t.day:2d} "
                  f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} {t.year}\n"
                  f"From: {name} <{addr}>\nTo: Bench User <bench@example.org>\n"
                  f"Subject: {subject}\nDate: {date}\nMessage-ID: <{i}.{seed}@bench.example>\n"
                  f"MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n{body}\n\n")
PY
    write_config
    say "importing into $DATA (offline)"
    t0=$(date +%s.%N)
    "$RINGMAIL" import --data "$DATA" --user bench mbox "$WORK/mail.mbox" > "$WORK/import.log" 2>&1
    t1=$(date +%s.%N)
    IMPORT_S=$(echo "$t1 - $t0" | bc)
    rm -f "$WORK/mail.mbox"
else
    write_config
    IMPORT_S="(reused)"
fi

"$RINGMAIL" serve --data "$DATA" > "$WORK/serve.log" 2>&1 &
PID=$!
for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; exit 1; }
    sleep 0.1
done

python3 - "$PORT" "$RUNS" "$PID" "$DATA" "$IMPORT_S" "$MESSAGES" <<'PY'
import imaplib, os, socket, statistics, subprocess, sys, time
imaplib._MAXLINE = 1 << 30  # a SEARCH over a million messages answers in one long line
port, runs, pid, data, import_s, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])

def pss_kib():
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            return int(line.split()[1])

pss0 = pss_kib()
c = imaplib.IMAP4("127.0.0.1", port, timeout=600)
c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
t = time.monotonic()
# The login opens the user's partition: the checkpoint is loaded and the log after it replayed.
c.login("bench", "pass")
typ, exists = c.select("INBOX")
select_ms = (time.monotonic() - t) * 1000
assert typ == "OK", exists
exists = int(exists[0])
pss1 = pss_kib()
# Flags to search for: the first third unseen, a hundredth in the middle flagged.
t = time.monotonic()
typ, _ = c.uid("STORE", "1:*", "+FLAGS.SILENT", r"(\Seen)")
typ, _ = c.uid("STORE", f"1:{exists // 3}", "-FLAGS.SILENT", r"(\Seen)")
typ, _ = c.uid("STORE", f"{exists // 2}:{exists // 2 + exists // 100}", "+FLAGS.SILENT", r"(\Flagged)")
# A keyword on a hundred messages: a search whose answer is small.
typ, _ = c.uid("STORE", f"{exists * 2 // 5}:{exists * 2 // 5 + 99}", "+FLAGS.SILENT", "($Rare)")
store_s = time.monotonic() - t

searches = [
    ("UNSEEN", "UNSEEN"),
    ("FLAGGED", "FLAGGED"),
    ("SINCE (last year)", "SINCE 1-Jan-2025"),
    ("BEFORE+SINCE (a month)", "SINCE 1-Mar-2020 BEFORE 1-Apr-2020"),
    ("ON (a day)", "ON 15-Mar-2020"),
    ("KEYWORD rare", "KEYWORD $Rare"),
    ("LARGER (none)", "LARGER 100000"),
    ("LARGER (a third)", "LARGER 1500"),
    ("SENTSINCE (last year)", "SENTSINCE 1-Jan-2025"),
    ("SENTON (a day)", "SENTON 15-Mar-2020"),
    ("ESEARCH MIN MAX COUNT UNSEEN", "RETURN (MIN MAX COUNT) UNSEEN"),
    ("ESEARCH COUNT FLAGGED", "RETURN (COUNT) FLAGGED"),
    ("FROM rare", 'FROM "rarename"'),
    ("FROM common", 'FROM "example7.com"'),
    ("SUBJECT", 'SUBJECT "invoice agenda"'),
    ("BODY rare", 'BODY "xylophonist"'),
    ("TEXT rare", 'TEXT "xylophonist"'),
    ("BODY absent", 'BODY "zqxjkvw"'),
]
print(f"messages {exists} (asked {n}); import {import_s} s; data dir "
      f"{subprocess.check_output(['du', '-sh', data]).split()[0].decode()}; "
      f"LOGIN+SELECT after start (opens the partition) {select_ms:.0f} ms; server PSS "
      f"{pss0 // 1024} MiB before, {pss1 // 1024} MiB after; flag STOREs over the mailbox "
      f"{store_s:.2f} s")
def search(crit):
    # UID SEARCH; an ESEARCH answer (RETURN ...) comes back as its one line of data.
    typ, dat = c._simple_command("UID", "SEARCH", crit)
    if not crit.startswith("RETURN"):
        return c._untagged_response(typ, dat, "SEARCH")
    typ, dat = c._untagged_response(typ, dat, "ESEARCH")
    # Without its `(TAG "...")`, which differs from command to command.
    return typ, [d.split(b")", 1)[-1].strip() for d in dat]

# A second session reads the same answers at socket speed: recv_into one buffer until the
# tagged reply, no line parsing. imaplib splits and copies the answer (about 23 ms for the
# 2.2 MB of a third of a million UIDs); this column is the server and the loopback alone.
raw = socket.create_connection(("127.0.0.1", port), timeout=600)
raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
raw_buf = bytearray(64 << 20)
raw_view = memoryview(raw_buf)
raw_tags = iter(range(1, 1 << 30))
def raw_command(line):
    # Tags of one length, so that equal answers are equally long.
    tag = b"r%08d" % next(raw_tags)
    raw.sendall(tag + b" " + line.encode() + b"\r\n")
    got = 0
    while True:
        k = raw.recv_into(raw_view[got:])
        assert k, "connection closed"
        got += k
        if raw_buf[got - 2:got] == b"\r\n":
            before = raw_buf.rfind(b"\r\n", 0, got - 2)
            start = before + 2 if before >= 0 else 0
            if raw_buf[start:start + len(tag) + 1] == tag + b" ":
                assert raw_buf[start + len(tag) + 1:start + len(tag) + 3] == b"OK", name
                return got
raw.recv(1 << 16)  # the greeting
raw_command("LOGIN bench pass")
raw_command("SELECT INBOX")

print(f"{'search':<30} {'hits':>8} {'imaplib ms':>10} {'socket ms':>10} {'imaplib runs ms':>30}")
for name, crit in searches:
    typ, got = search(crit)
    assert typ == "OK", (name, got)
    hits = len(got[0].split()) if not crit.startswith("RETURN") else got[0].decode().split()[-1]
    times = []
    for _ in range(runs):
        t = time.monotonic()
        typ, again = search(crit)
        times.append((time.monotonic() - t) * 1000)
        assert again == got, name
    size = raw_command(f"UID SEARCH {crit}")
    raw_times = []
    for _ in range(runs):
        t = time.monotonic()
        assert raw_command(f"UID SEARCH {crit}") == size, name
        raw_times.append((time.monotonic() - t) * 1000)
    print(f"{name:<30} {hits:>8} {statistics.median(times):>10.1f} "
          f"{statistics.median(raw_times):>10.1f} {' '.join(f'{x:.1f}' for x in times):>30}")
raw_command("LOGOUT")
c.logout()
PY
