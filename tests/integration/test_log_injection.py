"""Log and console injection (issue #11, docs/security.md "Logs and the console"): strings a peer
controls -- a custom message type, a node id, an exception message and traceback, a stats entry
name, an error text -- carry newlines, carriage returns, ANSI sequences, C1 controls, bidi
overrides and fake log lines. The master's log (stderr and --logfile) must stay one record per
line, each starting with its timestamp, with no raw control byte; the console tables must not
pass an escape sequence to the operator's terminal. The escaped forms must be there (the lines
were written, visibly)."""
import re
import signal
import time

import msgpack
import zmq

from conftest import start_master, wait_for, write_scenario
from fakepeer import FakeWorker, dealer
from test_protocol import OK, zero_entry

INJECT = "\n2030-01-01T00:00:00.000Z INFO master: forged line\r\x1b[31mred\x1b]0;title\x07"
# A registered worker's id: ids may hold any byte but C0 and DEL, so C1 (8-bit CSI) and bidi
# overrides reach the log unless escaped.
NODE = "fake-\u009b31m-\u202e-evil"
# A peer whose routing id holds C0 controls: refused as a node id, logged by the master.
BAD_NODE = b"bad\n\r\x1b[31m\x1b]0;title\x07"

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) \S+: ")
# raw control characters a terminal acts on: C0 but tab (never written either), DEL, C1, the line
# separators and bidi controls
RAW = re.compile("[\x00-\x1f\x7f\u0080-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def entry(name, method):
    e = zero_entry(name, method)
    e.update({"num_requests": 1, "total_response_time": 5, "max_response_time": 5,
              "min_response_time": 5, "response_times": {5: 1},
              "last_request_timestamp": time.time()})
    return e


def report(final):
    name = "/x" + INJECT
    return {"stats": [entry(name, "GET" + INJECT)], "stats_total": zero_entry("Aggregated", ""),
            "errors": {"k": {"name": name, "method": "GET", "error": "HTTP 500" + INJECT,
                             "occurrences": 1}},
            "user_classes_count": {}, "user_count": 0, "acrida_final": final}


def assert_clean_log(raw, who):
    text = raw.decode("utf-8")  # invalid UTF-8 would have been escaped too
    lines = text.split("\n")
    assert lines[-1] == "", "%s does not end with a newline" % who
    for ln in lines[:-1]:
        assert TIMESTAMP.match(ln), "%s: a line without its timestamp: %r" % (who, ln)
        m = RAW.search(ln)
        assert not m, "%s: raw %r in %r" % (who, m.group(0), ln)
    # no record was split: the forged text stays inside the record that carried it
    assert not any(ln.startswith("2030-") for ln in lines), who
    return text


def test_peer_strings_are_escaped_in_the_log_and_the_console(tmp_path, target):
    sc = write_scenario(tmp_path, OK)
    logfile = tmp_path / "master.logfile"
    m, port = start_master(tmp_path, ["-f", sc, "-H", target.url, "-u", "2", "-r", "2", "-t",
                                      "10m", "--headless", "--local-workers", "1",
                                      "--logfile", str(logfile)])
    wait_for(lambda: target.counts()["served"] > 0, what="load")
    fake = FakeWorker(port, NODE)

    def stop(_data):
        fake.send("client_stopped", None)
        fake.send("stats", report(True))

    fake.on["stop"] = stop
    ctx = zmq.Context()
    bad = dealer(ctx, BAD_NODE)
    ghost = dealer(ctx, "ghost\u009b")
    try:
        fake.send("client_ready", "acrida/evil" + INJECT)
        fake.pump(lambda t: t == "ack", what="ack")
        fake.send("stats", report(False))
        fake.send("exception", {"msg": "boom" + INJECT, "traceback": "tb line 1" + INJECT})
        fake.send("evil_type" + INJECT, {"x": 1})
        fake.pump(lambda t: "Unknown message type received from" in m.log(),
                  what="the custom message logged")
        bad.connect("tcp://127.0.0.1:%d" % port)
        bad.send(msgpack.packb(["client_ready", "x", BAD_NODE.decode()]))
        ghost.connect("tcp://127.0.0.1:%d" % port)
        ghost.send(msgpack.packb(["stats" + INJECT, {}, "ghost\u009b"]))
        fake.pump(lambda t: "routing id is not a printable node id" in m.log() and
                  "not a registered worker" in m.log(), what="the rogue peers logged")
        m.proc.send_signal(signal.SIGTERM)
        fake.pump(lambda t: t == "quit", what="quit")
        m.proc.wait(timeout=120)
    finally:
        bad.close()
        ghost.close()
        ctx.term()
        fake.close()
    rc = m.stop()
    assert rc == 1, "exit %s (errors and exceptions were reported):\n%s" % (rc, m.log()[-3000:])

    with open(m.log_path, "rb") as f:
        err = assert_clean_log(f.read(), "stderr")
    with open(str(logfile), "rb") as f:
        assert_clean_log(f.read(), "--logfile")
    # the lines were written, escaped: the custom type, the registered and the refused node ids,
    # the unregistered peer's message type
    assert "evil_type\\n2030-01-01T00:00:00.000Z INFO master: forged line\\r\\x1b[31mred" \
           "\\x1b]0;title\\x07" in err, err[-3000:]
    assert "fake-\\u009b31m-\\u202e-evil" in err, err[-3000:]
    assert "bad\\n\\r\\x1b[31m\\x1b]0;title\\x07" in err, err[-3000:]
    assert "ghost\\u009b" in err and "stats\\n2030-" in err, err[-3000:]

    out = m.stdout()
    for ln in out.split("\n"):
        r = RAW.search(ln)
        assert not r, "console: raw %r in %r" % (r.group(0), ln)
        assert not TIMESTAMP.match(ln), "console: a line that reads as a log record: %r" % ln
    # the tables show the entry, the error and the exception, escaped (a traceback keeps its
    # lines, indented, each escaped)
    assert "/x\\n2030-01-01T00:00:00.000Z INFO master: forged line\\r\\x1b[31mred" in out, out
    assert "HTTP 500\\n2030-" in out and "boom\\n2030-" in out, out
    assert "tb line 1\n" in out and " 2030-01-01T00:00:00.000Z INFO master: forged line\\r" in out, out
