#!/usr/bin/env bash
# Import throughput: `ringmail import --user U maildir DIR` of a generated Maildir++ tree
# into a fresh data dir, in messages/s and MB/s, and Dovecot's own migration tool
# (`doveadm backup -R`, i.e. dsync) on the same tree into a fresh mailbox, side by side.
#
#   benches/import_throughput.sh                        # 20,000 INBOX messages + folders
#   MESSAGES=5000 benches/import_throughput.sh
#   MODE=online benches/import_throughput.sh            # into a running `ringmail serve`
#
# Environment: MESSAGES (INBOX messages, default 20000; the folders add 37% more),
# MAX_SIZE (largest message, default 1048576), SEED (1), MODE (offline: the data dir is
# stopped, the default; online: a server runs on it and the import goes through it),
# DOVECOT (1: also time Dovecot; 0: ringmail only), DOVECOT_FORMAT (mdbox, the default, or
# maildir: where dsync writes), CARGO_TARGET_DIR, RINGMAIL_BIN (use this binary instead of
# building), KEEP=1 to keep the work dir. Needs python3; Dovecot's part needs root.
# See docs/loadtest.md, "Import throughput".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MESSAGES="${MESSAGES:-20000}"
MAX_SIZE="${MAX_SIZE:-1048576}"
SEED="${SEED:-1}"
MODE="${MODE:-offline}"
DOVECOT="${DOVECOT:-1}"
DOVECOT_FORMAT="${DOVECOT_FORMAT:-mdbox}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
USER_NAME=user1

say() { printf '== %s\n' "$*" >&2; }

case "$MODE" in offline|online) ;; *) say "MODE must be offline or online"; exit 2 ;; esac
case "$DOVECOT_FORMAT" in mdbox|maildir) ;; *) say "DOVECOT_FORMAT must be mdbox or maildir"; exit 2 ;; esac

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

now() { date +%s.%N; }

RINGMAIL="${RINGMAIL_BIN:-$TARGET_DIR/release/ringmail}"
if [[ -z "${RINGMAIL_BIN:-}" ]]; then
    say "building ringmail (release)"
    (cd "$ROOT" && cargo build --release -p ringmail)
fi

WORK="$(mktemp -d /tmp/ringmail-import.XXXXXX)"
chmod 755 "$WORK"
SERVER_PID=""
DOVECOT_PID=""
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    [[ -n "$DOVECOT_PID" ]] && kill "$DOVECOT_PID" 2>/dev/null && wait "$DOVECOT_PID" 2>/dev/null
    if [[ "${KEEP:-0}" == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- The source: a Maildir++ tree as Dovecot leaves it. INBOX and four folders (one
# nested, one with a non-ASCII name in modified UTF-7), messages in cur/ with flags and
# keywords in their names (a few unread ones still in new/), a dovecot-uidlist (v3, with
# UIDVALIDITY, next UID, GUID and W<vsize> extension fields) and a dovecot-keywords file
# per folder, file mtimes as received dates. Sizes follow the load generator's corpus:
# 60% plain text of 0.3-6 KB, 25% text+HTML of 1-16 KB, 15% with a base64 attachment
# log-uniform between 10 KB and MAX_SIZE.
SRC="$WORK/Maildir"
say "generating $SRC ($MESSAGES INBOX messages + folders, seed $SEED)"
python3 - "$SRC" "$MESSAGES" "$MAX_SIZE" "$SEED" > "$WORK/source.stats" <<'PY'
import base64, email.utils, math, os, random, sys

root, inbox_count, max_size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
FOLDERS = [  # (Maildir++ directory, share of the INBOX count)
    ("", 1.0),
    (".Sent", 0.10),
    (".Archive.2023", 0.20),
    (".Trash", 0.05),
    (".Entw&APw-rfe", 0.02),  # "Entwürfe"
]
KEYWORDS = ["$Forwarded", "$Junk", "Work", "$label1"]
WORDS = ("the of and to a in for is on that by this with you it not or be are from at as "
         "your all have new more an was we will can about please thanks team project week "
         "attached regards invoice meeting quarterly holiday contract delivery report").split()
SENDERS = ["Alice Martin <alice@example.com>", "Bob Nguyen <bob@example.org>",
           "Carol Schmidt <carol@example.net>", "Dmitri Ivanov <dmitri@example.com>"]

def text(n):
    out, line = [], []
    for i in range(n // 5 + 1):
        line.append(rng.choice(WORDS))
        if len(line) == 12:
            out.append(" ".join(line)); line = []
    out.append(" ".join(line))
    return "\r\n".join(out)

def message(i, when):
    head = ("Return-Path: <x@example.com>\r\n"
            f"Received: from mx.example.net by imap.example.com with ESMTPS id {i:08x}\r\n"
            f"From: {rng.choice(SENDERS)}\r\nTo: Test User <user1@example.com>\r\n"
            f"Subject: {text(rng.randrange(10, 40))}\r\n"
            f"Date: {when}\r\nMessage-ID: <{i}.{rng.getrandbits(32)}@example.com>\r\n"
            "MIME-Version: 1.0\r\n")
    kind = rng.randrange(100)
    b = f"=_b{i}_{rng.getrandbits(32)}"
    if kind < 60:
        body = "Content-Type: text/plain; charset=utf-8\r\n\r\n" + text(rng.randrange(300, 6000)) + "\r\n"
    elif kind < 85:
        plain = text(rng.randrange(500, 8000))
        html = "<html><body><p>" + plain.replace("\r\n", "<br>\r\n") + "</p></body></html>"
        body = (f'Content-Type: multipart/alternative; boundary="{b}"\r\n\r\n'
                f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{plain}\r\n"
                f"--{b}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--{b}--\r\n")
    else:
        size = int(math.exp(rng.uniform(math.log(10_000), math.log(max(max_size, 20_000)))))
        data = base64.encodebytes(rng.randbytes(size * 3 // 4)).replace(b"\n", b"\r\n").decode()
        body = (f'Content-Type: multipart/mixed; boundary="{b}"\r\n\r\n'
                f"--{b}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text(rng.randrange(200, 2000))}\r\n"
                f'--{b}\r\nContent-Type: application/pdf; name="{i}.pdf"\r\n'
                f'Content-Disposition: attachment; filename="{i}.pdf"\r\n'
                f"Content-Transfer-Encoding: base64\r\n\r\n{data}--{b}--\r\n")
    # Maildir files hold LF line ends, as Dovecot and every MTA write them.
    return (head + body).replace("\r\n", "\n").encode()[:max_size]

total_messages = total_bytes = 0
start = 1_600_000_000
for number, (folder, share) in enumerate(FOLDERS):
    d = os.path.join(root, folder)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    if folder:
        open(os.path.join(d, "maildirfolder"), "w").close()
    count = max(1, int(inbox_count * share))
    uidvalidity = start + number
    lines = []
    when = start
    for n in range(count):
        when += rng.randrange(60, 3600)
        uid = n + 1 + n // 50  # a few gaps: expunged messages
        data = message(total_messages, email.utils.formatdate(when - rng.randrange(5, 120)))
        vsize = len(data) + data.count(b"\n")  # the size with CRLF line ends
        base = f"{when}.M{rng.randrange(1_000_000)}P{rng.randrange(1, 65536)}.mail,S={len(data)},W={vsize}"
        unread = rng.random() < 0.3
        if unread and n >= count - 5:
            sub, name = "new", base  # never seen by a client: no info part yet
        else:
            flags = "" if unread else "S"
            if rng.random() < 0.05: flags += "F"
            if rng.random() < 0.10: flags += "R"
            if rng.random() < 0.05: flags += rng.choice("abcd")
            sub, name = "cur", base + ":2," + "".join(sorted(flags))
        path = os.path.join(d, sub, name)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (when, when))
        ext = f"W{vsize} " if n % 3 else ""
        lines.append(f"{uid} {ext}:{base}\n")
        total_messages += 1
        total_bytes += len(data)
    with open(os.path.join(d, "dovecot-uidlist"), "w") as f:
        f.write(f"3 V{uidvalidity} N{uid + 1} G{rng.getrandbits(128):032x}\n")
        f.writelines(lines)
    with open(os.path.join(d, "dovecot-keywords"), "w") as f:
        f.writelines(f"{i} {k}\n" for i, k in enumerate(KEYWORDS))
print(total_messages, total_bytes)
PY
read -r TOTAL_MESSAGES TOTAL_BYTES < "$WORK/source.stats"
say "source: $TOTAL_MESSAGES messages, $TOTAL_BYTES bytes ($(( TOTAL_BYTES / TOTAL_MESSAGES )) bytes on average)"

rate() { # label messages bytes seconds
    python3 -c 'import sys; l, m, b, s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]); print(f"{l}: {m} messages, {b / 1e6:.1f} MB in {s:.2f} s: {m / s:.0f} messages/s, {b / 1e6 / s:.1f} MB/s")' "$@"
}

# --- ringmail: a fresh data dir with one user, free ports (used by MODE=online only).
DATA="$WORK/ringmail"
mkdir -p "$DATA"
chmod 700 "$DATA"
echo "$USER_NAME:{PLAIN}pass" > "$DATA/users"
IMAP_PORT="$(free_port)"
cat > "$DATA/ringmail.toml" <<EOF
[imap]
listen = ["127.0.0.1:$IMAP_PORT"]
listen_tls = ["127.0.0.1:$(free_port)"]

[lmtp]
listen = ["127.0.0.1:$(free_port)"]

[metrics]
listen = []

[managesieve]
listen = []
EOF

if [[ "$MODE" == online ]]; then
    say "starting ringmail serve on $DATA (IMAP 127.0.0.1:$IMAP_PORT)"
    "$RINGMAIL" serve --data "$DATA" > "$WORK/serve.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$IMAP_PORT") 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/serve.log" >&2; say "ringmail serve exited"; exit 1; }
        sleep 0.1
    done
fi

say "ringmail import ($MODE) into $DATA"
cmd=("$RINGMAIL" import --data "$DATA" --user "$USER_NAME" maildir "$SRC")
echo "+ ${cmd[*]}" >&2
t0="$(now)"
if ! "${cmd[@]}" > "$WORK/import.out" 2>&1; then
    cat "$WORK/import.out" >&2
    if [[ "$MODE" == online ]] && grep -q "in use by a running" "$WORK/import.out"; then
        say "online import is not available in this ringmail build: it refuses a data dir a running server holds"
    fi
    say "ringmail import failed"
    exit 1
fi
t1="$(now)"
cat "$WORK/import.out" >&2
# "imported N messages into ..." (the wording after "into" differs between offline and online).
IMPORTED="$(sed -n 's/^imported \([0-9]*\) messages .*/\1/p' "$WORK/import.out")"
if [[ "$IMPORTED" != "$TOTAL_MESSAGES" ]]; then
    say "ringmail imported ${IMPORTED:-?} of $TOTAL_MESSAGES messages"
    exit 1
fi
RINGMAIL_SECONDS="$(python3 -c "print($t1 - $t0)")"
RINGMAIL_LINE="$(rate "ringmail import ($MODE)" "$TOTAL_MESSAGES" "$TOTAL_BYTES" "$RINGMAIL_SECONDS")"
echo "$RINGMAIL_LINE"
echo "  data dir after import: $(du -sb "$DATA" | cut -f1) bytes"

if [[ "$DOVECOT" != 1 ]]; then exit 0; fi
if [[ "$(id -u)" != 0 ]]; then say "Dovecot's side needs root (skipped; DOVECOT=0 to silence)"; exit 0; fi
command -v doveadm >/dev/null 2>&1 || { say "installing dovecot-core"; apt-get install -y dovecot-core >/dev/null; }

# --- Dovecot: dsync (`doveadm backup -R -u user1 maildir:COPY`) makes user1's mailboxes
# (mail_location, mdbox or maildir) identical to the tree: same folders, flags, keywords,
# UIDVALIDITY and UIDs, which is what ringmail's import keeps too. dsync opens the source as
# a mailbox and writes its own index files into it, so it gets a copy (owned by the mail
# user; made before the clock starts). mail_fsync = optimized, as in bench-vs-dovecot.sh.
mkdir -p "$WORK/dovecot/run" "$WORK/dovecot/state" "$WORK/dovecot/home"
cp -a "$SRC" "$WORK/dovecot/source"
chown -R 65534:65534 "$WORK/dovecot/home" "$WORK/dovecot/source"
cat > "$WORK/dovecot/dovecot.conf" <<EOF
protocols =
listen = 127.0.0.1
base_dir = $WORK/dovecot/run
state_dir = $WORK/dovecot/state
log_path = $WORK/dovecot/dovecot.log
ssl = no
mail_location = $DOVECOT_FORMAT:~/mail
mail_fsync = optimized
first_valid_uid = 1
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=$WORK/dovecot/home/%u
}
namespace inbox {
  inbox = yes
  separator = /
}
EOF
dovecot -c "$WORK/dovecot/dovecot.conf" -F &
DOVECOT_PID=$!
for _ in $(seq 1 100); do [[ -S "$WORK/dovecot/run/auth-userdb" ]] && break; sleep 0.1; done
say "Dovecot dsync into $DOVECOT_FORMAT"
dcmd=(doveadm -c "$WORK/dovecot/dovecot.conf" backup -R -u "$USER_NAME" "maildir:$WORK/dovecot/source")
echo "+ ${dcmd[*]}" >&2
t0="$(now)"
if ! "${dcmd[@]}" > "$WORK/dsync.out" 2>&1; then
    cat "$WORK/dsync.out" "$WORK/dovecot/dovecot.log" >&2 || true
    say "doveadm backup failed"
    exit 1
fi
t1="$(now)"
DOVECOT_COUNT="$(doveadm -c "$WORK/dovecot/dovecot.conf" -f flow mailbox status -u "$USER_NAME" messages '*' |
    awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^messages=/) { sub(/^messages=/, "", $i); n += $i } } END { print n + 0 }')"
if [[ "$DOVECOT_COUNT" != "$TOTAL_MESSAGES" ]]; then
    say "Dovecot holds ${DOVECOT_COUNT:-?} of $TOTAL_MESSAGES messages after dsync"
fi
DOVECOT_SECONDS="$(python3 -c "print($t1 - $t0)")"
DOVECOT_LINE="$(rate "Dovecot dsync into $DOVECOT_FORMAT" "$TOTAL_MESSAGES" "$TOTAL_BYTES" "$DOVECOT_SECONDS")"
echo "$DOVECOT_LINE"
echo "  mail dir after dsync: $(du -sb "$WORK/dovecot/home" | cut -f1) bytes"
python3 -c "import sys; r, d = float(sys.argv[1]), float(sys.argv[2]); print(f'ringmail/Dovecot messages/s: {d / r:.2f}')" "$RINGMAIL_SECONDS" "$DOVECOT_SECONDS"
