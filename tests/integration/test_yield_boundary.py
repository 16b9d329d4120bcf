"""A request or wait from a Lua function that C calls (a table.sort comparator, a string.gsub
callback) cannot yield. It must fail before anything is sent: the task raises a clear exception,
and the master's count still equals what the target served (before, the request went out and its
result was lost, and its response resumed the user in the middle of a wait)."""
import csv
import json

from conftest import (MARK, aggregated, headless, marked, marks_env, row, run_master_until,
                      write_scenario)

SCENARIO = r"""
local acrida = require "acrida"
""" + MARK + r"""
local runs = 0
acrida.user { name = "Boundary", wait_time = acrida.constant(0.01), tasks = { function(self)
  runs = runs + 1
  self.client:get("/", { name = "before" })
  mark("run-" .. runs)
  if runs % 2 == 0 then
    table.sort({ 3, 1, 2 }, function(a, b) self.client:get("/status/201", { name = "in-sort" }); return a < b end)
  else
    string.gsub("ab", "%w", function() acrida.sleep(0.01) end)
  end
end } }
"""


def test_wait_inside_a_c_call_fails_before_sending(tmp_path, target):
    sc = write_scenario(tmp_path, SCENARIO)
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 1, 1, "10m", workers=1, extra=["--json", "--csv", "o"]),
        lambda: marked(tmp_path, "run-3"), "three task runs", env=marks_env(tmp_path))
    doc = json.loads(out)
    counts = target.counts()
    before = row(doc, "GET", "before")["num_requests"]
    assert before >= 3, doc["stats"]
    # Nothing from inside the comparator went out: only "before" requests were served.
    assert [r["name"] for r in doc["stats"]] == ["before", "Aggregated"], doc["stats"]
    assert counts["served"] == before == aggregated(doc)["num_requests"], (counts, before)
    assert counts["by_status"] == {"200": before}, counts
    with open(tmp_path / "o_exceptions.csv", newline="") as f:
        rows = {r["Message"]: int(r["Count"]) for r in csv.DictReader(f)}
    sort_msg = [m for m in rows if "self.client cannot wait inside a function called from C" in m]
    gsub_msg = [m for m in rows if "acrida.sleep cannot wait inside a function called from C" in m]
    assert len(sort_msg) == 1 and len(gsub_msg) == 1, rows
    # Each run past the mark raised exactly once (the last one may have been stopped before).
    assert before - 1 <= rows[sort_msg[0]] + rows[gsub_msg[0]] <= before, (rows, before)
    assert rc == 1, err[-3000:]
