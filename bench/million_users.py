#!/usr/bin/env python3
"""A million HTTP users on one worker keep reporting and end on time (issue #12; docs/benchmarks.md,
"A million users on one worker").

One acrida-target, one headless acrida-master (-u USERS -r USERS -t RUN_TIME, --json, --csv with
the full history) and ONE acrida-worker started by this script (so its RSS can be read): each user
GETs / from the target and waits 1 to 3 s. A worker cannot open a million connections: users
beyond its descriptor limit fail with "too many open files" and back off (0.1 s doubling to 2 s).

Prints: the worker's descriptor limit and the master's warning, the time from the start of the
run to the first report merged (the first second of the master's history CSV with requests),
the reports merged (--json reports_merged; one every 3 s plus the final one is the target), the
worker's RSS peak (VmHWM, read until it exits), the run's length from the master's log (run time
limit set -> shutting down), and the counts: requests counted (successes, "too many open files"
failures, aborted at stop) against the target's served count, which must add up.

    bench/million_users.py --build build [--users 1000000 --run-time 60]

Exit status 1 when the counts do not add up, no report arrived during the run, or the run took
longer than its run time plus the stop's grace (10 s) and 20 s of slack.
"""
import argparse
import csv
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import ROOT, Daemons, read_port, served, status_kib, wait_for, write_file

SCENARIO = """
local acrida = require "acrida"
acrida.user { name = "Crowd", wait_time = acrida.between(1, 3),
  tasks = { function(self) self.client:get("/") end } }
"""


def log_time(text, needle):
    for line in text.splitlines():
        if needle in line:
            m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ", line)
            if m:
                return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
                    tzinfo=datetime.timezone.utc).timestamp()
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--users", type=int, default=1000000)
    ap.add_argument("--run-time", type=int, default=60, help="seconds")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the finally below stops the daemons
    build = os.path.abspath(args.build)
    tmp = tempfile.mkdtemp(prefix="million_users_")
    daemons = Daemons(tmp)

    try:
        sc = write_file(os.path.join(tmp, "crowd.lua"), SCENARIO)
        target = daemons.target(build)
        mpf = os.path.join(tmp, "master.ports")
        prefix = os.path.join(tmp, "run")
        master = daemons.start("master", [
            os.path.join(build, "acrida-master"), "-f", sc, "-H", target, "--headless",
            "-u", str(args.users), "-r", str(args.users), "-t", "%ds" % args.run_time,
            "--expect-workers", "1", "--json", "--only-summary", "--csv", prefix,
            "--csv-full-history", "--master-bind-host", "127.0.0.1", "--master-bind-port", "0",
            "--port-file", mpf], stdout=subprocess.PIPE)
        mport = wait_for(lambda: read_port(mpf, "master"), what="master port")
        worker = daemons.start("worker", [os.path.join(build, "acrida-worker"), "--master-port",
                                          str(mport), "-f", sc, "--exit-on-quit"])
        peak = {"hwm": 0, "rss": 0}

        def sample():
            while worker.poll() is None:
                h = status_kib(worker.pid, "VmHWM")
                if h:
                    peak["hwm"] = max(peak["hwm"], h)
                time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        out, _ = master.communicate(timeout=args.run_time + 600)
        worker.wait(120)
        sampler.join(5)
        doc = json.loads(out)
        count = served(target)
        mlog, wlog = daemons.log("master"), daemons.log("worker")

        started = log_time(mlog, "Run time limit set")
        ended = log_time(mlog, "Shutting down")
        first = None
        with open(prefix + "_stats_history.csv", newline="") as f:
            for r in csv.DictReader(f):
                if r["Name"] == "Aggregated" and int(r["Total Request Count"]) > 0:
                    first = int(r["Timestamp"])
                    break
        agg = [r for r in doc["stats"] if r["name"] == "Aggregated"][0]
        errors = {e["error"]: e["occurrences"] for e in doc["errors"]}
        nofile = errors.get("too many open files", 0)
        other = sum(v for k, v in errors.items() if k != "too many open files")
        successes = agg["num_requests"] - agg["num_failures"]
        limit = re.search(r"file descriptors: limit (\d+)", wlog)
        warn = re.search(r"-u \d+ exceeds the \d+ connections[^\n]*", mlog)

        print("users %d on one worker, run time %d s" % (args.users, args.run_time))
        print("worker descriptor limit: %s" % (limit.group(1) if limit else "?"))
        print("master warning: %s" % (warn.group(0) if warn else "none"))
        print("time to the first report: %s s (history CSV, 1 s resolution)" %
              ("%.0f" % (first - started) if first and started else "never"))
        print("reports merged: %d (lost %d)" % (doc["reports_merged"], doc["lost_reports"]))
        print("worker RSS peak (VmHWM): %.0f MiB" % (peak["hwm"] / 1024.0))
        length = ended - started if started and ended else None
        print("run length (master log): %s s" % ("%.1f" % length if length else "?"))
        print("counted: %d requests = %d successes + %d 'too many open files' + %d other "
              "failures; aborted at stop %d" % (agg["num_requests"], successes, nofile, other,
                                                 doc["aborted_at_stop"]))
        print("target served: %d" % count)
        ok = other == 0 and successes + doc["aborted_at_stop"] == count
        print("successes + aborted at stop == served: %s" % ("yes" if ok else "NO"))
        if not ok or not first or length is None or length > args.run_time + 30:
            return 1
        return 0
    finally:
        daemons.stop()


if __name__ == "__main__":
    sys.exit(main())
