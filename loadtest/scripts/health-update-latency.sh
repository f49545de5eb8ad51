#!/usr/bin/env bash
# How long a health change takes to reach every worker, on the real binary.
#
#   loadtest/scripts/health-update-latency.sh [RINGWAY_BINARY] [SECONDS]
#
# Two upstreams (small Python servers answering 503 while a flag file exists, 200
# otherwise, health checks included) behind a 2-worker ringway. Two phases:
#
# 1. Active checks every 10 ms, thresholds 1: endpoint A's flag flips every 100 ms, so
#    A goes unhealthy and healthy again ten times a second.
# 2. Outlier detection only (consecutive_5xx 3, base_ejection_time 100 ms, capped at
#    300 ms): A fails every request while ringway-load sends 500 requests/s; A is ejected,
#    comes back, fails three more requests and is ejected again, over and over.
#
# For each phase it prints `cluster_manager.host_update_latency_ms` (a histogram: from
# the change being found — a check's verdict, or the failure that completed an outlier
# streak — to a worker balancing with the new host set, each worker recording its own)
# and, for phase 2, `outlier_detection.detection_latency_us` (the last ejection: from the
# worker's observation of that failure to the verdict leaving the health thread) and the
# ejection count. Needs python3 and a release build (cargo build --release --workspace).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/ringway}
secs=${2:-5}
load=target/release/ringway-load
[ -x "$bin" ] && [ -x "$load" ] || { echo "build first: cargo build --release --workspace"; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cat > "$work/up.py" <<'PY'
import http.server, os, sys
flag = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        code = 503 if os.path.exists(flag) else 200
        self.send_response(code)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
a=$(port); b=$(port); listen=$(port); admin=$(port)
python3 "$work/up.py" "$a" "$work/fail-a" & python3 "$work/up.py" "$b" "$work/fail-b" &
sleep 0.5

run_phase() {
  local name=$1 cluster_keys=$2 action=$3
  cat > "$work/ringway.yaml" <<YAML
workers: 2
admin: 127.0.0.1:$admin
listeners:
  - name: bench
    address: 127.0.0.1:$listen
    routes:
      - match: { prefix: / }
        cluster: svc
clusters:
  - name: svc
    endpoints: [127.0.0.1:$a, 127.0.0.1:$b]
$cluster_keys
YAML
  rm -f "$work/fail-a"
  "$bin" -c "$work/ringway.yaml" --log-level warn &
  local pid=$!
  until curl -sf "127.0.0.1:$admin/ready" >/dev/null 2>&1; do sleep 0.05; done
  eval "$action"
  echo "== $name"
  curl -s "127.0.0.1:$admin/stats" | grep -E "host_update_latency_ms|detection_latency_us|ejections_enforced_total|health_check.(failure|success)" || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_phase "active health checks, a flip every 100 ms for ${secs}s" \
'    health_check:
      http: { path: /healthz }
      interval: 10ms
      no_traffic_interval: 10ms
      timeout: 1s
      unhealthy_threshold: 1
      healthy_threshold: 1' \
'end=$((SECONDS + secs)); while [ $SECONDS -lt $end ]; do touch "$work/fail-a"; sleep 0.1; rm -f "$work/fail-a"; sleep 0.1; done'

run_phase "outlier detection, endpoint A failing every request for ${secs}s at 500 requests/s" \
'    outlier_detection:
      consecutive_5xx: 3
      interval: 50ms
      base_ejection_time: 100ms
      max_ejection_time: 300ms
      max_ejection_percent: 50' \
'touch "$work/fail-a"; "$load" run -c 4 -R 500 -d "${secs}s" "http://127.0.0.1:$listen/" >/dev/null 2>&1 || true'
