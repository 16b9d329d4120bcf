#!/usr/bin/env python3
"""The stall watchdog's figures (issue #12; docs/benchmarks.md, "Stall watchdog").

1. Spinning task: acrida-target, a headless master with 2 local workers, -u 4 -t 30s, a
   fixed_count = 1 class whose task runs `while true do end` plus a class doing GET /. From the
   daemons' own logs: how long the code had run when the watchdog acted (the worker's figure), the
   time from that to the interruption (log timestamps), from the interruption to the master's
   quarantine, the master's exit code, and the counted requests against the target's served ones.
2. SIGTERM to a worker stuck in that task, with the watchdog (the task is interrupted, graceful
   quit) and with --stall-timeout 0 (JIT on, the loop cannot be interrupted: exit 3): from the
   worker's `received SIGTERM` line to its last line.
3. The cost of the watchdog (its thread, and LuaJIT's profiler that makes compiled loops
   interruptible): 50 users without wait_time, GET / against acrida-target, 1 local worker,
   --stall-timeout 10 against 0, N rounds alternated; requests per second from --json, and the
   CPU per request of the master and its worker (the master's rusage, which includes the local
   worker it waited for; the target is not counted): requests per second on two shared cores
   move with whatever else runs, the CPU per request much less.

    bench/stall_bench.py --build build [--rounds 3 --seconds 10]
"""
import argparse
import datetime
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time

from benchlib import read_port, served

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ", re.M)

SPIN = """
local function mark(name)
  local f = assert(io.open(os.getenv("MARKS") .. "/" .. name, "w"))
  f:close()
end
acrida.user { name = "Spin", fixed_count = 1, wait_time = acrida.constant(0.1),
  tasks = { { name = "spin", fn = function(self) mark("spinning") while true do end end } } }
acrida.user { name = "Normal", wait_time = acrida.constant(0.05),
  tasks = { function(self) self.client:get("/") end } }
"""

FAST = """
acrida.user { name = "U", tasks = { function(self) self.client:get("/") end } }
"""


def stamp(line):
    m = STAMP.match(line)
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")


def first(log, text):
    for line in log.splitlines():
        if text in line:
            return line
    raise SystemExit("no line with %r in the log:\n%s" % (text, log[-3000:]))


def wait_for(pred, timeout=120.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for " + what)
        time.sleep(0.02)


class Target:
    def __init__(self, build, tmp):
        pf = os.path.join(tmp, "target.port")
        self.p = subprocess.Popen([os.path.join(build, "acrida-target"), "--port", "0",
                                   "--port-file", pf], stderr=subprocess.DEVNULL)
        self.port = wait_for(lambda: read_port(pf, "port"), what="target port") or read_port(pf, "port")
        self.url = "http://127.0.0.1:%d" % self.port

    def served(self):
        return served(self.url)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(60)


def master(build, tmp, scen, url, users, secs, workers, extra=(), env=None):
    cmd = [os.path.join(build, "acrida-master"), "-f", scen, "-H", url, "-u", str(users), "-r",
           "100", "-t", "%ds" % secs, "--headless", "--json", "--local-workers", str(workers),
           "--master-bind-host", "127.0.0.1", "--master-bind-port", "0"] + list(extra)
    p = subprocess.run(cmd, cwd=tmp, capture_output=True, timeout=600, env=env)
    return p.returncode, p.stdout.decode(), p.stderr.decode(errors="replace")


def spinning(build, tmp):
    t = Target(build, tmp)
    try:
        scen = os.path.join(tmp, "spin.lua")
        open(scen, "w").write(SPIN)
        os.makedirs(os.path.join(tmp, "marks"), exist_ok=True)
        env = dict(os.environ, MARKS=os.path.join(tmp, "marks"))
        rc, out, err = master(build, tmp, scen, t.url, 4, 30, 2, env=env)
        served = t.served()
    finally:
        t.stop()
    det = first(err, "stall: user class Spin has run Lua code for")
    intr = first(err, "stalled: task spin of user class Spin ran for")
    quar = first(err, "ERROR master: class Spin quarantined")
    doc = json.loads(out)
    counted = sum(r["num_requests"] for r in doc["stats"] if r["name"] == "/")
    print("spinning task: watchdog acted after %s s of Lua without yielding (worker's figure)"
          % re.search(r"for (\d+\.\d+) s", det).group(1))
    print("  detection -> interruption: %.3f s; interruption -> master's quarantine: %.3f s"
          % ((stamp(intr) - stamp(det)).total_seconds(), (stamp(quar) - stamp(intr)).total_seconds()))
    print("  workers marked missing: %d; master exit code %d; counted %d, served %d, lost reports %d"
          % (err.count("failed to send heartbeat"), rc, counted, served, doc["lost_reports"]))


def sigterm(build, tmp, extra):
    scen = os.path.join(tmp, "spin2.lua")
    open(scen, "w").write(SPIN.replace('self.client:get("/")', "acrida.sleep(0.1)"))
    marks = os.path.join(tmp, "marks2")
    os.makedirs(marks, exist_ok=True)
    for f in os.listdir(marks):
        os.unlink(os.path.join(marks, f))
    pf = os.path.join(tmp, "m.ports")
    if os.path.exists(pf):
        os.unlink(pf)
    m = subprocess.Popen([os.path.join(build, "acrida-master"), "-f", scen, "--headless", "-u", "2",
                          "-r", "10", "-t", "300s", "--expect-workers", "1", "--master-bind-host",
                          "127.0.0.1", "--master-bind-port", "0", "--port-file", pf],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = wait_for(lambda: read_port(pf, "master"), what="master port") or read_port(pf, "master")
    log = os.path.join(tmp, "w.log")
    with open(log, "wb") as lf:
        w = subprocess.Popen([os.path.join(build, "acrida-worker"), "--master-port", str(port),
                              "-f", scen] + extra, stderr=lf, env=dict(os.environ, MARKS=marks))
        wait_for(lambda: os.path.exists(os.path.join(marks, "spinning")), what="spinning")
        w.send_signal(signal.SIGTERM)
        rc = w.wait(60)
    m.send_signal(signal.SIGTERM)
    m.wait(120)
    text = open(log, errors="replace").read()
    t0 = stamp(first(text, "received SIGTERM"))
    last = text.strip().splitlines()[-1]
    print("SIGTERM %-22s exit %d after %.3f s (last line: %s)"
          % ("with the watchdog:" if not extra else "with --stall-timeout 0:", rc,
             (stamp(last) - t0).total_seconds(), last[24:110]))


def children_cpu():
    """CPU seconds of the children waited for so far: a headless master's is its own plus that of
    its local workers, which it waits for."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def throughput(build, tmp, rounds, secs):
    t = Target(build, tmp)
    scen = os.path.join(tmp, "fast.lua")
    open(scen, "w").write(FAST)
    rates = {"10": [], "0": []}
    costs = {"10": [], "0": []}
    try:
        for _ in range(rounds):
            for st in ("10", "0"):
                c0 = children_cpu()
                rc, out, err = master(build, tmp, scen, t.url, 50, secs, 1,
                                      extra=["--stall-timeout", st])
                cpu = children_cpu() - c0
                doc = json.loads(out)
                agg = [r for r in doc["stats"] if r["name"] == "Aggregated"][0]
                rates[st].append(agg["num_requests"] / doc["run_time"] if doc.get("run_time")
                                 else agg["num_requests"] / secs)
                costs[st].append(cpu * 1e6 / max(agg["num_requests"], 1))
    finally:
        t.stop()
    for st, label in (("10", "watchdog on"), ("0", "--stall-timeout 0")):
        v, c = sorted(rates[st]), sorted(costs[st])
        print("50 users, no wait, 1 worker, %s: median %.0f req/s (%s); CPU of the master and its "
              "worker per request, whole run: median %.2f µs (%s)"
              % (label, v[len(v) // 2], ", ".join("%.0f" % x for x in v), c[len(c) // 2],
                 ", ".join("%.2f" % x for x in c)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(os.path.dirname(__file__), "..", "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    with tempfile.TemporaryDirectory() as tmp:
        spinning(build, tmp)
        sigterm(build, tmp, [])
        sigterm(build, tmp, ["--stall-timeout", "0"])
        throughput(build, tmp, a.rounds, a.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
