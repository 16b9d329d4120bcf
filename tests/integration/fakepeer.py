"""Protocol peers spoken by hand (pyzmq + msgpack) for the integration tests: a DEALER on the
worker side of a real master, a ROUTER on the master side of a real worker. A frame is the msgpack
array [type, data, node id] of proto/PROTOCOL.md; every wait has a deadline, never a fixed sleep.
"""
import time

import msgpack
import zmq


def dealer(ctx, identity, port=None, **options):
    """A DEALER of @ctx with the routing id @identity (str or bytes), LINGER 0 and @options
    (pyzmq socket attributes: sndhwm=100, curve_serverkey=..., set before connecting), connected
    to the master's loopback @port if one is given."""
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.IDENTITY, identity.encode() if isinstance(identity, str) else identity)
    for name, value in options.items():
        setattr(s, name, value)
    if port is not None:
        s.connect("tcp://127.0.0.1:%d" % port)
    return s


def unpack(payload):
    return msgpack.unpackb(payload, raw=False, strict_map_key=False)


class FakeWorker:
    """A worker spoken by hand: the test sends client_ready and the rest; while pumped it
    heartbeats every second in .state and runs .on[type](data) for each message it receives, which
    by default answers spawn (spawning, spawning_complete) and quit as a worker does."""

    def __init__(self, port, node, state="running", memory=None):
        self.node = node
        self.state = state
        self.memory = memory  # the heartbeat's current_memory_usage, if any
        self.ctx = zmq.Context()
        self.sock = dealer(self.ctx, node, port)
        self.seen = []
        self.next_heartbeat = 0.0
        self.on = {"spawn": self.answer_spawn, "quit": self.answer_quit}

    def send(self, mtype, data):
        self.sock.send(msgpack.packb([mtype, data, self.node]))

    def answer_spawn(self, data):
        self.send("spawning", None)
        self.send("spawning_complete", {"user_classes_count": data["user_classes_count"],
                                        "user_count": sum(data["user_classes_count"].values())})

    def answer_quit(self, _data):
        self.send("quit", None)

    def heartbeat(self):
        """Sends a heartbeat if a second has passed since the last one."""
        if time.monotonic() < self.next_heartbeat:
            return
        data = {"state": self.state, "current_cpu_usage": 1.0}
        if self.memory is not None:
            data["current_memory_usage"] = self.memory
        self.send("heartbeat", data)
        self.next_heartbeat = time.monotonic() + 1.0

    def pump(self, until, timeout=120.0, what="message"):
        """Answers the master until @until(message type) is true for a received message (returns
        its data), or @until(None) after 0.1 s without one (for a condition that is no message)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.heartbeat()
            if not self.sock.poll(100):
                if until(None):
                    return None
                continue
            mtype, data = unpack(self.sock.recv())[:2]
            self.seen.append(mtype)
            if mtype in self.on:
                self.on[mtype](data)
            if until(mtype):
                return data
        raise AssertionError("%s: no %s from the master within %.0f s (got %s)"
                             % (self.node, what, timeout, self.seen))

    def settle(self, until=lambda: True, timeout=120.0, what="message"):
        """Answers the master until 0.1 s pass without a message and @until() is true: what the
        master had sent by then has been read into .seen (for asserting what it did not send)."""
        self.pump(lambda mtype: mtype is None and until(), timeout, what)

    def close(self):
        self.sock.close()
        self.ctx.term()


class FakeMaster:
    """A master spoken by hand to one worker: a ROUTER on loopback @port (a free one if None, in
    .port); every message received is kept in .seen."""

    def __init__(self, port=None):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        if port is None:
            self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        else:
            self.sock.bind("tcp://127.0.0.1:%d" % port)
            self.port = port
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)
        self.seen = []

    def recv(self, want, timeout=120.0):
        """The next message of type @want (a type or a tuple of types; others are skipped), as
        (ident, [type, data, node id])."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.poller.poll(100):
                ident, payload = self.sock.recv_multipart()[:2]
                msg = unpack(payload)
                self.seen.append(msg)
                if msg[0] in want if isinstance(want, tuple) else msg[0] == want:
                    return ident, msg
        raise AssertionError("no %r from the worker within %.0f s" % (want, timeout))

    def send(self, ident, mtype, data):
        self.sock.send_multipart([ident, msgpack.packb([mtype, data, ident.decode()])])

    def send_raw(self, ident, payload):
        self.sock.send_multipart([ident, payload])

    def ack(self, ident, instance):
        self.send(ident, "ack", {"index": 0, "acrida": {"version": "fake", "instance": instance}})

    def close(self):
        self.sock.close()
        self.ctx.term()
