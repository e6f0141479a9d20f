#!/usr/bin/env bash
# The price of the SDK per request (BENCHMARKS.md "The price of the SDK per request"):
# benches/benches/request.rs serves the same 50-row list read three ways in one process —
# the plain axum + sqlx peer, the SDK's one-round-trip read (`procuhelp_axum::read`) and
# the transactional path (`procuhelp_axum::Authed`) — and wrk drives each over loopback
# at 64 connections, same run, same data. Bounded in time: warm-up + seconds per side.
#
#   scripts/bench-request.sh                   release (bench profile): 3 s warm-up and
#                                              10 s per side, one round (about 45 s after
#                                              the build)
#   scripts/bench-request.sh --rounds 3        three interleaved rounds, medians reported
#   scripts/bench-request.sh --perf DIR        perf record -a during each measured side
#                                              (DIR/<side>-<round>.{comm,dso,sym})
#   scripts/bench-request.sh --quick           2 s per side on the dev profile (a smoke
#                                              test of the harness, numbers meaningless)
#
# Other options go to the bench: --seconds N --warmup N --connections N --threads N
# --pool N --no-ping --sides peer,sdk,sdk_tx. Needs wrk (scripts/setup.sh) and the
# PostgreSQL of PROCUHELP_TEST_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROCUHELP_ROOT"

command -v wrk >/dev/null || die "wrk is missing (scripts/setup.sh installs it: apt-get install wrk)"
export PROCUHELP_TEST_ADMIN_URL=${PROCUHELP_TEST_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}

profile=()
args=()
for arg in "$@"; do
    if [[ "$arg" == "--quick" ]]; then
        profile=(--profile dev)
        args+=(--seconds 2 --warmup 1)
    else
        args+=("$arg")
    fi
done
# The bench bounds its own run (warm-up + seconds per side per round); the timeout only
# guards against a hung load generator or database.
timeout 1800 cargo bench --locked "${profile[@]}" -p procuhelp-benches --bench request -- "${args[@]}"
