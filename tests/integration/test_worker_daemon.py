"""Workers as daemons (#10): a worker outlives its masters (quit, SIGKILL, not there yet) and runs
the next test in the same process; --exit-on-quit keeps Locust's one-shot worker; a worker whose
acrida master went silent stops its users within --master-timeout + 1 s and keeps their results;
a restarted master gets the worker's re-registration (acrida_rejoin + the cumulative report) and
nothing is counted twice. The restarted masters are fake ROUTERs (FakeMaster in fakepeer.py), so
the frames are checked as sent."""
import datetime
import json
import os
import re
import signal
import time

from conftest import (Daemon, aggregated, binary, free_port, read_port_file, wait_for,
                      write_scenario)
from fakepeer import FakeMaster

OK = """
local acrida = require "acrida"
acrida.user { name = "U", wait_time = acrida.constant(0.05),
  tasks = { function(self) self.client:get("/") end } }
"""

INSTANCE_A = "a" * 32
INSTANCE_B = "b" * 32
TEST_ID = "0123456789abcdef" * 2


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def master_at(tmp_path, port, args, name):
    """A headless acrida-master bound to the fixed @port (a restarted master reuses it)."""
    pf = str(tmp_path / (name + ".ports"))
    d = Daemon([binary("acrida-master")] + list(args) + [
        "--headless", "--json", "--master-bind-host", "127.0.0.1", "--master-bind-port",
        str(port), "--port-file", pf], tmp_path, name)
    wait_for(lambda: read_port_file(pf, "master") or not d.alive(), what=name + " port file")
    return d


def log_time(line):
    """The UTC timestamp at the start of a log line, as epoch seconds."""
    stamp = line.split(" ", 1)[0].rstrip("Z")
    dt = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f")
    return dt.replace(tzinfo=datetime.timezone.utc).timestamp()


def log_line(log, text):
    for line in log.splitlines():
        if text in line:
            return line
    return None


def test_worker_outlives_its_masters_and_runs_the_next_test(tmp_path, target):
    """Started before any master; the first master quits (SIGTERM: stop, final report, quit);
    the same process joins the next master and its second test is counted exactly."""
    sc = write_scenario(tmp_path, OK)
    port = free_port()
    w = Daemon([binary("acrida-worker"), "--master-port", str(port), "-f", sc], tmp_path, "worker")
    masters = []
    try:
        wait_for(lambda: "sending client_ready again" in w.log(), what="the worker to wait")
        args = ["-f", sc, "-H", target.url, "-u", "2", "-r", "2", "-t", "10m",
                "--expect-workers", "1"]
        served = [0]
        for i in (1, 2):
            m = master_at(tmp_path, port, args, "master%d" % i)
            masters.append(m)
            wait_for(lambda: target.counts()["served"] > served[-1] + 20 or not m.alive(),
                     what="requests of test %d" % i)
            seen = len(w.log())
            # the headless master's SIGTERM: stop (final report), then quit
            m.proc.send_signal(signal.SIGTERM)
            m.proc.wait(timeout=120)
            assert m.stop() == 0, m.log()[-3000:]
            wait_for(lambda: "the master quit; waiting for the next master" in w.log()[seen:],
                     what="the worker to wait for master %d's successor" % i)
            assert "users stopped; ready" in w.log()[seen:], w.log()[-3000:]
            assert w.alive(), w.log()[-3000:]
            served.append(target.counts()["served"])
            doc = json.loads(m.stdout())
            # each master counted exactly what the target served during its test
            assert aggregated(doc)["num_requests"] == served[i] - served[i - 1] > 0, (served, i)
        assert w.alive()
    finally:
        for m in masters:
            if m.alive():
                m.stop()
        rc = w.stop()
    assert rc == 0, w.log()[-3000:]


def test_exit_on_quit_worker_exits_when_the_master_quits(tmp_path, target):
    sc = write_scenario(tmp_path, OK)
    port = free_port()
    m = master_at(tmp_path, port, ["-f", sc, "-H", target.url, "-u", "1", "-r", "1", "-t", "10m",
                                   "--expect-workers", "1"], "master")
    w = Daemon([binary("acrida-worker"), "--exit-on-quit", "--master-port", str(port), "-f", sc],
               tmp_path, "worker")
    try:
        wait_for(lambda: target.counts()["served"] > 0 or not m.alive(), what="requests")
        m.proc.send_signal(signal.SIGTERM)
        w.proc.wait(timeout=120)  # on its own, after the quit
    finally:
        mrc = m.stop()
        wrc = w.stop()
    assert wrc == 0, w.log()[-3000:]
    assert mrc == 0, m.log()[-3000:]
    assert "quit from the master: stopping users and quitting" in w.log(), w.log()[-3000:]


def test_master_timeout_is_validated(tmp_path):
    import subprocess
    for bad, reason in (("1", "must be >= 2"), ("25h", "must be <= 86400"), ("soon", "time span")):
        p = subprocess.run([binary("acrida-worker"), "--master-timeout", bad], capture_output=True,
                           timeout=120, cwd=str(tmp_path))
        assert p.returncode == 2, p.stderr
        assert b"--master-timeout" in p.stderr and reason.encode() in p.stderr, p.stderr


def test_killed_master_stops_the_load_and_the_next_master_gets_the_results(tmp_path, target):
    """SIGKILL the master mid-test: the worker stops sending requests within --master-timeout
    + 1 s (its own log's timestamps against the kill, 0.5 s tolerance), and the target sees no
    request afterwards. A new master (a fake on the same port) gets acrida_rejoin "stopped" and a
    cumulative final report holding every request the target served."""
    sc = write_scenario(tmp_path, OK)
    port = free_port()
    m = master_at(tmp_path, port, ["-f", sc, "-H", target.url, "-u", "3", "-r", "3", "-t", "10m",
                                   "--expect-workers", "1"], "master")
    w = Daemon([binary("acrida-worker"), "--master-timeout", "3", "--master-port", str(port), "-f",
                sc], tmp_path, "worker")
    fm = None
    try:
        wait_for(lambda: target.counts()["served"] > 50 or not m.alive(), what="load")
        pid = w.proc.pid
        killed_at = time.time()
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait(timeout=120)
        wait_for(lambda: "their results are kept for the next master" in w.log(),
                 what="the worker to stop its users after the master's silence")
        log = w.log()
        warn = log_line(log, "no word from the master for 3.0 s: stopping 3 users; waiting")
        assert warn and "WARN" in warn, log[-3000:]
        stopped = log_line(log, "their results are kept for the next master")
        delay = log_time(stopped) - killed_at
        print("users stopped %.3f s after the SIGKILL (bound: 3 + 1 s)" % delay)
        assert delay <= 3 + 1 + 0.5, (delay, log[-3000:])
        served = target.counts()["served"]
        # nothing more, ever: the worker never loads the target without a master
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            assert target.counts()["served"] == served
            time.sleep(0.5)
        assert w.alive() and w.proc.pid == pid

        fm = FakeMaster(port)
        ident, _ = fm.recv("client_ready")
        fm.ack(ident, INSTANCE_B)
        _, rejoin = fm.recv("acrida_rejoin")
        r = rejoin[1]
        assert r["state"] == "stopped" and r["user_count"] == 0, r
        assert re.fullmatch("[0-9a-f]{32}", r["test_id"]) and r["host"] == target.url, r
        assert re.fullmatch("[0-9a-f]{64}", r["scenario_sha256"]), r
        _, st = fm.recv("stats")
        d = st[1]
        assert d["acrida_cumulative"] is True and d["acrida_final"] is True, d.keys()
        assert d["acrida_seq"] == r["last_seq"] + 1, (d["acrida_seq"], r["last_seq"])
        assert d["stats_total"]["num_requests"] == served > 0, (d["stats_total"], served)
        assert w.alive() and w.proc.pid == pid
    finally:
        if fm:
            fm.close()
        if m.alive():
            m.stop()
        rc = w.stop()
    assert rc == 0, w.log()[-3000:]


def test_restarted_master_gets_the_running_test_without_double_counting(tmp_path, target):
    """A master (fake, instance A) starts a test and vanishes before the worker's timeout; the
    next one (instance B) gets acrida_rejoin "running" (started_at: when the first spawn came)
    and the cumulative report; the deltas continue after it and the sum equals what the target
    served. A reconnect from the same instance re-registers without a rejoin."""
    sc = write_scenario(tmp_path, OK)
    port = free_port()
    fm = FakeMaster(port)
    w = Daemon([binary("acrida-worker"), "--master-timeout", "600", "--master-port", str(port),
                "-f", sc], tmp_path, "worker")
    try:
        ident, _ = fm.recv("client_ready")
        fm.ack(ident, INSTANCE_A)
        t_spawn = time.time()
        fm.send(ident, "spawn", {"timestamp": time.time(), "user_classes_count": {"U": 3},
                                 "host": target.url, "stop_timeout": None, "parsed_options": {},
                                 "acrida_test_id": TEST_ID})
        fm.recv("spawning_complete")
        t_spawned = time.time()
        fm.recv("stats")
        # the same master asks for a reconnect: client_ready, ack, and no rejoin
        fm.send(ident, "reconnect", None)
        fm.recv("client_ready")
        fm.ack(ident, INSTANCE_A)
        _, st = fm.recv("stats")
        assert "acrida_cumulative" not in st[1], st[1].keys()
        assert not [x for x in fm.seen if x[0] == "acrida_rejoin"], fm.seen
        fm.close()

        fm = FakeMaster(port)
        # the worker's frames reach a master that does not know it: reconnect, as the real one
        ident, first = fm.recv(("heartbeat", "stats", "client_ready"))
        if first[0] != "client_ready":
            fm.send(ident, "reconnect", None)
            ident, _ = fm.recv("client_ready")
        fm.ack(ident, INSTANCE_B)
        _, rejoin = fm.recv("acrida_rejoin")
        r = rejoin[1]
        assert r["state"] == "running" and r["user_count"] == 3, r
        assert r["user_classes_count"] == {"U": 3} and r["test_id"] == TEST_ID, r
        # when the test's first spawn came (a load shape resumes from it): between the spawn sent
        # and its spawning_complete, on this host's clock
        assert t_spawn <= r["started_at"] <= t_spawned, (t_spawn, r["started_at"], t_spawned)
        _, cum = fm.recv("stats")
        assert cum[1]["acrida_cumulative"] is True and cum[1]["acrida_final"] is False
        assert cum[1]["acrida_seq"] == r["last_seq"] + 1
        total = cum[1]["stats_total"]["num_requests"]
        seq = cum[1]["acrida_seq"]
        _, st = fm.recv("stats")  # a delta again, the sequence continues
        assert "acrida_cumulative" not in st[1] and st[1]["acrida_seq"] == seq + 1, st[1]
        total += st[1]["stats_total"]["num_requests"]
        fm.send(ident, "stop", None)
        while not st[1].get("acrida_final"):
            _, st = fm.recv("stats")
            assert "acrida_cumulative" not in st[1]
            total += st[1]["stats_total"]["num_requests"]
        fm.recv("client_stopped")
        assert total == target.counts()["served"] > 0, (total, target.counts())
        assert w.alive()
    finally:
        fm.close()
        rc = w.stop()
    assert rc == 0, w.log()[-3000:]


def test_consecutive_tests_leak_no_fd(tmp_path, target):
    """Ten short tests through one web-mode master: the worker's pid never changes and its fd
    count after the 10th test equals the count after the 2nd."""
    from test_web_mode import WebMaster, http, stats
    sc = write_scenario(tmp_path, OK)
    m = WebMaster(tmp_path, ["-f", sc, "-H", target.url])
    port = read_port_file(m.port_file, "master")
    w = Daemon([binary("acrida-worker"), "--master-port", str(port), "-f", sc], tmp_path, "worker")
    pid = w.proc.pid
    fds = {}
    try:
        wait_for(lambda: [x["state"] for x in stats(m)["workers"]] == ["ready"], what="ready")
        for i in range(1, 11):
            before = target.counts()["served"]
            status, body = http(m.web + "/swarm", "POST", form={"user_count": 2, "spawn_rate": 2})
            assert status == 200, body
            wait_for(lambda: stats(m)["state"] == "running" and
                     target.counts()["served"] > before + 10, what="test %d running" % i)
            http(m.web + "/stop")
            wait_for(lambda: stats(m)["state"] == "stopped" and
                     [x["state"] for x in stats(m)["workers"]] == ["ready"],
                     what="test %d stopped, the worker ready" % i)
            assert w.alive() and w.proc.pid == pid
            fds[i] = fd_count(pid)
        print("worker fds after each test:", fds)
        assert fds[10] == fds[2], fds
    finally:
        rc = w.stop()
        assert m.stop() == 0, m.log()[-3000:]
    assert rc == 0, w.log()[-3000:]
