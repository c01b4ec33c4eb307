#!/usr/bin/env bash
# Install the Debian packages of the two brokers used by the integration tests.
#
# Usage: scripts/brokers/install.sh        (as root; a no-op when both are installed)
#
# Why it is done this way:
# - Only the packages are wanted, not the system services: rabbitmq.sh and
#   activemq.sh run private nodes as the invoking user, with all state under
#   .brokers/.  A /usr/sbin/policy-rc.d that exits 101 tells invoke-rc.d not to
#   start anything from the postinst scripts; we remove it afterwards only if we
#   created it.  If a system node got started anyway (e.g. under systemd), it is
#   stopped, since it would hold the ports (and epmd on every interface).
# - --no-install-recommends keeps the install small (no erlang docs/GUI bits).
# - apt-get update runs only when something has to be installed.
set -euo pipefail

PACKAGES=(rabbitmq-server activemq)

is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install.sh: ${PACKAGES[*]} already installed"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: missing Debian packages: ${missing[*]}" >&2
    echo "install.sh: run this script as root (e.g. sudo $0) to install them" >&2
    exit 1
fi

POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
    if [ "$created_policy" -eq 1 ]; then
        rm -f "$POLICY"
    fi
}
trap cleanup EXIT

if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# temporary, from stompws scripts/brokers/install.sh\nexit 101\n' >"$POLICY"
    chmod 755 "$POLICY"
    created_policy=1
fi

echo "install.sh: installing ${missing[*]}"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"

# Stop system nodes that may have been started despite policy-rc.d.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    for unit in rabbitmq-server.service activemq.service epmd.service epmd.socket; do
        if systemctl is-active --quiet "$unit" 2>/dev/null; then
            echo "install.sh: stopping system unit $unit"
            systemctl stop "$unit" || true
        fi
    done
fi
# Without systemd (containers, CI) look for processes of the packages' system
# users: the system RabbitMQ node and its epmd run as "rabbitmq", the system
# ActiveMQ as "activemq".  Our own nodes never run as these users.
for user in rabbitmq activemq; do
    if id "$user" >/dev/null 2>&1; then
        pids=$(pgrep -u "$user" || true)
        if [ -n "$pids" ]; then
            echo "install.sh: stopping system processes of user $user: $pids"
            # shellcheck disable=SC2086
            kill $pids 2>/dev/null || true
            for _ in $(seq 1 30); do
                pgrep -u "$user" >/dev/null || break
                sleep 1
            done
            pids=$(pgrep -u "$user" || true)
            # shellcheck disable=SC2086
            [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
        fi
    fi
done

for pkg in "${PACKAGES[@]}"; do
    is_installed "$pkg" || { echo "install.sh: $pkg failed to install" >&2; exit 1; }
done
echo "install.sh: done"
