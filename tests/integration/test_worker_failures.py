"""Workers that fail (issue #12): a task that allocates without bound fails with 'not enough memory'
at --max-lua-memory and only its user stops; a local worker killed by a signal is named as a crash
and the run exits 1; os.exit() in a task is an error of that task, at load a load error; a test
whose workers are all gone ends at once with exit 1, and so does the wait when the scenario failed
to load on every worker; a worker started before its master loses no report; a response that
arrives before its request was sent is a failure."""
import csv
import json
import os
import re
import signal

from conftest import (MARK, Daemon, aggregated, binary, free_port, headless, marks_env,
                      marked, run_master, run_master_until, start_master, wait_for,
                      write_scenario)

OK_CLASS = """
acrida.user { name = "Ok", wait_time = acrida.constant(0.02), tasks = {
  function(self) self.client:get("/") end } }
"""


def exceptions(tmp_path):
    with open(tmp_path / "out_exceptions.csv") as f:
        return list(csv.DictReader(f))


def local_pids(log):
    return [int(p) for p in re.findall(r"started local worker pid (\d+)", log)]


def test_allocation_bomb_fails_its_task_and_the_worker_lives_on(tmp_path, target):
    sc = write_scenario(tmp_path, MARK + """
local acrida = require "acrida"
acrida.user { name = "Bomber", fixed_count = 1, wait_time = acrida.constant(0.02), tasks = {
  { name = "bomb", fn = function(self)
      self.client:get("/bomb")
      local t = {}
      for i = 1, 1e9 do t[i] = ("x"):rep(100) .. i end
  end } } }
""" + OK_CLASS + """
local n = 0
acrida.events.request:add_listener(function(r)
  if r.name == "/" then n = n + 1; if n == 300 then mark("after") end end
end)
""")
    # The bomb goes first (fixed_count); the Ok users' 300th request comes after it on the same
    # worker: that worker outlived the bomb.
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 3, 10, "10m", workers=1,
                           extra=["--max-lua-memory", "64MB", "--json", "--csv", "out"]),
        lambda: "went over --max-lua-memory" in (tmp_path / "master.log").read_text()
        and marked(tmp_path, "after"),
        "the bomb's failure and later requests", env=marks_env(tmp_path))
    rows = exceptions(tmp_path)
    assert len(rows) == 1, rows
    assert rows[0]["Count"] == "1", rows  # its user stopped: no second bomb
    assert rows[0]["Message"] == ("not enough memory: task 'bomb' of user class 'Bomber' went "
                                  "over --max-lua-memory (64 MiB); the user stops"), rows
    assert "crashed" not in err and "exited with status" not in err.split("Shutting down")[0]
    doc = json.loads(out)
    assert doc["lost_reports"] == 0, err[-3000:]
    assert [r["num_requests"] for r in doc["stats"] if r["name"] == "/bomb"] == [1]
    assert aggregated(doc)["num_requests"] == target.counts()["served"] > 300
    assert rc == 1, err[-3000:]  # an exception row: --exit-code-on-error


def test_max_lua_memory_is_checked(tmp_path):
    sc = write_scenario(tmp_path, "local acrida = require 'acrida'\n" + OK_CLASS)
    for bad, why in (("64XB", "expected a size"), ("1MiB", "from 16 MiB to 1 TiB"),
                     ("2TiB", "from 16 MiB to 1 TiB")):
        rc, _, err = run_master(tmp_path, ["-f", sc, "--headless", "--max-lua-memory", bad])
        assert rc == 2 and why in err, err


def test_a_local_worker_killed_by_a_signal_is_a_crash(tmp_path, target):
    sc = write_scenario(tmp_path, "local acrida = require 'acrida'\n" + OK_CLASS)
    # under the sanitizers, AddressSanitizer would catch the SIGSEGV and exit 1 instead
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":handle_segv=0")
    m = Daemon([binary("acrida-master")] + headless(sc, target.url, 4, 10, "10m",
                                                    extra=["--json"]), tmp_path, "master", env=env)
    try:
        wait_for(lambda: len(local_pids(m.log())) == 2 and target.counts()["served"] > 20,
                 what="requests from both local workers")
        pids = local_pids(m.log())
        os.kill(pids[0], signal.SIGSEGV)
        wait_for(lambda: "crashed: killed by signal 11 (SIGSEGV)" in m.log(), what="the crash")
        served = target.counts()["served"]
        wait_for(lambda: target.counts()["served"] > served + 20, what="the other worker's load")
    finally:
        rc = m.stop()
    err = m.log()
    assert "ERROR master: local worker pid %d crashed: killed by signal 11 (SIGSEGV)" % pids[0] \
        in err, err[-3000:]
    assert "1 local worker(s) crashed during the run" in err, err[-3000:]
    doc = json.loads(m.stdout())
    # the crashed worker's last interval is lost; the survivor's counts are exact
    assert doc["lost_reports"] == 1, err[-3000:]
    assert aggregated(doc)["num_requests"] <= target.counts()["served"]
    assert rc == 1, err[-3000:]


def test_when_every_local_worker_is_gone_the_test_ends(tmp_path, target):
    sc = write_scenario(tmp_path, "local acrida = require 'acrida'\n" + OK_CLASS)
    m = Daemon([binary("acrida-master")] + headless(sc, target.url, 4, 10, "10m",
                                                    extra=["--json"]), tmp_path, "master")
    try:
        wait_for(lambda: len(local_pids(m.log())) == 2 and target.counts()["served"] > 20,
                 what="requests from both local workers")
        for pid in local_pids(m.log()):
            os.kill(pid, signal.SIGKILL)
        m.proc.wait(timeout=120)  # it ends on its own: no -t, no signal
    finally:
        rc = m.stop()
    err = m.log()
    assert err.count("crashed: killed by signal 9 (SIGKILL)") == 2, err[-3000:]
    assert "No worker left: all 2 local workers exited during the test" in err, err[-3000:]
    doc = json.loads(m.stdout())
    assert doc["lost_reports"] == 2  # each worker's last interval: said, not hidden
    assert aggregated(doc)["num_requests"] <= target.counts()["served"]
    assert rc == 1, err[-3000:]


def test_os_exit_in_a_task_is_an_error_of_that_task(tmp_path, target):
    sc = write_scenario(tmp_path, """
local acrida = require "acrida"
acrida.user { name = "Exiter", wait_time = acrida.constant(0.02), tasks = {
  function(self) self.client:get("/one"); os.exit(0) end } }
""")
    # each of the 4 users makes its one request, then os.exit stops it (not its worker)
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 4, 10, "10m", extra=["--json", "--csv", "out"]),
        lambda: target.counts()["served"] >= 4, "the users' requests")
    rows = exceptions(tmp_path)
    assert len(rows) == 1, rows
    assert rows[0]["Count"] == "4", rows
    assert ("os.exit() called by task 'task1' of user class 'Exiter': a scenario cannot end its "
            "worker (the user stops)") in rows[0]["Message"], rows
    assert "exited with status" not in err.split("Shutting down")[0], err[-3000:]
    doc = json.loads(out)
    assert doc["lost_reports"] == 0
    assert aggregated(doc)["num_requests"] == target.counts()["served"] == 4
    assert rc == 1, err[-3000:]


def test_os_exit_at_load_on_workers_is_a_load_error(tmp_path, target):
    sc = write_scenario(tmp_path, """
local acrida = require "acrida"
if acrida.runner.role == "worker" then os.exit(0) end
""" + OK_CLASS)
    rc, _, err = run_master(tmp_path, headless(sc, target.url, 2, 2, "10m"), timeout=300)
    assert "os.exit() called while the scenario loads: a scenario cannot end its worker" in err
    assert "A local worker exited before the test started" in err, err[-3000:]
    assert rc == 1, err[-3000:]
    assert target.counts()["served"] == 0


def test_scenario_failing_on_every_worker_ends_the_wait(tmp_path, target):
    sc = write_scenario(tmp_path, """
local acrida = require "acrida"
if acrida.runner.role == "worker" then error("fails on workers only") end
""" + OK_CLASS)
    # --expect-workers 2 and one worker, which cannot load the scenario it is sent: no worker
    # can ever come to run it, so the master gives up instead of waiting forever.
    m, port = start_master(tmp_path, ["-f", sc, "-H", target.url, "--headless",
                                      "--expect-workers", "2", "-t", "10m"])
    w = Daemon([binary("acrida-worker"), "--exit-on-quit", "--master-port", str(port)],
               tmp_path, "worker")
    try:
        m.proc.wait(timeout=120)
        w.proc.wait(timeout=120)
    finally:
        rc, wrc = m.stop(), w.stop()
    assert "could not load the scenario: scenario failed to load: " in m.log(), m.log()[-3000:]
    assert ("The scenario failed to load on every worker that connected (1; the errors are "
            "above): giving up") in m.log(), m.log()[-3000:]
    assert rc == 1 and wrc == 1, m.log()[-3000:]
    assert target.counts()["served"] == 0


def test_daemon_worker_started_before_its_master_loses_nothing(tmp_path, target):
    sc = write_scenario(tmp_path, "local acrida = require 'acrida'\n" + OK_CLASS)
    port = free_port()
    # a daemon worker (no --exit-on-quit), waiting for its master and repeating client_ready
    w = Daemon([binary("acrida-worker"), "--master-port", str(port)], tmp_path, "worker")
    try:
        wait_for(lambda: "sending client_ready again" in w.log(), what="the worker to repeat")
        rc, out, err = run_master_until(
            tmp_path, ["-f", sc, "-H", target.url, "-u", "2", "-r", "2", "-t", "10m",
                       "--headless", "--json", "--master-bind-host", "127.0.0.1",
                       "--master-bind-port", str(port)],
            lambda: target.counts()["served"] > 50, "requests")
    finally:
        wrc = w.stop()
    doc = json.loads(out)
    assert doc["lost_reports"] == 0, err[-3000:]
    assert "lost interval" not in err, err[-3000:]
    assert aggregated(doc)["num_requests"] == target.counts()["served"]
    assert rc == 0 and wrc == 0, err[-3000:]


def test_a_response_before_the_request_was_sent_is_a_failure(tmp_path, target):
    # /early answers at the request's headers and reads its body only 10 s later: a 12 MB body
    # (more than the loopback socket buffers hold) is still being written when the answer comes.
    sc = write_scenario(tmp_path, MARK + """
local acrida = require "acrida"
local big = ("x"):rep(12 * 1024 * 1024)
acrida.user { name = "Early", fixed_count = 1, wait_time = acrida.constant(0.02), tasks = {
  function(self)
    self.client:post("/early", { body = big })
    mark("early")
    self:stop()
  end } }
""" + OK_CLASS)
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 2, 10, "10m", workers=1, extra=["--json"]),
        lambda: marked(tmp_path, "early") and target.counts()["served"] > 20,
        "the early answer and other requests", env=marks_env(tmp_path))
    doc = json.loads(out)
    early = [r for r in doc["stats"] if r["name"] == "/early"]
    assert len(early) == 1 and early[0]["num_requests"] == 1, doc["stats"]
    assert early[0]["num_failures"] == 1, doc["stats"]
    assert [e["error"] for e in doc["errors"] if e["name"] == "/early"] == [
        "response before request: the target answered before the request was fully sent"], \
        doc["errors"]
    counts = target.counts()
    assert counts["by_path_prefix"]["/early"] == 1, counts
    assert aggregated(doc)["num_requests"] == counts["served"]
    assert doc["lost_reports"] == 0
    assert rc == 1, err[-3000:]  # a failed request: --exit-code-on-error
