"""Load shapes (master/shape.c) with a master and 2 local workers: examples/stages.lua's three
stages followed in order in headless mode (the history CSV's user counts) with the test ending by
itself after the last stage (exit 0); a shape that raises or returns a bad value stops the test
with the error shown (log, exception row) and a non-zero exit; bad declarations fail at load with
file:line; in web mode /swarm starts the shape without user_count/spawn_rate, /stats/requests shows
the shape's current target and stage, an edit is refused, and a shape that loops forever is
interrupted while the master keeps answering; a stage's user_classes replace the users of the
other classes within the stage (the master's log and the full history CSV)."""
import csv
import datetime
import json
import os

from test_web_mode import WebMaster, http, stats, wait_state

from conftest import run_master, wait_for, write_scenario

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples")

USER = """
local acrida = require "acrida"
acrida.user { name = "U", wait_time = acrida.constant(0.05),
  tasks = { function(self) self.client:get("/") end } }
"""


def shape_args(scenario, host, extra=()):
    return ["-f", scenario, "-H", host, "--headless", "--local-workers", "2",
            "--master-bind-host", "127.0.0.1", "--master-bind-port", "0"] + list(extra)


def dedup(values):
    out = []
    for v in values:
        if not out or out[-1] != v:
            out.append(v)
    return out


def test_stages_followed_and_test_ends(tmp_path, target):
    prefix = str(tmp_path / "st")
    rc, out, err = run_master(tmp_path, shape_args(os.path.join(EXAMPLES, "stages.lua"),
                                                   target.url, ["--csv", prefix, "-u", "50"]))
    assert rc == 0, err[-4000:]
    assert "-u/-r are not used" in err
    assert "the shape ended" in err, err[-4000:]
    with open(prefix + "_stats_history.csv") as f:
        users = [int(r["User Count"]) for r in csv.DictReader(f) if r["Name"] == "Aggregated"]
    seen = [u for u in dedup(users) if u != 0]
    # each stage's count was observed, in the stages' order (ramps may show counts in between)
    assert 2 in seen and 6 in seen and 3 in seen, users
    i2 = seen.index(2)
    i6 = seen.index(6, i2)
    seen.index(3, i6)
    assert max(users) == 6, users  # -u 50 was not used
    assert target.counts()["served"] > 0


def test_stage_log_lines_in_order(tmp_path, target):
    sc = write_scenario(tmp_path, USER + """
acrida.stages {
  { duration = 2, users = 1, spawn_rate = 100 },
  { duration = 3, users = 4, spawn_rate = 0.5 },  -- shorter than its ramp: not skipped
  { duration = 5, users = 2, spawn_rate = 100 },
}
""")
    rc, out, err = run_master(tmp_path, shape_args(sc, target.url))
    assert rc == 0, err[-4000:]
    lines = [ln for ln in err.splitlines() if "load shape" in ln]
    text = "\n".join(lines)
    a = text.index("stage 1: 1 users")
    b = text.index("stage 2: 4 users", a)
    text.index("stage 3: 2 users", b)


def test_shape_that_raises_stops_the_test(tmp_path, target):
    sc = write_scenario(tmp_path, USER + """
acrida.shape(function(t)
  if t >= 2 then error("shape boom") end
  return 2, 10
end)
""")
    prefix = str(tmp_path / "r")
    rc, out, err = run_master(tmp_path, shape_args(sc, target.url, ["--csv", prefix]))
    assert rc != 0, err[-4000:]
    assert "scenario.lua:7: shape boom" in err, err[-4000:]
    assert "stopping the test" in err
    with open(prefix + "_exceptions.csv") as f:
        rows = list(csv.DictReader(f))
    assert any("shape boom" in r["Message"] and r["Nodes"] == "master" for r in rows), rows


def test_bad_return_value_stops_the_test(tmp_path, target):
    sc = write_scenario(tmp_path, USER + """
acrida.shape(function(t)
  if t >= 1 then return -1, 10 end
  return 1, 10
end)
""")
    rc, out, err = run_master(tmp_path, shape_args(sc, target.url, ["--exit-code-on-error", "0"]))
    assert rc != 0, err[-4000:]
    assert "the load shape returned users = -1" in err, err[-4000:]


def test_shape_ending_at_once_runs_nothing(tmp_path, target):
    sc = write_scenario(tmp_path, USER + "acrida.shape(function() return nil end)\n")
    rc, out, err = run_master(tmp_path, shape_args(sc, target.url))
    assert "returned nil at run time 0" in err, err[-4000:]
    assert target.counts()["served"] == 0


def test_bad_declarations_fail_at_load(tmp_path):
    cases = [
        ("acrida.stages {\n  { duration = 5, users = 1, spawn_rate = 1 },\n"
         "  { duration = 10, users = 2 } }\n",
         "scenario.lua:5: acrida.stages: stage 2: spawn_rate must be a number"),
        ("acrida.shape(function() end)\nacrida.shape(function() end)\n",
         "scenario.lua:6: a scenario declares at most one load shape"),
        ("acrida.stages {{ duration = 5, users = 1, spawn_rate = 1, user_classes = {'Nope'} }}\n",
         "stage 1: unknown user class 'Nope'"),
    ]
    for i, (lua, msg) in enumerate(cases):
        sc = write_scenario(tmp_path, USER + lua, "scenario.lua")
        rc, out, err = run_master(tmp_path, ["-f", sc, "--headless", "--master-bind-host",
                                             "127.0.0.1", "--master-bind-port", "0"])
        assert rc == 1, (i, rc, err[-2000:])
        assert msg in err, (i, err[-2000:])


def test_web_shape_target_and_stages(tmp_path, target):
    sc = write_scenario(tmp_path, USER + """
acrida.stages {
  { duration = 2, users = 2, spawn_rate = 50 },
  { duration = 4, users = 5, spawn_rate = 50 },
  { duration = 6, users = 1, spawn_rate = 50 },
}
""")
    m = WebMaster(tmp_path, ["-f", sc, "-H", target.url, "--local-workers", "2"])
    try:
        assert stats(m)["shape"] is None
        wait_for(lambda: len(json.loads(http(m.web + "/workers")[1])["workers"]) == 2
, what="2 workers")
        status, body = http(m.web + "/swarm", "POST", form={})
        assert status == 200, body
        assert json.loads(body)["success"] is True
        status, body = http(m.web + "/swarm", "POST", form={"user_count": 9, "spawn_rate": 1})
        assert status == 409 and b"load shape" in body, (status, body)
        stages = []
        while True:
            d = stats(m)
            if d["shape"] is not None:
                stages.append((d["shape"]["stage"], d["shape"]["users"]))
            if d["state"] == "stopped":
                break
            assert m.alive()
        assert dedup(stages)[:3] == [(1, 2), (2, 5), (3, 1)], dedup(stages)
        assert stats(m)["shape"] is None
    finally:
        rc = m.stop()
    assert rc == 0, m.log()[-4000:]


def test_web_endless_shape_is_interrupted(tmp_path, target):
    sc = write_scenario(tmp_path, USER + """
local function spin() local x = 0 while true do x = x + 1 end end
acrida.shape(function(t)
  if t >= 2 then spin() end
  return 2, 10
end)
""")
    m = WebMaster(tmp_path, ["-f", sc, "-H", target.url, "--local-workers", "2"])
    try:
        wait_for(lambda: len(json.loads(http(m.web + "/workers")[1])["workers"]) == 2,
                 what="2 workers")
        status, body = http(m.web + "/swarm", "POST", form={})
        assert status == 200, body
        d = wait_state(m, "running")
        assert d["shape"] == {"users": 2, "spawn_rate": 10.0, "stage": None}, d["shape"]
        wait_state(m, "stopped")  # the master answered throughout
        status, body = http(m.web + "/exceptions")
        assert status == 200
        exc = json.loads(body)["exceptions"]
        assert any("interrupted" in e["msg"] and e["nodes"] == "master" for e in exc), exc
        assert stats(m)["state"] == "stopped"
    finally:
        rc = m.stop()
    assert rc != 0, "a failed shape must make the run exit non-zero"


TWO_CLASSES = """
local acrida = require "acrida"
acrida.user { name = "A", wait_time = acrida.constant(0.05),
  tasks = { function(self) self.client:get("/", { name = "/a" }) end } }
acrida.user { name = "B", wait_time = acrida.constant(0.05),
  tasks = { function(self) self.client:get("/", { name = "/b" }) end } }
acrida.stages {
  { duration = 6,  users = 4, spawn_rate = 100, user_classes = { "A" } },
  { duration = 20, users = 4, spawn_rate = 2,   user_classes = { "B" } },
}
"""


def log_time(line):
    """The epoch seconds of a log line (its UTC timestamp, common/log.c)."""
    stamp = line.split(" ", 1)[0]
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_stage_classes_replace_the_users_of_other_classes(tmp_path, target):
    sc = write_scenario(tmp_path, TWO_CLASSES)
    prefix = str(tmp_path / "cls")
    rc, out, err = run_master(tmp_path, shape_args(sc, target.url,
                                                   ["--csv", prefix, "--csv-full-history"]))
    assert rc == 0, err[-4000:]
    assert "classes changed during the test" not in err
    lines = err.splitlines()
    spawned = [(i, ln) for i, ln in enumerate(lines) if "All users spawned" in ln]
    stage2 = [i for i, ln in enumerate(lines) if "load shape: stage 2: 4 users" in ln]
    assert len(stage2) == 1 and "(B)" in lines[stage2[0]], err[-4000:]
    # stage 1 ran A users only; after stage 2's ramp the workers report B users only
    before = [ln for i, ln in spawned if i < stage2[0]]
    after = [ln for i, ln in spawned if i > stage2[0]]
    assert before and '{"A": 4, "B": 0} (4 total users)' in before[-1], before
    assert after and '{"A": 0, "B": 4} (4 total users)' in after[0], after
    # within the stage: stage 2 lasts 14 s; its swap (4 stops and 4 starts at 2 users/s) takes
    # two ramp iterations, 1 s apart (measured between the master's own log lines)
    t2, done = log_time(lines[stage2[0]]), log_time(after[0])
    print("stage 2 swap completed %.3f s after the stage began" % (done - t2))
    assert 0 <= done - t2 < 14, (done - t2, err[-4000:])
    # no A request after the swap: the history rows written once the last A user had stopped and
    # its last report (every 3 s) was in keep A's count, while B's goes on growing
    with open(prefix + "_stats_history.csv") as f:
        rows = list(csv.DictReader(f))
    settled = done + 4

    def counts(name):
        return [int(r["Total Request Count"]) for r in rows
                if r["Name"] == name and int(r["Timestamp"]) >= settled]

    a, b = counts("/a"), counts("/b")
    assert len(b) >= 2 and b[-1] > b[0], (b, rows[-6:])
    assert a and len(set(a)) == 1, a
    assert a[0] > 0
