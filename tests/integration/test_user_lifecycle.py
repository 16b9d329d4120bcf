"""Users that do unusual things must not hang the stop or corrupt the worker. The scenarios mark
what their users did (conftest.py's MARK); the master gets SIGTERM, the same stop as the end of
--run-time, once they all have."""
import json

from conftest import (MARK, aggregated, count_marks, headless, marks_env, run_master_until,
                      write_scenario)


def run_until(tmp_path, target, scenario, users, prefix, what):
    sc = write_scenario(tmp_path, scenario)
    return run_master_until(tmp_path, headless(sc, target.url, users, users, "10m", workers=1,
                                               extra=["--json"]),
                            lambda: count_marks(tmp_path, prefix) == users, what,
                            env=marks_env(tmp_path))


def test_on_stop_that_never_returns_is_capped_after_self_stop(tmp_path, target):
    rc, out, err = run_until(tmp_path, target, """
local acrida = require "acrida"
""" + MARK + """
acrida.user {
  name = "Quitter",
  on_stop = function(self) while true do acrida.sleep(1) end end,
  tasks = { function(self)
    self.client:get("/")
    mark("stopping-" .. self.id)
    self:stop()
  end },
}
""", 2, "stopping-", "both users' self:stop()")
    # on_stop is capped at 5 s after self:stop(); without the cap the worker would not answer the
    # master's stop and the master would give up on it after its 70 s stop wait, saying so.
    assert "did not answer the stop" not in err, err[-2000:]
    doc = json.loads(out)
    assert doc["lost_reports"] == 0, err[-2000:]
    assert aggregated(doc)["num_requests"] == target.counts()["served"] == 2
    assert rc == 0, err[-2000:]


def test_scenario_dropping_self_client_does_not_corrupt_the_worker(tmp_path, target):
    rc, out, err = run_until(tmp_path, target, """
local acrida = require "acrida"
""" + MARK + """
acrida.user {
  name = "Dropper",
  wait_time = acrida.constant(0.05),
  tasks = { function(self)
    local had = self.client ~= nil
    if self.client then self.client:get("/") end
    self.client = nil
    collectgarbage()
    -- a second task run without the client, after a collection: the worker carried on
    if not had and not self.marked then
      self.marked = true
      mark("dropped-" .. self.id)
    end
  end },
}
""", 3, "dropped-", "a task run without the client by each user")
    doc = json.loads(out)
    assert aggregated(doc)["num_requests"] == target.counts()["served"] == 3
    assert rc == 0, err[-2000:]
