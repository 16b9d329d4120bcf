"""Task structure and green tasks with a master and 2 local workers against acrida-target
(docs/scenario-api.md): a sequence's order and interrupt (checked by the users themselves, any
mismatch an exception row), -T/--tags and -E/--exclude-tags sent by the master to the workers (the
target sees only the kept tasks' URLs), a class left without a task refused at start, 100 tasks of
acrida.spawn all gone once the test stopped, requests with record = false served but not counted,
and examples/tasksets.lua.

Runs last until the scenario marked what the test waits for (conftest.py's MARK), then the master
gets SIGTERM (a graceful stop), so the counts are exact."""
import json
import os
import shutil

from conftest import (MARK, count_marks, headless, marks_env, run_master, run_master_until,
                      write_scenario)

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples")


def exceptions_csv(prefix):
    with open(prefix + "_exceptions.csv") as f:
        return f.read().splitlines()[1:]


def stats_row(doc, method, name):
    rows = [r for r in doc["stats"] if r["name"] == name and r["method"] == method]
    return rows[0] if rows else None


# Each pass through the sequence must log exactly "a b b c": in order, b twice in a row; the
# interrupt in c runs its on_stop, and the user's loop enters it again (on_start resets the log).
# The stop at the end runs on_stop of a sequence left in the middle: a prefix then.
SEQUENCE = """
local acrida = require "acrida"
""" + MARK + """
acrida.user { name = "Seq", tasks = {
  acrida.sequence {
    on_start = function(self) self.log = {} end,
    on_stop = function(self)
      local got = table.concat(self.log, " ")
      -- a user stopped in the middle also runs this on_stop: a prefix is fine then
      if ("a b b c"):sub(1, #got) ~= got then error("sequence order: " .. got) end
      if got ~= "a b b c" then return end
      self.rounds = (self.rounds or 0) + 1
      if self.rounds == 3 then mark("seq-" .. self.worker_index .. "-" .. self.id) end
    end,
    tasks = {
      function(self) self.log[#self.log + 1] = "a"; self.client:get("/status/200") end,
      { weight = 2, fn = function(self)
          self.log[#self.log + 1] = "b"; self.client:get("/status/201") end },
      function(self)
        self.log[#self.log + 1] = "c"; self.client:get("/status/202"); self:interrupt()
      end,
    } } } }
"""


def test_sequence_order_and_interrupt(tmp_path, target):
    sc = write_scenario(tmp_path, SEQUENCE)
    prefix = str(tmp_path / "out")
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 4, 4, "10m", workers=2,
                           extra=["--json", "--csv", prefix]),
        lambda: count_marks(tmp_path, "seq-") == 4, "4 users through the sequence 3 times",
        env=marks_env(tmp_path))
    assert rc == 0, err[-4000:]
    assert exceptions_csv(prefix) == []
    doc = json.loads(out)
    a, b, c = (stats_row(doc, "GET", "/status/%d" % s)["num_requests"] for s in (200, 201, 202))
    assert a >= 12 and c >= 12 and c <= a <= c + 4 and a - 4 <= b / 2.0 <= a


TAGGED = """
local acrida = require "acrida"
""" + MARK + """
acrida.user { name = "T", tasks = {
  { tags = { "read" }, fn = function(self)
      self.client:get("/status/200")
      self.n = (self.n or 0) + 1
      if self.n == 5 then mark("read-" .. self.worker_index .. "-" .. self.id) end
    end },
  { tags = { "write" }, fn = function(self) self.client:get("/status/201") end },
  function(self) self.client:get("/status/202") end,
  acrida.taskset { tags = { "read" }, tasks = {
    { tags = { "slow" }, fn = function(self) self.client:get("/status/203") end },
    function(self) self.client:get("/status/204"); self:interrupt() end } },
} }
acrida.user { name = "Other", fixed_count = 1, tasks = {
  { tags = { "write" }, fn = function(self) self.client:get("/status/205") end } } }
"""


def test_tags_from_the_master_reach_the_workers(tmp_path, target):
    sc = write_scenario(tmp_path, TAGGED.replace('fixed_count = 1', 'weight = 0'))
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 4, 4, "10m", workers=2,
                           extra=["--json", "-T", "read", "-E", "slow"]),
        lambda: count_marks(tmp_path, "read-") == 4, "4 users with 5 tagged requests",
        env=marks_env(tmp_path))
    assert rc == 0, err[-4000:]
    by_status = target.counts()["by_status"]
    assert set(by_status) == {"200", "204"}, by_status
    assert by_status["200"] >= 20
    doc = json.loads(out)
    assert stats_row(doc, "GET", "/status/200")["num_requests"] == by_status["200"]


def test_class_left_without_task_is_refused(tmp_path, target):
    sc = write_scenario(tmp_path, TAGGED)
    rc, out, err = run_master(
        tmp_path, headless(sc, target.url, 2, 2, "10m", workers=2, extra=["-T", "read"]))
    assert rc == 1, (rc, err[-4000:])
    assert "user class 'Other' has no task left after --tags/--exclude-tags" in err, err[-4000:]
    rc, out, err = run_master(
        tmp_path, headless(sc, target.url, 2, 2, "10m", workers=2, extra=["-E", "write"]))
    assert rc == 1 and "user class 'Other' has no task left" in err, (rc, err[-4000:])
    assert target.counts()["served"] == 0


# Each user spawns 50 background tasks that request through its client; the workers' test_stop
# listener (which runs once the users are gone) counts the handles still alive.
SPAWN = """
local acrida = require "acrida"
""" + MARK + """
local handles = {}
acrida.user { name = "Sp",
  on_start = function(self)
    for i = 1, 50 do
      handles[#handles + 1] = acrida.spawn(function(client, k)
        while true do
          client:get("/status/203", { name = "spawned" })
          acrida.sleep(0.1)
        end
      end, self.client, i)
    end
    mark("spawned-" .. self.worker_index .. "-" .. self.id)
  end,
  tasks = { function(self) acrida.sleep(1) end } }
acrida.events.test_stop:add_listener(function()
  if acrida.runner.role ~= "worker" then return end
  local alive = 0
  for _, h in ipairs(handles) do if h:alive() then alive = alive + 1 end end
  mark("stop-" .. #handles .. "-alive-" .. alive .. "-" .. tostring(math.random(1, 2^30)))
end)
"""


def test_spawned_tasks_are_gone_after_stop(tmp_path, target):
    sc = write_scenario(tmp_path, SPAWN)
    prefix = str(tmp_path / "out")
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 2, 2, "10m", workers=2,
                           extra=["--json", "--csv", prefix]),
        lambda: count_marks(tmp_path, "spawned-") == 2 and target.counts()["served"] >= 300,
        "100 spawned tasks requesting", env=marks_env(tmp_path))
    assert rc == 0, err[-4000:]
    assert count_marks(tmp_path, "stop-50-alive-0-") == 2, os.listdir(tmp_path / "marks")
    assert count_marks(tmp_path, "stop-") == 2
    doc = json.loads(out)
    # recorded normally, and nothing after the stop: the target served exactly what was counted
    assert stats_row(doc, "GET", "spawned")["num_requests"] == target.counts()["served"]
    assert exceptions_csv(prefix) == []


RECORD_FALSE = """
local acrida = require "acrida"
""" + MARK + """
acrida.user { name = "Fwd", tasks = { function(self)
  local r = self.client:post("/echo", { json = { n = 1 }, record = false })
  if r.status ~= 200 then error("forward failed: " .. r.status) end
  self.client:get("/status/201")
  self.n = (self.n or 0) + 1
  if self.n == 10 then mark("fwd-" .. self.worker_index .. "-" .. self.id) end
end } }
"""


def test_record_false_is_served_not_counted(tmp_path, target):
    sc = write_scenario(tmp_path, RECORD_FALSE)
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 2, 2, "10m", workers=2, extra=["--json"]),
        lambda: count_marks(tmp_path, "fwd-") == 2, "2 users with 10 tasks each",
        env=marks_env(tmp_path))
    assert rc == 0, err[-4000:]
    doc = json.loads(out)
    counts = target.counts()
    assert [r["name"] for r in doc["stats"] if r["name"] != "Aggregated"] == ["/status/201"]
    counted = stats_row(doc, "GET", "/status/201")["num_requests"]
    assert counted == counts["by_status"]["201"] >= 20
    echo = counts["by_path_prefix"]["/echo"]
    assert counted <= echo <= counted + 2  # a stop may fall between the two requests
    assert doc["stats"][-1]["num_requests"] == counted


def test_example_tasksets_with_tags(tmp_path, target):
    sc = str(tmp_path / "tasksets.lua")
    shutil.copy(os.path.join(EXAMPLES, "tasksets.lua"), sc)
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 4, 4, "10m", workers=2,
                           extra=["--json", "-T", "checkout"]),
        lambda: target.counts()["served"] >= 60, "60 checkout requests")
    assert rc == 0, err[-4000:]
    doc = json.loads(out)
    names = {r["name"] for r in doc["stats"]} - {"Aggregated"}
    assert names <= {"/cart", "/address", "/pay", "/confirm", "/checkout/done"}, names
    assert {"/cart", "/pay", "/confirm"} <= names, names
    pay = stats_row(doc, "GET", "/pay")["num_requests"]
    confirm = stats_row(doc, "GET", "/confirm")["num_requests"]
    assert confirm <= pay / 2.0 <= confirm + 4
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 4, 4, "10m", workers=2, extra=["--json", "-E", "slow"]),
        lambda: target.counts()["served"] >= 200, "200 more requests")
    assert rc == 0, err[-4000:]
    names = {r["name"] for r in json.loads(out)["stats"]} - {"Aggregated"}
    assert "/search" not in names and {"/product", "/cart"} <= names, names
