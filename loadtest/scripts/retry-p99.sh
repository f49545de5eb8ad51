#!/usr/bin/env bash
# Issue 22: the latency of successful requests through retries under a failing backend.
# One of two endpoints holds every answer for 2 s (a backend that hangs); the route
# retries with `per_try_timeout: 50ms` and a back-off of at most 20 ms, preferring
# another endpoint. Every request that meets the hanging one is answered by the other
# after one per-try timeout and one back-off, so the p99 of the 2xx answers must stay
# under 50 + 20 ms plus a healthy hop. Open loop (-R) so that slow answers do not hide
# (coordinated omission corrected by ringway-load).
#
#   loadtest/scripts/retry-p99.sh [RINGWAY_BINARY] [RATE]
set -euo pipefail
cd "$(dirname "$0")/../.."
binary="${1:-target/release/ringway}"
rate="${2:-200}"
load=target/release/ringway-load
[ -x "$load" ] && [ -x "$binary" ] || { echo "build first: cargo build --release --workspace"; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fast=$(port); slow=$(port); listen=$(port)
"$load" serve --listen "127.0.0.1:$fast" --body-size 19 >/dev/null 2>&1 &
"$load" serve --listen "127.0.0.1:$slow" --body-size 19 --delay 2s >/dev/null 2>&1 &
cat > "$work/ringway.yaml" <<YAML
workers: 2
listeners:
  - name: bench
    address: 127.0.0.1:$listen
    routes:
      - match: { prefix: / }
        cluster: app
        retry: { on: [5xx], retries: 2, per_try_timeout: 50ms, backoff: { base: 10ms, max: 20ms } }
clusters:
  - name: app
    endpoints: [127.0.0.1:$fast, 127.0.0.1:$slow]
    circuit_breakers: { default: { max_retries: 1024 } }
YAML
"$binary" -c "$work/ringway.yaml" --log-level warn >"$work/ringway.log" 2>&1 &
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$listen") 2>/dev/null && break
  sleep 0.1
done
"$load" run -c 64 -t 1 -R "$rate" -d 10s --timeout 3s "http://127.0.0.1:$listen/" |
  grep -E "2xx only|requests in|Errors|Status"
