#!/usr/bin/env python3
# Usage: benches/trigram_estimate.py DATA_DIR NEEDLE... (a data dir imported by a ringmail
# that stores searchable texts, e.g. KEEP=1 benches/search_vs_dovecot.sh then WORK/ringmail).
# What a trigram prefilter would save for BODY on the stored searchable texts: per needle,
# the share of messages (and of text bytes) left to scan exactly, and the index's size.
import glob, struct, sys
MAGIC = int.from_bytes(b"RMtx", "little")
texts = []  # per message: list of body haystacks
for seg in sorted(glob.glob(sys.argv[1] + "/p-*/seg-*.log")):
    b = open(seg, "rb").read()
    pos = 32
    while pos + 9 <= len(b):
        ln, crc, kind = struct.unpack_from("<IIB", b, pos)
        p = b[pos + 9: pos + 9 + ln]
        pos += 9 + ln
        if kind != 1:
            continue
        r = 0
        ul = struct.unpack_from("<H", p, r)[0]; r += 2 + ul
        r += 8 + 4 + 8 + 1
        nk = struct.unpack_from("<H", p, r)[0]; r += 2
        for _ in range(nk):
            kl = struct.unpack_from("<H", p, r)[0]; r += 2 + kl
        r += 8 + 8 + 8
        bl, ml = struct.unpack_from("<II", p, r); r += 8 + bl + ml
        hs = []
        if r + 8 <= len(p) and struct.unpack_from("<I", p, r)[0] == MAGIC:
            tl = struct.unpack_from("<I", p, r + 4)[0]
            t = p[r + 8: r + 8 + tl]
            q = 1
            while q < len(t):
                k = t[q]; l = struct.unpack_from("<I", t, q + 1)[0]
                if k == 1:
                    hs.append(t[q + 5: q + 5 + l].lower())
                q += 5 + l
        texts.append(hs)
n = len(texts)
total = sum(len(h) for hs in texts for h in hs)
sets = []
grams = 0
for hs in texts:
    s = set()
    for h in hs:
        s.update(h[i:i + 3] for i in range(len(h) - 2))
    sets.append(s); grams += len(s)
print(f"messages {n}, body text {total/1e6:.1f} MB, distinct trigrams per message {grams/n:.0f}, "
      f"postings {grams} (index at 2-4 bytes per posting: {grams*2/1e6:.1f}-{grams*4/1e6:.1f} MB)")
for needle in sys.argv[2:]:
    nb = needle.lower().encode()
    need = {nb[i:i + 3] for i in range(len(nb) - 2)}
    cand = [i for i, s in enumerate(sets) if need <= s]
    cbytes = sum(len(h) for i in cand for h in texts[i])
    hits = sum(1 for i in cand if any(nb in h for h in texts[i]))
    print(f"{needle!r}: candidates {len(cand)} of {n} ({len(cand)/n:.2%}), bytes to scan {cbytes/total:.2%}, true hits {hits}")
