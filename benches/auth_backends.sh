#!/usr/bin/env bash
# Logins/s through each auth backend, side by side in one run (issue 18's targets):
#
#   passwd   ringmail, backends = ["passwd-file"]            LOGIN, SHA512-CRYPT hashes
#   ldap     ringmail, backends = ["ldap"], auth cache on    LOGIN, verified by bind
#   ldapcold ringmail, backends = ["ldap"], cache_ttl_secs = 0: every login searches and binds
#   oauth    ringmail, backends = ["oauth"], jwks_file       AUTHENTICATE OAUTHBEARER
#   dovecot  Debian's Dovecot, passwd-file (the same hashes), auth cache on   LOGIN
#
# One slapd (user1..userN with {SSHA} passwords, indexed uid) serves both LDAP servers. Every
# server listens on free loopback ports and is stopped by its pid at the end. The `logins`
# profile of ringmail-load runs against each in turn, ROUNDS times, the order rotated every
# round so that drift on the machine favours none; the tokens are signed before each run
# (not in its timed part). Printed per round and for the sums: logins/s, the ratios the issue
# asks for (ldap / passwd >= 0.90; oauth / dovecot >= 5), and for the LDAP servers the CPU
# that slapd and ringmail spent per login, which says who limits the cold-cache rate.
#
#   benches/auth_backends.sh
#   ROUNDS=5 DURATION=10 CLIENTS=20 benches/auth_backends.sh
#
# Environment: ROUNDS (3), DURATION (seconds measured per run, 5), WARMUP (2; the first
# logins of every user, which fill the auth caches, fall in it), CLIENTS (20), USERS (100),
# OAUTH_KEY (rsa: RS256, the default, what Google, Microsoft and Keycloak sign with; ec: ES256), CARGO_TARGET_DIR,
# RINGMAIL_BIN / LOAD_BIN (use these binaries instead of building), KEEP=1 to keep the work
# dir. Needs root (Dovecot), slapd and ldap-utils, dovecot-imapd, openssl, python3. See
# docs/auth.md, "Performance".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-2}"
CLIENTS="${CLIENTS:-20}"
USERS="${USERS:-100}"
OAUTH_KEY="${OAUTH_KEY:-rsa}"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
KINDS=(passwd ldap ldapcold oauth dovecot)
ISSUER="https://id.bench.example"
AUDIENCE="imap.bench.example"

say() { printf '== %s\n' "$*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

for tool in /usr/sbin/slapd /usr/sbin/slapadd /usr/sbin/slappasswd /usr/sbin/dovecot openssl python3; do
    command -v "$tool" >/dev/null 2>&1 ||
        { say "$tool is needed (apt-get install -y slapd ldap-utils dovecot-imapd openssl python3)"; exit 2; }
done

RINGMAIL="${RINGMAIL_BIN:-$TARGET_DIR/release/ringmail}"
LOAD="${LOAD_BIN:-$TARGET_DIR/release/ringmail-load}"
if [[ -z "${RINGMAIL_BIN:-}" || -z "${LOAD_BIN:-}" ]]; then
    say "building ringmail and ringmail-load (release)"
    (cd "$ROOT" && cargo build --release -p ringmail -p ringmail-load --bins)
fi

WORK="$(mktemp -d /tmp/ringmail-auth-bench.XXXXXX)"
chmod 755 "$WORK"
declare -A PID=() PORT=()
# Stops one process we started: SIGTERM, at most 10 s for it to exit, then SIGKILL.
stop() {
    local pid=$1
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        # Gone, or a zombie waiting for `wait` below.
        [[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" =~ ^(Z|)$ ]] && break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    for kind in "${!PID[@]}"; do
        stop "${PID[$kind]}"
    done
    if [[ "${KEEP:-0}" == 1 ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

wait_port() { # port log name
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    cat "$2" >&2 || true
    say "$3 did not open port $1"
    return 1
}

# --- The users: password pw-N, hashed. SHA512-CRYPT (5000 rounds) in the passwd-files of
# ringmail and Dovecot; {SSHA} in the directory, as slappasswd makes it by default.
say "hashing $USERS passwords"
for i in $(seq 1 "$USERS"); do
    echo "user$i:{SHA512-CRYPT}$(openssl passwd -6 "pw-$i")"
done > "$WORK/users"

# --- slapd: plain ldap:// on loopback, mdb with uid indexed, the search account may read.
SLAPD_DIR="$WORK/slapd"
mkdir -p "$SLAPD_DIR/db"
PORT[slapd]="$(free_port)"
cat > "$SLAPD_DIR/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $SLAPD_DIR/slapd.pid
database mdb
maxsize 104857600
suffix "dc=bench,dc=example"
rootdn "cn=admin,dc=bench,dc=example"
directory $SLAPD_DIR/db
index objectClass eq
index uid eq
access to attrs=userPassword by dn.exact="cn=imap,dc=bench,dc=example" read by anonymous auth by * none
access to * by * read
EOF
{
    printf 'dn: dc=bench,dc=example\nobjectClass: dcObject\nobjectClass: organization\ndc: bench\no: Bench\n\n'
    printf 'dn: ou=people,dc=bench,dc=example\nobjectClass: organizationalUnit\nou: people\n\n'
    printf 'dn: cn=imap,dc=bench,dc=example\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: imap\nuserPassword: imap-search-pw\n\n'
    for i in $(seq 1 "$USERS"); do
        printf 'dn: uid=user%d,ou=people,dc=bench,dc=example\nobjectClass: inetOrgPerson\nuid: user%d\ncn: user%d\nsn: user%d\nuserPassword: %s\n\n' \
            "$i" "$i" "$i" "$i" "$(/usr/sbin/slappasswd -s "pw-$i")"
    done
} > "$SLAPD_DIR/data.ldif"
/usr/sbin/slapadd -f "$SLAPD_DIR/slapd.conf" -l "$SLAPD_DIR/data.ldif" 2> "$SLAPD_DIR/slapadd.log" ||
    { cat "$SLAPD_DIR/slapadd.log" >&2; exit 1; }
echo "imap-search-pw" > "$WORK/ldap.secret"
chmod 600 "$WORK/ldap.secret"
say "starting slapd on 127.0.0.1:${PORT[slapd]}"
# -d 0: in the foreground, so $! is slapd itself.
/usr/sbin/slapd -f "$SLAPD_DIR/slapd.conf" -h "ldap://127.0.0.1:${PORT[slapd]}/" -d 0 \
    < /dev/null > "$SLAPD_DIR/slapd.log" 2>&1 &
PID[slapd]=$!
wait_port "${PORT[slapd]}" "$SLAPD_DIR/slapd.log" slapd

# --- The token signing key and its public JWK Set for the oauth server.
if [[ "$OAUTH_KEY" == rsa ]]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/oauth.pem" 2>/dev/null
else
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/oauth.pem" 2>/dev/null
fi
OAUTH_ARGS=(--auth oauthbearer --oauth-key "$WORK/oauth.pem" --oauth-issuer "$ISSUER"
    --oauth-audience "$AUDIENCE")
"$LOAD" logins "${OAUTH_ARGS[@]}" --oauth-jwks-out "$WORK/jwks.json"

# --- The four ringmail servers: alike but for [auth]; no per-address connection cap (every
# client is 127.0.0.1), no LMTP, ManageSieve or metrics listener.
backends_of() {
    case "$1" in
        passwd) printf '[auth]\nbackends = ["passwd-file"]\n' ;;
        ldap | ldapcold)
            printf '[auth]\nbackends = ["ldap"]\n'
            [[ "$1" == ldapcold ]] && printf 'cache_ttl_secs = 0\n'
            printf '\n[ldap]\nuri = "ldap://127.0.0.1:%s"\nbase = "ou=people,dc=bench,dc=example"\n' "${PORT[slapd]}"
            printf 'bind_dn = "cn=imap,dc=bench,dc=example"\nbind_password_file = "%s"\n' "$WORK/ldap.secret"
            ;;
        oauth)
            printf '[auth]\nbackends = ["oauth"]\n\n[oauth]\nissuer = "%s"\naudience = "%s"\njwks_file = "%s"\n' \
                "$ISSUER" "$AUDIENCE" "$WORK/jwks.json"
            ;;
    esac
}
for kind in passwd ldap ldapcold oauth; do
    data="$WORK/$kind"
    mkdir -p "$data"
    chmod 700 "$data"
    cp "$WORK/users" "$data/users"
    PORT[$kind]="$(free_port)"
    cat > "$data/ringmail.toml" <<EOF
[imap]
listen = ["127.0.0.1:${PORT[$kind]}"]
listen_tls = []

[lmtp]
listen = []

[limits]
max_sessions_per_user_ip = 100000

[managesieve]
listen = []

[metrics]
listen = []

$(backends_of "$kind")
EOF
    "$RINGMAIL" serve --data "$data" > "$WORK/$kind.log" 2>&1 &
    PID[$kind]=$!
    wait_port "${PORT[$kind]}" "$WORK/$kind.log" "ringmail ($kind)"
done

# --- Dovecot, as loadtest/bench-vs-dovecot.sh starts it (loadtest/dovecot.sh: long-lived
# login and imap processes, its auth cache on), IMAP only, the same hashes in its passwd-file.
PORT[dovecot]="$(free_port)"
# shellcheck source=loadtest/dovecot.sh
source "$ROOT/loadtest/dovecot.sh"
start_dovecot "$WORK/dovecot" "$WORK/users" "${PORT[dovecot]}"
PID[dovecot]=$DOVECOT_PID
wait_port "${PORT[dovecot]}" "$WORK/dovecot/dovecot.log" Dovecot

# CPU ticks (user + system, all threads) of one process.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

for round in $(seq 1 "$ROUNDS"); do
    # Rotate the order by one every round.
    order=("${KINDS[@]:$(( (round - 1) % ${#KINDS[@]} ))}" "${KINDS[@]:0:$(( (round - 1) % ${#KINDS[@]} ))}")
    for kind in "${order[@]}"; do
        say "round $round: logins against $kind ($CLIENTS clients, ${DURATION}s + ${WARMUP}s warm-up)"
        auth=()
        [[ "$kind" == oauth ]] && auth=("${OAUTH_ARGS[@]}")
        password=(--password "pw-%d")
        cmd=("$LOAD" logins --port "${PORT[$kind]}" --clients "$CLIENTS" --users "$USERS"
            "${password[@]}" "${auth[@]}" --duration "$DURATION" --warmup "$WARMUP"
            --pid "${PID[$kind]}" --quiet --json "$WORK/$kind-$round.json")
        echo "+ ${cmd[*]}" >&2
        slapd_before="$(ticks "${PID[slapd]}")"
        server_before="$(ticks "${PID[$kind]}")"
        started="$(date +%s.%N)"
        # A run with errors exits 1; its summary still counts, and the errors are shown.
        "${cmd[@]}" || true
        echo "$(date +%s.%N) $started $(ticks "${PID[slapd]}") $slapd_before $(ticks "${PID[$kind]}") $server_before" \
            > "$WORK/$kind-$round.cpu"
        python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print("  %d errors" % j["error_count"], j["errors"] if j["error_count"] else "")' "$WORK/$kind-$round.json" >&2
    done
done

echo
python3 - "$WORK" "$ROUNDS" "$(getconf CLK_TCK)" "${KINDS[@]}" <<'PY'
import json, sys
work, rounds, hz, kinds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
def logins(kind, r):
    """logins/s, p50 ms, p99 ms, server CPU ms per login (the steadier figure here)."""
    j = json.load(open(f"{work}/{kind}-{r}.json"))
    c = next((c for c in j["commands"] if c["command"] == "login"), {"count": 0, "per_second": 0, "p50_ms": 0, "p99_ms": 0})
    cpu_ms = (j.get("server") or {}).get("cpu_seconds", 0) * 1000
    return c["per_second"], c["p50_ms"], c["p99_ms"], cpu_ms / c["count"] if c["count"] else 0
def cores(kind, r):
    """(slapd, server) cores busy over the whole run, warm-up included, and logins in it."""
    end, start, s1, s0, m1, m0 = map(float, open(f"{work}/{kind}-{r}.cpu").read().split())
    wall = end - start
    return (s1 - s0) / hz / wall, (m1 - m0) / hz / wall
print(f"logins/s ({kinds and ', '.join(kinds)}), login p50/p99 ms")
print(f"{'round':<6}" + "".join(f"{k:>10}" for k in kinds) + f"{'ldap/pw':>9}{'cold/pw':>9}{'oauth/dc':>9}")
tot = {k: 0.0 for k in kinds}
PAIRS = (("ldap", "passwd"), ("ldapcold", "passwd"), ("oauth", "dovecot"))
per_round = {pair: [] for pair in PAIRS}
for r in range(1, rounds + 1):
    per = {k: logins(k, r)[0] for k in kinds}
    for k in kinds:
        tot[k] += per[k]
    for a, b in PAIRS:
        per_round[(a, b)].append(per[a] / per[b] if per[b] else 0)
    print(f"{r:<6}" + "".join(f"{per[k]:10.1f}" for k in kinds)
          + "".join(f"{per_round[p][-1]:9.3f}" for p in PAIRS))
ratio = lambda a, b: tot[a] / tot[b] if tot[b] else 0
print(f"{'all':<6}" + "".join(f"{tot[k] / rounds:10.1f}" for k in kinds)
      + "".join(f"{ratio(*p):9.3f}" for p in PAIRS))
# The median of the rounds' ratios: one round disturbed by another load on the machine
# moves the sums, not the median.
median = {p: sorted(v)[len(v) // 2] if len(v) % 2 else sum(sorted(v)[len(v) // 2 - 1:len(v) // 2 + 1]) / 2
          for p, v in per_round.items()}
print(f"{'median':<6}" + " " * 10 * len(kinds) + "".join(f"{median[p]:9.3f}" for p in PAIRS))
print()
cpu = {}
for k in kinds:
    lat = [logins(k, r) for r in range(1, rounds + 1)]
    cpu[k] = sum(l[3] for l in lat) / rounds
    print(f"  {k:<9} login p50 {sum(l[1] for l in lat) / rounds:6.2f} ms, p99 {sum(l[2] for l in lat) / rounds:6.2f} ms, "
          f"server CPU {cpu[k]:.3f} ms per login (connect, LOGIN or AUTHENTICATE, LOGOUT)")
print()
cpu_ratio = lambda a, b: cpu[a] / cpu[b] if cpu[b] else 0
print(f"LDAP warm cache / passwd-file: {ratio('ldap', 'passwd'):.3f} logins/s, median of rounds "
      f"{median[('ldap', 'passwd')]:.3f} (target >= 0.90); server CPU per login passwd / ldap "
      f"{cpu_ratio('passwd', 'ldap'):.3f}")
print(f"OAUTHBEARER (cached JWKS) / Dovecot LOGIN: {ratio('oauth', 'dovecot'):.2f} logins/s, median of rounds "
      f"{median[('oauth', 'dovecot')]:.2f} (target >= 5); server CPU per login dovecot / oauth "
      f"{cpu_ratio('dovecot', 'oauth'):.2f}")
for k in ("ldap", "ldapcold"):
    s = [cores(k, r) for r in range(1, rounds + 1)]
    slapd, ours = sum(x[0] for x in s) / rounds, sum(x[1] for x in s) / rounds
    per_login = tot[k] / rounds
    print(f"{k}: slapd {slapd:.2f} cores, ringmail {ours:.2f} cores busy; CPU ms per login: "
          f"slapd {slapd * 1000 / per_login if per_login else 0:.3f}, ringmail {ours * 1000 / per_login if per_login else 0:.3f}")
PY
