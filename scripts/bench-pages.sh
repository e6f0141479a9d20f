#!/usr/bin/env bash
# Time to first byte of the heaviest pages (issue #15, BENCHMARKS.md "Time to first byte
# of the heaviest pages"): benches/benches/pages.rs seeds an organisation with 10,000
# suppliers and 100,000 audit events, serves the example server's real router and a plain
# axum + sqlx + maud peer in one process over loopback HTTP, and times the first byte of
# each page (first, deep and filtered pages) from one client, the two sides alternating.
#
#   scripts/bench-pages.sh                     release (bench profile): 1,000 requests per
#                                              case and side, then 8 connections for 3 s per
#                                              case and side (about 3 min after the build,
#                                              seeding included)
#   scripts/bench-pages.sh --quick             dev profile, 50 requests, 1 s concurrent (a
#                                              smoke test of the harness, numbers meaningless)
#
# Other options go to the bench: --requests N --warmup N --concurrency C (0: none)
# --seconds S --explain (plans of the pages' queries as the runtime role). Needs the
# PostgreSQL of PROCUHELP_TEST_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROCUHELP_ROOT"

export PROCUHELP_TEST_ADMIN_URL=${PROCUHELP_TEST_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}

profile=()
args=()
for arg in "$@"; do
    if [[ "$arg" == "--quick" ]]; then
        profile=(--profile dev)
        args+=(--requests 50 --warmup 5 --seconds 1)
    else
        args+=("$arg")
    fi
done
# The bench bounds its own run (requests per case, seconds per concurrent case); the
# timeout only guards against a hung server or database.
timeout 1800 cargo bench --locked "${profile[@]}" -p procuhelp-benches --bench pages -- "${args[@]}"
