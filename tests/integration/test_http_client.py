"""Issue #3: the HTTP client against targets that behave well and badly. One scenario probes every
behaviour in one user's task (each request under its own stats name); the tests then assert the
per-entry counts and the exact failure messages from the master's JSON document."""
import html
import json
import os
import signal
import subprocess

import pytest

from conftest import (MARK, Target, _died, aggregated, headless, marked, marks_env,
                      run_master_until, start_master, wait_for, write_scenario)

PROBE = r"""
local acrida = require "acrida"
local cjson = require "cjson"
""" + MARK + r"""

local function expect(cond, msg) return cond, msg end

acrida.user {
  name = "Probe",
  wait_time = acrida.constant(0.01),
  tasks = { function(self)
    local c = self.client
    -- cookie jar: Set-Cookie is sent back on later requests to the same host
    c:get("/cookies/set?session=abc123&lang=en", { name = "cookies-set" })
    c:get("/cookies", { name = "cookies-echo", check = function(r)
      local j = r:json()
      return j.cookies.session == "abc123" and j.cookies.lang == "en", "cookies not sent: " .. r.body
    end })
    -- redirects: followed up to 5, stats under the first URL's name, r.url the final URL
    c:get("/redirect/3", { name = "redirect-3", check = function(r)
      return r.status == 200 and r.url:sub(-1) == "/", "redirect not followed: " .. r.status .. " " .. tostring(r.url)
    end })
    c:get("/redirect/9", { name = "redirect-9" })
    c:get("/redirect/1", { name = "redirect-off", allow_redirects = false, check = function(r)
      return r.status == 302 and r.headers["location"] ~= nil, "status " .. r.status
    end })
    -- bodies
    c:get("/chunked/5000", { name = "chunked", check = function(r)
      return #r.body == 5000, "chunked body of " .. #r.body .. " bytes"
    end })
    c:head("/bytes/1000", { name = "head", check = function(r)
      return r.status == 200 and #r.body == 0 and r.headers["content-length"] == "1000", "head body " .. #r.body
    end })
    c:get("/status/204", { name = "204", check = function(r) return r.status == 204 and #r.body == 0, "204" end })
    c:get("/status/304", { name = "304", check = function(r) return r.status == 304 and #r.body == 0, "304" end })
    -- request building: json, form, query, headers, User-Agent
    c:post("/echo", { name = "echo-json", json = { a = 1 }, check = function(r)
      local j = r:json()
      return j.method == "POST" and j.headers["content-type"] == "application/json" and cjson.decode(j.body).a == 1, r.body
    end })
    c:put("/echo", { name = "echo-form", form = { x = "1 2" }, check = function(r)
      local j = r:json()
      return j.method == "PUT" and j.headers["content-type"] == "application/x-www-form-urlencoded"
        and (j.body == "x=1+2" or j.body == "x=1%202"), r.body
    end })
    c:get("/echo", { name = "echo-query", query = { q = "a b" }, headers = { ["X-Test"] = "yes" }, check = function(r)
      local j = r:json()
      return (j.query == "q=a+b" or j.query == "q=a%20b") and j.headers["x-test"] == "yes"
        and j.headers["user-agent"]:match("^acrida/") ~= nil, r.body
    end })
    -- per-phase timings
    c:get("/delay/20", { name = "timings", check = function(r)
      local t = r.timings
      return t.ttfb >= 19 and t.total >= t.ttfb and r.elapsed >= 19, "timings " .. cjson.encode(t)
    end })
    -- verdicts
    local r = c:get("/status/404", { name = "catch-success", catch_response = true })
    r:success()
    r = c:get("/", { name = "catch-failure", catch_response = true })
    r:failure("custom failure")
    c:get("/status/503", { name = "catch-default", catch_response = true })
    c:get("/", { name = "check-fail", check = function(r) return false, "nope" end })
    -- hostile behaviour: each a failure with a clear message, then the next request reconnects
    c:get("/reset", { name = "reset" })
    c:get("/truncate", { name = "truncate" })
    c:get("/garbage", { name = "garbage" })
    c:get("/hang", { name = "hang", timeout = 0.3 })
    c:get("/bighdr", { name = "bighdr" })
    c:get("/close", { name = "close" })
    c:get("/", { name = "after" })
    mark("probe-done")
  end },
}
"""

OK_NAMES = ["cookies-set", "cookies-echo", "redirect-3", "redirect-off", "chunked", "head", "204",
            "304", "echo-json", "echo-form", "echo-query", "timings", "catch-success", "close",
            "after"]
FAILURES = {
    "redirect-9": "too many redirects (5)",
    "catch-failure": "custom failure",
    "catch-default": "HTTP 503",
    "check-fail": "nope",
    "reset": "connection reset by peer",
    "truncate": "connection closed before the response completed",
    "garbage": "malformed response: ",
    "hang": "timeout after 0.3 s",
    "bighdr": "malformed response: headers exceed 64 KiB",
}


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe")
    t = Target(tmp)
    try:
        sc = write_scenario(tmp, PROBE, "probe.lua")
        rc, out, err = run_master_until(tmp, headless(sc, t.url, 1, 1, "10m", workers=1,
                                                      extra=["--json", "--csv", "p"]),
                                        lambda: marked(tmp, "probe-done"), "one run of the probe",
                                        env=marks_env(tmp))
        counts = t.counts()
    finally:
        assert t.stop() == 0, t.log()
    return rc, json.loads(out), err, counts


def entry(doc, name):
    rows = [r for r in doc["stats"] if r["name"] == name]
    assert len(rows) == 1, "entry %r: %s" % (name, [r["name"] for r in doc["stats"]])
    return rows[0]


def errors_of(doc, name):
    return [html.unescape(e["error"]) for e in doc["errors"] if html.unescape(e["name"]) == name]


def test_well_behaved_requests_succeed(probe):
    rc, doc, err, counts = probe
    for name in OK_NAMES:
        e = entry(doc, name)
        assert e["num_requests"] >= 1 and e["num_failures"] == 0, (name, e, errors_of(doc, name))


@pytest.mark.parametrize("name", sorted(FAILURES))
def test_failures_have_clear_messages(probe, name):
    rc, doc, err, counts = probe
    e = entry(doc, name)
    assert e["num_requests"] >= 1 and e["num_failures"] == e["num_requests"], (name, e)
    errs = errors_of(doc, name)
    assert errs and all(x.startswith(FAILURES[name]) for x in errs), (name, errs)


def test_every_request_recorded_once(probe):
    rc, doc, err, counts = probe
    # Redirect hops are served by the target but are one request to the user: 4 extra hops for
    # redirect-3 (/redirect/3, 2, 1, 0, then /) and 5 for redirect-9 (stopped at the limit). The
    # /hang request is recorded (a timeout) but the target counts it apart from served. The stop may
    # land anywhere in a task run, so every term is counted, none assumed per run.
    hops = 4 * entry(doc, "redirect-3")["num_requests"] + 5 * entry(doc, "redirect-9")["num_requests"]
    assert aggregated(doc)["num_requests"] + hops == counts["served"] + counts["hung"], \
        (aggregated(doc)["num_requests"], hops, counts)
    assert entry(doc, "hang")["num_requests"] == counts["hung"], counts
    assert rc == 1


def make_certs(d):
    """A CA, a certificate for localhost signed by it, and a self-signed one."""
    def run(*a):
        subprocess.run(a, check=True, cwd=d, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=acrida test CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost\n")
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "self.key", "-out", "self.pem", "-days", "2", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost")


TLS = r"""
local acrida = require "acrida"
""" + MARK + r"""
local port = os.getenv("TLS_PORT")
acrida.user {
  name = "Tls",
  wait_time = acrida.constant(0.01),
  tasks = { function(self)
    self.client:get("https://localhost:" .. port .. "/", { name = "verified" })
    self.client:get("https://127.0.0.1:" .. port .. "/", { name = "wrong-name" })
    mark("tls-done")
  end },
}
acrida.user {
  name = "Insecure",
  insecure = true,
  wait_time = acrida.constant(0.01),
  tasks = { function(self)
    self.client:get("https://127.0.0.1:" .. port .. "/", { name = "insecure" })
    mark("insecure-done")
  end },
}
"""


def run_tls(tmp_path, cert, key, env_extra):
    t = Target(tmp_path, ["--tls-cert", cert, "--tls-key", key])
    try:
        sc = write_scenario(tmp_path, TLS, "tls.lua")
        env = marks_env(tmp_path, dict(os.environ, TLS_PORT=str(t.port), **env_extra))
        rc, out, err = run_master_until(tmp_path, headless(sc, "https://localhost", 2, 2, "10m",
                                                           workers=1, extra=["--json"]),
                                        lambda: marked(tmp_path, "tls-done", "insecure-done"),
                                        "a task of each TLS user", env=env)
    finally:
        assert t.stop() == 0, t.log()
    return rc, json.loads(out), err


def test_tls_verification_against_trusted_ca(tmp_path):
    make_certs(str(tmp_path))
    rc, doc, err = run_tls(tmp_path, str(tmp_path / "srv.pem"), str(tmp_path / "srv.key"),
                           {"SSL_CERT_FILE": str(tmp_path / "ca.pem")})
    assert entry(doc, "verified")["num_failures"] == 0 and entry(doc, "verified")["num_requests"] > 0, err[-2000:]
    assert entry(doc, "insecure")["num_failures"] == 0
    wrong = errors_of(doc, "wrong-name")
    assert wrong and wrong[0].startswith("TLS handshake failed: certificate verify failed"), wrong
    # The certificate names localhost only, so 127.0.0.1 does not match it.
    assert wrong[0] == "TLS handshake failed: certificate verify failed (IP address mismatch)", wrong
    assert rc == 1, "exit code %d, expected 1 because of the wrong-name failures\n%s" % (rc, err[-3000:])


def test_tls_self_signed_rejected_by_default(tmp_path):
    make_certs(str(tmp_path))
    rc, doc, err = run_tls(tmp_path, str(tmp_path / "self.pem"), str(tmp_path / "self.key"), {})
    errs = errors_of(doc, "verified")
    assert errs == ["TLS handshake failed: certificate verify failed (self-signed certificate)"], errs
    assert entry(doc, "insecure")["num_failures"] == 0 and entry(doc, "insecure")["num_requests"] > 0
    assert rc == 1, "exit code %d, expected 1 because of the verification failures\n%s" % (rc, err[-3000:])


@pytest.mark.skipif(os.environ.get("ACRIDA_SAN") == "1", reason="valgrind cannot run ASan binaries")
def test_hostile_targets_under_valgrind(tmp_path):
    """The worker that runs the probe above runs under valgrind: no memory error, no leak."""
    from conftest import Daemon, binary
    t = Target(tmp_path)
    try:
        sc = write_scenario(tmp_path, PROBE, "probe.lua")
        m, port = start_master(tmp_path, ["-f", sc, "-H", t.url, "-u", "1", "-r", "1", "-t",
            "10m", "--headless", "--json", "--expect-workers", "1"])
        w = Daemon(["valgrind", "--error-exitcode=99", "--leak-check=full",
                    "--errors-for-leak-kinds=definite,indirect", "--quiet", binary("acrida-worker"),
                    "--exit-on-quit", "--master-host", "127.0.0.1", "--master-port", str(port)], tmp_path, "worker",
                   env=marks_env(tmp_path))
        wait_for(lambda: marked(tmp_path, "probe-done") or (not m.alive() and _died(m)),
                 timeout=300, what="one run of the probe under valgrind")
        m.proc.send_signal(signal.SIGTERM)
        m.proc.wait(timeout=120)
        w.proc.wait(timeout=120)
        assert w.stop() == 0, "valgrind found errors:\n" + w.log()[-4000:]
        assert m.stop() == 1, m.log()[-2000:]
        doc = json.loads(m.stdout())
    finally:
        t.stop()
    for name, msg in FAILURES.items():
        errs = errors_of(doc, name)
        assert errs and all(x.startswith(msg) for x in errs), (name, errs)


def test_body_cap_keeps_counting(tmp_path, target):
    """--max-body-size bounds what r.body keeps; the bytes beyond it are still read and counted."""
    sc = write_scenario(tmp_path, r"""
local acrida = require "acrida"
""" + MARK + r"""
acrida.user { name = "Big", tasks = { function(self)
  self.client:get("/bytes/100000", { name = "big", check = function(r)
    return #r.body == 1000 and r.content_length == 100000, "kept " .. #r.body .. " of " .. r.content_length
  end })
  mark("big")
end } }
""", "cap.lua")
    rc, out, err = run_master_until(tmp_path, headless(sc, target.url, 1, 1, "10m", workers=1,
                                                       extra=["--json", "--max-body-size", "1000"]),
                                    lambda: marked(tmp_path, "big"), "one capped response",
                                    env=marks_env(tmp_path))
    doc = json.loads(out)
    e = entry(doc, "big")
    assert e["num_requests"] > 0 and e["num_failures"] == 0, (e, errors_of(doc, "big"))
    assert e["avg_content_length"] == 100000, e
    assert rc == 0, err[-2000:]
