#!/usr/bin/env bash
# Tracing's cost over the plain route, as the observability issue budgets it: alternated
# pairs (the plain route, then the same route with tracing at RATE, OTLP spans exported
# to the bundled upstream) of `instructions-per-request.sh`, for each binary in turn.
#
#   loadtest/scripts/tracing-budget.sh RATE PAIRS [RINGWAY_BINARY...]
#   e.g. loadtest/scripts/tracing-budget.sh 1% 5 /tmp/base/ringway target/release/ringway
#
# Prints each pair (plain, traced, difference) and, per binary, the medians. The pairs
# spread by a few hundred instructions on a shared two-core machine (how many requests
# each wake of the event loop finds moves the runtime's share), so quote medians of
# several pairs and read a change's own cost from the per-function diff:
# DIFF=DIR keeps each binary's first pair as callgrind dumps in DIR and prints
# `instruction-diff.py` for it.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { sed -n 2,14p "$0"; exit 1; }
rate=$1 pairs=$2
shift 2
[ $# -gt 0 ] || set -- target/release/ringway
tracing_top=$'tracing: { provider: otlp, collector: { cluster: upstream } }\n'
tracing_listener="    tracing: { sampling: $rate }"$'\n'
one() { # binary, traced (0/1), keep prefix or ""
  local args=() keys=()
  [ -n "$3" ] && keys=(CALLGRIND_ARGS=--dump-instr=yes KEEP_CALLGRIND="$3")
  if [ "$2" = 1 ]; then
    env "${keys[@]}" TOP_KEYS="$tracing_top" LISTENER_KEYS="$tracing_listener" \
      loadtest/scripts/instructions-per-request.sh "$1" | tail -1
  else
    env "${keys[@]}" loadtest/scripts/instructions-per-request.sh "$1" | tail -1
  fi
}
declare -A diffs
for i in $(seq "$pairs"); do
  for bin in "$@"; do
    keep_p="" keep_t=""
    if [ -n "${DIFF:-}" ] && [ "$i" = 1 ]; then
      mkdir -p "$DIFF"
      tag=$(echo "$bin" | tr '/' '_')
      keep_p="$DIFF/plain$tag" keep_t="$DIFF/traced$tag"
    fi
    p=$(one "$bin" 0 "$keep_p")
    t=$(one "$bin" 1 "$keep_t")
    pi=$(echo "$p" | awk '{print $2}') ti=$(echo "$t" | awk '{print $2}')
    echo "$bin pair $i: plain $pi, traced at $rate $ti, difference $((ti - pi))"
    diffs[$bin]="${diffs[$bin]:-} $((ti - pi)):$pi"
    if [ -n "$keep_p" ]; then
      pn=$(echo "$p" | sed -E 's/.*over ([0-9]+) requests.*/\1/')
      tn=$(echo "$t" | sed -E 's/.*over ([0-9]+) requests.*/\1/')
      loadtest/scripts/instruction-diff.py "$bin" "$keep_p.$(basename "$bin")" "$pn" \
        "$keep_t.$(basename "$bin")" "$tn" --top 25
    fi
  done
done
for bin in "$@"; do
  python3 - "$bin" "$rate" ${diffs[$bin]} <<'PY'
import statistics, sys
bin, rate, pairs = sys.argv[1], sys.argv[2], [p.split(":") for p in sys.argv[3:]]
d = statistics.median(int(a) for a, _ in pairs)
plain = statistics.median(int(b) for _, b in pairs)
print(f"{bin}: tracing at {rate}: median difference {d:+.0f} over a median plain route of {plain:.0f} ({100 * d / plain:+.1f} %)")
PY
done
