"""Scenario bundles (docs/scenario-api.md, "Shipping files to workers"; proto/PROTOCOL.md,
"scenario"): the master ships the scenario with the modules it requires and the files it
declares to workers started without -f from another directory; --scenario-dir ships a whole
directory; an over-size bundle, a declared file outside the scenario's directory and a module a
worker cannot load are refused with clear errors; a worker running its own different -f is
warned about."""
import json
import os
import re
import shutil

from conftest import (Daemon, aggregated, binary, row, run_master, start_master, wait_for,
                      write_scenario)

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "examples", "bundle")


def worker(tmp_path, port, name, extra=(), env=None):
    return Daemon([binary("acrida-worker"), "--exit-on-quit", "--master-host", "127.0.0.1",
                   "--master-port", str(port), "--node-id", name] + list(extra), tmp_path, name,
                  env=env)


def run_with_workers(tmp_path, target, scenario, served, master_extra=(), nworkers=2, env=None):
    """A headless master on @scenario with @nworkers remote workers (no -f, started in tmp_path,
    not the scenario's directory) until the target served @served requests; returns the
    master's exit code, its --json document and log, and the workers' logs."""
    m, port = start_master(tmp_path, ["-f", scenario, "-H", target.url, "-u", "4", "-r", "4",
                                      "-t", "10m", "--headless", "--json", "--expect-workers",
                                      str(nworkers)] + list(master_extra))
    ws = []
    try:
        ws = [worker(tmp_path, port, "w%d" % i, env=env) for i in range(nworkers)]
        wait_for(lambda: target.counts()["served"] >= served or
                 (not m.alive() and AssertionError(m.log()[-3000:])),
                 timeout=120, what="%d requests" % served)
    finally:
        rc = m.stop()
        for w in ws:
            w.proc.wait(timeout=120)
            w.stop()
    doc = json.loads(m.stdout()) if m.stdout().strip() else None
    return rc, doc, m.log(), [w.log() for w in ws]


def test_modules_and_files_reach_workers_without_f(tmp_path, target):
    sc = tmp_path / "sc"
    shutil.copytree(EXAMPLE, str(sc))
    wtmp = tmp_path / "wtmp"
    wtmp.mkdir()
    env = dict(os.environ, TMPDIR=str(wtmp))
    rc, doc, mlog, wlogs = run_with_workers(tmp_path, target, str(sc / "scenario.lua"), 60,
                                            env=env)
    assert rc == 0, mlog[-3000:]
    assert "scenario bundle: 4 files" in mlog, mlog[-3000:]
    for log in wlogs:
        assert re.search(r"loaded the scenario 'scenario.lua' sent by the master: bundle "
                         r"[0-9a-f]{12}\.\.\. of 4 files in " + re.escape(str(wtmp)), log), log
    total = aggregated(doc)
    assert total["num_requests"] == target.counts()["served"] >= 60
    assert total["num_failures"] == 0
    for name in ("alice", "bob", "carol"):  # the rows of data/users.csv, named by paths.lua
        assert row(doc, "GET", "/user/" + name)["num_requests"] > 0
    assert len(doc["workers"]) == 2
    # each worker removed its private copy when it exited
    assert os.listdir(str(wtmp)) == []


DYNAMIC = """
local acrida = require "acrida"
acrida.user { name = "Dyn", wait_time = acrida.constant(0.05),
  on_start = function(self)
    self.mod = require("dyn" .. "amic")   -- a computed name: only --scenario-dir ships it
    local f = assert(io.open("extra/undeclared.txt"))
    self.word = f:read("*l")
    f:close()
  end,
  tasks = { function(self) self.client:get("/status/200", { name = self.mod.name(self.word) }) end },
}
"""


def test_scenario_dir_ships_everything(tmp_path, target):
    sc = tmp_path / "sc"
    (sc / "extra").mkdir(parents=True)
    (sc / "dynamic.lua").write_text("return { name = function(w) return '/dyn/' .. w end }\n")
    (sc / "extra" / "undeclared.txt").write_text("hello\n")
    scen = write_scenario(sc, DYNAMIC)
    rc, doc, mlog, wlogs = run_with_workers(tmp_path, target, scen, 30,
                                            master_extra=["--scenario-dir", str(sc)])
    assert rc == 0, mlog[-3000:]
    assert "scenario bundle: 3 files" in mlog, mlog[-3000:]
    assert row(doc, "GET", "/dyn/hello")["num_requests"] == target.counts()["served"] >= 30


def test_over_size_bundle_exits_2(tmp_path):
    (tmp_path / "big.csv").write_bytes(b"x" * (2 << 20))
    sc = write_scenario(tmp_path, """
local acrida = require "acrida"
acrida.files { "big.csv" }
acrida.user { name = "U", tasks = { function(self) self.client:get("/") end } }
""")
    rc, out, err = run_master(tmp_path, ["-f", sc, "--headless", "-u", "1", "-t", "1s",
                                         "--max-bundle-size", "1000000"])
    assert rc == 2, err
    assert "over --max-bundle-size 1000000 bytes" in err, err
    assert "'big.csv' (2097152 bytes)" in err, err
    assert "Starting acrida-master" not in err


def test_declared_file_outside_the_directory_is_refused(tmp_path):
    for bad, why in (("../etc/passwd", "is outside the scenario's directory"),
                     ("/etc/passwd", "is an absolute path"),
                     ("missing.csv", "cannot read 'missing.csv'")):
        sc = write_scenario(tmp_path, """local acrida = require "acrida"
acrida.files { "%s" }
acrida.user { name = "U", tasks = { function(self) self.client:get("/") end } }
""" % bad)
        rc, out, err = run_master(tmp_path, ["-f", sc, "--headless", "-u", "1", "-t", "1s"])
        assert rc == 1, err
        assert "acrida.files: '%s'" % bad in err or "acrida.files: %s" % why in err, err
        assert why in err, err
        if bad.startswith(("..", "/")):
            assert "scenario.lua:2:" in err, err  # the declaration's file:line


def test_worker_load_error_is_shown_on_the_master(tmp_path):
    (tmp_path / "broken.lua").write_text("local M = {}\nfunction M.x( return 1 end\nreturn M\n")
    sc = write_scenario(tmp_path, """
local acrida = require "acrida"
if acrida.runner.role == "worker" then require "broken" end   -- loads on workers only
acrida.user { name = "U", tasks = { function(self) self.client:get("/") end } }
""")
    m, port = start_master(tmp_path, ["-f", sc, "-H", "http://127.0.0.1:9", "-u", "1",
                                      "-t", "10m", "--headless", "--expect-workers", "1"])
    w = None
    try:
        w = worker(tmp_path, port, "loadfails")
        wait_for(lambda: "could not load the scenario" in m.log(), timeout=120,
                 what="the worker's load error on the master")
        assert w.proc.wait(timeout=120) == 1, w.log()
    finally:
        m.stop()
        if w:
            w.stop()
    log = m.log()
    assert re.search(r"ERROR master: worker loadfails could not load the scenario: scenario failed "
                     r"to load: broken\.lua:2: ", log), log[-3000:]
    # it quit at once: whatever spawn the master sent before the error arrived started no user
    assert "worker loadfails quit" in log, log[-3000:]
    assert "running" not in w.log(), w.log()


def test_worker_with_a_different_f_is_warned_about(tmp_path, target):
    # (a worker with -f reads data/users.csv relative to its own working directory, tmp_path)
    sc = tmp_path / "sc"
    shutil.copytree(EXAMPLE, str(sc))
    same, other = tmp_path / "same", tmp_path / "other"
    shutil.copytree(EXAMPLE, str(same))
    shutil.copytree(EXAMPLE, str(other))
    shutil.copytree(os.path.join(EXAMPLE, "data"), str(tmp_path / "data"))
    with open(str(other / "paths.lua"), "a") as f:
        f.write("-- an edit the master does not have\n")
    m, port = start_master(tmp_path, ["-f", str(sc / "scenario.lua"), "-H", target.url, "-u", "2",
                                      "-r", "2", "-t", "10m", "--headless",
                                      "--expect-workers", "2"])
    ws = []
    try:
        ws = [worker(tmp_path, port, "samef", ["-f", str(same / "scenario.lua")]),
              worker(tmp_path, port, "otherf", ["-f", str(other / "scenario.lua")])]
        # both sent their hash right after their ack, before the test started on them
        wait_for(lambda: all("running" in w.log() for w in ws), timeout=120,
                 what="both workers to run users")
    finally:
        m.stop()
        for w in ws:
            w.proc.wait(timeout=120)
            w.stop()
    log = m.log()
    warned = re.findall(r"worker (\S+) runs a different scenario \(sha256 [0-9a-f]{12}\.\.\.\) "
                        r"than the master \([0-9a-f]{12}\.\.\.\)", log)
    assert warned == ["otherf"], log[-3000:]


def test_sigkilled_workers_bundle_is_removed_by_the_next_worker(tmp_path):
    """A worker killed with SIGKILL cannot remove its private copy: the directory carries its pid
    (acrida-bundle-<pid>-XXXXXX), and the next worker started with the same TMPDIR removes the
    directories of pids that are gone, and nothing else."""
    sc = write_scenario(tmp_path, "acrida.user { name = 'U', tasks = { function() end } }\n")
    wtmp = tmp_path / "wtmp"
    wtmp.mkdir()
    other = wtmp / "acrida-bundle-notapid"  # off the pattern: kept
    other.mkdir()
    env = dict(os.environ, TMPDIR=str(wtmp))
    m, port = start_master(tmp_path, ["-f", sc, "-H", "http://127.0.0.1:9", "--web-port", "0"])
    ws = []
    try:
        first = worker(tmp_path, port, "k1", env=env)
        ws.append(first)
        wait_for(lambda: "loaded the scenario" in first.log(), what="the first worker's bundle")
        left = [d for d in os.listdir(str(wtmp)) if d.startswith("acrida-bundle-%d-" %
                                                                 first.proc.pid)]
        assert len(left) == 1 and len(left[0]) == len("acrida-bundle-%d-XXXXXX" %
                                                      first.proc.pid), os.listdir(str(wtmp))
        first.proc.kill()
        first.proc.wait(timeout=120)
        assert os.path.isdir(str(wtmp / left[0]))  # SIGKILL: nobody removed it
        second = worker(tmp_path, port, "k2", env=env)
        ws.append(second)
        wait_for(lambda: "loaded the scenario" in second.log(), what="the second worker's bundle")
        assert "removed 1 bundle directories of workers that are gone" in second.log(), \
            second.log()
        assert not os.path.exists(str(wtmp / left[0]))
        assert other.is_dir()
        mine = [d for d in os.listdir(str(wtmp)) if d.startswith("acrida-bundle-%d-" %
                                                                 second.proc.pid)]
        assert len(mine) == 1, os.listdir(str(wtmp))
    finally:
        rcs = [w.stop() for w in ws]
        m.stop()
    assert rcs == [-9, 0], rcs
