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
import statistics
import tempfile

from benchlib import (ROOT, Nginx, NginxProcess, free_port, measure_window, print_report,
                      start_pinned)

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


class Sink(NginxProcess):
    """A second nginx on core 0 that answers every request (the bulk POSTs) 200 with a small
    JSON body, as Elasticsearch's _bulk does without errors."""

    def __init__(self, tmp):
        d = os.path.join(tmp, "sink")
        os.makedirs(d)
        port = free_port()
        base = "http://127.0.0.1:%d" % port
        self.url = base + "/_bulk"
        super().__init__(d, """
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
""" % {"d": d, "port": port}, base)


def run_variant(name, scenario, nginx, sink, args, tmp):
    dur = args.warm + args.window + args.tail
    build = os.path.abspath(args.build)
    path = os.path.join(tmp, name + ".lua")
    with open(path, "w") as f:
        f.write(scenario)
    env = dict(os.environ, FORWARD_URL=sink.url)
    master, worker = start_pinned(build, tmp, ["-f", path, "-H", nginx.url, "-u", "1", "-r", "1",
                                               "-t", "%gs" % dur], env)
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

    print_report("## Request listeners: the worker's CPU per request (1 user, no wait_time)",
                 "bench/listener_cost.py --rounds %d --warm %g --window %g" % (
                     args.rounds, args.warm, args.window), args.build,
                 lambda: table(run(args.build, args.rounds, args.warm, args.window, args.tail)))


if __name__ == "__main__":
    main()
