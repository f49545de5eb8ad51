#!/usr/bin/env bash
# Connections made by active health checks: one cluster of 10 endpoints (127.0.0.1 ..
# 127.0.0.10 on one port of the bundled upstream) checked every 100 ms for 5 s; prints
# the checks made, the sockets left in TIME-WAIT toward the upstream's port (one per
# check when each check opens its own connection) and the connections still open.
#
#   loadtest/scripts/health-check-connections.sh [RINGWAY_BINARY...]
#
# Needs a release build (cargo build --release --workspace), curl and ss. Run binaries
# a minute apart, or TIME-WAIT sockets of the previous run are counted.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -gt 0 ] || set -- target/release/ringway
for bin in "$@"; do
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(port); listen=$(port); admin=$(port)
work=$(mktemp -d)
target/release/ringway-load serve --listen 0.0.0.0:$up --workers 1 >/dev/null 2>&1 &
srv=$!
eps=$(seq 1 10 | sed "s/.*/127.0.0.&:$up/" | paste -sd, -)
cat > "$work/c.yaml" <<YAML
workers: 1
admin: 127.0.0.1:$admin
listeners:
  - name: l
    address: 127.0.0.1:$listen
    routes:
      - match: { prefix: / }
        cluster: up
clusters:
  - name: up
    endpoints: [$eps]
    health_check: { http: { path: / }, interval: 100ms, no_traffic_interval: 100ms, timeout: 1s }
YAML
sleep 0.3
"$bin" -c "$work/c.yaml" >/dev/null 2>&1 &
rw=$!
sleep 5
attempts=$(curl -s "http://127.0.0.1:$admin/stats" | awk -F': ' '/cluster.up.health_check.attempt:/ {print $2}')
tw=$(ss -Htan state time-wait "( dport = :$up or sport = :$up )" | wc -l)
est=$(ss -Htan state established "( dport = :$up )" | wc -l)
echo "$(basename "$bin"): checks=$attempts time_wait=$tw established_to_upstream=$est"
kill $rw $srv; wait 2>/dev/null || true; rm -rf "$work"
done
