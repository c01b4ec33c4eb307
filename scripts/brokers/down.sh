#!/usr/bin/env bash
# Stop both test brokers (their data in <repo>/.brokers is kept).
#
# Usage: scripts/brokers/down.sh     (from any directory; idempotent)
#
# Why: the two brokers are independent, so they are stopped in parallel.
# Remove <repo>/.brokers (after down.sh) to start from a clean state.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

"$HERE/rabbitmq.sh" stop &
rabbit=$!
"$HERE/activemq.sh" stop &
amq=$!

rc=0
wait "$rabbit" || { echo "down.sh: RabbitMQ failed to stop" >&2; rc=1; }
wait "$amq" || { echo "down.sh: ActiveMQ failed to stop" >&2; rc=1; }
exit "$rc"
