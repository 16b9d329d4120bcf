#!/usr/bin/python3
"""Regenerates the expected values of tests/unit/test_dispatch.c from the installed Locust 2.12.

Run from the repository root with Debian's interpreter (python3-locust lives in its dist-packages):

    /usr/bin/python3 tests/unit/gen_dispatch_expected.py
    /usr/bin/python3 tests/unit/gen_dispatch_expected.py --check tests/unit/test_dispatch.c

It drives Locust's own UsersDispatcher (locust/dispatch.py of python3-locust 2.12.1) through the
scenarios of test_dispatch.c and prints, per test function, the C statements that hold Locust's
results, written as the test writes them: maps rendered as "id:{A1,B0}" (ids sorted, classes by
their first letter, like the test's render()), the delay of each iteration, user counts. Locust
sleeps between iterations instead of returning a delay: its clock is frozen here (the iteration
takes no time to compute) and the sleep it asks for after an iteration is that iteration's delay.

--check FILE exits 1 and lists every printed statement group that is missing from the test
function of the same name in FILE (C comments and whitespace outside string literals ignored).

One case has no Locust value: ramping a dispatcher back up while its fixed class is already full
never returns in Locust 2.12. The script shows that the call does not finish within a generous
step budget and prints acrida's deliberate behaviour as a comment only (documented in
docs/locust-compatibility.md, dispatcher).
"""
import argparse
import re
import sys
import types

import locust.dispatch as ld
from locust import User

SLEEPS = []
# Frozen clock: perf_counter never advances, so the sleep Locust asks for is exactly
# per_iteration / spawn_rate; the sleep is recorded instead of performed.
ld.time = types.SimpleNamespace(perf_counter=lambda: 0.0)
ld.gevent = types.SimpleNamespace(sleep=SLEEPS.append)

# Python lines the dispatcher may execute for one call before it counts as a hang. A 12-user
# dispatch needs a few thousand.
STEP_BUDGET = 2_000_000


class Hang(Exception):
    pass


class Worker:
    """What UsersDispatcher needs of locust.runners.WorkerNode: an id (it sets the host index)."""

    def __init__(self, node_id):
        self.id = node_id


def user_class(name, weight=1, fixed_count=0):
    return type(name, (User,), {"weight": weight, "fixed_count": fixed_count,
                                "abstract": False, "__module__": __name__})


def dispatcher(classes, ids):
    return ld.UsersDispatcher([Worker(i) for i in ids], [user_class(*c) for c in classes])


def render(users_on_workers):
    parts = []
    for wid in sorted(users_on_workers):
        counts = users_on_workers[wid]
        cells = ",".join("%s%d" % (cls[0], counts[cls]) for cls in sorted(counts))
        parts.append("%s:{%s}" % (wid, cells))
    return " ".join(parts)


def user_count(users_on_workers):
    return sum(sum(c.values()) for c in users_on_workers.values())


def ramp(d, target, rate, classes=None):
    """Runs one dispatch cycle (with the user classes named in @classes, None: unchanged); returns
    its maps (as dicts) and the delay after each."""
    d.new_dispatch(target, rate, None if classes is None else
                   [u for u in d._original_user_classes if u.__name__ in classes])
    maps, delays = [], []
    while True:
        SLEEPS.clear()
        try:
            m = next(d)
        except StopIteration:
            if maps:
                delays.append(sum(SLEEPS))
            return maps, delays
        if maps:
            delays.append(sum(SLEEPS))
        maps.append(m)


def ramp_with_budget(d, target, rate):
    """ramp(), or Hang when Locust runs STEP_BUDGET lines without finishing."""
    steps = [0]

    def tracer(frame, event, arg):
        if frame.f_code.co_filename != ld.__file__:
            return None

        def local(frame, event, arg):
            steps[0] += 1
            if steps[0] > STEP_BUDGET:
                raise Hang()
            return local
        return local

    sys.settrace(tracer)
    try:
        return ramp(d, target, rate)
    finally:
        sys.settrace(None)


def num(x):
    return "%g" % x


def c_strings(name, values):
    return "const char *%s[] = {%s};" % (name, ", ".join('"%s"' % v for v in values))


def c_ramp(name, target, rate, maps, delays, with_delays=True):
    """The array of expected maps and the expect_ramp() call that checks them."""
    delay_arg = "(double[]){%s}" % ", ".join(num(x) for x in delays) if with_delays else "NULL"
    return (c_strings(name, [render(m) for m in maps]) + "\n"
            + "expect_ramp(d, %s, %s, %s, %d, %s);" % (num(target), num(rate), name, len(maps),
                                                       delay_arg))


def swrr_examples(out):
    for weights in [(3, 1), (2, 5, 6), (4, 5, 7), (7,)]:
        letters = "ABC"[:len(weights)]
        d = dispatcher([(letters[i], w) for i, w in enumerate(weights)], ["x"])
        # The period of Locust's cycle: sum of the weights normalised as in _user_gen().
        period = sum(round(2 * w / min(weights)) for w in weights)
        gen = d._user_gen()
        seq = "".join(next(gen) for _ in range(period))
        out("test_swrr_examples",
            'seq_string((double[]){%s}, %d, "%s", s);\nassert_string_equal(s, "%s");'
            % (", ".join(num(w) for w in weights), len(weights), letters, seq))


def placement_order(out):
    cases = [("ab", [("BUser", 1), ("AUser", 3)], 8),
             ("abc", [("A", 2), ("B", 5), ("C", 6)], 13),
             ("abc2", [("A", 4), ("B", 5), ("C", 7)], 17)]
    for var, classes, users in cases:
        d = dispatcher(classes, ["x"])
        maps, _ = ramp(d, users, 1)
        order, prev = "", {}
        for m in maps:
            for cls, n in sorted(m["x"].items()):
                if n != prev.get(cls, 0):
                    order += cls[0]
            prev = m["x"]
        out("test_dispatch_order_one_worker", 'placement_order(%s, %d, %d, s);\n'
            'assert_string_equal(s, "%s");' % (var, len(classes), users, order))


WORKED = [("AUser", 3), ("BUser", 1), ("CFixed", 1, 1)]


def ramp_worked_example(out):
    t = "test_ramp_worked_example"
    d = dispatcher(WORKED, ["h1_b", "h1_a"])
    maps, delays = ramp(d, 9, 2)
    out(t, c_ramp("up", 9, 2, maps, delays) + "\nassert_int_equal(acr_dispatch_user_count(d), %d);"
        % user_count(maps[-1]))
    maps, delays = ramp(d, 3, 2)
    out(t, c_ramp("down", 3, 2, maps, delays))
    maps, delays = ramp(d, 3, 2)
    out(t, c_ramp("same", 3, 2, maps, delays))
    try:
        maps, _ = ramp_with_budget(d, 9, 100)
        out(t, None, "/* 3 -> 9 users at 100/s: Locust returned %s */" % render(maps[-1]))
    except Hang:
        out(t, None, "/* 3 -> 9 users at 100/s: Locust 2.12 did not return within %d steps (its\n"
            " * fixed-class loop spins when CFixed is already full); acrida ends the loop:\n"
            " * 9 users, CFixed exactly 1. */" % STEP_BUDGET)


def host_ordering(out):
    t = "test_host_ordering"
    d = dispatcher([("A", 3), ("B", 1)], ["h2_b", "h1_b", "h2_a", "h1_a"])
    out(t, c_strings("order", [w.id for w in d._worker_nodes]))
    maps, delays = ramp(d, 8, 8)
    out(t, c_ramp("maps", 8, 8, maps, delays))


def rebalance(out):
    t = "test_rebalance"
    d = dispatcher(WORKED, ["h1_a", "h1_b", "h2_a"])
    for name, target, change in [("m1", 10, None), ("m2", 10, ("remove", "h1_a")),
                                 ("m3", 12, ("add", "h3_a"))]:
        if change:
            getattr(d, change[0] + "_worker")(Worker(change[1]))
        maps, delays = ramp(d, target, 100)
        out(t, c_ramp(name, target, 100, maps, delays, with_delays=False),
            "/* Locust's delays for %s: %s */" % (name, ", ".join(num(x) for x in delays)))
    d.add_worker(Worker("h1_a"))
    out(t, "assert_%s(acr_dispatch_take_rebalance(d));" % str(d._rebalance).lower())
    out(t, "assert_int_equal(acr_dispatch_user_count(d), %d);" % d.get_current_user_count())


def last_worker_removed(out):
    t = "test_last_worker_removed"
    d = dispatcher([("A", 1)], ["w_1"])
    maps, delays = ramp(d, 4, 10)
    out(t, c_ramp("m", 4, 10, maps, delays, with_delays=False))
    d.remove_worker(Worker("w_1"))
    out(t, "assert_%s(acr_dispatch_take_rebalance(d));\n"
        "assert_int_equal(acr_dispatch_nworkers(d), %d);"
        % (str(d._rebalance).lower(), len(d._worker_nodes)))
    d.add_worker(Worker("w_2"))
    out(t, "assert_%s(acr_dispatch_take_rebalance(d));\n"
        "assert_int_equal(acr_dispatch_nentries(d), %d);\n"
        'assert_int_equal(dispatch_count(d, "w_2", "A"), %d);'
        % (str(d._rebalance).lower(), len(d._users_on_workers), d._users_on_workers["w_2"]["A"]))


def fractional_rate_and_fixed_only(out):
    t = "test_fractional_rate_and_fixed_only"
    d = dispatcher([("F", 1, 2)], ["a_1"])
    maps, delays = ramp(d, 5, 0.5)
    lines = []
    for i, m in enumerate(maps):
        lines.append("assert_int_equal(acr_dispatch_next(d, &delay), 1);")
        lines.append("assert_int_equal(acr_dispatch_user_count(d), %d);" % user_count(m))
        if i == 0:
            lines.append("assert_true(delay == %r);" % float(delays[0]))
    lines.append("assert_int_equal(acr_dispatch_next(d, &delay), 0);")
    out(t, "\n".join(lines), "/* Locust's maps: %s; delays: %s */"
        % (", ".join(render(m) for m in maps), ", ".join(num(x) for x in delays)))


def class_subset(out):
    """A subset that never leaves users of other classes behind: Locust and acrida agree."""
    t = "test_class_subset_like_locust"
    d = dispatcher([("A", 3), ("B", 1), ("C", 2), ("F", 1, 1)], ["h1_a", "h1_b"])
    maps, delays = ramp(d, 6, 2, ["A", "C"])
    out(t, "assert_int_equal(acr_dispatch_set_classes(d, ac, 2), 0);\n" + c_ramp("up", 6, 2, maps, delays))
    maps, delays = ramp(d, 9, 100, ["A", "C"])
    out(t, "assert_int_equal(acr_dispatch_set_classes(d, ac, 2), 0);\n"
        + c_ramp("more", 9, 100, maps, delays))
    d.add_worker(Worker("h2_a"))
    maps, delays = ramp(d, 9, 100)
    out(t, 'assert_int_equal(acr_dispatch_add_worker(d, "h2_a"), 0);\n'
        + c_ramp("rebalanced", 9, 100, maps, delays, with_delays=False),
        "/* Locust's delays for rebalanced: %s */" % ", ".join(num(x) for x in delays))


def normalise(c_text):
    """C text without comments and without whitespace outside string literals; ',}' -> '}'."""
    out, i, n = [], 0, len(c_text)
    while i < n:
        ch = c_text[i]
        if ch == '"':
            j = i + 1
            while j < n and c_text[j] != '"':
                j += 2 if c_text[j] == "\\" else 1
            out.append(c_text[i:j + 1])
            i = j + 1
        elif c_text.startswith("/*", i):
            i = c_text.find("*/", i + 2) + 2
            if i == 1:
                break
        elif c_text.startswith("//", i):
            i = c_text.find("\n", i)
            if i < 0:
                break
        else:
            if not ch.isspace():
                out.append(ch)
            i += 1
    return "".join(out).replace(",}", "}")


def function_bodies(c_text):
    return {m.group(1): normalise(m.group(2)) for m in
            re.finditer(r"^static void (test_\w+)\(void \*\*state\)\n\{\n(.*?)^\}\n", c_text,
                        re.M | re.S)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", metavar="TEST_C", help="compare with this test_dispatch.c")
    args = parser.parse_args()
    groups = []

    def out(test, statements, comment=None):
        groups.append((test, statements, comment))

    for gen in (swrr_examples, placement_order, ramp_worked_example, host_ordering, rebalance,
                last_worker_removed, fractional_rate_and_fixed_only, class_subset):
        gen(out)

    current = None
    for test, statements, comment in groups:
        if test != current:
            print("%s/* ---- %s ---- */" % ("\n" if current else "", test))
            current = test
        for text in (comment, statements):
            if text:
                print(text)
    if not args.check:
        return 0
    with open(args.check, encoding="utf-8") as f:
        bodies = function_bodies(f.read())
    missing = [(t, s) for t, s, _ in groups if s and normalise(s) not in bodies.get(t, "")]
    for test, statements in missing:
        print("\nMISSING in %s of %s:\n%s" % (test, args.check, statements), file=sys.stderr)
    checked = sum(1 for _, s, _ in groups if s)
    print("\n%d of %d statement groups found in %s" % (checked - len(missing), checked, args.check),
          file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
