#!/usr/bin/env python3
"""Round trips per second of the master's data pools (issue #9; docs/benchmarks.md, "Pools").

`acrida-master --headless --local-workers 2` runs bench/pool_bench.lua: U users whose only task
is a pool round trip, with no HTTP and no wait_time, in four configurations run one after the
other:

* lease, contended:   K = 5 rows for U = 100 users, each task `local r = pool:acquire();
                      pool:release(r)` (two round trips to the master, the acquire waiting while
                      no row is free);
* lease, uncontended: the same with K = 1000 rows (an acquire never waits);
* queue:              each task one `pool:next()` on a queue of 1,000,000 rows (the most a pool
                      holds): every row goes to one user once, so the window is short enough (6 s
                      by default) not to exhaust it; an exhausted reply would be counted as a
                      failure and flagged;
* circular:           each task one `pool:next()` on a circular pool of 1000 rows (the same
                      message, never exhausted), over the full window.

The window is set on the machine's monotonic clock (Python's time.monotonic() and the scenario's
acrida.time() are both CLOCK_MONOTONIC) and passed to the scenario, which reports with
acrida.report{request_type = "POOL", ...} only the round trips that end inside it: the master's
--json counts and percentiles (sub-millisecond) cover the window alone. The CPU (user + system,
/proc/<pid>/stat) of the master and of its local workers is read over the same window; the window
is checked to start after the master logged "All users spawned". Nothing is pinned: the master and
the 2 workers share the machine's cores. Prints a Markdown table with the command, the machine and
its load average at the start and the end.

    bench/pool_bench.py --build build [--warm 5 --window 20 --queue-window 6]

`make bench` runs it through bench/bench.py (run() and table()) with shorter windows.
"""
import argparse
import json
import os
import subprocess
import tempfile
import threading
import time

from benchlib import HERE, ROOT, cpu_seconds, print_report

SCENARIO = os.path.join(HERE, "pool_bench.lua")

# (label, mode, rows, short window)
CONFIGS = [
    ("lease, contended", "lease", 5, False),
    ("lease, uncontended", "lease", 1000, False),
    ("queue", "queue", 1000000, True),
    ("circular", "circular", 1000, False),
]


def children(pid):
    """The pids whose parent is @pid (the master's local workers)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


def sleep_until(t):
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)


def run_config(label, mode, rows, short, args, tmp):
    warm = args.warm
    window = args.queue_window if short else args.window
    launched = time.monotonic()
    t0, t1 = launched + warm, launched + warm + window
    env = dict(os.environ, POOL_BENCH_MODE=mode, POOL_BENCH_ROWS=str(rows),
               POOL_BENCH_T0=repr(t0), POOL_BENCH_T1=repr(t1))
    run_time = warm + window + args.tail
    master = subprocess.Popen(
        [os.path.join(os.path.abspath(args.build), "acrida-master"), "-f", SCENARIO,
         "-u", str(args.users), "-r", str(args.users * 10), "-t", "%gs" % run_time,
         "--headless", "--only-summary", "--json", "--local-workers", str(args.workers),
         "--master-bind-host", "127.0.0.1", "--master-bind-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp, env=env)
    spawned = []
    log = []

    def read_stderr():
        for line in master.stderr:
            line = line.decode(errors="replace")
            log.append(line)
            if "All users spawned" in line and not spawned:
                spawned.append(time.monotonic())

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    sleep_until(t0)
    workers = children(master.pid)
    pids = [master.pid] + workers
    c0 = [cpu_seconds([p]) for p in pids]
    sleep_until(t1)
    c1 = [cpu_seconds([p]) for p in pids]
    out = master.communicate(timeout=run_time + 90)[0].decode()
    reader.join(10)
    if master.returncode != 0:
        raise SystemExit("%s: acrida-master exited %d:\n%s" % (label, master.returncode,
                                                              "".join(log[-30:])))
    if not spawned or spawned[0] > t0:
        raise SystemExit("%s: the users were not all spawned before the window started "
                         "(raise --warm)" % label)
    if len(workers) != args.workers:
        raise SystemExit("%s: found %d local workers, expected %d" % (label, len(workers),
                                                                      args.workers))
    doc = json.loads(out)
    rows_by_name = {r["name"]: r for r in doc["stats"] if r["name"] != "Aggregated"}
    name = "acquire+release" if mode == "lease" else "next"
    if set(rows_by_name) != {name}:
        raise SystemExit("%s: unexpected statistics rows %s" % (label, sorted(rows_by_name)))
    row = rows_by_name[name]
    pct = row["response_time_percentiles"]
    return {
        "label": label, "mode": mode, "rows": rows, "window": window,
        "count": row["num_requests"], "failures": row["num_failures"],
        "rate": row["num_requests"] / window,
        "p50": pct["50"], "p99": pct["99"],
        "master_cpu": (c1[0] - c0[0]) / window * 100,
        "workers_cpu": sum(c1[1:]) - sum(c0[1:]),
        "spawned_after": spawned[0] - launched,
    }


def run(build, users=100, workers=2, warm=5, window=20, queue_window=6, tail=3):
    """Runs the four configurations one after the other; returns their results (bench/bench.py
    calls this too)."""
    args = argparse.Namespace(build=build, users=users, workers=workers, warm=warm, window=window,
                              queue_window=queue_window, tail=tail)
    with tempfile.TemporaryDirectory() as tmp:
        return [run_config(label, mode, rows, short, args, tmp)
                for label, mode, rows, short in CONFIGS]


def table(results, users, workers, warm):
    """The results as Markdown: the table and how to read it."""
    out = ["| configuration | pool size | users | workers | window (s) | operations | "
           "per second | p50 (ms) | p99 (ms) | failures | master CPU % | workers CPU % | "
           "CPU µs per operation |",
           "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        op = "acquire+release pairs" if r["mode"] == "lease" else "`next()` calls"
        cpu = r["master_cpu"] / 100 * r["window"] + r["workers_cpu"]
        out.append("| %s | %d | %d | %d | %g | %s | %.0f | %.2f | %.2f | %d | %.0f | %.0f | %.1f |"
                   % (r["label"], r["rows"], users, workers, r["window"], op, r["rate"],
                      r["p50"], r["p99"], r["failures"], r["master_cpu"],
                      r["workers_cpu"] / r["window"] * 100, cpu * 1e6 / max(r["count"], 1)))
    out.append("")
    out.append("Workers CPU %% is the sum of both workers (200 %% = both cores); CPU µs per "
               "operation is the CPU time of the master and both workers over the window divided "
               "by the operations in it. The users were "
               "all spawned %s s after each master started (the window starts at %g s)." % (
                   "/".join("%.2f" % r["spawned_after"] for r in results), warm))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--warm", type=float, default=5)
    ap.add_argument("--window", type=float, default=20)
    ap.add_argument("--queue-window", type=float, default=6)
    ap.add_argument("--tail", type=float, default=3)
    args = ap.parse_args()

    print_report("### Pools: round trips to the master (%d users, %d local workers, no HTTP, "
                 "no wait_time)" % (args.users, args.workers),
                 "bench/pool_bench.py --warm %g --window %g --queue-window %g" % (
                     args.warm, args.window, args.queue_window), args.build,
                 lambda: table(run(args.build, args.users, args.workers, args.warm, args.window,
                                   args.queue_window, args.tail),
                               args.users, args.workers, args.warm))


if __name__ == "__main__":
    main()
