#!/usr/bin/env bash
# Issue 22's failure drill: one of two backends killed every 2 s during a load run of
# GETs and POSTs through `ringway-load` (which never retries), on a route retrying
# connect failures, resets and 5xx. Prints each driver's counts; fails on a lost GET or a
# POST sent twice. The test suite runs the same drill for 8 s; this runs it for 30 s
# (or $1 seconds) on release builds.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-30}"
cargo build --release --locked -p ringway -p ringway-load
RINGWAY_KILL_SECS="$secs" RINGWAY_LOAD="$PWD/target/release/ringway-load" \
  cargo test --release --locked -p ringway --test kill_backend -- --nocapture 2>&1 |
  grep -E "GETs|test result|panicked"
