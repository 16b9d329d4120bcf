"""GET /metrics read by a real Prometheus (Debian's /usr/bin/prometheus, installed by
deploy/install-deps.sh): a web-mode master with --autostart runs a test against the bundled
target, Prometheus scrapes it every second, and the test waits until Prometheus's query API
returns acrida_requests_total above 0 with the expected labels and the scrape target is healthy
(a malformed exposition would make the scrape fail with lastError set)."""
import json
import os
import urllib.parse
import urllib.request

import pytest

from conftest import (Daemon, Target, _died, binary, free_port, read_port_file, wait_for,
                      write_scenario)

PROMETHEUS = "/usr/bin/prometheus"

SCENARIO = """
local acrida = require "acrida"
acrida.user { name = "Ok", tasks = {
  function(self) self.client:get("/") end,
  function(self) self.client:get("/status/404", { name = "/missing \\"quoted\\"" }) end,
} }
"""

pytestmark = pytest.mark.skipif(not os.path.exists(PROMETHEUS),
                                reason="%s is not installed (deploy/install-deps.sh installs "
                                       "Debian's prometheus package)" % PROMETHEUS)


def get_json(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.load(r)
    except (OSError, ValueError):
        return None


def start_prometheus(tmp_path, web_port):
    """Prometheus on a free loopback port (it has no port 0), retried when another process took
    the port in between. Returns (daemon, base URL)."""
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text("global:\n"
                   "  scrape_interval: 1s\n"
                   "  scrape_timeout: 1s\n"
                   "scrape_configs:\n"
                   "  - job_name: acrida\n"
                   "    static_configs:\n"
                   "      - targets: ['127.0.0.1:%d']\n" % web_port)
    for attempt in range(5):
        port = free_port()
        d = Daemon([PROMETHEUS, "--config.file=%s" % cfg,
                    "--web.listen-address=127.0.0.1:%d" % port,
                    "--storage.tsdb.path=%s" % (tmp_path / ("tsdb%d" % attempt))],
                   tmp_path, "prometheus%d" % attempt)
        base = "http://127.0.0.1:%d" % port
        ready = wait_for(lambda: not d.alive() or
                         get_json(base + "/api/v1/status/buildinfo") is not None,
                         what="Prometheus's API")
        if d.alive() and ready:
            return d, base
        rc = d.stop()
        if "address already in use" not in d.log():
            raise AssertionError("prometheus exited with %s:\n%s" % (rc, d.log()[-4000:]))
    raise AssertionError("no free port for Prometheus after 5 attempts")


def query(base, expr):
    doc = get_json(base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    if not doc or doc.get("status") != "success":
        return []
    return doc["data"]["result"]


def test_prometheus_scrapes_metrics(tmp_path):
    target = Target(tmp_path)
    master = prom = None
    try:
        sc = write_scenario(tmp_path, SCENARIO)
        pf = str(tmp_path / "master.ports")
        master = Daemon([binary("acrida-master"), "-f", sc, "-H", target.url, "-u", "2", "-r", "2",
                         "--autostart", "--local-workers", "1", "--web-host", "127.0.0.1",
                         "--web-port", "0", "--master-bind-host", "127.0.0.1",
                         "--master-bind-port", "0", "--port-file", pf], tmp_path, "master")
        web_port = wait_for(lambda: read_port_file(pf, "web") or
                            (not master.alive() and _died(master)), what="the master's web port")
        prom, base = start_prometheus(tmp_path, web_port)

        def scraped():
            assert master.alive(), master.log()[-4000:]
            rows = query(base, 'acrida_requests_total{name="/"}')
            return rows if rows and float(rows[0]["value"][1]) > 0 else None

        try:
            rows = wait_for(scraped, timeout=180,
                            what='acrida_requests_total{name="/"} > 0 in Prometheus')
        except AssertionError as e:
            raise AssertionError("%s; scrape targets: %s" % (e, get_json(base + "/api/v1/targets")))
        assert len(rows) == 1, rows
        labels = rows[0]["metric"]
        assert labels == {"__name__": "acrida_requests_total", "job": "acrida",
                          "instance": "127.0.0.1:%d" % web_port, "method": "GET", "name": "/"}, labels

        # the scrape itself is healthy: Prometheus parsed every line
        def target_health():
            doc = get_json(base + "/api/v1/targets")
            active = doc["data"]["activeTargets"] if doc else []
            return active[0] if active and active[0]["health"] != "unknown" else None
        health = wait_for(target_health, what="the scrape target's health")
        assert health["health"] == "up" and health["lastError"] == "", health

        # the escaped label came through intact; the other families are there
        missing = wait_for(lambda: query(base, 'acrida_failures_total{name="/missing \\"quoted\\""} > 0'),
                           timeout=180, what="the failing entry's failures in Prometheus")
        assert missing[0]["metric"]["method"] == "GET", missing
        aggregated = query(base, 'acrida_requests_total{name="Aggregated"}')
        # method="": Prometheus stores an empty label as no label
        assert len(aggregated) == 1 and "method" not in aggregated[0]["metric"], aggregated
        quantiles = query(base, 'acrida_response_time_seconds{name="/"}')
        assert sorted(r["metric"]["quantile"] for r in quantiles) == ["0.5", "0.9", "0.95", "0.99"]
        workers = query(base, "acrida_workers")
        assert sorted(r["metric"]["state"] for r in workers) == [
            "missing", "ready", "running", "spawning", "stopped"], workers
        states = {r["metric"]["state"]: float(r["value"][1]) for r in query(base, "acrida_run_state")}
        assert sum(states.values()) == 1 and set(states) == {
            "ready", "spawning", "running", "stopping", "stopped"}, states
        assert len(query(base, "acrida_users")) == 1
        assert len(query(base, "acrida_current_rps")) == 1
        assert len(query(base, "acrida_lost_reports_total")) == 1
    finally:
        rcs = {d.name: (d.stop(), d) for d in (prom, master, target) if d is not None}
    # Prometheus and the target exit 0 on SIGTERM; the master with its verdict on the run (the
    # 404s make it --exit-code-on-error's 1), never by a signal
    for name, (rc, d) in rcs.items():
        assert rc == (1 if name == "master" else 0), "%s exited with %s:\n%s" % (name, rc, d.log()[-4000:])
