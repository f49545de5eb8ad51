#!/usr/bin/env bash
# Latency of allowed requests under a rate limit at twice its rate, against the same
# load on the same route without a limit (issue 20's budget: p50 and p90 within 10%).
#
#   loadtest/scripts/rate-limit-latency.sh [RINGWAY_BINARY] [REPETITIONS]
#
# One ringway (2 workers) with two listeners on 0.0.0.0: `open` (no limit) and
# `limited` (100 requests/s per query parameter `k`, burst 100), both forwarding to the
# bundled upstream. The load is open loop at 4,000 requests/s on 20 keep-alive
# connections over 20 keys (URLs `/?k=1` .. `/?k=20`, rotated request by request):
# 200/s per key, twice the limit.
# The two listeners are loaded alternately, REPETITIONS times (default 5), 5 s each;
# the script prints each run's 2xx p50/p90 (ringway-load's "2xx only" line) and the
# medians.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${1:-target/release/ringway}
reps=${2:-5}
load=target/release/ringway-load
[ -x "$load" ] || { echo "build first: cargo build --release --workspace"; exit 1; }
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up=$(port); open=$(port); limited=$(port)
"$load" serve --listen "127.0.0.1:$up" --workers 1 --body-size 19 >/dev/null 2>&1 &
cat > "$work/ringway.yaml" <<YAML
workers: 2
listeners:
  - name: open
    address: 0.0.0.0:$open
    routes:
      - match: { prefix: / }
        cluster: upstream
  - name: limited
    address: 0.0.0.0:$limited
    routes:
      - match: { prefix: / }
        cluster: upstream
        rate_limit: { rate: 100/s, key: { query: k } }
clusters:
  - name: upstream
    endpoints: [127.0.0.1:$up]
YAML
"$bin" -c "$work/ringway.yaml" --log-level warn >/dev/null 2>&1 &
sleep 1
urls() { for i in $(seq 1 20); do printf 'http://127.0.0.1:%s/?k=%s ' "$1" "$i"; done; }
declare -A p50 p90 ok
for rep in $(seq "$reps"); do
  for mode in open limited; do
    port=$open; [ "$mode" = limited ] && port=$limited
    # shellcheck disable=SC2046
    out=$("$load" run -c 20 -t 1 -d 5s --warmup 1s -R 4000 $(urls "$port") 2>&1)
    line=$(grep '2xx only' <<<"$out")
    a=$(sed -E 's/.*p50 ([^,]+),.*/\1/' <<<"$line"); b=$(sed -E 's/.*p90 ([^,]+),.*/\1/' <<<"$line")
    s=$(sed -nE 's/.*Status: 1xx [0-9]+, 2xx ([0-9]+),.*/\1/p' <<<"$out")
    echo "$mode run $rep: 2xx $s, p50 $a, p90 $b"
    p50[$mode]+="$a "; p90[$mode]+="$b "; ok[$mode]+="$s "
  done
done
median() { tr ' ' '\n' | grep -v '^$' | python3 -c '
import sys,statistics
def us(t):
    t=t.strip()
    for suf,m in (("us",1),("µs",1),("ms",1000),("s",1e6)):
        if t.endswith(suf): return float(t[:-len(suf)])*m
    return float(t)
v=[us(l) for l in sys.stdin if l.strip()]
print(f"{statistics.median(v):.0f}us")'; }
for mode in open limited; do
  echo "$mode: median 2xx p50 $(median <<<"${p50[$mode]}"), p90 $(median <<<"${p90[$mode]}"), 2xx per run ${ok[$mode]}"
done
