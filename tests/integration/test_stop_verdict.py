"""Issue #6 item 5: a request in flight when the test stops still gets the verdict its task's own
code decides, and the code after the request still runs; the user's next request or wait then
ends it without sending anything.

The tasks are one slow request (1 s, so nearly every user has one in flight at the stop) and
the users have no wait, so each user has at most one request in flight at the stop. Each user
starts after a pause of 0.1 to 1 s set by its id, so the users' requests end at ten different
moments of every second rather than all together. Without a stop timeout the users must stop at
once, and the in-flight request's completion resumes the task (well within the stop's default
grace of 10 s). With `-s 0.2` the grace ends while most of those requests are still in flight:
those that completed before it resumed their tasks, the others were aborted and counted as
aborted at stop (issue #12), neither requests nor failures, and their tasks did not resume.

Each user marks its first request just before sending it (and, in the test whose task makes two
requests, its first second request); the master gets SIGTERM (the same stop as the end of
--run-time) once all of them have, so every user has sent them however slow the machine is.
"""
import json

import pytest

from conftest import (MARK, aggregated, count_marks, headless, marks_env, row, run_master_until,
                      write_scenario)

USERS = 20
# 10 users per worker (ids n = 1..10 on each): pauses of 0.1, 0.2, ... 1.0 s.
SPREAD = "on_start = function(self) acrida.sleep(self.id % 10 / 10 + 0.1) end,"
SENDING = MARK + """
local function sending(self, what)
  what = what or "sent"
  self.sent = self.sent or {}
  if not self.sent[what] then
    self.sent[what] = true
    mark(what .. "-" .. self.worker_index .. "-" .. self.id)
  end
end
"""
STOP_MODES = [pytest.param([], id="no-stop-timeout"),
              pytest.param(["-s", "0.2"], id="stop-timeout-0.2s")]


def aborted(doc, slow, stop_args):
    """The slow requests aborted at stop: none within the default grace of 10 s; with -s 0.2
    those still in flight at the deadline, the only ones aborted."""
    ab = slow["aborted_at_stop"]
    assert doc["aborted_at_stop"] == ab
    if not stop_args:
        assert ab == 0, slow
    return ab


def run(tmp_path, target, scenario, stop_args, marks="sent-"):
    head = 'local acrida = require "acrida"\n'
    sc = write_scenario(tmp_path, scenario.replace("SPREAD", SPREAD).replace(head, head + SENDING))
    rc, out, err = run_master_until(tmp_path, headless(sc, target.url, USERS, USERS, "10m",
                                                       extra=["--json"] + stop_args),
                                    lambda: count_marks(tmp_path, marks) == USERS,
                                    "each user's %s mark" % marks, env=marks_env(tmp_path))
    assert out, "no JSON output (exit %d):\n%s" % (rc, err[-3000:])
    return rc, json.loads(out), target.counts(), err


@pytest.mark.parametrize("stop_args", STOP_MODES)
def test_404s_marked_success_in_code_stay_successes_at_stop(tmp_path, target, stop_args):
    rc, doc, counts, err = run(tmp_path, target, """
local acrida = require "acrida"
acrida.user { name = "Lenient", SPREAD tasks = { function(self)
  sending(self)
  local r = self.client:get("/delay/1000?status=404", { name = "slow404", catch_response = true })
  if r.status == 404 then r:success() else r:failure("unexpected status " .. r.status) end
end } }
""", stop_args)
    slow = row(doc, "GET", "slow404")
    ab = aborted(doc, slow, stop_args)
    assert slow["num_requests"] + ab >= USERS, (slow, err[-3000:])
    assert counts["by_status"] == {"404": slow["num_requests"] + ab}, counts
    assert aggregated(doc)["num_requests"] + ab == counts["served"] == slow["num_requests"] + ab
    assert slow["num_failures"] == 0, (slow, doc.get("errors"))
    assert aggregated(doc)["num_failures"] == 0
    assert rc == 0, err[-3000:]


@pytest.mark.parametrize("stop_args", STOP_MODES)
def test_requests_failed_in_code_stay_failures_at_stop(tmp_path, target, stop_args):
    rc, doc, counts, err = run(tmp_path, target, """
local acrida = require "acrida"
acrida.user { name = "Strict", SPREAD tasks = { function(self)
  sending(self)
  local r = self.client:get("/delay/1000", { name = "slow", catch_response = true })
  r:failure("rejected in code")
end } }
""", stop_args)
    slow = row(doc, "GET", "slow")
    ab = aborted(doc, slow, stop_args)
    assert slow["num_requests"] + ab >= USERS, (slow, err[-3000:])
    assert aggregated(doc)["num_requests"] + ab == counts["served"] == slow["num_requests"] + ab
    assert slow["num_failures"] == slow["num_requests"], slow
    errors = [(f["method"], f["name"], f["error"], f["occurrences"]) for f in doc["errors"]]
    assert errors == [("GET", "slow", "rejected in code", slow["num_requests"])], errors
    assert rc == 1, err[-3000:]


@pytest.mark.parametrize("stop_args", STOP_MODES)
def test_code_after_the_request_runs_and_nothing_more_is_sent(tmp_path, target, stop_args):
    rc, doc, counts, err = run(tmp_path, target, """
local acrida = require "acrida"
acrida.user { name = "Forwarder", SPREAD tasks = { function(self)
  sending(self)
  self.client:get("/delay/1000", { name = "slow" })
  acrida.report { request_type = "AFTER", name = "slow", response_time = 0 }
  sending(self, "next")
  self.client:get("/status/201", { name = "next" })
  acrida.report { request_type = "AFTER", name = "next", response_time = 0 }
end } }
""", stop_args, "next-")
    slow, nxt = row(doc, "GET", "slow"), row(doc, "GET", "next")
    ab = aborted(doc, slow, stop_args)
    assert slow["num_requests"] + ab >= USERS, (slow, err[-3000:])
    # The code after each recorded request ran exactly once per request, stop included.
    assert row(doc, "AFTER", "slow")["num_requests"] == slow["num_requests"], doc["stats"]
    assert row(doc, "AFTER", "next")["num_requests"] == nxt["num_requests"], doc["stats"]
    # Every request sent was recorded, and nothing else was sent.
    assert counts["by_path_prefix"] == {"/delay": slow["num_requests"] + ab,
                                        "/status": nxt["num_requests"]}, counts
    after = row(doc, "AFTER", "slow")["num_requests"] + row(doc, "AFTER", "next")["num_requests"]
    assert aggregated(doc)["num_requests"] == slow["num_requests"] + nxt["num_requests"] + after
    assert counts["served"] == slow["num_requests"] + nxt["num_requests"] + ab, counts
    # Users resumed after the stop did not send their next request: without a stop timeout at
    # least one user (every user is inside its 1 s request nearly all the time) and at most one
    # per user; with -s 0.2 the requests still in flight at the deadline were aborted instead.
    assert 0 <= slow["num_requests"] - nxt["num_requests"] <= USERS, (slow, nxt)
    assert ab > 0 or slow["num_requests"] - nxt["num_requests"] > 0, (slow, nxt)
    assert aggregated(doc)["num_failures"] == 0
    assert rc == 0, err[-3000:]
