"""Browser tests of the dashboard: the real acrida-master in web mode with two local workers against
acrida-target, driven in Debian's headless Chromium by tests/browser/dashboard.js (playwright-core
from node_modules/, installed by `make deps`).

Screenshots of every tab go to $ACRIDA_ARTIFACTS (default: $ACRIDA_BUILD/artifacts/browser); with
ACRIDA_UPDATE_SCREENSHOTS=1 the full flow's screenshots are also copied into docs/img/, which
docs/dashboard.md shows.
"""
import base64
import http.client
import http.server
import importlib.util
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "acr_integration_helpers", os.path.join(HERE, "..", "integration", "conftest.py"))
H = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(H)

ROOT = H.ROOT
NODE = shutil.which("node") or "/usr/bin/node"
ARTIFACTS = os.environ.get("ACRIDA_ARTIFACTS") or os.path.join(os.path.abspath(H.BUILD), "artifacts",
                                                               "browser")
DOC_SHOTS = ("dashboard-statistics", "dashboard-charts", "dashboard-failures",
             "dashboard-exceptions", "dashboard-workers", "dashboard-ratios", "dashboard-download",
             "dashboard-charts-dark")

SCENARIO = """
local acrida = require "acrida"

acrida.user {
  name = "Shopper",
  wait_time = acrida.between(0.05, 0.1),
  tasks = {
    { weight = 4, name = "index", fn = function(self) self.client:get("/") end },
    -- acrida-target answers 404 here: the Failures tab has a row
    { weight = 1, name = "missing", fn = function(self) self.client:get("/no/such/page") end },
    -- a name with markup, shown as text
    { weight = 1, name = "markup", fn = function(self)
        self.client:get("/echo", { name = "/echo <b>bold</b>" })
      end },
    -- a Lua error: the Exceptions tab has a row
    { weight = 1, name = "checkout", fn = function(self)
        error("checkout <service> unavailable")
      end },
  },
}
"""


def _prerequisites():
    missing = [p for p in (NODE, "/usr/bin/chromium",
                           os.path.join(ROOT, "node_modules", "playwright-core", "package.json"))
               if not os.path.exists(p)]
    assert not missing, "missing %s: run 'make deps' (Debian chromium, npm ci)" % ", ".join(missing)


class Master(H.Daemon):
    """acrida-master in web mode on an ephemeral port, two local workers, against @target_url."""

    def __init__(self, tmp_path, target_url, extra=()):
        scenario = H.write_scenario(tmp_path, SCENARIO)
        pf = str(tmp_path / "master.ports")
        super().__init__([H.binary("acrida-master"), "-f", scenario, "--web-host", "127.0.0.1",
                          "--web-port", "0", "--port-file", pf, "--local-workers", "2",
                          "-H", target_url, "--master-bind-host", "127.0.0.1",
                          "--master-bind-port", "0", "--exit-code-on-error", "0"] + list(extra),
                         tmp_path, "master")
        self.web_port = H.wait_for(lambda: H.read_port_file(pf, "web") or
                                   (not self.alive() and H._died(self)),
                                   what="the master's web port in its port file")
        self.url = "http://127.0.0.1:%d/" % self.web_port


@pytest.fixture
def target(tmp_path):
    t = H.Target(tmp_path)
    yield t
    assert t.stop() == 0, t.log()


@pytest.fixture
def artifacts():
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS


def run_browser(mode, url, artifacts, creds=None):
    _prerequisites()
    args = [NODE, os.path.join(HERE, "dashboard.js"), mode, url, artifacts]
    if creds:
        args.append(creds)
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, "dashboard.js %s failed (rc %d):\n%s\n%s" % (
        mode, p.returncode, p.stdout[-6000:], p.stderr[-6000:])
    return p.stdout


def stop_master(m):
    rc = m.stop()
    assert rc == 0, "acrida-master exited %s:\n%s" % (rc, m.log()[-4000:])


def test_dashboard_full_flow(tmp_path, target, artifacts):
    m = Master(tmp_path, target.url)
    try:
        run_browser("full", m.url, artifacts)
    finally:
        stop_master(m)
    counts = target.counts()
    assert counts["by_status"].get("404", 0) > 0, counts
    if os.environ.get("ACRIDA_UPDATE_SCREENSHOTS") == "1":
        img = os.path.join(ROOT, "docs", "img")
        os.makedirs(img, exist_ok=True)
        for name in DOC_SHOTS:
            shutil.copyfile(os.path.join(artifacts, name + ".png"), os.path.join(img, name + ".png"))


def _get(url, auth=None):
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_dashboard_web_auth(tmp_path, target, artifacts):
    creds = "admin:s3cret"
    m = Master(tmp_path, target.url, ["--web-auth", creds])
    try:
        # Every route, the static assets included, wants the credentials.
        for path in ("", "static/app.js", "static/uPlot.iife.min.js", "stats/requests"):
            assert _get(m.url + path)[0] == 401, path
            assert _get(m.url + path, "admin:wrong")[0] == 401, path
            assert _get(m.url + path, creds)[0] == 200, path
        run_browser("auth", m.url, artifacts, creds)
    finally:
        stop_master(m)


class _PrefixProxy(http.server.ThreadingHTTPServer):
    """A reverse proxy that serves the master under /acrida/ (as a front web server would)."""
    daemon_threads = True

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.seen = []
        super().__init__(("127.0.0.1", 0), _PrefixHandler)


class _PrefixHandler(http.server.BaseHTTPRequestHandler):
    PREFIX = "/acrida"
    HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
           "proxy-authorization", "proxy-authenticate", "host", "content-length"}

    def log_message(self, *args):
        pass

    def _proxy(self):
        self.server.seen.append(self.path)
        if not self.path.startswith(self.PREFIX + "/"):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = None
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            body = self.rfile.read(n)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in self.HOP}
        conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=60)
        try:
            conn.request(self.command, self.path[len(self.PREFIX):], body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in self.HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_HEAD = _proxy


def test_dashboard_behind_path_prefix(tmp_path, target, artifacts):
    m = Master(tmp_path, target.url)
    proxy = _PrefixProxy(m.web_port)
    t = threading.Thread(target=proxy.serve_forever, daemon=True)
    t.start()
    try:
        url = "http://127.0.0.1:%d/acrida/" % proxy.server_address[1]
        run_browser("prefix", url, artifacts)
        outside = [p for p in proxy.seen if not p.startswith("/acrida/")]
        assert not outside, outside
        assert any(p == "/acrida/swarm" for p in proxy.seen), proxy.seen
        assert any(p.startswith("/acrida/stats/requests") for p in proxy.seen), proxy.seen
        assert any(p == "/acrida/static/uPlot.iife.min.js" for p in proxy.seen), proxy.seen
    finally:
        proxy.shutdown()
        proxy.server_close()
        t.join(60)
        stop_master(m)
