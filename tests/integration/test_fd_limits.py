"""Issue #12 item 3: more users than file descriptors. The master and its local worker run with
RLIMIT_NOFILE 256 (soft and hard) and 1000 users each want a connection: the worker logs its
limit, the master warns that -u exceeds what the worker can open, the users without a descriptor
fail with "too many open files" (counted failures, never sent) and back off (100 ms doubling to
2 s) instead of spinning, reports keep flowing, the test ends on time and the counts add up:
successes + aborted at stop == what the target served.
"""
import datetime
import json
import re
import resource
import subprocess

from conftest import aggregated, assert_no_sanitizer_report, binary, headless, write_scenario

USERS = 1000
NOFILE = 256
RUN_S = 12
SCENARIO = """
local acrida = require "acrida"
acrida.user { name = "Crowd", wait_time = acrida.constant(0.05), tasks = { function(self)
  self.client:get("/delay/50", { name = "slow" })
end } }
"""
NOFILE_ERROR = "too many open files"


def limit_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def log_time(err, text):
    for line in err.splitlines():
        if text in line and " master: " in line:
            m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ", line)
            return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
    raise AssertionError("no master log line with %r:\n%s" % (text, err[-3000:]))


def test_more_users_than_descriptors(tmp_path, target):
    sc = write_scenario(tmp_path, SCENARIO)
    args = headless(sc, target.url, USERS, USERS, "%ds" % RUN_S, workers=1, extra=["--json"])
    p = subprocess.run([binary("acrida-master")] + args, cwd=str(tmp_path), capture_output=True,
                       timeout=300, preexec_fn=limit_nofile)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    assert_no_sanitizer_report(err, "acrida-master")
    # failed requests ("too many open files") make the exit code 1, as any failure does
    assert p.returncode == 1, "exit %d:\n%s" % (p.returncode, err[-4000:])
    doc = json.loads(out)
    counts = target.counts()

    assert "file descriptors: limit %d (RLIMIT_NOFILE soft was %d, hard %d)" % (
        NOFILE, NOFILE, NOFILE) in err
    warn = re.search(r"-u %d exceeds the (\d+) connections the 1 worker can open \(RLIMIT_NOFILE\)"
                     % USERS, err)
    assert warn, err[-4000:]
    assert int(warn.group(1)) < NOFILE

    agg = aggregated(doc)
    errors = {e["error"]: e["occurrences"] for e in doc["errors"]}
    assert set(errors) == {NOFILE_ERROR}, errors
    nofile_failures = errors[NOFILE_ERROR]
    assert agg["num_failures"] == nofile_failures > 0
    # backoff, not spinning: a user without a descriptor tries about 5 times in its first 3.1 s
    # (0.1 + 0.2 + 0.4 + 0.8 + 1.6 s), then every 2 s; spinning would fail hundreds of thousands
    per_user = 5 + (RUN_S + 10) / 2 + 3
    print("%d requests, %d '%s' failures, %d served, %d reports merged"
          % (agg["num_requests"], nofile_failures, NOFILE_ERROR, counts["served"],
             doc["reports_merged"]))
    assert nofile_failures <= USERS * per_user

    # reports flowed during the run (one every 3 s, then the final one), none lost
    assert doc["lost_reports"] == 0
    assert doc["reports_merged"] >= RUN_S // 3
    # on time: the run time plus the stop's grace (10 s) and some slack
    started = log_time(err, "Run time limit set to %d seconds" % RUN_S)
    ended = log_time(err, "Shutting down")
    print("the test took %.3f s" % (ended - started))
    assert ended - started <= RUN_S + 10 + 6
    # counts add up: the failures never reached the target
    successes = agg["num_requests"] - agg["num_failures"]
    assert successes > 0
    assert successes + doc["aborted_at_stop"] == counts["served"], counts
