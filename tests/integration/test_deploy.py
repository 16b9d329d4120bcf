"""Deployment (#10, docs/deploy.md): `make install` into a temporary DESTDIR (the installed files,
their modes, the installed binaries' --version), the systemd units of deploy/ checked by
`systemd-analyze verify` and `systemd-analyze security --offline`, deploy/acrida.env against both
daemons' options, and the units' command lines run the way systemd runs them (the installed
environment file, the specifiers expanded), a master and two workers running a test. No systemd
PID 1 is needed: the checks that need systemd-analyze skip, saying so, when it is missing
(deploy/install-deps.sh installs it)."""
import json
import os
import re
import shlex
import shutil
import socket
import stat
import subprocess
import urllib.parse
import urllib.request

import pytest

from conftest import BUILD, ROOT, SAN, Daemon, Target, read_port_file, wait_for, write_scenario

UNITS = ("acrida-master.service", "acrida-worker@.service")
BINARIES = ("acrida-master", "acrida-worker", "acrida-target")
# Options that are not settings: the help, the version, --gen-key (an action), and Locust's
# ignored role flags.
NOT_SETTINGS = {"help", "version", "master", "worker", "gen-key"}


def make_install(destdir, *assignments):
    """Runs `make install DESTDIR=@destdir` against the test's build directory (and its sanitizer
    flags, so nothing is rebuilt differently); returns make's output."""
    cmd = ["make", "--no-print-directory", "-C", ROOT, "install", "DESTDIR=" + str(destdir),
           "BUILD=" + os.path.abspath(BUILD)] + list(assignments)
    if SAN:
        cmd.append("SAN=address,undefined")
    p = subprocess.run(cmd, capture_output=True, timeout=900)
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    assert p.returncode == 0, "make install failed (%d):\n%s" % (p.returncode, out[-4000:])
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A `make install PREFIX=/usr/local` tree: the path of its DESTDIR."""
    dest = tmp_path_factory.mktemp("destdir")
    make_install(dest, "PREFIX=/usr/local")
    return dest


def unit_entries(path):
    """[(section, key, value)] of a unit file, in order (systemd allows a key more than once)."""
    entries, section = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, sep, value = line.partition("=")
            assert sep, "%s: not a key=value line: %r" % (path, line)
            entries.append((section, key.strip(), value.strip()))
    return entries


def unit_map(path):
    """{(section, key): last value} of a unit file."""
    return {(s, k): v for s, k, v in unit_entries(path)}


def files_under(root):
    """{relative path: permission bits} of every file under @root."""
    found = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            found[os.path.relpath(p, root)] = stat.S_IMODE(os.lstat(p).st_mode)
    return found


def help_options(binary_path):
    """The long option names that `BINARY --help` lists."""
    out = subprocess.run([binary_path, "--help"], capture_output=True, timeout=60, check=True)
    return set(re.findall(r"^\s+(?:-\w, )?--([a-z][a-z-]*)", out.stdout.decode(), re.M))


def env_file_lines(path):
    """{NAME: value} of the commented `#ACRIDA_NAME=value` lines of an environment file, and the
    list of its uncommented assignments."""
    commented, active = {}, []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            m = re.match(r"^#(ACRIDA_[A-Z_]+)=(.*)$", line)
            if m:
                assert m.group(1) not in commented, "%s listed twice" % m.group(1)
                commented[m.group(1)] = m.group(2)
            elif line and not line.startswith("#"):
                active.append(line)
    return commented, active


def version_of(binary_path):
    p = subprocess.run([binary_path, "--version"], capture_output=True, timeout=60)
    assert p.returncode == 0, "%s --version exited %d" % (binary_path, p.returncode)
    return p.stdout.decode().strip()


def test_install_tree(installed):
    files = files_under(installed)
    doc = "usr/local/share/doc/acrida/"
    expected = {
        "usr/local/bin/acrida-master": 0o755,
        "usr/local/bin/acrida-worker": 0o755,
        "usr/local/bin/acrida-target": 0o755,
        "usr/local/lib/systemd/system/acrida-master.service": 0o644,
        "usr/local/lib/systemd/system/acrida-worker@.service": 0o644,
        "usr/local/lib/sysusers.d/acrida.conf": 0o644,
        "etc/acrida/acrida.env": 0o600,  # may hold the dashboard's password; systemd reads it as root
        doc + "README.md": 0o644,
        doc + "acrida.env": 0o644,
        doc + "proto/PROTOCOL.md": 0o644,
    }
    for name in os.listdir(os.path.join(ROOT, "docs")):
        if name.endswith(".md"):
            expected[doc + "docs/" + name] = 0o644
    for d, _, names in os.walk(os.path.join(ROOT, "examples")):
        for n in names:
            src = os.path.join(d, n)
            expected[doc + "examples/" + os.path.relpath(src, os.path.join(ROOT, "examples"))] = (
                0o755 if os.access(src, os.X_OK) else 0o644)
    assert doc + "docs/deploy.md" in expected and doc + "examples/quickstart.lua" in expected
    missing = sorted(set(expected) - set(files))
    assert not missing, "not installed: %s" % missing
    wrong = {p: "%o (expected %o)" % (files[p], m) for p, m in expected.items() if files[p] != m}
    assert not wrong, "wrong modes: %s" % wrong
    # Nothing outside the documented directories (the dashboard's screenshots are docs/img/*.png).
    allowed = ("usr/local/bin/", "usr/local/lib/systemd/system/", "usr/local/lib/sysusers.d/",
               "etc/acrida/", doc)
    stray = sorted(p for p in files if not p.startswith(allowed) or
                   (p not in expected and not re.match(re.escape(doc) + r"docs/img/[^/]+\.png$", p)))
    assert not stray, "unexpected files installed: %s" % stray
    with open(os.path.join(installed, doc, "acrida.env"), "rb") as a, \
            open(os.path.join(ROOT, "deploy", "acrida.env"), "rb") as b:
        assert a.read() == b.read()
    # The installed binaries are the built ones and run from their new place.
    for b in BINARIES:
        inst = os.path.join(installed, "usr/local/bin", b)
        with open(inst, "rb") as f1, open(os.path.join(BUILD, b), "rb") as f2:
            assert f1.read() == f2.read(), "%s differs from the build's" % inst
        v = version_of(inst)
        assert v == version_of(os.path.join(BUILD, b)) and re.match(r"^%s \S+$" % b, v), v


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None,
                    reason="systemd-sysusers is missing (Debian package systemd; deploy/install-deps.sh "
                    "installs it)")
def test_sysusers_file_creates_the_acrida_user(installed, tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for f in ("passwd", "group", "shadow", "gshadow"):
        (root / "etc" / f).write_text("")
    p = subprocess.run(["systemd-sysusers", "--root=" + str(root),
                        str(installed / "usr/local/lib/sysusers.d/acrida.conf")],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    users = [l.split(":") for l in (root / "etc/passwd").read_text().splitlines()]
    assert [(u[0], u[5], u[6]) for u in users] == [("acrida", "/var/lib/acrida", "/usr/sbin/nologin")]
    assert 0 < int(users[0][2]) < 1000, "a system user: %s" % users[0]
    assert [l.split(":")[0] for l in (root / "etc/group").read_text().splitlines()] == ["acrida"]


def test_install_follows_prefix_and_keeps_the_env_file(tmp_path):
    dest = tmp_path / "dest"
    make_install(dest, "PREFIX=/opt/acrida", "SYSCONFDIR=/opt/acrida/etc")
    unitdir = dest / "opt/acrida/lib/systemd/system"
    master = unit_map(unitdir / "acrida-master.service")
    worker = unit_map(unitdir / "acrida-worker@.service")
    assert master[("Service", "ExecStart")].split()[0] == "/opt/acrida/bin/acrida-master"
    assert worker[("Service", "ExecStart")].split()[0] == "/opt/acrida/bin/acrida-worker"
    for u in (master, worker):
        assert u[("Service", "EnvironmentFile")] == "/opt/acrida/etc/acrida/acrida.env"
        assert u[("Unit", "Documentation")] == \
            "file:/opt/acrida/share/doc/acrida/docs/deploy.md"
    for name in UNITS:
        text = (unitdir / name).read_text()
        assert "/usr/local" not in text and " /etc/acrida" not in text, name
    assert (dest / "opt/acrida/bin/acrida-worker").exists()
    assert (dest / "opt/acrida/lib/sysusers.d/acrida.conf").exists()
    # An upgrade keeps the operator's settings; the new example is in the docs.
    env = dest / "opt/acrida/etc/acrida/acrida.env"
    env.write_text("ACRIDA_MASTER_HOST=10.1.2.3\n")
    out = make_install(dest, "PREFIX=/opt/acrida", "SYSCONFDIR=/opt/acrida/etc")
    assert env.read_text() == "ACRIDA_MASTER_HOST=10.1.2.3\n"
    assert "keeping" in out and str(env) in out, out[-2000:]
    assert (dest / "opt/acrida/share/doc/acrida/acrida.env").read_text() == \
        open(os.path.join(ROOT, "deploy", "acrida.env")).read()


def units_for_analysis(installed, tmp_path):
    """Copies of the installed units whose paths point into the DESTDIR (systemd-analyze verify
    checks that ExecStart's binary exists), with an instance of the worker template; returns
    {name: path} for acrida-master.service and acrida-worker@1.service."""
    d = tmp_path / "units"
    d.mkdir()
    for name in UNITS:
        text = (installed / "usr/local/lib/systemd/system" / name).read_text()
        rewritten = text.replace("/usr/local/bin/", "%s/usr/local/bin/" % installed)
        rewritten = rewritten.replace("/etc/acrida/", "%s/etc/acrida/" % installed)
        assert rewritten != text
        (d / name).write_text(rewritten)
    os.symlink("acrida-worker@.service", str(d / "acrida-worker@1.service"))
    return {n: str(d / n) for n in ("acrida-master.service", "acrida-worker@1.service")}


def systemd_analyze(*args):
    p = subprocess.run(["systemd-analyze"] + list(args), capture_output=True, timeout=300)
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace")


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is missing (Debian package systemd; deploy/install-deps.sh installs it)")


@needs_systemd_analyze
def test_units_pass_systemd_analyze_verify(installed, tmp_path):
    units = units_for_analysis(installed, tmp_path)
    for name, path in units.items():
        rc, out = systemd_analyze("verify", path)
        # Warnings (an unknown key, a value that does not parse) exit 0: any output about our
        # unit fails the test too.
        ours = [l for l in out.splitlines() if "acrida" in l]
        assert rc == 0 and not ours, "systemd-analyze verify %s: exit %d\n%s" % (name, rc, out)
    # The check can fail: a unit with a misspelt key, and one whose binary is missing.
    bad = tmp_path / "units" / "acrida-bad.service"
    bad.write_text(open(units["acrida-master.service"]).read().replace("NoNewPrivileges=",
                                                                       "NoNewPrivilege="))
    rc, out = systemd_analyze("verify", str(bad))
    assert "Unknown key" in out and "NoNewPrivilege" in out, out
    missing = tmp_path / "units" / "acrida-missing.service"
    missing.write_text(open(units["acrida-master.service"]).read().replace(
        "/bin/acrida-master", "/bin/acrida-nothing"))
    rc, out = systemd_analyze("verify", str(missing))
    assert rc != 0 and "acrida-nothing" in out, out


@needs_systemd_analyze
def test_units_hardening_exposure(installed, tmp_path):
    units = units_for_analysis(installed, tmp_path)
    for name, path in units.items():
        rc, out = systemd_analyze("security", "--offline=yes", "--no-pager", path)
        if rc != 0 and "offline" in out and "unrecognized" in out:
            pytest.skip("this systemd-analyze has no security --offline (systemd < 250)")
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
        assert m, "no exposure level for %s (exit %d):\n%s" % (name, rc, out[-3000:])
        level = float(m.group(1))
        print("%s: systemd-analyze security exposure %.1f" % (name, level))
        # 1.7 when written (0 is a unit without network; 10 an unprotected one): anything
        # above 2.5 means a hardening option was lost.
        assert level <= 2.5, "%s exposure %.1f:\n%s" % (name, level, out)


def test_unit_settings(installed):
    unitdir = installed / "usr/local/lib/systemd/system"
    hardening = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet": "",
        "Restart": "always", "User": "acrida", "Group": "acrida", "KillMode": "mixed",
        "RestartPreventExitStatus": "2",
    }
    for name in UNITS:
        u = unit_map(unitdir / name)
        for key, value in hardening.items():
            assert u.get(("Service", key)) == value, "%s: %s=%r" % (name, key, u.get(("Service", key)))
        assert u[("Unit", "After")] == "network-online.target"
        assert u[("Unit", "Wants")] == "network-online.target"
        assert u[("Install", "WantedBy")] == "multi-user.target"
        assert ("Service", "MemoryDenyWriteExecute") not in u, "LuaJIT's JIT needs W^X toggling"
        assert 1 <= float(u[("Service", "RestartSec")].rstrip("s")) <= 10
    master = unit_map(unitdir / "acrida-master.service")
    worker = unit_map(unitdir / "acrida-worker@.service")
    assert master[("Service", "ExecStart")] == "/usr/local/bin/acrida-master --headless=false"
    assert master[("Service", "StateDirectory")] == "acrida"
    assert master[("Service", "WorkingDirectory")] == "/var/lib/acrida"
    assert worker[("Service", "ExecStart")] == "/usr/local/bin/acrida-worker --node-id %H_%i"
    assert int(worker[("Service", "LimitNOFILE")]) >= 65536
    assert int(master[("Service", "LimitNOFILE")]) >= 65536


def test_env_file_lists_every_option(installed):
    commented, active = env_file_lines(installed / "usr/local/share/doc/acrida/acrida.env")
    assert not active, "every line is commented out (the defaults apply): %s" % active
    options = set()
    for b in ("acrida-master", "acrida-worker"):
        options |= help_options(os.path.join(installed, "usr/local/bin", b))
    assert {"users", "master-host", "node-id", "config"} <= options, options
    names = {"ACRIDA_" + o.upper().replace("-", "_") for o in options - NOT_SETTINGS}
    assert not names - set(commented), (
        "options missing from deploy/acrida.env (add each as a commented line with its "
        "default): %s" % sorted(names - set(commented)))
    assert not set(commented) - names, "acrida.env lists what is no option: %s" % sorted(
        set(commented) - names)


# The commented lines of acrida.env that are examples rather than defaults: left commented when
# the test turns the file's defaults on.
EXAMPLE_VALUES = {"ACRIDA_CONFIG", "ACRIDA_SCENARIO", "ACRIDA_NODE_ID", "ACRIDA_WEB_AUTH",
                  "ACRIDA_TLS_CERT", "ACRIDA_TLS_KEY", "ACRIDA_HOST", "ACRIDA_CLUSTER_KEY"}


def systemd_env(path):
    """The variables systemd's EnvironmentFile= sets from @path (our files use only plain
    NAME=value lines), over the few a service gets from the manager."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    for k, v in os.environ.items():  # the sanitizer runtime's settings, under test-san
        if k.startswith(("ASAN_", "UBSAN_", "LSAN_")):
            env[k] = v
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith(("#", ";")):
                k, _, v = line.partition("=")
                env[k.strip()] = v.strip()
    return env


def exec_start(installed, unit, instance=None):
    """The ExecStart= command line of an installed unit as systemd runs it: %H is the host name,
    %i the instance, the binary in the DESTDIR."""
    line = unit_map(installed / "usr/local/lib/systemd/system" / unit)[("Service", "ExecStart")]
    line = line.replace("%H", socket.gethostname())
    if instance is not None:
        line = line.replace("%i", instance)
    assert "%" not in line, line
    argv = shlex.split(line)
    argv[0] = os.path.join(str(installed), argv[0].lstrip("/"))
    return argv


def http(url, data=None):
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    with urllib.request.urlopen(url, data=body, timeout=60) as r:
        return json.load(r) if "json" in r.headers.get("Content-Type", "") else r.read()


def test_units_run_with_the_env_file(installed, tmp_path):
    """The file's every default turned on, the test's few settings added (ports 0, the target):
    the master's and two workers' ExecStart lines run a test; each worker's id is <hostname>_I."""
    target = Target(tmp_path)
    procs = []
    try:
        commented, _ = env_file_lines(installed / "etc/acrida/acrida.env")
        scenario = write_scenario(tmp_path, 'local acrida = require "acrida"\n'
                                  'acrida.user { name = "Fleet", wait_time = acrida.constant(0.1),\n'
                                  '  tasks = { function(self) self.client:get("/") end } }\n')
        ports = tmp_path / "master.ports"
        lines = ["%s=%s" % (k, v) for k, v in commented.items() if k not in EXAMPLE_VALUES]
        lines += ["ACRIDA_SCENARIO=" + scenario, "ACRIDA_HOST=" + target.url,
                  "ACRIDA_MASTER_BIND_HOST=127.0.0.1", "ACRIDA_MASTER_BIND_PORT=0",
                  "ACRIDA_WEB_PORT=0", "ACRIDA_PORT_FILE=" + str(ports)]
        master_env = tmp_path / "master.env"
        master_env.write_text("\n".join(lines) + "\n")
        master = Daemon(exec_start(installed, "acrida-master.service"), tmp_path, "master",
                        env=systemd_env(master_env))
        procs.append(master)
        port = wait_for(lambda: read_port_file(str(ports), "master") or
                        (not master.alive() and master.log()), what="the master's port file")
        assert isinstance(port, int), "the master exited %s:\n%s" % (master.proc.returncode, port)
        web = "http://127.0.0.1:%d" % read_port_file(str(ports), "web")
        worker_env = tmp_path / "worker.env"
        worker_env.write_text("\n".join(lines + ["ACRIDA_MASTER_PORT=%d" % port]) + "\n")
        for i in ("1", "2"):
            procs.append(Daemon(exec_start(installed, "acrida-worker@.service", i), tmp_path,
                                "worker" + i, env=systemd_env(worker_env)))
        host = socket.gethostname()
        ids = {host + "_1", host + "_2"}

        def ready():
            for d in procs:
                assert d.alive(), "%s exited %s:\n%s" % (d.name, d.proc.returncode, d.log())
            ws = http(web + "/stats/requests")["workers"]
            return {w["id"] for w in ws if w["state"] == "ready"} == ids

        wait_for(ready, what="workers %s ready" % sorted(ids))
        assert http(web + "/swarm", {"user_count": 2, "spawn_rate": 2})["success"] is True
        wait_for(lambda: target.counts()["served"] >= 20, what="20 requests served")
        http(web + "/stop")
        wait_for(lambda: http(web + "/stats/requests")["state"] == "stopped", what="stopped")
        assert {w["id"] for w in http(web + "/stats/requests")["workers"]} == ids
        for d in reversed(procs):
            rc = d.stop()
            assert rc == 0, "%s exited %d:\n%s" % (d.name, rc, d.log()[-3000:])
        procs = []
    finally:
        for d in procs:
            d.stop()
        target.stop()
