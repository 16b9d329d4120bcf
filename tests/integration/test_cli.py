"""The command line: a --host without a scheme is refused at start-up with the fix, --help marks the
options that do not work yet, Locust's --master/--worker flags are accepted, and a normal stop logs
the workers' return to ready as such."""
import json
import os
import re
import signal
import subprocess

import pytest

from conftest import Daemon, aggregated, binary, start_master, wait_for, write_scenario

ONLY_OK = """
local acrida = require "acrida"
acrida.user { name = "Ok", tasks = { function(self) self.client:get("/") end } }
"""


# a master that wrongly accepted its options gives up quickly instead of waiting for workers
NO_WAIT = ["--expect-workers-max-wait", "2"]


def run(args, env=None, cwd=None):
    p = subprocess.run(args, capture_output=True, timeout=120, env=env, cwd=cwd)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACRIDA_")}
    env.update(extra)
    return env


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost"])
def test_host_without_scheme_is_refused_with_the_fix(tmp_path, host):
    sc = write_scenario(tmp_path, ONLY_OK)
    rc, out, err = run([binary("acrida-master"), "-f", sc, "-H", host, "--headless", *NO_WAIT],
                       env=clean_env(), cwd=str(tmp_path))
    assert rc == 2, (rc, err)
    assert "--host '%s' has no scheme: use --host http://%s" % (host, host) in err, err
    # the same check for the environment and a config file
    rc, out, err = run([binary("acrida-master"), "-f", sc, "--headless", *NO_WAIT],
                       env=clean_env(ACRIDA_HOST=host), cwd=str(tmp_path))
    assert rc == 2 and "has no scheme" in err, (rc, err)
    (tmp_path / "acrida.conf").write_text("host = %s\n" % host)
    rc, out, err = run([binary("acrida-master"), "-f", sc, "--headless", *NO_WAIT],
                       env=clean_env(), cwd=str(tmp_path))
    assert rc == 2 and "has no scheme" in err, (rc, err)


@pytest.mark.parametrize("host, why", [("ftp://example.com", "must be an http:// or https:// URL"),
                                       ("http://", "has no host name"),
                                       ("http://\u00e9.example", "must be ASCII (a name in punycode"),
                                       ("https://:8080/x", "has no host name")])
def test_host_that_is_no_http_url_is_refused(tmp_path, host, why):
    sc = write_scenario(tmp_path, ONLY_OK)
    rc, out, err = run([binary("acrida-master"), "-f", sc, "-H", host, "--headless", *NO_WAIT],
                       env=clean_env(), cwd=str(tmp_path))
    assert rc == 2 and why in err, (rc, err)


def help_entries(text):
    """{"--name": "the option's help text"} from --help output (entries may wrap a line)."""
    entries, name = {}, None
    for line in text.splitlines():
        m = re.match(r"\s+(?:-\w, )?(--[\w-]+)(.*)", line)
        if m:
            name = m.group(1)
            entries[name] = m.group(2)
        elif name and line.startswith(" "):
            entries[name] += " " + line.strip()
        else:
            name = None
    return entries


def test_help_says_not_yet_for_what_does_not_work(tmp_path):
    rc, out, err = run([binary("acrida-master"), "--help"], env=clean_env(), cwd=str(tmp_path))
    assert rc == 0, err
    entries = help_entries(out)
    for opt in ("--tags", "--exclude-tags", "--users", "--spawn-rate", "--run-time", "--csv",
                "--json", "--local-workers", "--autostart", "--autoquit", "--web-host", "--web-port", "--web-auth",
                "--tls-cert", "--tls-key", "--html", "--check", "--headless"):
        assert opt in entries, (opt, out)
        assert "not yet" not in entries[opt], (opt, entries[opt])
        assert "no web UI)" not in entries[opt], (opt, entries[opt])


def test_locust_role_flags_belong_to_their_daemon(tmp_path):
    sc = write_scenario(tmp_path, ONLY_OK)
    rc, out, err = run([binary("acrida-master"), "--worker", "-f", sc, "--headless", *NO_WAIT],
                       env=clean_env(), cwd=str(tmp_path))
    assert rc == 2 and "--worker" in err, (rc, err)
    rc, out, err = run([binary("acrida-worker"), "--master"], env=clean_env(), cwd=str(tmp_path))
    assert rc == 2 and "--master" in err, (rc, err)


def test_locust_command_line_flags_and_return_to_ready(tmp_path, target):
    """`acrida-master --master` and `acrida-worker --worker` run a normal test; at its stop every
    worker's client_ready is logged as its return to ready, not as a re-registration."""
    sc = write_scenario(tmp_path, ONLY_OK)
    m, port = start_master(tmp_path, ["--master", "-f", sc, "-H", target.url, "-u", "4", "-r", "4",
                                      "-t", "10m", "--headless", "--json", "--expect-workers", "2"])
    workers = [Daemon([binary("acrida-worker"), "--worker", "--exit-on-quit", "--master-port",
                       str(port), "-f", sc], tmp_path, "worker%d" % i) for i in (1, 2)]
    try:
        # SIGTERM once requests were served: the same stop as the end of --run-time
        wait_for(lambda: target.counts()["served"] > 0 or not m.alive(), what="requests")
        m.proc.send_signal(signal.SIGTERM)
        m.proc.wait(timeout=120)
        for w in workers:  # they got `quit`: a SIGTERM while they exit would race their exit
            w.proc.wait(timeout=120)
    finally:
        codes = [w.stop() for w in workers]
    assert m.stop() == 0, m.log()[-3000:]
    assert codes == [0, 0], [w.log()[-2000:] for w in workers]
    doc = json.loads(m.stdout())
    assert aggregated(doc)["num_requests"] == target.counts()["served"] > 0
    log = m.log()
    assert len(re.findall(r"\) reported as ready[.;] ", log)) == 2, log[-3000:]
    assert len(re.findall(r"\) is ready again after the stop\. ", log)) == 2, log[-3000:]
    assert "re-registered" not in log, log[-3000:]


def test_long_node_id_is_refused_when_options_are_parsed(tmp_path):
    # ZeroMQ takes routing ids of at most 255 bytes: refused at once (exit 2), not when connecting
    rc, out, err = run([binary("acrida-worker"), "--node-id", "n" * 300], env=clean_env(),
                       cwd=str(tmp_path))
    assert rc == 2, (rc, err)
    assert "--node-id is 300 bytes: at most 255" in err, err
    rc, out, err = run([binary("acrida-worker"), "--version"],
                       env=clean_env(ACRIDA_NODE_ID="n" * 300), cwd=str(tmp_path))
    assert rc == 0, (rc, err)  # --version needs no valid values


def test_shared_config_file_serves_both_daemons(tmp_path, target, monkeypatch):
    """One acrida.conf without sections holds both daemons' options: the master takes its own and
    skips the worker's keys, the worker takes its own and skips the master's."""
    sc = write_scenario(tmp_path, ONLY_OK)
    (tmp_path / "acrida.conf").write_text(
        "scenario = %s\nusers = 3\nspawn-rate = 3\nrun-time = 10m\nnode-id = shared_conf\n"
        "processes = 1\n" % sc)
    for k in [k for k in os.environ if k.startswith("ACRIDA_")]:
        monkeypatch.delenv(k)
    m, port = start_master(tmp_path, ["-H", target.url, "--headless", "--json"])
    monkeypatch.setenv("ACRIDA_MASTER_PORT", str(port))  # only known once the master is up
    w = Daemon([binary("acrida-worker"), "--exit-on-quit"], tmp_path, "worker")
    try:
        wait_for(lambda: target.counts()["served"] > 0 or not m.alive(), what="requests")
        m.proc.send_signal(signal.SIGTERM)
        m.proc.wait(timeout=120)
        w.proc.wait(timeout=120)  # it got `quit` and exits on its own
    finally:
        wrc = w.stop()
    assert m.stop() == 0, m.log()[-3000:]
    assert wrc == 0, w.log()[-3000:]
    log = m.log()
    assert "worker shared_conf-1 (index 0" in log, log[-3000:]
    assert "Sending spawn jobs of 3 users" in log, log[-3000:]
    assert aggregated(json.loads(m.stdout()))["num_requests"] == target.counts()["served"] > 0
