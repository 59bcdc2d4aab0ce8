#!/usr/bin/env python3
"""Server memory (PSS) per partition opened by a first login, for issue 17's 256 KiB target.

Usage: start ringmail on a data dir whose passwd-file has user1..userN with one password and
no partition opened yet (a fresh data dir), then
    python3 benches/partition_rss.py PORT N PASSWORD DATA_DIR [PID]
Each user logs in, SELECTs INBOX (which opens the user's partition on its core and creates the
mailbox) and logs out, one at a time. PSS is read from /proc/PID/smaps_rollup before and after;
the growth is divided by the number of partition directories (p-NNNN) the logins created
(users share partitions: P = [storage] partitions). Loopback only; bounded by N.
"""
import imaplib, os, subprocess, sys, time

port, n, password, data = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if len(sys.argv) > 5:
    pid = int(sys.argv[5])
else:
    pids = subprocess.check_output(["pgrep", "-f", "ringmail serve"]).split()
    if len(pids) != 1:
        raise SystemExit(f"{len(pids)} `ringmail serve` processes: give the server's PID")
    pid = int(pids[0])


def pss_kib():
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            return int(line.split()[1])


def partitions():
    return sum(1 for d in os.listdir(data) if d.startswith("p-"))


opened = partitions()
before = pss_kib()
for i in range(1, n + 1):
    c = imaplib.IMAP4("127.0.0.1", port)
    c.login(f"user{i}", password)
    c.select("INBOX")
    c.logout()
time.sleep(1)
after = pss_kib()
opened = partitions() - opened
print(f"users={n} partitions_opened={opened} pss_before={before}KiB pss_after={after}KiB "
      f"growth={after - before}KiB per_partition={(after - before) / max(opened, 1):.1f}KiB")
