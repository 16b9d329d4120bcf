"""Liveness and readiness bounds of the master (proto/PROTOCOL.md, section 7): a silent worker is
missing within 3 s and its users move to the others within 1 s of the detection, respecting
weights and fixed_count; it heals when it talks again; a worker joining mid-run gets its share
within 1 s. Every bound is measured with the daemons' own log timestamps (one machine clock), with
a small tolerance for the time a log line takes to be written; nothing sleeps.
An acrida worker gets users only once it confirmed the shipped scenario (acrida_scenario_loaded);
a stock Locust worker at once. Duplicate client_ready frames that a worker queued while no master
was up are answered once.
"""
import datetime
import hashlib
import re
import signal
import time

from conftest import WebApi, Daemon, _died, binary, free_port, read_port_file, wait_for, write_scenario
from fakepeer import FakeWorker

# Heavy:Light = 3:1 over what Fixed leaves: 9 users are Fixed 1, Heavy 6, Light 2 on any number
# of workers.
SCENARIO = """
acrida.user { name = "Heavy", weight = 3, wait_time = 0.2,
  tasks = { function(self) self.client:get("/") end } }
acrida.user { name = "Light", weight = 1, wait_time = 0.2,
  tasks = { function(self) self.client:get("/") end } }
acrida.user { name = "Fixed", fixed_count = 1, wait_time = 0.2,
  tasks = { function(self) self.client:get("/") end } }
"""
USERS = 9
SPLIT = {"Fixed": 1, "Heavy": 6, "Light": 2}
LOG_TOLERANCE_S = 0.25  # a log line is stamped when written: scheduling delay on a busy machine
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z (.*)$")
RUNNING = re.compile(r"running (\d+) users \(([^)]*)\)")


def stamped(log, needle):
    """(epoch s, line) of every line of @log containing @needle."""
    out = []
    for line in log.splitlines():
        m = STAMP.match(line)
        if m and needle in m.group(2):
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
            out.append((t.replace(tzinfo=datetime.timezone.utc).timestamp(), m.group(2)))
    return out


def first_after(log, needle, t0):
    return next(((t, line) for t, line in stamped(log, needle) if t >= t0), None)


def running_after(worker, t0):
    """(time, {class: count}) of the worker's first applied spawn logged at or after @t0."""
    hit = first_after(worker.log(), "running ", t0)
    if not hit:
        return None
    m = RUNNING.search(hit[1])
    counts = dict((k, int(v)) for k, v in (p.split("=") for p in m.group(2).split()))
    assert sum(counts.values()) == int(m.group(1)), hit
    return hit[0], counts


def summed(parts):
    total = {}
    for counts in parts:
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
    return dict((k, v) for k, v in total.items() if v)


class WebMaster(WebApi, Daemon):
    def __init__(self, tmp_path, args, master_port=0):
        pf = str(tmp_path / "master.ports")
        super().__init__([binary("acrida-master")] + list(args) + [
            "--web-port", "0", "--master-bind-host", "127.0.0.1",
            "--master-bind-port", str(master_port), "--port-file", pf], tmp_path, "master")
        wait_for(lambda: read_port_file(pf, "web") or (not self.alive() and _died(self)),
                 what="master port file")
        self.web = "http://127.0.0.1:%d" % read_port_file(pf, "web")
        self.port = read_port_file(pf, "master")

    def settled(self, users, nworkers):
        """The stats once the test runs @users over @nworkers running workers."""
        def ok():
            if not self.alive():
                _died(self)
            d = self.stats()
            live = [w for w in d["workers"] if w["state"] == "running"]
            return d if (d["state"] == "running" and d["user_count"] == users and
                         len(live) == nworkers) else None
        return wait_for(ok, what="%d users running on %d workers" % (users, nworkers))


def start_worker(tmp_path, port, name, extra=()):
    return Daemon([binary("acrida-worker"), "--master-port", str(port), "--node-id",
                   name + "_" + hashlib.md5(name.encode()).hexdigest()] + list(extra),
                  tmp_path, name)


def node(name):
    return name + "_" + hashlib.md5(name.encode()).hexdigest()


def stop_all(daemons):
    for d in daemons:
        if d.alive():
            d.proc.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
    return [d.stop() for d in daemons]


def assert_split(workers, t0, what):
    """Every worker of @workers applied a spawn at or after @t0; together they run SPLIT.
    Returns the latest of their spawn times."""
    got = {}
    for w in workers:
        got[w.name] = wait_for(lambda w=w: running_after(w, t0),
                               what="%s: %s applies a spawn" % (what, w.name))
    assert summed(c for _, c in got.values()) == SPLIT, (what, got)
    return max(t for t, _ in got.values())


def test_silent_worker_missing_within_3s_users_move_within_1s_and_heal(tmp_path, target):
    sc = write_scenario(tmp_path, SCENARIO)
    m = WebMaster(tmp_path, ["-f", sc, "-H", target.url])
    ws = [start_worker(tmp_path, m.port, "lv%d" % i) for i in (1, 2, 3)]
    try:
        wait_for(lambda: m.log().count("loaded the scenario") >= 3, what="3 workers loaded")
        t_start = time.time() - 1
        status, body = m.http("/swarm", {"user_count": USERS, "spawn_rate": 100})
        assert status == 200, body
        m.settled(USERS, 3)
        assert_split(ws, t_start, "the start")

        frozen = ws[2]
        frozen.proc.send_signal(signal.SIGSTOP)
        needle = "Worker %s failed to send heartbeat" % node("lv3")
        t_missing, line = wait_for(lambda: first_after(m.log(), needle, 0),
                                   what="the master marks the frozen worker missing")
        silent = float(re.search(r"silent for ([0-9.]+) s", line).group(1))
        assert silent <= 3.0, line
        t_reb, _ = wait_for(lambda: first_after(m.log(), "Rebalancing 9 users over 2 workers",
                                                t_missing), what="the rebalance")
        assert t_reb - t_missing <= 1.0, (t_missing, t_reb)
        t_applied = assert_split(ws[:2], t_missing, "after the worker went missing")
        print("missing after %.2f s of silence; users moved %.3f s after the detection"
              % (silent, t_applied - t_missing))
        assert t_applied - t_missing <= 1.0 + LOG_TOLERANCE_S, (t_missing, t_applied)
        m.settled(USERS, 2)

        frozen.proc.send_signal(signal.SIGCONT)
        healed = "worker %s self-healed" % node("lv3")
        t_heal, _ = wait_for(lambda: first_after(m.log(), healed, t_missing),
                             what="the worker heals")
        wait_for(lambda: first_after(m.log(), "Rebalancing 9 users over 3 workers", t_heal),
                 what="the rebalance after the heal")
        assert_split(ws, t_heal, "after the heal")
        m.settled(USERS, 3)
    finally:
        rcs = stop_all(ws) + [m.stop()]
    assert rcs == [0, 0, 0, 0], (rcs, m.log()[-3000:])


def test_joining_worker_gets_its_share_within_1s(tmp_path, target):
    sc = write_scenario(tmp_path, SCENARIO)
    m = WebMaster(tmp_path, ["-f", sc, "-H", target.url])
    ws = [start_worker(tmp_path, m.port, "jn%d" % i) for i in (1, 2)]
    try:
        wait_for(lambda: m.log().count("loaded the scenario") >= 2, what="2 workers loaded")
        status, body = m.http("/swarm", {"user_count": USERS, "spawn_rate": 100})
        assert status == 200, body
        m.settled(USERS, 2)
        # this one runs its own copy (-f): it confirms the scenario by its hash
        ws.append(start_worker(tmp_path, m.port, "jn3", ["-f", sc]))
        needle = "worker %s (index" % node("jn3")
        t_reg, _ = wait_for(lambda: first_after(m.log(), needle, 0), what="the registration")
        wait_for(lambda: first_after(m.log(), "worker %s loaded the scenario" % node("jn3"), 0),
                 what="the -f worker's acrida_scenario_loaded")
        t_applied = assert_split(ws, t_reg, "after the join")
        print("the joining worker had its share %.3f s after its registration"
              % (t_applied - t_reg))
        assert t_applied - t_reg <= 1.0 + LOG_TOLERANCE_S, (t_reg, t_applied)
        m.settled(USERS, 3)
        assert "different scenario" not in m.log()
    finally:
        rcs = stop_all(ws) + [m.stop()]
    assert rcs == [0, 0, 0, 0], (rcs, m.log()[-3000:])


class Fake(FakeWorker):
    """A worker spoken by hand, ready, keeping the bundle manifest the master ships in .manifest;
    @version "acrida/..." or "" (stock Locust)."""

    def __init__(self, port, name, version):
        super().__init__(port, node(name), state="ready")
        self.version = version
        self.manifest = None
        self.on["scenario"] = self.keep_manifest

    def keep_manifest(self, data):
        if data.get("acrida_bundle"):
            self.manifest = data["acrida_bundle"]


def test_acrida_worker_gets_users_only_after_loading_the_scenario(tmp_path):
    sc = write_scenario(tmp_path, SCENARIO)
    m = WebMaster(tmp_path, ["-f", sc, "-H", "http://127.0.0.1:9"])
    slow = Fake(m.port, "slow", "acrida/fake")
    broken = Fake(m.port, "broken", "acrida/fake")
    locust = Fake(m.port, "locust", "")
    fakes = [slow, broken, locust]
    try:
        status, body = m.http("/swarm", {"user_count": USERS, "spawn_rate": 100})
        assert status == 503, (status, body)  # no worker at all
        for f in (slow, broken):
            f.send("client_ready", f.version)
            f.settle(lambda f=f: f.manifest, what="the scenario's bundle manifest")
        broken.send("acrida_scenario_loaded", {"sha256": broken.manifest["sha256"],
                                               "error": "scenario.lua:3: boom"})
        wait_for(lambda: "could not load the scenario" in m.log(), what="the load error")
        # a worker still loading: the test starts and waits for it, sending no spawn yet
        status, body = m.http("/swarm", {"user_count": USERS, "spawn_rate": 100})
        assert status == 200, body
        # a stock Locust worker gets no scenario and takes users at once
        locust.send("client_ready", "")
        locust.settle(lambda: "spawn" in locust.seen, what="spawn")
        slow.settle(lambda: m.stats()["state"] == "running", what="the running state")
        broken.settle()
        assert "spawn" not in slow.seen and "spawn" not in broken.seen, (slow.seen, broken.seen)
        # the slow one confirms: it joins the test under way
        slow.send("acrida_scenario_loaded", {"sha256": slow.manifest["sha256"], "error": None})
        slow.settle(lambda: "spawn" in slow.seen, what="a spawn once loaded")
        wait_for(lambda: "Rebalancing 9 users over 2 workers" in m.log(), what="the rebalance")
        broken.settle()
        assert "spawn" not in broken.seen, broken.seen
        assert "scenario" not in locust.seen, locust.seen
    finally:
        for f in fakes:
            f.close()
        rc = m.stop()
    # exit 4: the fakes never send reports, so the slow one's first interval counts as lost
    assert rc == 4 and "lost interval" in m.log(), (rc, m.log()[-3000:])


def test_queued_client_ready_frames_are_answered_once(tmp_path):
    sc = write_scenario(tmp_path, SCENARIO)
    port = free_port()
    w = start_worker(tmp_path, port, "early")
    m = None
    try:
        # no master: one client_ready at start and one per retry (5 s, then 10 s later) queue up
        wait_for(lambda: w.log().count("sending client_ready again") >= 2, timeout=180,
                 what="the worker to queue 3 client_ready frames")
        m = WebMaster(tmp_path, ["-f", sc, "-H", "http://127.0.0.1:9"], master_port=port)
        wait_for(lambda: "worker %s loaded the scenario" % node("early") in m.log(),
                 what="the worker registered and loaded the scenario")
        # the scenario's confirmation follows every queued client_ready on the connection
        log = m.log()
        assert log.count("worker %s (index" % node("early")) == 1, log[-3000:]
        assert "ignoring the duplicate client_ready" in log, log[-3000:]
        assert w.log().count("connected to the master") == 1
        # the worker writes its own line after sending the confirmation the master logged
        wait_for(lambda: "loaded the scenario" in w.log(), what="the worker's load line")
        assert w.log().count("loaded the scenario") == 1, w.log()[-3000:]
    finally:
        rcs = [w.stop()] + ([m.stop()] if m else [])
    assert rcs == [0] * len(rcs), rcs
