#!/usr/bin/env bash
# cargo-deny without network access: advisories from the RustSec snapshot committed in
# .ci/advisory-db (see its SNAPSHOT file for the upstream commit and date), plus the
# licenses, bans and sources checks configured in deny.toml.
#
# usage: scripts/deny.sh [advisories|bans|licenses|sources ...]   (default: all four)
#
# cargo-deny opens its advisory database as a git checkout at
#   <db-path>/<last URL path segment>-<xxhash64 of the lower-cased URL, seed 0xca80de71>
# (cargo-deny 0.20 src/advisories/helpers/db.rs `url_to_db_path`). For the default URL
# https://github.com/rustsec/advisory-db that is advisory-db-3157b0e258782691. `file://`
# URLs are refused, so this script copies the snapshot into that folder under
# target/advisory-dbs (db-path in deny.toml), commits it, and runs `cargo deny --offline`.
# If a future cargo-deny names the folder differently, the script asks cargo-deny (debug
# log) where it looked, moves the database there and retries once.
#
# Staleness: cargo-deny's maximum-db-staleness compares against the fresh commit made
# here, so it never fires; this script prints the snapshot's age instead and warns when
# it is older than PROCUHELP_ADVISORY_MAX_AGE_DAYS (default 90). Refresh by replacing
# .ci/advisory-db with a newer snapshot (keep LICENSE.txt and SNAPSHOT).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROCUHELP_ROOT"

# Must match [advisories] db-urls in deny.toml.
DB_URL=https://github.com/rustsec/advisory-db
SNAPSHOT_DIR=${PROCUHELP_ADVISORY_SNAPSHOT:-$PROCUHELP_ROOT/.ci/advisory-db}
MAX_AGE_DAYS=${PROCUHELP_ADVISORY_MAX_AGE_DAYS:-90}
# deny.toml: db-path = "${PROCUHELP_ADVISORY_DB_ROOT:-target/advisory-dbs}"
PROCUHELP_ADVISORY_DB_ROOT=${PROCUHELP_ADVISORY_DB_ROOT:-$(cargo_target_dir)/advisory-dbs}
export PROCUHELP_ADVISORY_DB_ROOT

[[ -f "$SNAPSHOT_DIR/SNAPSHOT" && -d "$SNAPSHOT_DIR/crates" ]] ||
    die "advisory snapshot not found at $SNAPSHOT_DIR (expected SNAPSHOT and crates/)"
command -v cargo-deny >/dev/null 2>&1 || die "cargo-deny is not installed; run scripts/setup.sh"

# Folder name cargo-deny derives from the URL (pure-Python XXH64, checked against the
# reference implementation's vectors).
db_dir_name() {
    python3 - "$1" <<'PY'
import sys

M = (1 << 64) - 1
P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                      0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)


def rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M


def rnd(acc, lane):
    return (rotl((acc + lane * P2) & M, 31) * P1) & M


def xxh64(data, seed):
    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        while i + 32 <= n:
            for j in range(4):
                v[j] = rnd(v[j], int.from_bytes(data[i + 8 * j:i + 8 * j + 8], "little"))
            i += 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
        for x in v:
            h = ((h ^ rnd(0, x)) * P1 + P4) & M
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while i + 8 <= n:
        h = (rotl(h ^ rnd(0, int.from_bytes(data[i:i + 8], "little")), 27) * P1 + P4) & M
        i += 8
    if i + 4 <= n:
        h = (rotl(h ^ (int.from_bytes(data[i:i + 4], "little") * P1) & M, 23) * P2 + P3) & M
        i += 4
    while i < n:
        h = (rotl(h ^ (data[i] * P5) & M, 11) * P1) & M
        i += 1
    h ^= h >> 33
    h = (h * P2) & M
    h ^= h >> 29
    h = (h * P3) & M
    return h ^ (h >> 32)


assert xxh64(b"abc", 0) == 0x44BC2CF5AD770999
assert xxh64(b"Nobody inspects the spammish repetition", 0) == 0xFBCEA83C8A378BF1
url = sys.argv[1].lower()  # cargo-deny hashes Url::parse(lowercased).as_str()
name = url.rsplit("/", 1)[-1]
print(f"{name}-{xxh64(url.encode(), 0xCA80DE71):016x}")
PY
}

# Copy the snapshot to $1 and make it the git checkout cargo-deny expects.
prepare_db() {
    local dir=$1
    rm -rf "$dir"
    mkdir -p "$dir"
    cp -R "$SNAPSHOT_DIR/." "$dir/"
    chmod -R u+w "$dir"
    git -C "$dir" -c init.defaultBranch=main init -q
    git -C "$dir" add -A
    git -C "$dir" -c user.name="ProcuHelp CI" -c user.email="ci@procuhelp.invalid" \
        -c commit.gpgsign=false -c core.hooksPath=/dev/null \
        commit -q -m "RustSec advisory-db snapshot $(head -n1 "$SNAPSHOT_DIR/SNAPSHOT")"
}

report_snapshot_age() {
    local commit date age
    read -r commit date <"$SNAPSHOT_DIR/SNAPSHOT"
    age=$((($(date -u +%s) - $(date -u -d "$date" +%s)) / 86400))
    log "advisory snapshot: rustsec/advisory-db ${commit:0:12} of $date ($age days old)"
    if ((age > MAX_AGE_DAYS)); then
        warn "the advisory snapshot is $age days old (> $MAX_AGE_DAYS): advisories published since $date are not checked. Refresh .ci/advisory-db."
    fi
}

run_deny() {
    cargo deny --offline --locked check "$@"
}

main() {
    report_snapshot_age

    # cargo-deny reads every package manifest through `cargo metadata --offline`, so the
    # sources of all locked packages for the [graph] target must be in cargo's cache,
    # including optional ones no build has compiled (deny.toml sets all-features).
    # crates.io is reachable; this downloads only what is missing.
    cargo fetch --locked --target x86_64-unknown-linux-gnu

    local name dir
    name=$(db_dir_name "$DB_URL")
    dir="$PROCUHELP_ADVISORY_DB_ROOT/$name"
    log "advisory db: $dir"
    prepare_db "$dir"

    local out rc=0
    out=$(mktemp)
    run_deny "$@" >"$out" 2>&1 || rc=$?
    cat "$out"
    if ((rc == 0)); then
        rm -f "$out"
        return 0
    fi

    # Did cargo-deny fail to open the database (rather than find a problem)? Then ask it
    # where it looked and retry there once.
    if grep -qE "FETCH_HEAD|HEAD timestamp|advisory database|expected .crates. directory" "$out"; then
        local wanted
        wanted=$(cargo deny -L debug --offline --locked check advisories 2>&1 |
            sed -n "s/.*Opening advisory database at '\([^']*\)'.*/\1/p" | head -n1 || true)
        if [[ -n "$wanted" && "$wanted" != "$dir" ]]; then
            warn "cargo-deny expects the advisory db at $wanted (this script computed $dir); update scripts/deny.sh"
            prepare_db "$wanted"
            rm -f "$out"
            run_deny "$@"
            return
        fi
    fi
    rm -f "$out"
    return "$rc"
}

# The result, for `procuhelp-server self-audit`: the server's build script embeds it when
# it was for the Cargo.lock being built (examples/server/build.rs). Only a run of every
# check counts.
record_result() {
    local rc=$1 result=failed
    shift
    (($# == 0)) || return 0
    if ((rc == 0)); then result=passed; fi
    local target
    target=$(cargo_target_dir)
    mkdir -p "$target"
    printf 'result=%s\nlock=%s\nat=%s\nsnapshot=%s\n' "$result" \
        "$(sha256sum Cargo.lock | cut -d' ' -f1)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        "$(cut -d' ' -f2 "$SNAPSHOT_DIR/SNAPSHOT" | head -n1)" >"$target/procuhelp-deny.txt"
}

# On every exit (set -e stays in force inside main: a failed step is a failed run).
DENY_ARGS=("$@")
on_exit() {
    local rc=$?
    record_result "$rc" "${DENY_ARGS[@]}"
    exit "$rc"
}
trap on_exit EXIT
# A signal is a failed run: without these, bash runs the EXIT trap with the status of the
# last command that finished, which can be 0.
trap 'exit 143' TERM
trap 'exit 130' INT
main "$@"
