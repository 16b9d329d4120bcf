"""--check (docs/checks.md): CI thresholds evaluated on the final statistics of a real run against
the bundled target. A passing check keeps exit 0 and is listed as passed with its measured value;
a failing one exits 3 with the value; a malformed one exits 2 before any test; failed checks win
over --exit-code-on-error; the same checks apply to a web-mode run with --autostart --autoquit.

Headless runs last until the scenario marked enough requests (conftest.py's MARK), then the master
gets SIGTERM (the graceful stop of --run-time's end), so the measured counts are exact."""
import re

from conftest import (MARK, count_marks, headless, marks_env, run_master,
                      run_master_until, write_scenario)

# Each user marks its 20th request to /: the test stops the run once every user did.
COUNTED = """
local acrida = require "acrida"
""" + MARK + """
acrida.user { name = "Ok", tasks = { function(self)
  self.client:get("/")
  self.n = (self.n or 0) + 1
  if self.n == 20 then mark("20-" .. self.worker_index .. "-" .. self.id) end
end } }
"""

# Every request fails (500); each user marks its 5th.
FAILING = """
local acrida = require "acrida"
""" + MARK + """
acrida.user { name = "Bad", tasks = { function(self)
  self.client:get("/status/500", { name = "/fail" })
  self.n = (self.n or 0) + 1
  if self.n == 5 then mark("5-" .. self.worker_index .. "-" .. self.id) end
end } }
"""

USERS = 2


def checks(*exprs):
    args = []
    for e in exprs:
        args += ["--check", e]
    return args


def run_counted(tmp_path, target, scenario, mark_prefix, extra):
    sc = write_scenario(tmp_path, scenario)
    return run_master_until(
        tmp_path, headless(sc, target.url, USERS, USERS, "10m", workers=1, extra=extra),
        lambda: count_marks(tmp_path, mark_prefix) == USERS,
        "every user's marked request", env=marks_env(tmp_path))


def check_line(text, expr):
    """The one line the master printed for @expr: (verdict, measured text)."""
    lines = [ln for ln in text.splitlines() if ln.startswith("check %s: " % expr)]
    assert len(lines) == 1, "no single line for check %r in:\n%s" % (expr, text[-4000:])
    m = re.match(r"check .*: (passed|FAILED) \((.*)\)$", lines[0])
    assert m, lines[0]
    return m.group(1), m.group(2)


def test_passing_checks_exit_zero_and_are_listed(tmp_path, target):
    rc, out, err = run_counted(tmp_path, target, COUNTED, "20-", checks(
        "fail_ratio<0.01", "p95 < 60s", "rps>0", "requests>=40", "failures==0",
        "name=/:requests>0"))
    text = out + err
    assert rc == 0, "exit %d:\n%s" % (rc, err[-4000:])
    served = target.counts()["served"]
    assert check_line(text, "requests>=40") == ("passed", "requests = %d" % served)
    assert check_line(text, "failures==0") == ("passed", "failures = 0")
    assert check_line(text, "fail_ratio<0.01") == (
        "passed", "fail_ratio = 0 (0 of %d requests)" % served)
    verdict, measured = check_line(text, "p95 < 60s")
    assert verdict == "passed" and re.fullmatch(r"p95 = [0-9.]+ ms", measured), measured
    verdict, measured = check_line(text, "rps>0")
    assert verdict == "passed" and float(measured.split(" = ")[1]) > 0, measured
    assert check_line(text, "name=/:requests>0") == ("passed", "GET /: requests = %d" % served)


def test_failing_checks_exit_3_with_the_measured_value(tmp_path, target):
    rc, out, err = run_counted(tmp_path, target, COUNTED, "20-", checks(
        "p50<0.001ms", "rps>100000000", "fail_ratio<0.01", "name=/nothing:requests>0"))
    text = out + err
    assert rc == 3, "exit %d, expected 3:\n%s" % (rc, err[-4000:])
    verdict, measured = check_line(text, "p50<0.001ms")
    assert verdict == "FAILED" and float(re.fullmatch(r"p50 = ([0-9.]+) ms", measured).group(1)) > 0.001
    verdict, measured = check_line(text, "rps>100000000")
    assert verdict == "FAILED" and 0 < float(re.fullmatch(r"rps = ([0-9.]+)", measured).group(1)) < 1e8
    assert check_line(text, "fail_ratio<0.01")[0] == "passed"
    assert check_line(text, "name=/nothing:requests>0") == (
        "FAILED", "no entry whose name starts with '/nothing'")


def test_malformed_check_exits_2_before_any_test(tmp_path, target):
    sc = write_scenario(tmp_path, COUNTED)
    rc, out, err = run_master(tmp_path, headless(sc, target.url, USERS, USERS, "10m", workers=1,
                                                 extra=checks("p95<300ms", "p95<3xx")),
                              env=marks_env(tmp_path))
    assert rc == 2, "exit %d:\n%s" % (rc, err[-4000:])
    assert "--check 'p95<3xx': '3xx' is not a number" in err, err[-4000:]
    # refused before anything started: no user ran, the target served nothing
    assert count_marks(tmp_path, "") == 0
    assert target.counts()["served"] == 0


def test_failed_checks_win_over_exit_code_on_error(tmp_path, target):
    rc, out, err = run_counted(tmp_path, target, FAILING, "5-",
                               ["--exit-code-on-error", "7"] + checks("fail_ratio<50%"))
    text = out + err
    assert rc == 3, "exit %d, expected 3:\n%s" % (rc, err[-4000:])
    served = target.counts()["served"]
    assert check_line(text, "fail_ratio<50%") == (
        "FAILED", "fail_ratio = 1 (%d of %d requests)" % (served, served))


def test_passing_checks_keep_exit_code_on_error(tmp_path, target):
    rc, out, err = run_counted(tmp_path, target, FAILING, "5-",
                               ["--exit-code-on-error", "7"] + checks("failures>0"))
    assert rc == 7, "exit %d, expected 7:\n%s" % (rc, err[-4000:])
    assert check_line(out + err, "failures>0")[0] == "passed"


def test_checks_in_web_mode_with_autostart_autoquit(tmp_path, target):
    """Web mode ends by itself here (--run-time, then --autoquit 1): the checks chosen hold or fail
    whatever the number of requests the run made."""
    sc = write_scenario(tmp_path, COUNTED)
    args = ["-f", sc, "-H", target.url, "-u", str(USERS), "-r", str(USERS), "-t", "3s",
            "--autostart", "--autoquit", "1", "--web-host", "127.0.0.1", "--web-port", "0",
            "--local-workers", "1", "--master-bind-host", "127.0.0.1", "--master-bind-port", "0"]
    rc, out, err = run_master(tmp_path, args + checks("rps>100000000", "requests>=0"),
                              env=marks_env(tmp_path))
    text = out + err
    assert rc == 3, "exit %d, expected 3:\n%s" % (rc, err[-4000:])
    assert check_line(text, "rps>100000000")[0] == "FAILED"
    assert check_line(text, "requests>=0")[0] == "passed"
    # and without a failing check the same run exits 0
    rc, out, err = run_master(tmp_path, args + checks("requests>=0"), env=marks_env(tmp_path))
    assert rc == 0, "exit %d:\n%s" % (rc, err[-4000:])
    assert check_line(out + err, "requests>=0")[0] == "passed"
