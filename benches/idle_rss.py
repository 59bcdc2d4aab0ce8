#!/usr/bin/env python3
"""Server RSS per IDLE connection, and how soon IDLE sessions see an APPEND.

Usage (add --tls for implicit TLS on port 13993): start ringmail with a data dir whose users file has u0..u99 with password `p`
(`u0:{PLAIN}p` lines) listening on 127.0.0.1:13143 and [limits] max_sessions_per_user_ip high enough (N / 100),
then: `ulimit -n 20000; python3 benches/idle_rss.py 4000`. Loopback only; bounded by N.
"""
import socket, sys, time, os, subprocess
N = int(sys.argv[1]); TLS = len(sys.argv) > 2 and sys.argv[2] == "--tls"
import ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def connect():
    if TLS:
        return ctx.wrap_socket(socket.create_connection(("127.0.0.1", 13993)))
    return socket.create_connection(("127.0.0.1", 13143))
pid = int(subprocess.check_output("pgrep -f 'ringmail serve'", shell=True).split()[0])
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
def cmd(s, line, tag):
    s.sendall(line)
    buf = b""
    while (b"\r\n" + tag + b" ") not in b"\r\n" + buf and not buf.startswith(tag + b" "):
        buf += s.recv(65536)
    return buf
# warm up: one session per user so partitions and mailboxes exist
for i in range(100):
    s = socket.create_connection(("127.0.0.1", 13143)); s.recv(1000)
    cmd(s, b"a LOGIN u%d p\r\nb SELECT INBOX\r\nc LOGOUT\r\n" % i, b"c"); s.close()
time.sleep(0.5)
base = rss()
socks = []
for n in range(N):
    s = connect(); s.recv(1000)
    cmd(s, b"a LOGIN u%d p\r\nb SELECT INBOX\r\n" % (n % 100), b"b")
    s.sendall(b"i IDLE\r\n"); 
    d = b""
    while b"+ idling" not in d: d += s.recv(1000)
    socks.append(s)
time.sleep(1)
after = rss()
print(f"{'TLS' if TLS else 'plain'} N={N} base_rss={base}KiB after={after}KiB per_conn={(after-base)*1024/N:.0f} bytes")
# latency: append to u0 INBOX and time until idle sessions of u0 see EXISTS
s = socket.create_connection(("127.0.0.1", 13143)); s.recv(1000); cmd(s, b"a LOGIN u0 p\r\n", b"a")
watch = [socks[i] for i in range(0, N, 100)]
t0 = time.time()
cmd(s, b"x APPEND INBOX {12+}\r\nSubject: x\r\n\r\n", b"x")
lat = []
for w in watch:
    d = b""
    while b"EXISTS" not in d: d += w.recv(1000)
    lat.append(time.time() - t0)
print(f"APPEND seen by {len(watch)} IDLE sessions of that user: max {max(lat)*1000:.1f} ms after the APPEND returned+")
