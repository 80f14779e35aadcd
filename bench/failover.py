#!/usr/bin/env python3
"""Failover time: warden-sentinel against Debian's redis-sentinel, same settings, same run.

Each trial starts 1 redis-server master, 2 replicas and 3 supervisors (quorum 2,
down-after-milliseconds 1000, failover-timeout 10000, parallel-syncs 1) on loopback, waits
until the group is settled, kills the master with SIGKILL and measures, from the kill:

  all_answer   every supervisor answers the new master to SENTINEL get-master-addr-by-name
  first_write  a client that asks a supervisor for the master and writes to it (the Sentinel
               client protocol) gets its first +OK

Usage: bench/failover.py [--trials 8] [--warden PATH] [--only warden|sentinel]
                         [--nodes redis|PATH-TO-warden-node] [--json FILE]

The data nodes are Debian's redis-server unless --nodes names a warden-node binary (both
supervisor kinds then supervise the same kind of node).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

DOWN_AFTER = 1000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(port, *args, timeout=0.3):
    """Sends one command; returns the reply as a Python value (str, int, list, None) or raises."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")
        return read_reply(f)


def read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode()
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [read_reply(f) for _ in range(n)]
    if kind == b"_":
        return None
    raise RuntimeError("unexpected reply %r" % line)


def wait_for(what, probe, timeout=30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = probe()
            if v:
                return v
            last = v
        except Exception as e:  # noqa: BLE001 - polling a process that may not be up yet
            last = e
        time.sleep(0.02)
    raise TimeoutError("%s; last seen: %r" % (what, last))


class Group:
    def __init__(self, kind, warden_bin, node_bin="redis-server"):
        self.kind = kind
        self.dir = tempfile.mkdtemp(prefix="warden-bench-")
        self.procs = {}
        self.master = free_port()
        self.replicas = [free_port(), free_port()]
        for i, port in enumerate([self.master] + self.replicas):
            d = os.path.join(self.dir, "node%d" % i)
            os.makedirs(d)
            args = [node_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", d]
            if port != self.master:
                args += ["--replicaof", "127.0.0.1", str(self.master)]
            self.spawn(("node", port), args, d)
        self.sentinels = [free_port() for _ in range(3)]
        if kind == "warden":
            raft = [free_port() for _ in range(3)]
            conf = os.path.join(self.dir, "warden.conf")
            with open(conf, "w") as f:
                f.write("bind 127.0.0.1\nsupervisor-auth bench-secret\n")
                for i, p in enumerate(raft):
                    f.write("raft-peer %d 127.0.0.1 %d\n" % (i + 1, p))
                f.write(self.monitor_lines())
            for i, port in enumerate(self.sentinels):
                d = os.path.join(self.dir, "sup%d" % i)
                os.makedirs(d)
                self.spawn(("sup", port), [warden_bin, conf, "--raft-id", str(i + 1), "--port", str(port),
                                          "--dir", d], d)
        else:
            for i, port in enumerate(self.sentinels):
                d = os.path.join(self.dir, "sup%d" % i)
                os.makedirs(d)
                conf = os.path.join(d, "sentinel.conf")
                with open(conf, "w") as f:
                    f.write("port %d\nbind 127.0.0.1\ndir %s\n" % (port, d))
                    f.write(self.monitor_lines())
                self.spawn(("sup", port), ["redis-sentinel", conf], d)

    def monitor_lines(self):
        return ("sentinel monitor mymaster 127.0.0.1 %d 2\n"
                "sentinel down-after-milliseconds mymaster %d\n"
                "sentinel failover-timeout mymaster 10000\n"
                "sentinel parallel-syncs mymaster 1\n") % (self.master, DOWN_AFTER)

    def spawn(self, key, args, d):
        log = open(os.path.join(d, "log"), "wb")
        self.procs[key] = subprocess.Popen(args, cwd=d, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL)

    def settled(self):
        for p in self.replicas:
            if "master_link_status:up" not in command(p, "INFO", "replication"):
                return False
        for s in self.sentinels:
            m = command(s, "SENTINEL", "master", "mymaster")
            d = dict(zip(m[::2], m[1::2]))
            if d["flags"] != "master" or d["num-slaves"] != "2" or d["num-other-sentinels"] != "2":
                return False
            if self.kind == "sentinel" and len(command(s, "SENTINEL", "sentinels", "mymaster")) != 2:
                return False
        return True

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def answer(port):
    try:
        r = command(port, "SENTINEL", "get-master-addr-by-name", "mymaster", timeout=0.1)
        return int(r[1]) if r else None
    except Exception:  # noqa: BLE001 - a supervisor may be busy; treat as "not yet"
        return None


def try_write(sentinel_port):
    addr = answer(sentinel_port)
    if addr is None:
        return False
    try:
        return command(addr, "SET", "bench-key", "v", timeout=0.1) == "OK"
    except Exception:  # noqa: BLE001 - refused, READONLY, timeout: not yet
        return False


def trial(kind, warden_bin, node_bin):
    g = Group(kind, warden_bin, node_bin)
    try:
        wait_for("group to settle", g.settled, timeout=60)
        time.sleep(0.5)  # let periodic work (INFO refreshes, hellos) reach a steady state
        old = g.master
        g.procs[("node", old)].send_signal(signal.SIGKILL)
        t0 = time.monotonic()
        all_answer = first_write = None
        deadline = t0 + 30
        while time.monotonic() < deadline and (all_answer is None or first_write is None):
            now = time.monotonic()
            if all_answer is None:
                answers = [answer(s) for s in g.sentinels]
                if all(a is not None and a != old for a in answers) and len(set(answers)) == 1:
                    all_answer = (time.monotonic() - t0) * 1000
            if first_write is None and try_write(g.sentinels[0]):
                first_write = (time.monotonic() - t0) * 1000
            spent = time.monotonic() - now
            if spent < 0.005:
                time.sleep(0.005 - spent)
        return all_answer, first_write
    finally:
        g.close()


def summary(values):
    ok = [v for v in values if v is not None]
    if not ok:
        return "no successful trial"
    return "median %6.0f ms  max %6.0f ms  min %6.0f ms  (n=%d, failed=%d)" % (
        statistics.median(ok), max(ok), min(ok), len(ok), len(values) - len(ok))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--warden", default=None, help="path to warden-sentinel")
    ap.add_argument("--only", choices=["warden", "sentinel"])
    ap.add_argument("--json", help="write the raw results here")
    ap.add_argument("--nodes", default="redis", help="redis (redis-server) or a warden-node path")
    args = ap.parse_args()
    warden = args.warden
    if warden is None:
        here = os.path.dirname(os.path.abspath(__file__))
        for base in [os.environ.get("CARGO_TARGET_DIR", ""), os.path.join(here, "..", "target")]:
            for profile in ["release", "debug"]:
                cand = os.path.join(base, profile, "warden-sentinel")
                if base and os.path.exists(cand):
                    warden = cand
                    break
            if warden:
                break
    kinds = [args.only] if args.only else ["warden", "sentinel"]
    if "warden" in kinds and not warden:
        sys.exit("warden-sentinel not found; build it (cargo build --release -p warden-sentinel) or pass --warden")
    results = {k: [] for k in kinds}
    # Interleave the systems so machine noise affects both alike.
    for i in range(args.trials):
        for k in kinds:
            a, w = trial(k, warden, "redis-server" if args.nodes == "redis" else args.nodes)
            results[k].append({"all_answer_ms": a, "first_write_ms": w})
            print("trial %d %-8s all supervisors answer new master: %7s ms   first write: %7s ms" % (
                i + 1, k, "%.0f" % a if a else "-", "%.0f" % w if w else "-"), flush=True)
    print()
    for k in kinds:
        print("%-8s all_answer   %s" % (k, summary([r["all_answer_ms"] for r in results[k]])))
        print("%-8s first_write  %s" % (k, summary([r["first_write_ms"] for r in results[k]])))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"down_after_ms": DOWN_AFTER, "warden": warden, "nodes": args.nodes, "results": results},
                      f, indent=2)


if __name__ == "__main__":
    main()
