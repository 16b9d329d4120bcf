"""--local-workers: the master configures its local workers itself. A shared acrida.conf or ACRIDA_*
variables meant for remote workers (processes, node-id) must not reach them; a local worker that
dies before the test starts ends the wait with exit 1; SIGTERM while waiting is not a success."""
import json
import os
import signal

from conftest import (aggregated, headless, run_master, run_master_until, start_master, wait_for,
                      write_scenario)

OK = """
local acrida = require "acrida"
acrida.user { name = "Ok", wait_time = acrida.constant(0.05), tasks = { function(self) self.client:get("/") end } }
"""


def test_shared_worker_settings_do_not_reach_local_workers(tmp_path, target):
    sc = write_scenario(tmp_path, OK)
    (tmp_path / "acrida.conf").write_text("processes = auto\nnode-id = loadbox\n")
    env = dict(os.environ, ACRIDA_NODE_ID="envbox", ACRIDA_PROCESSES="2")
    # until both workers' users sent requests, then SIGTERM (the stop of --run-time's end)
    rc, out, err = run_master_until(tmp_path, headless(sc, target.url, 4, 10, "10m",
                                                       extra=["--json"]),
                                    lambda: target.counts()["served"] >= 4, "requests", env=env)
    assert rc == 0, err[-3000:]
    doc = json.loads(out)
    ids = [w["id"] for w in doc["workers"]]
    assert len(ids) == 2 and len(set(ids)) == 2, ids
    assert not any(i.startswith(("loadbox", "envbox")) for i in ids), ids
    assert err.count("started local worker pid") == 2, err[-3000:]
    assert aggregated(doc)["num_requests"] == target.counts()["served"] >= 4


def test_local_worker_dying_before_the_start_ends_the_wait(tmp_path, target):
    sc = write_scenario(tmp_path, """
local acrida = require "acrida"
if acrida.runner.role == "worker" then error("fails on workers only") end
acrida.user { name = "Ok", tasks = { function(self) self.client:get("/") end } }
""")
    rc, out, err = run_master(tmp_path, headless(sc, target.url, 2, 2, "10m"), timeout=300)
    assert "fails on workers only" in err, err[-3000:]
    assert "A local worker exited before the test started" in err, err[-3000:]
    assert rc == 1, err[-3000:]
    assert target.counts()["served"] == 0


def test_sigterm_while_waiting_for_workers_is_not_a_success(tmp_path, target):
    sc = write_scenario(tmp_path, OK)
    m, _ = start_master(tmp_path, ["-f", sc, "-H", target.url, "--headless", "--json",
                                   "--expect-workers", "1"])
    wait_for(lambda: "Waiting for workers to be ready, 0 of 1" in m.log(), timeout=120,
             what="the master to wait for workers")
    m.proc.send_signal(signal.SIGTERM)
    m.proc.wait(timeout=120)
    assert m.stop() == 1, m.log()[-3000:]
    assert "Stopped while waiting for workers (0 of 1 ready): no test ran" in m.log()
    assert m.stdout() == "", m.stdout()


def test_local_workers_connect_to_the_bound_address(tmp_path, target):
    """Bound to one address (127.0.0.2, loopback but not 127.0.0.1), the master's local workers
    connect there: before, they dialled 127.0.0.1 and the master waited for them forever."""
    sc = write_scenario(tmp_path, OK)
    rc, out, err = run_master(tmp_path, headless(sc, target.url, 2, 10, "1s", workers=1, extra=[
        "--json", "--master-bind-host", "127.0.0.2", "--expect-workers-max-wait", "120"]))
    assert "1 of 1 workers ready, starting the test" in err, err[-3000:]
    assert rc == 0, err[-3000:]
    assert aggregated(json.loads(out))["num_requests"] == target.counts()["served"]
