#!/usr/bin/env bash
# Time of an admin scrape, end to end: ringway (release build) with 100 clusters, 10
# listeners and 2 workers; `curl` fetches /stats/prometheus (and /stats) N times (default
# 50) and the median and maximum of curl's time_total are printed, with /ready timed
# while scrapes run back to back.
#
#   loadtest/scripts/admin-scrape.sh [RINGWAY_BINARY] [N]
set -euo pipefail
cd "$(dirname "$0")/../.."
binary=${1:-target/release/ringway}
n=${2:-50}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
admin=$(port)
{
  echo "workers: 2"
  echo "admin: 127.0.0.1:$admin"
  echo "listeners:"
  for l in $(seq 0 9); do
    echo "  - name: listener-$l"
    echo "    address: 127.0.0.1:$(port)"
    echo "    routes:"
    echo "      - match: { prefix: / }"
    echo "        cluster: service-$l"
  done
  echo "clusters:"
  for c in $(seq 0 99); do
    echo "  - name: service-$c"
    echo "    endpoints: [127.0.0.1:$((20000 + c))]"
  done
} > "$work/ringway.yaml"
"$binary" -c "$work/ringway.yaml" --log-level warn &
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$admin/ready" >/dev/null 2>&1 && break
  sleep 0.05
done
median() { sort -n | awk '{a[NR]=$1} END {printf "median %.2f ms, max %.2f ms", a[int((NR+1)/2)]*1000, a[NR]*1000}'; }
for path in /stats/prometheus /stats; do
  printf '%s (%s lines): ' "$path" "$(curl -fs "http://127.0.0.1:$admin$path" | wc -l)"
  for _ in $(seq "$n"); do curl -fs -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$admin$path"; done | median
  echo
done
( for _ in $(seq "$n"); do curl -fs -o /dev/null "http://127.0.0.1:$admin/stats/prometheus"; done ) &
printf '/ready during scrapes: '
for _ in $(seq "$n"); do curl -fs -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$admin/ready"; done | median
echo
