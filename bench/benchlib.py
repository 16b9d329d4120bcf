"""What the bench scripts share: starting the daemons and reading their port files, waiting,
/proc readings, the nginx they measure against and the machine line of their reports.

The scripts run as `python3 bench/x.py` (bench/ is then on sys.path) and bench/bench.py imports
them, so each imports this module as `benchlib`.
"""
import json
import os
import resource
import signal
import socket
import subprocess
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")


def wait_for(pred, timeout=120.0, what="condition"):
    """Polls @pred every 50 ms until it returns a true value, which it returns; raises
    RuntimeError naming @what after @timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.05)


def read_port(path, key):
    """The port @key=PORT in the --port-file @path, or None while it is not written yet."""
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                if k == key and v:
                    return int(v)
    except OSError:
        pass
    return None


def wait_port(pf, master, timeout=30):
    """The master's port from its --port-file @pf; raises RuntimeError when the process @master
    exits first or @timeout s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return int(dict(l.split("=") for l in open(pf).read().split())["master"])
        except (FileNotFoundError, KeyError, ValueError):
            if master.poll() is not None:
                raise RuntimeError("acrida-master exited with %s before binding" % master.returncode)
            time.sleep(0.05)
    raise RuntimeError("acrida-master did not write its port file within %d s" % timeout)


def write_file(path, text):
    """Writes @text to @path (a scenario) and returns @path."""
    with open(path, "w") as f:
        f.write(text)
    return path


def served(url):
    """The requests acrida-target at @url has served (its /_count)."""
    with urllib.request.urlopen(url + "/_count", timeout=60) as r:
        return json.load(r)["served"]


class Daemons:
    """The daemons a bench starts in @directory, each with its stderr in NAME.log there; stop()
    ends the ones still running by PID, the last started first."""

    def __init__(self, directory):
        self.dir = directory
        self.procs = []
        self.files = []

    def file(self, name):
        """@name in the directory, opened for writing (closed by stop())."""
        f = open(os.path.join(self.dir, name), "wb")
        self.files.append(f)
        return f

    def start(self, name, argv, stdout=subprocess.DEVNULL):
        p = subprocess.Popen(argv, stdout=stdout, stderr=self.file(name + ".log"), cwd=self.dir)
        self.procs.append(p)
        return p

    def log(self, name):
        with open(os.path.join(self.dir, name + ".log"), errors="replace") as f:
            return f.read()

    def target(self, build):
        """Starts acrida-target on port 0; returns its URL once its port file says the port."""
        pf = os.path.join(self.dir, "target.port")
        self.start("target", [os.path.join(build, "acrida-target"), "--port", "0",
                              "--port-file", pf])
        return "http://127.0.0.1:%d" % wait_for(lambda: read_port(pf, "port"),
                                                what="the target's port")

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for f in self.files:
            f.close()


def status_kib(pid, key):
    """The @key line (VmRSS, VmHWM) of /proc/@pid/status in KiB, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_seconds(pids):
    """User + system CPU seconds of @pids (the ones gone count nothing)."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / TICK


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def raise_nofile():
    """Raises the soft fd limit to the hard one (this sandbox's hard limit is 20000)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class NginxProcess:
    """nginx with the configuration @conf in @directory, pinned to core 0, once the stub_status
    at @base/nginx_status answers."""

    def __init__(self, directory, conf, base):
        self.dir = directory
        self.base = base
        path = os.path.join(directory, "nginx.conf")
        write_file(path, conf)
        self.proc = subprocess.Popen(["taskset", "-c", "0", "nginx", "-c", path, "-p", directory],
                                     preexec_fn=raise_nofile, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                self.requests()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    def requests(self):
        """The requests nginx has served, this status request included."""
        with urllib.request.urlopen(self.base + "/nginx_status", timeout=5) as r:
            text = r.read().decode()
        return int(text.splitlines()[2].split()[2])

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Nginx(NginxProcess):
    """The target of the throughput benches: one worker serving a static 100-byte file
    (/100b.txt) with keep-alive on @nports ports."""

    def __init__(self, tmp, nports=1):
        d = os.path.join(tmp, "nginx")
        www = os.path.join(d, "www")
        os.makedirs(www)
        write_file(os.path.join(www, "100b.txt"), "x" * 99 + "\n")
        self.ports = [free_port() for _ in range(nports)]
        listen = "\n".join("listen 127.0.0.1:%d backlog=65535;" % p for p in self.ports)
        self.url = "http://127.0.0.1:%d" % self.ports[0]
        super().__init__(d, """
user root;
worker_processes 1;
worker_rlimit_nofile 400000;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
daemon off;
events { worker_connections 300000; use epoll; multi_accept on; }
http {
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 3600s;
  server {
    %(listen)s
    root %(www)s;
    location = /nginx_status { stub_status; }
  }
}
""" % {"d": d, "listen": listen, "www": www}, self.url)


def measure_window(nginx, pids_fn, warm, window):
    """Counts requests (nginx) and generator CPU over [warm, warm+window] seconds from now."""
    time.sleep(warm)
    pids = pids_fn()
    r0, c0, t0 = nginx.requests(), cpu_seconds(pids), time.monotonic()
    time.sleep(window)
    r1, c1, t1 = nginx.requests(), cpu_seconds(pids), time.monotonic()
    n = r1 - r0 - 1  # the second status request itself
    return {"requests": n, "rps": n / (t1 - t0), "cpu_us_per_req": (c1 - c0) * 1e6 / max(n, 1),
            "cpu_util": (c1 - c0) / (t1 - t0)}


def start_pinned(build, tmp, master_args, env=None):
    """A headless acrida-master (--only-summary --json, @master_args, its JSON on a pipe) waiting
    for one acrida-worker, and that worker; both pinned to core 1. Returns (master, worker)."""
    pf = os.path.join(tmp, "acrida.ports")
    if os.path.exists(pf):
        os.unlink(pf)
    master = subprocess.Popen(
        ["taskset", "-c", "1", os.path.join(build, "acrida-master")] + master_args +
        ["--headless", "--only-summary", "--json", "--expect-workers", "1", "--master-bind-host",
         "127.0.0.1", "--master-bind-port", "0", "--port-file", pf],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tmp, env=env)
    port = wait_port(pf, master)
    worker = subprocess.Popen(["taskset", "-c", "1", os.path.join(build, "acrida-worker"),
                               "--exit-on-quit", "--master-host", "127.0.0.1", "--master-port",
                               str(port)], stderr=subprocess.DEVNULL, cwd=tmp, env=env)
    return master, worker


NOOP_SCENARIO = ('local acrida = require "acrida"\n'
                 'acrida.user { name = "U", tasks = { function() end } }\n')


def start_web_master(tmp, build, extra=()):
    """acrida-master in web mode (ports 0 on 127.0.0.1, -L WARNING, @extra) on a scenario whose
    user does nothing, its stderr in @tmp/master.log. Returns it, its port file and the log's
    path."""
    sc = write_file(os.path.join(tmp, "s.lua"), NOOP_SCENARIO)
    pf = os.path.join(tmp, "ports")
    log_path = os.path.join(tmp, "master.log")
    with open(log_path, "wb") as log:
        master = subprocess.Popen([os.path.join(build, "acrida-master"), "-f", sc] + list(extra) +
                                  ["--web-host", "127.0.0.1", "--web-port", "0",
                                   "--master-bind-host", "127.0.0.1", "--master-bind-port", "0",
                                   "--port-file", pf, "-L", "WARNING"],
                                  stdout=subprocess.DEVNULL, stderr=log)
    return master, pf, log_path


def version(build):
    """acrida-master --version of @build."""
    return subprocess.run([os.path.join(build, "acrida-master"), "--version"],
                          capture_output=True, text=True).stdout.strip()


def machine():
    """The CPU model and the number of CPUs."""
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return "%s, %d CPUs" % (model, os.cpu_count())


def loadavg():
    return " ".join("%.2f" % x for x in os.getloadavg())


def print_report(title, command, build, body):
    """Prints a bench's Markdown report: @title, the @command, the date, the binaries, the machine
    and its load average, then the lines @body() returns and the load average at the end."""
    binaries = version(build)
    out = [title, ""]
    out.append("`%s`, %s, binaries `%s`; %s, load average %s at the start." % (
        command, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), binaries, machine(),
        loadavg()))
    out.append("")
    out.extend(body())
    out.append("")
    out.append("Load average at the end: %s." % loadavg())
    print("\n".join(out))
