#!/usr/bin/env python3
"""The master under a flood of fake peers (issue #11; docs/benchmarks.md, "Master flood").

One acrida-target, one headless acrida-master running a test (-u 10, -t DURATION) and two real
acrida-worker daemons (node ids real1, real2). Once the test is spawning, a separate process
opens PEERS DEALER sockets with their own identities and, for the rest of the test, each one
sends client_ready every 2 s, a heartbeat every second and every 3 s a stats report of 20 names
never seen before; it never reads what the master sends (an attacker does not). Three variants:

  none     the same test without the flood (the reference);
  keyless  the master without a cluster key: the fakes reach the registration path;
  keyed    master and real workers with --cluster-key: the fakes (no CURVE) fail the handshake.

Per variant: the master's CPU (user + system over the test, /proc/<pid>/stat) and its peak and
final RSS (sampled every 0.5 s), the real workers' throughput (the target's served count over the
test), whether a real worker was ever marked missing (the master's log), the master's count of
the real requests (its GET / row) against the target's served count, the Aggregated count, how
many rows the report has, and the test's wall time against -t.

    bench/master_flood.py --build build [--duration 30 --peers 2000]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from benchlib import (ROOT, TICK, Daemons, raise_nofile, read_port, served, status_kib, wait_for,
                      write_file)

SCENARIO = """
local acrida = require "acrida"
acrida.user { name = "Real", wait_time = acrida.constant(0.01),
  tasks = { function(self) self.client:get("/") end } }
"""


def cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except OSError:
        return None


def flood(port, peers, duration):
    """The fake peers (run in a child process: python3 master_flood.py --flood PORT PEERS S)."""
    import msgpack
    import zmq
    raise_nofile()
    ctx = zmq.Context(io_threads=1)
    ctx.max_sockets = peers + 64
    socks = []
    for i in range(peers):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.IDENTITY, b"fake_%05d" % i)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, 100)
        s.setsockopt(zmq.RCVHWM, 10)
        s.connect("tcp://127.0.0.1:%d" % port)
        socks.append((s, "fake_%05d" % i))
    start = time.monotonic()
    sent = names = 0
    tick = 0
    while time.monotonic() - start < duration:
        now = time.time()
        for i, (s, node) in enumerate(socks):
            frames = [["heartbeat", {"state": "running", "current_cpu_usage": 1.0}, node]]
            if (tick + i) % 2 == 0:
                frames.append(["client_ready", "acrida/flood", node])
            if (tick + i) % 3 == 0:
                ents = []
                for k in range(20):
                    names += 1
                    ents.append({"name": "/flood/%d" % names, "method": "GET",
                                 "last_request_timestamp": now, "start_time": now,
                                 "num_requests": 1, "num_none_requests": 0, "num_failures": 0,
                                 "total_response_time": 1.0, "max_response_time": 1.0,
                                 "min_response_time": 1.0, "total_content_length": 0,
                                 "response_times": {1: 1}, "num_reqs_per_sec": {int(now): 1},
                                 "num_fail_per_sec": {}})
                total = dict(ents[0], name="Aggregated", method="", num_requests=len(ents),
                             response_times={1: len(ents)}, num_reqs_per_sec={int(now): len(ents)})
                frames.append(["stats", {"stats": ents, "stats_total": total, "errors": {},
                                         "user_count": 1}, node])
            for f in frames:
                try:
                    s.send(msgpack.packb(f), zmq.NOBLOCK)
                    sent += 1
                except zmq.Again:
                    pass
        tick += 1
        time.sleep(max(0.0, start + tick - time.monotonic()))
    for s, _ in socks:
        s.close()
    ctx.term()
    print(json.dumps({"frames": sent, "names": names}))


def run_variant(build, variant, duration, peers, tmp):
    d = os.path.join(tmp, variant)
    os.makedirs(d)
    sc = write_file(os.path.join(d, "scenario.lua"), SCENARIO)
    daemons = Daemons(d)

    def start(args, name):
        return daemons.start(name, args, stdout=daemons.file(name + ".out"))

    try:
        target = daemons.target(build)
        key = []
        if variant == "keyed":
            kf = os.path.join(d, "cluster.key")
            subprocess.run([os.path.join(build, "acrida-master"), "--gen-key", kf], check=True,
                           capture_output=True)
            key = ["--cluster-key", kf]
        pf = os.path.join(d, "master.ports")
        master = start([os.path.join(build, "acrida-master"), "-f", sc, "-H",
                        target, "-u", "10", "-r", "100", "-t",
                        "%ds" % duration, "--headless", "--expect-workers", "2", "--json",
                        "--only-summary", "--master-bind-host", "127.0.0.1",
                        "--master-bind-port", "0", "--port-file", pf] + key, "master")
        port = wait_for(lambda: read_port(pf, "master"), what="the master's port")
        for n in ("real1", "real2"):
            start([os.path.join(build, "acrida-worker"), "--master-port", str(port),
                   "--node-id", n, "--exit-on-quit"] + key, n)
        wait_for(lambda: "Sending spawn jobs" in daemons.log("master"), what="the test's start")
        t0, c0 = time.monotonic(), cpu_s(master.pid)
        fl = None
        if variant != "none":
            fl = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--flood", str(port),
                                   str(peers), str(duration)], stdout=subprocess.PIPE, cwd=d)
        peak = 0
        cpu_end = c0
        while master.poll() is None:
            r = status_kib(master.pid, "VmRSS")
            c = cpu_s(master.pid)
            if r:
                peak = max(peak, r)
                final = r
            if c is not None:
                cpu_end = c
            time.sleep(0.5)
            if time.monotonic() - t0 > duration + 120:
                raise RuntimeError("the master did not end its test within -t + 120 s")
        wall = time.monotonic() - t0
        fdoc = json.loads(fl.communicate(timeout=120)[0]) if fl else {"frames": 0, "names": 0}
        count = served(target)
        with open(os.path.join(d, "master.out")) as f:
            doc = json.load(f)
        rows = doc["stats"]
        real = sum(r["num_requests"] for r in rows if r["name"] == "/" and r["method"] == "GET")
        agg = sum(r["num_requests"] for r in rows if r["name"] == "Aggregated")
        mlog = daemons.log("master")
        missing = len(re.findall(r"Worker real\d failed to send heartbeat", mlog))
        return {"variant": variant, "rc": master.returncode, "wall_s": wall,
                "cpu_s": cpu_end - c0, "peak_rss_kib": peak, "final_rss_kib": final,
                "served": count, "master_real": real, "aggregated": agg, "rows": len(rows),
                "real_missing": missing, "rps": count / wall, "fake_frames": fdoc["frames"],
                "fake_names": fdoc["names"],
                "dropped_registrations": len(re.findall(r"registration.*dropped", mlog))}
    finally:
        daemons.stop()


def run(build, duration=30, peers=2000, variants=("none", "keyless", "keyed")):
    keep = os.environ.get("FLOOD_KEEP")
    if keep:
        return [run_variant(build, v, duration, peers, tempfile.mkdtemp(prefix="acrida-flood-")) for v in variants]
    with tempfile.TemporaryDirectory(prefix="acrida-flood-") as tmp:
        return [run_variant(build, v, duration, peers, tmp) for v in variants]


def table(results, duration, peers):
    lines = ["Master flood (bench/master_flood.py): %d fake peers, a %d s test, 10 users on 2 real "
             "workers" % (peers, duration), "",
             "| variant | master CPU | peak RSS | final RSS | real rps | real missing | "
             "master GET / vs target served | Aggregated | rows | wall (-t %d s) | exit |" % duration,
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append("| %s | %.1f s (%.0f %%) | %.1f MiB | %.1f MiB | %.0f | %d | %d vs %d (%s) | %d | "
                     "%d | %.1f s | %d |" % (
                         r["variant"], r["cpu_s"], 100 * r["cpu_s"] / r["wall_s"],
                         r["peak_rss_kib"] / 1024, r["final_rss_kib"] / 1024, r["rps"],
                         r["real_missing"], r["master_real"], r["served"],
                         "exact" if r["master_real"] == r["served"] else "DIFFERENT",
                         r["aggregated"], r["rows"], r["wall_s"], r["rc"]))
    return lines


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--flood":
        flood(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--duration", type=int, default=30)
    ap.add_argument("--peers", type=int, default=2000)
    ap.add_argument("--variants", default="none,keyless,keyed")
    a = ap.parse_args()
    res = run(os.path.abspath(a.build), a.duration, a.peers, a.variants.split(","))
    print("\n".join(table(res, a.duration, a.peers)))
    for r in res:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
