"""The self-contained HTML report (master/html.c): written by --html at the end of a headless run
and served at /stats/report in web mode. The report must name every entry with the request counts
of the run's --json document, carry chart samples, link nothing (no script src, no stylesheet
link, no URL but uPlot's own text and the run's host), and escape the run's strings: the scenario
names an entry and raises an error with markup in them."""
import html
import html.parser
import json
import os
import re
import urllib.request

from conftest import (MARK, ROOT, Daemon, _died, binary, count_marks, headless, marked,
                      marks_env, read_port_file, run_master_until, wait_for, write_scenario)

HOSTILE = "<b>x</b>\"'&"
SCENARIO = """
local acrida = require "acrida"
""" + MARK + """
acrida.user { name = "U", tasks = {
  { weight = 3, fn = function(self)
    self.client:get("/", { name = "<b>x</b>\\"'&" })
    self.n = (self.n or 0) + 1
    if self.n == 50 then mark("50-" .. self.worker_index .. "-" .. self.id) end
  end },
  function(self) self.client:get("/status/500", { name = "/fail" }); mark("fail") end,
  function(self)
    if not self.raised then
      self.raised = true
      mark("raised")
      error("boom </script><!--")
    end
  end,
} }
"""
USERS = 4
UPLOT_JS = os.path.join(ROOT, "node_modules", "uplot", "dist", "uPlot.iife.min.js")


class Tables(html.parser.HTMLParser):
    """The rows of each table, by the id of the <section> around it: lists of cell texts
    (character references decoded)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables = {}
        self.section = None
        self.row = None
        self.cell = None

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self.section = dict(attrs).get("id")
            self.tables.setdefault(self.section, [])
        elif tag == "tr" and self.section:
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append("".join(self.cell))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.tables[self.section].append(self.row)
            self.row = None
        elif tag == "section":
            self.section = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def tables(doc):
    p = Tables()
    p.feed(doc)
    p.close()
    return p.tables


def chart_samples(doc):
    m = re.search(r'<script type="application/json" id="acr-history">(.*?)</script>', doc, re.S)
    assert m, "no chart data block"
    return json.loads(m.group(1))


def assert_self_contained(doc, host):
    """Nothing fetched from anywhere, and no URL outside uPlot's text and the run's host."""
    assert not re.search(r"<script[^>]*\bsrc\s*=", doc, re.I)
    assert not re.search(r"<link\b", doc, re.I)
    assert not re.search(r"<(img|iframe|object|embed)\b", doc, re.I)
    assert not re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:|//)""", doc, re.I)
    rest = doc
    if os.path.exists(UPLOT_JS):
        with open(UPLOT_JS) as f:
            lib = f.read()
        assert lib.strip() in rest, "uPlot's script is not inlined"
        rest = rest.replace(lib.strip(), "")
    rest = rest.replace(html.escape(host, quote=True), "")
    assert not re.search(r"https?://", rest), re.search(r".{60}https?://.{60}", rest, re.S).group(0)
    assert "@import" not in rest and "url(" not in rest


def assert_escaped(doc):
    assert HOSTILE not in doc and "<b>x</b>" not in doc
    assert "&lt;b&gt;x&lt;/b&gt;&quot;&#39;&amp;" in doc
    # the error text, raw, would end a script element and open a comment
    assert "boom </script>" not in doc and "<!--" not in doc
    assert "boom &lt;/script&gt;&lt;!--" in doc
    assert doc.count("<script") == doc.count("</script>") == 3


def request_counts(t):
    """{(type, name): (# requests, # fails)} from the report's request table."""
    rows = t["requests"]
    assert rows[0][:4] == ["Type", "Name", "# Requests", "# Fails"], rows[0]
    assert rows[-1][1] == "Aggregated", rows[-1]
    return {(r[0], r[1]): (int(r[2]), int(r[3])) for r in rows[1:]}


def test_headless_html_file(tmp_path, target):
    sc = write_scenario(tmp_path, SCENARIO)
    args = headless(sc, target.url, USERS, USERS, "10m",
                    extra=["--json", "--html", "report.html"])
    rc, out, err = run_master_until(
        tmp_path, args, lambda: count_marks(tmp_path, "50-") == USERS and
        marked(tmp_path, "fail", "raised"), "50 requests of each user, a failure and an error",
        env=marks_env(tmp_path))
    assert rc == 1, "exit %d (failures give 1):\n%s" % (rc, err[-3000:])
    path = tmp_path / "report.html"
    assert path.exists(), err[-3000:]
    doc = path.read_text()
    assert doc.startswith("<!DOCTYPE html>") and doc.rstrip().endswith("</html>")
    assert_self_contained(doc, target.url)
    assert_escaped(doc)
    assert "?download" not in doc  # a file has no download link

    # every entry of the --json document, with its counts, and nothing else
    js = json.loads(out)
    want = {(("" if r["name"] == "Aggregated" else r["method"]), r["name"]):
            (r["num_requests"], r["num_failures"]) for r in js["stats"]}
    t = tables(doc)
    got = request_counts(t)
    assert got == want, (got, want)
    assert got[("", "Aggregated")][0] == target.counts()["served"]
    assert got[("GET", HOSTILE)][0] >= USERS * 50

    # the other tables
    pct = t["percentiles"]
    assert pct[0][2:] == ["50%", "60%", "70%", "80%", "90%", "95%", "99%", "99.9%", "100%"], pct[0]
    assert [r[1] for r in pct[1:]] == [r[1] for r in t["requests"][1:]]
    fails = t["failures"]
    assert any(r[:2] == ["GET", "/fail"] and int(r[3]) == got[("GET", "/fail")][1]
               for r in fails[1:]), fails
    exc = t["exceptions"]
    assert any("boom </script><!--" in r[1] + r[2] for r in exc[1:]), exc
    assert len(t["workers"]) == 1 + 2, t["workers"]
    params = {r[0]: r[1] for r in t["parameters"]}
    assert params["Host"] == target.url and params["Users"] == str(USERS), params
    assert params["Test id"] == js["test_id"], (params, js["test_id"])
    assert params["Lost report intervals"].startswith("0"), params

    # charts: the start's sample, the stop's, every 2 s between; time ordered; the stop's sample
    # has the last 10 s of requests
    samples = chart_samples(doc)
    assert len(samples) >= 2, samples
    assert all(set(s) == {"time", "rps", "fail_per_sec", "p50", "p95", "p99", "users"}
               for s in samples), samples[0]
    assert [s["time"] for s in samples] == sorted(s["time"] for s in samples)
    assert max(s["p50"] for s in samples) > 0, samples
    # (a run shorter than one step has only those two: users 0 at both ends)
    assert all(0 <= s["users"] <= USERS for s in samples), samples


def fetch(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.status, dict(r.headers), r.read().decode()


def merged(base):
    doc = json.loads(fetch(base + "/stats/requests")[2])
    rows = {(r["method"], r["name"]): r for r in doc["stats"]}
    hostile, fail = rows.get(("GET", HOSTILE)), rows.get(("GET", "/fail"))
    exc = json.loads(fetch(base + "/exceptions")[2])["exceptions"]
    return (hostile and hostile["num_requests"] >= USERS * 50 and fail and
            fail["num_failures"] > 0 and exc)


def test_web_report_and_download(tmp_path, target):
    sc = write_scenario(tmp_path, SCENARIO)
    pf = str(tmp_path / "ports")
    args = [binary("acrida-master"), "-f", sc, "-H", target.url, "-u", str(USERS), "-r",
            str(USERS), "--autostart", "--autoquit", "1", "--local-workers", "2",
            "--web-host", "127.0.0.1", "--web-port", "0", "--master-bind-host", "127.0.0.1",
            "--master-bind-port", "0", "--port-file", pf, "--html", "web.html"]
    d = Daemon(args, tmp_path, "master", env=marks_env(tmp_path))
    try:
        port = wait_for(lambda: read_port_file(pf, "web") or (not d.alive() and _died(d)),
                        what="the web port in the port file")
        base = "http://127.0.0.1:%d" % port
        wait_for(lambda: (count_marks(tmp_path, "50-") == USERS and
                          marked(tmp_path, "fail", "raised")) or (not d.alive() and _died(d)),
                 what="50 requests of each user, a failure and an error")
        # the workers report every 3 s: wait until the master has merged what the marks say
        wait_for(lambda: merged(base), what="the master's stats to show the marked requests")
        status, headers, doc = fetch(base + "/stats/report")
        assert status == 200
        assert headers.get("Content-Type", "").startswith("text/html"), headers
        assert "attachment" not in headers.get("Content-Disposition", "")
        assert 'href="?download=1"' in doc
        assert_self_contained(doc.replace('href="?download=1"', ""), target.url)
        assert_escaped(doc)
        t = tables(doc)
        got = request_counts(t)
        assert got[("GET", HOSTILE)][0] >= USERS * 50, got
        assert got[("", "Aggregated")][0] >= USERS * 50, got
        params = {r[0]: r[1] for r in t["parameters"]}
        assert params["State"] in ("spawning", "running"), params
        assert len(chart_samples(doc)) >= 1

        status, headers, doc = fetch(base + "/stats/report?download=1")
        assert status == 200
        cd = headers.get("Content-Disposition", "")
        assert cd.startswith("attachment") and re.search(r"filename=\S+\.html", cd), headers
        assert "?download" not in doc
        assert_escaped(doc)
    finally:
        rc = d.stop()
    assert rc in (0, 1), "exit %s:\n%s" % (rc, d.log()[-3000:])
    # the run's end rewrote the --html file with the stopped test
    doc = (tmp_path / "web.html").read_text()
    assert_self_contained(doc, target.url)
    params = {r[0]: r[1] for r in tables(doc)["parameters"]}
    assert params["State"] == "stopped", params
    assert request_counts(tables(doc))[("", "Aggregated")][0] == target.counts()["served"]
