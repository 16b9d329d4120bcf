#!/usr/bin/env python3
"""acrida benchmarks against wrk and Locust (SPEC §11, issue #3).

Throughput/CPU: nginx (one worker, a static 100-byte file, keep-alive) pinned to core 0; each
generator pinned to core 1, in interleaved rounds: wrk, acrida (master + one worker), Locust
FastHttpUser, Locust HttpUser. Requests are counted by nginx's stub_status over a steady-state
window that starts after a warm-up, so every tool is measured the same way; generator CPU comes
from /proc/<pid>/stat (user + system, every process of the generator) over the same window.
Latency p50/p99 are each tool's own whole-run figures.

Memory: one acrida worker holding N idle users (each made one request and keeps its keep-alive
connection, then waits an hour), RSS growth per user at 10k and 100k users, nginx listening on
several ports so the connections do not exhaust the ephemeral ports of one address pair.

Output: a markdown report on stdout and in bench/results/latest.md.
"""
import argparse
import csv
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def raise_nofile():
    """Raises the soft fd limit to the hard one (this sandbox's hard limit is 20000)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / TICK


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


class Nginx:
    def __init__(self, tmp, nports=1):
        self.dir = os.path.join(tmp, "nginx")
        www = os.path.join(self.dir, "www")
        os.makedirs(www)
        with open(os.path.join(www, "100b.txt"), "w") as f:
            f.write("x" * 99 + "\n")
        self.ports = [free_port() for _ in range(nports)]
        listen = "\n".join("listen 127.0.0.1:%d backlog=65535;" % p for p in self.ports)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""
user root;
worker_processes 1;
worker_rlimit_nofile 400000;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
daemon off;
events { worker_connections 300000; use epoll; multi_accept on; }
http {
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 3600s;
  server {
    %(listen)s
    root %(www)s;
    location = /nginx_status { stub_status; }
  }
}
""" % {"d": self.dir, "listen": listen, "www": www})
        self.proc = subprocess.Popen(["taskset", "-c", "0", "nginx", "-c", conf, "-p", self.dir],
                                     preexec_fn=raise_nofile, stderr=subprocess.DEVNULL)
        self.url = "http://127.0.0.1:%d" % self.ports[0]
        deadline = time.time() + 10
        while True:
            try:
                self.requests()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    def requests(self):
        with urllib.request.urlopen(self.url + "/nginx_status", timeout=5) as r:
            text = r.read().decode()
        return int(text.splitlines()[2].split()[2])

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure_window(nginx, pids_fn, warm, window):
    """Counts requests (nginx) and generator CPU over [warm, warm+window] seconds from now."""
    time.sleep(warm)
    pids = pids_fn()
    r0, c0, t0 = nginx.requests(), cpu_seconds(pids), time.monotonic()
    time.sleep(window)
    r1, c1, t1 = nginx.requests(), cpu_seconds(pids), time.monotonic()
    n = r1 - r0 - 1  # the second status request itself
    return {"requests": n, "rps": n / (t1 - t0), "cpu_us_per_req": (c1 - c0) * 1e6 / max(n, 1),
            "cpu_util": (c1 - c0) / (t1 - t0)}


def parse_wrk_latency(text, pct):
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)\s*$" % pct, text, re.M)
    if not m:
        return None
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v if unit == "ms" else v * 1000


def run_wrk(nginx, args, tmp):
    dur = args.warm + args.window + args.tail
    p = subprocess.Popen(["taskset", "-c", "1", "wrk", "-t1", "-c%d" % args.users,
                          "-d%ds" % dur, "--latency", nginx.url + "/100b.txt"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    res = measure_window(nginx, lambda: [p.pid], args.warm, args.window)
    out = p.communicate(timeout=dur + 30)[0].decode()
    res["p50_ms"], res["p99_ms"] = parse_wrk_latency(out, 50), parse_wrk_latency(out, 99)
    return res


def run_acrida(nginx, args, tmp):
    dur = args.warm + args.window + args.tail
    build = os.path.abspath(args.build)
    pf = os.path.join(tmp, "acrida.ports")
    if os.path.exists(pf):
        os.unlink(pf)
    master = subprocess.Popen(
        ["taskset", "-c", "1", os.path.join(build, "acrida-master"), "-f",
         os.path.join(HERE, "acrida_get.lua"), "-H", nginx.url, "-u", str(args.users), "-r",
         str(args.users * 10), "-t", "%ds" % dur, "--headless", "--only-summary", "--json",
         "--expect-workers", "1", "--master-bind-host", "127.0.0.1", "--master-bind-port", "0",
         "--port-file", pf], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tmp)
    port = None
    while port is None:
        try:
            port = int(dict(l.split("=") for l in open(pf).read().split())["master"])
        except (FileNotFoundError, KeyError, ValueError):
            time.sleep(0.02)
    worker = subprocess.Popen(["taskset", "-c", "1", os.path.join(build, "acrida-worker"),
                               "--master-host", "127.0.0.1", "--master-port", str(port)],
                              stderr=subprocess.DEVNULL, cwd=tmp)
    res = measure_window(nginx, lambda: [master.pid, worker.pid], args.warm, args.window)
    out = master.communicate(timeout=dur + 60)[0].decode()
    worker.wait(30)
    doc = json.loads(out)
    agg = [r for r in doc["stats"] if r["name"] == "Aggregated"][0]
    res["p50_ms"] = agg["response_time_percentiles"]["50"]
    res["p99_ms"] = agg["response_time_percentiles"]["99"]
    return res


def run_locust(nginx, args, tmp, which):
    dur = args.warm + args.window + args.tail
    prefix = os.path.join(tmp, "locust_" + which)
    p = subprocess.Popen(["taskset", "-c", "1", "locust", "-f",
                          os.path.join(HERE, "locust_%s.py" % which), "--headless", "-u",
                          str(args.users), "-r", str(args.users), "-t", "%ds" % dur, "-H",
                          nginx.url, "--csv", prefix, "--only-summary"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    res = measure_window(nginx, lambda: [p.pid] + children(p.pid), args.warm + 2, args.window)
    p.wait(dur + 60)
    with open(prefix + "_stats.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    agg = rows[-1]
    res["p50_ms"] = float(agg["50%"]) if agg["50%"] != "N/A" else None
    res["p99_ms"] = float(agg["99%"]) if agg["99%"] != "N/A" else None
    return res


def idle_memory(args, tmp, users):
    """Per-user RSS of idle users. Users hold an open keep-alive connection when the fd limit
    allows one per user; otherwise (100k users against a 20000 hard limit) they idle before
    their first request, which SPEC §11's "idle user with long waits" also covers."""
    nports = max(1, (users + 11999) // 12000)
    connect = users + 200 < resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    sub = os.path.join(tmp, "idle%d" % users)
    os.makedirs(sub)
    nginx = Nginx(sub, nports)
    build = os.path.abspath(args.build)
    scenario = os.path.join(HERE, "acrida_idle.lua")
    env = dict(os.environ, BENCH_PORTS=",".join(map(str, nginx.ports)),
               BENCH_CONNECT="1" if connect else "0")
    # The worker starts first, with the scenario loaded, and waits for a master that does not
    # exist yet: its RSS then is the baseline with zero users.
    port = free_port()
    worker = subprocess.Popen([os.path.join(build, "acrida-worker"), "--master-host", "127.0.0.1",
                               "--master-port", str(port), "-f", scenario],
                              stderr=subprocess.DEVNULL, cwd=tmp, env=env, preexec_fn=raise_nofile)
    time.sleep(1.5)
    base = rss_bytes(worker.pid)
    master = subprocess.Popen(
        [os.path.join(build, "acrida-master"), "-f", scenario, "-H", nginx.url, "-u", str(users),
         "-r", str(max(1000, users // 10)), "--headless", "--only-summary", "--expect-workers", "1",
         "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp, env=env)
    # Wait until every user runs (and, with connections, nginx served one request per user).
    deadline = time.time() + 180
    if connect:
        while nginx.requests() < users and time.time() < deadline:
            time.sleep(0.5)
    else:
        time.sleep(users / max(1000, users // 10) + 3)
    served = nginx.requests() - 1
    time.sleep(3)
    rss = rss_bytes(worker.pid)
    master.send_signal(signal.SIGTERM)
    try:
        master.wait(120)
        worker.wait(60)
    except subprocess.TimeoutExpired:
        master.kill()
        worker.kill()
    nginx.stop()
    return {"users": users, "served": served, "rss_base": base, "rss": rss, "connect": connect,
            "per_user": (rss - base) / users}


def fmt(v, nd=1):
    return "-" if v is None else ("%.*f" % (nd, v))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--users", type=int, default=50)
    ap.add_argument("--warm", type=float, default=3)
    ap.add_argument("--window", type=float, default=6)
    ap.add_argument("--tail", type=float, default=2)
    ap.add_argument("--tools", default="wrk,acrida,fast,http")
    ap.add_argument("--idle", default="10000,100000", help="idle user counts ('' to skip)")
    args = ap.parse_args()
    tools = args.tools.split(",")
    runners = {"wrk": run_wrk, "acrida": run_acrida,
               "fast": lambda n, a, t: run_locust(n, a, t, "fast"),
               "http": lambda n, a, t: run_locust(n, a, t, "http")}
    names = {"wrk": "wrk", "acrida": "acrida", "fast": "Locust FastHttpUser",
             "http": "Locust HttpUser"}
    tmp = tempfile.mkdtemp(prefix="acrida-bench-")
    lines = []
    out = lambda s="": (lines.append(s), print(s, flush=True))
    results = {t: [] for t in tools}
    try:
        nginx = Nginx(tmp)
        out("## Throughput and CPU (nginx on core 0, generator on core 1, %d users/connections)" % args.users)
        out()
        out("| round | tool | req/s | CPU µs/req | CPU util | vs wrk CPU/req | req/s per core vs tool | p50 ms | p99 ms |")
        out("|---|---|---|---|---|---|---|---|---|")
        for rnd in range(1, args.rounds + 1):
            round_res = {}
            for t in tools:
                r = runners[t](nginx, args, tmp)
                round_res[t] = r
                results[t].append(r)
            w = round_res.get("wrk")
            a = round_res.get("acrida")
            for t in tools:
                r = round_res[t]
                ratio = r["cpu_us_per_req"] / w["cpu_us_per_req"] if w else None
                per_core = (a["rps"] / a["cpu_util"]) / (r["rps"] / r["cpu_util"]) if a and t != "acrida" else None
                out("| %d | %s | %.0f | %.1f | %.0f %% | %s | %s | %s | %s |" % (
                    rnd, names[t], r["rps"], r["cpu_us_per_req"], r["cpu_util"] * 100,
                    fmt(ratio, 2) + "x" if ratio else "-",
                    ("acrida %sx" % fmt(per_core, 1)) if per_core else "-",
                    fmt(r["p50_ms"], 3), fmt(r["p99_ms"], 3)))
        nginx.stop()
        out()
        out("Medians over the rounds:")
        out()
        out("| tool | req/s | CPU µs/req | p50 ms | p99 ms |")
        out("|---|---|---|---|---|")
        med = {}
        for t in tools:
            rs = results[t]
            med[t] = {k: statistics.median([r[k] for r in rs if r[k] is not None] or [0])
                      for k in ("rps", "cpu_us_per_req", "p50_ms", "p99_ms", "cpu_util")}
            out("| %s | %.0f | %.1f | %s | %s |" % (names[t], med[t]["rps"], med[t]["cpu_us_per_req"],
                                                   fmt(med[t]["p50_ms"], 3), fmt(med[t]["p99_ms"], 3)))
        if args.idle:
            out()
            out("## Memory per idle user (one worker process)")
            out()
            out("| users | open connections | requests served | worker RSS before | RSS with users | per user |")
            out("|---|---|---|---|---|---|")
            for n in [int(x) for x in args.idle.split(",") if x]:
                m = idle_memory(args, tmp, n)
                out("| %d | %s | %d | %.1f MiB | %.1f MiB | %.2f KiB |" % (
                    n, "one per user" if m["connect"] else "none (fd limit)", m["served"], m["rss_base"] / 2**20, m["rss"] / 2**20, m["per_user"] / 1024))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "latest.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
