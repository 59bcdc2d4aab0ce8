#!/usr/bin/env bash
# SEARCH and SORT on one large mailbox, ringmail against Dovecot (without FTS), same data,
# same run: warm median times per command over IMAP on loopback, the ratios, and a check
# that both servers answer with the same UIDs.
#
#   benches/search_vs_dovecot.sh                      # 20,000 messages, 5 timed runs each
#   MESSAGES=5000 RUNS=3 benches/search_vs_dovecot.sh
#
# Environment: MESSAGES (default 20000), MAX_SIZE (largest attachment message, default
# 262144), SEED (1), RUNS (timed runs per command after one warm-up, default 5),
# CARGO_TARGET_DIR, RINGMAIL_BIN (use this binary instead of building), KEEP=1 to keep the
# work dir. Needs root (Dovecot refuses mail access as root, so its mail is owned by nobody)
# and python3. See docs/loadtest.md, "Header search against Dovecot".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MESSAGES="${MESSAGES:-20000}"
MAX_SIZE="${MAX_SIZE:-262144}"
SEED="${SEED:-1}"
RUNS="${RUNS:-5}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
USER_NAME=user1

say() { printf '== %s\n' "$*" >&2; }
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

[[ "$(id -u)" == 0 ]] || { say "needs root (to run Dovecot)"; exit 2; }
command -v dovecot >/dev/null 2>&1 || { say "installing dovecot-imapd"; apt-get install -y dovecot-imapd >/dev/null; }

RINGMAIL="${RINGMAIL_BIN:-$TARGET_DIR/release/ringmail}"
if [[ -z "${RINGMAIL_BIN:-}" ]]; then
    say "building ringmail (release)"
    (cd "$ROOT" && cargo build --release -p ringmail)
fi

WORK="$(mktemp -d /tmp/ringmail-search.XXXXXX)"
chmod 755 "$WORK"
RINGMAIL_PID=""
DOVECOT_PID=""
cleanup() {
    [[ -n "$RINGMAIL_PID" ]] && kill "$RINGMAIL_PID" 2>/dev/null && wait "$RINGMAIL_PID" 2>/dev/null
    [[ -n "$DOVECOT_PID" ]] && kill "$DOVECOT_PID" 2>/dev/null && wait "$DOVECOT_PID" 2>/dev/null
    if [[ "${KEEP:-0}" == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- One INBOX as a Maildir with a dovecot-uidlist (so both servers number it alike):
# 60% plain text, 25% text+HTML, 15% with a base64 attachment; 400 senders (display names
# as RFC 2047 encoded words in UTF-8 or Latin-1 when non-ASCII, and a tenth of the others;
# some CJK), 1-3 recipients, a Cc on a third, subjects from a word list (a tenth encoded).
# One body in a thousand holds "xylophone".
SRC="$WORK/Maildir"
say "generating $SRC ($MESSAGES messages, seed $SEED)"
python3 - "$SRC" "$MESSAGES" "$MAX_SIZE" "$SEED" > "$WORK/source.stats" <<'PY'
import base64, email.header, email.utils, math, os, random, sys

root, count, max_size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
WORDS = ("the of and to a in for is on that by this with you it not or be are from at as "
         "your all have new more an was we will can about please thanks team project week "
         "attached regards invoice meeting quarterly holiday contract delivery report").split()
FIRST = ["Alice", "Bob", "Carol", "Dmitri", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy",
         "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Zoe"]
LAST = ["Martin", "Nguyen", "Schmidt", "Ivanov", "Quintero", "Okafor", "Larsen", "Rossi",
        "Yamamoto", "Dubois", "Kowalski", "Haddad", "Novak", "Silva", "Berg", "Moreau",
        "Jørgensen", "Müller", "Þórsdóttir", "Weiß"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.de", "lists.example.io"]

def encode(name):
    if name.isascii() and rng.random() < 0.9:
        return f'"{name}"' if rng.random() < 0.3 else name
    charset = "iso-8859-1" if rng.random() < 0.5 and all(ord(c) < 256 for c in name) else "utf-8"
    return email.header.Header(name, charset).encode()

def person(i):
    first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
    name = f"{first} {last}" if i % 13 else "山田 太郎"
    return name, f"{first.lower()}.{last.encode('ascii', 'ignore').decode().lower()}{i}@{DOMAINS[i % len(DOMAINS)]}"

SENDERS = [person(i) for i in range(400)]

def address(p):
    name, addr = p
    return f"{encode(name)} <{addr}>"

def text(n):
    out, line = [], []
    for _ in range(n // 5 + 1):
        line.append(rng.choice(WORDS))
        if len(line) == 12:
            out.append(" ".join(line)); line = []
    out.append(" ".join(line))
    return "\r\n".join(out)

def message(i, when):
    sender = SENDERS[min(int(rng.paretovariate(1.2)) - 1, len(SENDERS) - 1) * 7 % len(SENDERS)]
    to = ", ".join(address(rng.choice(SENDERS)) for _ in range(rng.randrange(1, 4)))
    subject = text(rng.randrange(10, 40)).replace("\r\n", " ")
    if rng.random() < 0.1:
        subject = email.header.Header("Réunion: " + subject, "utf-8").encode()
    head = ("Return-Path: <x@example.com>\r\n"
            f"Received: from mx.example.net by imap.example.com with ESMTPS id {i:08x}\r\n"
            f"From: {address(sender)}\r\nTo: {to}\r\n")
    if rng.random() < 0.33:
        head += f"Cc: {address(rng.choice(SENDERS))}\r\n"
    head += (f"Subject: {subject}\r\nDate: {when}\r\n"
             f"Message-ID: <{i}.{rng.getrandbits(32)}@example.com>\r\nMIME-Version: 1.0\r\n")
    words = text(rng.randrange(300, 6000))
    if rng.random() < 0.001:
        words += " xylophone"
    kind = rng.randrange(100)
    b = f"=_b{i}_{rng.getrandbits(32)}"
    if kind < 60:
        body = "Content-Type: text/plain; charset=utf-8\r\n\r\n" + words + "\r\n"
    elif kind < 85:
        html = "<html><body><p>" + words.replace("\r\n", "<br>\r\n") + "</p></body></html>"
        body = (f'Content-Type: multipart/alternative; boundary="{b}"\r\n\r\n'
                f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{words}\r\n"
                f"--{b}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--{b}--\r\n")
    else:
        size = int(math.exp(rng.uniform(math.log(10_000), math.log(max(max_size, 20_000)))))
        data = base64.encodebytes(rng.randbytes(size * 3 // 4)).replace(b"\n", b"\r\n").decode()
        body = (f'Content-Type: multipart/mixed; boundary="{b}"\r\n\r\n'
                f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{words}\r\n"
                f'--{b}\r\nContent-Type: application/pdf; name="{i}.pdf"\r\n'
                f'Content-Disposition: attachment; filename="{i}.pdf"\r\n'
                f"Content-Transfer-Encoding: base64\r\n\r\n{data}--{b}--\r\n")
    return (head + body).replace("\r\n", "\n").encode()

for sub in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(root, sub), exist_ok=True)
lines, total, when = [], 0, 1_600_000_000
for n in range(count):
    when += rng.randrange(60, 3600)
    data = message(n, email.utils.formatdate(when - rng.randrange(5, 120)))
    base = f"{when}.M{n}P1.mail,S={len(data)}"
    path = os.path.join(root, "cur", base + ":2,S")
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (when, when))
    lines.append(f"{n + 1} :{base}\n")
    total += len(data)
with open(os.path.join(root, "dovecot-uidlist"), "w") as f:
    f.write(f"3 V1600000000 N{count + 1} G{rng.getrandbits(128):032x}\n")
    f.writelines(lines)
print(count, total)
PY
read -r TOTAL_MESSAGES TOTAL_BYTES < "$WORK/source.stats"
say "source: $TOTAL_MESSAGES messages, $TOTAL_BYTES bytes"
echo "$USER_NAME:{PLAIN}pass" > "$WORK/users"

# --- ringmail: offline import, then serve on loopback.
DATA="$WORK/ringmail"
mkdir -p "$DATA"
chmod 700 "$DATA"
cp "$WORK/users" "$DATA/users"
RPORT="$(free_port)"
cat > "$DATA/ringmail.toml" <<EOF
[imap]
listen = ["127.0.0.1:$RPORT"]
listen_tls = ["127.0.0.1:$(free_port)"]

[lmtp]
listen = ["127.0.0.1:$(free_port)"]

[metrics]
listen = []

[managesieve]
listen = []
EOF
say "ringmail import"
"$RINGMAIL" import --data "$DATA" --user "$USER_NAME" maildir "$SRC" > "$WORK/import.out" 2>&1 ||
    { cat "$WORK/import.out" >&2; say "ringmail import failed"; exit 1; }
# What the header-search values cost on disk: the checkpoint beyond the 64 bytes per message
# of the index entries (docs/storage-format.md). In memory they take the same once loaded.
CKPT_BYTES="$(find "$DATA" -name 'index-*.ckpt' -printf '%T@ %s\n' | sort -n | tail -1 | cut -d' ' -f2)"
python3 -c 'import sys; b, n = int(sys.argv[1]), int(sys.argv[2]); print(f"checkpoint: {b} bytes for {n} messages, {b / n:.0f} bytes per message ({(b - 64 * n) / n:.0f} beyond the 64-byte index entry)")' "$CKPT_BYTES" "$TOTAL_MESSAGES"
# What the messages take in the segments (message, metadata, searchable text, framing).
SEG_BYTES="$(find "$DATA" -name 'seg-*.log' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')"
python3 -c 'import sys; b, n, m = map(int, sys.argv[1:]); print(f"segments: {b} bytes for {n} messages ({m} bytes as Maildir), {b / n:.0f} bytes per message, {(b - m) / n:.0f} beyond the message")' "$SEG_BYTES" "$TOTAL_MESSAGES" "$TOTAL_BYTES"
"$RINGMAIL" serve --data "$DATA" > "$WORK/serve.log" 2>&1 &
RINGMAIL_PID=$!

# --- Dovecot: the same Maildir (its uidlist keeps the UIDs), loopback only, no FTS.
DPORT="$(free_port)"
mkdir -p "$WORK/dovecot/run" "$WORK/dovecot/state" "$WORK/dovecot/mail/$USER_NAME"
cp -a "$SRC" "$WORK/dovecot/mail/$USER_NAME/Maildir"
chown -R 65534:65534 "$WORK/dovecot/mail"
cat > "$WORK/dovecot/dovecot.conf" <<EOF
protocols = imap
listen = 127.0.0.1
base_dir = $WORK/dovecot/run
state_dir = $WORK/dovecot/state
log_path = $WORK/dovecot/dovecot.log
ssl = no
disable_plaintext_auth = no
mail_location = maildir:~/Maildir
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN $WORK/users
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=$WORK/dovecot/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $DPORT
  }
  inet_listener imaps {
    port = 0
  }
}
EOF
dovecot -c "$WORK/dovecot/dovecot.conf" -F &
DOVECOT_PID=$!

for port in "$RPORT" "$DPORT"; do
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
done

# --- The commands, each once to warm up (Dovecot builds its index and cache then), then
# RUNS timed; the median, the ratio, and the UIDs compared.
say "timing ($RUNS runs each after a warm-up)"
python3 - "$RPORT" "$DPORT" "$USER_NAME" "$RUNS" <<'PY'
import imaplib, socket, statistics, sys, time

rport, dport, user, runs = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
# (label, verb, arguments, literal): a non-ASCII string goes as a literal after the rest.
COMMANDS = [
    ("FROM (rare sender)", "SEARCH", 'FROM "mallory.kowalski350"', None),
    ("FROM (common sender)", "SEARCH", 'FROM "bob.rossi21"', None),
    ("FROM (common domain)", "SEARCH", 'FROM "example.org"', None),
    ("FROM (encoded name)", "SEARCH", "CHARSET UTF-8 FROM", "müller"),
    ("TO", "SEARCH", 'TO "judy."', None),
    ("CC", "SEARCH", 'CC "grace"', None),
    ("SUBJECT", "SEARCH", 'SUBJECT "invoice"', None),
    ("SUBJECT (encoded)", "SEARCH", "CHARSET UTF-8 SUBJECT", "réunion"),
    ("HEADER FROM", "SEARCH", 'HEADER FROM "martin"', None),
    ("BODY (rare word)", "SEARCH", 'BODY "xylophone"', None),
    ("TEXT (common word)", "SEARCH", 'TEXT "quarterly"', None),
    ("SORT FROM", "SORT", "(FROM) UTF-8 ALL", None),
    ("SORT SUBJECT", "SORT", "(SUBJECT) UTF-8 ALL", None),
    ("SORT DATE", "SORT", "(DATE) UTF-8 ALL", None),
]

def connect(port):
    # Every wait is bounded: a command that does not answer in 120 s counts as a failure.
    c = imaplib.IMAP4("127.0.0.1", port, timeout=120)
    # imaplib writes a literal and its closing CRLF separately: without this, Nagle holds
    # the CRLF until the server's delayed ACK, 40 ms on every command with a literal.
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.login(user, "pass")
    typ, data = c.select("INBOX", readonly=True)
    assert typ == "OK", data
    return c, int(data[0])

def run(c, verb, args, literal):
    if literal is not None:
        c.literal = literal.encode()
    t0 = time.perf_counter()
    typ, data = c.uid(verb, args)
    dt = time.perf_counter() - t0
    assert typ == "OK", (verb, args, data)
    uids = [int(u) for u in b" ".join(d for d in data if d).split()]
    return dt, uids

ports = {"ringmail": rport, "dovecot": dport}
servers = {name: connect(port) for name, port in ports.items()}
print(f"messages: ringmail {servers['ringmail'][1]}, dovecot {servers['dovecot'][1]}")
bad = 0
print(f"{'command':24} {'ringmail ms':>12} {'dovecot ms':>11} {'dovecot/ringmail':>17} {'hits':>6}  same UIDs")
for label, verb, args, literal in COMMANDS:
    results = {}
    for name, (c, _) in list(servers.items()):
        try:
            _, uids = run(c, verb, args, literal)
            times = [run(c, verb, args, literal)[0] for _ in range(runs)]
            results[name] = (statistics.median(times) * 1000, uids)
        except (OSError, imaplib.IMAP4.error) as e:
            print(f"{label}: {name} failed: {e!r}; reconnecting")
            servers[name] = connect(ports[name])
            results[name] = (float("nan"), None)
    (r_ms, r_uids), (d_ms, d_uids) = results["ringmail"], results["dovecot"]
    if r_uids is None or d_uids is None:
        bad += 1
        continue
    same = r_uids == d_uids if verb == "SORT" else sorted(r_uids) == sorted(d_uids)
    if not same:
        bad += 1
        only_r = sorted(set(r_uids) - set(d_uids))[:10]
        only_d = sorted(set(d_uids) - set(r_uids))[:10]
        detail = f"NO (only ringmail: {only_r}, only dovecot: {only_d})"
    else:
        detail = "yes"
    print(f"{label:24} {r_ms:12.2f} {d_ms:11.2f} {d_ms / r_ms:16.1f}x {len(r_uids):6}  {detail}")
for c, _ in servers.values():
    c.logout()
sys.exit(1 if bad else 0)
PY
