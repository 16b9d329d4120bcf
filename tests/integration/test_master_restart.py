"""A restarted master takes the workers back (proto/PROTOCOL.md, "Master restart"): frames from a
peer that never registered are dropped and answered with `reconnect`; a worker that re-registers
with a test it runs (acrida_rejoin + its cumulative report) is adopted without a spawn, the test
shows running over the HTTP API, /stop stops it, and the totals are the workers' since the start.
The fake worker is pyzmq + msgpack; the end-to-end tests run real workers and SIGKILL the master.
A load shape (acrida.stages) resumes on the adopted test at the run time the workers' rejoins give
(their `started_at`): the next stage comes and the test ends when the stages do, on the clock of
the killed master's start.
"""
import hashlib
import os
import re
import signal
import time

import pytest

from conftest import WebApi, Daemon, _died, binary, free_port, read_port_file, wait_for, write_scenario
from fakepeer import FakeWorker

SCENARIO = """
acrida.user { name = "Reader", wait_time = 0.02,
  tasks = { function(self) self.client:get("/") end } }
"""

TEST_ID = "0123456789abcdef0123456789abcdef"


class WebMaster(WebApi, Daemon):
    """acrida-master in web mode, its workers' port fixed (a restarted master binds the same)."""

    def __init__(self, tmp_path, args, master_port, name="master"):
        pf = str(tmp_path / (name + ".ports"))
        super().__init__([binary("acrida-master")] + list(args) + [
            "--web-port", "0", "--master-bind-host", "127.0.0.1",
            "--master-bind-port", str(master_port), "--port-file", pf], tmp_path, name)
        self.started = time.time()
        wait_for(lambda: read_port_file(pf, "web") or (not self.alive() and _died(self)),
                 what="master port file")
        self.web = "http://127.0.0.1:%d" % read_port_file(pf, "web")

    def wait_state(self, state, timeout=120):
        return wait_for(lambda: (not self.alive() and _died(self)) or
                        (lambda d: d if d["state"] == state else None)(self.stats()),
                        timeout=timeout, what="state %s" % state)


def aggregated(doc):
    return [r for r in doc["stats"] if r["name"] == "Aggregated"][0]


def entry(name, method, n):
    now = time.time()
    return {"name": name, "method": method, "last_request_timestamp": now, "start_time": now,
            "num_requests": n, "num_none_requests": 0, "num_failures": 0,
            "total_response_time": 10 * n, "max_response_time": 10,
            "min_response_time": 10 if n else None, "total_content_length": 0,
            "response_times": {10: n} if n else {}, "num_reqs_per_sec": {int(now): n},
            "num_fail_per_sec": {}}


class RejoiningWorker(FakeWorker):
    """A worker spoken by hand on the acrida side of a restart: client_ready, then after an ack
    with a new instance acrida_rejoin and the cumulative report (report())."""

    def __init__(self, port, node):
        super().__init__(port, node, state="running", memory=1000)
        self.seq = 0

    def report(self, n, cumulative=False, final=False):
        self.seq += 1
        data = {"stats": [entry("/", "GET", n)] if n else [],
                "stats_total": entry("Aggregated", "", n), "errors": {},
                "user_classes_count": {"Reader": 3 if self.state != "stopped" else 0},
                "user_count": 3 if self.state != "stopped" else 0,
                "acrida_seq": self.seq, "acrida_final": final}
        if cumulative:
            data["acrida_cumulative"] = True
        self.send("stats", data)


def test_fake_worker_is_asked_to_reconnect_and_adopted(tmp_path):
    sc = write_scenario(tmp_path, SCENARIO)
    sha = hashlib.sha256(open(sc, "rb").read()).hexdigest()
    port = free_port()
    m = WebMaster(tmp_path, ["-f", sc, "-H", "http://127.0.0.1:9", "-r", "7"], port)
    w = RejoiningWorker(port, "fake_00000000000000000000000000000001")
    try:
        # a peer that never registered: its heartbeat and report are dropped, it is told to
        # reconnect
        w.report(500)
        w.pump(lambda t: t == "reconnect", what="reconnect")
        w.send("client_ready", "acrida/fake")
        ack = w.pump(lambda t: t == "ack", what="ack")
        instance = ack["acrida"]["instance"]
        assert re.fullmatch(r"[0-9a-f]{32}", instance), ack
        w.send("acrida_rejoin", {
            "test_id": TEST_ID, "state": "running", "user_classes_count": {"Reader": 3},
            "user_count": 3, "scenario_sha256": sha, "host": "http://127.0.0.1:9",
            "stop_timeout": None, "tags": None, "exclude_tags": None, "last_seq": 41})
        w.seq = 41
        w.report(1000, cumulative=True)
        w.pump(lambda _: (lambda d: d["state"] == "running" and
                          aggregated(d)["num_requests"] == 1000)(m.stats()),
               what="the adopted test running with its baseline")
        doc = m.stats()
        assert doc["test_id"] == TEST_ID and doc["adopted"] is True, doc
        assert doc["user_count"] == 3, doc
        assert doc["lost_reports"] == 0, doc
        assert "adopted test %s from 1 workers (3 users)" % TEST_ID in m.log(), m.log()[-3000:]
        assert "dropped 'stats' from fake_00000000000000000000000000000001: not a registered " \
            "worker" in m.log(), m.log()[-3000:]
        assert "spawn" not in w.seen, w.seen  # nobody moved
        w.report(20)
        w.pump(lambda _: aggregated(m.stats())["num_requests"] == 1020, what="the next delta")

        def stopped(_):
            w.state = "stopped"
            w.report(5, final=True)
            w.send("client_stopped", None)
        w.on["stop"] = stopped
        assert m.http("/stop")[0] == 200
        w.pump(lambda t: t == "stop", what="stop")
        w.pump(lambda _: m.stats()["state"] == "stopped", what="state stopped")
        doc = m.stats()
        assert aggregated(doc)["num_requests"] == 1025, doc
        assert doc["lost_reports"] == 0, doc
    finally:
        w.close()
        m.stop()


def test_rejoin_of_another_scenario_is_stopped(tmp_path):
    sc = write_scenario(tmp_path, SCENARIO)
    port = free_port()
    m = WebMaster(tmp_path, ["-f", sc, "-H", "http://127.0.0.1:9"], port)
    w = RejoiningWorker(port, "other_0000000000000000000000000000002")
    try:
        w.send("client_ready", "acrida/fake")
        w.pump(lambda t: t == "ack", what="ack")
        w.send("acrida_rejoin", {
            "test_id": TEST_ID, "state": "running", "user_classes_count": {"Reader": 3},
            "user_count": 3, "scenario_sha256": "a" * 64, "host": None, "stop_timeout": None,
            "tags": None, "exclude_tags": None, "last_seq": 3})
        w.seq = 3
        w.report(99, cumulative=True)
        w.pump(lambda t: t == "stop", what="stop")
        assert "runs another scenario than this master's; asking it to stop" in m.log()
        doc = m.stats()
        assert doc["state"] == "ready" and aggregated(doc)["num_requests"] == 0, doc
    finally:
        w.close()
        m.stop()


LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")


def log_time(log, needle):
    """The epoch time of the first log line containing @needle (the daemon's own clock)."""
    import calendar
    for line in log.splitlines():
        if needle in line:
            mt = LOG_TS.match(line)
            if mt:
                base, frac = mt.group(1).split(".")
                return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + \
                    float("0." + frac)
    return None


def worker_supports_rejoin():
    """The worker side of #10 (master loss, acrida_rejoin on a new master instance) is in this
    build: its --master-timeout is no longer marked "not yet"."""
    import subprocess
    out = subprocess.run([binary("acrida-worker"), "--help"], capture_output=True, text=True)
    line = [x for x in (out.stdout + out.stderr).splitlines() if "--master-timeout" in x]
    return bool(line) and "not yet" not in line[0]


class Worker(Daemon):
    def __init__(self, tmp_path, port, name, extra=()):
        super().__init__([binary("acrida-worker"), "--master-host", "127.0.0.1", "--master-port",
                          str(port), "--master-timeout", "10"] + list(extra), tmp_path, name)


def _kill(d):
    if d.alive():
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()


class Fleet:
    """A web master on a fixed port with 2 real workers registered and ready (m1), and the master
    that replaces it on the same port (restart() -> m2); leaving the block stops them all."""

    def __init__(self, tmp_path, target, scenario, worker_args=()):
        self.tmp_path = tmp_path
        self.args = ["-f", write_scenario(tmp_path, scenario), "-H", target.url]
        self.port = free_port()
        self.m1 = WebMaster(tmp_path, self.args, self.port, name="master1")
        self.workers = [Worker(tmp_path, self.port, "worker%d" % i, list(worker_args))
                        for i in range(2)]
        self.m2 = None

    def __enter__(self):
        wait_for(lambda: sum(w["state"] == "ready" for w in self.m1.stats()["workers"]) == 2,
                 what="2 workers")
        return self

    def restart(self):
        self.m2 = WebMaster(self.tmp_path, self.args, self.port, name="master2")
        return self.m2

    def __exit__(self, *exc):
        for w in self.workers:
            w.stop()
        if self.m2:
            self.m2.stop()
        _kill(self.m1)


@pytest.mark.skipif(not os.path.exists(binary("acrida-worker")) or not worker_supports_rejoin(),
                    reason="the worker side of the master restart is not in this build")
def test_real_workers_adopted_after_master_sigkill(tmp_path, target):
    with Fleet(tmp_path, target, SCENARIO) as f:
        m1 = f.m1
        assert m1.http("/swarm", {"user_count": 6, "spawn_rate": 100})[0] == 200
        first = m1.wait_state("running")
        wait_for(lambda: m1.stats()["user_count"] == 6, what="6 users")
        wait_for(lambda: target.counts()["served"] > 200, what="load")
        _kill(m1)
        m2 = f.restart()
        doc = wait_for(lambda: (lambda d: d if d["state"] == "running" and d["user_count"] == 6
                                and "adopted test %s from 2 workers" % first["test_id"] in m2.log()
                                else None)(m2.stats()), what="the adopted test running")
        assert doc["test_id"] == first["test_id"] and doc["adopted"], doc
        t_adopt = log_time(m2.log(), "from 2 workers")
        assert t_adopt is not None and t_adopt - m2.started < 5.0 + 0.5, (t_adopt, m2.started)
        n0 = aggregated(doc)["num_requests"]
        wait_for(lambda: aggregated(m2.stats())["num_requests"] > n0 + 100, what="counts growing")
        assert m2.http("/stop")[0] == 200
        doc = m2.wait_state("stopped")
        served = target.counts()["served"]
        total = aggregated(doc)["num_requests"]
        assert total == served or (doc["lost_reports"] > 0 and total <= served), \
            (total, served, doc["lost_reports"], m2.log()[-3000:])


@pytest.mark.skipif(not os.path.exists(binary("acrida-worker")) or not worker_supports_rejoin(),
                    reason="the worker side of the master restart is not in this build")
def test_master_after_the_timeout_shows_the_stopped_test(tmp_path, target):
    with Fleet(tmp_path, target, SCENARIO, ["--master-timeout", "3"]) as f:
        m1, workers = f.m1, f.workers
        assert m1.http("/swarm", {"user_count": 4, "spawn_rate": 100})[0] == 200
        first = m1.wait_state("running")
        wait_for(lambda: target.counts()["served"] > 100, what="load")
        _kill(m1)
        # both workers stop their users after the master timeout (their log says so once the
        # in-flight requests completed): the target's count is final
        wait_for(lambda: all("users stopped" in w.log() for w in workers), timeout=120,
                 what="the workers stopping their users after the master loss")
        m2 = f.restart()
        doc = wait_for(lambda: (lambda d: d if d["state"] == "stopped" and
                                aggregated(d)["num_requests"] == target.counts()["served"]
                                else None)(m2.stats()), what="the stopped test with its stats")
        assert doc["test_id"] == first["test_id"] and doc["adopted"], doc


STAGES = SCENARIO + """
acrida.stages {
  { duration = 20, users = 2, spawn_rate = 100 },
  { duration = 40, users = 4, spawn_rate = 100 },
}
"""


@pytest.mark.skipif(not os.path.exists(binary("acrida-worker")) or not worker_supports_rejoin(),
                    reason="the worker side of the master restart is not in this build")
def test_load_shape_resumes_after_master_sigkill(tmp_path, target):
    with Fleet(tmp_path, target, STAGES) as f:
        m1 = f.m1
        assert m1.http("/swarm", {"host": target.url})[0] == 200
        first = m1.wait_state("running")
        wait_for(lambda: m1.stats()["user_count"] == 2, what="stage 1's 2 users")
        t_start = log_time(m1.log(), "starts the test: stage 1: 2 users")
        assert t_start is not None, m1.log()[-3000:]
        _kill(m1)  # during stage 1 (the new master's log says at which run time)
        assert "stage 2" not in m1.log(), m1.log()[-3000:]
        m2 = f.restart()
        resumed = re.compile(r"resumes the adopted test at run time ([0-9.]+) s: stage (\d+): "
                             r"(\d+) users")
        mt = wait_for(lambda: resumed.search(m2.log()) or (not m2.alive() and _died(m2)),
                      what="the shape resumed on the adopted test")
        assert "adopted test %s from" % first["test_id"] in m2.log(), m2.log()[-3000:]
        run_time, stage, users = float(mt.group(1)), int(mt.group(2)), int(mt.group(3))
        assert (stage, users) == (1, 2) and 0 < run_time < 20, mt.group(0)
        t_resume = log_time(m2.log(), "resumes the adopted test")
        # the run time it resumed at is the time since the test's start on m1 (the workers' first
        # spawn came just after m1's log line)
        assert -0.5 <= (t_resume - t_start) - run_time <= 1.5, (t_resume, t_start, run_time)
        # stage 2 at run time 20 s of the original start, through the same re-targeting as a
        # running shape test (its log line; the user count and /stats/requests' "shape")
        def at_stage2():
            d = m2.stats()
            return d if d["user_count"] == 4 and d["shape"] == {"users": 4, "spawn_rate": 100,
                                                                 "stage": 2} else None
        doc = wait_for(lambda: at_stage2() or (not m2.alive() and _died(m2)), what="stage 2")
        assert doc["test_id"] == first["test_id"] and doc["adopted"], doc
        t_stage2 = log_time(m2.log(), "load shape: stage 2: 4 users")
        assert t_stage2 is not None, m2.log()[-3000:]
        # a tick is 1 s; the workers' first spawn came after m1's line
        assert 19.5 <= t_stage2 - t_start <= 24.0, (t_stage2 - t_start, m2.log()[-3000:])
        # the test stops when the stages end (at 40 s), as it would have on m1
        doc = m2.wait_state("stopped")
        assert doc["test_id"] == first["test_id"], doc
        ended = re.search(r"the shape ended at (\d+) s: stopping the test", m2.log())
        assert ended and 40 <= int(ended.group(1)) <= 42, m2.log()[-3000:]
        t_end = log_time(m2.log(), "the shape ended at")
        assert 39.5 <= t_end - t_start <= 44.0, (t_end - t_start, m2.log()[-3000:])
        print("measured: resumed at run time %.1f s (%.2f s after m1's start line); stage 2 "
              "applied %.2f s and the end %.2f s after it" % (run_time, t_resume - t_start,
                                                              t_stage2 - t_start, t_end - t_start))
