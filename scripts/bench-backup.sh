#!/usr/bin/env bash
# Backup and restore throughput against the raw engine (BENCHMARKS.md "Backups"): on an
# embedded cluster holding about SIZE_MB of data (default 1400: a database of about 1.1 GiB) in
# one organisation's table (an org_id column: its rows go into that organisation's part), in one run,
# interleaved: `pg_dump -Fc --compress=1` to a file vs `procuhelp-server backup run`, and
# `pg_restore --single-transaction` of that file vs `procuhelp-server backup restore`;
# then the duration of `procuhelp-server backup drill`. Both sides write to /dev/shm (the
# same medium), so the ratio is the wrapper's cost: sealing, the manifest, the process
# start, the embedded cluster's start and stop, the verification pass before a restore.
#
#   scripts/bench-backup.sh [--size-mb N] [--rounds N] [--keep]
#
# Release build. Bounded: the data load and each side run under `timeout`.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROCUHELP_ROOT"

size_mb=1400
rounds=2
keep=false
while (($#)); do
    case "$1" in
    --size-mb) size_mb=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --keep) keep=true; shift ;;
    *) die "usage: scripts/bench-backup.sh [--size-mb N] [--rounds N] [--keep]" ;;
    esac
done

cargo build --locked --release -p procuhelp-server
bin=$PROCUHELP_ROOT/target/release/procuhelp-server
base=$(mktemp -d /tmp/ph-bench-backup.XXXXXX)
chmod 0711 "$base"
data=$base/data
repo=/dev/shm/ph-bench-repo-$$
raw=/dev/shm/ph-bench-raw-$$
mkdir -p "$raw"
cleanup() {
    if [[ -d "$data/pg/cluster" ]]; then
        as_cluster_user pg_ctl -D "$data/pg/cluster" stop -m fast >/dev/null 2>&1 || true
    fi
    if ! $keep; then rm -rf "$base" "$repo" "$raw"; fi
}
trap cleanup EXIT

pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_cluster_user() {
    if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$pgbin/$1" "${@:2}"; else "$pgbin/$1" "${@:2}"; fi
}
sock=$data/pg/run
psql_su() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -U procuhelp_bootstrap "$@"; }
start_cluster() { as_cluster_user pg_ctl -D "$data/pg/cluster" -l "$data/pg/bench.log" -w start >/dev/null; }
stop_cluster() { as_cluster_user pg_ctl -D "$data/pg/cluster" -w -m fast stop >/dev/null; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

printf '== building a database of about %s MB\n' "$size_mb"
"$bin" seed-demo --data-dir "$data" >/dev/null 2>&1
start_cluster
rows=$((size_mb * 1000000 / 330))
# Rows like the product's: text, and bytes as random as sealed columns.
timeout 1200 "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -U procuhelp_bootstrap -d procuhelp -c "
    CREATE TABLE public.bench_rows AS
    SELECT (SELECT id FROM app.organisations WHERE name = 'Demo Org A') AS org_id,
           g AS id, md5(g::text) AS title,
           repeat(md5(g::text), 4) AS body,
           decode(md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text), 'hex') AS sealed
    FROM generate_series(1, $rows) g;
    "
# A tenant table like any other (RLS enabled and forced): the drill's posture check
# refuses anything less.
psql_su -d procuhelp -c "ALTER TABLE public.bench_rows ALTER COLUMN org_id SET NOT NULL" \
    -c "CALL app.declare_tenant_table('public.bench_rows')"
psql_su -d procuhelp -c "VACUUM (FREEZE, ANALYZE) public.bench_rows" -c "CHECKPOINT"
db_bytes=$(psql_su -d procuhelp -Atc "SELECT pg_database_size('procuhelp')")
printf 'database: %s bytes (%s MiB)\n' "$db_bytes" "$((db_bytes >> 20))"

declare -a raw_dump ours_dump raw_restore ours_restore
for ((i = 1; i <= rounds; i++)); do
    # raw pg_dump (cluster running, as for a live server)
    t0=$(now)
    timeout 1200 "$pgbin/pg_dump" -h "$sock" -U procuhelp_bootstrap -d procuhelp --format=custom --compress=1 -f "$raw/dump.fc"
    t1=$(now); raw_dump+=("$(secs "$t0" "$t1")")
    dump_bytes=$(stat -c %s "$raw/dump.fc")
    # ours: the CLI starts (finds it running) and stops the embedded cluster itself
    t0=$(now)
    timeout 1200 "$bin" backup run --data-dir "$data" --repo "$repo" --keep-daily 1 --keep-weekly 0 --keep-monthly 0 >/dev/null
    t1=$(now); ours_dump+=("$(secs "$t0" "$t1")")
    start_cluster
    # raw pg_restore into a new database
    psql_su -d postgres -c "DROP DATABASE IF EXISTS raw_restored WITH (FORCE)" -c "CREATE DATABASE raw_restored OWNER procuhelp_owner TEMPLATE template0"
    t0=$(now)
    timeout 1200 "$pgbin/pg_restore" -h "$sock" -U procuhelp_bootstrap --single-transaction --exit-on-error -d raw_restored "$raw/dump.fc"
    t1=$(now); raw_restore+=("$(secs "$t0" "$t1")")
    psql_su -d postgres -c "DROP DATABASE raw_restored WITH (FORCE)"
    t0=$(now)
    timeout 1200 "$bin" backup restore --data-dir "$data" --repo "$repo" --into-database ours_restored >/dev/null
    t1=$(now); ours_restore+=("$(secs "$t0" "$t1")")
    start_cluster
    psql_su -d postgres -c "DROP DATABASE ours_restored WITH (FORCE)"
    printf 'round %s: dump raw %ss ours %ss | restore raw %ss ours %ss\n' "$i" \
        "${raw_dump[-1]}" "${ours_dump[-1]}" "${raw_restore[-1]}" "${ours_restore[-1]}"
done
stop_cluster
t0=$(now)
timeout 1800 "$bin" backup drill --data-dir "$data" --repo "$repo" >/dev/null
t1=$(now); drill=$(secs "$t0" "$t1")
sealed_bytes=$(du -sb "$repo" | cut -f1)

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
rd=$(median "${raw_dump[@]}"); od=$(median "${ours_dump[@]}")
rr=$(median "${raw_restore[@]}"); orr=$(median "${ours_restore[@]}")
mb=$((db_bytes >> 20))
awk -v mb="$mb" -v rd="$rd" -v od="$od" -v rr="$rr" -v orr="$orr" -v drill="$drill" \
    -v dump="$dump_bytes" -v sealed="$sealed_bytes" 'BEGIN {
    printf "\n| %d MiB database | raw tool | procuhelp-server | ratio (target >= 0.8) |\n|---|---|---|---|\n", mb
    printf "| backup | %.1f s (%.0f MiB/s) | %.1f s (%.0f MiB/s) | **%.2fx** |\n", rd, mb / rd, od, mb / od, rd / od
    printf "| restore | %.1f s (%.0f MiB/s) | %.1f s (%.0f MiB/s) | **%.2fx** |\n", rr, mb / rr, orr, mb / orr, rr / orr
    printf "\ndump %d bytes, repository %d bytes; drill (verify, restore, manifest, posture, chains, keys, drop): %.1f s\n", dump, sealed, drill
}'
