#!/usr/bin/env python3
"""The worker's CPU cost per request of a `request` listener (issue #9; docs/benchmarks.md,
"Request listeners").

One acrida-worker with one user and no wait_time (a master and the worker pinned to core 1)
requests nginx's static 100-byte file (nginx pinned to core 0, as in bench/bench.py), in three
variants run in interleaved rounds:

* none:      no listener (the `request` event costs nothing then: its table is not even built);
* trivial:   one listener that counts the requests (`n = n + 1`);
* forwarder: examples/forwarder.lua's listener and forwarding task unchanged (each result
             buffered as a document, sent in Elasticsearch bulk form every 100 results with
             record = false) to a second nginx on core 0 that answers every POST with 200; only
             the example's wait_time and tasks are replaced by the same single GET.

Requests are counted by the target nginx's stub_status over a steady-state window after a warm-up;
the worker's CPU (user + system, /proc/<pid>/stat) over the same window is divided by them. The
master's CPU is not counted (it does the same work in every variant). Prints a Markdown table with
the command, the machine and its load average at the start and the end.

    bench/listener_cost.py --build build [--rounds 3 --warm 3 --window 6]

`make bench` runs it through bench/bench.py (run() and table()) with shorter windows.
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time

from bench import Nginx, cpu_seconds, free_port, measure_window, raise_nofile
import master_load

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

GET_TASK = 'tasks = { function(self) self.client:get("/100b.txt") end },'

SCENARIOS = {
    "none": """local acrida = require "acrida"
acrida.user { name = "Get", """ + GET_TASK + """ }
""",
    "trivial": """local acrida = require "acrida"
local n = 0
acrida.events.request:add_listener(function(r) n = n + 1 end)
acrida.user { name = "Get", """ + GET_TASK + """ }
""",
}


def forwarder_scenario():
    """examples/forwarder.lua with the benchmark's user: no wait_time, the same single GET."""
    with open(os.path.join(ROOT, "examples", "forwarder.lua")) as f:
        text = f.read()
    cuts = [("  wait_time = acrida.constant(0.05),\n", ""),
            ("""  tasks = {
    { weight = 3, fn = function(self) self.client:get("/") end },
    function(self) self.client:get("/bytes/100") end,
  },""", "  " + GET_TASK)]
    for old, new in cuts:
        if text.count(old) != 1:
            raise SystemExit("examples/forwarder.lua changed: cannot find %r" % old)
        text = text.replace(old, new)
    return text


class Sink:
    """A second nginx on core 0 that answers every request (the bulk POSTs) 200 with a small
    JSON body, as Elasticsearch's _bulk does without errors."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "sink")
        os.makedirs(self.dir)
        port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""
user root;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000000;
  client_body_buffer_size 1m;
  client_max_body_size 16m;
  server {
    listen 127.0.0.1:%(port)d;
    location = /nginx_status { stub_status; }
    location / { default_type application/json; return 200 '{"errors":false}'; }
  }
}
""" % {"d": self.dir, "port": port})
        self.proc = subprocess.Popen(["taskset", "-c", "0", "nginx", "-c", conf, "-p", self.dir],
                                     preexec_fn=raise_nofile, stderr=subprocess.DEVNULL)
        self.base = "http://127.0.0.1:%d" % port
        self.url = self.base + "/_bulk"
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
        import urllib.request
        with urllib.request.urlopen(self.base + "/nginx_status", timeout=5) as r:
            return int(r.read().decode().splitlines()[2].split()[2])

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        self.proc.wait(10)


def run_variant(name, scenario, nginx, sink, args, tmp):
    dur = args.warm + args.window + args.tail
    build = os.path.abspath(args.build)
    path = os.path.join(tmp, name + ".lua")
    with open(path, "w") as f:
        f.write(scenario)
    pf = os.path.join(tmp, "acrida.ports")
    if os.path.exists(pf):
        os.unlink(pf)
    env = dict(os.environ, FORWARD_URL=sink.url)
    master = subprocess.Popen(
        ["taskset", "-c", "1", os.path.join(build, "acrida-master"), "-f", path, "-H", nginx.url,
         "-u", "1", "-r", "1", "-t", "%gs" % dur, "--headless", "--only-summary", "--json",
         "--expect-workers", "1", "--master-bind-host", "127.0.0.1", "--master-bind-port", "0",
         "--port-file", pf], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tmp, env=env)
    port = master_load.wait_port(pf, master)
    worker = subprocess.Popen(["taskset", "-c", "1", os.path.join(build, "acrida-worker"),
                               "--exit-on-quit", "--master-host", "127.0.0.1", "--master-port", str(port)],
                              stderr=subprocess.DEVNULL, cwd=tmp, env=env)
    s0 = sink.requests()
    res = measure_window(nginx, lambda: [worker.pid], args.warm, args.window)
    out = master.communicate(timeout=dur + 60)[0].decode()
    worker.wait(30)
    res["bulk_posts"] = sink.requests() - s0 - 1
    doc = json.loads(out)
    names = {(r["method"], r["name"]) for r in doc["stats"]} - {("", "Aggregated"),
                                                                 (None, "Aggregated")}
    if names != {("GET", "/100b.txt")}:
        raise SystemExit("%s: unexpected statistics rows %s" % (name, sorted(map(str, names))))
    return res


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return "%s, %d CPUs" % (model, os.cpu_count())


def loadavg():
    return " ".join("%.2f" % x for x in os.getloadavg())


def run(build, rounds=3, warm=3, window=6, tail=2):
    """Runs the variants in interleaved rounds; returns {variant: [result per round]} (bench/bench.py
    calls this too)."""
    args = argparse.Namespace(build=build, rounds=rounds, warm=warm, window=window, tail=tail)
    scenarios = dict(SCENARIOS, forwarder=forwarder_scenario())
    results = {n: [] for n in scenarios}
    with tempfile.TemporaryDirectory() as tmp:
        nginx, sink = Nginx(tmp), Sink(tmp)
        try:
            for _ in range(rounds):
                for name, text in scenarios.items():
                    results[name].append(run_variant(name, text, nginx, sink, args, tmp))
        finally:
            nginx.stop()
            sink.stop()
    return results


def table(results):
    """The results as a Markdown table: medians over the rounds, the added cost against none."""
    base = statistics.median(r["cpu_us_per_req"] for r in results["none"])
    out = ["| listener | req/s (median) | worker CPU µs/req (median) | per round | "
           "added µs/req | bulk POSTs per run |",
           "|---|---:|---:|---|---:|---:|"]
    for name, rs in results.items():
        cpu = statistics.median(r["cpu_us_per_req"] for r in rs)
        out.append("| %s | %.0f | %.2f | %s | %+.2f | %s |" % (
            name, statistics.median(r["rps"] for r in rs), cpu,
            " ".join("%.2f" % r["cpu_us_per_req"] for r in rs), cpu - base,
            " ".join(str(r["bulk_posts"]) for r in rs) if name == "forwarder" else "-"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warm", type=float, default=3)
    ap.add_argument("--window", type=float, default=6)
    ap.add_argument("--tail", type=float, default=2)
    args = ap.parse_args()

    version = subprocess.run([os.path.join(args.build, "acrida-master"), "--version"],
                             capture_output=True, text=True).stdout.strip()
    out = []
    out.append("## Request listeners: the worker's CPU per request (1 user, no wait_time)")
    out.append("")
    out.append("`bench/listener_cost.py --rounds %d --warm %g --window %g`, %s, binaries `%s`; "
               "%s, load average %s at the start." % (
                   args.rounds, args.warm, args.window,
                   time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), version, machine(),
                   loadavg()))
    out.append("")
    out.extend(table(run(args.build, args.rounds, args.warm, args.window, args.tail)))
    out.append("")
    out.append("Load average at the end: %s." % loadavg())
    print("\n".join(out))


if __name__ == "__main__":
    main()
