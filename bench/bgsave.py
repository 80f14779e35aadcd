#!/usr/bin/env python3
"""BGSAVE under write load: warden-node and Debian's redis-server side by side in one run.

For each server: load 1,000,000 keys (`SET key:N <10 bytes>`), then run redis-benchmark SET
(-c 50 -P 1, random keys over the loaded key space, so the writes hit keys the save has not
written yet) twice: once without a save, once with a BGSAVE started half a second in. Reports
  - SET p99 latency with the save / without it (issue 3's bar: <= 2x),
  - peak memory during the save / before it (bar: <= 1.25x). Memory is the proportional set
    size (PSS) of the server and, for Redis, of its fork child too, so pages the two share
    are counted once and copy-on-write copies are counted,
  - how long the save took and the largest gap between two SETs acknowledged to one
    probe client (the longest a writer was stalled).
Usage: bench/bgsave.py [--keys 1000000] [--requests 300000] [--pin]
Needs: redis-server, redis-cli, redis-benchmark; a release warden-node (WARDEN_NODE=path).
"""
import argparse
import csv
import io
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402
import redis  # noqa: E402


def pss(pid):
    """Proportional set size of `pid` and its children (Redis's fork child), in bytes."""
    total = 0
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def populate(port, keys):
    c = redis.Redis(port=port)
    pipe = c.pipeline(transaction=False)
    for i in range(keys):
        pipe.set(f"key:{i}", "0123456789")
        if i % 10000 == 9999:
            pipe.execute()
    pipe.execute()


def benchmark(port, requests, keys):
    out = subprocess.run(
        compare.PIN["client"] + ["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(requests), "-P", "1",
                                 "-r", str(keys), "-t", "set", "--csv"],
        capture_output=True, text=True, check=True).stdout
    for row in csv.reader(io.StringIO(out)):
        if row and row[0] == "SET":
            # test, rps, avg, min, p50, p95, p99, max
            return {"rps": float(row[1]), "p99": float(row[6]), "max": float(row[7])}
    raise RuntimeError(out)


def probe(port, stop, gaps):
    """One client SETting about once a millisecond: the longest wait for an acknowledgement.
    It sleeps between SETs so that it does not take a core from the server and the benchmark."""
    c = redis.Redis(port=port)
    worst = 0.0
    while not stop.is_set():
        t = time.monotonic()
        c.set("probe", "x")
        worst = max(worst, time.monotonic() - t)
        time.sleep(0.001)
    gaps.append(worst)


def measure(server, args, save):
    """One benchmark run with the probe and the memory watcher running. With `save`, a BGSAVE
    starts half a second in. Runs without a save do exactly the same watching, so the only
    difference between the two is the save itself."""
    c = redis.Redis(port=server.port)
    stop, gaps = threading.Event(), []
    state = {"peak": 0, "took": None}

    def watch():
        time.sleep(0.5)
        started = time.monotonic()
        if save:
            c.bgsave()
        saving = save
        while not stop.is_set():
            state["peak"] = max(state["peak"], pss(server.proc.pid))
            # INFO is asked in both runs, for the same load.
            in_progress = c.info("persistence")["rdb_bgsave_in_progress"]
            if saving and in_progress == 0:
                state["took"] = time.monotonic() - started
                # The peak is measured during the save only; keep polling so the load on the
                # machine stays the same until the benchmark ends.
                saving = False
                state["final_peak"] = state["peak"]
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    prober = threading.Thread(target=probe, args=(server.port, stop, gaps))
    watcher.start()
    prober.start()
    result = benchmark(server.port, args.requests, args.keys)
    if save:
        # The save may outlast the benchmark: wait for it.
        while c.info("persistence")["rdb_bgsave_in_progress"] == 1:
            time.sleep(0.01)
    stop.set()
    watcher.join()
    prober.join()
    result["stall"] = gaps[0]
    result["peak"] = state.get("final_peak", state["peak"])
    result["took"] = state["took"]
    return result


def run(kind, args):
    server = compare.Server(kind)
    try:
        populate(server.port, args.keys)
        c = redis.Redis(port=server.port)
        plain = measure(server, args, save=False)
        before = pss(server.proc.pid)
        saving = measure(server, args, save=True)
        status = c.info("persistence")["rdb_last_bgsave_status"]
        return dict(plain=plain, saving=saving, before=before, peak=saving["peak"], took=saving["took"],
                    stall=saving["stall"], stall_plain=plain["stall"], status=status)
    finally:
        server.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--requests", type=int, default=300_000)
    p.add_argument("--pin", action="store_true")
    args = p.parse_args()
    if args.pin:
        compare.PIN.update(server=["taskset", "-c", "0"], client=["taskset", "-c", "1"])
    results = {kind: run(kind, args) for kind in ("redis", "warden")}
    print(f"BGSAVE of {args.keys} keys under redis-benchmark SET -c 50 -P 1 -r {args.keys}")
    print(f"{'':32}{'redis':>12}{'warden':>12}")
    rows = [
        ("SET p99 ms without a save", lambda r: r["plain"]["p99"]),
        ("SET p99 ms during the save", lambda r: r["saving"]["p99"]),
        ("  p99 ratio (bar <= 2)", lambda r: r["saving"]["p99"] / r["plain"]["p99"]),
        ("SET ops/s without a save", lambda r: r["plain"]["rps"]),
        ("SET ops/s during the save", lambda r: r["saving"]["rps"]),
        ("memory before MiB (PSS)", lambda r: r["before"] / 2**20),
        ("peak during the save MiB", lambda r: r["peak"] / 2**20),
        ("  peak ratio (bar <= 1.25)", lambda r: r["peak"] / r["before"]),
        ("save took s", lambda r: r["took"]),
        ("longest stalled SET ms", lambda r: r["stall"] * 1000),
        ("  without a save", lambda r: r["stall_plain"] * 1000),
    ]
    for name, f in rows:
        print(f"{name:32}{f(results['redis']):>12.2f}{f(results['warden']):>12.2f}")
    for kind, r in results.items():
        if r["status"] != "ok":
            print(f"{kind}: the save failed ({r['status']})")


if __name__ == "__main__":
    main()
