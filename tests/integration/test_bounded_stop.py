"""Issue #12 item 5: a bounded stop. A test ends within its run time plus the stop's grace for the
requests in flight (the stop timeout, or 10 s without -s); a request still in flight then is
aborted and counted as "aborted at stop": not a request, not a failure, but in the summary, the
--json document (per row and in total) and PREFIX_aborted_at_stop.csv.

Every user's task is one quick GET / then a request the target answers only after ten minutes
(/delay/600000, counted by the target as served as soon as it arrives), so once the run time is
over each user has exactly one request in flight, which only the stop's grace can end. The
durations are the master's own: the timestamps of its "Run time limit set" and "Shutting down"
log lines.
"""
import csv
import datetime
import json
import re

import pytest

from conftest import aggregated, headless, row, run_master, write_scenario

USERS = 6
SCENARIO = """
local acrida = require "acrida"
acrida.user { name = "Stuck", wait_time = acrida.constant(0), tasks = { function(self)
  self.client:get("/")
  self.client:get("/delay/600000", { name = "stuck" })
end } }
"""
SLACK_S = 6.0  # starting 2 workers, their final reports, the quit


def log_time(err, text):
    """The timestamp of the master's first log line containing @text."""
    for line in err.splitlines():
        if text in line and " master: " in line:
            m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ", line)
            assert m, line
            return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
    raise AssertionError("no master log line with %r:\n%s" % (text, err[-3000:]))


@pytest.mark.parametrize("stop_args,grace", [([], 10.0), (["-s", "1"], 1.0)],
                         ids=["default-grace-10s", "stop-timeout-1s"])
def test_requests_in_flight_are_aborted_after_the_grace(tmp_path, target, stop_args, grace):
    sc = write_scenario(tmp_path, SCENARIO)
    prefix = str(tmp_path / "run")
    rc, out, err = run_master(tmp_path, headless(sc, target.url, USERS, USERS, "3s",
                                                 extra=["--json", "--csv", prefix] + stop_args),
                              timeout=240)
    assert rc == 0, "exit %d:\n%s" % (rc, err[-4000:])
    doc = json.loads(out)
    counts = target.counts()

    started = log_time(err, "Run time limit set to 3 seconds")
    stop = log_time(err, "--run-time limit reached")
    ended = log_time(err, "Shutting down")
    print("run time 3 s, grace %g s: stop took %.3f s, the whole test %.3f s"
          % (grace, ended - stop, ended - started))
    assert ended - started <= 3 + grace + SLACK_S, err[-3000:]
    # the stop waited for the grace: the requests in flight could only end by being aborted
    assert ended - stop >= grace - 0.5, err[-3000:]

    agg = aggregated(doc)
    stuck = row(doc, "GET", "stuck")
    home = row(doc, "GET", "/")
    # each user had its one /delay request in flight: all aborted, none a request or failure
    assert stuck["aborted_at_stop"] == USERS
    assert stuck["num_requests"] == 0 and stuck["num_failures"] == 0
    assert home["num_requests"] == USERS and home["aborted_at_stop"] == 0
    assert agg["aborted_at_stop"] == doc["aborted_at_stop"] == USERS
    assert agg["num_failures"] == 0 and doc["errors"] == []
    # counted + aborted at stop + lost == served, exactly
    assert doc["lost_reports"] == 0
    assert agg["num_requests"] + doc["aborted_at_stop"] == counts["served"], counts
    assert counts["by_path_prefix"] == {"/": USERS, "/delay": USERS}

    assert "Aborted at stop: %d requests" % USERS in err
    with open(prefix + "_aborted_at_stop.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["Type", "Name", "Aborted At Stop"], ["GET", "stuck", str(USERS)],
                    ["", "Aggregated", str(USERS)]]
    # Locust's own CSV keeps Locust's columns
    with open(prefix + "_stats.csv", newline="") as f:
        header = next(csv.reader(f))
    assert "Aborted At Stop" not in header and header[0] == "Type"
