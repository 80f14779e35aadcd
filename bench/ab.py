#!/usr/bin/env python3
"""A/B of two warden-node builds (not a test): each build serves redis-benchmark -P 16 in turn,
alternating which goes first each round, with the server pinned to CPU 0 and the client to
CPU 1. Prints the median ops/s of each and the server's CPU time per request, which is far
less noisy on a small VM than throughput.

    python3 bench/ab.py OLD_BINARY NEW_BINARY [--rounds 5] [--tests get,incr,sadd,set]
"""
import argparse
import os
import re
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(port, deadline=10.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on {port} did not answer PING")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tests", default="get,incr,sadd,set")
    ap.add_argument("--requests", type=int, default=1_000_000)
    args = ap.parse_args()
    tests = args.tests.split(",")
    bins = [args.old, args.new]
    results = {b: {t: [] for t in tests} for b in bins}
    for r in range(args.rounds):
        for b in bins if r % 2 == 0 else bins[::-1]:
            port = free_port()
            server = subprocess.Popen(
                ["taskset", "-c", "0", b, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_ready(port)
                for t in tests:
                    before = cpu_seconds(server.pid)
                    out = subprocess.run(
                        ["taskset", "-c", "1", "redis-benchmark", "-p", str(port), "-c", "50",
                         "-P", "16", "-n", str(args.requests), "-t", t, "-q"],
                        capture_output=True, text=True,
                    ).stdout
                    spent = cpu_seconds(server.pid) - before
                    ops = float(re.findall(r"([\d.]+) requests per second", out)[-1])
                    results[b][t].append((ops, spent / args.requests * 1e6))
            finally:
                server.terminate()
                server.wait()
    median = lambda xs: sorted(xs)[len(xs) // 2]
    for t in tests:
        line = f"{t:<8}"
        for b in bins:
            ops = median([x[0] for x in results[b][t]])
            us = median([x[1] for x in results[b][t]])
            line += f"  {os.path.basename(b)}: {ops:>9.0f} ops/s {us:.3f} us/req"
        print(line)


if __name__ == "__main__":
    main()
