#!/usr/bin/env python3
"""The master in web mode under load: the HTTP API while it merges N simulated workers' reports.

The master runs without --headless (web mode, --web-port 0). N simulated workers (bench/master_load.py's
pyzmq DEALERs and report contents: E entries per report every 3 s, a heartbeat every second)
register; a test is started with POST /swarm (10 users per worker), the workers answer spawn as
acrida workers do (spawning, spawning_complete) and report while it runs, so the master merges
their reports as in a real run and the chart history is sampled. Reports are sent only once
/stats/requests says "running": every report sent is then one of the test's, and at the end the
workers stop reporting and the bench waits until the master's reports_merged equals the reports
sent (and the Aggregated row's num_requests the requests in them).

After a 5 s warm-up, six windows of the same length follow, each measuring the master's CPU
(user + system from /proc, as bench/master_load.py) and the time it waited for a CPU (run queue
delay from /proc/PID/schedstat: how much the machine's other processes got in its way):
  1. no HTTP client: the cost of merging alone;
  2. 20 simulated dashboards poll what master/web/assets/app.js polls every 2 s (POLL_MS):
     /stats/requests, then /exceptions, and the open tab's route: /stats/history on the Charts
     tab (dashboards 0, 2, 4, ...), /tasks on the Ratios tab (1, 3, 5, ...); each on its own
     keep-alive connection, started 100 ms apart;
  3. one client (http.client, keep-alive) GETs /stats/requests every 100 ms: its latency
     (request sent to last body byte read) and the document's size;
  4. a robustness check: the client of window 3 again, while 200 idle keep-alive connections (one
     request each, then nothing) and one slowloris (a request line, then one header byte per
     second; it reconnects when the master cuts it off) are open;
  5. the client of window 3 alone again: windows 3 and 5 bracket window 4, so a drift over the run
     (the merged statistics grow) is not mistaken for the effect of the idle connections;
  6. no HTTP client again: windows 1 and 6 show how much of a drift is the merging's.
The HTTP clients run in child processes (this script's "client" mode), not in the process that
drives the simulated workers.

usage: bench/master_web_load.py [--build build] [--workers 500] [--entries 100] [--window 30]
"""
import argparse
import http.client
import json
import math
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import msgpack

from benchlib import start_web_master, wait_port
import master_load

POLL_S = 2.0  # app.js POLL_MS
LATENCY_PERIOD_S = 0.1
DASHBOARDS = 20
IDLE_CONNS = 200
USERS_PER_WORKER = 10  # the reports' user_count (master_load.report)


# ---- the HTTP clients (child processes) ----------------------------------------------------------


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def summary(lat_s, errors, size):
    v = sorted(x * 1000 for x in lat_s)
    return {"count": len(v), "errors": errors, "size": size, "p50": percentile(v, 50),
            "p90": percentile(v, 90), "p99": percentile(v, 99), "max": v[-1] if v else None}


class Poller:
    """GETs over one keep-alive connection, reconnecting after an error; records the latency
    (request sent to the last body byte) of every 200 answer and counts the rest as errors."""

    def __init__(self, port):
        self.port = port
        self.conn = None
        self.lat = {}
        self.errors = {}
        self.size = {}

    def get(self, path):
        t0 = time.monotonic()
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.conn.request("GET", path, headers={"Accept": "application/json"})
            r = self.conn.getresponse()
            body = r.read()
            ok = r.status == 200 and body[:1] in (b"{", b"[") and body.endswith(b"\n")
        except (OSError, http.client.HTTPException):
            ok = False
            self.conn.close()
            self.conn = None
        if ok:
            self.lat.setdefault(path, []).append(time.monotonic() - t0)
            self.size[path] = len(body)
        else:
            self.errors[path] = self.errors.get(path, 0) + 1


def latency_client(port, stop):
    p = Poller(port)
    nxt = time.monotonic()
    while not stop.is_set():
        p.get("/stats/requests")
        nxt += LATENCY_PERIOD_S
        stop.wait(max(0, nxt - time.monotonic()))
    if p.conn:
        p.conn.close()
    path = "/stats/requests"
    return summary(p.lat.get(path, []), p.errors.get(path, 0), p.size.get(path))


def dashboard(i, port, stop, out):
    """One browser tab on app.js: poll() every POLL_S (skipped while the previous one runs)."""
    p = Poller(port)
    tab = "/stats/history" if i % 2 == 0 else "/tasks"
    stop.wait(i * POLL_S / DASHBOARDS)
    nxt = time.monotonic()
    while not stop.is_set():
        for path in ("/stats/requests", "/exceptions", tab):
            p.get(path)
        nxt += POLL_S
        while nxt < time.monotonic():
            nxt += POLL_S
        stop.wait(max(0, nxt - time.monotonic()))
    if p.conn:
        p.conn.close()
    out[i] = p


def dashboards(port, stop):
    polled = [None] * DASHBOARDS
    threads = [threading.Thread(target=dashboard, args=(i, port, stop, polled)) for i in range(DASHBOARDS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res = {}
    for path in ("/stats/requests", "/exceptions", "/stats/history", "/tasks"):
        lat = [x for p in polled for x in p.lat.get(path, [])]
        size = max((p.size[path] for p in polled if path in p.size), default=None)
        res[path] = summary(lat, sum(p.errors.get(path, 0) for p in polled), size)
    return res


def idle_connections(port, n):
    """@n connections that each made one keep-alive request and then stay silent."""
    socks = []
    req = b"GET /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.sendall(req)
        r = http.client.HTTPResponse(s)
        r.begin()
        r.read()
        if r.status != 200 or r.will_close:
            raise RuntimeError("idle connection setup: status %d, close %s" % (r.status, r.will_close))
        socks.append(s)
    return socks


def still_open(socks):
    """Connections the master has not closed (no EOF, no reset, nothing unexpected to read)."""
    n = 0
    for s in socks:
        s.setblocking(False)
        try:
            s.recv(1)  # EOF (b""), or bytes the master should not have sent
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def slowloris(port, stop, out):
    """A request that never ends: the request line and one header byte per second. Records how
    each connection ended (the status the master answered, or a bare close) and after how long."""
    while not stop.is_set():
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.setblocking(False)
        t0 = time.monotonic()
        s.sendall(b"GET /stats/requests HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        got = b""
        ended = None
        while not stop.is_set() and ended is None:
            try:
                s.send(b"a")
            except OSError:
                ended = "reset"
                break
            stop.wait(1.0)
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        ended = "closed"
                        break
                    got += chunk
            except BlockingIOError:
                pass
            except OSError:
                ended = "reset"
        s.close()
        if ended is not None:
            status = got.split(b" ", 2)[1].decode() if got.startswith(b"HTTP/1.1 ") else ended
            out.append({"status": status, "after_s": time.monotonic() - t0})


def client_main(a):
    stop = threading.Event()
    extra = {}
    idle = idle_connections(a.port, a.idle) if a.idle else []
    slow = []
    slow_thread = None
    if a.slowloris:
        slow_thread = threading.Thread(target=slowloris, args=(a.port, stop, slow))
        slow_thread.start()
    result = queue.Queue()
    fn = latency_client if a.mode == "latency" else dashboards
    worker = threading.Thread(target=lambda: result.put(fn(a.port, stop)))
    worker.start()
    print("ready", flush=True)
    sys.stdin.readline()  # the parent's "stop" (or EOF)
    stop.set()
    worker.join()
    if a.idle:
        extra["idle_open"] = still_open(idle)
        for s in idle:
            s.close()
    if slow_thread:
        slow_thread.join()
        extra["slowloris"] = slow
    out = result.get()
    out.update(extra)
    print(json.dumps(out), flush=True)


# ---- the master and the simulated workers (the parent) -------------------------------------------


class Client:
    """A client child process: started, waited for until ready, then stopped for its result."""

    def __init__(self, web_port, mode, idle=0, slow=False):
        cmd = [sys.executable, os.path.abspath(__file__), "client", "--port", str(web_port), "--mode", mode,
               "--idle", str(idle)] + (["--slowloris"] if slow else [])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def line(self, block):
        try:
            line = self.lines.get(block, 300 if block else None)
        except queue.Empty:
            return None
        if line is None and block:
            raise RuntimeError("an HTTP client child exited early (status %s)" % self.proc.wait())
        return line

    def stop(self):
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        res = json.loads(self.line(True))
        self.proc.wait(60)
        return res


def final_report(seq):
    """A worker's last report of a test: nothing new since the one before."""
    now = time.time()
    total = {"name": "Aggregated", "method": "", "last_request_timestamp": None, "start_time": now,
             "num_requests": 0, "num_none_requests": 0, "num_failures": 0, "total_response_time": 0,
             "max_response_time": 0, "min_response_time": None, "total_content_length": 0,
             "response_times": {}, "num_reqs_per_sec": {}, "num_fail_per_sec": {}}
    return {"stats": [], "stats_total": total, "errors": {}, "user_classes_count": {"U": USERS_PER_WORKER},
            "user_count": USERS_PER_WORKER, "acrida_seq": seq, "acrida_final": True}


class Run:
    """The simulated workers' loop: heartbeats, reports while the test runs, answers to the
    master's messages. pump() runs it until a condition holds."""

    def __init__(self, fleet, master, web_port, templates):
        self.fleet, self.master, self.templates = fleet, master, templates
        self.http = http.client.HTTPConnection("127.0.0.1", web_port, timeout=60)
        n = len(fleet.socks)
        self.seq = [0] * n
        self.index = {node: i for i, (_, node) in enumerate(fleet.socks)}
        self.next_stats = None
        self.next_hb = time.monotonic()
        self.hb_state = "ready"
        self.reporting = False
        self.sent_reports = self.sent_requests = 0
        self.acked = set()
        self.spawns = 0

    def api(self, method, path, body=None):
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
        self.http.request(method, path, body=body, headers=headers)
        r = self.http.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError("%s %s: %d %s" % (method, path, r.status, data[:300]))
        return json.loads(data)

    def on_msg(self, s, m):
        kind, data, node = m[0], m[1], m[2]
        if kind == "ack":
            self.acked.add(node)
        elif kind == "reconnect":  # as worker/worker.c: registered again at once (a client_ready
            # beyond the master's --registration-rate was dropped: the id is unknown there)
            s.send(msgpack.packb(["client_ready", "acrida/bench", node]))
        elif kind == "scenario" and isinstance(data, dict) and data.get("acrida_bundle"):
            # as worker/worker.c: the master gives users only to a worker that loaded it
            s.send(msgpack.packb(["acrida_scenario_loaded",
                                  {"sha256": data["acrida_bundle"]["sha256"], "error": None},
                                  node]))
        elif kind == "spawn":
            self.spawns += 1
            s.send(msgpack.packb(["spawning", None, node]))
            counts = data["user_classes_count"]
            s.send(msgpack.packb(["spawning_complete", {"user_classes_count": counts,
                                                        "user_count": sum(counts.values())}, node]))
            self.hb_state = "running"
        elif kind == "stop":  # as worker/worker.c users_stopped(): the final report first
            i = self.index[node]
            self.seq[i] += 1
            s.send(msgpack.packb(["stats", final_report(self.seq[i]), node]))
            self.sent_reports += 1
            s.send(msgpack.packb(["client_stopped", None, node]))
            s.send(msgpack.packb(["client_ready", "acrida/bench", node]))
        elif kind == "quit":
            s.send(msgpack.packb(["quit", None, node]))

    def start_reporting(self):
        n = len(self.fleet.socks)
        start = time.monotonic()
        self.next_stats = [start + 3 * i / n for i in range(n)]
        self.reporting = True

    def pump(self, until, timeout, what):
        deadline = time.monotonic() + timeout
        while not until():
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError("%s: not within %.0f s" % (what, timeout))
            if self.master.poll() is not None:
                raise RuntimeError("acrida-master exited with %s" % self.master.returncode)
            if now >= self.next_hb:
                for s, node in self.fleet.socks:
                    s.send(msgpack.packb(["heartbeat", {"state": self.hb_state, "current_cpu_usage": 1.0,
                                                        "current_memory_usage": 1 << 20}, node]))
                self.next_hb += 1
            wake = self.next_hb
            if self.reporting:
                for i, (s, node) in enumerate(self.fleet.socks):
                    if now >= self.next_stats[i]:
                        self.seq[i] += 1
                        t = self.templates[(i + self.seq[i]) % len(self.templates)]
                        s.send(master_load.report(node, t, self.seq[i]))
                        self.sent_reports += 1
                        self.sent_requests += t["requests"]
                        self.next_stats[i] += 3
                wake = min(wake, min(self.next_stats))
            self.fleet.receive(max(0, min(100, int((wake - time.monotonic()) * 1000))), self.on_msg)

    def pump_for(self, seconds):
        end = time.monotonic() + seconds
        self.pump(lambda: time.monotonic() >= end, seconds + 60, "a window")


def run_delay(pid):
    """Seconds @pid has spent runnable but waiting for a CPU (/proc/PID/schedstat): the other
    processes' share of the machine, as the master felt it."""
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[1]) / 1e9


def window(run, seconds, client=None):
    """One measured window: the master's CPU and the reports it merged meanwhile (and the
    client's result)."""
    if client:
        run.pump(lambda: client.line(False) is not None, 300, "an HTTP client ready")
    merged0 = run.api("GET", "/stats/requests")["reports_merged"]
    c0, w0, t0 = master_load.cpu(run.master.pid), run_delay(run.master.pid), time.monotonic()
    run.pump_for(seconds)
    c1, w1, t1 = master_load.cpu(run.master.pid), run_delay(run.master.pid), time.monotonic()
    load = os.getloadavg()[0]
    res = client.stop() if client else None
    merged1 = run.api("GET", "/stats/requests")["reports_merged"]
    if merged1 <= merged0:
        raise RuntimeError("the master merged no report in the window (%d -> %d)" % (merged0, merged1))
    return {"cpu": (c1 - c0) / (t1 - t0), "wait": (w1 - w0) / (t1 - t0), "load": load, "span": t1 - t0,
            "merged": merged1 - merged0, "client": res}


def run(build, workers, entries, seconds):
    tmp = tempfile.mkdtemp(prefix="acrida-master-web-load-")
    try:
        return run_in(tmp, build, workers, entries, seconds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_in(tmp, build, workers, entries, seconds):
    rng = random.Random(20261130)
    templates = [master_load.report_template(rng, entries) for _ in range(master_load.TEMPLATES)]
    master, pf, log_path = start_web_master(tmp, build, ["-H", "http://127.0.0.1:9",
                                                         "--exit-code-on-error", "0"])
    wait_port(pf, master)
    ports = dict(l.split("=") for l in open(pf).read().split())
    web_port = int(ports["web"])
    fleet = master_load.Fleet(int(ports["master"]), workers)
    r = Run(fleet, master, web_port, templates)
    try:
        fleet.register()
        r.pump(lambda: len(r.acked) == workers, 120, "every worker acked")
        r.pump(lambda: len(r.api("GET", "/workers")["workers"]) == workers, 120, "the workers listed")
        r.api("POST", "/swarm", "user_count=%d&spawn_rate=%d" % (workers * USERS_PER_WORKER,
                                                                 workers * USERS_PER_WORKER))
        r.pump(lambda: r.api("GET", "/stats/requests")["state"] == "running", 120, "the test running")
        r.start_reporting()
        r.pump_for(5)
        base = window(r, seconds)
        dash = window(r, seconds, Client(web_port, "dashboards"))
        alone = window(r, seconds, Client(web_port, "latency"))
        rough = window(r, seconds, Client(web_port, "latency", IDLE_CONNS, True))
        again = window(r, seconds, Client(web_port, "latency"))
        last = window(r, seconds)
        r.reporting = False
        r.pump(lambda: r.api("GET", "/stats/requests")["reports_merged"] == r.sent_reports, 120,
               "every report merged")
        r.api("GET", "/stop")
        settled = lambda d: d["state"] == "stopped" and d["reports_merged"] == r.sent_reports
        r.pump(lambda: settled(r.api("GET", "/stats/requests")), 120, "the stop and the final reports")
        doc = r.api("GET", "/stats/requests")
        master.send_signal(signal.SIGTERM)
        r.pump(lambda: master.poll() is not None, 120, "the master's exit")
    finally:
        r.http.close()
        fleet.close()
        if master.poll() is None:
            master.kill()
        master.wait()
    log = open(log_path, errors="replace").read()
    agg = [x for x in doc["stats"] if x["name"] == "Aggregated"][0]
    return {"workers": workers, "entries": entries, "window": seconds, "base": base, "alone": alone,
            "dash": dash, "rough": rough, "again": again, "last": last, "sent_reports": r.sent_reports, "sent_requests": r.sent_requests,
            "merged_reports": doc["reports_merged"], "merged_requests": agg["num_requests"],
            "lost": doc["lost_reports"], "rows": len(doc["stats"]), "listed_workers": len(doc["workers"]),
            "exit": master.returncode, "malformed": log.count("malformed"),
            "seq_warnings": log.count("out of order") + log.count("missing (lost interval)")}


def ms(v):
    return "-" if v is None else "%.1f" % v


def pct(v):
    return "%.1f %%" % (100 * v)


def kib(v):
    if v is None:
        return "-"
    return "%d bytes" % v if v < 10240 else "%.0f KiB" % (v / 1024)


def table(r):
    """The result as printed by `make bench` (bench/bench.py) and by this script."""
    d = r["dash"]["client"]
    ro = r["rough"]["client"]
    slow = ro.get("slowloris", [])
    ends = {}
    for x in slow:
        ends.setdefault(x["status"], []).append(x["after_s"])
    cut = ", ".join("%d x %s after %s s" % (len(v), k, "%.0f" % min(v) if round(min(v)) == round(max(v))
                                             else "%.0f-%.0f" % (min(v), max(v))) for k, v in sorted(ends.items()))
    one = "1 client: GET /stats/requests every 100 ms"
    rows = [("no HTTP client", r["base"], []),
            ("%d dashboards polling as app.js every 2 s" % DASHBOARDS, r["dash"], list(d.values())),
            (one, r["alone"], [r["alone"]["client"]]),
            ("1 client as above + %d idle keep-alive connections + 1 slowloris" % IDLE_CONNS, r["rough"], [ro]),
            ("1 client as above, alone again", r["again"], [r["again"]["client"]]),
            ("no HTTP client again", r["last"], [])]
    lines = ["| window (%g s each, test running) | master CPU (of one core) | master waiting for a CPU | "
             "load average (1 min) at its end | reports merged | HTTP requests | HTTP errors |" % r["window"],
             "|---|---|---|---|---|---|---|"]
    for label, w, res in rows:
        lines.append("| %s | %s | %s | %.2f | %d | %d | %d |" % (
            label, pct(w["cpu"]), pct(w["wait"]), w["load"], w["merged"],
            sum(x["count"] + x["errors"] for x in res), sum(x["errors"] for x in res)))
    lat = [("/stats/requests, 1 client every 100 ms", r["alone"]["client"])]
    lat += [("%s, %d dashboards" % (path, DASHBOARDS), d[path])
            for path in ("/stats/requests", "/exceptions", "/stats/history", "/tasks")]
    lat += [("/stats/requests, 1 client every 100 ms, with %d idle connections + 1 slowloris" % IDLE_CONNS, ro),
            ("/stats/requests, 1 client every 100 ms, alone again", r["again"]["client"])]
    lines += ["", "| GET latency (ms), request sent to last byte read | requests | p50 | p90 | p99 | max | "
              "answer size |", "|---|---|---|---|---|---|---|"]
    for label, x in lat:
        lines.append("| %s | %d | %s | %s | %s | %s | %s |" % (
            label, x["count"], ms(x["p50"]), ms(x["p90"]), ms(x["p99"]), ms(x["max"]), kib(x["size"])))
    lines += [
        "",
        "/stats/requests listed %d workers and %d rows (%d entries + Aggregated; rows are capped at "
        "500 + Aggregated, as Locust). Idle keep-alive connections still open at the end of their "
        "window: %d of %d; slowloris connections ended by the master: %d%s." % (
            r["listed_workers"], r["rows"], r["rows"] - 1, ro.get("idle_open", 0), IDLE_CONNS, len(slow),
            " (%s)" % cut if cut else ""),
        "",
        "| | sent | merged by the master |",
        "|---|---|---|",
        "| reports (the test's, the final ones included) | %d | %d |" % (r["sent_reports"], r["merged_reports"]),
        "| requests in them | %d | %d |" % (r["sent_requests"], r["merged_requests"]),
        "",
        "Reports lost: %d; frames dropped as malformed: %d; sequence gaps or reorderings logged: %d; "
        "master exit status after SIGTERM (--exit-code-on-error 0): %d." % (
            r["lost"], r["malformed"], r["seq_warnings"], r["exit"]),
    ]
    return lines


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        ap = argparse.ArgumentParser()
        ap.add_argument("client")
        ap.add_argument("--port", type=int, required=True)
        ap.add_argument("--mode", choices=("latency", "dashboards"), required=True)
        ap.add_argument("--idle", type=int, default=0)
        ap.add_argument("--slowloris", action="store_true")
        client_main(ap.parse_args())
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--workers", type=int, default=500)
    ap.add_argument("--entries", type=int, default=100)
    ap.add_argument("--window", type=float, default=30)
    a = ap.parse_args()
    print("\n".join(table(run(os.path.abspath(a.build), a.workers, a.entries, a.window))))


if __name__ == "__main__":
    main()
