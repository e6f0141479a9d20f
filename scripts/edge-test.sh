#!/usr/bin/env bash
# The edge (deploy/edge/: nginx + ModSecurity v3 + OWASP CRS) in front of a real
# procuhelp-server, on loopback, with its test (docs/edge.md):
#
#   scripts/edge-test.sh
#
# 1. `seed-demo` in a fresh data directory, then `procuhelp-server serve` on two free
#    loopback ports with `--trusted-proxy 127.0.0.1/32` (the edge's address).
# 2. A self-signed certificate for edge.procuhelp.test (openssl), deploy/edge/ rendered
#    into a temporary prefix, `nginx -t`, then nginx in the foreground (never the system
#    nginx: every pid, log and temp path is under the prefix).
# 3. deploy/edge/test/edge_check.py: attack payloads are blocked by the WAF, every
#    legitimate flow reaches the server and succeeds, hardened headers arrive unchanged,
#    the server records the edge's client address and never a forged one.
#
# Uses the debug binary the test build made (scripts/test.sh builds it first); set
# PROCUHELP_SERVER_BIN to use another. Needs the Debian packages nginx,
# libnginx-mod-http-modsecurity and modsecurity-crs (scripts/setup.sh installs them):
# without them it fails, it never skips. Bounded in time; stops only what it started.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROCUHELP_ROOT"

t_start=$(date +%s)
EDGE_SRC="$PROCUHELP_ROOT/deploy/edge"
EDGE_NAME=edge.procuhelp.test
NGINX_MODULE=/usr/lib/nginx/modules/ngx_http_modsecurity_module.so
CRS_DIR=${PROCUHELP_CRS_DIR:-/usr/share/modsecurity-crs}
# The whole run stays under two minutes: start-up (seed-demo, server, nginx) takes what
# it takes, the checks get the rest of BUDGET_SECS (but at least 30 s). A passing run on
# the 2-core machine takes about 25 s.
BUDGET_SECS=${PROCUHELP_EDGE_BUDGET_SECS:-115}

# ---- prerequisites: fail loudly --------------------------------------------------------
PATH="$PATH:/usr/sbin:/sbin"
missing=()
command -v nginx >/dev/null || missing+=("nginx (Debian package nginx)")
[[ -f "$NGINX_MODULE" ]] || missing+=("$NGINX_MODULE (Debian package libnginx-mod-http-modsecurity)")
[[ -f "$CRS_DIR/rules/REQUEST-949-BLOCKING-EVALUATION.conf" ]] ||
    missing+=("$CRS_DIR/rules (Debian package modsecurity-crs)")
command -v openssl >/dev/null || missing+=("openssl")
command -v curl >/dev/null || missing+=("curl")
command -v python3 >/dev/null || missing+=("python3")
if ((${#missing[@]})); then
    die "edge test: missing $(printf '\n  - %s' "${missing[@]}")
Run scripts/setup.sh (apt-get install nginx libnginx-mod-http-modsecurity modsecurity-crs)."
fi

if [[ -n "${PROCUHELP_SERVER_BIN:-}" ]]; then
    bin=$PROCUHELP_SERVER_BIN
else
    bin="$(cargo_target_dir)/debug/procuhelp-server"
fi
[[ -x "$bin" ]] || die "procuhelp-server not found at $bin (scripts/test.sh builds it: cargo test --workspace --no-run)"

# ---- work directory and clean-up ---------------------------------------------------------
work=$(mktemp -d /tmp/procuhelp-edge.XXXXXX)
# The embedded PostgreSQL runs as the `postgres` OS user when we are root and must be
# able to search its way to <data-dir> (see scripts/test.sh).
chmod 711 "$work"
data="$work/data"
prefix="$work/edge"
SERVER_PID=
NGINX_PID=
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)

stop_pid() {
    local pid=$1 signal=$2 _
    [[ -n "$pid" ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    # nginx: TERM is its fast shutdown (the master stops its workers).
    stop_pid "$NGINX_PID" TERM
    NGINX_PID=
    stop_pid "$SERVER_PID" TERM
    SERVER_PID=
    # The embedded cluster outlives a killed server: stop it before removing its files.
    if [[ -f "$data/pg/cluster/postmaster.pid" && -n "$pg_bin" ]]; then
        if [[ $(id -u) == 0 ]]; then
            su postgres -s /bin/sh -c "$pg_bin/pg_ctl -D '$data/pg/cluster' stop -m immediate" >/dev/null 2>&1 || true
        else
            "$pg_bin/pg_ctl" -D "$data/pg/cluster" stop -m immediate >/dev/null 2>&1 || true
        fi
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

show_logs() {
    echo "---- nginx error log (tail) ----" >&2
    tail -n 10 "$prefix/logs/error.log" >&2 2>/dev/null || true
    echo "---- procuhelp-server log (tail, warnings and errors) ----" >&2
    sed 's/\x1b\[[0-9;]*m//g' "$work/server.log" 2>/dev/null | grep -E 'WARN|ERROR' | tail -n 20 >&2 || true
}

# ---- procuhelp-server ----------------------------------------------------------------------
log "edge: seed-demo in $data"
timeout 40 "$bin" seed-demo --data-dir "$data" >"$work/demo.txt" 2>"$work/seed.log" || {
    cat "$work/seed.log" >&2
    die "edge test: seed-demo failed"
}

https_port=$(free_port)
http_port=$(free_port)
edge_port=$(free_port)
while [[ "$http_port" == "$https_port" ]]; do http_port=$(free_port); done
while [[ "$edge_port" == "$https_port" || "$edge_port" == "$http_port" ]]; do edge_port=$(free_port); done

log "edge: procuhelp-server on https 127.0.0.1:$https_port, trusting 127.0.0.1/32 as its proxy"
"$bin" serve --data-dir "$data" \
    --https-addr "127.0.0.1:$https_port" \
    --http-redirect-addr "127.0.0.1:$http_port" \
    --trusted-proxy 127.0.0.1/32 >"$work/server.log" 2>&1 &
SERVER_PID=$!

ready=
for _ in $(seq 1 300); do # up to 30 s
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        cat "$work/server.log" >&2
        SERVER_PID=
        die "edge test: procuhelp-server exited during start-up"
    fi
    if curl -ksf -o /dev/null "https://127.0.0.1:$https_port/healthz"; then
        ready=1
        break
    fi
    sleep 0.1
done
[[ -n "$ready" ]] || { cat "$work/server.log" >&2; die "edge test: procuhelp-server did not answer /healthz within 30 s"; }
server_cert="$data/tls/cert.pem"

# ---- the edge ----------------------------------------------------------------------------------
mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/tmp/modsecurity" "$prefix/tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=$EDGE_NAME" -addext "subjectAltName=DNS:$EDGE_NAME" \
    -keyout "$prefix/tls/edge.key" -out "$prefix/tls/edge.pem" >/dev/null 2>&1 ||
    die "edge test: openssl could not make the edge's certificate"
chmod 600 "$prefix/tls/edge.key"

# Renders deploy/edge/*.conf and *.template (dropping .template) into $prefix/conf.
render() {
    local f out
    for f in "$EDGE_SRC"/*.conf "$EDGE_SRC"/*.template; do
        out="$prefix/conf/$(basename "${f%.template}")"
        sed -e "s|@PREFIX@|$prefix|g" \
            -e "s|@LISTEN@|127.0.0.1:$edge_port|g" \
            -e "s|@SERVER_NAME@|$EDGE_NAME|g" \
            -e "s|@EDGE_CERT@|$prefix/tls/edge.pem|g" \
            -e "s|@EDGE_KEY@|$prefix/tls/edge.key|g" \
            -e "s|@UPSTREAM@|127.0.0.1:$https_port|g" \
            -e "s|@UPSTREAM_NAME@|localhost|g" \
            -e "s|@UPSTREAM_CA@|$server_cert|g" \
            -e "s|@CRS_DIR@|$CRS_DIR|g" \
            "$f" >"$out"
    done
    if grep -n '@[A-Z_]*@' "$prefix"/conf/*; then
        die "edge test: placeholders left unrendered (above)"
    fi
    # PROCUHELP_EDGE_DROP_EXCLUSIONS=10002,10003 leaves those ProcuHelp exclusions out:
    # the test must then fail, naming the flow they protect (docs/edge.md).
    if [[ -n "${PROCUHELP_EDGE_DROP_EXCLUSIONS:-}" ]]; then
        python3 - "$prefix/conf/procuhelp-exclusions.conf" "$PROCUHELP_EDGE_DROP_EXCLUSIONS" <<'PY'
import re, sys
path, ids = sys.argv[1], {i.strip() for i in sys.argv[2].split(",") if i.strip()}
text = open(path).read()
# A rule: from "SecRule" to the first line that does not end with a backslash.
rules = list(re.finditer(r"^SecRule(?:.*\\\n)*.*\n", text, re.M))
dropped = set()
for m in reversed(rules):
    rid = re.search(r'"id:(\d+)', m.group(0))
    if rid and rid.group(1) in ids:
        text = text[: m.start()] + text[m.end():]
        dropped.add(rid.group(1))
if dropped != ids:
    sys.exit(f"no such exclusion: {sorted(ids - dropped)}")
open(path, "w").write(text)
print(f"==> edge: WITHOUT exclusions {sorted(dropped)} (PROCUHELP_EDGE_DROP_EXCLUSIONS)", file=sys.stderr)
PY
    fi
}
render
# Test only: request headers in the audit log (part B), so the driver finds each of its
# requests by its x-edge-test header. Never in a deployment: they hold credentials.
sed -i 's/^SecAuditLogParts AHZ$/SecAuditLogParts ABHZ/' "$prefix/conf/modsecurity.conf"
grep -q '^SecAuditLogParts ABHZ$' "$prefix/conf/modsecurity.conf" ||
    die "edge test: could not enable audit-log part B in the test copy of modsecurity.conf"

nginx_args=(-p "$prefix/" -e "$prefix/logs/error.log" -c "$prefix/conf/nginx.conf")
if ! nginx -t "${nginx_args[@]}" >"$work/nginx-t.log" 2>&1; then
    cat "$work/nginx-t.log" >&2
    die "edge test: nginx -t refused the rendered configuration"
fi
grep -o 'rules loaded inline/local/remote: [0-9/]*' "$work/nginx-t.log" | head -1 | sed 's/^/==> edge: ModSecurity /' >&2 || true

log "edge: nginx (ModSecurity + CRS) on https://$EDGE_NAME:$edge_port -> 127.0.0.1:$https_port"
nginx "${nginx_args[@]}" >"$work/nginx.out" 2>&1 &
NGINX_PID=$!
ready=
for _ in $(seq 1 100); do # up to 10 s
    if ! kill -0 "$NGINX_PID" 2>/dev/null; then
        cat "$work/nginx.out" >&2
        NGINX_PID=
        show_logs
        die "edge test: nginx exited during start-up"
    fi
    if curl -sf -o /dev/null --cacert "$prefix/tls/edge.pem" \
        --resolve "$EDGE_NAME:$edge_port:127.0.0.1" "https://$EDGE_NAME:$edge_port/healthz"; then
        ready=1
        break
    fi
    sleep 0.1
done
[[ -n "$ready" ]] || { show_logs; die "edge test: the edge did not pass /healthz through within 10 s"; }
log "edge: up after $(($(date +%s) - t_start))s; running deploy/edge/test/edge_check.py"

# ---- the checks ----------------------------------------------------------------------------------
rc=0
driver_secs=$((BUDGET_SECS - ($(date +%s) - t_start)))
((driver_secs >= 30)) || driver_secs=30
timeout --kill-after=5 "$driver_secs" python3 "$EDGE_SRC/test/edge_check.py" \
    --edge-port "$edge_port" --edge-name "$EDGE_NAME" --edge-ca "$prefix/tls/edge.pem" \
    --server-port "$https_port" --server-name localhost --server-ca "$server_cert" \
    --audit-log "$prefix/logs/modsec_audit.log" --error-log "$prefix/logs/error.log" \
    --demo "$work/demo.txt" --server-bin "$bin" --work "$work" || rc=$?
if ((rc == 124 || rc == 137)); then
    echo "edge test: the checks did not finish within ${driver_secs}s" >&2
fi
if ((rc != 0)); then
    show_logs
    echo "edge test: FAILED (exit $rc) after $(($(date +%s) - t_start))s" >&2
    exit "$rc"
fi
echo "edge test: passed in $(($(date +%s) - t_start))s"
