#!/usr/bin/env bash
# Real single-sign-on peers for the tests (issue 6): an OpenID Connect provider shaped like
# Microsoft Entra ID, a SAML 2.0 IdP CLI and the SCIM conformance checker.
#
#   scripts/sso-peers.sh start    install what is missing, start the OIDC provider or reuse
#                                 the one already running (idempotent)
#   scripts/sso-peers.sh stop     stop it (only the PID this script started)
#   scripts/sso-peers.sh env      print `export ...` lines for the tests:
#                                   eval "$(scripts/sso-peers.sh env)"
#   scripts/sso-peers.sh status   exit 0 when the provider answers discovery and the SAML
#                                 IdP's tools are usable
#
# What runs:
#   - scripts/oidc-provider/provider.mjs (npm oidc-provider 9, node_modules from
#     `npm ci` against the committed package-lock.json) on 127.0.0.1:<free port>. Issuer
#     https://login.microsoftonline.com/<tid>/v2.0, endpoints on the loopback port.
#   - scripts/saml-idp/idp.py is a CLI (pysaml2 + xmlsec1), nothing to start: `start`
#     makes its keys in the state directory's saml/ (kept across restarts).
#   - scim2 (PyPI scim2-cli) is a CLI too: `start` only checks that it runs.
# See scripts/README-sso.md.
#
# State directory: ${PROCUHELP_SSO_DIR:-/tmp/procuhelp-sso} (mode 0700):
#   oidc.pid  oidc.addr  oidc.log  oidc-tenant-id  oidc-client-id
#   oidc-client-secret (0600, random per start)  saml/ (idp, idp2, attacker key pairs)
# Other environment:
#   PROCUHELP_SSO_OIDC_PORT          fixed port instead of a free one
#   PROCUHELP_SSO_START_TIMEOUT      seconds to wait for discovery (default 30)
#   PROCUHELP_OIDC_TENANT_ID, PROCUHELP_OIDC_CLIENT_ID, PROCUHELP_OIDC_ACCOUNTS_FILE,
#   PROCUHELP_OIDC_REDIRECT_URIS, PROCUHELP_OIDC_LOOPBACK_ANY_PATH
#                                    passed to provider.mjs (see its header)
set -euo pipefail
set +m # no job control: the background server must keep the PID we record (see start)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE_DIR=${PROCUHELP_SSO_DIR:-/tmp/procuhelp-sso}
PID_FILE=$STATE_DIR/oidc.pid
ADDR_FILE=$STATE_DIR/oidc.addr
LOG_FILE=$STATE_DIR/oidc.log
TID_FILE=$STATE_DIR/oidc-tenant-id
CLIENT_ID_FILE=$STATE_DIR/oidc-client-id
SECRET_FILE=$STATE_DIR/oidc-client-secret
SAML_DIR=$STATE_DIR/saml
LOCK_FILE=$STATE_DIR/lock
START_TIMEOUT=${PROCUHELP_SSO_START_TIMEOUT:-30}
# The real interpreter behind pyenv's shim (each shim call costs ~0.2 s).
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || echo python3)

OP_DIR=$PROCUHELP_ROOT/scripts/oidc-provider
SAML_IDP=$PROCUHELP_ROOT/scripts/saml-idp/idp.py
SAML_REQUIREMENTS=$PROCUHELP_ROOT/scripts/saml-idp/requirements.txt
# Defaults of provider.mjs (scripts/oidc-provider/common.mjs).
TENANT_ID=${PROCUHELP_OIDC_TENANT_ID:-f7393f3e-c33d-4dfe-b4a8-f473310e7bf5}
CLIENT_ID=${PROCUHELP_OIDC_CLIENT_ID:-13f0eaea-7284-4cae-8822-bcd14389d2fc}
# Versions that scripts/setup.sh installs (keep in step with its PIP_PACKAGES).
PYSAML2_VERSION=7.5.5
SCIM2_CLI_VERSION=0.6.0

usage() {
    sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---- prerequisites -------------------------------------------------------------------

need_cmd() { # need_cmd COMMAND HOW-TO-INSTALL
    command -v "$1" >/dev/null 2>&1 || die "sso-peers: \`$1\` is not on PATH. $2"
}

need_node() {
    need_cmd node "Node.js >= 20.12 ships with the machine image (NodeSource nodejs; Debian bookworm's nodejs 18 is too old for oidc-provider 9)."
    need_cmd npm "npm comes with NodeSource's nodejs package."
    local v
    v=$(node -p 'process.versions.node')
    node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 12) ? 0 : 1)' ||
        die "sso-peers: node $v is too old: oidc-provider 9 needs >= 20.12 (node:crypto hash())."
}

pip_flags() {
    # Debian's own python3 refuses `pip install` outside a venv (PEP 668); pyenv's does not.
    if python3 -c 'import sys, sysconfig, os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
        echo "--break-system-packages"
    fi
}

has_module() { "$PY" -c 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec(sys.argv[1]) else 1)' "$1"; }

# pysaml2 and scim2-cli: scripts/setup.sh installs them (pinned, --no-deps). For a machine
# where it has not run, install them here with pip's resolver, constrained to the same
# pins for pysaml2's dependencies.
need_python_tools() {
    need_cmd python3 "The machine image ships pyenv's CPython 3.11 with pip."
    need_cmd openssl "apt-get install openssl"
    need_cmd xmlsec1 "apt-get install xmlsec1 (pysaml2 signs and verifies with it; scripts/setup.sh installs it)."
    local missing=()
    has_module saml2 || missing+=("pysaml2==$PYSAML2_VERSION")
    has_module scim2_cli || missing+=("scim2-cli==$SCIM2_CLI_VERSION")
    if ((${#missing[@]})); then
        python3 -m pip --version >/dev/null 2>&1 || die "sso-peers: python3 has no pip; cannot install ${missing[*]}"
        log "sso-peers: pip installing ${missing[*]} (scripts/setup.sh would install the pinned set)"
        # shellcheck disable=SC2046 # pip_flags prints zero or one word
        python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
            $(pip_flags) -c "$SAML_REQUIREMENTS" "${missing[@]}" ||
            die "sso-peers: pip install ${missing[*]} failed"
        if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
        python3 -W ignore -c 'import saml2.server' || die "sso-peers: pysaml2 still not importable after pip install"
    fi
    command -v scim2 >/dev/null 2>&1 || die "sso-peers: scim2-cli is installed but \`scim2\` is not on PATH (pyenv rehash?)"
}

# npm ci when node_modules does not match the committed package-lock.json (a provider
# still running from the old node_modules is stopped first).
ensure_node_modules() {
    local want have="" pid
    want=$(sha256sum "$OP_DIR/package-lock.json" | cut -d' ' -f1)
    [[ -s "$OP_DIR/node_modules/.procuhelp-lock.sha256" ]] && have=$(<"$OP_DIR/node_modules/.procuhelp-lock.sha256")
    if [[ "$want" == "$have" && -d "$OP_DIR/node_modules/oidc-provider" && -d "$OP_DIR/node_modules/jose" ]]; then
        return 0
    fi
    if pid=$(server_pid); then
        log "sso-peers: node modules change, stopping the running provider (pid $pid) first"
        stop_pid "$pid"
    fi
    local t0
    t0=$(date +%s)
    log "sso-peers: npm ci in $OP_DIR"
    (cd "$OP_DIR" && npm ci --no-audit --no-fund --loglevel=error) ||
        die "sso-peers: npm ci failed in $OP_DIR (the npm registry must be reachable)"
    echo "$want" >"$OP_DIR/node_modules/.procuhelp-lock.sha256"
    log "sso-peers: node modules installed in $(($(date +%s) - t0))s"
}

# ---- helpers -------------------------------------------------------------------------

write_secret() { # FILE VALUE: atomically, mode 0600
    local tmp
    tmp=$(mktemp "$1.XXXXXX")
    chmod 600 "$tmp"
    printf '%s\n' "$2" >"$tmp"
    mv -f "$tmp" "$1"
}

# The PID from the PID file when that process is alive and is our provider.
server_pid() {
    [[ -s "$PID_FILE" ]] || return 1
    local pid cmdline
    pid=$(<"$PID_FILE")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ "$cmdline" == *node*"$OP_DIR/provider.mjs"* ]] || return 1
    echo "$pid"
}

discovery_url() { echo "$1/$(<"$TID_FILE")/v2.0/.well-known/openid-configuration"; }

# HTTP status of discovery, and whether its issuer is the Entra-shaped one we expect.
discovery_ok() {
    local addr=$1 body
    body=$(curl -sS --max-time 2 "$(discovery_url "$addr")" 2>/dev/null) || return 1
    "$PY" -c 'import json, sys
d = json.loads(sys.argv[1])
ok = d.get("issuer") == sys.argv[2] and d.get("token_endpoint", "").startswith(sys.argv[3] + "/")
sys.exit(0 if ok else 1)' "$body" "https://login.microsoftonline.com/$(<"$TID_FILE")/v2.0" "$addr" 2>/dev/null
}

wait_ready() {
    local pid=$1 addr=$2 deadline
    deadline=$(($(date +%s) + START_TIMEOUT))
    while ! discovery_ok "$addr"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$LOG_FILE" >&2 || true
            die "sso-peers: the OIDC provider (pid $pid) exited before discovery answered; log: $LOG_FILE"
        fi
        if (($(date +%s) >= deadline)); then
            tail -n 30 "$LOG_FILE" >&2 || true
            die "sso-peers: $(discovery_url "$addr") did not answer with the expected issuer within ${START_TIMEOUT}s; log: $LOG_FILE"
        fi
        sleep 0.1
    done
}

stop_pid() {
    local pid=$1 _
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    warn "sso-peers: pid $pid ignored SIGTERM for 5s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

report() {
    cat <<EOF
oidc provider:   $(<"$ADDR_FILE") (pid $1)
issuer:          https://login.microsoftonline.com/$(<"$TID_FILE")/v2.0
discovery:       $(discovery_url "$(<"$ADDR_FILE")")
client id:       $(<"$CLIENT_ID_FILE")
client secret:   $SECRET_FILE
saml idp:        $SAML_IDP (keys in $SAML_DIR)
scim2:           $(command -v scim2)
log:             $LOG_FILE
env:             eval "\$($0 env)"
EOF
}

lock() {
    mkdir -p "$STATE_DIR"
    [[ -O "$STATE_DIR" && ! -L "$STATE_DIR" ]] || die "sso-peers: $STATE_DIR is not a directory owned by $(id -un)"
    chmod 700 "$STATE_DIR"
    exec 9>"$LOCK_FILE"
    flock -w 120 9 || die "sso-peers: timed out waiting for $LOCK_FILE"
}

# ---- commands ------------------------------------------------------------------------

STARTING_PID=
abort_start() {
    if [[ -n "$STARTING_PID" ]]; then
        log "sso-peers: start failed, stopping pid $STARTING_PID"
        stop_pid "$STARTING_PID"
        rm -f "$PID_FILE" "$ADDR_FILE" "$SECRET_FILE"
    fi
}

cmd_start() {
    lock
    need_cmd curl "apt-get install curl"
    need_node
    need_python_tools
    local t0 pid
    t0=$(date +%s%N)

    local f have_keys=1
    for f in idp idp2 attacker; do
        [[ -s "$SAML_DIR/$f.key" && -s "$SAML_DIR/$f.crt" ]] || have_keys=0
    done
    if ((have_keys == 0)); then
        "$PY" "$SAML_IDP" keys --dir "$SAML_DIR" >/dev/null || die "sso-peers: could not make the SAML IdP keys in $SAML_DIR"
    fi
    ensure_node_modules

    if pid=$(server_pid) && [[ -s "$ADDR_FILE" && -s "$SECRET_FILE" && -s "$TID_FILE" && -s "$CLIENT_ID_FILE" ]]; then
        if [[ "$(<"$TID_FILE")" != "$TENANT_ID" || "$(<"$CLIENT_ID_FILE")" != "$CLIENT_ID" ]]; then
            log "sso-peers: the running provider (pid $pid) has another tenant/client id, restarting it"
            stop_pid "$pid"
        else
            log "sso-peers: reusing the running OIDC provider (pid $pid) at $(<"$ADDR_FILE")"
            wait_ready "$pid" "$(<"$ADDR_FILE")"
            report "$pid"
            return 0
        fi
    elif pid=$(server_pid); then
        log "sso-peers: pid $pid has lost its state files, restarting it"
        stop_pid "$pid"
    fi
    rm -f "$PID_FILE" "$ADDR_FILE" "$SECRET_FILE"

    local port addr
    port=${PROCUHELP_SSO_OIDC_PORT:-$(free_port)}
    addr=http://127.0.0.1:$port
    write_secret "$SECRET_FILE" "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "$TENANT_ID" >"$TID_FILE"
    echo "$CLIENT_ID" >"$CLIENT_ID_FILE"
    : >"$LOG_FILE"

    # setsid: own session, so a Ctrl-C in the caller's terminal does not reach it. With job
    # control off the background child is not a group leader, so setsid does not fork and
    # $! stays node's PID. 9>&-: the server must not inherit (and hold) the lock.
    PROCUHELP_OIDC_PORT=$port \
        PROCUHELP_OIDC_TENANT_ID=$TENANT_ID \
        PROCUHELP_OIDC_CLIENT_ID=$CLIENT_ID \
        PROCUHELP_OIDC_CLIENT_SECRET_FILE=$SECRET_FILE \
        setsid node "$OP_DIR/provider.mjs" </dev/null >>"$LOG_FILE" 2>&1 9>&- &
    pid=$!
    STARTING_PID=$pid
    trap abort_start EXIT
    echo "$pid" >"$PID_FILE"
    echo "$addr" >"$ADDR_FILE"
    log "sso-peers: started the OIDC provider, pid $pid on $addr"

    wait_ready "$pid" "$addr"
    server_pid >/dev/null || die "sso-peers: pid $pid is not the provider (is job control on?)"
    STARTING_PID=
    trap - EXIT
    log "sso-peers: ready in $((($(date +%s%N) - t0) / 1000000)) ms"
    report "$pid"
}

cmd_stop() {
    lock
    local pid
    if pid=$(server_pid); then
        stop_pid "$pid"
        log "sso-peers: stopped the OIDC provider, pid $pid"
    elif [[ -s "$PID_FILE" ]]; then
        log "sso-peers: pid $(<"$PID_FILE") from $PID_FILE is not running (or is not our provider); nothing to stop"
    else
        log "sso-peers: not running"
    fi
    # The provider kept its sessions and codes in memory; the secret was per start.
    rm -f "$PID_FILE" "$ADDR_FILE" "$SECRET_FILE"
}

cmd_env() {
    if ! server_pid >/dev/null || [[ ! -s "$ADDR_FILE" ]]; then
        die "sso-peers: not running (state dir $STATE_DIR); run: $0 start"
    fi
    local addr tid
    addr=$(<"$ADDR_FILE")
    tid=$(<"$TID_FILE")
    printf 'export PROCUHELP_OIDC_ISSUER=%q\n' "https://login.microsoftonline.com/$tid/v2.0"
    printf 'export PROCUHELP_OIDC_DISCOVERY_URL=%q\n' "$(discovery_url "$addr")"
    printf 'export PROCUHELP_OIDC_CLIENT_ID=%q\n' "$(<"$CLIENT_ID_FILE")"
    printf 'export PROCUHELP_OIDC_CLIENT_SECRET_FILE=%q\n' "$SECRET_FILE"
    printf 'export PROCUHELP_OIDC_TENANT_ID=%q\n' "$tid"
    printf 'export PROCUHELP_OIDC_ADDR=%q\n' "$addr"
    printf 'export PROCUHELP_OIDC_FORGE=%q\n' "$OP_DIR/forge.mjs"
    printf 'export PROCUHELP_SAML_IDP=%q\n' "$SAML_IDP"
    printf 'export PROCUHELP_SAML_IDP_DIR=%q\n' "$SAML_DIR"
}

cmd_status() {
    local pid addr rc=0
    pid=$(server_pid) || die "sso-peers: the OIDC provider is not running"
    addr=$(<"$ADDR_FILE")
    if discovery_ok "$addr"; then
        echo "oidc: pid $pid, $addr, discovery ok"
    else
        echo "oidc: pid $pid, $addr, discovery NOT answering as expected"
        rc=1
    fi
    if command -v xmlsec1 >/dev/null && [[ -s "$SAML_DIR/idp.crt" ]] && has_module saml2; then
        echo "saml: $SAML_IDP, keys in $SAML_DIR, $(xmlsec1 --version)"
    else
        echo "saml: NOT usable (xmlsec1, pysaml2 or $SAML_DIR/idp.crt missing)"
        rc=1
    fi
    if command -v scim2 >/dev/null; then
        echo "scim: $(command -v scim2)"
    else
        echo "scim: scim2 NOT on PATH"
        rc=1
    fi
    return "$rc"
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
status) cmd_status ;;
*) usage ;;
esac
