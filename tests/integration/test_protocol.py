"""Master and worker survive hostile ZeroMQ frames (issue #2 acceptance), and speak Locust's
wire protocol: a fake master built from pyzmq + msgpack drives a real acrida-worker.

The masters run until what a test checks has happened (requests served, a frame logged), then get
SIGTERM: the same graceful stop as the end of --run-time (master/headless.c), with exact counts."""
import json
import os
import signal
import time

import msgpack
import zmq

from conftest import Daemon, aggregated, binary, start_master, wait_for, write_scenario
from fakepeer import FakeMaster, FakeWorker, dealer

OK = """
local acrida = require "acrida"
acrida.user { name = "U", tasks = { function(self) self.client:get("/") end } }
"""

GARBAGE = [
    b"",
    b"\xc1",                                   # never-used msgpack byte
    b"\xdd\x00\xff\xff\xff",                   # array32 claiming 16M elements
    b"\x93\xa9heartbeat",                      # truncated
    msgpack.packb(["heartbeat", {"state": 1}, "x"]),       # wrong field type
    msgpack.packb(["heartbeat", None, "x"]),               # data not a map
    msgpack.packb(["spawning_complete", {}, "ghost"]),     # unknown node, missing key
    msgpack.packb(["stats", {"stats": "nope"}, "ghost"]),
    msgpack.packb([1, 2, 3]),
    msgpack.packb(["only", "two"]),
    msgpack.packb({"not": "an array"}),
    b"\x91" * 5000 + b"\xc0",                  # nesting far too deep
    msgpack.packb(["client_ready", "v", "x"]) + b"trailing",
    os.urandom(4096),
]


def test_garbage_frames_to_master_are_dropped_and_run_completes(tmp_path, target):
    sc = write_scenario(tmp_path, OK)
    m, port = start_master(tmp_path, ["-f", sc, "-H", target.url, "-u", "4", "-r", "4", "-t",
        "10m", "--headless", "--local-workers", "1", "--json"])
    ctx = zmq.Context()
    s = dealer(ctx, b"evil_00000000000000000000000000000000", port)
    for g in GARBAGE:
        s.send(g)
    # A multi-frame message, too.
    s.send_multipart([b"a", b"b", b"c"])
    # Last, a frame logged by name: frames of one connection arrive in order, so once it is
    # logged the master has read every frame above.
    s.send(msgpack.packb(["client_stopped", None, "last_frame"]))
    wait_for(lambda: "client_stopped names another node id" in m.log() or not m.alive(),
             what="the master to read every frame")
    wait_for(lambda: target.counts()["served"] > 0 or not m.alive(), what="requests")
    m.proc.send_signal(signal.SIGTERM)
    m.proc.wait(timeout=120)
    s.close()
    ctx.term()
    rc = m.stop()
    doc = json.loads(m.stdout())
    assert aggregated(doc)["num_requests"] == target.counts()["served"] > 0
    assert rc == 0, m.log()[-3000:]
    assert "malformed" in m.log(), m.log()[-3000:]


def test_worker_speaks_locust_protocol_and_survives_garbage(tmp_path, target):
    sc = write_scenario(tmp_path, OK)
    fm = FakeMaster()
    w = Daemon([binary("acrida-worker"), "--exit-on-quit", "--master-host", "127.0.0.1",
                "--master-port", str(fm.port), "-f", sc], tmp_path, "worker")
    try:
        ident, msg = fm.recv("client_ready")
        assert msg[1].startswith("acrida/") and msg[2] == ident.decode(), msg
        assert "_" in msg[2] and len(msg[2].rsplit("_", 1)[1]) == 32, msg[2]
        fm.send(ident, "ack", {"index": 0})
        _, hb = fm.recv("heartbeat")
        assert hb[1]["state"] == "ready" and "current_cpu_usage" in hb[1], hb
        for g in GARBAGE:
            fm.send_raw(ident, g)
        fm.send(ident, "spawn", {"timestamp": time.time(), "user_classes_count": {"U": 3},
                                 "host": target.url, "stop_timeout": None, "parsed_options": {}})
        fm.recv("spawning")
        _, done = fm.recv("spawning_complete")
        assert done[1]["user_count"] == 3 and done[1]["user_classes_count"] == {"U": 3}, done
        _, st = fm.recv("stats")
        assert set(st[1]) >= {"stats", "stats_total", "errors", "user_classes_count", "user_count"}, st[1].keys()
        wait_for(lambda: target.counts()["served"] > 0, what="the worker's first requests")
        fm.send(ident, "stop", None)
        total = st[1]["stats_total"]["num_requests"]
        while True:
            _, m2 = fm.recv("stats")
            total += m2[1]["stats_total"]["num_requests"]
            if m2[1].get("acrida_final"):
                break
        fm.recv("client_stopped")
        _, again = fm.recv("client_ready")
        assert total == target.counts()["served"] > 0, (total, target.counts())
        fm.send(ident, "quit", None)
        fm.recv("quit")
        w.proc.wait(timeout=120)
        assert w.stop() == 0, w.log()[-3000:]
        assert "malformed" in w.log(), w.log()[-2000:]
    finally:
        if w.alive():
            w.stop()
        fm.close()


def test_worker_without_scenario_runs_the_one_the_master_ships(tmp_path, target):
    sc = write_scenario(tmp_path, OK, "shipped.lua")
    m, port = start_master(tmp_path, ["-f", sc, "-H", target.url, "-u", "3", "-r", "3", "-t",
        "10m", "--headless", "--expect-workers", "1", "--json"])
    # The worker runs elsewhere: no -f, another working directory.
    wdir = tmp_path / "elsewhere"
    wdir.mkdir()
    w = Daemon([binary("acrida-worker"), "--exit-on-quit", "--master-host", "127.0.0.1",
                "--master-port", str(port)], wdir, "worker")
    wait_for(lambda: target.counts()["served"] > 0 or not m.alive(), what="requests")
    m.proc.send_signal(signal.SIGTERM)
    m.proc.wait(timeout=120)
    w.proc.wait(timeout=120)
    assert m.stop() == 0, m.log()[-3000:]
    assert w.stop() == 0, w.log()[-3000:]
    doc = json.loads(m.stdout())
    assert aggregated(doc)["num_requests"] == target.counts()["served"] > 0
    assert "loaded the scenario 'shipped.lua' sent by the master" in w.log(), w.log()[-2000:]


def test_a_peer_cannot_speak_for_another_worker(tmp_path, target):
    import re
    sc = write_scenario(tmp_path, OK)
    m, port = start_master(tmp_path, ["-f", sc, "-H", target.url, "-u", "2", "-r", "2", "-t",
        "10m", "--headless", "--local-workers", "1", "--json"])
    victim = wait_for(lambda: re.search(r"worker (\S+) \(index 0", m.log()), what="worker").group(1)
    wait_for(lambda: target.counts()["served"] > 100, what="load")
    ctx = zmq.Context()
    s = dealer(ctx, b"spoofer_00000000000000000000000000000000", port)
    s.send(msgpack.packb(["quit", None, victim]))
    s.send(msgpack.packb(["client_stopped", None, victim]))
    wait_for(lambda: m.log().count("names another node id") >= 2 or not m.alive(),
             what="the master to read both spoofed frames")
    m.proc.send_signal(signal.SIGTERM)
    m.proc.wait(timeout=120)
    s.close()
    ctx.term()
    assert m.stop() == 0, m.log()[-3000:]
    assert m.log().count("names another node id") == 2, m.log()[-3000:]
    doc = json.loads(m.stdout())
    # Had the spoofed quit been taken, the victim would have been removed from the registry during
    # the test (so absent from the workers the run ended with) and its interval counted as lost.
    assert [w["id"] for w in doc["workers"]] == [victim], doc["workers"]
    assert doc["lost_reports"] == 0, m.log()[-3000:]
    assert aggregated(doc)["num_requests"] == target.counts()["served"] > 0


def zero_entry(name, method):
    return {"name": name, "method": method, "last_request_timestamp": None, "start_time": time.time(),
            "num_requests": 0, "num_none_requests": 0, "num_failures": 0, "total_response_time": 0,
            "max_response_time": 0, "min_response_time": None, "total_content_length": 0,
            "response_times": {}, "num_reqs_per_sec": {}, "num_fail_per_sec": {}}


def test_extreme_numbers_from_a_worker_are_bounded(tmp_path, target):
    """Class counts and sequence numbers at the int64 limit are bounded (a count to 2^31-1, a
    sequence number ignored), so the master's sums cannot overflow (the sanitizer pass aborts on
    signed overflow) and the run's results are not corrupted."""
    sc = write_scenario(tmp_path, OK)
    m, port = start_master(tmp_path, ["-f", sc, "-H", target.url, "-u", "2", "-r", "2", "-t",
        "10m", "--headless", "--local-workers", "1", "--json"])
    wait_for(lambda: target.counts()["served"] > 100, what="load")
    big = 2**63 - 1
    fake = FakeWorker(port, "huge_00000000000000000000000000000000")

    def report(final):
        return {"stats": [], "stats_total": zero_entry("Aggregated", ""), "errors": {},
                "user_classes_count": {"U": big, "V": big}, "user_count": big, "acrida_seq": big,
                "acrida_final": final}

    def stop(_data):
        # client_stopped clears a worker's classes; the final report after it sets them again,
        # so the run ends with this worker holding the two huge counts.
        fake.send("client_stopped", None)
        fake.send("stats", report(True))

    fake.on["stop"] = stop
    try:
        fake.send("client_ready", "acrida/evil")
        fake.pump(lambda t: t == "ack", what="ack")
        for _ in range(2):
            fake.send("stats", report(False))
        ignored = "report sequence number %d out of range; ignored" % big
        fake.pump(lambda t: m.log().count(ignored) >= 2, what="both reports read")
        m.proc.send_signal(signal.SIGTERM)
        fake.pump(lambda t: t == "quit", what="quit")
        m.proc.wait(timeout=120)
    finally:
        fake.close()
    assert m.stop() == 0, m.log()[-3000:]
    assert "stop" in fake.seen, fake.seen
    doc = json.loads(m.stdout())
    assert aggregated(doc)["num_requests"] == target.counts()["served"] > 0
    # Each count was bounded to 2^31-1 before the master summed the worker's users.
    huge = [w for w in doc["workers"] if w["id"] == fake.node]
    assert len(huge) == 1 and huge[0]["user_count"] == 2 * (2**31 - 1), doc["workers"]
    # The out-of-range sequence numbers were ignored, not counted as gaps or reordering.
    assert doc["lost_reports"] == 0, m.log()[-3000:]
    assert m.log().count("report sequence number %d out of range; ignored" % big) == 3, m.log()[-3000:]
