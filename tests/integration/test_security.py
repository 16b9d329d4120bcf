"""The master port with a cluster key (issue #11, docs/security.md): `acrida-master --gen-key`
writes a 0600 key file that is never overwritten; master and workers started with
--cluster-key speak CURVE, so only key holders join (a keyless worker and a rogue CURVE peer with
its own key pair are refused and the master logs it), nothing of the scenario is readable on the
wire, and local workers get the key; a key file others may read is refused like ssh does. Without
a key, a worker refuses a scenario shipped by a master it reaches over the network unless run with
--trust-master. Every wait is for an event (a port file, a log line, a state, a count)."""
import json
import os
import re
import socket
import stat
import subprocess
import threading
import urllib.request

import pytest
import msgpack
import zmq

from conftest import (Daemon, _died, aggregated, binary, read_port_file, run_master,
                      start_master, wait_for, write_scenario)
from fakepeer import dealer

SECRET = "s3cr3t-marker-0b1c"
SCENARIO = """
local acrida = require "acrida"
local password = "%s"
acrida.user { name = "Keyed", wait_time = 0.01, tasks = { function(self) self.client:get("/") end } }
""" % SECRET


def gen_key(tmp_path, name="cluster.key"):
    path = str(tmp_path / name)
    p = subprocess.run([binary("acrida-master"), "--gen-key", path], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return path


def read_key(path):
    keys = {}
    for line in open(path):
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            keys[k.strip()] = v.strip()
    return keys


def web_master(tmp_path, args, name="master", bind="127.0.0.1"):
    pf = str(tmp_path / (name + ".ports"))
    d = Daemon([binary("acrida-master")] + args + [
        "--web-port", "0", "--master-bind-host", bind, "--master-bind-port", "0",
        "--port-file", pf], tmp_path, name)
    wait_for(lambda: read_port_file(pf, "web") or (not d.alive() and _died(d)),
             what="master port file")
    return d, read_port_file(pf, "master"), read_port_file(pf, "web")


def stats(web):
    with urllib.request.urlopen("http://127.0.0.1:%d/stats/requests" % web, timeout=60) as r:
        return json.load(r)


def worker(tmp_path, port, name, extra=(), host="127.0.0.1"):
    return Daemon([binary("acrida-worker"), "--master-host", host, "--master-port", str(port)] +
                  list(extra), tmp_path, name)


def test_gen_key_writes_0600_and_never_overwrites(tmp_path):
    path = gen_key(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    keys = read_key(path)
    assert sorted(keys) == ["master-public", "master-secret", "worker-public", "worker-secret"]
    assert all(len(v) == 40 for v in keys.values())
    before = open(path).read()
    p = subprocess.run([binary("acrida-master"), "--gen-key", path], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "never overwritten" in p.stderr, (p.returncode, p.stderr)
    assert open(path).read() == before


def test_key_file_readable_by_others_is_refused(tmp_path):
    path = gen_key(tmp_path)
    os.chmod(path, 0o644)
    sc = write_scenario(tmp_path, SCENARIO)
    rc, _, err = run_master(tmp_path, ["-f", sc, "--headless", "--cluster-key", path])
    assert rc == 2 and "chmod 600" in err, (rc, err)
    p = subprocess.run([binary("acrida-worker"), "--cluster-key", path], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "chmod 600" in p.stderr, (p.returncode, p.stderr)


def test_only_key_holders_join(tmp_path, target):
    key = gen_key(tmp_path)
    other = gen_key(tmp_path, "other.key")
    sc = write_scenario(tmp_path, SCENARIO)
    m, port, web = web_master(tmp_path, ["-f", sc, "--cluster-key", key, "-H", target.url])
    daemons = [m]
    try:
        keyless = worker(tmp_path, port, "keyless")
        wrong = worker(tmp_path, port, "wrong", ["--cluster-key", other])
        daemons += [keyless, wrong]
        wait_for(lambda: "refused a peer" in m.log(), what="the master refusing a keyless peer")
        # A rogue CURVE peer that knows the master's public key but holds its own key pair:
        # the handshake completes, ZAP refuses it, and it never gets an ack or the scenario.
        ctx = zmq.Context()
        pub, sec = zmq.curve_keypair()
        rogue = dealer(ctx, b"rogue", port, curve_serverkey=read_key(key)["master-public"].encode(),
                       curve_publickey=pub, curve_secretkey=sec)
        rogue.send(msgpack.packb(["client_ready", "acrida/0", "rogue"]))
        wait_for(lambda: re.search(r"\b[1-9]\d* presented an unknown public key|"
                                   r"on the master port: unknown public key", m.log()),
                 what="ZAP refusing the rogue key")
        assert not rogue.poll(0), "the rogue peer received something"
        rogue.close()
        ctx.term()
        assert stats(web)["workers"] == [], stats(web)["workers"]

        good = worker(tmp_path, port, "good", ["--cluster-key", key])
        daemons.append(good)
        wait_for(lambda: len(stats(web)["workers"]) == 1, what="the key holder registered")
        assert keyless.alive() and wrong.alive()
        assert len(stats(web)["workers"]) == 1
    finally:
        for d in reversed(daemons):
            d.stop()


class Recorder:
    """A TCP relay between a worker and the master that keeps every byte it relays."""

    def __init__(self, port):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]
        self.upstream = port
        self.data = bytearray()
        self.lock = threading.Lock()
        self.socks = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            self.socks += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    def pipe(self, a, b):
        while True:
            try:
                d = a.recv(65536)
            except OSError:
                d = b""
            if not d:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            with self.lock:
                self.data += d
            try:
                b.sendall(d)
            except OSError:
                return

    def seen(self, needle):
        with self.lock:
            return needle in self.data

    def close(self):
        self.srv.close()
        for s in self.socks:
            s.close()


@pytest.mark.parametrize("keyed", [False, True])
def test_scenario_is_unreadable_on_the_wire_with_a_key(tmp_path, target, keyed):
    """The scenario (holding a secret) crosses a recording relay: in clear without a key (the
    control: the recorder can see it), never with one; the test runs either way."""
    key = gen_key(tmp_path) if keyed else None
    sc = write_scenario(tmp_path, SCENARIO)
    kopt = ["--cluster-key", key] if keyed else []
    m, port, web = web_master(tmp_path, ["-f", sc, "-H", target.url] + kopt)
    rec = Recorder(port)
    w = worker(tmp_path, rec.port, "worker", kopt)
    try:
        wait_for(lambda: len(stats(web)["workers"]) == 1, what="the worker registered")
        req = urllib.request.Request("http://127.0.0.1:%d/swarm" % web,
                                     data=b"user_count=1&spawn_rate=1", method="POST")
        urllib.request.urlopen(req, timeout=60).read()
        wait_for(lambda: aggregated(stats(web))["num_requests"] >= 20, what="requests counted")
        assert rec.seen(b"s3cr3t-marker") == (not keyed)
        assert rec.seen(b"client_ready") == (not keyed)
    finally:
        w.stop()
        m.stop()
        rec.close()


def test_local_workers_get_the_key(tmp_path, target):
    key = gen_key(tmp_path)
    sc = write_scenario(tmp_path, SCENARIO)
    rc, out, err = run_master(tmp_path, [
        "-f", sc, "--headless", "--cluster-key", key, "--local-workers", "1", "-u", "2", "-r",
        "2", "-t", "2", "-H", target.url, "--json", "--master-bind-host", "127.0.0.1",
        "--master-bind-port", "0"])
    assert rc == 0, err[-3000:]
    assert "encrypted and authenticated with the cluster key" in err
    assert aggregated(json.loads(out))["num_requests"] == target.counts()["served"]


def outside_address():
    """An address of this machine that is not loopback, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))
        a = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if a.startswith("127.") else a


@pytest.mark.parametrize("trust", [False, True])
def test_keyless_network_master_scenario_needs_trust(tmp_path, target, trust):
    addr = outside_address()
    if not addr:
        pytest.skip("this machine has no non-loopback IPv4 address")
    sc = write_scenario(tmp_path, SCENARIO)
    m, port, web = web_master(tmp_path, ["-f", sc, "-H", target.url], bind=addr)
    w = worker(tmp_path, port, "worker", ["--trust-master"] if trust else [], host=addr)
    try:
        if not trust:
            wait_for(lambda: "refused it: it came from" in m.log(),
                     what="the master logging the refusal")
            assert any("without a cluster key" in e["msg"] for e in stats_exceptions(web))
            assert w.proc.wait(60) == 1, w.log()
        else:
            wait_for(lambda: len(stats(web)["workers"]) == 1, what="the worker registered")
            req = urllib.request.Request("http://127.0.0.1:%d/swarm" % web,
                                         data=b"user_count=1&spawn_rate=1", method="POST")
            urllib.request.urlopen(req, timeout=60).read()
            wait_for(lambda: aggregated(stats(web))["num_requests"] >= 10,
                     what="requests counted")
            assert "refused it" not in w.log()
    finally:
        w.stop()
        m.stop()


def stats_exceptions(web):
    with urllib.request.urlopen("http://127.0.0.1:%d/exceptions" % web, timeout=60) as r:
        return json.load(r)["exceptions"]
