"""Web mode (no --headless): the master serves the API on --web-host/--web-port (loopback and port
8089 by default, 0 = ephemeral, written as web=N to --port-file), with --web-auth and HTTPS; tests
start from POST /swarm and stop with /stop, any number in a row with the same workers, each stop
writing the CSV files; --autostart runs -u/-r/-t at once and --autoquit ends the process after a
test, with the headless exit codes (master/finish.c), --check's exit 3 included; SIGTERM stops a
running test and writes CSV files whose totals equal what the target served. Every wait is for an
event (a port file, a state, the target's count), never for a time."""
import base64
import csv
import json
import os
import signal
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import (Daemon, _died, binary, read_port_file, wait_for, write_scenario)

OK = """
local acrida = require "acrida"
acrida.user { name = "Ok", wait_time = 0.005, tasks = { function(self) self.client:get("/") end } }
"""

FAILING = """
local acrida = require "acrida"
acrida.user { name = "Bad", wait_time = 0.005,
  tasks = { function(self) self.client:get("/status/500") end } }
"""


class WebMaster(Daemon):
    """acrida-master in web mode on ephemeral ports; .web is the base URL of its API."""

    def __init__(self, tmp_path, args, name="master", scheme="http", web_host=None):
        pf = str(tmp_path / (name + ".ports"))
        extra = [] if web_host is None else ["--web-host", web_host]
        super().__init__([binary("acrida-master")] + list(args) + extra + [
            "--web-port", "0", "--master-bind-host", "127.0.0.1", "--master-bind-port", "0",
            "--port-file", pf], tmp_path, name)
        self.port_file = pf
        wait_for(lambda: read_port_file(pf, "master") or (not self.alive() and _died(self)),
                 what="master port file")
        self.web_port = read_port_file(pf, "web")
        self.web = "%s://127.0.0.1:%d" % (scheme, self.web_port)

    def wait_exit(self, timeout=300):
        """The exit status once the process ended on its own (a hang fails the test)."""
        self.proc.wait(timeout)
        return self.stop()


def http(url, method="GET", form=None, auth=None, ctx=None):
    """(status, body bytes) of one request; HTTP errors are answers, not exceptions."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=60, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def stats(m, **kw):
    status, body = http(m.web + "/stats/requests", **kw)
    assert status == 200, (status, body[:500])
    return json.loads(body)


def wait_state(m, state, **kw):
    return wait_for(lambda: (not m.alive() and _died(m)) or
                    (lambda d: d if d["state"] == state else None)(stats(m, **kw)),
                    what="state %s" % state)


def csv_total(path):
    """(requests, failures) of the Aggregated row of a _stats.csv file."""
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["Name"] == "Aggregated"]
    assert len(rows) == 1, rows
    return int(rows[0]["Request Count"]), int(rows[0]["Failure Count"])


def listening_addresses(port):
    """The local addresses of the sockets listening on TCP @port (from /proc/net/tcp{,6})."""
    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(name):
            continue
        with open(name) as f:
            next(f)
            for line in f:
                fields = line.split()
                addr, p = fields[1].split(":")
                if fields[3] == "0A" and int(p, 16) == port:
                    found.add(addr)
    return found


def test_web_mode_serves_with_workers_on_loopback(tmp_path, target):
    sc = write_scenario(tmp_path, OK)
    m = WebMaster(tmp_path, ["-f", sc, "-H", target.url, "--local-workers", "2"])
    try:
        assert m.web_port and m.web_port != 8089
        doc = wait_for(lambda: (lambda d: d if len(d["workers"]) == 2 and
                                all(w["state"] == "ready" for w in d["workers"]) else None)(
            stats(m)), what="two ready workers in /stats/requests")
        assert doc["state"] == "ready"
        assert doc["user_count"] == 0
        # the default bind is loopback only, and the log says where the dashboard is
        assert listening_addresses(m.web_port) == {"0100007F"}, listening_addresses(m.web_port)
        assert "Starting web interface at http://127.0.0.1:%d" % m.web_port in m.log()
        assert "without --web-auth" not in m.log()
    finally:
        rc = m.stop()
    # SIGTERM with no test: the workers quit, the process ends as a headless run without failures
    assert rc == 0, m.log()[-3000:]
    assert "Shutting down (exit code 0)" in m.log()


def test_non_loopback_dashboard_without_auth_warns(tmp_path):
    sc = write_scenario(tmp_path, OK)
    m = WebMaster(tmp_path, ["-f", sc], web_host="0.0.0.0")
    try:
        assert stats(m)["state"] == "ready"
        assert "reachable from the network without --web-auth" in m.log(), m.log()
    finally:
        assert m.stop() == 0, m.log()[-3000:]


@pytest.mark.parametrize("scenario, code", [(OK, 0), (FAILING, 1)])
def test_autostart_and_autoquit_end_with_the_headless_exit_code(tmp_path, target, scenario, code):
    """--autostart starts -u users at once with the UI up; /stop ends the test and --autoquit 0
    ends the process: exit 0, or --exit-code-on-error's 1 after failures."""
    sc = write_scenario(tmp_path, scenario)
    m = WebMaster(tmp_path, ["-f", sc, "-H", target.url, "--local-workers", "1", "-u", "2",
                             "-r", "2", "--autostart", "--autoquit", "0", "--csv", "out",
                             "--json"])
    try:
        wait_for(lambda: target.counts()["served"] > 50 or (not m.alive() and _died(m)),
                 what="requests from the autostarted test")
        d = stats(m)
        assert d["state"] in ("spawning", "running"), d["state"]
        status, body = http(m.web + "/stop")
        assert status == 200, body
        rc = m.wait_exit()
    finally:
        m.stop()
    assert rc == code, m.log()[-3000:]
    assert "--autoquit time reached" in m.log()
    served = target.counts()["served"]
    requests, failures = csv_total(str(tmp_path / "out_stats.csv"))
    assert requests == served
    assert failures == (served if code else 0)
    doc = json.loads(m.stdout())
    assert doc["state"] == "stopped"


def test_two_tests_in_a_row_with_the_same_workers(tmp_path, target):
    sc = write_scenario(tmp_path, OK)
    m = WebMaster(tmp_path, ["-f", sc, "-H", target.url, "--local-workers", "2", "--csv", "out"])
    try:
        first = wait_for(lambda: (lambda d: d if len(d["workers"]) == 2 else None)(stats(m)),
                         what="two workers")
        ids = sorted(w["id"] for w in first["workers"])
        served = 0
        for test in range(2):
            status, body = http(m.web + "/swarm", "POST", {"user_count": 3, "spawn_rate": 3})
            assert status == 200 and json.loads(body)["success"], body
            wait_for(lambda: target.counts()["served"] > served + 50 or
                     (not m.alive() and _died(m)), what="requests of test %d" % test)
            status, body = http(m.web + "/stop", "POST")
            assert status == 200, body
            wait_state(m, "stopped")
            now = target.counts()["served"]
            # each stop writes the files at once; a new test starts from fresh stats
            wait_for(lambda: os.path.exists(str(tmp_path / "out_stats.csv")) and
                     csv_total(str(tmp_path / "out_stats.csv"))[0] == now - served,
                     what="the CSV of test %d" % test)
            served = now
            # the same workers, still connected, back to ready for the next test
            wait_for(lambda: (lambda d: sorted(w["id"] for w in d["workers"]) == ids and
                              all(w["state"] == "ready" for w in d["workers"]))(stats(m)),
                     what="workers ready again after test %d" % test)
        assert m.log().count("started local worker pid") == 2
    finally:
        rc = m.stop()
    assert rc == 0, m.log()[-3000:]


def test_sigterm_during_a_web_test_writes_exact_csv(tmp_path, target):
    sc = write_scenario(tmp_path, OK)
    m = WebMaster(tmp_path, ["-f", sc, "-H", target.url, "--local-workers", "2", "--csv", "out"])
    try:
        wait_for(lambda: len(stats(m)["workers"]) == 2, what="two workers")
        status, body = http(m.web + "/swarm", "POST", {"user_count": 4, "spawn_rate": 4})
        assert status == 200, body
        wait_for(lambda: target.counts()["served"] > 200 or (not m.alive() and _died(m)),
                 what="load to start")
        m.proc.send_signal(signal.SIGTERM)
        rc = m.wait_exit()
    finally:
        m.stop()
    assert rc == 0, m.log()[-3000:]
    assert "Got SIGTERM signal" in m.log()
    requests, failures = csv_total(str(tmp_path / "out_stats.csv"))
    assert requests == target.counts()["served"] and failures == 0
    with open(str(tmp_path / "out_lost_reports.csv"), newline="") as f:
        assert list(csv.reader(f))[-1] == ["Aggregated", "0"]


def test_https_dashboard(tmp_path):
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=localhost"], check=True,
                   capture_output=True, timeout=120)
    sc = write_scenario(tmp_path, OK)
    m = WebMaster(tmp_path, ["-f", sc, "--tls-cert", cert, "--tls-key", key], scheme="https")
    try:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        assert stats(m, ctx=ctx)["state"] == "ready"
        assert "Starting web interface at https://127.0.0.1:%d" % m.web_port in m.log()
        # plain HTTP on the HTTPS port gets no answer that looks like the API
        try:
            status, _ = http("http://127.0.0.1:%d/stats/requests" % m.web_port)
            assert status != 200
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        assert m.alive()
    finally:
        assert m.stop() == 0, m.log()[-3000:]


def test_web_auth(tmp_path):
    sc = write_scenario(tmp_path, OK)
    m = WebMaster(tmp_path, ["-f", sc, "--web-auth", "user:s3cret"])
    try:
        status, _ = http(m.web + "/stats/requests")
        assert status == 401
        status, _ = http(m.web + "/stats/requests", auth="user:wrong")
        assert status == 401
        status, _ = http(m.web + "/", auth="user:wrong")
        assert status == 401
        assert stats(m, auth="user:s3cret")["state"] == "ready"
    finally:
        assert m.stop() == 0, m.log()[-3000:]


def test_failed_check_in_web_mode_exits_3(tmp_path, target):
    sc = write_scenario(tmp_path, OK)
    m = WebMaster(tmp_path, ["-f", sc, "-H", target.url, "--local-workers", "1", "-u", "1",
                             "-r", "1", "--autostart", "--autoquit", "0",
                             "--check", "requests>0", "--check", "fail_ratio>0.5"])
    try:
        wait_for(lambda: target.counts()["served"] > 20 or (not m.alive() and _died(m)),
                 what="requests from the autostarted test")
        status, body = http(m.web + "/stop")
        assert status == 200, body
        rc = m.wait_exit()
    finally:
        m.stop()
    assert rc == 3, m.log()[-3000:]
    out = m.stdout()
    assert "check requests>0: passed" in out, out
    assert "check fail_ratio>0.5: FAILED" in out, out
    # the check line comes after the final tables
    assert out.index("Aggregated") < out.index("check fail_ratio>0.5")


def test_malformed_check_is_a_usage_error_before_anything_starts(tmp_path):
    sc = write_scenario(tmp_path, OK)
    pf = str(tmp_path / "ports")
    p = subprocess.run([binary("acrida-master"), "-f", sc, "--check", "p95<3xx", "--web-port",
                        "0", "--port-file", pf], capture_output=True, timeout=120,
                       cwd=str(tmp_path))
    assert p.returncode == 2, p.stderr
    assert b"--check 'p95<3xx'" in p.stderr, p.stderr
    assert not os.path.exists(pf)
