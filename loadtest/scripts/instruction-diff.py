#!/usr/bin/env python3
"""Where a feature's instructions per request go: the per-function difference between
two callgrind dumps of the same binary (a plain run and a run with the feature on),
each divided by its run's requests.

    loadtest/scripts/instruction-diff.py BINARY PLAIN_DUMP PLAIN_REQUESTS \
        FEATURE_DUMP FEATURE_REQUESTS [--top N] [--lines]

The dumps come from `instructions-per-request.sh` with `CALLGRIND_ARGS=--dump-instr=yes`
and `KEEP_CALLGRIND=PREFIX` (the script prints each run's requests). Costs are summed per
instruction address, then per function: the outermost function an address was inlined
into (as `addr2line -i` names it), or with `--lines` per innermost source line of
ringway's own. Unlike the whole-process figure, a function's count does not move from
run to run, except the runtime's (the event loop's, the timers'), which move with how
many requests each wake finds: read a feature's cost from its own functions.
Needs llvm-addr2line or binutils' addr2line.
"""
import argparse
import collections
import re
import shutil
import subprocess
import sys


def self_cost(path):
    """Self instructions per address in a callgrind dump written with --dump-instr=yes."""
    cost = collections.Counter()
    addr = 0
    skip_call_line = False
    with open(path) as dump:
        for line in dump:
            if not line or line[0] in "#\n":
                continue
            if line[0].isalpha():
                # `calls=` is followed by the call's inclusive cost: not this address's.
                skip_call_line = line.startswith("calls=")
                continue
            parts = line.split()
            first = parts[0]
            if first.startswith("0x"):
                addr = int(first, 16)
            elif first[0] in "+-":
                step = int(first[1:], 16) if first[1:].startswith("0x") else int(first[1:])
                addr += step if first[0] == "+" else -step
            elif first != "*":
                continue
            if skip_call_line:
                skip_call_line = False
                continue
            if len(parts) >= 3:
                cost[addr] += int(parts[2])
    return cost


def frames(binary, addrs):
    """For each address, its inline frames as (function, file:line), innermost first."""
    tool = shutil.which("llvm-addr2line") or shutil.which("addr2line")
    if tool is None:
        sys.exit("needs llvm-addr2line or addr2line (binutils)")
    out = subprocess.run(
        [tool, "-a", "-f", "-i", "-C", "-e", binary],
        input="\n".join(hex(a) for a in addrs) + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    result, current, i = {}, None, 0
    while i < len(out):
        line = out[i].strip()
        if re.fullmatch(r"0x[0-9a-f]+", line):
            current = int(line, 16)
            result[current] = []
            i += 1
            continue
        if current is not None and i + 1 < len(out):
            result[current].append((line, out[i + 1].strip()))
        i += 2
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binary")
    parser.add_argument("plain_dump")
    parser.add_argument("plain_requests", type=int)
    parser.add_argument("feature_dump")
    parser.add_argument("feature_requests", type=int)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--lines", action="store_true", help="per source line of ringway's")
    args = parser.parse_args()
    a, b = self_cost(args.plain_dump), self_cost(args.feature_dump)
    plain_n, feature_n = args.plain_requests, args.feature_requests
    diff = {k: b[k] / feature_n - a[k] / plain_n for k in set(a) | set(b)}
    total = sum(diff.values())
    addrs = sorted(k for k, v in diff.items() if abs(v) >= 0.01)
    named = frames(args.binary, addrs)
    sums = collections.Counter()
    for addr in addrs:
        chain = named.get(addr) or [("?", "?")]
        if chain[-1][0] in ("?", "??"):
            # No symbol in the binary: a shared library (libc's memcpy, mostly).
            chain = [("(outside the binary: libc's memcpy and the like)", "?")]
        if args.lines:
            own = next((f for f in chain if "/src/" in f[1] or f[1].startswith("src/")), chain[0])
            key = f"{own[1]}  ({chain[-1][0][:60]})"
        else:
            key = chain[-1][0]
        sums[key] += diff[addr]
    print(f"difference per request: {total:.1f}")
    for key, value in sorted(sums.items(), key=lambda kv: -abs(kv[1]))[: args.top]:
        print(f"{value:9.1f}  {key}")


if __name__ == "__main__":
    main()
