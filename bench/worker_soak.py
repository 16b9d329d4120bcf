#!/usr/bin/env python3
"""A worker across many consecutive tests leaks nothing (issue #10; docs/benchmarks.md, "Worker
soak").

One acrida-target (tests/target), one acrida-master in web mode and ONE acrida-worker daemon
(started by this script, not a local worker, so it lives across the tests). Each test: POST
/swarm (U users), wait until the master says running and the target served some requests,
GET /stop, wait until the master says stopped and the worker is ready again. After each test the
worker's VmRSS (/proc/<pid>/status) and open fds (/proc/<pid>/fd) are read; the worker's pid must
never change. Prints one line per test and a summary: RSS after the first tests and at the end,
the growth over the second half, and the fd counts.

    bench/worker_soak.py --build build [--tests 100 --users 10]

Exit status 1 if the worker died, changed pid, or its fd count after the last test differs from
the count after test 2.
"""
import argparse
import json
import os
import sys
import tempfile
import urllib.parse
import urllib.request

from benchlib import ROOT, Daemons, read_port, served, status_kib, wait_for, write_file

SCENARIO = """
local acrida = require "acrida"
acrida.user { name = "U", wait_time = acrida.constant(0.01),
  tasks = { function(self) self.client:get("/") end } }
"""


def http(url, method="GET", form=None):
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--tests", type=int, default=100)
    ap.add_argument("--users", type=int, default=10)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    tmp = tempfile.mkdtemp(prefix="worker_soak_")
    daemons = Daemons(tmp)
    status = 0
    try:
        sc = write_file(os.path.join(tmp, "soak.lua"), SCENARIO)
        target = daemons.target(build)
        mpf = os.path.join(tmp, "master.ports")
        daemons.start("master", [os.path.join(build, "acrida-master"), "-f", sc, "-H", target,
                                 "--web-port", "0", "--master-bind-host", "127.0.0.1",
                                 "--master-bind-port", "0", "--port-file", mpf])
        wait_for(lambda: read_port(mpf, "master") and read_port(mpf, "web"), what="master ports")
        web = "http://127.0.0.1:%d" % read_port(mpf, "web")
        worker = daemons.start("worker", [os.path.join(build, "acrida-worker"), "--master-port",
                                          str(read_port(mpf, "master")), "-f", sc])

        def stats():
            return json.loads(http(web + "/stats/requests"))

        wait_for(lambda: [w["state"] for w in stats()["workers"]] == ["ready"], what="the worker")
        pid = worker.pid
        rows = []
        print("test  rss_kib  fds  served")
        for i in range(1, args.tests + 1):
            before = served(target)
            http(web + "/swarm", "POST", {"user_count": args.users, "spawn_rate": args.users})
            wait_for(lambda: stats()["state"] == "running" and served(target) > before + 50,
                     what="test %d running" % i)
            http(web + "/stop")
            wait_for(lambda: stats()["state"] == "stopped" and
                     [w["state"] for w in stats()["workers"]] == ["ready"],
                     what="test %d stopped" % i)
            if worker.poll() is not None or worker.pid != pid:
                print("the worker died (exit %s) after test %d" % (worker.returncode, i))
                return 1
            rows.append((i, status_kib(pid, "VmRSS"), fds(pid), served(target)))
            print("%4d  %7d  %3d  %d" % rows[-1], flush=True)
        half = rows[len(rows) // 2]
        last = rows[-1]
        print()
        print("worker pid %d for all %d tests (%d users each)" % (pid, args.tests, args.users))
        print("RSS KiB: after test 1 %d, test 2 %d, test %d %d, last %d (second half %+d KiB)" %
              (rows[0][1], rows[1][1] if len(rows) > 1 else rows[0][1], half[0], half[1], last[1],
               last[1] - half[1]))
        print("fds: after test 2 %d, last %d" % (rows[min(1, len(rows) - 1)][2], last[2]))
        if last[2] != rows[min(1, len(rows) - 1)][2]:
            status = 1
    finally:
        daemons.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
