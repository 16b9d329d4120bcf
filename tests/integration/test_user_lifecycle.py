"""Users that do unusual things must not hang the stop or corrupt the worker."""
import json
import time

from conftest import aggregated, headless, run_master, write_scenario


def test_on_stop_that_never_returns_is_capped_after_self_stop(tmp_path, target):
    sc = write_scenario(tmp_path, """
local acrida = require "acrida"
acrida.user {
  name = "Quitter",
  on_stop = function(self) while true do acrida.sleep(1) end end,
  tasks = { function(self) self.client:get("/"); self:stop() end },
}
""")
    t0 = time.monotonic()
    rc, out, err = run_master(tmp_path, headless(sc, target.url, 2, 2, "2s", workers=1,
                                                 extra=["--json"]), timeout=60)
    elapsed = time.monotonic() - t0
    # on_stop is capped at 5 s after self:stop(); the run must not wait for the 70 s stop limit.
    assert elapsed < 20, "stop took %.1f s:\n%s" % (elapsed, err[-2000:])
    doc = json.loads(out)
    assert aggregated(doc)["num_requests"] == target.counts()["served"] == 2
    assert rc == 0, err[-2000:]


def test_scenario_dropping_self_client_does_not_corrupt_the_worker(tmp_path, target):
    sc = write_scenario(tmp_path, """
local acrida = require "acrida"
acrida.user {
  name = "Dropper",
  wait_time = acrida.constant(0.05),
  tasks = { function(self)
    if self.client then self.client:get("/") end
    self.client = nil
    collectgarbage()
  end },
}
""")
    rc, out, err = run_master(tmp_path, headless(sc, target.url, 3, 3, "2s", workers=1,
                                                 extra=["--json"]))
    doc = json.loads(out)
    assert aggregated(doc)["num_requests"] == target.counts()["served"] == 3
    assert rc == 0, err[-2000:]
