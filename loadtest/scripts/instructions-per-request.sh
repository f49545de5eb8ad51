#!/usr/bin/env bash
# User-space instructions per proxied request, counted by valgrind's callgrind: unlike
# time, the count does not move with a noisy machine, so a change to ringway's own code
# can be judged from one run. (Kernel work, most of a hop, is not counted: use
# `ringway-load compare` for that.)
#
#   loadtest/scripts/instructions-per-request.sh [RINGWAY_BINARY...]
#
# For each binary (default: target/release/ringway): start the bundled upstream, start
# ringway under callgrind (one worker, epoll driver: valgrind does not follow io_uring's
# shared rings), warm up 4 keep-alive connections, zero the counters, send a closed-loop
# load for 5 s, dump, and print total instructions / requests. Needs valgrind
# (apt-get install valgrind) and a release build (cargo build --release --workspace).
#
# ENVOY=1 writes the same listener, route and cluster as an Envoy v3 bootstrap instead
# (Envoy's header processing, `x-envoy-upstream-service-time`; ENVOY_HCM adds lines to
# its http_connection_manager, indented 10 spaces, e.g. an access log).
#
# TLS=1 terminates TLS on the listener (an ECDSA P-256 certificate made by openssl for
# the run, TLS 1.3) and loads it over keep-alive https connections: TLS's cost per
# request over the plain route, with the same binary.
#
# TOP_KEYS adds top-level sections to the native config (e.g. an `access_log`), and
# LISTENER_KEYS keys to its listener (YAML lines, indented 4 spaces). Tracing at 1 %,
# spans exported to the bundled upstream:
#   TOP_KEYS=$'tracing: { provider: otlp, collector: { cluster: upstream } }\n' \
#   LISTENER_KEYS=$'    tracing: { sampling: 1% }\n' loadtest/scripts/instructions-per-request.sh
#
# CALLGRIND_ARGS adds options to callgrind, e.g. `--dump-instr=yes` (with KEEP_CALLGRIND=
# PREFIX, which keeps each run's dump as PREFIX.<binary's name>) for per-instruction counts.
#
# HEADER adds one request header to every request of the load (e.g. a token:
#   HEADER="authorization: Bearer $TOKEN").
#
# ENDPOINTS=N gives the cluster N endpoints, 127.0.0.1 .. 127.0.0.N on the upstream's
# port (the upstream then listens on 0.0.0.0), and CLUSTER_KEYS adds keys to the cluster
# (indented 4 spaces), e.g. a 10-endpoint least-request cluster:
#   ENDPOINTS=10 CLUSTER_KEYS=$'    load_balancing: { policy: least_request }\n' ...
#
# ROUTE_ACTION replaces the route's `cluster: upstream` (one line), e.g. a weighted split:
#   ROUTE_ACTION='weighted_clusters: { clusters: [{ name: upstream, weight: 9 }, { name: upstream, weight: 1 }] }'
#
# ROUTE_KEYS adds keys to the one route (YAML lines, indented 8 spaces), to measure a
# feature's cost over the plain route with the same binary, e.g.
#   ROUTE_KEYS=$'        prefix_rewrite: /v2/\n' loadtest/scripts/instructions-per-request.sh
#
# The count per request is not quite independent of the machine: the event loop's share
# shrinks when each wake finds more requests, which a busy machine causes (a build
# beside the runs read a plain route 10 % lower, 2026-12-07). A run warns on stderr
# when the machine's CPUs were less than 80 % idle in the second before it starts;
# compare runs made in the same state.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 1; }
load=target/release/ringway-load
[ -x "$load" ] || { echo "build first: cargo build --release --workspace"; exit 1; }
[ $# -gt 0 ] || set -- target/release/ringway
idle_percent() { # the CPUs' idle share over one second, from /proc/stat
  local a b
  a=$(head -1 /proc/stat); sleep 1; b=$(head -1 /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN {
    n = split(a, x); split(b, y); total = 0
    for (i = 2; i <= n; i++) total += y[i] - x[i]
    print int(100 * (y[5] - x[5] + y[6] - x[6]) / (total ? total : 1)) }'
}
idle=$(idle_percent)
if [ "$idle" -lt 80 ]; then
  echo "warning: the CPUs were $idle % idle before this run: counts read lower on a busy machine" >&2
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(port); listen=$(port)
serve_on=127.0.0.1
endpoints="127.0.0.1:$up"
if [ -n "${ENDPOINTS:-}" ]; then
  serve_on=0.0.0.0
  endpoints=$(seq 1 "$ENDPOINTS" | sed "s/.*/127.0.0.&:$up/" | paste -sd, -)
fi
"$load" serve --listen "$serve_on:$up" --workers 1 --body-size 19 >/dev/null 2>&1 &
scheme=http
tls_keys=""
if [ -n "${TLS:-}" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj /CN=localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
  scheme=https
  tls_keys=$'    tls:\n      certificates:\n        - certificate_chain: '"$work/cert.pem"$'\n          private_key: '"$work/key.pem"$'\n'
fi
cat > "$work/ringway.yaml" <<YAML
workers: 1
listeners:
  - name: bench
    address: 127.0.0.1:$listen
${LISTENER_KEYS:-}${tls_keys}    routes:
      - match: { prefix: / }
        ${ROUTE_ACTION:-cluster: upstream}
${ROUTE_KEYS:-}clusters:
  - name: upstream
    endpoints: [$endpoints]
${CLUSTER_KEYS:-}${TOP_KEYS:-}
YAML
extra=()
if [ -n "${ENVOY:-}" ]; then
  extra=(--concurrency 1)
  cat > "$work/ringway.yaml" <<YAML
static_resources:
  listeners:
  - name: bench
    address: { socket_address: { address: 127.0.0.1, port_value: $listen } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
${ENVOY_HCM:-}          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: { prefix: / }
                route: { cluster: upstream }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: $up } } }
YAML
fi
load_args=()
[ -n "${HEADER:-}" ] && load_args=(-H "$HEADER")
for binary in "$@"; do
  # shellcheck disable=SC2086 # CALLGRIND_ARGS is words (e.g. --dump-instr=yes)
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" ${CALLGRIND_ARGS:-} \
    "$binary" -c "$work/ringway.yaml" "${extra[@]}" --log-level warn --driver epoll >"$work/vg.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$listen") 2>/dev/null && break
    sleep 0.1
  done
  "$load" run -k -c 4 -t 1 -d 2s "${load_args[@]}" "$scheme://127.0.0.1:$listen/" >/dev/null 2>&1
  # A pause of SETTLE seconds (default 1.5) after the warm-up and after the load, for
  # every run alike: work a request leaves for later (a traced request's spans, handed
  # to the exporter with a batch when its worker's flush interval, 1 s, ends) is then
  # counted in the window of the requests that caused it. Without them, a 5 s window
  # exported the warm-up's last second of spans and kept its own last second: about
  # 6 s of spans for 5 s of requests, at 1 % sampling.
  sleep "${SETTLE:-1.5}"
  callgrind_control -z "$pid" >/dev/null 2>&1
  requests=$("$load" run -k -c 4 -t 1 -d 5s "${load_args[@]}" "$scheme://127.0.0.1:$listen/" 2>/dev/null | awk '/requests in/ {print $1}')
  sleep "${SETTLE:-1.5}"
  callgrind_control -d "$pid" >/dev/null 2>&1
  sleep 1
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  dump=$(ls -t "$work"/cg.*.1 2>/dev/null | head -1)
  total=$(awk '/^summary:/ {print $2}' "$dump")
  echo "$binary: $((total / requests)) instructions/request ($total over $requests requests)"
  [ -n "${KEEP_CALLGRIND:-}" ] && cp "$dump" "$KEEP_CALLGRIND.$(basename "$binary")"
  rm -f "$work"/cg.*
done
