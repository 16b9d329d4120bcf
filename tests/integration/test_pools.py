"""Cluster-wide data pools (master/pools.c, worker/pools.c) with a web-mode master and 2 workers:
20 users contending for 5 accounts never hold one account at once (checked from every begin/end
of use, timed with the machine's monotonic clock, acrida.time(), across processes), and every
account is back in the pool (/stats/requests' "pools") after a normal stop, after a stop in the
middle of tasks that hold accounts, and, while the test runs, once a SIGKILLed worker's leases
returned (missing-worker detection). A worker frozen with SIGSTOP past that detection comes back
without using the accounts the master gave away meanwhile (its users fence their leases).
examples/accounts.lua and examples/urls.lua (random rows and a queue whose rows are each used
once) run; bad declarations fail at load with file:line."""
import collections
import glob
import json
import os
import re
import signal
import time

from test_web_mode import WebMaster, http, stats, wait_state

from conftest import (Daemon, ROOT, binary, headless, marks_env, read_port_file, run_master,
                      wait_for, write_scenario)

EXAMPLES = os.path.join(ROOT, "examples")

ACCOUNTS_CSV = "user,password\n" + "".join("acct%d,pw%d\n" % (i, i) for i in range(5))

# The account pool, and ev(): each worker process appends "KIND account user_id monotonic_s"
# lines to its own file.
EVENT_LOG = """
local acrida = require "acrida"
local accounts = acrida.pool("accounts", { csv = "accounts.csv" })
local log
if acrida.runner.role == "worker" then
  log = assert(io.open(string.format("%s/ev.%d.%d", os.getenv("TEST_MARKS_DIR"),
                                     math.random(1e9), math.random(1e9)), "a"))
end
local function ev(kind, account, self)
  log:write(string.format("%s %s %d %.9f\\n", kind, account, self.id, acrida.time()))
  log:flush()
end
"""

# Each task: lease, B, a request held HOLD_MS, E, release.
CONTEND = EVENT_LOG + """
acrida.user {
  name = "Contender", wait_time = acrida.constant(0),
  tasks = { function(self)
    local a = assert(accounts:acquire())
    ev("B", a.user, self)
    self.client:get("/delay/HOLD_MS", { name = "/hold" })
    acrida.sleep(0.005)
    ev("E", a.user, self)
    accounts:release(a)
  end },
}
"""

# Users lease an account in on_start and keep it.
HOLD = """
local acrida = require "acrida"
local accounts = acrida.pool("accounts", { csv = "accounts.csv" })
acrida.user {
  name = "Holder", wait_time = acrida.constant(0.2),
  on_start = function(self) self.account = assert(accounts:acquire()) end,
  tasks = { function(self) self.client:get("/", { name = "/held" }) end },
}
"""


def prepare(tmp_path, scenario):
    (tmp_path / "accounts.csv").write_text(ACCOUNTS_CSV)
    return write_scenario(tmp_path, scenario)


def start(tmp_path, sc, target, nworkers=2):
    env = marks_env(tmp_path)
    m = WebMaster(tmp_path, ["-f", sc, "-H", target.url])
    port = read_port_file(m.port_file, "master")
    workers = [Daemon([binary("acrida-worker"), "--master-port", str(port), "-f", sc], tmp_path,
                      "worker%d" % i, env=env) for i in range(nworkers)]
    wait_for(lambda: len([w for w in stats(m)["workers"] if w["state"] == "ready"]) == nworkers,
             what="%d ready workers" % nworkers)
    return m, workers


def swarm(m, users, rate):
    status, body = http(m.web + "/swarm", "POST", form={"user_count": users, "spawn_rate": rate})
    assert status == 200, body


def stop_all(m, workers, master_rc=0):
    for w in workers:
        rc = w.stop()
        assert rc in (0, -signal.SIGKILL), "%s exited %s:\n%s" % (w.name, rc, w.log()[-3000:])
    assert m.stop() == master_rc, m.log()[-3000:]


def pool(m):
    return stats(m)["pools"]["accounts"]


def events(tmp_path):
    out = []
    for f in glob.glob(str(tmp_path / "marks" / "ev.*")):
        with open(f) as fh:
            for line in fh:
                kind, acct, uid, t = line.split()
                out.append((float(t), kind, acct, int(uid)))
    return out


def assert_exclusive(evs, stops=()):
    """Per account, in monotonic time order: B only when nobody holds it, E by the holder. A task
    cut by a test's stop has no E: @stops (time.monotonic(), the same CLOCK_MONOTONIC as
    acrida.time(), taken once a test had stopped) end every hold."""
    by = collections.defaultdict(list)
    for t, kind, acct, uid in evs:
        by[acct].append((t, kind, uid))
    for acct, lst in by.items():
        lst.sort()
        holder = None
        pending = sorted(stops)
        for t, kind, uid in lst:
            while pending and pending[0] < t:
                pending.pop(0)
                holder = None
            if kind == "B":
                assert holder is None, "%s used by users %d and %d at once (t=%.9f)" % (
                    acct, holder, uid, t)
                holder = uid
            else:
                assert holder == uid, "%s released by %d while held by %s" % (acct, uid, holder)
                holder = None
    return by


def assert_all_back(m):
    p = wait_for(lambda: (lambda d: d if d["available"] == 5 else None)(pool(m)),
                 what="every account back in the pool")
    assert p == {"size": 5, "available": 5, "leased": 0, "waiting": 0}, p


def test_contention_exclusive_and_all_back_after_stop(tmp_path, target):
    sc = prepare(tmp_path, CONTEND.replace("HOLD_MS", "5"))
    m, workers = start(tmp_path, sc, target)
    try:
        assert pool(m) == {"size": 5, "available": 5, "leased": 0, "waiting": 0}
        swarm(m, 20, 20)
        wait_for(lambda: sum(1 for e in events(tmp_path) if e[1] == "E") >= 400, timeout=300,
                 what="400 completed account uses")
        p = pool(m)
        assert p["leased"] + p["available"] == 5, p
        http(m.web + "/stop", "POST")
        wait_state(m, "stopped")
        assert_all_back(m)
        evs = events(tmp_path)
        by = assert_exclusive(evs)
        assert sorted(by) == ["acct%d" % i for i in range(5)], sorted(by)
        # users of both workers (worker index = id // 1e9) used accounts
        assert len({uid // 1000000000 for _, _, _, uid in evs}) == 2
        assert len({uid for _, _, _, uid in evs}) > 5  # many users took turns
    finally:
        stop_all(m, workers)


def test_stop_mid_task_returns_every_account(tmp_path, target):
    sc = prepare(tmp_path, CONTEND.replace("HOLD_MS", "300"))
    m, workers = start(tmp_path, sc, target)
    try:
        swarm(m, 20, 20)
        # all 5 accounts held (mid-task) and users waiting for them
        wait_for(lambda: (lambda p: p["leased"] == 5 and p["waiting"] > 0)(pool(m)),
                 what="5 accounts leased with waiters")
        http(m.web + "/stop", "POST")
        wait_state(m, "stopped")
        stopped = time.monotonic()
        assert_all_back(m)
        assert_exclusive(events(tmp_path))
        # a second test leases them again
        before = len(events(tmp_path))
        swarm(m, 20, 20)
        wait_for(lambda: len(events(tmp_path)) >= before + 20, what="uses in the second test")
        http(m.web + "/stop", "POST")
        wait_state(m, "stopped")
        assert_all_back(m)
        assert_exclusive(events(tmp_path), [stopped])
    finally:
        stop_all(m, workers)


def test_killed_worker_leases_return(tmp_path, target):
    sc = prepare(tmp_path, HOLD)
    m, workers = start(tmp_path, sc, target)
    try:
        swarm(m, 4, 10)
        wait_for(lambda: pool(m)["leased"] == 4 and
                 all(w["user_count"] == 2 for w in stats(m)["workers"]),
                 what="4 accounts held, 2 users per worker")
        workers[0].proc.send_signal(signal.SIGKILL)
        workers[0].proc.wait(60)

        def settled():
            d = stats(m)
            live = [w for w in d["workers"] if w["state"] != "missing"]
            missing = [w for w in d["workers"] if w["state"] == "missing"]
            p = d["pools"]["accounts"]
            users = sum(w["user_count"] for w in live)
            # each live user holds or waits for one account and nothing else is held: the dead
            # worker's leases came back (without that, leased + waiting = users + 2)
            if missing and users > 0 and p["leased"] + p["waiting"] == users and \
                    p["leased"] + p["available"] == 5 and d["state"] in ("running", "spawning"):
                return p
            return None

        p = wait_for(settled, what="the killed worker's accounts back in the pool")
        assert p["leased"] <= 4, p
        assert "setting state to missing" in m.log()
        http(m.web + "/stop", "POST")
        wait_state(m, "stopped")
        assert_all_back(m)
    finally:
        stop_all(m, workers, master_rc=4)  # 4: the killed worker's last report interval was lost


def test_example_accounts(tmp_path, target):
    prefix = str(tmp_path / "acc")
    rc, out, err = run_master(tmp_path, headless(os.path.join(EXAMPLES, "accounts.lua"),
                                                 target.url, 8, 8, "6s",
                                                 extra=["--csv", prefix]))
    assert rc == 0, err[-4000:]
    with open(prefix + "_stats.csv") as f:
        rows = {r.split(",")[1].strip('"'): r for r in f.read().splitlines()[1:]}
    # 5 accounts, each leased once by a user that keeps it: exactly 5 logins; 3 users waited
    assert rows["/login"].split(",")[2] == "5", rows["/login"]
    assert int(rows["/home"].split(",")[2]) > 0


def test_example_urls_queue_once_random_all(tmp_path, target):
    m = WebMaster(tmp_path, ["-f", os.path.join(EXAMPLES, "urls.lua"), "-H", target.url,
                             "--local-workers", "2"])
    try:
        wait_for(lambda: len([w for w in stats(m)["workers"] if w["state"] == "ready"]) == 2,
                 what="2 ready workers")
        swarm(m, 4, 4)

        def count(name):
            rows = [r for r in stats(m)["stats"] if r["name"] == name]
            return rows[0]["num_requests"] if rows else 0

        wait_for(lambda: count("/order") == 20 and all(
            count(n) > 0 for n in ("home", "status", "bytes", "delay")), timeout=300,
            what="20 orders and every URL")
        q = stats(m)["pools"]["orders"]
        assert q["available"] == 0 and q["size"] == 20, q
        http(m.web + "/stop", "POST")
        wait_state(m, "stopped")
        assert count("/order") == 20  # each row once across the cluster, never more
        assert stats(m)["pools"]["urls"]["size"] == 4
    finally:
        assert m.stop() == 0, m.log()[-3000:]


def test_bad_declarations_fail_at_load(tmp_path, target):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3\n")
    cases = [
        ('acrida.pool("x", { rows = {}, mode = "lifo" })',
         "scenario.lua:3: acrida.pool('x'): unknown mode 'lifo'"),
        ('acrida.pool("x", { csv = "bad.csv" })',
         "bad.csv:3: record has 1 field, the header has 2"),
        ('acrida.pool("x", { csv = "nope.csv" })', "nope.csv: cannot open"),
        ('acrida.pool("x", { mode = "queue" })', "scenario.lua:3: acrida.pool('x'): give exactly"),
    ]
    for decl, want in cases:
        sc = write_scenario(tmp_path, 'local acrida = require "acrida"\n'
                            'acrida.user { name = "U", tasks = { function() end } }\n' + decl + "\n")
        rc, out, err = run_master(tmp_path, headless(sc, target.url, 1, 1, "1s"))
        assert rc == 1, (decl, rc, err[-2000:])
        assert want in err, (want, err[-2000:])


# Each task: lease, a begin request, a sleep, an end request, release; B/U/E marks around them.
FENCE = EVENT_LOG + """
acrida.user {
  name = "Fenced", wait_time = acrida.constant(0),
  tasks = { function(self)
    local a = assert(accounts:acquire())
    ev("B", a.user, self)
    self.client:get("/delay/20", { name = "/begin", query = { account = a.user } })
    ev("U", a.user, self)
    acrida.sleep(0.3)
    self.client:get("/", { name = "/end", query = { account = a.user } })
    ev("E", a.user, self)
    accounts:release(a)
  end },
}
"""


def uses(evs):
    """Per account, every use [first, last mark] of one user: from its B to its E, or to its last
    mark when the use was cut (a fenced user, a stopped test)."""
    out = collections.defaultdict(list)
    open_ = {}
    for t, kind, acct, uid in sorted(evs):
        key = (acct, uid)
        if kind == "B":
            assert key not in open_, "user %d began %s twice" % (uid, acct)
            open_[key] = [t, t]
            out[acct].append((uid, open_[key]))
        else:
            assert key in open_, "user %d used %s without leasing it (t=%.9f)" % (uid, acct, t)
            open_[key][1] = t
            if kind == "E":
                del open_[key]
    return out


def assert_no_overlap(evs):
    for acct, lst in uses(evs).items():
        lst.sort(key=lambda u: u[1][0])
        for (u1, (b1, e1)), (u2, (b2, e2)) in zip(lst, lst[1:]):
            assert e1 < b2, "%s used by users %d [%.3f, %.3f] and %d [%.3f, %.3f] at once" % (
                acct, u1, b1, e1, u2, b2, e2)


def test_silent_worker_fences_its_leases(tmp_path, target):
    """A worker frozen (SIGSTOP) past the master's missing-worker detection comes back: its users
    that held accounts must not use them any more (the master gave them to the other worker's
    users), they are fenced (exception rows) and replaced, and every account is back at the end."""
    sc = prepare(tmp_path, FENCE)
    m, workers = start(tmp_path, sc, target)
    frozen = workers[0]
    try:
        swarm(m, 12, 12)
        index = int(wait_for(lambda: re.search(r"worker index (\d+)", frozen.log()),
                             what="the worker's index").group(1))

        def mine(e):
            return e[3] // 1000000000 == index

        wait_for(lambda: sum(1 for e in events(tmp_path) if e[1] == "E" and mine(e)) >= 10 and
                 (lambda p: p["leased"] == 5 and p["waiting"] > 0)(pool(m)),
                 timeout=300, what="both workers' users using accounts, users waiting")
        frozen.proc.send_signal(signal.SIGSTOP)
        wait_for(lambda: any(w["state"] == "missing" for w in stats(m)["workers"]),
                 what="the frozen worker marked missing")
        missing_at = time.monotonic()
        # the other worker's users took every account, those the frozen users held included
        wait_for(lambda: len({e[2] for e in events(tmp_path)
                              if e[0] > missing_at and e[1] == "B" and not mine(e)}) == 5,
                 what="every account leased by the other worker")
        frozen.proc.send_signal(signal.SIGCONT)
        resumed_at = time.monotonic()
        wait_for(lambda: all(w["state"] != "missing" for w in stats(m)["workers"]),
                 what="the frozen worker back")
        wait_for(lambda: sum(1 for e in events(tmp_path)
                             if e[0] > resumed_at and e[1] == "E" and mine(e)) >= 5,
                 timeout=300, what="the resumed worker's users using accounts again")
        http(m.web + "/stop", "POST")
        wait_state(m, "stopped")
        assert_all_back(m)
        assert_no_overlap(events(tmp_path))
        status, body = http(m.web + "/exceptions")
        fenced = [x for x in json.loads(body)["exceptions"] if "lease lost" in x["msg"]]
        assert sum(x["count"] for x in fenced) > 0, body[:3000]
        assert all(re.match(r"lease lost: no word from the master for \d+\.\d s; user Fenced "
                            r"(restarted|ended without on_stop)", x["msg"]) for x in fenced), fenced
        assert "stopped using them (fenced)" in frozen.log()
        print("fenced:", [(x["msg"], x["count"]) for x in fenced])
    finally:
        if frozen.alive():
            frozen.proc.send_signal(signal.SIGCONT)
        stop_all(m, workers, master_rc=1)  # 1: the fenced users' exception rows
