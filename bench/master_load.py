#!/usr/bin/env python3
"""Master under load: N simulated workers (pyzmq DEALERs speaking the protocol as acrida workers
do) each send a heartbeat every second and a stats report of E entries every 3 s, spread evenly.
The master runs in web mode and nobody starts a test (POST /swarm is never sent): this measures
registration, liveness and stats merging alone. (It ran headless with --expect-workers N+1 and
--json before; a headless master stopped while it waits for workers now exits 1 without a
document, so the web API gives the counts instead; nothing polls it during the window.) Its CPU
is read from /proc over a steady window after a warm-up, and its RSS every 10 s from the end of
registration to the end of the window.

The warm-up (--warmup, 540 s in `make bench`) lets the master's ZeroMQ pipes reach their steady
size before the window starts. libzmq queues the messages of each connection in chunks of 256
messages (16.4 KiB) per direction, keeps one spare chunk per queue, and a chunk's pages become
resident as messages first pass through them: each pipe's memory grows until it has carried 512
messages, which the master-to-worker direction (one heartbeat a second) reaches after 512 s.
That is about 64 KiB per worker, bounded, and over before the window: growth inside the window
is the master's own.

Every report is shaped like an acrida worker's delta, with synthetic but self-consistent content:
the worker's own sequence number (1, 2, 3, ... per worker), entries with their own request and
failure counts and latencies (histogram, Locust's rounded response times, min/max/total agree),
per-second counts at the time of sending, and the errors of its failures; 16 different report
contents rotate over the workers and their reports. At the end each simulated worker registers
again and waits for the master's ack, which the master sends only after it has handled everything
that worker sent before; then the master's /stats/requests says how many reports it merged and
what they added up to, and the master is stopped.

usage: bench/master_load.py [--build build] [--workers 1000] [--entries 100] [--window 600]
                            [--warmup 540]
"""
import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import tempfile
import time
import urllib.request

import msgpack
import zmq

from benchlib import start_web_master, wait_port

TICK = os.sysconf("SC_CLK_TCK")
HIST_SUB_BITS = 6
HIST_BUCKETS = (1 << HIST_SUB_BITS) * (36 - HIST_SUB_BITS + 1)
TEMPLATES = 16  # distinct report contents; worker i's k-th report uses template (i + k) % 16


def hist_index(us):
    """Bucket of @us in the workers' log-linear histogram (common/hist.c acr_hist_index)."""
    if us < 1 << HIST_SUB_BITS:
        return us
    if us >> 36:
        return HIST_BUCKETS - 1
    o = us.bit_length() - 1 - HIST_SUB_BITS
    return (1 << HIST_SUB_BITS) * (o + 1) + (us >> o) - (1 << HIST_SUB_BITS)


def locust_rounded(ms):
    """The key Locust files a response time under in response_times."""
    if ms < 100:
        return round(ms)
    if ms < 1000:
        return int(round(ms, -1))
    return int(round(ms, -2))


def entry_template(rng, name):
    """One entry's counts and latencies: 5-30 distinct latencies around a per-entry median."""
    median_us = rng.choice([300, 2000, 15000, 120000])
    lat = {}
    for _ in range(rng.randint(5, 30)):
        us = max(1, int(rng.lognormvariate(0, 0.6) * median_us))
        lat[us] = lat.get(us, 0) + rng.randint(1, 60)
    n = sum(lat.values())
    hist, rt = {}, {}
    for us, c in lat.items():
        hist[hist_index(us)] = hist.get(hist_index(us), 0) + c
        rt[locust_rounded(us / 1000)] = rt.get(locust_rounded(us / 1000), 0) + c
    total_us = sum(us * c for us, c in lat.items())
    fails = rng.randint(0, n // 20)
    split = sorted(rng.randint(0, n) for _ in range(2))
    return {"name": name, "method": "GET", "n": n, "fails": fails, "hist": hist, "rt": rt,
            "total_us": total_us, "min_us": min(lat), "max_us": max(lat), "size": rng.randint(100, 5000),
            "per_sec": [split[0], split[1] - split[0], n - split[1]]}


def report_template(rng, entries):
    """A report's entries, its total and its errors; only the timestamps change when it is sent."""
    ents = [entry_template(rng, "/api/item/%d" % i) for i in range(entries)]
    for t in ents:
        t["static"] = entry_static(t)
    errors = {}
    for t in ents:
        if t["fails"]:
            err = "HTTPError('500 Server Error for url: %s')" % t["name"]
            key = hashlib.md5(("GET.%s.%s" % (t["name"], err)).encode()).hexdigest()
            errors[key] = {"name": t["name"], "method": "GET", "error": err, "occurrences": t["fails"]}
    return {"entries": ents, "total": total_template(ents), "errors": errors,
            "requests": sum(t["n"] for t in ents)}


def entry_static(t):
    """The fields of an entry that do not depend on the time of sending."""
    return {"name": t["name"], "method": t["method"], "num_requests": t["n"], "num_none_requests": 0,
            "num_failures": t["fails"], "total_response_time": t["total_us"] / 1000,
            "max_response_time": t["max_us"] / 1000, "min_response_time": t["min_us"] / 1000,
            "total_content_length": t["n"] * t["size"], "response_times": t["rt"],
            "acrida_hist": [x for kv in sorted(t["hist"].items()) for x in kv],
            "acrida_total_us": t["total_us"]}


def entry_dict(t, now):
    s = int(now)
    d = dict(t["static"])
    d["last_request_timestamp"] = now
    d["start_time"] = now - 3
    d["num_reqs_per_sec"] = {s - 2: t["per_sec"][0], s - 1: t["per_sec"][1], s: t["per_sec"][2]}
    d["num_fail_per_sec"] = {s: t["fails"]} if t["fails"] else {}
    return d


def total_template(ents):
    hist, rt = {}, {}
    for t in ents:
        for k, c in t["hist"].items():
            hist[k] = hist.get(k, 0) + c
        for k, c in t["rt"].items():
            rt[k] = rt.get(k, 0) + c
    agg = {"name": "Aggregated", "method": "", "n": sum(t["n"] for t in ents),
           "fails": sum(t["fails"] for t in ents), "hist": hist, "rt": rt,
           "total_us": sum(t["total_us"] for t in ents),
           "min_us": min(t["min_us"] for t in ents), "max_us": max(t["max_us"] for t in ents),
           "size": 0, "per_sec": [sum(t["per_sec"][i] for t in ents) for i in range(3)]}
    agg["static"] = entry_static(agg)
    agg["static"]["total_content_length"] = sum(t["n"] * t["size"] for t in ents)
    return agg


def report(node, template, seq):
    now = time.time()
    data = {"stats": [entry_dict(t, now) for t in template["entries"]],
            "stats_total": entry_dict(template["total"], now), "errors": template["errors"],
            "user_classes_count": {"U": 10}, "user_count": 10, "acrida_seq": seq,
            "acrida_final": False}
    return msgpack.packb(["stats", data, node])


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Fleet:
    """The simulated workers: one DEALER each, polled together."""

    def __init__(self, port, n):
        self.ctx = zmq.Context()
        self.poller = zmq.Poller()
        self.socks = []
        for i in range(n):
            s = self.ctx.socket(zmq.DEALER)
            node = "fake%d_%032x" % (i, i)
            s.setsockopt(zmq.IDENTITY, node.encode())
            s.setsockopt(zmq.LINGER, 0)
            s.connect("tcp://127.0.0.1:%d" % port)
            self.poller.register(s, zmq.POLLIN)
            self.socks.append((s, node))

    def register(self, nodes=None):
        for s, node in self.socks:
            if nodes is None or node not in nodes:
                s.send(msgpack.packb(["client_ready", "acrida/bench", node]))

    def register_all(self, timeout=120):
        """client_ready from every worker, sent again every second by those without an ack, as
        real workers retry (the master admits new ids at its --registration-rate, 200/s by
        default); returns the acked node ids."""
        acked = set()
        deadline = time.monotonic() + timeout
        while len(acked) < len(self.socks) and time.monotonic() < deadline:
            self.register(acked)
            until = time.monotonic() + 1
            while len(acked) < len(self.socks) and time.monotonic() < until:
                self.receive(100, lambda s, m: m[0] == "ack" and acked.add(m[2]))
        return acked

    def receive(self, timeout_ms, on_msg):
        for s, _ in self.poller.poll(timeout_ms):
            while s.poll(0):
                on_msg(s, msgpack.unpackb(s.recv(), raw=False, strict_map_key=False))

    def close(self):
        for s, _ in self.socks:
            s.close()
        self.ctx.term()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(f.read().split("VmRSS:")[1].split()[0])


def drive(fleet, master, templates, window, warmup):
    """Heartbeats and reports until the measuring window, which starts @warmup s after the first
    report, ends; returns what was sent, the master's CPU over the window, and its RSS sampled
    every 10 s from the start, with the index of the sample taken at the window's start."""
    n = len(fleet.socks)
    rss = []
    seq = [0] * n
    sent = {"reports": 0, "requests": 0, "in_window": 0}
    start = time.monotonic()
    next_stats = [start + 3 * i / n for i in range(n)]
    next_hb = start
    c0 = t0 = None
    first = 0
    while True:
        now = time.monotonic()
        if now - start >= 10 * len(rss):
            rss.append(rss_kib(master.pid))
        if c0 is None and now - start > warmup:
            c0, t0, sent["in_window"] = cpu(master.pid), now, 0
            rss.append(rss_kib(master.pid))
            first = len(rss) - 1
        if c0 is not None and now - t0 > window:
            rss.append(rss_kib(master.pid))
            return sent, (cpu(master.pid) - c0) / (now - t0), now - t0, (rss, first)
        if now >= next_hb:
            for s, node in fleet.socks:
                s.send(msgpack.packb(["heartbeat", {"state": "ready", "current_cpu_usage": 1.0,
                                                    "current_memory_usage": 1 << 20}, node]))
            next_hb += 1
        for i, (s, node) in enumerate(fleet.socks):
            if now >= next_stats[i]:
                seq[i] += 1
                t = templates[(i + seq[i]) % len(templates)]
                s.send(report(node, t, seq[i]))
                sent["reports"] += 1
                sent["in_window"] += 1
                sent["requests"] += t["requests"]
                next_stats[i] += 3
        wake = min(min(next_stats), next_hb)
        fleet.receive(max(0, int((wake - time.monotonic()) * 1000)), lambda s, m: None)


def drain(fleet, timeout=120):
    """Each worker registers again; its ack comes after everything it sent before was handled."""
    return len(fleet.register_all(timeout))


def run(build, workers, entries, window, warmup=5):
    tmp = tempfile.mkdtemp(prefix="acrida-master-load-")
    try:
        return run_in(tmp, build, workers, entries, window, warmup)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_in(tmp, build, workers, entries, window, warmup):
    rng = random.Random(20261130)
    templates = [report_template(rng, entries) for _ in range(TEMPLATES)]
    master, pf, log_path = start_web_master(tmp, build)
    fleet = Fleet(wait_port(pf, master), workers)
    try:
        registered = len(fleet.register_all())
        if registered != workers:
            raise RuntimeError("only %d of %d simulated workers registered" % (registered, workers))
        sent, cpu_share, span, rss = drive(fleet, master, templates, window, warmup)
        acked = drain(fleet)
        web = dict(l.split("=") for l in open(pf).read().split())["web"]
        with urllib.request.urlopen("http://127.0.0.1:%s/stats/requests" % web, timeout=60) as r:
            doc = json.loads(r.read())
        master.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while master.poll() is None and time.monotonic() < deadline:
            fleet.receive(100, lambda s, m: m[0] == "quit" and s.send(msgpack.packb(["quit", None, m[2]])))
    finally:
        fleet.close()
        if master.poll() is None:
            master.kill()
        master.wait()
    log = open(log_path, errors="replace").read()
    agg = [r for r in doc["stats"] if r["name"] == "Aggregated"][0]
    return {"workers": workers, "entries": entries, "window": span, "warmup": warmup,
            "sent": sent, "acked": acked,
            "merged_reports": doc["reports_merged"], "merged_requests": agg["num_requests"],
            "cpu": cpu_share, "rss_kib": rss, "malformed": log.count("malformed"),
            "seq_warnings": log.count("out of order") + log.count("missing (lost interval)")}


def table(r):
    """The result as printed by `make bench` (bench/bench.py) and by this script."""
    s = r["sent"]
    series, first = r["rss_kib"]
    rss = series[first:]
    mid = rss[len(rss) // 2]
    return [
        "| workers | entries per report | warm-up | window | reports/s sent in the window | "
        "master CPU | master RSS at the window's start, middle, end (max) |",
        "|---|---|---|---|---|---|---|",
        "| %d | %d | %.0f s | %.0f s | %.0f | %.1f %% of one core | %.1f, %.1f, %.1f (%.1f) MiB |" % (
            r["workers"], r["entries"], r["warmup"], r["window"], s["in_window"] / r["window"],
            100 * r["cpu"], rss[0] / 1024, mid / 1024, rss[-1] / 1024, max(rss) / 1024),
        "",
        "RSS growth over the window: %+.1f MiB, over its second half: %+.1f MiB (%d samples, one "
        "every 10 s)." % ((rss[-1] - rss[0]) / 1024, (rss[-1] - mid) / 1024, len(rss)),
        "",
        "RSS about every 60 s from the end of registration to the end of the window (MiB; the "
        "window starts at %.0f s): %s." % (r["warmup"], ", ".join(
            "%.1f" % (k / 1024) for k in series[::6] + ([series[-1]] if len(series) % 6 != 1 else []))),
        "",
        "| | sent | merged by the master |",
        "|---|---|---|",
        "| reports | %d | %d |" % (s["reports"], r["merged_reports"]),
        "| requests in them | %d | %d |" % (s["requests"], r["merged_requests"]),
        "",
        "Workers drained (acked a second registration): %d of %d; frames dropped as malformed: %d; "
        "sequence gaps or reorderings logged: %d." % (r["acked"], r["workers"], r["malformed"],
                                                        r["seq_warnings"]),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--workers", type=int, default=1000)
    ap.add_argument("--entries", type=int, default=100)
    ap.add_argument("--window", type=float, default=600)
    ap.add_argument("--warmup", type=float, default=540,
                    help="seconds of load before the window starts (see the docstring)")
    a = ap.parse_args()
    # one DEALER per simulated worker, and the master inherits the limit: its default soft
    # limit (1024) is below 1000 workers' connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print("\n".join(table(run(os.path.abspath(a.build), a.workers, a.entries, a.window,
                                a.warmup))))


if __name__ == "__main__":
    main()
