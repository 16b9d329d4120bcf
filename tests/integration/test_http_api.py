"""The master's HTTP API (docs/http-api.md) over a real socket: every route, /swarm's two spellings
with form and JSON bodies, bad input answered 400 naming the field while the running test goes on
untouched, edits of the running test, stop, reset, 404/405, auth, Locust's exact CSV headers, and
the final /stats/requests count equal to what the target served. Every wait is for an event (a
state, a user count, the target's count), never for a time."""
import base64
import csv
import io
import json
import re
import socket
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import _died, aggregated, read_port_file, start_master, wait_for, write_scenario

SCENARIO = """
local acrida = require "acrida"
acrida.user {
  name = "Reader",
  wait_time = 0.005,
  tasks = {
    { name = "browse", weight = 3, fn = function(self) self.client:get("/", { name = "/reader" }) end },
    { name = "fail", weight = 1, fn = function(self) self.client:get("/status/500", { name = "/fail" }) end },
  },
}
acrida.user {
  name = "Raiser",
  wait_time = 0.005,
  tasks = {
    function(self)
      self.client:get("/", { name = "/raiser" })
      error("boom <b>")
    end,
  },
}
"""

STATS_HEADER = ("Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
                "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
                "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%")
HISTORY_HEADER = ("Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,"
                  "98%,99%,99.9%,99.99%,100%,Total Request Count,Total Failure Count,"
                  "Total Median Response Time,Total Average Response Time,"
                  "Total Min Response Time,Total Max Response Time,Total Average Content Size")
FAILURES_HEADER = "Method,Name,Error,Occurrences"
EXCEPTIONS_HEADER = "Count,Message,Traceback,Nodes"


class Api:
    """A master in web mode: its daemon and the base URL of its API."""

    def __init__(self, tmp_path, target, extra=(), local_workers=2, auth=None):
        scenario = write_scenario(tmp_path, SCENARIO)
        args = ["-f", scenario, "--web-port", "0", "-H", target.url] + list(extra)
        if local_workers:
            args += ["--local-workers", str(local_workers)]
        self.daemon, _ = start_master(tmp_path, args)
        pf = str(tmp_path / "master.ports")
        port = wait_for(lambda: read_port_file(pf, "web") or
                        (not self.daemon.alive() and _died(self.daemon)), what="web port")
        self.base = "http://127.0.0.1:%d" % port
        self.auth = auth

    def request(self, path, method="GET", body=None, ctype=None, headers=None, auth=True):
        """(status, headers, body bytes); HTTP errors are answers, not exceptions."""
        if isinstance(body, dict):
            body, ctype = urllib.parse.urlencode(body, doseq=True).encode(), \
                ctype or "application/x-www-form-urlencoded"
        elif isinstance(body, str):
            body = body.encode()
        req = urllib.request.Request(self.base + path, data=body, method=method)
        if ctype:
            req.add_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        if auth and self.auth:
            req.add_header("Authorization",
                           "Basic " + base64.b64encode(self.auth.encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def json(self, path, **kw):
        status, headers, body = self.request(path, **kw)
        assert headers["Content-Type"] == "application/json", (path, headers["Content-Type"])
        assert body.endswith(b"}\n") or body.endswith(b"]\n"), body[-50:]
        return status, json.loads(body)

    def stats(self):
        status, doc = self.json("/stats/requests")
        assert status == 200
        return doc

    def swarm(self, fields=None, raw=None, ctype=None):
        if raw is not None:
            return self.json("/swarm", method="POST", body=raw, ctype=ctype)
        return self.json("/swarm", method="POST", body=fields)

    def swarm_json(self, obj):
        return self.swarm(raw=json.dumps(obj), ctype="application/json")

    def wait(self, pred, what):
        return wait_for(lambda: (not self.daemon.alive() and _died(self.daemon)) or pred(self.stats()),
                        what=what)

    def wait_users(self, n):
        return self.wait(lambda d: d if d["state"] == "running" and d["user_count"] == n and
                         all(w["state"] == "running" for w in d["workers"]) else None,
                         "%d users running" % n)

    def wait_workers(self, n):
        def ready():
            status, doc = self.json("/workers")
            return doc if doc["by_state"]["ready"] == n else None
        return wait_for(lambda: (not self.daemon.alive() and _died(self.daemon)) or ready(),
                        what="%d ready workers" % n)

    def stop(self):
        rc = self.daemon.stop()
        assert rc in (0, 1), "master exited %s:\n%s" % (rc, self.daemon.log()[-3000:])


@pytest.fixture
def api(tmp_path, target):
    a = Api(tmp_path, target, extra=["--csv", str(tmp_path / "run"), "--csv-full-history"])
    a.wait_workers(2)
    yield a
    a.stop()


def raw_status(api, head, body):
    """The status of a request written on a socket as is: @head, then as much of @body as the
    server takes before it answers (a server may answer 413 and close without reading it all)."""
    host, port = api.base[len("http://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(head)
        try:
            s.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split(b" ")[1])


def csv_rows(body):
    text = body.decode()
    assert "\r\n" in text, "Locust's CSV files end their lines with CRLF"
    return list(csv.reader(io.StringIO(text)))


# Every bad /swarm: (form fields or (raw body, content type), status, text the message must name).
BAD_SWARMS = [
    ({"spawn_rate": "1"}, 400, "user_count"),
    ({"user_count": "1"}, 400, "spawn_rate"),
    ({"user_count": "many", "spawn_rate": "1"}, 400, "user_count"),
    ({"user_count": "-1", "spawn_rate": "1"}, 400, "user_count"),
    ({"user_count": "100000000000", "spawn_rate": "1"}, 400, "user_count"),
    ({"locust_count": "1.5", "hatch_rate": "1"}, 400, "locust_count"),
    ({"user_count": "1", "spawn_rate": "NaN"}, 400, "spawn_rate"),
    ({"user_count": "1", "spawn_rate": "-2"}, 400, "spawn_rate"),
    ({"user_count": "1", "hatch_rate": "1e400"}, 400, "hatch_rate"),
    ({"user_count": "1", "spawn_rate": "1", "run_time": "3 days"}, 400, "run_time"),
    ({"user_count": "1", "spawn_rate": "1", "host": "example.com"}, 400, "host"),
    ({"user_count": "1", "spawn_rate": "1", "host": "http://x:99999"}, 400, "host"),
    ({"user_count": "1", "spawn_rate": "1", "user_classes": ["Reader", "Ghost"]}, 400, "Ghost"),
    (('{"user_count": 1, "spawn_rate": ', "application/json"), 400, "JSON"),
    (('[{"user_count": 1, "spawn_rate": 1}]', "application/json"), 400, "object"),
    (('{"user_count": "x", "spawn_rate": 1}', "application/json"), 400, "user_count"),
    (('{"user_count": -5, "spawn_rate": 1}', "application/json"), 400, "user_count"),
    (('{"user_count": 1e12, "spawn_rate": 1}', "application/json"), 400, "user_count"),
    (('{"user_count": 1, "spawn_rate": "nan"}', "application/json"), 400, "spawn_rate"),
    (('{"user_count": 1, "spawn_rate": 1, "run_time": "1x"}', "application/json"), 400,
     "run_time"),
    (('{"user_count": 1, "spawn_rate": 1, "user_classes": ["Nope"]}', "application/json"), 400,
     "Nope"),
    (('{"user_count": 1, "spawn_rate": 1, "host": "ftp://x"}', "application/json"), 400, "host"),
]


def assert_refused(api, case):
    fields, status, needle = case
    if isinstance(fields, tuple):
        got, doc = api.swarm(raw=fields[0], ctype=fields[1])
    else:
        got, doc = api.swarm(fields)
    assert got == status, (case, got, doc)
    assert doc["success"] is False, doc
    assert needle in doc["message"], (case, doc)


def test_routes_and_a_full_run(api, target):
    # the dashboard and its files
    status, headers, body = api.request("/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"<html" in body
    status, headers, body = api.request("/static/app.js")
    assert status == 200 and "javascript" in headers["Content-Type"] and len(body) > 0
    assert api.request("/static/nope.js")[0] == 404
    assert api.request("/static/..%2Fapp.js")[0] in (400, 404)
    assert api.request("/", method="HEAD")[0] == 200

    # unknown route and wrong method: JSON errors
    status, doc = api.json("/no/such/route")
    assert status == 404 and doc["success"] is False
    status, headers, body = api.request("/stats/requests", method="POST", body=b"")
    assert status == 405 and "GET" in headers["Allow"] and json.loads(body)["success"] is False
    status, headers, body = api.request("/swarm")
    assert status == 405 and headers["Allow"].startswith("POST")

    # before any test
    doc = api.stats()
    assert doc["state"] == "ready" and [r["name"] for r in doc["stats"]] == ["Aggregated"]
    assert len(doc["workers"]) == 2
    status, doc = api.json("/exceptions")
    assert status == 200 and doc == {"exceptions": []}
    status, doc = api.json("/tasks")
    assert status == 200
    assert doc["per_class"]["Reader"]["ratio"] == 0.5 and doc["per_class"]["Raiser"]["ratio"] == 0.5
    assert doc["per_class"]["Reader"]["tasks"] == {"browse": {"ratio": 0.75}, "fail": {"ratio": 0.25}}
    assert doc["total"]["Reader"]["tasks"]["browse"]["ratio"] == 0.375
    status, doc = api.json("/stats/history")
    assert status == 200 and isinstance(doc, list)
    status, headers, body = api.request("/metrics")
    assert status == 200 and headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert b"acrida_users" in body

    # bad input before a test: nothing starts
    for case in BAD_SWARMS:
        assert_refused(api, case)
    assert api.stats()["state"] == "ready"

    # start with the form and Locust's names
    status, doc = api.swarm({"user_count": "4", "spawn_rate": "100"})
    assert status == 200, doc
    assert doc == {"success": True, "message": "Swarming started", "host": target.url}
    api.wait_users(4)

    # bad input while running: refused, the test goes on as it was
    for case in BAD_SWARMS + [
            ({"user_count": "1", "spawn_rate": "1", "run_time": "5m"}, 400, "run_time")]:
        assert_refused(api, case)
    assert raw_status(api, b"POST /swarm HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/x-www-form-urlencoded\r\nContent-Length: 2000000\r\n\r\n",
                      b"user_count=1&" * 160000) == 413
    doc = api.stats()
    assert doc["state"] == "running" and doc["user_count"] == 4, (doc["state"], doc["user_count"])
    assert all(w["state"] == "running" and w["user_count"] == 2 for w in doc["workers"])

    # edits: JSON with the legacy names, then a form
    status, doc = api.swarm_json({"locust_count": 6, "hatch_rate": 100})
    assert status == 200 and doc["success"] is True, doc
    api.wait_users(6)
    status, doc = api.swarm({"user_count": "2", "spawn_rate": "100"})
    assert status == 200 and doc["success"] is True, doc
    api.wait_users(2)

    # some traffic of every kind
    api.wait(lambda d: d if {"/reader", "/fail", "/raiser"} <= {r["name"] for r in d["stats"]}
             and aggregated(d)["num_requests"] >= 50 else None, "requests of every task")
    status, doc = api.json("/workers")
    assert doc["total"] == 2 and doc["by_state"]["running"] == 2 and doc["state"] == "running"
    assert set(doc["workers"][0]) == {"id", "host", "state", "user_count", "cpu_usage",
                                      "memory_usage", "last_heartbeat_age"}

    # stop: the final count equals what the target served
    status, doc = api.json("/stop", method="POST", body=b"")
    assert status == 200 and doc == {"success": True, "message": "Test stopped"}
    final = api.wait(lambda d: d if d["state"] == "stopped" else None, "stopped")
    assert aggregated(final)["num_requests"] == target.counts()["served"]
    status, doc = api.json("/stop")
    assert status == 200 and doc == {"success": True, "message": "Test stopped"}

    # the downloads, with Locust's headers
    for path, name, header in [("/stats/requests/csv", "requests", STATS_HEADER),
                               ("/stats/failures/csv", "failures", FAILURES_HEADER),
                               ("/exceptions/csv", "exceptions", EXCEPTIONS_HEADER)]:
        status, headers, body = api.request(path)
        assert status == 200 and headers["Content-Type"] == "text/csv", path
        assert re.fullmatch(r"attachment;filename=%s_\d+\.\d+\.csv" % name,
                            headers["Content-Disposition"]), headers["Content-Disposition"]
        rows = csv_rows(body)
        assert ",".join(rows[0]) == header, path
        assert len(rows) >= 2, (path, rows)
    rows = csv_rows(api.request("/stats/requests/csv")[2])
    agg = [r for r in rows if r[1] == "Aggregated"]
    assert agg[0][0] == "" and int(agg[0][2]) == aggregated(final)["num_requests"]
    assert any(r[:3] == ["GET", "/fail", "HTTP 500"] for r in
               csv_rows(api.request("/stats/failures/csv")[2]))
    status, headers, body = api.request("/stats/requests_full_history/csv")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert re.fullmatch(r"attachment; filename=requests_full_history_\d+\.\d+\.csv",
                        headers["Content-Disposition"]), headers["Content-Disposition"]
    assert ",".join(csv_rows(body)[0]) == HISTORY_HEADER

    status, doc = api.json("/exceptions")
    assert len(doc["exceptions"]) == 1
    exc = doc["exceptions"][0]
    assert exc["count"] > 0 and "boom &lt;b&gt;" in exc["msg"] and exc["nodes"]
    assert set(exc) == {"count", "msg", "traceback", "nodes"}

    status, headers, body = api.request("/stats/report")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "Content-Disposition" not in headers and b"/reader" in body
    status, headers, body = api.request("/stats/report?download=1")
    assert status == 200
    assert re.fullmatch(r"attachment;filename=report_\d+\.\d+\.html",
                        headers["Content-Disposition"]), headers["Content-Disposition"]
    status, doc = api.json("/stats/history")
    assert status == 200 and len(doc) >= 1 and {"time", "rps", "users"} <= set(doc[-1])

    # reset: "ok", and the counts start again from zero
    status, headers, body = api.request("/stats/reset")
    assert status == 200 and body == b"ok" and headers["Content-Type"].startswith("text/html")
    doc = api.stats()
    assert aggregated(doc)["num_requests"] == 0 and doc["errors"] == []
    assert api.json("/exceptions")[1] == {"exceptions": []}


def test_json_start_with_run_time_and_classes(api, target):
    status, doc = api.swarm_json({"user_count": 4, "spawn_rate": 100, "run_time": "1h",
                                  "user_classes": ["Reader"],
                                  "host": target.url[:10] + "<>" + target.url[10:]})
    assert status == 200, doc
    assert doc == {"success": True, "message": "Swarming started", "host": target.url,
                   "run_time": 3600, "user_classes": ["Reader"]}
    api.wait_users(4)
    api.wait(lambda d: d if aggregated(d)["num_requests"] >= 50 else None, "50 requests")
    assert api.json("/stop")[0] == 200
    final = api.wait(lambda d: d if d["state"] == "stopped" else None, "stopped")
    assert "/raiser" not in {r["name"] for r in final["stats"]}
    assert aggregated(final)["num_requests"] == target.counts()["served"]
    # a second test from the same workers, with the form and a run time
    status, doc = api.swarm({"user_count": "2", "spawn_rate": "100", "run_time": "2m",
                             "user_classes": ["Raiser", "Reader"]})
    assert status == 200 and doc["run_time"] == 120 and doc["user_classes"] == ["Raiser", "Reader"]
    api.wait_users(2)


def test_full_history_needs_the_options(tmp_path, target):
    a = Api(tmp_path, target, local_workers=0)
    try:
        status, headers, body = a.request("/stats/requests_full_history/csv")
        assert status == 404
        assert body == b"Error: Server was not started with option to generate full history."
        # no worker: /swarm says so, without starting anything
        status, doc = a.swarm({"user_count": "1", "spawn_rate": "1"})
        assert status == 503 and doc["success"] is False and "worker" in doc["message"]
        assert a.stats()["state"] == "ready"
    finally:
        a.stop()


def test_auth(tmp_path, target):
    a = Api(tmp_path, target, extra=["--web-auth", "alice:s3cret"], local_workers=0,
            auth="alice:s3cret")
    try:
        for path in ["/", "/stats/requests", "/static/app.js", "/no/such/route"]:
            status, headers, _ = a.request(path, auth=False)
            assert status == 401, path
            assert headers["WWW-Authenticate"].startswith("Basic"), path
        wrong = {"Authorization": "Basic " + base64.b64encode(b"alice:nope").decode()}
        assert a.request("/stats/requests", headers=wrong, auth=False)[0] == 401
        status, _, _ = a.request("/swarm", method="POST", body={"user_count": "1"}, auth=False)
        assert status == 401
        assert a.request("/stats/requests")[0] == 200
        assert a.request("/static/app.js")[0] == 200
        assert a.request("/")[0] == 200
        assert a.request("/no/such/route")[0] == 404
    finally:
        a.stop()


def test_no_auth_by_default(tmp_path, target):
    a = Api(tmp_path, target, local_workers=0)
    try:
        for path in ["/", "/stats/requests", "/static/app.js", "/workers", "/tasks"]:
            assert a.request(path)[0] == 200, path
    finally:
        a.stop()
