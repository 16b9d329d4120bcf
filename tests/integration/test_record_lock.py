"""examples/record_lock.lua with a web-mode master and 2 local workers: 10 users contending for 3
records never process one record at once (every begin/end of processing, timed with the machine's
monotonic clock across processes, checked by test_pools.assert_exclusive), users of both workers
process records, and every record is back in the pool (/stats/requests' "pools") after the stop."""
import os
import time

from test_pools import assert_exclusive, events, swarm
from test_web_mode import WebMaster, http, stats, wait_state

from conftest import ROOT, wait_for


def test_example_record_lock(tmp_path, target, monkeypatch):
    marks = tmp_path / "marks"
    marks.mkdir()
    monkeypatch.setenv("EXAMPLE_REPORT_DIR", str(marks))  # the master passes it to its workers
    m = WebMaster(tmp_path, ["-f", os.path.join(ROOT, "examples", "record_lock.lua"), "-H",
                             target.url, "--local-workers", "2"])
    try:
        wait_for(lambda: len([w for w in stats(m)["workers"] if w["state"] == "ready"]) == 2,
                 what="2 ready workers")
        assert stats(m)["pools"]["records"] == {"size": 3, "available": 3, "leased": 0,
                                                "waiting": 0}
        swarm(m, 10, 10)
        wait_for(lambda: sum(1 for e in events(tmp_path) if e[1] == "E") >= 150, timeout=300,
                 what="150 completed processings")
        # users do wait for records at some point (at any one moment all may be between tasks)
        def contended():
            p = stats(m)["pools"]["records"]
            assert p["leased"] + p["available"] == 3, p
            return p["waiting"] > 0
        wait_for(contended, what="a user waiting for a record")
        http(m.web + "/stop", "POST")
        wait_state(m, "stopped")
        stopped = time.monotonic()
        p = wait_for(lambda: (lambda d: d if d["available"] == 3 else None)(
            stats(m)["pools"]["records"]), what="every record back in the pool")
        assert p == {"size": 3, "available": 3, "leased": 0, "waiting": 0}, p
        evs = events(tmp_path)
        by = assert_exclusive(evs, [stopped])
        assert sorted(by) == ["rec-1", "rec-2", "rec-3"], sorted(by)
        assert len({uid // 1000000000 for _, _, _, uid in evs}) == 2  # both workers' users
        assert len({uid for _, _, _, uid in evs}) > 3  # users took turns
        rows = {r["name"]: r["num_requests"] for r in stats(m)["stats"]}
        assert rows["/record/[id] read"] >= 150 and rows["/record/[id] write"] >= 150, rows
    finally:
        assert m.stop() == 0, m.log()[-3000:]
