# Shared by the cluster benchmarks (sourced, not run): messages, free loopback ports, bounded
# waits for a port, the tools they need, and the release binaries (built when missing).
# Expects ROOT, RINGMAIL and LOAD to be set.

say() { printf '== %s\n' "$*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # port name: up to 10 s
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    say "$2 did not open port $1"; return 1
}

require_cluster_tools() {
    command -v etcd >/dev/null || { say "etcd is needed (apt-get install -y etcd-server)"; exit 2; }
    command -v jq >/dev/null || { say "jq is needed (apt-get install -y jq)"; exit 2; }
    if [[ ! -x "$RINGMAIL" || ! -x "$LOAD" ]]; then
        say "building ringmail and ringmail-load (release)"
        (cd "$ROOT" && cargo build --release -p ringmail -p ringmail-load)
    fi
}
