"""The scenario examples that no other test runs, each against acrida-target with a master and 2
local workers: examples/quickstart.lua (the scenario of `make run`), examples/forwarder.lua (a request listener forwarding every result in
bulk to a local HTTP endpoint with record = false) and examples/async_poll.lua (a job polled by an
acrida.spawn task, its total time reported with acrida.report) and examples/bundle/ (a scenario
shipped with its modules and data file to 2 workers started without -f). User counting with
user_start/user_stop is examples/events.lua, run by test_events.py.

Each run lasts until the scenario has done what the test waits for, then the master gets SIGTERM
(a graceful stop), so the counts compared are exact."""
import json
import os
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import headless, row, run_master_until, aggregated

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples")


def copy_example(tmp_path, name):
    sc = str(tmp_path / name)
    shutil.copy(os.path.join(EXAMPLES, name), sc)
    return sc


class BulkStore:
    """A stand-in for Elasticsearch's _bulk API on a loopback port: keeps the documents it was
    sent by _id (a second copy overwrites the first, as Elasticsearch's index action does) and
    counts the bulk requests. Anything that is not a well-formed bulk body is answered 400 and
    remembered as an error."""

    def __init__(self):
        self.lock = threading.Lock()
        self.docs = {}
        self.posts = 0
        self.errors = []
        store = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = 200 if store.take(self.path, self.headers.get("Content-Type"), body) \
                    else 400
                out = b'{"errors":false}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/_bulk" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def take(self, path, ctype, body):
        try:
            assert path == "/_bulk", path
            assert ctype == "application/x-ndjson", ctype
            assert body.endswith(b"\n"), body[-20:]
            lines = body.decode().split("\n")[:-1]
            assert len(lines) % 2 == 0 and lines, len(lines)
            docs = {}
            for action, doc in zip(lines[0::2], lines[1::2]):
                meta = json.loads(action)["index"]
                assert meta["_index"] == "acrida", meta
                docs[meta["_id"]] = json.loads(doc)
        except (AssertionError, ValueError, KeyError) as e:
            with self.lock:
                self.errors.append(repr(e))
            return False
        with self.lock:
            self.posts += 1
            self.docs.update(docs)
        return True

    def count(self):
        with self.lock:
            return len(self.docs)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_example_forwarder(tmp_path, target):
    store = BulkStore()
    try:
        sc = copy_example(tmp_path, "forwarder.lua")
        rc, out, err = run_master_until(
            tmp_path, headless(sc, target.url, 4, 4, "10m", workers=2, extra=["--json"]),
            # the stop must not follow a flush: wait on the target's count, not the store's, so
            # results are left in the buffers for the users' on_stop to send
            lambda: target.counts()["served"] >= 400 and store.count() >= 300,
            "400 requests served, 300 results forwarded",
            env=dict(os.environ, FORWARD_URL=store.url))
    finally:
        store.close()
    assert rc == 0, err[-4000:]
    assert store.errors == [], store.errors
    doc = json.loads(out)
    # the forwarding requests are not load: only the target's routes are in the statistics
    names = sorted((r["method"], r["name"]) for r in doc["stats"] if r["name"] != "Aggregated")
    assert names == [("GET", "/"), ("GET", "/bytes/100")], names
    recorded = aggregated(doc)["num_requests"]
    served = target.counts()["served"]
    assert recorded == served, (recorded, served)
    # one document per recorded request, each route's documents as many as its row's count
    assert store.count() == recorded >= 300, (store.count(), recorded)
    by_name = {}
    for d in store.docs.values():
        by_name[d["name"]] = by_name.get(d["name"], 0) + 1
    assert by_name == {"/": row(doc, "GET", "/")["num_requests"],
                       "/bytes/100": row(doc, "GET", "/bytes/100")["num_requests"]}, by_name
    assert all(d["request_type"] == "GET" and d["status"] == 200 for d in store.docs.values())
    # in bulk: far fewer forwarding requests than documents
    assert 0 < store.posts < recorded // 5, (store.posts, recorded)


def test_example_async_poll(tmp_path, target):
    sc = copy_example(tmp_path, "async_poll.lua")

    def jobs_done():  # the final polls: the 200s that are not the submissions' /echo
        c = target.counts()
        return c["by_status"].get("200", 0) - c["by_path_prefix"].get("/echo", 0) >= 20

    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 4, 4, "10m", workers=2, extra=["--json"]),
        jobs_done, "20 jobs done")
    assert rc == 0, err[-4000:]
    doc = json.loads(out)
    names = sorted((r["method"], r["name"]) for r in doc["stats"] if r["name"] != "Aggregated")
    assert names == [("ASYNC", "job"), ("GET", "/job/status"), ("POST", "/job")], names
    jobs = row(doc, "ASYNC", "job")
    posts = row(doc, "POST", "/job")["num_requests"]
    polls = row(doc, "GET", "/job/status")["num_requests"]
    done = jobs["num_requests"]
    assert jobs["num_failures"] == 0, jobs
    # every reported job was polled 3 times and reported right after its last poll; a job whose
    # polling the stop killed reported nothing and made at most 2 polls
    assert 20 <= done <= posts, (done, posts)
    assert 3 * done <= polls <= 3 * done + 2 * (posts - done), (done, polls, posts)
    # the reported time covers the two waits between the three polls (0.2 s each; a margin for
    # a timer that the loop's cached clock fires a little early)
    assert jobs["min_response_time"] >= 300, jobs


def test_example_quickstart(tmp_path, target):
    """examples/quickstart.lua, the scenario of `make run`: both classes' rows, the deliberate
    failures (the 500s; the caught 404s are successes) and a total equal to the target's count."""
    sc = copy_example(tmp_path, "quickstart.lua")
    rc, out, err = run_master_until(
        tmp_path, headless(sc, target.url, 6, 6, "10m", extra=["--json", "--only-summary"]),
        lambda: (lambda c: c["served"] >= 60 and all(c["by_status"].get(k) for k in ("404", "500"))
                 and all(c["by_path_prefix"].get(k) for k in ("/", "/bytes")))(target.counts()),
        "60 requests served, every route the test checks among them")
    assert rc == 1, (rc, err[-3000:])  # the /status/500 task fails on purpose
    doc = json.loads(out)
    for name in ("/", "/bytes/[n]", "/status/500", "/status/404"):
        assert row(doc, "GET", name)["num_requests"] > 0, name
    assert row(doc, "GET", "/status/500")["num_failures"] == row(doc, "GET", "/status/500")["num_requests"]
    assert row(doc, "GET", "/status/404")["num_failures"] == 0
    assert aggregated(doc)["num_requests"] == target.counts()["served"]


def test_example_bundle(tmp_path, target):
    """examples/bundle/: a master and 2 workers started without -f in another directory; the
    workers get scenario.lua, paths.lua, lib/csv.lua and data/users.csv in the master's bundle,
    and every row of the CSV is requested under the name paths.lua gives it."""
    from test_bundle import run_with_workers
    sc = tmp_path / "bundle"
    shutil.copytree(os.path.join(EXAMPLES, "bundle"), str(sc))
    rc, doc, mlog, wlogs = run_with_workers(tmp_path, target, str(sc / "scenario.lua"), 60)
    assert rc == 0, mlog[-3000:]
    assert all("of 4 files" in log for log in wlogs), wlogs
    for name in ("alice", "bob", "carol"):
        assert row(doc, "GET", "/user/" + name)["num_requests"] > 0
    assert aggregated(doc)["num_requests"] == target.counts()["served"]
    assert aggregated(doc)["num_failures"] == 0
