#!/bin/sh
# Installs the Node.js peers of tests/interop (@stomp/stompjs, ws, stomp-broker-js) from the
# npm registry into .interop/node_modules, at the versions pinned by package-lock.json here.
#
# Idempotent: it does nothing when .interop/ already holds exactly this lock file's install
# (`npm ci` would otherwise wipe and reinstall node_modules every run). The install lives
# outside scripts/ so that the repository keeps no node_modules and `git clean` resets it.
# Needs node (18 or later) and npm; without them it says so and exits 1.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target="${STOMPWS_INTEROP_DIR:-$root/.interop}"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "scripts/interop/setup.sh: $tool is not installed (the interop tests need Node.js 18+ and npm)" >&2
        exit 1
    fi
done

mkdir -p "$target"
if [ -d "$target/node_modules" ] && cmp -s "$here/package-lock.json" "$target/package-lock.json" \
    && [ -f "$target/.installed" ]; then
    exit 0
fi

cp "$here/package.json" "$here/package-lock.json" "$target/"
rm -f "$target/.installed"
# --ignore-scripts: none of these packages needs an install script, and none may run one.
(cd "$target" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
touch "$target/.installed"
echo "scripts/interop/setup.sh: installed $(cd "$target" && node -p \
    "Object.entries(require('./package.json').dependencies).map(([n, v]) => n + '@' + v).join(', ')") into $target"
