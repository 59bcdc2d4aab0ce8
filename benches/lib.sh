# Shared by the benchmark scripts (sourced, not run): log lines, free loopback ports and
# bounded waits for a port.

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
