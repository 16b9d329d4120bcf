"""Issue #2 acceptance: bad input gets a clear message and the right exit code."""
import csv
import json

from conftest import (MARK, aggregated, binary, headless, marked, marks_env, run_master,
                      run_master_until, write_scenario)
import subprocess

OK = """
local acrida = require "acrida"
acrida.user { name = "U", tasks = { function(self) self.client:get("/") end } }
"""


def test_unknown_flag_exits_2_naming_it(tmp_path):
    rc, out, err = run_master(tmp_path, ["--no-such-flag"])
    assert rc == 2 and "--no-such-flag" in err, (rc, err)


def test_bad_value_exits_2_naming_option(tmp_path):
    sc = write_scenario(tmp_path, OK)
    rc, out, err = run_master(tmp_path, ["-f", sc, "--headless", "-u", "many"])
    assert rc == 2 and "--users" in err and "many" in err, (rc, err)
    rc, out, err = run_master(tmp_path, ["-f", sc, "--headless", "-t", "5x"])
    assert rc == 2 and "--run-time" in err, (rc, err)
    rc, out, err = run_master(tmp_path, ["-f", sc, "--headless", "--local-workers", "lots"])
    assert rc == 2 and "--local-workers" in err, (rc, err)


def test_bad_env_and_config_values_exit_2(tmp_path):
    sc = write_scenario(tmp_path, OK)
    p = subprocess.run([binary("acrida-master"), "-f", sc, "--headless"], cwd=str(tmp_path),
                       capture_output=True, timeout=120, env={"ACRIDA_SPAWN_RATE": "fast"})
    assert p.returncode == 2 and b"spawn-rate" in p.stderr, p.stderr
    (tmp_path / "acrida.conf").write_text("# comment\nnot-an-option = 3\n")
    rc, out, err = run_master(tmp_path, ["-f", sc, "--headless"])
    assert rc == 2 and "not-an-option" in err, (rc, err)


def test_worker_unknown_flag_exits_2(tmp_path):
    p = subprocess.run([binary("acrida-worker"), "--bogus"], capture_output=True, timeout=120)
    assert p.returncode == 2 and b"--bogus" in p.stderr, p.stderr


def test_scenario_syntax_error_exits_1_with_file_line(tmp_path):
    sc = write_scenario(tmp_path, "local acrida = require 'acrida'\n\nacrida.user { name = 'x',\n  tasks = { function(self) end end },\n}\n", "broken.lua")
    rc, out, err = run_master(tmp_path, ["-f", sc, "--headless", "-t", "1s"])
    assert rc == 1, (rc, err)
    assert "broken.lua:4:" in err, err


def test_scenario_without_users_exits_1(tmp_path):
    sc = write_scenario(tmp_path, "local acrida = require 'acrida'\n", "empty.lua")
    rc, out, err = run_master(tmp_path, ["-f", sc, "--headless", "-t", "1s"])
    assert rc == 1 and "scenario declares no user class (use acrida.user { ... })" in err, (rc, err)


def test_task_that_raises_becomes_exception_row_and_run_continues(tmp_path, target):
    sc = write_scenario(tmp_path, """
local acrida = require "acrida"
acrida.user {
  name = "Raiser",
  tasks = {
    function(self)
      self.client:get("/")
      error("boom from task")
    end,
  },
}
""", "raiser.lua")
    # The run lasts until it has gone on after 10 errors, then SIGTERM (the stop of --run-time).
    rc, out, err = run_master_until(tmp_path, headless(sc, target.url, 2, 2, "10m",
                                                       extra=["--json", "--csv", "x"]),
                                    lambda: target.counts()["served"] > 10, "over 10 task runs")
    doc = json.loads(out)
    # The run continued after the errors: many requests, each followed by an exception.
    n = aggregated(doc)["num_requests"]
    assert n > 10 and n == target.counts()["served"], (n, err[-2000:])
    with open(tmp_path / "x_exceptions.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert len(rows) == 1, rows
    count, msg, tb = int(rows[0][0]), rows[0][1], rows[0][2]
    assert "boom from task" in msg and "raiser.lua:8" in tb, rows[0]
    assert count >= n - 4, (count, n)  # one per task run; at most one unfinished task per user
    assert rc == 1, "a task raised, so the exit code is 1"


def test_target_down_gives_connection_refused_failures(tmp_path):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    sc = write_scenario(tmp_path, """
local acrida = require "acrida"
""" + MARK + """
acrida.user { name = "U", tasks = { function(self) self.client:get("/"); mark("refused") end } }
""")
    rc, out, err = run_master_until(tmp_path, headless(sc, "http://127.0.0.1:%d" % port, 2, 2,
                                                       "10m", extra=["--json", "--csv", "d"]),
                                    lambda: marked(tmp_path, "refused"), "a refused request",
                                    env=marks_env(tmp_path))
    doc = json.loads(out)
    total = aggregated(doc)
    assert total["num_requests"] > 0 and total["num_failures"] == total["num_requests"], total
    assert any("connection refused" in e["error"] for e in doc["errors"]), doc["errors"]
    assert rc == 1


def test_expect_workers_gives_up(tmp_path):
    sc = write_scenario(tmp_path, OK)
    rc, out, err = run_master(tmp_path, ["-f", sc, "--headless", "-t", "5s", "--expect-workers", "1",
                                         "--expect-workers-max-wait", "1", "--master-bind-host",
                                         "127.0.0.1", "--master-bind-port", "0"])
    assert rc == 1 and "Gave up waiting for workers" in err, (rc, err)
