# Shared by the cluster benchmarks (sourced, not run): benches/lib.sh, the tools they need,
# and the release binaries (built when missing).
# Expects ROOT, RINGMAIL and LOAD to be set.

# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

require_cluster_tools() {
    command -v etcd >/dev/null || { say "etcd is needed (apt-get install -y etcd-server)"; exit 2; }
    command -v jq >/dev/null || { say "jq is needed (apt-get install -y jq)"; exit 2; }
    if [[ ! -x "$RINGMAIL" || ! -x "$LOAD" ]]; then
        say "building ringmail and ringmail-load (release)"
        (cd "$ROOT" && cargo build --release -p ringmail -p ringmail-load)
    fi
}
