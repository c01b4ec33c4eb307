#!/usr/bin/env bash
# Build the sdist and the wheel as a release would, check their metadata, and install the
# wheel into a new virtualenv outside the checkout: what a user gets from `pip install`.
#
# Usage: scripts/release/check_dist.sh [DIST_DIR]   (make dist-check; part of make test)
#   PYTHON: the interpreter with `build` and `twine` (default .venv/bin/python).
#   DIST_DIR: where the sdist and wheel are kept (default: a temporary directory, removed).
#
# Why outside the checkout: run from the repository, `import stompws` finds the source tree
# and would pass even when the wheel lacks a module or py.typed. The smoke test runs from a
# temporary directory with the new virtualenv's interpreter, and checks where it imported
# stompws from before trusting anything else it says.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
DIST="${1:-$WORK/dist}"
t0=$SECONDS

fail() { echo "check_dist.sh: $*" >&2; exit 1; }

if ! "$PYTHON" -m build --outdir "$DIST" "$ROOT" >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log" >&2
    fail "python -m build failed (log above)"
fi
"$PYTHON" -m twine check --strict "$DIST"/*

wheels=("$DIST"/stompws-*.whl)
sdists=("$DIST"/stompws-*.tar.gz)
[ "${#wheels[@]}" -eq 1 ] && [ -f "${wheels[0]}" ] || fail "expected one wheel in $DIST"
[ "${#sdists[@]}" -eq 1 ] && [ -f "${sdists[0]}" ] || fail "expected one sdist in $DIST"
sdist_files="$(tar -tzf "${sdists[0]}")"  # not piped into grep -q: pipefail and SIGPIPE
grep -q '/LICENSE$' <<<"$sdist_files" || fail "the sdist lacks LICENSE"

"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check "${wheels[0]}[broker]"

cd "$WORK"
"$WORK/venv/bin/python" - "$WORK/venv" <<'PY'
import importlib.metadata
import pathlib
import sys

import stompws
import stompws.compat
import stompws.testing

venv = pathlib.Path(sys.argv[1]).resolve()
where = pathlib.Path(stompws.__file__).resolve()
if venv not in where.parents:
    sys.exit(f"stompws was imported from {where}, not from the wheel installed in {venv}")
if not (where.parent / "py.typed").is_file():
    sys.exit("the wheel lacks stompws/py.typed")
files = importlib.metadata.files("stompws") or []
if not any(file.name == "LICENSE" for file in files):
    sys.exit("the wheel's metadata lacks LICENSE")
if importlib.metadata.version("stompws") != stompws.__version__:
    sys.exit("the metadata's version is not stompws.__version__")
PY
version="$("$WORK/venv/bin/stompws" --version)"
"$WORK/venv/bin/python" "$ROOT/examples/quickstart.py" >"$WORK/quickstart.log" 2>&1 || {
    cat "$WORK/quickstart.log" >&2
    fail "examples/quickstart.py failed with the installed wheel (output above)"
}
echo "check_dist.sh: $(basename "${wheels[0]}") and $(basename "${sdists[0]}") built, twine check passed, the wheel installed in a new virtualenv ran '$version' and the quickstart ($((SECONDS - t0)) s)"
