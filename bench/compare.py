#!/usr/bin/env python3
"""Side-by-side benchmark of warden-node and Debian's redis-server.

Runs redis-benchmark against both servers in the same run for several rounds and prints the
median ops/s of each and the ratio (warden / redis). Also measures the RSS of each after
loading 1,000,000 keys `SET key:N <10-byte value>`.

Each round starts a fresh pair of servers and runs every test on both back to back (which goes
first alternates), so each warden sample has a redis sample taken seconds apart. The ratio is
the median of those paired ratios: on a shared VM whose speed drifts by ±25 % over minutes, a
pair sees the same machine, while medians of samples taken far apart do not.

At -P 16 each run sends 10x the requests (--requests-pipelined), so that it lasts seconds like
a -P 1 run: a 200,000-request run at -P 16 lasts a third of a second, and one stall of the VM
swings its result by a third.

Usage: bench/compare.py [--rounds 3] [--requests 200000] [--requests-pipelined 2000000]
                        [--tests set,get,...] [--skip-memory] [--pin]
Needs: redis-server and redis-benchmark on PATH, and target/release/warden-node
(cargo build --release -p warden-node).
"""
import argparse
import csv
import io
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

# --pin: run each server on CPU 0 and redis-benchmark on CPU 1 (the same for both servers), so
# neither migrates across cores mid-run; on a 2-core machine this removes most run-to-run noise.
PIN = {"server": [], "client": []}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARDEN = os.environ.get("WARDEN_NODE", os.path.join(ROOT, "target", "release", "warden-node"))
REDIS = os.environ.get("REDIS_SERVER", "redis-server")
TESTS = "set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100,mset"
# redis-benchmark's CSV names for the tests above.
CSV_NAMES = {
    "set": "SET", "get": "GET", "incr": "INCR", "lpush": "LPUSH", "rpop": "RPOP", "sadd": "SADD",
    "hset": "HSET", "zadd": "ZADD", "lrange_100": "LRANGE_100 (first 100 elements)", "mset": "MSET (10 keys)",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ping(port, timeout=10):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            out = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, timeout=2)
            if out.stdout.strip() == "PONG":
                return
            last = out.stdout + out.stderr
        except subprocess.TimeoutExpired as e:
            last = str(e)
        time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not answer PING: {last}")


class Server:
    def __init__(self, kind):
        self.kind = kind
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"bench-{kind}-")
        binary = WARDEN if kind == "warden" else REDIS
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(PIN["server"] + args, cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT)
        wait_ping(self.port)

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True).stdout

    def rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_benchmark(port, tests, requests, pipeline):
    out = subprocess.run(
        PIN["client"] + ["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(requests), "-P", str(pipeline),
         "-t", tests, "--csv", "-q"],
        capture_output=True, text=True, check=True).stdout
    result = {}
    for row in csv.reader(io.StringIO(out)):
        if len(row) >= 2 and row[0] != "test":
            result[row[0]] = float(row[1])
    return result


def cpu_seconds(pid):
    """User + system CPU time of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def measured_run(server, test, requests, pipeline):
    """One test: ops/s, the server's CPU microseconds per request, and how busy the client
    (redis-benchmark) was. When the client is near 100 %, it and not the server sets the pace."""
    cpu, client, wall = cpu_seconds(server.proc.pid), children_cpu(), time.monotonic()
    res = run_benchmark(server.port, test, requests, pipeline)
    wall = time.monotonic() - wall
    return {
        "ops": res.get(CSV_NAMES[test], 0.0),
        "server_us": (cpu_seconds(server.proc.pid) - cpu) / requests * 1e6,
        "client_busy": (children_cpu() - client) / wall,
    }


def throughput(args):
    tests = args.tests.split(",")
    print(f"redis-benchmark -c 50 -n {args.requests} (-P 1) / {args.requests_pipelined} (-P 16), "
          f"{args.rounds} rounds, each test run on both servers back to back")
    print("(ratio: median of the rounds' paired warden/redis ratios, their range in brackets;")
    print(" srv us/req: the server's CPU per request; client %: how busy redis-benchmark was)")
    print(f"{'test':<12}{'-P':>4}{'redis ops/s':>13}{'warden ops/s':>14}{'ratio':>7}{'(range)':>13}"
          f"{'srv us/req r/w':>17}{'client % r/w':>15}")
    worst = None
    for pipeline in (1, 16):
        requests = args.requests if pipeline == 1 else args.requests_pipelined
        samples = {k: {t: [] for t in tests} for k in ("redis", "warden")}
        ratios = {t: [] for t in tests}
        for round_no in range(args.rounds):
            servers = {kind: Server(kind) for kind in ("redis", "warden")}
            try:
                for i, t in enumerate(tests):
                    # Which goes first alternates by round and by test, so neither server
                    # always runs on a machine warmed (or slowed) by the other.
                    order = ("redis", "warden") if (round_no + i) % 2 == 0 else ("warden", "redis")
                    pair = {}
                    for kind in order:
                        pair[kind] = measured_run(servers[kind], t, requests, pipeline)
                        samples[kind][t].append(pair[kind])
                    if pair["redis"]["ops"]:
                        ratios[t].append(pair["warden"]["ops"] / pair["redis"]["ops"])
            finally:
                for server in servers.values():
                    server.stop()
        for t in tests:
            def med(kind, field):
                return statistics.median(x[field] for x in samples[kind][t])
            r, w = med("redis", "ops"), med("warden", "ops")
            ratio = statistics.median(ratios[t]) if ratios[t] else 0
            spread = f"({min(ratios[t]):.2f}-{max(ratios[t]):.2f})" if ratios[t] else ""
            worst = ratio if worst is None else min(worst, ratio)
            print(f"{t:<12}{pipeline:>4}{r:>13.0f}{w:>14.0f}{ratio:>7.2f}{spread:>13}"
                  f"{med('redis', 'server_us'):>9.1f}/{med('warden', 'server_us'):<7.1f}"
                  f"{med('redis', 'client_busy') * 100:>8.0f}/{med('warden', 'client_busy') * 100:<6.0f}")
    print(f"worst ratio: {worst:.2f}")


def load_keys(port, n):
    # RESP for `SET key:N vvvvvvvvvv`, streamed through redis-cli --pipe.
    value = b"v" * 10
    chunks = []
    for i in range(n):
        key = b"key:%d" % i
        chunks.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$10\r\n%s\r\n" % (len(key), key, value))
    data = b"".join(chunks)
    subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=data, capture_output=True, check=True)


def memory(args):
    n = args.keys
    print(f"memory: {n} keys SET key:N <10-byte value>")
    rss = {}
    for kind in ("redis", "warden"):
        server = Server(kind)
        try:
            base = server.rss()
            load_keys(server.port, n)
            dbsize = int(server.cli("dbsize").strip() or 0)
            rss[kind] = server.rss()
            print(f"  {kind:<7} dbsize={dbsize} rss={rss[kind] / 1e6:.1f} MB (empty {base / 1e6:.1f} MB), "
                  f"{(rss[kind] - base) / dbsize:.1f} bytes/key")
        finally:
            server.stop()
    print(f"  ratio warden/redis: {rss['warden'] / rss['redis']:.2f}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--requests", type=int, default=200000)
    p.add_argument("--requests-pipelined", type=int, default=2000000)
    p.add_argument("--tests", default=TESTS)
    p.add_argument("--keys", type=int, default=1000000)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--pin", action="store_true", help="pin servers to CPU 0 and the client to CPU 1")
    args = p.parse_args()
    if args.pin:
        PIN["server"] = ["taskset", "-c", "0"]
        PIN["client"] = ["taskset", "-c", "1"]
    if not os.path.exists(WARDEN):
        sys.exit(f"{WARDEN} not found: run cargo build --release -p warden-node")
    if not args.skip_throughput:
        throughput(args)
    if not args.skip_memory:
        memory(args)


if __name__ == "__main__":
    main()
