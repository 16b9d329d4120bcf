#!/usr/bin/env python3
"""Master load (SPEC §11): N simulated workers (pyzmq DEALERs speaking Locust's protocol as an
acrida worker would) each send a heartbeat every second and a stats report with E entries every
3 s; the master's CPU is read from /proc over a steady window. The master waits for N+1 workers,
so no test starts: this measures registration, liveness and stats merging alone.

usage: bench/master_load.py [--build build] [--workers 500] [--entries 100] [--window 30]
"""
import argparse
import json
import os
import random
import subprocess
import tempfile
import time

import msgpack
import zmq

TICK = os.sysconf("SC_CLK_TCK")


def entry(i, now):
    hist = []
    rt = {}
    for _ in range(20):
        us = random.randint(100, 200000)
        hist += [random.randint(64, 1500), random.randint(1, 50)]
        ms = us / 1000
        key = round(ms) if ms < 100 else int(round(ms, -1))
        rt[key] = rt.get(key, 0) + 1
    return {"name": "/api/item/%d" % i, "method": "GET", "last_request_timestamp": now,
            "start_time": now - 3, "num_requests": 500, "num_none_requests": 0,
            "num_failures": 5, "total_response_time": 12345.6, "max_response_time": 200.0,
            "min_response_time": 0.1, "total_content_length": 50000, "response_times": rt,
            "num_reqs_per_sec": {int(now) - 2: 160, int(now) - 1: 170, int(now): 170},
            "num_fail_per_sec": {int(now): 5}, "acrida_hist": hist, "acrida_total_us": 12345600}


def report(node, entries, seq):
    now = time.time()
    stats = [entry(i, now) for i in range(entries)]
    total = dict(stats[0], name="Aggregated", method="", num_requests=500 * entries)
    data = {"stats": stats, "stats_total": total, "errors": {}, "user_classes_count": {"U": 10},
            "user_count": 10, "acrida_seq": seq, "acrida_final": False}
    return msgpack.packb(["stats", data, node])


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--workers", type=int, default=500)
    ap.add_argument("--entries", type=int, default=100)
    ap.add_argument("--window", type=float, default=30)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    sc = os.path.join(tmp, "s.lua")
    with open(sc, "w") as f:
        f.write('local acrida = require "acrida"\nacrida.user { name = "U", tasks = { function() end } }\n')
    pf = os.path.join(tmp, "ports")
    master = subprocess.Popen([os.path.join(a.build, "acrida-master"), "-f", sc, "--headless",
                               "--expect-workers", str(a.workers + 1), "--master-bind-host",
                               "127.0.0.1", "--master-bind-port", "0", "--port-file", pf,
                               "-L", "WARNING", "--json"], stdout=subprocess.PIPE,
                              stderr=open(os.path.join(tmp, "master.log"), "wb"))
    while not os.path.exists(pf):
        time.sleep(0.05)
    port = int(dict(l.split("=") for l in open(pf).read().split())["master"])
    ctx = zmq.Context()
    socks = []
    for i in range(a.workers):
        s = ctx.socket(zmq.DEALER)
        node = "fake%d_%032x" % (i, i)
        s.setsockopt(zmq.IDENTITY, node.encode())
        s.setsockopt(zmq.LINGER, 0)
        s.connect("tcp://127.0.0.1:%d" % port)
        s.send(msgpack.packb(["client_ready", "acrida/bench", node]))
        socks.append((s, node))
    blobs = {}
    start = time.monotonic()
    seq = 1
    next_stats = [start + 3 * i / a.workers for i in range(a.workers)]  # spread over 3 s
    next_hb = start
    c0 = t0 = None
    sent = total_sent = 0
    while True:
        now = time.monotonic()
        if c0 is None and now - start > 5:
            c0, t0, sent = cpu(master.pid), now, 0
        if c0 is not None and now - t0 > a.window:
            break
        if now >= next_hb:
            for s, node in socks:
                s.send(msgpack.packb(["heartbeat", {"state": "ready", "current_cpu_usage": 1.0,
                                                    "current_memory_usage": 1 << 20}, node]))
            next_hb += 1
        for i, (s, node) in enumerate(socks):
            if now >= next_stats[i]:
                if node not in blobs:
                    blobs[node] = report(node, a.entries, seq)
                s.send(blobs[node])
                sent += 1
                total_sent += 1
                next_stats[i] += 3
        for s, _ in socks:
            while s.poll(0):
                s.recv()
        time.sleep(0.005)
    c1, t1 = cpu(master.pid), time.monotonic()
    rss = int(open("/proc/%d/status" % master.pid).read().split("VmRSS:")[1].split()[0])
    time.sleep(1)  # let the last reports arrive
    master.terminate()
    out = master.communicate(timeout=60)[0]
    for s, _ in socks:
        s.close()
    ctx.term()
    log = open(os.path.join(tmp, "master.log"), errors="replace").read()
    dropped = log.count("malformed")
    if dropped:
        print("the master dropped %d reports as malformed:\n%s" % (dropped, log[-2000:]))
    doc = json.loads(out)
    merged = [r for r in doc["stats"] if r["name"] == "Aggregated"][0]["num_requests"]
    expected = total_sent * 500 * a.entries
    print("requests merged by the master: %d, sent in reports: %d%s" % (
        merged, expected, "" if merged == expected else "  <-- MISMATCH"))
    print("| workers | entries per report | reports/s merged | master CPU | master RSS |")
    print("|---|---|---|---|---|")
    print("| %d | %d | %.0f | %.1f %% of one core | %.0f MiB |" % (
        a.workers, a.entries, sent / (t1 - t0), 100 * (c1 - c0) / (t1 - t0), rss / 1024))


if __name__ == "__main__":
    main()
