#!/usr/bin/env bash
# Install (if needed) and start both brokers for the integration tests.
#
# Usage: scripts/brokers/up.sh     (from any directory; idempotent)
#   RabbitMQ: STOMP 127.0.0.1:61623, Web-STOMP ws://127.0.0.1:15674/ws
#   ActiveMQ: STOMP 127.0.0.1:61613
#   Both: login guest / passcode guest.  State in <repo>/.brokers.
#
# Why: install.sh needs root only when a package is missing, so a second run
# needs no privileges.  The two brokers share nothing (own ports, state dirs
# and locks), so they start in parallel: the total is about RabbitMQ's start
# time alone.  A broker that already answers is left as it is.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
t0=$SECONDS

"$HERE/install.sh"

"$HERE/rabbitmq.sh" start &
rabbit=$!
"$HERE/activemq.sh" start &
amq=$!

rc=0
wait "$rabbit" || { echo "up.sh: RabbitMQ failed to start" >&2; rc=1; }
wait "$amq" || { echo "up.sh: ActiveMQ failed to start" >&2; rc=1; }
[ "$rc" -eq 0 ] && echo "up.sh: brokers up ($((SECONDS - t0)) s)"
exit "$rc"
