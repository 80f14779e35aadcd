#!/usr/bin/env python3
"""Replication benchmark: warden-node and Debian's redis-server side by side in one run.

For each server (a master and one replica of the same kind):
  1. full sync of 1,000,000 keys (DEBUG POPULATE, 10-byte values), from REPLICAOF until the
     replica reports master_link_status:up with every key, with a disk transfer
     (repl-diskless-sync no) and a diskless one (delay 0);
  2. redis-benchmark SET at -P 1 and -P 16 against the master with the replica attached;
  3. replication lag under the same load (a separate run, so sampling does not cost the
     throughput run CPU): the master's and the replica's offsets sampled every 10 ms; p99 of the byte gap and of the time the replica took to reach each master offset.
Prints each number for both and the ratio warden/redis (time: lower is better; ops: higher).

Usage: bench/replication.py [--keys 1000000] [--requests 200000] [--rounds 3] [--pin]
Needs: redis-server, redis-cli, redis-benchmark; python redis; a release warden-node
(WARDEN_NODE=path, default target/release/warden-node).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (shared helpers: ports, ping, redis-benchmark runner)
import redis  # noqa: E402


# With --pin the master runs on CPU 0 and its replica on CPU 1 (beside redis-benchmark), as
# if on another machine: pinned to one core together, master and replica would trade CPU, and
# whichever replica keeps up best would make its master look slowest.
REPLICA_PIN = []


class Node:
    def __init__(self, kind, *extra, pin=None):
        self.kind = kind
        self.port = compare.free_port()
        self.dir = tempfile.mkdtemp(prefix=f"bench-repl-{kind}-")
        binary = compare.WARDEN if kind == "warden" else compare.REDIS
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--enable-debug-command", "local", "--repl-diskless-sync-delay", "0", *extra]
        self.log = open(os.path.join(self.dir, "log"), "w")
        pin = compare.PIN["server"] if pin is None else pin
        self.proc = subprocess.Popen(pin + args, cwd=self.dir, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        compare.wait_ping(self.port)
        self.client = redis.Redis(port=self.port, decode_responses=True)

    def info(self, field):
        return self.client.info("replication").get(field)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def full_sync(kind, keys, diskless):
    master = Node(kind, "--repl-diskless-sync", "yes" if diskless else "no")
    replica = Node(kind, pin=REPLICA_PIN)
    try:
        master.client.execute_command("DEBUG", "POPULATE", keys, "key", 10)
        started = time.monotonic()
        replica.client.execute_command("REPLICAOF", "127.0.0.1", master.port)
        deadline = started + 120
        while time.monotonic() < deadline:
            if replica.info("master_link_status") == "up" and replica.client.dbsize() == keys:
                return time.monotonic() - started
            time.sleep(0.005)
        raise RuntimeError(f"{kind}: the replica did not sync within 120 s")
    finally:
        replica.stop()
        master.stop()


def load_with_lag(kind, requests, pipeline, measure_lag):
    master = Node(kind)
    replica = Node(kind, "--replicaof", "127.0.0.1", str(master.port), pin=REPLICA_PIN)
    samples = []  # (time, master offset, replica offset)
    stop = threading.Event()

    def sample():
        m = redis.Redis(port=master.port)
        r = redis.Redis(port=replica.port)
        while not stop.is_set():
            t = time.monotonic()
            mo = m.info("replication")["master_repl_offset"]
            ro = r.info("replication")["master_repl_offset"]
            samples.append((t, mo, ro))
            time.sleep(0.01)

    try:
        deadline = time.monotonic() + 30
        while replica.info("master_link_status") != "up":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{kind}: replica never linked")
            time.sleep(0.01)
        # The sampler costs CPU on a small machine, so throughput and lag come from separate
        # runs: only the lag run samples.
        sampler = threading.Thread(target=sample)
        if measure_lag:
            sampler.start()
        ops = compare.run_benchmark(master.port, "set", requests, pipeline).get("SET", 0.0)
        stop.set()
        if measure_lag:
            sampler.join()
    finally:
        replica.stop()
        master.stop()
    gaps = [mo - ro for _, mo, ro in samples]
    lags = []
    j = 0
    for t, mo, _ in samples:
        # The first later sample in which the replica had reached this master offset.
        j = max(j, 0)
        k = next((i for i in range(j, len(samples)) if samples[i][2] >= mo), None)
        if k is None:
            break
        lags.append((samples[k][0] - t) * 1000)
        j = k
    p99 = lambda xs: sorted(xs)[int(len(xs) * 0.99) - 1] if xs else 0.0  # noqa: E731
    return ops, p99(gaps), p99(lags)


def ratio(w, r):
    return w / r if r else float("nan")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--requests", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--pin", action="store_true")
    p.add_argument("--skip-sync", action="store_true", help="only the SET-with-a-replica part")
    args = p.parse_args()
    if args.pin:
        compare.PIN["server"] = ["taskset", "-c", "0"]
        compare.PIN["client"] = ["taskset", "-c", "1"]
        REPLICA_PIN.extend(["taskset", "-c", "1"])
    print(f"full sync of {args.keys} keys, median of {args.rounds} (seconds; lower is better)")
    print(f"{'transfer':<12}{'redis':>10}{'warden':>10}{'ratio':>8}")
    for diskless in (False, True) if not args.skip_sync else ():
        times = {k: [] for k in ("redis", "warden")}
        for _ in range(args.rounds):
            for kind in ("redis", "warden"):
                times[kind].append(full_sync(kind, args.keys, diskless))
        r, w = statistics.median(times["redis"]), statistics.median(times["warden"])
        print(f"{'diskless' if diskless else 'disk':<12}{r:>10.3f}{w:>10.3f}{ratio(w, r):>8.2f}")
    print()
    print(f"SET with one replica attached, -c 50 -n {args.requests}, median of {args.rounds}")
    print(f"{'-P':<4}{'redis ops/s':>13}{'warden ops/s':>14}{'ratio':>7}"
          f"{'redis gap99 B':>15}{'warden gap99 B':>16}{'redis lag99 ms':>16}{'warden lag99 ms':>17}")
    for pipeline in (1, 16):
        res = {k: [] for k in ("redis", "warden")}
        for _ in range(args.rounds):
            for kind in ("redis", "warden"):
                ops = load_with_lag(kind, args.requests, pipeline, False)[0]
                _, gap, lag = load_with_lag(kind, args.requests, pipeline, True)
                res[kind].append((ops, gap, lag))
        med = {k: [statistics.median(x[i] for x in res[k]) for i in range(3)] for k in res}
        r, w = med["redis"], med["warden"]
        print(f"{pipeline:<4}{r[0]:>13.0f}{w[0]:>14.0f}{ratio(w[0], r[0]):>7.2f}"
              f"{r[1]:>15.0f}{w[1]:>16.0f}{r[2]:>16.1f}{w[2]:>17.1f}")


if __name__ == "__main__":
    main()
