"""The master's HTTP server and API against a hostile client (master/web/httpd.c, routes*.c), while a
test runs on two local workers: idle sockets beyond the connection cap, pipelined expensive requests
that are not read, trickled requests, resets, malformed requests and /swarm bodies. Through all of
it the load test goes on (the target's count grows, the workers stay running with the users of the
last accepted edit) and the master neither crashes nor logs a sanitizer report. Every wait is for an
event (an answer, a count, a state); nothing asserts a duration.

The master runs with an open-file limit of 256, so its connection cap is 128 (half the limit)."""
import json
import socket
import struct
import threading
import urllib.parse

import pytest

from conftest import Daemon, _died, binary, read_port_file, wait_for

NOFILE = 256
CAP = NOFILE // 2


class Master(Daemon):
    def __init__(self, tmp_path, target_url):
        pf = str(tmp_path / "master.ports")
        cmd = ["sh", "-c", 'ulimit -n %d && exec "$0" "$@"' % NOFILE, binary("acrida-master"),
               "-f", _scenario(tmp_path), "-H", target_url, "--local-workers", "2",
                "--web-port", "0", "--master-bind-host", "127.0.0.1", "--master-bind-port", "0",
                "--port-file", pf]
        super().__init__(cmd, tmp_path, "master")
        wait_for(lambda: read_port_file(pf, "web") or (not self.alive() and _died(self)),
                 what="web port in the port file")
        self.port = read_port_file(pf, "web")

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0


SCENARIO = """
local acrida = require "acrida"
acrida.user { name = "Reader", wait_time = 0.01, tasks = { function(self) self.client:get("/") end } }
acrida.user { name = "Other", wait_time = 0.01, tasks = { function(self) self.client:get("/bytes/10") end } }
"""


def _scenario(tmp_path):
    p = tmp_path / "hostile.lua"
    p.write_text(SCENARIO)
    return str(p)


def request(port, method, path, body=None, headers=(), timeout=60):
    """(status, body) of one request on a fresh connection (Connection: close)."""
    head = "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" % (method, path)
    for h in headers:
        head += h + "\r\n"
    data = body.encode() if isinstance(body, str) else (body or b"")
    if body is not None:
        head += "Content-Length: %d\r\n" % len(data)
    raw = exchange(port, head.encode() + b"\r\n" + data, timeout)
    status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0
    return status, raw.partition(b"\r\n\r\n")[2]


def exchange(port, data, timeout=60):
    """Sends @data, half-closes, returns every byte until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out = b""
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            out += b
        return out


def swarm(port, form):
    status, body = request(port, "POST", "/swarm", urllib.parse.urlencode(form),
                           ["Content-Type: application/x-www-form-urlencoded"])
    return status, json.loads(body)


def doc(port, path="/stats/requests"):
    status, body = request(port, "GET", path)
    assert status == 200, (status, body[:300])
    return json.loads(body)


def served(target):
    return target.counts()["served"]


def running_with(m, users):
    d = doc(m.port)
    ok = (d["state"] == "running" and d["user_count"] == users and len(d["workers"]) == 2 and
          all(w["state"] == "running" for w in d["workers"]) and
          sum(w["user_count"] for w in d["workers"]) == users)
    return ok or (not m.alive() and _died(m))


def load_goes_on(m, target):
    """The target's count grows by 20 more requests (the test was not disturbed)."""
    base = served(target)
    wait_for(lambda: served(target) > base + 20 or (not m.alive() and _died(m)),
             what="the target's count to keep growing")


@pytest.fixture
def master(tmp_path, target):
    m = Master(tmp_path, target.url)
    wait_for(lambda: len(doc(m.port)["workers"]) == 2, what="2 workers")
    status, d = swarm(m.port, {"user_count": 4, "spawn_rate": 100})
    assert status == 200, d
    wait_for(lambda: running_with(m, 4), what="4 users running")
    load_goes_on(m, target)
    yield m
    assert m.alive(), m.log()[-3000:]
    request(m.port, "POST", "/stop")
    rc = m.stop()
    assert rc == 0, m.log()[-3000:]


def test_idle_sockets_beyond_the_cap_do_not_lock_clients_out(master, target):
    # more sockets than the master's open-file limit: without a cap below it, accept() failed
    # with EMFILE and no one got in
    extra = NOFILE + 44 - CAP
    socks = [socket.create_connection(("127.0.0.1", master.port)) for _ in range(CAP + extra)]
    try:
        # every socket beyond the cap closed an older idle one, and a client still gets in
        status, body = request(master.port, "GET", "/workers")
        assert status == 200, body
        closed = 0
        for s in socks:
            s.settimeout(60)
            if len(socks) - closed <= CAP:
                break
            try:
                if s.recv(1) == b"":
                    closed += 1
            except ConnectionResetError:
                closed += 1
        assert closed >= extra
    finally:
        for s in socks:
            s.close()
    assert "least recently active" in master.log()
    load_goes_on(master, target)
    assert running_with(master, 4)


def test_pipelined_reports_not_read_do_not_stall_the_master(master, target):
    n_conns, n_reqs = 20, 30
    socks = []
    for _ in range(n_conns):
        s = socket.create_connection(("127.0.0.1", master.port), timeout=60)
        s.sendall(b"GET /stats/report HTTP/1.1\r\nHost: x\r\n\r\n" * n_reqs)
        socks.append(s)
    # while they wait unread, the API answers and the test goes on
    assert doc(master.port)["state"] == "running"
    load_goes_on(master, target)
    counts = [0] * n_conns

    def read_all(i):
        tail = b""
        while counts[i] < n_reqs:
            b = socks[i].recv(1 << 20)
            if not b:
                break
            x = tail + b
            counts[i] += x.count(b"HTTP/1.1 200 OK")
            tail = x[-14:]

    threads = [threading.Thread(target=read_all, args=(i,)) for i in range(n_conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in socks:
        s.close()
    assert counts == [n_reqs] * n_conns
    # the loop was never held long enough for the workers' heartbeats to be late
    assert "failed to send heartbeat" not in master.log()
    assert running_with(master, 4)


def test_trickled_reset_and_malformed_requests(master, target):
    rss_before = master.rss_kb()
    # clients that trickle a request head and never finish it
    slow = [socket.create_connection(("127.0.0.1", master.port)) for _ in range(50)]
    for s in slow:
        s.sendall(b"GET /stats/requests HTTP/1.1\r\nX-A: ")
    # resets in the middle of a request, of a body, of answers
    for data in (b"GET /workers HTTP/1.1\r\nHo", b"POST /swarm HTTP/1.1\r\nContent-Length: 99\r\n\r\nuser",
                 b"GET /stats/report HTTP/1.1\r\n\r\n" * 20):
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", master.port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(data)
            s.close()
    cases = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40, 400),
        (b"POST /swarm HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"POST /swarm HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
        (b"POST /swarm HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /swarm HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
        (b"POST /swarm HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", 413),
        (b"POST /swarm HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\nab", 413),
        (b"POST /swarm HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n", 400),
        (b"GET /sta\x00ts HTTP/1.1\r\n\r\n", 400),
        (b"GET /stats%00/requests HTTP/1.1\r\n\r\n", 400),
        (b"GET /static/..%2f..%2fetc%2fpasswd HTTP/1.1\r\n\r\n", 404),
        (b"GET /static/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\n\r\n", 404),
        (b"GET /\xff\xfe%ff%c0%af HTTP/1.1\r\n\r\n", 404),
        (b"GET /workers?" + b"q" * 20000 + b" HTTP/1.1\r\n\r\n", 431),
        (b"GET /workers HTTP/1.1\r\n" + b"X: y\r\n" * 4000 + b"\r\n", 431),
    ]
    for data, want in cases:
        raw = exchange(master.port, data)
        assert raw.startswith(b"HTTP/1.1 %d " % want), (data[:60], raw[:200])
    # the trickling clients hold no one up
    status, _ = request(master.port, "GET", "/workers")
    assert status == 200
    for s in slow:
        s.close()
    load_goes_on(master, target)
    assert running_with(master, 4)
    rss_after = master.rss_kb()
    print("master RSS %d kB before, %d kB after" % (rss_before, rss_after))
    assert rss_after < rss_before + 256 * 1024


def test_swarm_abuse_keeps_the_last_accepted_edit(master, target):
    refused = [
        {"user_count": "1e3", "spawn_rate": 2},
        {"user_count": "0x10", "spawn_rate": 2},
        {"user_count": "1e308", "spawn_rate": 2},
        {"user_count": 3, "spawn_rate": "1e-300"},
        {"user_count": 3, "spawn_rate": "nan"},
        {"user_count": 3, "spawn_rate": "Infinity"},
        {"user_count": 3, "spawn_rate": 0},
        {"user_count": 3, "spawn_rate": 2, "host": "http://a\r\nX-Injected: 1"},
        {"user_count": 3, "spawn_rate": 2, "host": "javascript:alert(1)"},
        {"user_count": 3, "spawn_rate": 2, "host": "http://" + "a" * 10000},
        {"user_count": 3, "spawn_rate": 2, "host": "http://\u00e9.example"},
        {"user_count": 3, "spawn_rate": 2, "run_time": "999999999h"},
    ]
    for form in refused:
        status, d = swarm(master.port, form)
        assert status == 400 and d["success"] is False, (form, d)
    for body in ("[" * 100000, '{"a":' * 100000, '{"user_count": 3, "spawn_rate": 1e-300}',
                 json.dumps({"user_count": 3, "spawn_rate": 2, "user_classes": ["Reader"] * 10000})):
        status, b = request(master.port, "POST", "/swarm", body, ["Content-Type: application/json"])
        assert status == 400, b[:300]
    many = "&".join("user_classes=C%d" % i for i in range(10000))
    status, b = request(master.port, "POST", "/swarm", "user_count=3&spawn_rate=2&" + many,
                        ["Content-Type: application/x-www-form-urlencoded"])
    assert status == 400, b[:300]
    assert running_with(master, 4)
    # 300 edits in a row on one connection: every one accepted, the last one wins
    with socket.create_connection(("127.0.0.1", master.port), timeout=60) as s:
        reqs = b""
        for i in range(300):
            body = ("user_count=%d&spawn_rate=1000" % (1 + i % 7)).encode()
            reqs += (b"POST /swarm HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-"
                     b"urlencoded\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
        s.sendall(reqs + b"GET /stats/reset HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            out += b
    assert out.count(b"HTTP/1.1 200 OK") == 301, out[:500]
    last = 1 + 299 % 7
    wait_for(lambda: running_with(master, last), what="%d users running" % last)
    load_goes_on(master, target)
