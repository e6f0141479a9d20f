#!/usr/bin/env bash
# The whole test suite, on a fresh machine or a developer's:
#
#   scripts/test.sh [extra cargo-nextest args, e.g. a test filter]
#
# 1. scripts/setup.sh: installs what the tests need and starts PostgreSQL (skipped when
#    the caller already ran it and exported PROCUHELP_SETUP_DONE=1, as .ci/run does).
# 2. cargo nextest run (all workspace tests) and cargo test --doc (nextest does not run
#    doctests).
# 3. The security-header grade: starts target/debug/procuhelp-server with a fresh data
#    dir and requires an A+ from Mozilla's HTTP Observatory scanner
#    (scripts/httpobs-scan.sh).
#
# Every phase runs even when an earlier one failed; the script exits non-zero if any
# failed. Environment:
#   PROCUHELP_TEST_ADMIN_URL  superuser URL the tests use to create scratch databases
#                             and roles (default postgres://postgres@127.0.0.1:5432/postgres)
#   PROCUHELP_REQUIRE_PEERS=1 tests that need a peer fail instead of skipping (set
#                             automatically under CI)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROCUHELP_ROOT"

if [[ "${PROCUHELP_SETUP_DONE:-}" != 1 ]]; then
    "$PROCUHELP_ROOT/scripts/setup.sh"
fi

export PROCUHELP_TEST_ADMIN_URL=${PROCUHELP_TEST_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
if is_ci; then
    export PROCUHELP_REQUIRE_PEERS=1
fi

# Fail loudly, up front, if the database the tests need is not usable.
if ! psql -X -q -w -d "$PROCUHELP_TEST_ADMIN_URL" -c 'select 1' >/dev/null; then
    die "cannot connect to PostgreSQL as $PROCUHELP_TEST_ADMIN_URL.
The tests need a superuser connection (trust auth) to create scratch databases and roles.
Run scripts/setup.sh, or set PROCUHELP_TEST_ADMIN_URL."
fi

# ---- procuhelp-server for the header grade -----------------------------------------
# Starts the server on two free loopback ports with a throwaway data dir (the server
# writes its self-signed certificate to <data-dir>/tls/cert.pem), waits for /healthz,
# grades it, and stops it again. Only the PID started here is ever killed.
SERVER_PID=
SERVER_DATA_DIR=

stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        local _
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
    if [[ -n "$SERVER_DATA_DIR" ]]; then
        rm -rf "$SERVER_DATA_DIR"
        SERVER_DATA_DIR=
    fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

run_server_header_scan() {
    local target_dir bin http_port https_port log
    target_dir=$(cargo_target_dir)
    bin="$target_dir/debug/procuhelp-server"

    # The same build nextest just made (a no-op after it): cargo builds the server binary
    # for the server's integration tests, with the test feature set. A separate
    # `cargo build --bin` would resolve features without dev-dependencies and rebuild a
    # second copy of many dependencies (minutes, and disk CI may not have).
    cargo test --workspace --locked --no-run || return 1
    [[ -x "$bin" ]] || { echo "procuhelp-server not found at $bin" >&2; return 1; }

    SERVER_DATA_DIR=$(mktemp -d)
    # When this runs as root, the embedded PostgreSQL runs as the `postgres` OS user and
    # must be able to search its way to <data-dir>; the server makes <data-dir> itself
    # 0710 and group-owned by that user, but cannot open up mktemp's 0700 parent.
    chmod 711 "$SERVER_DATA_DIR"
    log="$SERVER_DATA_DIR/server.log"
    https_port=$(free_port)
    http_port=$(free_port)
    while [[ "$http_port" == "$https_port" ]]; do http_port=$(free_port); done

    echo "starting $bin (https 127.0.0.1:$https_port, http redirect 127.0.0.1:$http_port)"
    "$bin" serve --data-dir "$SERVER_DATA_DIR/data" \
        --https-addr "127.0.0.1:$https_port" \
        --http-redirect-addr "127.0.0.1:$http_port" >"$log" 2>&1 &
    SERVER_PID=$!

    local _ ready=
    for _ in $(seq 1 300); do # up to 30 s
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "procuhelp-server exited during start-up; its log:" >&2
            cat "$log" >&2
            SERVER_PID=
            return 1
        fi
        if curl -ksf -o /dev/null "https://127.0.0.1:$https_port/healthz"; then
            ready=1
            break
        fi
        sleep 0.1
    done
    if [[ -z "$ready" ]]; then
        echo "procuhelp-server did not answer https://127.0.0.1:$https_port/healthz within 30 s; its log:" >&2
        cat "$log" >&2
        return 1
    fi

    local rc=0
    "$PROCUHELP_ROOT/scripts/httpobs-scan.sh" "$http_port" "$https_port" \
        "$SERVER_DATA_DIR/data/tls/cert.pem" || rc=$?
    if ((rc != 0)); then
        echo "---- procuhelp-server log ----" >&2
        cat "$log" >&2
    fi
    stop_server
    return "$rc"
}

# ---- run everything, report at the end ----------------------------------------------
failed=()

phase() {
    local name=$1
    shift
    local start rc=0
    start=$(date +%s)
    printf '\n==> %s\n' "$name"
    "$@" || rc=$?
    printf '<== %s: %ss (exit %s)\n' "$name" "$(($(date +%s) - start))" "$rc"
    ((rc == 0)) || failed+=("$name")
}

# ---- OpenBao (dev server on loopback) for the vault tests ---------------------------
# Started here and stopped on exit (only the PID scripts/openbao.sh started). A missing
# `bao` or an unhealthy server fails the run: the vault tests never skip.
OPENBAO_STARTED=
stop_openbao() {
    if [[ -n "$OPENBAO_STARTED" ]]; then
        "$PROCUHELP_ROOT/scripts/openbao.sh" stop >/dev/null 2>&1 || true
    fi
}
# ---- SSO peers (OIDC provider, SAML IdP, SCIM checker) for the SSO tests ------------
# Started here (the tests would start them too: sso-peers.sh start is idempotent) so a
# missing peer fails the run up front; stopped on exit.
SSO_PEERS_STARTED=
stop_sso_peers() {
    if [[ -n "$SSO_PEERS_STARTED" ]]; then
        "$PROCUHELP_ROOT/scripts/sso-peers.sh" stop >/dev/null 2>&1 || true
    fi
}
trap 'stop_server; stop_openbao; stop_sso_peers' EXIT
export PROCUHELP_OPENBAO_DIR=${PROCUHELP_OPENBAO_DIR:-$(mktemp -d)/openbao}
"$PROCUHELP_ROOT/scripts/openbao.sh" start >&2 || die "OpenBao did not start (see above); the vault tests need it"
OPENBAO_STARTED=1
eval "$("$PROCUHELP_ROOT/scripts/openbao.sh" env)"
"$PROCUHELP_ROOT/scripts/sso-peers.sh" start >&2 || die "the SSO peers did not start (see above); the SSO tests need them"
SSO_PEERS_STARTED=1
"$PROCUHELP_ROOT/scripts/sso-peers.sh" status >&2 || die "the SSO peers are not usable (see above)"

# The security overview as one document (scripts/overview.sh, docs/overview/): pandoc builds
# it and the check requires every section, every link inside it and every test the threat
# model names (a few seconds; the generated sections are compared with the code by nextest).
phase "security overview" "$PROCUHELP_ROOT/scripts/overview.sh" --check
phase "nextest" cargo nextest run --workspace --locked --no-fail-fast "$@"
phase "doctests" cargo test --workspace --doc --locked
# Not via `phase`'s `||`: bash would ignore `set -e` inside the function. It returns
# its status explicitly at every step instead.
scan_rc=0
start=$(date +%s)
printf '\n==> httpobs scan of procuhelp-server\n'
run_server_header_scan || scan_rc=$?
printf '<== httpobs scan: %ss (exit %s)\n' "$(($(date +%s) - start))" "$scan_rc"
((scan_rc == 0)) || failed+=("httpobs scan")
# The edge (deploy/edge/: nginx + ModSecurity v3 + OWASP CRS) in front of the debug binary
# built above: attack payloads blocked, every legitimate flow passes (docs/edge.md).
phase "edge WAF" "$PROCUHELP_ROOT/scripts/edge-test.sh"
# Hostile load, short (scripts/load.sh --quick): login storm, slowloris, PostgreSQL
# restart mid-load, two server processes on one database; the debug binary built above.
phase "hostile load (quick)" "$PROCUHELP_ROOT/scripts/load.sh" --quick
# The price of the SDK per request as a smoke test (scripts/bench-request.sh --quick, about
# 30 s after building the bench on the dev profile): peer, one-round-trip read and Authed
# under wrk, every answer a 200. Numbers are not judged here (BENCHMARKS.md: release run).
phase "request bench (quick smoke)" "$PROCUHELP_ROOT/scripts/bench-request.sh" --quick

if ((${#failed[@]})); then
    printf '\ntest.sh: FAILED: %s\n' "${failed[*]}" >&2
    exit 1
fi
printf '\ntest.sh: all phases passed\n'
