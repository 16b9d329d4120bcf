"""Integration-test helpers: start the real binaries on port 0, learn ports from --port-file,
wait on readiness with a deadline (never a fixed sleep), stop by PID (TERM, then KILL), and fail a
test when a daemon died of something other than the expected exit (how sanitizer aborts surface).
"""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

BUILD = os.environ.get("ACRIDA_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SAN = os.environ.get("ACRIDA_SAN") == "1"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SAN_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def binary(name):
    return os.path.join(BUILD, name)


def wait_for(predicate, timeout=120.0, what="condition"):
    """Polls @predicate until it returns a true value; fails the test after @timeout seconds (a
    deadline for a machine made 5-10x slower by the sanitizers and a busy CPU, never a wait)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(0.02)


def free_port():
    """A loopback port that was free a moment ago, for a peer that must know the port before its
    server exists (so it cannot come from a port file). Another process taking it in between makes
    the server exit 1 saying so: a failed test, never a false pass."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_port_file(path, key):
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                if k == key and v:
                    return int(v)
    except FileNotFoundError:
        return None
    return None


def assert_no_sanitizer_report(text, who):
    for m in SAN_MARKERS:
        assert m not in text, "%s: sanitizer report:\n%s" % (who, text[-4000:])


class Daemon:
    """A background process whose stderr goes to a file; stop() returns its exit status."""

    def __init__(self, args, tmp_path, name, env=None):
        self.name = name
        self.log_path = str(tmp_path / (name + ".log"))
        self.out_path = str(tmp_path / (name + ".out"))
        self._log = open(self.log_path, "wb")
        self._out = open(self.out_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._out, stderr=self._log, cwd=str(tmp_path),
                                     env=env)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stdout(self):
        with open(self.out_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=120):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("%s ignored SIGTERM for %d s" % (self.name, timeout))
        self._log.close()
        self._out.close()
        assert_no_sanitizer_report(self.log(), self.name)
        return self.proc.returncode


class WebApi:
    """The HTTP API of a master in web mode, for a class with .web (its base URL)."""

    def http(self, path, form=None):
        """(status, body bytes): a GET, or a form POST with @form; HTTP errors are answers."""
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(self.web + path, data=data, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def stats(self):
        status, body = self.http("/stats/requests")
        assert status == 200, (status, body[:300])
        return json.loads(body)


class Target(Daemon):
    def __init__(self, tmp_path, extra=()):
        pf = str(tmp_path / "target.port")
        super().__init__([binary("acrida-target"), "--port", "0", "--port-file", pf] + list(extra),
                         tmp_path, "target")
        self.port = wait_for(lambda: self.alive() and read_port_file(pf, "port") or
                             (not self.alive() and _died(self)), what="acrida-target port file")
        self.url = "http://127.0.0.1:%d" % self.port

    def counts(self):
        with urllib.request.urlopen(self.url + "/_count", timeout=60) as r:
            return json.load(r)


def _died(d):
    raise AssertionError("%s exited early (%s):\n%s" % (d.name, d.proc.returncode, d.log()))


def start_master(tmp_path, args, name="master"):
    """Starts acrida-master in the background with @args, its ZeroMQ port bound to an ephemeral
    loopback port; returns (daemon, port) once the port file says the port is bound."""
    pf = str(tmp_path / (name + ".ports"))
    d = Daemon([binary("acrida-master")] + list(args) + ["--master-bind-host", "127.0.0.1",
               "--master-bind-port", "0", "--port-file", pf], tmp_path, name)
    port = wait_for(lambda: read_port_file(pf, "master") or (not d.alive() and _died(d)),
                    what="master port file")
    return d, port


@pytest.fixture
def target(tmp_path):
    t = Target(tmp_path)
    yield t
    rc = t.stop()
    assert rc == 0, "acrida-target exited with %s:\n%s" % (rc, t.log())


def write_scenario(tmp_path, text, name="scenario.lua"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def run_master(tmp_path, args, timeout=300, env=None):
    """Runs acrida-master to completion (with @env as its whole environment if given); returns
    (returncode, stdout, stderr) after checking stderr for sanitizer reports."""
    cmd = [binary("acrida-master")] + args
    p = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True, timeout=timeout, env=env)
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    assert_no_sanitizer_report(err, "acrida-master")
    assert p.returncode >= 0, "acrida-master killed by signal %d:\n%s" % (-p.returncode, err[-4000:])
    return p.returncode, out, err


def run_master_until(tmp_path, args, done, what, timeout=300, env=None):
    """Runs acrida-master with @args (whose -t is only a deadline) until done() is true, then stops
    it with SIGTERM, a graceful stop whose counts are exact; returns (returncode, stdout, stderr).
    For tests that need some requests to have happened: they wait for them, not for a run time."""
    d = Daemon([binary("acrida-master")] + list(args), tmp_path, "master", env=env)
    try:
        wait_for(lambda: done() or (not d.alive() and _died(d)), timeout=timeout, what=what)
    finally:
        rc = d.stop(timeout=120)
    assert rc >= 0, "acrida-master killed by signal %d:\n%s" % (-rc, d.log()[-4000:])
    return rc, d.stdout(), d.log()


def marks_env(tmp_path, env=None):
    """The environment for a scenario that uses MARK (below) to tell the test what it has done. The
    variable has no ACRIDA_ prefix: the master keeps its ACRIDA_* variables from local workers
    (master/local.c)."""
    d = tmp_path / "marks"
    d.mkdir(exist_ok=True)
    return dict(env if env is not None else os.environ, TEST_MARKS_DIR=str(d))


def marked(tmp_path, *names):
    """True once the scenario has written every mark in @names."""
    return all((tmp_path / "marks" / n).exists() for n in names)


def count_marks(tmp_path, prefix):
    """How many marks whose names start with @prefix the scenario has written (one per user, say)."""
    d = tmp_path / "marks"
    return sum(1 for n in os.listdir(d) if n.startswith(prefix)) if d.exists() else 0


# Lua for scenarios: mark("x") creates the file x in $TEST_MARKS_DIR (see marks_env).
MARK = """
local function mark(name)
  local f = assert(io.open(os.getenv("TEST_MARKS_DIR") .. "/" .. name, "w"))
  f:close()
end
"""


def headless(scenario, host, users, rate, run_time, workers=2, extra=()):
    return ["-f", scenario, "-H", host, "-u", str(users), "-r", str(rate), "-t", run_time,
            "--headless", "--local-workers", str(workers), "--master-bind-host", "127.0.0.1",
            "--master-bind-port", "0"] + list(extra)


def aggregated(doc):
    rows = [r for r in doc["stats"] if r["name"] == "Aggregated"]
    assert len(rows) == 1, doc["stats"]
    return rows[0]


def row(doc, method, name):
    rows = [r for r in doc["stats"] if r["name"] == name and r["method"] == method]
    assert len(rows) == 1, "no single row %s %s in %s" % (method, name, [(r["method"], r["name"]) for r in doc["stats"]])
    return rows[0]
