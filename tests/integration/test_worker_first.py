"""A worker started before its master: its queued client_ready messages must not count as a lost
report interval (no false `lost_reports`, no exit 4) and the count stays exact; the master answers
the first and ignores the duplicates (proto/PROTOCOL.md, `client_ready`)."""
import json

from conftest import (Daemon, aggregated, binary, free_port, run_master_until, wait_for,
                      write_scenario)

ONLY_OK = """
local acrida = require "acrida"
acrida.user { name = "Ok", tasks = { function(self) self.client:get("/") end } }
"""


def test_worker_started_before_its_master_loses_nothing(tmp_path, target):
    sc = write_scenario(tmp_path, ONLY_OK)
    port = free_port()
    w = Daemon([binary("acrida-worker"), "--exit-on-quit", "--master-port", str(port), "-f", sc],
               tmp_path, "worker")
    try:
        # Without a master the worker's first client_ready stays queued and it sends another one:
        # the master receives both at once, registers the worker once and ignores the duplicate.
        wait_for(lambda: "sending client_ready again" in w.log(), timeout=120,
                 what="the worker to repeat its client_ready")
        # The master runs until the duplicate has arrived and requests were served, then SIGTERM
        # (the same stop as the end of --run-time).
        rc, out, err = run_master_until(
            tmp_path, ["-f", sc, "-H", target.url, "-u", "2", "-r", "2", "-t", "10m",
                       "--headless", "--json", "--master-bind-host", "127.0.0.1",
                       "--master-bind-port", str(port)],
            lambda: ("ignoring the duplicate client_ready" in (tmp_path / "master.log").read_text()
                     and target.counts()["served"] > 0),
            "the duplicate client_ready and some requests")
        w.proc.wait(timeout=120)  # it got `quit` and exits on its own
    finally:
        wrc = w.stop()
    assert "ignoring the duplicate client_ready" in err, err[-3000:]  # it did arrive
    assert "re-registered" not in err, err[-3000:]
    doc = json.loads(out)
    assert doc["lost_reports"] == 0, err[-3000:]
    assert "lost interval" not in err, err[-3000:]
    assert rc == 0, err[-3000:]
    assert aggregated(doc)["num_requests"] == target.counts()["served"] > 0
    assert wrc == 0, w.log()[-3000:]
