#!/usr/bin/env python3
"""acrida benchmarks against wrk and Locust (issue #3); `make bench` runs this script.

Throughput/CPU: nginx (one worker, a static 100-byte file, keep-alive) pinned to core 0; each
generator pinned to core 1, in interleaved rounds: wrk, acrida (master + one worker), Locust
FastHttpUser, Locust HttpUser. Requests are counted by nginx's stub_status over a steady-state
window that starts after a warm-up, so every tool is measured the same way; generator CPU comes
from /proc/<pid>/stat (user + system, every process of the generator) over the same window.
Latency p50/p99 are each tool's own whole-run figures.

Memory: one acrida worker holding N idle users (each made one request and keeps its keep-alive
connection, then waits an hour), at 10k and 100k users, nginx listening on several ports so the
connections do not exhaust the ephemeral ports of one address pair. The users alive (the master's
count from the worker's reports), the requests they completed and the connections the worker
holds (its ESTABLISHED sockets) are measured, and the RSS growth is divided by the users alive.

Master: bench/master_load.py (1000 simulated workers, 100 entries per report every 3 s, 10 min), and
bench/master_web_load.py: the same load on a master in web mode running a test, with the latency of
GET /stats/requests and the master's CPU with 20 dashboards polling.

Pools: bench/pool_bench.py (lease/release round trips per second through a master and 2 local
workers, and queue/circular next()), with shorter windows than when run alone. Request listeners:
bench/listener_cost.py (the worker's CPU per request with no listener, a trivial one and
examples/forwarder.lua's), in interleaved rounds with shorter windows. Each takes under a minute.

Master flood: bench/master_flood.py (2,000 fake peers flooding client_ready, heartbeats and stats
of new names at a master running a test with 2 real workers: without the flood, keyless, keyed),
a 20 s test per variant, about 2 minutes.

Run on their own and pasted as they print: bench/worker_soak.py (one worker daemon across 100
tests: RSS and fds), bench/million_users.py (1,000,000 users on one worker for 60 s) and
bench/stall_bench.py (a spinning task's detection, SIGTERM to a stuck worker, the watchdog's
cost), about 8 minutes together.

Every figure, the per-round ratios and their medians against the targets are printed; the same
text is saved in bench/results/latest.md, and docs/benchmarks.md shows it unchanged.
"""
import argparse
import csv
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import (HERE, ROOT, Nginx, loadavg, machine, measure_window, raise_nofile,
                      start_pinned, status_kib, version)
import listener_cost
import master_flood
import master_load
import master_web_load
import pool_bench


def rss_bytes(pid):
    return status_kib(pid, "VmRSS") * 1024


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []


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
    master, worker = start_pinned(os.path.abspath(args.build), tmp,
                                  ["-f", os.path.join(HERE, "acrida_get.lua"), "-H", nginx.url,
                                   "-u", str(args.users), "-r", str(args.users * 10), "-t",
                                   "%ds" % dur])
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


def wait_until(predicate, timeout, step=0.2):
    """Polls @predicate until it is true or @timeout s pass; returns its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(step)
        value = predicate()
    return value


def established_to(pid, ports):
    """Connections @pid holds to 127.0.0.1:@ports: its socket fds that /proc/net/tcp lists as
    ESTABLISHED with one of @ports as the remote port."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    want = {"%04X" % p for p in ports}
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            c = line.split()
            if c[3] == "01" and c[2].rsplit(":", 1)[1] in want and c[9] in inodes:
                n += 1
    return n


def history_totals(path):
    """(User Count, Total Request Count) of the last complete Aggregated row of a
    stats_history CSV, or (0, 0) before there is one."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        return 0, 0
    if not rows:
        return 0, 0
    head = rows[0]
    users, total, name = head.index("User Count"), head.index("Total Request Count"), head.index("Name")
    for r in reversed(rows[1:]):
        if len(r) == len(head) and r[name] == "Aggregated":
            return int(r[users]), int(r[total])
    return 0, 0


def idle_baseline(build, scenario, tmp, env):
    """Starts a worker with the scenario loaded against a stand-in master (a pyzmq ROUTER that
    never answers); once its client_ready arrives (the scenario is loaded, no user exists) its
    RSS is the baseline. The stand-in then closes its port for the real master."""
    import msgpack
    import zmq
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    worker = subprocess.Popen([os.path.join(build, "acrida-worker"), "--exit-on-quit", "--master-host", "127.0.0.1",
                               "--master-port", str(port), "-f", scenario],
                              stderr=subprocess.DEVNULL, cwd=tmp, env=env, preexec_fn=raise_nofile)
    try:
        if not router.poll(60000):
            raise RuntimeError("the idle worker sent no client_ready within 60 s")
        frames = router.recv_multipart()
        if msgpack.unpackb(frames[-1], raw=False)[0] != "client_ready":
            raise RuntimeError("the idle worker's first message was not client_ready")
        base = rss_bytes(worker.pid)
    except BaseException:
        worker.kill()
        worker.wait()
        raise
    finally:
        router.close()
        ctx.term()
    return worker, port, base


def idle_memory(args, tmp, users):
    """RSS per idle user. Users hold an open keep-alive connection when the fd limit allows one
    per user; otherwise (100k users against a 20000 hard limit) they idle before their first
    request."""
    nports = max(1, (users + 11999) // 12000)
    connect = users + 200 < resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    sub = os.path.join(tmp, "idle%d" % users)
    os.makedirs(sub)
    nginx = Nginx(sub, nports)
    before = nginx.requests()  # this status request and the ones before it
    build = os.path.abspath(args.build)
    scenario = os.path.join(HERE, "acrida_idle.lua")
    env = dict(os.environ, BENCH_PORTS=",".join(map(str, nginx.ports)),
               BENCH_CONNECT="1" if connect else "0")
    worker, port, base = idle_baseline(build, scenario, sub, env)
    hist = os.path.join(sub, "idle_stats_history.csv")
    master = subprocess.Popen(
        [os.path.join(build, "acrida-master"), "-f", scenario, "-H", nginx.url, "-u", str(users),
         "-r", str(max(1000, users // 10)), "--headless", "--only-summary", "--expect-workers", "1",
         "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--csv",
         os.path.join(sub, "idle")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=sub,
        env=env)
    # Every user alive (and, with connections, every first request recorded: the worker then
    # holds one connection per user and nothing is in flight).
    want_requests = users if connect else 0
    wait_until(lambda: all(a >= b for a, b in zip(history_totals(hist), (users, want_requests))), 300)
    if connect:
        wait_until(lambda: established_to(worker.pid, nginx.ports) >= users, 60)
    alive, recorded = history_totals(hist)
    held = established_to(worker.pid, nginx.ports)
    rss = rss_bytes(worker.pid)
    served = nginx.requests() - before - 1  # not this status request either
    master.send_signal(signal.SIGTERM)
    try:
        master.wait(120)
        worker.wait(60)
    except subprocess.TimeoutExpired:
        master.kill()
        worker.kill()
    nginx.stop()
    return {"users": users, "alive": alive, "recorded": recorded, "held": held, "served": served,
            "rss_base": base, "rss": rss, "connect": connect,
            "per_user": (rss - base) / alive if alive else None}


def fmt(v, nd=1):
    return "-" if v is None else ("%.*f" % (nd, v))


NAMES = {"wrk": "wrk", "acrida": "acrida", "fast": "Locust FastHttpUser", "http": "Locust HttpUser"}


def provenance(args):
    def git(*a):
        p = subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True, text=True)
        return p.stdout.strip() if p.returncode == 0 else "?"
    binaries = version(args.build)
    cmd = "bench/bench.py --rounds %d --users %d --warm %g --window %g --tail %g --tools %s " \
          "--idle %s --master-load %s --master-web-load %s --pool-bench %s --listener-cost %s " \
          "--master-flood %s --standalone %s" % (
              args.rounds, args.users, args.warm, args.window, args.tail, args.tools or "''",
              args.idle or "''", args.master_load or "''", args.master_web_load or "''",
              args.pool_bench or "''", args.listener_cost or "''", args.master_flood or "''",
              args.standalone or "''")
    return ["`%s`, %s, bench scripts at commit %s, binaries `%s`; %s, load average %s at the "
            "start." % (cmd, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                        git("rev-parse", "--short", "HEAD"), binaries, machine(), loadavg())]


def throughput(args, tools, tmp, out):
    runners = {"wrk": run_wrk, "acrida": run_acrida,
               "fast": lambda n, a, t: run_locust(n, a, t, "fast"),
               "http": lambda n, a, t: run_locust(n, a, t, "http")}
    rounds = []
    nginx = Nginx(tmp)
    out("## Throughput and CPU (nginx on core 0, generator on core 1, %d users/connections)" % args.users)
    out()
    out("| round | tool | req/s | CPU µs/req | generator CPU | CPU/req vs wrk | acrida req/s per core vs this tool | p50 ms | p99 ms |")
    out("|---|---|---|---|---|---|---|---|---|")
    try:
        for rnd in range(1, args.rounds + 1):
            res = {t: runners[t](nginx, args, tmp) for t in tools}
            rounds.append(res)
            w, a = res.get("wrk"), res.get("acrida")
            for t in tools:
                r = res[t]
                r["vs_wrk"] = r["cpu_us_per_req"] / w["cpu_us_per_req"] if w else None
                r["per_core"] = ((a["rps"] / a["cpu_util"]) / (r["rps"] / r["cpu_util"])
                                 if a and t != "acrida" else None)
                out("| %d | %s | %.0f | %.1f | %.0f %% | %s | %s | %s | %s |" % (
                    rnd, NAMES[t], r["rps"], r["cpu_us_per_req"], r["cpu_util"] * 100,
                    fmt(r["vs_wrk"], 2) + "x" if r["vs_wrk"] else "-",
                    fmt(r["per_core"], 1) + "x" if r["per_core"] else "-",
                    fmt(r["p50_ms"], 3), fmt(r["p99_ms"], 3)))
    finally:
        nginx.stop()
    out()
    out("Medians over the rounds:")
    out()
    out("| tool | req/s | CPU µs/req | p50 ms | p99 ms |")
    out("|---|---|---|---|---|")
    for t in tools:
        med = {k: median([r[t][k] for r in rounds]) for k in ("rps", "cpu_us_per_req", "p50_ms", "p99_ms")}
        out("| %s | %.0f | %.1f | %s | %s |" % (NAMES[t], med["rps"], med["cpu_us_per_req"],
                                               fmt(med["p50_ms"], 3), fmt(med["p99_ms"], 3)))
    return rounds


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def memory(args, tmp, out):
    out()
    out("## Memory per idle user (one worker process)")
    out()
    out("| users started | users alive | connections held | requests recorded / served | worker RSS, no users | RSS with users | per user alive |")
    out("|---|---|---|---|---|---|---|")
    res = []
    for n in [int(x) for x in args.idle.split(",") if x]:
        m = idle_memory(args, tmp, n)
        res.append(m)
        out("| %d | %d | %d%s | %d / %d | %.1f MiB | %.1f MiB | %s KiB |" % (
            n, m["alive"], m["held"], "" if m["connect"] else " (fd limit: none opened)",
            m["recorded"], m["served"], m["rss_base"] / 2**20, m["rss"] / 2**20,
            fmt(m["per_user"] / 1024 if m["per_user"] is not None else None, 2)))
    return res


def section(out, heading, run, table):
    """Prints @heading, then the lines @table makes of what @run() returns; returns that."""
    out()
    out(heading)
    out()
    r = run()
    for line in table(r):
        out(line)
    return r


def master(args, out):
    workers, entries, window, warmup = ([int(x) for x in args.master_load.split(",")] + [5])[:4]
    return section(out, "## Master under load (bench/master_load.py: %d simulated workers, %d "
                   "entries per report every 3 s, %d s window after %d s of warm-up)" % (
                       workers, entries, window, warmup),
                   lambda: master_load.run(os.path.abspath(args.build), workers, entries, window,
                                           warmup),
                   master_load.table)


def master_web(args, out):
    workers, entries, window = [int(x) for x in args.master_web_load.split(",")]
    r = section(out, "## Master in web mode under load (bench/master_web_load.py: %d simulated "
                "workers, %d entries per report every 3 s, a test running, %d s windows)" % (
                    workers, entries, window),
                lambda: master_web_load.run(os.path.abspath(args.build), workers, entries, window),
                master_web_load.table)
    out()
    out("Load average after this section: %s." % loadavg())
    return r


def pools(args, out):
    warm, window, queue_window = [float(x) for x in args.pool_bench.split(",")]
    users, workers = 100, 2
    return section(out, "## Pools: round trips to the master (bench/pool_bench.py: %d users, %d "
                   "local workers, no HTTP, no wait_time, %g s windows, %g s for the queue)" % (
                       users, workers, window, queue_window),
                   lambda: pool_bench.run(args.build, users, workers, warm, window, queue_window,
                                          tail=2),
                   lambda r: pool_bench.table(r, users, workers, warm))


def listeners(args, out):
    rounds, warm, window = args.listener_cost.split(",")
    rounds, warm, window = int(rounds), float(warm), float(window)
    return section(out, "## Request listeners: the worker's CPU per request "
                   "(bench/listener_cost.py: 1 user, no wait_time, nginx on core 0, worker on core "
                   "1, %d rounds of %g s windows)" % (rounds, window),
                   lambda: listener_cost.run(args.build, rounds, warm, window, tail=1),
                   listener_cost.table)


def flood(args, out):
    duration, peers = [int(x) for x in args.master_flood.split(",")]
    out()
    lines = master_flood.table(master_flood.run(args.build, duration, peers), duration, peers)
    out("## " + lines[0])
    for line in lines[1:]:
        out(line)


# The benches that run on their own (each prints its own tables): title and command line.
STANDALONE = {
    "worker_soak": ("Worker soak: one worker daemon across 100 consecutive tests",
                    ["--tests", "100", "--users", "10"]),
    "million_users": ("A million users on one worker", ["--users", "1000000", "--run-time", "60"]),
    "stall_bench": ("Stall watchdog: a spinning task, SIGTERM to a stuck worker, the watchdog's cost",
                    []),
}


def standalone(args, name, out):
    """Runs bench/@name.py and pastes its output under a heading of its own."""
    title, extra = STANDALONE[name]
    cmd = [sys.executable, os.path.join(HERE, name + ".py"), "--build", args.build] + extra
    out()
    out("## %s (bench/%s.py%s)" % (title, name, "".join(" " + a for a in extra)))
    out()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=1800)
    for line in p.stdout.rstrip("\n").splitlines():
        out(line)
    if p.returncode != 0:
        out()
        out("(bench/%s.py exited %d)" % (name, p.returncode))


def verdict(ok_median, ok_rounds):
    if ok_median and all(ok_rounds):
        return "met"
    if ok_median:
        return "met in the median, not in every round"
    return "missed in the median, met in some rounds" if any(ok_rounds) else "missed"


def ratio_row(out, label, rounds, key, tool, want):
    per = [r[tool][key] for r in rounds if tool in r]
    if not per:
        return
    med = median(per)
    out("| %s | **%.2fx** | %s | %s |" % (label, med, ", ".join("%.2f" % x for x in per),
                                          verdict(want(med), [want(x) for x in per])))


def targets(rounds, mem, mres, wres, out):
    out()
    out("## Against the targets (medians of the per-round ratios)")
    out()
    out("| target | median | rounds | |")
    out("|---|---|---|---|")
    ratio_row(out, "generator CPU per request ≤ 1.2x wrk's (goal 1.0x)", rounds, "vs_wrk", "acrida",
              lambda x: x <= 1.2)
    if rounds and "wrk" in rounds[0] and "acrida" in rounds[0]:
        a = [r["acrida"]["p50_ms"] for r in rounds]
        w = [r["wrk"]["p50_ms"] for r in rounds]
        near = lambda x, y: x is not None and y is not None and abs(x - y) <= max(0.1 * y, 0.05)
        ma, mw = median(a), median(w)
        out("| median latency within 10 %% (or 50 µs) of wrk's | **%s vs %s ms** | %s | %s |" % (
            fmt(ma, 3), fmt(mw, 3), ", ".join("%s/%s" % (fmt(x, 3), fmt(y, 3)) for x, y in zip(a, w)),
            verdict(near(ma, mw), [near(x, y) for x, y in zip(a, w)])))
    ratio_row(out, "≥ 10x the requests/s per core of Locust FastHttpUser", rounds, "per_core", "fast",
              lambda x: x >= 10)
    ratio_row(out, "≥ 15x (issue #3) the requests/s per core of Locust FastHttpUser", rounds,
              "per_core", "fast", lambda x: x >= 15)
    ratio_row(out, "≥ 50x the requests/s per core of Locust HttpUser", rounds, "per_core", "http",
              lambda x: x >= 50)
    for m in mem:
        if m["per_user"] is None:
            continue
        kib = m["per_user"] / 1024
        out("| ≤ 4 KiB RSS per idle user | **%.2f KiB** | %d users alive, %d connections | %s |" % (
            kib, m["alive"], m["held"], "met" if kib <= 4 else "missed"))
    if mres:
        out("| master: %d workers × %d entries every 3 s at ≤ 50 %% of one core | **%.1f %%** | "
            "%d of %d reports merged | %s |" % (
                mres["workers"], mres["entries"], 100 * mres["cpu"], mres["merged_reports"],
                mres["sent"]["reports"], "met" if mres["cpu"] <= 0.5 else "missed"))
        series, first = mres["rss_kib"]
        a, b = series[first], series[-1]
        out("| master: the same load, flat RSS over the %.0f s window (end within 2 %% of start) | "
            "**%+.1f MiB** | %.1f -> %.1f MiB after %.0f s of warm-up | %s |" % (
                mres["window"], (b - a) / 1024, a / 1024, b / 1024, mres["warmup"],
                "met" if abs(b - a) <= 0.02 * a else "missed"))
    if wres:
        cpu = wres["dash"]["cpu"]
        errors = sum(x["errors"] for x in wres["dash"]["client"].values())
        out("| master in web mode: the same load with %d dashboards polling, ≤ 50 %% of one core | "
            "**%.1f %%** | %.1f %% without dashboards, %d dashboard errors | %s |" % (
                master_web_load.DASHBOARDS, 100 * cpu, 100 * wres["base"]["cpu"], errors,
                "met" if cpu <= 0.5 and not errors else "missed"))


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
    ap.add_argument("--master-load", default="1000,100,600,540",
                    help="simulated workers,entries,window s[,warm-up s, default 5] for "
                         "bench/master_load.py ('' to skip)")
    ap.add_argument("--master-web-load", default="500,100,30",
                    help="simulated workers,entries,window s for bench/master_web_load.py ('' to skip)")
    ap.add_argument("--pool-bench", default="3,8,3",
                    help="warm-up,window,queue window s for bench/pool_bench.py ('' to skip)")
    ap.add_argument("--listener-cost", default="3,1.5,3.5",
                    help="rounds,warm-up,window s for bench/listener_cost.py ('' to skip)")
    ap.add_argument("--master-flood", default="20,2000",
                    help="test s,fake peers for bench/master_flood.py ('' to skip)")
    ap.add_argument("--standalone", default=",".join(STANDALONE),
                    help="benches run on their own, pasted as they print ('' to skip): %s"
                    % ", ".join(STANDALONE))
    ap.add_argument("--only-master-web", action="store_true",
                    help="run only bench/master_web_load.py (as --tools '' --idle '' "
                         "--master-load '' --pool-bench '' --listener-cost '')")
    args = ap.parse_args()
    if args.only_master_web:
        args.tools = args.idle = args.master_load = args.pool_bench = args.listener_cost = ""
        args.master_flood = args.standalone = ""
    args.build = os.path.abspath(args.build)
    tools = [t for t in args.tools.split(",") if t]
    tmp = tempfile.mkdtemp(prefix="acrida-bench-")
    lines = []

    def out(s=""):
        lines.append(s)
        print(s, flush=True)

    try:
        for line in provenance(args):
            out(line)
        out()
        rounds = throughput(args, tools, tmp, out) if tools else []
        mem = memory(args, tmp, out) if args.idle else []
        mres = master(args, out) if args.master_load else None
        wres = master_web(args, out) if args.master_web_load else None
        if args.pool_bench:
            pools(args, out)
        if args.listener_cost:
            listeners(args, out)
        if args.master_flood:
            flood(args, out)
        for name in [n for n in args.standalone.split(",") if n]:
            standalone(args, name, out)
        targets(rounds, mem, mres, wres, out)
        out()
        out("Load average at the end: %s." % loadavg())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "latest.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
