#!/usr/bin/env bash
# Runs the example server on its embedded defaults, on a fresh machine:
#
#   scripts/serve.sh [procuhelp-server serve options, e.g. --data-dir DIR]
#
# Installs the Debian packages the build needs (samael's xmlsec feature: libxmlsec1-dev,
# libxml2-dev, libclang-dev, pkg-config; see scripts/setup.sh) when they are missing, then
# `cargo run -p procuhelp-server -- serve`: a private PostgreSQL cluster in ./data,
# migrations, posture check, self-signed HTTPS at https://127.0.0.1:8443/.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROCUHELP_ROOT"
"$PROCUHELP_ROOT/scripts/setup.sh" --build-deps
exec cargo run --locked -p procuhelp-server -- serve "$@"
