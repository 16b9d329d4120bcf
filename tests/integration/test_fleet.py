"""A small fleet in network namespaces (issue #10): the master in one namespace, a worker daemon in
each of two others and acrida-target in a fourth, joined by veth pairs to a bridge that lives in a
fifth namespace, so no traffic touches the host's interfaces; the master port uses a cluster key
(docs/security.md), as a fleet over a network should. The test runs two consecutive tests
without restarting the workers, kills one worker namespace's processes with SIGKILL and starts
them again during a third test, then SIGKILLs the master during a fourth test and starts it again
on the same port: the new master adopts the running test, stops it, and its total equals what the
target served. Every count is compared with the target's own count; every wait is for an event
with a deadline. Where namespaces cannot be created (no CAP_NET_ADMIN, no `ip`), it skips saying
why.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.parse
from datetime import datetime, timezone

import pytest

from conftest import Daemon, _died, binary, read_port_file, wait_for, write_scenario

SUBNET = "10.77.0."
NODES = {"m": 1, "w1": 2, "w2": 3, "t": 4}  # namespace -> last byte of its address
USERS = 6

SCENARIO = """
local acrida = require "acrida"
acrida.user { name = "Fleet", wait_time = 0.02, tasks = { function(self) self.client:get("/") end } }
"""


def sh(*args, check=True):
    return subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          check=check, timeout=60)


class Netns:
    """The namespaces, the bridge and the veth pairs; close() deletes them (and their links)."""

    def __init__(self):
        self.prefix = "acrf%d" % (os.getpid() % 100000)
        self.names = []
        hub = self.add("hub")
        sh("ip", "-n", hub, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", hub, "link", "set", "br0", "up")
        for node, last in NODES.items():
            ns = self.add(node)
            sh("ip", "-n", hub, "link", "add", "v" + node, "type", "veth", "peer", "name", "eth0",
               "netns", ns)
            sh("ip", "-n", hub, "link", "set", "v" + node, "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", "%s%d/24" % (SUBNET, last), "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def ns(self, node):
        return "%s-%s" % (self.prefix, node)

    def add(self, node):
        name = self.ns(node)
        sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "add", name)
        self.names.append(name)
        return name

    def close(self):
        for name in reversed(self.names):
            sh("ip", "netns", "del", name, check=False)


def namespaces_or_skip():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.skip("the fleet test needs root and iproute2 to create network namespaces")
    try:
        return Netns()
    except (subprocess.CalledProcessError, OSError) as e:
        err = getattr(e, "stderr", "") or str(e)
        pytest.skip("cannot create network namespaces here: %s" % err.strip())


class Fleet:
    """The daemons of the fleet and HTTP through the master's namespace (curl inside it)."""

    def __init__(self, net, tmp_path):
        self.net, self.tmp = net, tmp_path
        self.daemons = []
        self.workers = {}
        self.master = None
        self.master_port = 0
        self.target = self.start("t", [binary("acrida-target"), "--host", SUBNET + "4", "--port",
                                       "0", "--port-file", str(tmp_path / "target.ports")],
                                 "target")
        self.target_port = wait_for(lambda: read_port_file(str(tmp_path / "target.ports"), "port")
                                    or (not self.target.alive() and _died(self.target)),
                                    what="target port file")
        self.scenario = write_scenario(tmp_path, SCENARIO)
        self.key = str(tmp_path / "cluster.key")
        subprocess.run([binary("acrida-master"), "--gen-key", self.key], check=True, timeout=60,
                       stdout=subprocess.DEVNULL)

    def start(self, node, args, name):
        d = Daemon(["ip", "netns", "exec", self.net.ns(node)] + args, self.tmp, name)
        self.daemons.append(d)
        return d

    def start_master(self, name):
        pf = str(self.tmp / (name + ".ports"))
        self.master = self.start("m", [
            binary("acrida-master"), "-f", self.scenario, "--web-host", SUBNET + "1",
            "--web-port", "0", "--master-bind-host", SUBNET + "1", "--master-bind-port",
            str(self.master_port), "--port-file", pf, "--cluster-key", self.key], name)
        m = self.master
        wait_for(lambda: read_port_file(pf, "web") or (not m.alive() and _died(m)),
                 what="%s port file" % name)
        self.master_port = read_port_file(pf, "master")
        self.web = "http://%s1:%d" % (SUBNET, read_port_file(pf, "web"))
        return m

    def start_worker(self, node, name):
        self.workers[node] = self.start(node, [
            binary("acrida-worker"), "--master-host", SUBNET + "1", "--master-port",
            str(self.master_port), "--master-timeout", "10", "--node-id", "fleet-" + node,
            "--cluster-key", self.key], name)
        return self.workers[node]

    def curl(self, url, data=None):
        args = ["ip", "netns", "exec", self.net.ns("m"), "curl", "-sS", "-m", "30", url]
        if data is not None:
            args += ["--data", urllib.parse.urlencode(data)]
        r = sh(*args, check=False)
        assert r.returncode == 0, (url, r.stderr)
        return r.stdout

    def stats(self):
        return json.loads(self.curl(self.web + "/stats/requests"))

    def total(self):
        d = self.stats()
        return [r for r in d["stats"] if r["name"] == "Aggregated"][0]["num_requests"]

    def served(self):
        return json.loads(self.curl("http://%s4:%d/_count" % (SUBNET, self.target_port)))["served"]

    def reset_target(self):
        self.curl("http://%s4:%d/_reset" % (SUBNET, self.target_port))

    def wait_state(self, state, timeout=120):
        m = self.master
        return wait_for(lambda: (not m.alive() and _died(m)) or
                        (lambda d: d if d["state"] == state else None)(self.stats()),
                        timeout=timeout, what="state %s" % state)

    def wait_workers(self, n, state="ready"):
        wait_for(lambda: len([w for w in self.stats()["workers"] if w["state"] == state]) == n,
                 what="%d %s workers" % (n, state))

    def swarm(self):
        out = json.loads(self.curl(self.web + "/swarm", {
            "user_count": USERS, "spawn_rate": USERS,
            "host": "http://%s4:%d" % (SUBNET, self.target_port)}))
        assert out["success"], out

    def wait_requests(self, n):
        wait_for(lambda: self.total() >= n, what="%d requests counted" % n)

    def stop_test(self):
        self.curl(self.web + "/stop")
        self.wait_state("stopped")

    def close(self):
        for d in reversed(self.daemons):
            if d.alive():
                d.proc.kill()
            d.proc.wait(60)


def log_time(line):
    """The timestamp of a log line of acrida's (common/log.c: 2026-11-30T21:10:01.123Z, UTC)."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z", line)
    assert m, line
    t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return t.timestamp() + int(m.group(2)) / 1000


def first_line(text, needle):
    for line in text.splitlines():
        if needle in line:
            return line
    return None


def test_fleet_in_namespaces(tmp_path):
    net = namespaces_or_skip()
    fleet = None
    try:
        fleet = Fleet(net, tmp_path)
        fleet.start_master("master1")
        pids = {n: fleet.start_worker(n, "worker-" + n).proc.pid for n in ("w1", "w2")}
        fleet.wait_workers(2)

        # Two consecutive tests with the same worker daemons: exact totals each time.
        for k in range(2):
            fleet.reset_target()
            fleet.swarm()
            fleet.wait_state("running")
            fleet.wait_requests(150)
            fleet.stop_test()
            wait_for(lambda: fleet.total() == fleet.served(),
                     what="test %d: the master's total equal to the target's count" % (k + 1))
            fleet.wait_workers(2)
        assert {n: w.proc.pid for n, w in fleet.workers.items()} == pids
        assert all(w.alive() for w in fleet.workers.values())

        # A worker namespace's processes killed with SIGKILL mid-test and started again: the
        # master marks it missing, the new one gets users, and nothing but the killed worker's
        # last interval is lost (counted).
        fleet.reset_target()
        fleet.swarm()
        fleet.wait_state("running")
        fleet.wait_requests(100)
        fleet.workers["w1"].proc.kill()
        fleet.workers["w1"].proc.wait(60)
        wait_for(lambda: "setting state to missing" in fleet.master.log(),
                 what="the killed worker marked missing")
        fleet.start_worker("w1", "worker-w1-again")
        wait_for(lambda: sum(w.get("user_count", 0) for w in fleet.stats()["workers"]
                             if w["state"] == "running") == USERS and
                 len([w for w in fleet.stats()["workers"] if w["state"] == "running"]) == 2,
                 what="the restarted worker running its share of the users")
        before = fleet.total()
        fleet.wait_requests(before + 100)
        fleet.stop_test()
        doc = fleet.stats()
        served = fleet.served()
        counted = [r for r in doc["stats"] if r["name"] == "Aggregated"][0]["num_requests"]
        assert doc["lost_reports"] >= 1, doc["lost_reports"]
        assert counted <= served, (counted, served)
        fleet.wait_workers(2)

        # The master SIGKILLed mid-test and started again on the same port: the workers keep
        # their users (master timeout 10 s), re-register, and the new master adopts the test.
        fleet.reset_target()
        fleet.swarm()
        fleet.wait_state("running")
        fleet.wait_requests(100)
        fleet.master.proc.kill()
        fleet.master.proc.wait(60)
        m2 = fleet.start_master("master2")
        started = log_time(m2.log().splitlines()[0])
        full = "from 2 workers (%d users)" % USERS
        wait_for(lambda: first_line(m2.log(), full), timeout=60,
                 what="both workers adopted (%s)" % full)
        adopted = first_line(m2.log(), full)
        assert "adopted test" in adopted, adopted
        assert log_time(adopted) - started <= 5.0, (m2.log()[-3000:])
        doc = fleet.wait_state("running")
        assert doc["user_count"] == USERS, doc["user_count"]
        before = fleet.total()
        fleet.wait_requests(before + 100)
        fleet.stop_test()
        wait_for(lambda: fleet.total() == fleet.served(),
                 what="the adopted test's total equal to the target's count")
        assert all(w.alive() for w in fleet.workers.values())
    finally:
        if fleet:
            fleet.close()
        net.close()
