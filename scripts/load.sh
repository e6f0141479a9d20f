#!/usr/bin/env bash
# Hostile load against real procuhelp-server processes, loopback only, bounded in time.
#
#   scripts/load.sh            the documented bench (BENCHMARKS.md "Under attack"): release
#                              build, 500-connection login storm for 30 s, 500 slowloris
#                              connections for 60 s, a PostgreSQL restart mid-load, two
#                              server processes on one database (about 3 minutes plus the
#                              release build)
#   scripts/load.sh --quick    the same checks, smaller and shorter, on the debug build the
#                              test suite already made (part of scripts/test.sh)
#
# Set-up: a fresh data directory, `seed-demo` (two organisations with a user of each role),
# server 1 on the embedded database, server 2 on the same database through the embedded
# cluster's socket (`--database-url-secret`, the runtime role) and the same vault. Then
# scripts/load/hostile.py runs the scenarios; after the servers stop, the audit trail of
# organisation A is verified and every acknowledged creation must be in it.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROCUHELP_ROOT"

mode=full
if [[ "${1:-}" == "--quick" ]]; then
    mode=quick
fi

command -v wrk >/dev/null || die "wrk is missing (scripts/setup.sh installs it: apt-get install wrk)"
command -v python3 >/dev/null || die "python3 is missing"

target_dir=$(cargo_target_dir)
if [[ $mode == full ]]; then
    cargo build --release --locked -p procuhelp-server
    bin="$target_dir/release/procuhelp-server"
    hostile_args=()
else
    # The binary the test build made (scripts/test.sh builds it before calling this).
    bin="$target_dir/debug/procuhelp-server"
    # Smaller and shorter; the debug build is slower, so the latency bound is looser.
    hostile_args=(--storm-conns 200 --storm-seconds 8 --slow-conns 200 --slow-seconds 15
        --victim-p99-ms 250 --rss-bound-mib 768)
fi
[[ -x "$bin" ]] || die "procuhelp-server not found at $bin"

work=$(mktemp -d /tmp/procuhelp-load.XXXXXX)
chmod 711 "$work"
data="$work/data"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    # The embedded cluster outlives a killed server: stop it before removing its files.
    if [[ -f "$data/pg/cluster/postmaster.pid" ]]; then
        pg_ctl_as_owner stop -m immediate >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
pg_ctl_as_owner() {
    # The embedded cluster runs as the `postgres` OS user when we are root.
    if [[ $(id -u) == 0 ]]; then
        su postgres -s /bin/sh -c "$pg_bin/pg_ctl -D '$data/pg/cluster' $*"
    else
        "$pg_bin/pg_ctl" -D "$data/pg/cluster" "$@"
    fi
}

# The command line that runs pg_ctl on the embedded cluster (for hostile.py's restart).
pg_ctl_command() {
    local cmd="$pg_bin/pg_ctl -D $data/pg/cluster $*"
    if [[ $(id -u) == 0 ]]; then
        printf 'su postgres -s /bin/sh -c %q' "$cmd"
    else
        printf '%s' "$cmd"
    fi
}

"$bin" seed-demo --data-dir "$data" >"$work/demo.txt"

port1=$(free_port)
port2=$(free_port)
while [[ "$port2" == "$port1" ]]; do port2=$(free_port); done

"$bin" serve --data-dir "$data" --https-addr "127.0.0.1:$port1" >"$work/server1.log" 2>&1 &
pids+=($!)
pid1=$!
wait_healthy() {
    local port=$1 pid=$2 log=$3 _
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "procuhelp-server exited during start-up"; }
        curl -ksf -o /dev/null "https://127.0.0.1:$port/healthz" && return 0
        sleep 0.1
    done
    cat "$log" >&2
    die "procuhelp-server did not become healthy on port $port"
}
wait_healthy "$port1" "$pid1" "$work/server1.log"

# Server 2: the same database (embedded cluster's socket, runtime role) and vault.
url="postgres://procuhelp_app@localhost/procuhelp?host=$data/pg/run&port=5432"
printf '%s' "$url" >"$work/runtime.url"
chmod 600 "$work/runtime.url"
"$bin" secrets put db/load-runtime-url --from-file "$work/runtime.url" --data-dir "$data" >/dev/null
rm -f "$work/runtime.url"
"$bin" serve --data-dir "$data" --database-url-secret db/load-runtime-url \
    --https-addr "127.0.0.1:$port2" >"$work/server2.log" 2>&1 &
pids+=($!)
pid2=$!
wait_healthy "$port2" "$pid2" "$work/server2.log"

rc=0
python3 scripts/load/hostile.py --port "$port1" --port2 "$port2" --pid "$pid1" \
    --demo "$work/demo.txt" --acked-file "$work/acked" \
    --pg-stop "$(pg_ctl_command stop -m fast -w)" \
    --pg-start "$(pg_ctl_command start -w -t 60 -l "$data/pg/restart.log")" \
    "${hostile_args[@]}" | tee "$work/results.json" || rc=$?

# Stop both servers (server 1 stops the embedded cluster on its way out), then check the
# audit trail: intact, and holding every acknowledged creation.
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
pids=()
org_a=$(sed -n 's/^organisation //p' "$work/demo.txt" | head -1)
# The verifier pins the deployment's checkpoint key (printed by `audit public-key`).
"$bin" audit public-key --data-dir "$data" >"$work/audit-keys.txt"
if ! "$bin" audit verify --org "$org_a" --trusted-key "$work/audit-keys.txt" --data-dir "$data" >"$work/verify.txt" 2>&1; then
    cat "$work/verify.txt" >&2
    echo "load: CHECK FAILED: the audit chain of organisation A does not verify" >&2
    rc=1
fi
"$bin" audit export --org "$org_a" --out "$work/export.jsonl" --data-dir "$data" >/dev/null
created=$(grep -c '"supplier.invited"' "$work/export.jsonl" || true)
acked=$(cat "$work/acked" 2>/dev/null || echo missing)
# Two-process scenario: 100 creations; restart scenario: $acked more.
if [[ "$acked" == missing ]] || ((created < acked + 100)); then
    echo "load: CHECK FAILED: $created supplier.invited events in the trail, $acked (+100) acknowledged" >&2
    rc=1
else
    echo "load: audit trail verified; $created supplier.invited events >= $acked + 100 acknowledged"
fi
if ((rc != 0)); then
    echo "---- server 1 log (tail) ----" >&2
    tail -50 "$work/server1.log" >&2
    echo "---- server 2 log (tail) ----" >&2
    tail -20 "$work/server2.log" >&2
fi
exit "$rc"
