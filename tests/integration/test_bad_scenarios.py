"""Bad scenarios fail clearly (issue #9, docs/scenario-api.md), with a master and 2 local workers
against acrida-target.

A declaration error (acrida.user, acrida.taskset, acrida.sequence, acrida.stages, acrida.shape,
register_message, a message that cannot be sent at load time) is found when the master loads the
scenario: the master prints `acrida-master: <file>:<line>: <message>` naming the field and exits 1
before any worker runs (the scenario marks every worker that loads it, and no mark appears; the
target serves nothing). A runtime error (a listener that raises, a message whose data cannot be
sent, a bad acrida.report, acrida.sleep in a listener) is an exception row with its file:line, and the test
goes on; a shape that raises stops the test with the error shown and exits 1."""
import csv
import os

import pytest

from conftest import (MARK, count_marks, headless, marks_env, run_master, run_master_until,
                      write_scenario)

PRELUDE = """local acrida = require "acrida"
""" + MARK + """
if acrida.runner.role == "worker" then mark("worker-" .. tostring(math.random(1e9))) end
"""
TASK = 'tasks = { function(self) self.client:get("/") end }'

# (id, the declaration (the line marked --> is where the error must point), the message's text
# after "<file>:<line>: ")
LOAD_ERRORS = [
    ("user-name-missing", '--> acrida.user { ' + TASK + ' }',
     "acrida.user: 'name' is required (a non-empty string)"),
    ("user-name-number", '--> acrida.user { name = 5, ' + TASK + ' }',
     "acrida.user: 'name' is required (a non-empty string)"),
    ("user-weight-string", '--> acrida.user { name = "A", weight = "x", ' + TASK + ' }',
     "acrida.user 'A': 'weight' must be a number >= 0"),
    ("user-tasks-empty", '--> acrida.user { name = "A", tasks = {} }',
     "acrida.user 'A': 'tasks' is required (a non-empty list of tasks)"),
    ("user-tasks-missing", '--> acrida.user { name = "A" }',
     "acrida.user 'A': 'tasks' is required (a non-empty list of tasks)"),
    ("user-task-number", '--> acrida.user { name = "A", tasks = { function() end, 42 } }',
     "acrida.user 'A': task #2: expected a function, a table { fn = function(self) ... end, "
     "weight = n }, an acrida.taskset or an acrida.sequence"),
    ("user-task-tags", '--> acrida.user { name = "A", tasks = { { fn = function() end, '
     'tags = "x" } } }',
     "acrida.user 'A': task #1: 'tags' must be a list of strings"),
    ("user-on-start", '--> acrida.user { name = "A", on_start = 3, ' + TASK + ' }',
     "acrida.user 'A': 'on_start' must be a function(self)"),
    ("user-wait-time", '--> acrida.user { name = "A", wait_time = "fast", ' + TASK + ' }',
     "acrida.user 'A': 'wait_time' must be a function such as acrida.between(1, 3)"),
    ("user-duplicate", 'acrida.user { name = "A", ' + TASK + ' }\n'
     '--> acrida.user { name = "A", ' + TASK + ' }',
     "acrida.user 'A': duplicate user class name"),
    ("taskset-tasks", 'acrida.user { name = "A", tasks = {\n'
     '-->   acrida.taskset { tasks = "x" } } }',
     "acrida.taskset: 'tasks' is required (a non-empty list of tasks)"),
    ("taskset-weight", 'acrida.user { name = "A", tasks = {\n'
     '-->   acrida.taskset { weight = -1, tasks = { function() end } } } }',
     "acrida.taskset: 'weight' must be a number >= 0"),
    ("sequence-wait-time", 'acrida.user { name = "A", tasks = {\n'
     '-->   acrida.sequence { wait_time = "fast", tasks = { function() end } } } }',
     "acrida.sequence: 'wait_time' must be a function such as acrida.between(1, 3)"),
    ("stages-rate-missing", '--> acrida.stages { { duration = 10, users = 5 } }\n'
     'acrida.user { name = "A", ' + TASK + ' }',
     "acrida.stages: stage 1: spawn_rate must be a number of users/s > 0 (at most 10000000), "
     "got nil"),
    ("stages-not-a-list", '--> acrida.stages(5)\nacrida.user { name = "A", ' + TASK + ' }',
     "acrida.stages expects a list of stages {duration = s, users = n, spawn_rate = r}, got "
     "number"),
    ("register-message-number", '--> acrida.runner:register_message("x", 5)\n'
     'acrida.user { name = "A", ' + TASK + ' }',
     "register_message('x', fn): fn must be a function(msg), got number"),
    ("send-message-function", 'if acrida.runner.role == "master" then\n'
     '-->   acrida.runner:send_message("cfg", { cb = print })\nend\n'
     'acrida.user { name = "A", ' + TASK + ' }',
     "send_message('cfg'): data.cb is a function, which cannot be sent"),
]


def scenario_text(decl):
    """The scenario and the 1-based line of the declaration marked with '-->'."""
    text = PRELUDE + decl.replace("-->", "   ") + "\n"
    lines = (PRELUDE + decl).split("\n")
    line = next(i for i, s in enumerate(lines, 1) if s.startswith("-->"))
    return text, line


@pytest.mark.parametrize("decl,message", [c[1:] for c in LOAD_ERRORS],
                         ids=[c[0] for c in LOAD_ERRORS])
def test_load_error_names_field_and_line(tmp_path, target, decl, message):
    text, line = scenario_text(decl)
    sc = os.path.basename(write_scenario(tmp_path, text))  # run in tmp_path: short file:line
    rc, out, err = run_master(tmp_path, headless(sc, target.url, 2, 2, "30s", workers=2),
                              env=marks_env(tmp_path))
    assert rc == 1, (rc, err[-3000:])
    assert "acrida-master: scenario.lua:%d: %s\n" % (line, message) in err, err[-3000:]
    assert count_marks(tmp_path, "worker-") == 0, "a worker loaded the scenario"
    assert target.counts()["served"] == 0


def exceptions(prefix):
    with open(prefix + "_exceptions.csv") as f:
        return list(csv.DictReader(f))


# Every runtime error is an exception row with its file:line, and the users go on: each user
# marks its 10th task, which it reaches only after its errors.
RUNTIME = """
acrida.events.request:add_listener(function(r)
  if r.name == "/" then error("listener failed on " .. r.name) end          -- line L1
end)
acrida.events.request:add_listener(function(r)
  if r.name == "/" then acrida.sleep(0.1) end                              -- line L4
end)
local seen = 0
acrida.events.request:add_listener(function(r) seen = seen + 1 end)        -- still runs
acrida.user { name = "A", wait_time = acrida.constant(0.01), tasks = { function(self)
  self.client:get("/")
  acrida.runner:send_message("x", { f = print })                          -- line L2
end, function(self)
  self.n = (self.n or 0) + 1
  if self.n == 10 and seen > 0 then mark("ten-" .. self.id) end
  acrida.report { response_time = 1 }                                     -- line L3
end } }
"""


def test_runtime_errors_are_exception_rows_and_the_test_goes_on(tmp_path, target):
    text = PRELUDE + RUNTIME
    lines = text.split("\n")
    at = {tag: next(i for i, s in enumerate(lines, 1) if s.endswith("-- line " + tag))
          for tag in ("L1", "L2", "L3", "L4")}
    sc = os.path.basename(write_scenario(tmp_path, text))  # run in tmp_path: short file:line
    prefix = str(tmp_path / "run")
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 2, 2, "10m", workers=2, extra=["--csv", prefix]),
        lambda: count_marks(tmp_path, "ten-") == 2, "both users past their errors",
        env=marks_env(tmp_path))
    assert rc == 1, err[-3000:]  # exceptions make the run fail (--exit-code-on-error)
    msgs = {r["Message"] for r in exceptions(prefix)}
    assert msgs == {
        "scenario.lua:%d: listener failed on /" % at["L1"],
        "scenario.lua:%d: send_message('x'): data.f is a function, which cannot be sent"
        % at["L2"],
        "scenario.lua:%d: acrida.report: 'name' is required (a string)" % at["L3"],
        "scenario.lua:%d: acrida.sleep can only be called from a user's tasks or an acrida.spawn "
        "task (not at load time, in an event listener or message handler, nor from another "
        "coroutine)" % at["L4"],
    }, msgs


SHAPE_RAISES = """
acrida.shape(function(t)
  if t >= 2 then error("no stage after " .. math.floor(t) .. " s") end    -- the shape's line
  return 2, 2
end)
acrida.user { name = "A", wait_time = acrida.constant(0.1), """ + TASK + """ }
"""


def test_a_shape_that_raises_stops_the_test(tmp_path, target):
    text = PRELUDE + SHAPE_RAISES
    line = next(i for i, s in enumerate(text.split("\n"), 1) if s.endswith("-- the shape's line"))
    sc = os.path.basename(write_scenario(tmp_path, text))  # run in tmp_path: short file:line
    prefix = str(tmp_path / "run")
    # -t 10m: only the shape's error can end this run
    rc, out, err = run_master(tmp_path, headless(sc, target.url, 1, 1, "10m", workers=2,
                                                 extra=["--csv", prefix]),
                              env=marks_env(tmp_path))
    assert rc == 1, err[-3000:]
    assert "scenario.lua:%d: no stage after 2 s" % line in err, err[-3000:]
    rows = exceptions(prefix)
    assert [r["Message"] for r in rows] == ["scenario.lua:%d: no stage after 2 s" % line], rows
    assert rows[0]["Nodes"] == "master", rows
    assert target.counts()["served"] > 0  # the test ran until the shape raised
