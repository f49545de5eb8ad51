#!/usr/bin/env python3
"""Generator CPU per request: ringway-load against wrk, same target, same run.

`ringway-load serve` runs on CPU 0; each generator runs on CPU 1 in closed loop with
8 connections for 5 s, alternating ringway-load and wrk, 3 times each. CPU time is the
child's user + system time from getrusage(RUSAGE_CHILDREN) (whole process, start-up
included, for both tools alike); requests are the counts each tool prints. Prints
every run and the medians.

usage: cpu-vs-wrk.py [path/to/ringway-load] [rounds]
"""
import re
import resource
import statistics
import subprocess
import sys
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/ringway-load"
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
PORT = 18099
URL = f"http://127.0.0.1:{PORT}/"


def measured(cmd, pattern):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    m = re.search(pattern, out)
    if not m:
        sys.exit(f"no request count in output of {cmd}:\n{out}")
    n = int(m.group(1))
    return n, user * 1e6 / n, system * 1e6 / n, out


serve = subprocess.Popen(
    ["taskset", "-c", "0", BIN, "serve", "--listen", f"127.0.0.1:{PORT}", "--workers", "1"],
    stderr=subprocess.DEVNULL,
)
time.sleep(0.5)
results = {"ringway-load": [], "wrk": []}
try:
    for r in range(ROUNDS):
        for name in ("ringway-load", "wrk"):
            if name == "wrk":
                cmd = ["taskset", "-c", "1", "wrk", "-t1", "-c8", "-d5s", URL]
                pat = r"(\d+) requests in"
            else:
                cmd = ["taskset", "-c", "1", BIN, "run", "-q", "-c", "8", "-d", "5s",
                       "--threads", "1", URL]
                pat = r"(\d+) requests in"
            n, u, s, out = measured(cmd, pat)
            own = re.search(r"cpu: .*", out)
            print(f"round {r + 1} {name:12} {n:8} requests  {n / 5:9.0f}/s  "
                  f"cpu {u + s:6.2f} us/request (user {u:5.2f}, system {s:5.2f})"
                  + (f"  [self-reported {own.group(0)}]" if own else ""), flush=True)
            results[name].append(u + s)
finally:
    serve.kill()
for name, values in results.items():
    print(f"median {name:12} {statistics.median(values):6.2f} us/request")
