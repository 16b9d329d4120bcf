"""The scenario's events and messages with a master and 2 local workers. Each listener writes a
mark named <event>.<role>.<process>.<n> (conftest.py's MARK), so the test counts how often each
event fired in each process: test_start once per process per test even with a ramp of several
steps, test_stop and quitting once per process, init once per process, worker_report on the master
per report with the fields the workers' report_to_master listeners added, messages both ways with
nested tables and a refused value, and a listener error that becomes an exception row while the
other listeners still run. examples/events.lua and examples/messages.lua run here too."""
import collections
import json
import os
import shutil

from test_web_mode import WebMaster, http, stats, wait_state

from conftest import (MARK, Daemon, binary, count_marks, headless, marks_env, read_port_file,
                      run_master_until, wait_for, write_scenario)

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples")

SCENARIO = """
local acrida = require "acrida"
""" + MARK + """
local role = acrida.runner.role
local proc = role .. "_" .. tostring(math.random(1, 2^30))
local n = 0
local function m(ev) n = n + 1; mark(ev .. "." .. role .. "." .. proc .. "." .. n) end
for _, ev in ipairs({ "init", "test_start", "test_stop", "quitting" }) do
  acrida.events[ev]:add_listener(function(env)
    if env.role == role then m(ev) else m("bad_env") end
  end)
end
-- a listener that raises: an exception row; the listeners after it still run
acrida.events.test_start:add_listener(function() error("listener boom on the " .. role) end)
acrida.events.test_start:add_listener(function() m("after_boom") end)
acrida.events.spawning_complete:add_listener(function(count) m("spawning_complete") end)
acrida.events.report_to_master:add_listener(function(data)
  data.proc = proc
  data.nested = { list = { 1, 2, { deep = "yes" } }, flag = true }
end)
acrida.events.worker_report:add_listener(function(node_id, data)
  if data.proc and data.nested.list[3].deep == "yes" and data.nested.flag == true
     and type(node_id) == "string" and data.user_count ~= nil then
    m("worker_report")
  end
end)
local custom = acrida.event("mine")
custom:add_listener(function(x) m("custom_" .. x) end)
if role == "master" then
  acrida.runner:register_message("pong", function(msg)
    if msg.data.echo.list[3] == 3 and msg.data.echo.map.k == "v" and msg.node_id ~= "" then
      m("pong")
    end
  end)
  acrida.runner:register_message("refusal", function(msg)
    if msg.data.err:find("data.f is a function, which cannot be sent", 1, true) then
      m("refusal")
    end
  end)
  acrida.events.spawning_complete:add_listener(function()
    custom:fire("fired")
    acrida.runner:send_message("ping", { list = { 1, 2, 3 }, map = { k = "v" } })
  end)
else
  acrida.runner:register_message("ping", function(msg)
    m("ping")
    local ok, err = pcall(acrida.runner.send_message, acrida.runner, "pong", { f = print })
    if not ok then acrida.runner:send_message("refusal", { err = err }) end
    acrida.runner:send_message("pong", { echo = msg.data })
  end)
end
acrida.user {
  name = "U",
  wait_time = acrida.constant(0.2),
  tasks = { function(self) self.client:get("/") end },
}
"""


def by_process(tmp_path, event):
    """{process: count} of the marks of @event."""
    d = tmp_path / "marks"
    c = collections.Counter()
    for name in os.listdir(d):
        parts = name.split(".")
        if parts[0] == event:
            c[parts[1] + "." + parts[2]] += 1
    return c


def roles(counter, role):
    return sorted(v for k, v in counter.items() if k.startswith(role + "."))


def test_events_roles_counts_and_messages(tmp_path, target):
    sc = write_scenario(tmp_path, SCENARIO)
    # 4 users at 1/s: a ramp of several spawn steps per worker
    done = lambda: (count_marks(tmp_path, "pong.") >= 2 and count_marks(tmp_path, "refusal.") >= 2
                    and count_marks(tmp_path, "worker_report.") >= 4)
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 4, 1, "10m", workers=2, extra=["--json"]),
        done, "the message exchange and reports", env=marks_env(tmp_path))
    assert count_marks(tmp_path, "bad_env") == 0
    # init, test_start, test_stop, quitting: once per process, 1 master + 2 workers
    for ev in ("init", "test_start", "test_stop", "quitting", "after_boom"):
        c = by_process(tmp_path, ev)
        assert roles(c, "master") == [1], (ev, c, err[-3000:])
        assert roles(c, "worker") == [1, 1], (ev, c, err[-3000:])
    # spawning_complete: once per process, when the cluster's ramp reached its target, although
    # each worker applied several spawns (a ramp of 4 users at 1/s)
    c = by_process(tmp_path, "spawning_complete")
    assert roles(c, "master") == [1], c
    assert roles(c, "worker") == [1, 1], c
    # worker_report only on the master, with the workers' fields
    c = by_process(tmp_path, "worker_report")
    assert list(c) and all(k.startswith("master.") for k in c), c
    # messages both ways; the custom event on the master only
    assert roles(by_process(tmp_path, "ping"), "worker") == [1, 1]
    assert roles(by_process(tmp_path, "pong"), "master") == [2]
    assert roles(by_process(tmp_path, "refusal"), "master") == [2]
    assert roles(by_process(tmp_path, "custom_fired"), "master") == [1]
    # the listener error: one exception row per role, from the master and both workers
    doc = json.loads(out)
    assert "listener boom on the master" in err
    assert doc["stats"], doc
    assert rc in (0, 1), err[-3000:]


RAMPS = """
local acrida = require "acrida"
""" + MARK + """
local proc = acrida.runner.role .. "." .. tostring(math.random(1, 2^30))
local n = 0
acrida.events.spawning_complete:add_listener(function(count)
  n = n + 1
  mark("spawning_complete." .. proc .. "." .. n .. "." .. count)
end)
acrida.user { name = "U", wait_time = acrida.constant(0.2),
  tasks = { function(self) self.client:get("/") end } }
"""


def test_spawning_complete_once_per_ramp(tmp_path, target, monkeypatch):
    """A web-mode test and an edit of it: two ramps of several spawn steps per worker each (the
    rate is half the users), so spawning_complete fires twice in each of the 3 processes."""
    sc = write_scenario(tmp_path, RAMPS)
    env = marks_env(tmp_path)
    monkeypatch.setenv("TEST_MARKS_DIR", env["TEST_MARKS_DIR"])  # for the master too
    m = WebMaster(tmp_path, ["-f", sc, "-H", target.url])
    port = read_port_file(m.port_file, "master")
    workers = [Daemon([binary("acrida-worker"), "--master-port", str(port), "-f", sc], tmp_path,
                      "worker%d" % i, env=env) for i in range(2)]
    try:
        wait_for(lambda: len([w for w in stats(m)["workers"] if w["state"] == "ready"]) == 2,
                 what="2 ready workers")
        for users, total in ((4, 3), (8, 6)):
            status, body = http(m.web + "/swarm", "POST",
                                form={"user_count": users, "spawn_rate": users // 2})
            assert status == 200, body
            wait_for(lambda: count_marks(tmp_path, "spawning_complete.") >= total,
                     what="spawning_complete in 3 processes after the ramp to %d" % users)
            wait_state(m, "running")
        http(m.web + "/stop", "POST")
        wait_state(m, "stopped")
        c = by_process(tmp_path, "spawning_complete")
        assert roles(c, "master") == [2], c
        assert roles(c, "worker") == [2, 2], c
        # the master's argument is the target; a worker's its own users (4 then 8 over 2)
        names = os.listdir(tmp_path / "marks")
        master = sorted(n.split(".")[3:] for n in names if n.startswith("spawning_complete.master"))
        assert master == [["1", "4"], ["2", "8"]], master
        worker = sorted(n.split(".")[3:] for n in names if n.startswith("spawning_complete.worker"))
        assert worker == [["1", "2"], ["1", "2"], ["2", "4"], ["2", "4"]], worker
    finally:
        for w in workers:
            assert w.stop() == 0, w.log()[-3000:]
        assert m.stop() == 0, m.log()[-3000:]


OPTIONS = """
local acrida = require "acrida"
""" + MARK + """
acrida.events.test_start:add_listener(function(env)
  local o = env.options
  local id = tostring(math.random(1, 2^30))
  if env.role == "master" then
    mark(string.format("opt.master.%s.%s.%s.%s.%s.%s", tostring(o.users), tostring(o.spawn_rate),
      tostring(o.run_time), table.concat(o.tags, "+"), tostring(o.headless),
      tostring(o.web_auth)))
  else
    mark(string.format("opt.worker.%s.%s.%s.%s", table.concat(o.tags, "+"),
      table.concat(o.exclude_tags, "+"), tostring(o.stop_timeout), id))
  end
end)
acrida.user { name = "U", wait_time = acrida.constant(0.2), tasks = {
  { tags = { "t1" }, fn = function(self) self.client:get("/") end },
  { tags = { "t2" }, fn = function(self) self.client:get("/excluded") end } } }
"""


def test_env_options(tmp_path, target):
    """env.options: the master's parsed options (users, tags, ...), a worker's what the spawn
    carried (tags, exclude_tags, stop_timeout)."""
    sc = write_scenario(tmp_path, OPTIONS)
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 3, 3, "10m", workers=2,
                           extra=["-T", "t1", "-E", "t2", "--stop-timeout", "7"]),
        lambda: count_marks(tmp_path, "opt.") == 3, "test_start in 3 processes",
        env=marks_env(tmp_path))
    names = sorted(os.listdir(tmp_path / "marks"))
    assert "opt.master.3.3.600.t1.true.nil" in names, names
    workers = [n for n in names if n.startswith("opt.worker.")]
    assert [n.rsplit(".", 1)[0] for n in workers] == ["opt.worker.t1.t2.7"] * 2, names


def test_exception_rows_from_listener_errors(tmp_path, target):
    """The rows are in the exceptions CSV: node master and both workers."""
    sc = write_scenario(tmp_path, """
local acrida = require "acrida"
""" + MARK + """
acrida.events.test_start:add_listener(function()
  error("boom in test_start on the " .. acrida.runner.role)
end)
acrida.events.test_start:add_listener(function() mark("ran_after." .. acrida.runner.role ..
  "." .. tostring(math.random(1, 2^30))) end)
acrida.user { name = "U", wait_time = acrida.constant(0.2),
  tasks = { function(self) self.client:get("/") end } }
""")
    prefix = str(tmp_path / "out")
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 2, 2, "10m", workers=2, extra=["--csv", prefix]),
        lambda: count_marks(tmp_path, "ran_after.") == 3, "test_start on 3 processes",
        env=marks_env(tmp_path))
    with open(prefix + "_exceptions.csv") as f:
        text = f.read()
    assert "boom in test_start on the master" in text or "boom in test_start on the worker" in text
    assert "master" in text, text
    assert count_marks(tmp_path, "ran_after.master") == 1
    assert count_marks(tmp_path, "ran_after.worker") == 2


def test_worker_user_events(tmp_path, target):
    sc = write_scenario(tmp_path, """
local acrida = require "acrida"
""" + MARK + """
local proc = acrida.runner.role .. "." .. tostring(math.random(1, 2^30))
local n = 0
local function m(ev) n = n + 1; mark(ev .. "." .. proc .. "." .. n) end
acrida.events.init:add_listener(function() m("init") end)
acrida.events.user_start:add_listener(function(u) m("user_start") end)
acrida.events.user_stop:add_listener(function(u) m("user_stop") end)
acrida.events.request:add_listener(function(r) if r.name == "/" then m("request") end end)
acrida.user { name = "U", wait_time = acrida.constant(0.2),
  tasks = { function(self) self.client:get("/") end } }
""")
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 3, 3, "10m", workers=2, extra=["--json"]),
        lambda: count_marks(tmp_path, "request.") >= 6, "requests", timeout=120,
        env=marks_env(tmp_path))
    assert count_marks(tmp_path, "init.master") == 1
    assert count_marks(tmp_path, "init.worker") == 2
    assert count_marks(tmp_path, "user_start.worker") == 3
    assert count_marks(tmp_path, "user_stop.worker") == 3
    doc = json.loads(out)
    served = target.counts()["served"]
    assert count_marks(tmp_path, "request.worker") == served == doc["stats"][-1]["num_requests"]


def run_example(tmp_path, target, name, done, what, users=4):
    sc = str(tmp_path / name)
    shutil.copy(os.path.join(EXAMPLES, name), sc)
    return run_master_until(
        tmp_path, headless(sc, target.url, users, users, "10m", workers=2, extra=["--json"]),
        done, what, env=marks_env(tmp_path, dict(os.environ, EXAMPLE_REPORT_DIR=str(tmp_path))))


def test_example_messages(tmp_path, target):
    report = tmp_path / "messages-report.txt"
    rc, out, err = run_example(tmp_path, target, "messages.lua",
                               lambda: report.exists() and "workers=2" in report.read_text(),
                               "both workers' replies in the master's report")
    text = report.read_text()
    assert "workers=2" in text, text
    assert rc == 0, err[-3000:]


def test_example_events(tmp_path, target):
    report = tmp_path / "events-report.txt"
    rc, out, err = run_example(tmp_path, target, "events.lua",
                               lambda: target.counts()["served"] >= 20, "some requests")
    text = report.read_text()
    # the setup ran once on the master before the users, the cleanup once after the last of them
    assert "setup=1\ncleanup=1\n" in text, text
    served = int(text.split("served=")[1].split()[0])
    rows = [r for r in json.loads(out)["stats"] if r["name"] == "Aggregated"]
    assert served == rows[0]["num_requests"] > 0, (text, rows)
    assert rc == 0, err[-3000:]


def test_example_events_counts_users(tmp_path, target):
    report = tmp_path / "events-report.txt"
    rc, out, err = run_example(tmp_path, target, "events.lua",
                               lambda: target.counts()["served"] >= 20, "some requests")
    text = report.read_text()
    assert "users_started=4\nusers_stopped=4\n" in text, text
