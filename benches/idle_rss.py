#!/usr/bin/env python3
"""Server memory (PSS) per IDLE session, and how soon IDLE sessions see an APPEND.

Start ringmail with users user1..user100 sharing one password, [limits]
max_sessions_per_user_ip of at least 2N/100 (and max_preauth_per_ip high enough, or the
client on a secure network), then:
    ulimit -n 20000; python3 benches/idle_rss.py N --port 1143 --password pass [--tls-port 1993 --tls]
Opens N IDLE sessions, reads the server's PSS (/proc/PID/smaps_rollup), opens N more and reads
it again: the difference over N is what one more IDLE session costs, with the partitions,
mailboxes and code pages of the first N already paid for. Loopback only; bounded by N (2N
sessions, so 2N + 100 descriptors in this process).
"""
import argparse, socket, ssl, subprocess, time

ap = argparse.ArgumentParser()
ap.add_argument("n", type=int)
ap.add_argument("--port", type=int, default=1143)
ap.add_argument("--tls-port", type=int, default=1993)
ap.add_argument("--tls", action="store_true")
ap.add_argument("--password", default="pass")
ap.add_argument("--users", type=int, default=100)
ap.add_argument("--pid", type=int, help="the server's pid (default: the one `ringmail serve` process)")
args = ap.parse_args()
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def server_pid():
    pids = subprocess.check_output(["pgrep", "-f", "ringmail serve"]).split()
    if len(pids) != 1:
        raise SystemExit(f"{len(pids)} `ringmail serve` processes: name one with --pid")
    return int(pids[0])


pid = args.pid or server_pid()


def connect():
    if args.tls:
        return ctx.wrap_socket(socket.create_connection(("127.0.0.1", args.tls_port)))
    return socket.create_connection(("127.0.0.1", args.port))


def pss_kib():
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            return int(line.split()[1])


def cmd(s, line, tag):
    s.sendall(line)
    buf = b""
    while (b"\r\n" + tag + b" ") not in b"\r\n" + buf and not buf.startswith(tag + b" "):
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit(f"connection closed waiting for {tag!r}: {buf[-200:]!r}")
        buf += chunk
    return buf


def login(s, i):
    return cmd(s, b"a LOGIN user%d %s\r\nb SELECT INBOX\r\n" % (i % args.users + 1, args.password.encode()), b"b")


socks = []


def open_idle(count):
    for _ in range(count):
        s = connect(); s.recv(1000)
        out = login(s, len(socks))
        if b"b OK" not in out:
            raise SystemExit(f"login/select failed: {out[-200:]!r}")
        s.sendall(b"i IDLE\r\n")
        d = b""
        while b"+ " not in d:
            d += s.recv(1000)
        socks.append(s)
    time.sleep(1)


open_idle(args.n)
first = pss_kib()
open_idle(args.n)
second = pss_kib()
kind = "TLS" if args.tls else "plain"
print(f"{kind} pss_at_{args.n}={first}KiB pss_at_{2 * args.n}={second}KiB "
      f"per_session={(second - first) * 1024 / args.n:.0f} bytes")
# Latency: APPEND to user1's INBOX and time until user1's IDLE sessions see EXISTS.
s = socket.create_connection(("127.0.0.1", args.port)); s.recv(1000)
cmd(s, b"a LOGIN user1 %s\r\n" % args.password.encode(), b"a")
watch = [socks[i] for i in range(0, len(socks), args.users)]
t0 = time.time()
cmd(s, b"x APPEND INBOX {12+}\r\nSubject: x\r\n\r\n", b"x")
lat = []
for w in watch:
    d = b""
    while b"EXISTS" not in d:
        d += w.recv(1000)
    lat.append(time.time() - t0)
print(f"APPEND seen by {len(watch)} IDLE sessions of that user: max {max(lat) * 1000:.1f} ms after the APPEND was sent")
