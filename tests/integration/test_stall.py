"""The stall watchdog (worker/watchdog.h, issue #12): a task that spins without yielding is
interrupted after --stall-timeout, its user class is quarantined by the master (moved at most
once, shown in the summary, exit 1), the other class's counts add up against the target, and
SIGTERM ends a worker stuck in such a task within 2 s. Durations are read from the daemons' own
log timestamps, never from the test's clock."""
import datetime
import json
import re

from conftest import (MARK, Daemon, binary, headless, marked, marks_env, run_master,
                      start_master, wait_for, write_scenario)

SPIN = MARK + """
acrida.user { name = "Spin", fixed_count = 1, wait_time = acrida.constant(0.1),
  tasks = { { name = "spin", fn = function(self) mark("spinning") while true do end end } } }
acrida.user { name = "Normal", wait_time = acrida.constant(0.05),
  tasks = { function(self) self.client:get("/") end } }
"""

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


def stamp(line):
    m = STAMP.match(line)
    assert m, "no timestamp in %r" % line
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")


def lines(log, text):
    return [l for l in log.splitlines() if text in l]


def test_spinning_class_is_quarantined(tmp_path, target):
    scen = write_scenario(tmp_path, SPIN)
    rc, out, err = run_master(tmp_path, headless(scen, target.url, 4, 10, "30s", workers=2,
                                                 extra=["--json"]), env=marks_env(tmp_path))
    doc = json.loads(out)
    # the run exits 1 because a class was quarantined, and says so in the summary
    assert rc == 1, err[-4000:]
    quarantined = lines(err, "ERROR master: class Spin quarantined: stalled worker ")
    assert len(quarantined) == 1, err[-4000:]
    assert "in task spin" in quarantined[0]
    assert re.search(r"^class Spin quarantined: stalled worker \S+ for 1\d\.\d s in task spin$",
                     err, re.M), err[-3000:]
    # the worker named the class and task, from its own measurement: 10 s (+ the 0.1 s tick)
    detected = lines(err, "WARNING worker: stall: user class Spin has run Lua code for ")
    ended = lines(err, "ERROR worker: stalled: task spin of user class Spin ran for ")
    assert 1 <= len(detected) <= 2 and len(ended) == len(detected), err[-4000:]
    for d, e in zip(detected, ended):
        secs = float(re.search(r"for (\d+\.\d) s", d).group(1))
        assert 10.0 <= secs <= 11.0, d
        assert (stamp(e) - stamp(d)).total_seconds() <= 1.0, (d, e)  # interrupted at once
    # moved at most once: at most two workers ever ran it, and each went missing at most once
    also = lines(err, "(quarantined) also stalled worker")
    assert len(also) <= 1, err[-4000:]
    for wid in set(re.findall(r"Worker (\S+) failed to send heartbeat", err)):
        assert len(lines(err, "Worker %s failed to send heartbeat" % wid)) == 1, err[-4000:]
    assert not lines(err, "exited with status"), err[-4000:]  # no worker died
    # the normal class's counts add up against what the target served
    served = target.counts()
    got = [r for r in doc["stats"] if r["name"] == "/" and r["method"] == "GET"]
    assert len(got) == 1 and got[0]["num_requests"] > 0, doc["stats"]
    assert doc["lost_reports"] == 0, err[-4000:]
    assert got[0]["num_requests"] == served["served"], (got[0], served)
    assert got[0]["num_failures"] == 0
    # it ended in bounded time: run time plus the stop, from the master's own log
    first = err.splitlines()[0]
    end = lines(err, "Shutting down (exit code 1)")
    assert len(end) == 1
    assert (stamp(end[0]) - stamp(first)).total_seconds() <= 30 + 15, (first, end[0])


def sigterm_worker(tmp_path, extra):
    scen = write_scenario(tmp_path, SPIN.replace("Normal", "Idle").replace(
        'self.client:get("/")', "acrida.sleep(0.1)"))
    env = marks_env(tmp_path)
    master, port = start_master(tmp_path, ["-f", scen, "--headless", "-u", "2", "-r", "10",
                                           "-t", "300s", "--expect-workers", "1"])
    worker = Daemon([binary("acrida-worker"), "--master-port", str(port), "-f", scen] + extra,
                    tmp_path, "worker", env=env)
    try:
        wait_for(lambda: marked(tmp_path, "spinning"), what="the spinning task")
        worker.proc.send_signal(15)
        rc = worker.proc.wait(60)
    finally:
        worker.stop()
        master.stop()
    log = worker.log()
    got = lines(log, "INFO worker: received SIGTERM")
    assert len(got) == 1, log[-3000:]
    return rc, log, stamp(got[0])


def test_sigterm_interrupts_a_spinning_task(tmp_path):
    rc, log, t0 = sigterm_worker(tmp_path, [])
    assert rc == 0, log[-3000:]
    assert lines(log, "SIGTERM/SIGINT: the event loop has not taken it for"), log[-3000:]
    assert lines(log, "SIGTERM: stopping users and quitting"), log[-3000:]
    end = lines(log, "worker exiting with code 0")
    assert len(end) == 1, log[-3000:]
    assert (stamp(end[0]) - t0).total_seconds() <= 2.0, (t0, end[0])


def test_sigterm_exits_when_the_task_cannot_be_interrupted(tmp_path):
    # --stall-timeout 0: no watchdog checks and the JIT on; a compiled loop ignores hooks
    rc, log, t0 = sigterm_worker(tmp_path, ["--stall-timeout", "0"])
    assert rc == 3, log[-3000:]
    end = lines(log, "ERROR worker: SIGTERM/SIGINT: the event loop is stuck in user class Spin "
                     "and could not be interrupted; exiting with code 3 now, no final report")
    assert len(end) == 1, log[-3000:]
    assert (stamp(end[0]) - t0).total_seconds() <= 2.0, (t0, end[0])
