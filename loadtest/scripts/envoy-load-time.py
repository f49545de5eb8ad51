#!/usr/bin/env python3
"""Envoy config loading cost: `--mode validate` time per corpus file, and start to ready
of an Envoy bootstrap beside its native equivalent (alternating, medians).

Usage: loadtest/scripts/envoy-load-time.py [BINARY] [RUNS]
  BINARY defaults to target/release/ringway; RUNS to 21.
Run from the repository root (it reads tests/envoy/corpus).
"""
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BINARY = sys.argv[1] if len(sys.argv) > 1 else "target/release/ringway"
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 21
CORPUS = "tests/envoy/corpus"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def validate_ms(path, extra):
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([BINARY, "--mode", "validate", "--log-level", "error", "-c", path, *extra],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def envoy_config(port, admin):
    text = open(os.path.join(CORPUS, "envoy-ws.yaml")).read()
    text = text.replace("address: 0.0.0.0\n        port_value: 10000",
                        f"address: 127.0.0.1\n        port_value: {port}")
    text = text.replace("address: service-ws\n                port_value: 80",
                        "address: 127.0.0.1\n                port_value: 9")
    text = text.replace("type: STRICT_DNS", "type: STATIC")
    return text + f"admin:\n  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}\n"


def native_config(port, admin):
    return (f"admin: 127.0.0.1:{admin}\nlisteners:\n  - name: l\n    address: 127.0.0.1:{port}\n"
            "    virtual_hosts:\n      - name: app\n        domains: [\"*\"]\n        routes:\n"
            "          - match: { prefix: / }\n            cluster: service_ws\n"
            "clusters:\n  - name: service_ws\n    endpoints: [127.0.0.1:9]\n")


def start_to_ready_ms(make):
    port, admin = free_port(), free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(make(port, admin))
        path = f.name
    start = time.perf_counter()
    proc = subprocess.Popen([BINARY, "-c", path, "--log-level", "error", "--disable-hot-restart"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                    if r.status == 200:
                        return (time.perf_counter() - start) * 1000
            except OSError:
                pass
            if proc.poll() is not None:
                raise SystemExit(f"ringway exited: {proc.returncode}")
            time.sleep(0.0005)
    finally:
        proc.terminate()
        proc.wait()
        os.unlink(path)


def main():
    print(f"binary {BINARY}, {RUNS} runs each, medians")
    print("\n| corpus file | bytes | `--mode validate` ms |\n| --- | --- | --- |")
    for name in sorted(os.listdir(CORPUS)):
        if name.endswith(".yaml"):
            path = os.path.join(CORPUS, name)
            print(f"| {name} | {os.path.getsize(path)} | {validate_ms(path, []):.1f} |")
    native, envoy = [], []
    for _ in range(RUNS):
        native.append(start_to_ready_ms(native_config))
        envoy.append(start_to_ready_ms(envoy_config))
    print("\n| config | start to ready ms (median) | min | max |\n| --- | --- | --- | --- |")
    for label, times in (("native", native), ("Envoy (envoy-ws.yaml remapped)", envoy)):
        print(f"| {label} | {statistics.median(times):.1f} | {min(times):.1f} | {max(times):.1f} |")


if __name__ == "__main__":
    main()
