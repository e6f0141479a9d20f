#!/usr/bin/env bash
# The security overview as one self-contained HTML document, built by one command:
#
#   scripts/overview.sh                     # -> target/overview/security-overview.html
#   scripts/overview.sh --out FILE          # somewhere else
#   scripts/overview.sh --self-audit FILE   # a fresh `procuhelp-server self-audit` report
#                                           # (DIR/self-audit.md) instead of docs/self-audit.md
#   scripts/overview.sh --check             # build into a temporary directory and verify it
#                                           # (scripts/test.sh runs this)
#
# Pandoc (Debian package `pandoc`, installed by scripts/setup.sh) joins, in this order:
# docs/overview/00-intro.md, docs/architecture.md, docs/threat-model.md,
# docs/access-matrix.md, docs/subprocessors.md, docs/retention.md, docs/encryption.md,
# docs/incident-response.md and docs/self-audit.md, with a table of contents, the CSS of
# docs/overview/overview.css embedded, and docs/overview/overview.lua turning links between
# those files into links inside the document. Any pandoc warning fails the build.
#
# --check also verifies: every section is in the HTML under its heading; every link inside
# the document has its target; no link points at a Markdown file any more; the file is
# under PROCUHELP_OVERVIEW_MAX_BYTES (default 4 MiB); every `file::function` the threat
# model names as a test exists in that file; the generated sections still say what they
# are generated from. That the generated sections equal what the code generates is checked
# by the Rust tests that own them (docs/overview/00-intro.md lists them).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$PROCUHELP_ROOT"

SECTIONS=(
    docs/overview/00-intro.md
    docs/architecture.md
    docs/threat-model.md
    docs/access-matrix.md
    docs/subprocessors.md
    docs/retention.md
    docs/encryption.md
    docs/incident-response.md
    docs/self-audit.md
)
# Generated from the code, each checked by a Rust test (see docs/overview/00-intro.md).
GENERATED=(docs/access-matrix.md docs/subprocessors.md docs/retention.md)
MAX_BYTES=${PROCUHELP_OVERVIEW_MAX_BYTES:-$((4 * 1024 * 1024))}
TITLE="ProcuHelp security overview"

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

check=
out=
self_audit=docs/self-audit.md
while (($#)); do
    case $1 in
        --check) check=1 ;;
        --out)
            [[ $# -ge 2 ]] || die "--out needs a file"
            out=$2
            shift
            ;;
        --self-audit)
            [[ $# -ge 2 ]] || die "--self-audit needs a file (DIR/self-audit.md of procuhelp-server self-audit)"
            self_audit=$2
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument: $1 (see scripts/overview.sh --help)" ;;
    esac
    shift
done
if [[ -n "$check" && -n "$out" ]]; then
    die "--check builds into a temporary directory; it takes no --out"
fi

command -v pandoc >/dev/null 2>&1 || die "pandoc is not installed: the security overview is built with it.
Install it with scripts/setup.sh (Debian package pandoc) or: apt-get install -y pandoc"

inputs=()
for f in "${SECTIONS[@]}"; do
    [[ "$f" == docs/self-audit.md ]] && f=$self_audit
    [[ -f "$f" ]] || die "missing section of the overview: $f"
    inputs+=("$f")
done
# The filter maps the n-th level-1 heading to the n-th file: name them in order.
names=$(printf '%s\n' "${SECTIONS[@]}" | sed 's|.*/||; s|\.md$||' | paste -sd, -)

version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n1)
commit=$(git describe --tags --always --dirty 2>/dev/null || echo "no git")
date=$(date -u +%Y-%m-%d)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [[ -n "$check" ]]; then
    out="$tmp/security-overview.html"
elif [[ -z "$out" ]]; then
    out="${CARGO_TARGET_DIR:-$PROCUHELP_ROOT/target}/overview/security-overview.html"
fi
mkdir -p "$(dirname "$out")"

# Self-contained HTML: pandoc >= 2.19 says --embed-resources (and warns about the old
# --self-contained, which would fail the build below); Debian 12 ships 2.17.
if pandoc --help | grep -q -- '--embed-resources'; then
    embed=(--standalone --embed-resources)
else
    embed=(--self-contained)
fi

start=$(date +%s)
log "overview: pandoc $(pandoc --version | head -n1 | cut -d' ' -f2), ${#inputs[@]} sections -> $out"
# gfm: the documents are written for GitHub's renderer (lists right after a paragraph,
# no TeX math in `$`); emoji off so `:name:` stays text.
pandoc "${inputs[@]}" \
    --from gfm-emoji \
    --to html5 \
    "${embed[@]}" \
    --toc --toc-depth=2 \
    --css "$PROCUHELP_ROOT/docs/overview/overview.css" \
    --lua-filter "$PROCUHELP_ROOT/docs/overview/overview.lua" \
    --metadata title="$TITLE" \
    --metadata subtitle="Version $version (git $commit)" \
    --metadata date="$date" \
    --metadata lang=en \
    --metadata overview_files="$names" \
    --fail-if-warnings \
    --output "$out" ||
    die "pandoc failed to build the security overview (see its messages above)"
log "overview: built in $(($(date +%s) - start))s, $(wc -c <"$out") bytes"

if [[ -z "$check" ]]; then
    echo "$out"
    exit 0
fi

# ---- --check --------------------------------------------------------------------------
python3 - "$out" "$MAX_BYTES" "$TITLE" "$version" "$names" "${inputs[@]}" <<'PY' ||
import html, os, re, sys
from html.parser import HTMLParser

out, max_bytes, title, version, names = sys.argv[1:6]
inputs = sys.argv[6:]
names = names.split(",")
problems = []
size = os.path.getsize(out)
if size > int(max_bytes):
    problems.append(f"the overview is {size} bytes, over the limit of {max_bytes}")

class Scan(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.hrefs, self.h1 = set(), [], {}
        self._in_h1 = None
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href") is not None:
            self.hrefs.append(a["href"])
        if tag == "h1" and "id" in a:
            self._in_h1 = a["id"]
            self.h1[self._in_h1] = ""
    def handle_endtag(self, tag):
        if tag == "h1":
            self._in_h1 = None
    def handle_data(self, data):
        if self._in_h1:
            self.h1[self._in_h1] += data

text = open(out, encoding="utf-8").read()
scan = Scan()
scan.feed(text)

if f"<title>{html.escape(title)}</title>" not in text:
    problems.append("the title is missing")
if f"Version {version}" not in text:
    problems.append(f"the version ({version}) is missing")

# (b) every section under its own heading, with the heading its Markdown file has.
def first_h1(path):
    fence = False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            fence = not fence
        elif not fence and line.startswith("# "):
            return line[2:].strip()
    return None

for name, path in zip(names, inputs):
    anchor = f"doc-{name}"
    want = first_h1(path)
    got = scan.h1.get(anchor)
    if got is None:
        problems.append(f"section {path}: no heading with id {anchor}")
    elif want is None or " ".join(re.sub(r"[`*_]", "", want).split()) != " ".join(got.split()):
        problems.append(f"section {path}: heading {got!r}, its file says {want!r}")
    if f'href="#{anchor}"' not in text:
        problems.append(f"section {path}: not in the table of contents")

# (c) every link inside the document lands; nothing points at a Markdown file.
for href in scan.hrefs:
    if href.startswith("#"):
        if href[1:] not in scan.ids:
            problems.append(f"broken link inside the document: {href}")
    elif not re.match(r"^(https?|mailto):", href):
        problems.append(f"a link that leaves the document for a relative path: {href}")

if problems:
    print("\n".join(f"  - {p}" for p in problems), file=sys.stderr)
    sys.exit(1)
print(f"==> overview: {len(names)} sections under their headings, {len(scan.hrefs)} links land, {size} bytes", file=sys.stderr)
PY
    die "the security overview failed its check (above)"

# Every test the threat model names as `path/to/file.rs::function` exists there.
missing=0
refs=0
while IFS= read -r ref; do
    refs=$((refs + 1))
    file=${ref%%::*}
    fn=${ref##*::}
    if [[ ! -f "$file" ]] || ! grep -Eq "fn[[:space:]]+${fn}[[:space:]]*[(<]" "$file"; then
        printf '  - docs/threat-model.md names %s, which does not exist\n' "$ref" >&2
        missing=$((missing + 1))
    fi
done < <(grep -oE '`[A-Za-z0-9_./-]+\.rs::[a-z0-9_]+`' docs/threat-model.md | tr -d '`' | sort -u)
((refs > 0)) || die "docs/threat-model.md names no test as file::function"
((missing == 0)) || die "$missing test(s) named in docs/threat-model.md do not exist"
log "overview: the $refs tests the threat model names exist"

for f in "${GENERATED[@]}"; do
    head -n 5 "$f" | grep -q '^Generated from ' ||
        die "$f no longer says what it is generated from: regenerate it (docs/overview/00-intro.md names the test)"
done
log "overview: check passed"
