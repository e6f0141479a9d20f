# shellcheck shell=bash
# Helpers shared by scripts/*.sh and .ci/run. Source it; don't execute it.

# Repository root, whatever the caller's working directory.
PROCUHELP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PROCUHELP_ROOT

# CI runs with the machine's environment, but be defensive about PATH: cargo (rustup)
# and the pyenv Python that owns pip live under $HOME.
for _d in "$HOME/.pyenv/bin" "$HOME/.pyenv/shims" "$HOME/.cargo/bin"; do
    if [[ -d "$_d" && ":$PATH:" != *":$_d:"* ]]; then
        PATH="$_d:$PATH"
    fi
done
unset _d
export PATH

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
    printf '\nERROR: %s\n\n' "$*" >&2
    exit 1
}

# True when running under CI (CI=true is set by the CI runner).
is_ci() { [[ -n "${CI:-}" && "${CI:-}" != "false" && "${CI:-}" != "0" ]]; }

# Step timing: `step NAME CMD...` runs CMD, prints how long it took and remembers it for
# `print_step_summary`. A failing step is recorded and its exit status returned.
# Give it a command or a script, not a shell function: bash ignores `set -e` inside a
# function called from the `||` below, so a function would carry on past its errors.
PROCUHELP_STEPS=()
step() {
    local name=$1
    shift
    local start end rc=0
    start=$(date +%s)
    printf '\n==> [%s] %s: %s\n' "$(date -u +%H:%M:%S)" "$name" "$*"
    "$@" || rc=$?
    end=$(date +%s)
    PROCUHELP_STEPS+=("$(printf '%-12s %6ss  %-18s %s free' "$name" "$((end - start))" \
        "$([[ $rc -eq 0 ]] && echo ok || echo "FAILED (exit $rc)")" "$(disk_free_human .)")")
    printf '<== %s: %ss (exit %s)\n' "$name" "$((end - start))" "$rc"
    return "$rc"
}

print_step_summary() {
    ((${#PROCUHELP_STEPS[@]})) || return 0
    printf '\n---- step timings ----\n'
    printf '%s\n' "${PROCUHELP_STEPS[@]}"
}

# Free space on the file system holding PATH, human-readable (e.g. "41G").
disk_free_human() {
    df -Ph "$1" 2>/dev/null | awk 'NR == 2 { print $4 }'
}

# Free space on the file system holding PATH, in GiB (rounded down).
disk_free_gib() {
    df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print int($4 / 1048576) }'
}

# A free TCP port on 127.0.0.1 (the kernel picks it; racy in theory, fine in practice).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# cargo's target directory (honours CARGO_TARGET_DIR and .cargo/config.toml).
cargo_target_dir() {
    if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
        echo "$CARGO_TARGET_DIR"
    else
        cargo metadata --format-version 1 --no-deps --offline 2>/dev/null |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null ||
            echo "$PROCUHELP_ROOT/target"
    fi
}
