#!/usr/bin/env python3
"""Persistence benchmark: warden-node and Debian's redis-server side by side in one run.

  1. SAVE of 1,000,000 keys (`SET key:N <10 bytes>`): time and file size;
  2. startup time from that dump.rdb, and from an AOF holding the same 1,000,000 SETs
     (an incremental file of commands, no rewrite): from process start until every key is
     served;
  3. redis-benchmark SET -P 16 with `appendfsync everysec` and with `always`.
Prints both and the ratio warden/redis (time and size: lower is better; ops: higher).

Usage: bench/persistence.py [--keys 1000000] [--requests 200000] [--rounds 3] [--pin]
Needs: redis-server, redis-cli, redis-benchmark; python redis; a release warden-node
(WARDEN_NODE=path, default target/release/warden-node).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402
import redis  # noqa: E402


def start(kind, directory, *extra):
    port = compare.free_port()
    binary = compare.WARDEN if kind == "warden" else compare.REDIS
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *extra]
    log = open(os.path.join(directory, f"log-{port}"), "w")
    proc = subprocess.Popen(compare.PIN["server"] + args, cwd=directory, stdout=log, stderr=subprocess.STDOUT)
    return proc, port


def wait_loaded(port, keys, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=port, socket_timeout=5).dbsize() == keys:
                return
        except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError):
            pass
        time.sleep(0.005)
    raise RuntimeError(f"server on {port} did not load {keys} keys")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def save_and_startup(kind, keys):
    d = tempfile.mkdtemp(prefix=f"bench-persist-{kind}-")
    try:
        proc, port = start(kind, d, "--appendonly", "yes", "--appendfsync", "no")
        compare.wait_ping(port)
        compare.load_keys(port, keys)
        c = redis.Redis(port=port)
        t = time.monotonic()
        c.save()
        save_secs = time.monotonic() - t
        size = os.path.getsize(os.path.join(d, "dump.rdb"))
        stop(proc)
        # From the RDB (AOF off).
        t = time.monotonic()
        proc, port = start(kind, d, "--appendonly", "no")
        wait_loaded(port, keys)
        rdb_secs = time.monotonic() - t
        stop(proc)
        # From the AOF (the 1M SETs in the incremental file).
        t = time.monotonic()
        proc, port = start(kind, d, "--appendonly", "yes")
        wait_loaded(port, keys)
        aof_secs = time.monotonic() - t
        stop(proc)
        return save_secs, size, rdb_secs, aof_secs
    finally:
        shutil.rmtree(d, ignore_errors=True)


def set_with_aof(kind, fsync, requests):
    d = tempfile.mkdtemp(prefix=f"bench-aof-{kind}-")
    try:
        proc, port = start(kind, d, "--appendonly", "yes", "--appendfsync", fsync)
        compare.wait_ping(port)
        try:
            return compare.run_benchmark(port, "set", requests, 16).get("SET", 0.0)
        finally:
            stop(proc)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pin", action="store_true")
    args = p.parse_args()
    if args.pin:
        compare.PIN["server"] = ["taskset", "-c", "0"]
        compare.PIN["client"] = ["taskset", "-c", "1"]
    res = {k: [] for k in ("redis", "warden")}
    for _ in range(args.rounds):
        for kind in ("redis", "warden"):
            res[kind].append(save_and_startup(kind, args.keys))
    med = {k: [statistics.median(x[i] for x in res[k]) for i in range(4)] for k in res}
    r, w = med["redis"], med["warden"]
    print(f"{args.keys} keys, median of {args.rounds}")
    print(f"{'measure':<22}{'redis':>12}{'warden':>12}{'ratio':>8}")
    names = ["SAVE seconds", "dump.rdb bytes", "startup from RDB s", "startup from AOF s"]
    for i, name in enumerate(names):
        print(f"{name:<22}{r[i]:>12.3f}{w[i]:>12.3f}{w[i] / r[i]:>8.2f}")
    print()
    print(f"redis-benchmark SET -P 16 -c 50 -n {args.requests}, median of {args.rounds}")
    print(f"{'appendfsync':<12}{'redis ops/s':>14}{'warden ops/s':>14}{'ratio':>8}")
    for fsync in ("everysec", "always"):
        ops = {k: [] for k in ("redis", "warden")}
        for _ in range(args.rounds):
            for kind in ("redis", "warden"):
                ops[kind].append(set_with_aof(kind, fsync, args.requests))
        r, w = statistics.median(ops["redis"]), statistics.median(ops["warden"])
        print(f"{fsync:<12}{r:>14.0f}{w:>14.0f}{w / r if r else 0:>8.2f}")


if __name__ == "__main__":
    main()
