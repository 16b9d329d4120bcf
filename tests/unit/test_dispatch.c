/*
 * The users dispatcher against Locust 2.12's own results (docs/locust-compatibility.md,
 * dispatcher). Every expected map, order and delay is regenerated from the installed Locust by
 *   /usr/bin/python3 tests/unit/gen_dispatch_expected.py --check tests/unit/test_dispatch.c
 * which prints them and fails if this file differs.
 */
#include "master/core/dispatch.c" /* the dispatcher's state, for the test-only views below */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Test-only views of the dispatcher (the runner reads only the distribution entries). */
static bool dispatch_in_progress(const acr_dispatch_t *d)
{
    return d->in_progress;
}

/* Count of @cls on worker @id, or -1 when either is unknown. */
static int64_t dispatch_count(const acr_dispatch_t *d, const char *id, const char *cls)
{
    dworker_t *w = map_find(d, id, NULL);
    if (!w) return -1;
    for (size_t c = 0; c < d->nclasses; c++)
        if (strcmp(d->names[c], cls) == 0) return w->counts[c];
    return -1;
}

/* Workers in cycle order ((index_within_host, id)). */
static const char *dispatch_worker_id(const acr_dispatch_t *d, size_t i)
{
    return i < d->norder ? d->order[i]->id : NULL;
}

static acr_user_class_t mk(const char *name, double w, long fixed)
{
    return (acr_user_class_t){.name = (char *)name, .weight = w, .fixed_count = fixed};
}

/* Renders the map as "id:{A1,B0}" entries sorted by id, class names abbreviated to their first
 * letter, so expectations read like gen_dispatch_expected.py's output. */
static void render(const acr_dispatch_t *d, char *out, size_t len)
{
    size_t n = acr_dispatch_nentries(d);
    const char *ids[64];
    size_t idx[64];
    assert_true(n <= 64);
    for (size_t i = 0; i < n; i++) {
        ids[i] = acr_dispatch_entry_id(d, i);
        idx[i] = i;
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(ids[idx[j - 1]], ids[idx[j]]) > 0; j--) {
            size_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    size_t o = 0;
    out[0] = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = idx[k];
        const int64_t *c = acr_dispatch_entry_counts(d, i);
        o += (size_t)snprintf(out + o, len - o, "%s%s:{", k ? " " : "", ids[i]);
        for (size_t j = 0; j < acr_dispatch_nclasses(d); j++)
            o += (size_t)snprintf(out + o, len - o, "%s%c%lld", j ? "," : "",
                                  acr_dispatch_class_name(d, j)[0], (long long)c[j]);
        o += (size_t)snprintf(out + o, len - o, "}");
    }
}

/* Runs one ramp and checks every yielded map and the delays. */
static void expect_ramp(acr_dispatch_t *d, long target, double rate, const char *const *maps,
                        size_t nmaps, const double *delays)
{
    char buf[1024];
    acr_dispatch_new_dispatch(d, target, rate);
    for (size_t i = 0; i < nmaps; i++) {
        double delay = -1;
        int r = acr_dispatch_next(d, &delay);
        if (r != 1) fail_msg("iteration %zu: expected a map '%s', got end", i, maps[i]);
        render(d, buf, sizeof buf);
        if (strcmp(buf, maps[i]) != 0)
            fail_msg("iteration %zu:\n  expected %s\n  got      %s", i, maps[i], buf);
        if (delays && delays[i] != delay)
            fail_msg("iteration %zu: expected delay %g, got %g", i, delays[i], delay);
    }
    double delay = -1;
    int r = acr_dispatch_next(d, &delay);
    if (r != 0) {
        render(d, buf, sizeof buf);
        fail_msg("expected the end of the ramp after %zu maps, got another: %s", nmaps, buf);
    }
    assert_false(dispatch_in_progress(d));
}

static void seq_string(const double *w, size_t n, const char *letters, char *out)
{
    int *seq = NULL;
    long len = acr_dispatch_swrr_sequence(w, n, &seq);
    assert_true(len >= 0);
    for (long i = 0; i < len; i++) out[i] = letters[seq[i]];
    out[len] = 0;
    free(seq);
}

static void test_swrr_examples(void **state)
{
    (void)state;
    char s[64];
    seq_string((double[]){3, 1}, 2, "AB", s);
    assert_string_equal(s, "AABAAABA");
    seq_string((double[]){2, 5, 6}, 3, "ABC", s);
    assert_string_equal(s, "CBACBCBCBCABC");
    /* half-to-even: 2*5/4 = 2.5 -> 2, 2*7/4 = 3.5 -> 4 */
    seq_string((double[]){4, 5, 7}, 3, "ABC", s);
    assert_string_equal(s, "CABCCABC");
    seq_string((double[]){7}, 1, "A", s);
    assert_string_equal(s, "AA");
}

/* One worker at rate 1: the order users are placed is the cycled sequence. */
static void placement_order(const acr_user_class_t *cls, size_t n, long users, char *out)
{
    acr_dispatch_t *d;
    const char *ids[] = {"x"};
    assert_int_equal(acr_dispatch_new(cls, n, ids, 1, &d), 0);
    acr_dispatch_new_dispatch(d, users, 1);
    int64_t prev[8] = {0};
    double delay;
    size_t o = 0;
    while (acr_dispatch_next(d, &delay) == 1) {
        const int64_t *c = acr_dispatch_entry_counts(d, 0);
        for (size_t j = 0; j < acr_dispatch_nclasses(d); j++)
            if (c[j] != prev[j]) {
                out[o++] = acr_dispatch_class_name(d, j)[0];
                prev[j] = c[j];
            }
    }
    out[o] = 0;
    acr_dispatch_free(d);
}

static void test_dispatch_order_one_worker(void **state)
{
    (void)state;
    char s[64];
    acr_user_class_t ab[] = {mk("BUser", 1, 0), mk("AUser", 3, 0)}; /* sorted inside */
    placement_order(ab, 2, 8, s);
    assert_string_equal(s, "AABAAABA");
    acr_user_class_t abc[] = {mk("A", 2, 0), mk("B", 5, 0), mk("C", 6, 0)};
    placement_order(abc, 3, 13, s);
    assert_string_equal(s, "CBACBCBCBCABC");
    acr_user_class_t abc2[] = {mk("A", 4, 0), mk("B", 5, 0), mk("C", 7, 0)};
    placement_order(abc2, 3, 17, s); /* from Locust 2.12 itself */
    assert_string_equal(s, "CABCCABCCABCCABCC");
}

static void test_ramp_worked_example(void **state)
{
    (void)state;
    acr_user_class_t cls[] = {mk("AUser", 3, 0), mk("BUser", 1, 0), mk("CFixed", 1, 1)};
    const char *ids[] = {"h1_b", "h1_a"};
    acr_dispatch_t *d;
    assert_int_equal(acr_dispatch_new(cls, 3, ids, 2, &d), 0);
    const char *up[] = {
        "h1_a:{A0,B0,C1} h1_b:{A1,B0,C0}", "h1_a:{A1,B0,C1} h1_b:{A1,B1,C0}",
        "h1_a:{A2,B0,C1} h1_b:{A2,B1,C0}", "h1_a:{A3,B0,C1} h1_b:{A2,B2,C0}",
        "h1_a:{A4,B0,C1} h1_b:{A2,B2,C0}",
    };
    expect_ramp(d, 9, 2, up, 5, (double[]){1, 1, 1, 1, 0});
    assert_int_equal(acr_dispatch_user_count(d), 9);
    /* ramp-down is LIFO: the most recently added users go first */
    const char *down[] = {
        "h1_a:{A3,B0,C1} h1_b:{A2,B1,C0}",
        "h1_a:{A2,B0,C1} h1_b:{A1,B1,C0}",
        "h1_a:{A1,B0,C1} h1_b:{A1,B0,C0}",
    };
    expect_ramp(d, 3, 2, down, 3, (double[]){1, 1, 0});
    /* unchanged target: one iteration with the unchanged map */
    const char *same[] = {"h1_a:{A1,B0,C1} h1_b:{A1,B0,C0}"};
    expect_ramp(d, 3, 2, same, 1, (double[]){0});
    /* Locust 2.12 hangs here (fixed class already full when its loop restarts); we go on and the
     * fixed class keeps exactly one user. */
    acr_dispatch_new_dispatch(d, 9, 100);
    double delay;
    while (acr_dispatch_next(d, &delay) == 1) {
    }
    assert_int_equal(acr_dispatch_user_count(d), 9);
    assert_int_equal(dispatch_count(d, "h1_a", "CFixed") + dispatch_count(d, "h1_b", "CFixed"), 1);
    acr_dispatch_free(d);
}

static void test_host_ordering(void **state)
{
    (void)state;
    acr_user_class_t cls[] = {mk("A", 3, 0), mk("B", 1, 0)};
    const char *ids[] = {"h2_b", "h1_b", "h2_a", "h1_a"};
    acr_dispatch_t *d;
    assert_int_equal(acr_dispatch_new(cls, 2, ids, 4, &d), 0);
    const char *order[] = {"h1_a", "h2_a", "h1_b", "h2_b"};
    assert_int_equal(acr_dispatch_nworkers(d), 4);
    for (size_t i = 0; i < 4; i++) assert_string_equal(dispatch_worker_id(d, i), order[i]);
    const char *maps[] = {"h1_a:{A2,B0} h1_b:{A0,B2} h2_a:{A2,B0} h2_b:{A2,B0}"};
    expect_ramp(d, 8, 8, maps, 1, (double[]){0});
    acr_dispatch_free(d);
}

/* Expected maps produced by Locust 2.12's dispatcher (see the file comment). */
static void test_rebalance(void **state)
{
    (void)state;
    acr_user_class_t cls[] = {mk("AUser", 3, 0), mk("BUser", 1, 0), mk("CFixed", 1, 1)};
    const char *ids[] = {"h1_a", "h1_b", "h2_a"};
    acr_dispatch_t *d;
    assert_int_equal(acr_dispatch_new(cls, 3, ids, 3, &d), 0);
    const char *m1[] = {"h1_a:{A2,B1,C1} h1_b:{A3,B0,C0} h2_a:{A2,B1,C0}"};
    expect_ramp(d, 10, 100, m1, 1, NULL);
    assert_int_equal(acr_dispatch_remove_worker(d, "h1_a"), 0);
    assert_int_equal(acr_dispatch_remove_worker(d, "nope"), -ENOENT);
    const char *m2[] = {"h1_b:{A3,B2,C0} h2_a:{A4,B0,C1}"};
    expect_ramp(d, 10, 100, m2, 1, NULL);
    assert_int_equal(acr_dispatch_add_worker(d, "h3_a"), 0);
    const char *m3[] = {"h1_b:{A2,B1,C1} h2_a:{A2,B1,C0} h3_a:{A3,B0,C0}",
                        "h1_b:{A2,B1,C1} h2_a:{A3,B1,C0} h3_a:{A3,B1,C0}"};
    expect_ramp(d, 12, 100, m3, 2, NULL);
    /* the runner's shortcut: a rebalance is visible at once */
    assert_int_equal(acr_dispatch_add_worker(d, "h1_a"), 0);
    assert_true(acr_dispatch_take_rebalance(d));
    assert_false(acr_dispatch_take_rebalance(d));
    assert_int_equal(acr_dispatch_user_count(d), 12);
    acr_dispatch_free(d);
}

static void test_last_worker_removed(void **state)
{
    (void)state;
    acr_user_class_t cls[] = {mk("A", 1, 0)};
    const char *ids[] = {"w_1"};
    acr_dispatch_t *d;
    assert_int_equal(acr_dispatch_new(cls, 1, ids, 1, &d), 0);
    const char *m[] = {"w_1:{A4}"};
    expect_ramp(d, 4, 10, m, 1, NULL);
    assert_int_equal(acr_dispatch_remove_worker(d, "w_1"), 0);
    assert_false(acr_dispatch_take_rebalance(d));
    assert_int_equal(acr_dispatch_nworkers(d), 0);
    /* a new worker gets every user */
    assert_int_equal(acr_dispatch_add_worker(d, "w_2"), 0);
    assert_true(acr_dispatch_take_rebalance(d));
    assert_int_equal(acr_dispatch_nentries(d), 1);
    assert_int_equal(dispatch_count(d, "w_2", "A"), 4);
    acr_dispatch_free(d);
}

static void test_fractional_rate_and_fixed_only(void **state)
{
    (void)state;
    acr_user_class_t cls[] = {mk("F", 1, 2)};
    const char *ids[] = {"a_1"};
    acr_dispatch_t *d;
    assert_int_equal(acr_dispatch_new(cls, 1, ids, 1, &d), 0);
    acr_dispatch_new_dispatch(d, 5, 0.5);
    double delay;
    assert_int_equal(acr_dispatch_next(d, &delay), 1);
    assert_int_equal(acr_dispatch_user_count(d), 1);
    assert_true(delay == 2.0);
    assert_int_equal(acr_dispatch_next(d, &delay), 1);
    assert_int_equal(acr_dispatch_user_count(d), 2);
    /* only fixed classes, all full: "no user to spawn" ends the ramp early */
    assert_int_equal(acr_dispatch_next(d, &delay), 1);
    assert_int_equal(acr_dispatch_user_count(d), 2);
    assert_int_equal(acr_dispatch_next(d, &delay), 0);
    acr_dispatch_free(d);
}

static void test_bad_classes(void **state)
{
    (void)state;
    acr_dispatch_t *d = (acr_dispatch_t *)1;
    assert_int_equal(acr_dispatch_new(NULL, 0, NULL, 0, &d), -EINVAL);
    assert_null(d);
    acr_user_class_t dup[] = {mk("A", 1, 0), mk("A", 2, 0)};
    assert_int_equal(acr_dispatch_new(dup, 2, NULL, 0, &d), -EINVAL);
}

/* A subset that leaves no user of another class behind: the same maps as Locust 2.12. */
static void test_class_subset_like_locust(void **state)
{
    (void)state;
    acr_user_class_t cls[] = {mk("A", 3, 0), mk("B", 1, 0), mk("C", 2, 0), mk("F", 1, 1)};
    const char *ids[] = {"h1_a", "h1_b"};
    const char *ac[] = {"C", "A"};
    acr_dispatch_t *d;
    assert_int_equal(acr_dispatch_new(cls, 4, ids, 2, &d), 0);
    assert_int_equal(acr_dispatch_set_classes(d, ac, 2), 0);
    const char *up[] = {"h1_a:{A1,B0,C0,F0} h1_b:{A0,B0,C1,F0}",
                        "h1_a:{A2,B0,C0,F0} h1_b:{A0,B0,C2,F0}",
                        "h1_a:{A3,B0,C0,F0} h1_b:{A1,B0,C2,F0}"};
    expect_ramp(d, 6, 2, up, 3, (double[]){1, 1, 0});
    /* the same subset again: the generator goes on where it was */
    assert_int_equal(acr_dispatch_set_classes(d, ac, 2), 0);
    const char *more[] = {"h1_a:{A3,B0,C2,F0} h1_b:{A2,B0,C2,F0}"};
    expect_ramp(d, 9, 100, more, 1, (double[]){0});
    /* a rebalance places users from the subset only */
    assert_int_equal(acr_dispatch_add_worker(d, "h2_a"), 0);
    const char *rebalanced[] = {"h1_a:{A1,B0,C2,F0} h1_b:{A2,B0,C1,F0} h2_a:{A2,B0,C1,F0}"};
    expect_ramp(d, 9, 100, rebalanced, 1, NULL);
    acr_dispatch_free(d);
}

/* Our difference (docs/locust-compatibility.md): users of classes outside a new subset are
 * replaced within the ramp, per_iteration stops and starts per iteration, instead of running on
 * (Locust 2.12 yields the unchanged map "h1_a:{A2,B0} h1_b:{A2,B0}" for the first swap below). */
static void test_class_swap_replaces_users(void **state)
{
    (void)state;
    acr_user_class_t cls[] = {mk("A", 1, 0), mk("B", 1, 0)};
    const char *ids[] = {"h1_a", "h1_b"};
    const char *a[] = {"A"}, *b[] = {"B"};
    acr_dispatch_t *d;
    assert_int_equal(acr_dispatch_new(cls, 2, ids, 2, &d), 0);
    assert_int_equal(acr_dispatch_set_classes(d, a, 1), 0);
    const char *up[] = {"h1_a:{A2,B0} h1_b:{A2,B0}"};
    expect_ramp(d, 4, 10, up, 1, (double[]){0});
    /* same total: 2 A stop (most recent first) and 2 B start per iteration */
    assert_int_equal(acr_dispatch_set_classes(d, b, 1), 0);
    const char *swap[] = {"h1_a:{A1,B1} h1_b:{A1,B1}", "h1_a:{A0,B2} h1_b:{A0,B2}"};
    expect_ramp(d, 4, 2, swap, 2, (double[]){1, 0});
    /* fewer users of the other class: the swap takes max(stops, starts) iterations and the
     * total never exceeds the larger of before and target */
    assert_int_equal(acr_dispatch_set_classes(d, a, 1), 0);
    const char *down[] = {"h1_a:{A1,B2} h1_b:{A0,B1}", "h1_a:{A1,B1} h1_b:{A1,B1}",
                          "h1_a:{A1,B1} h1_b:{A1,B0}", "h1_a:{A1,B0} h1_b:{A1,B0}"};
    expect_ramp(d, 2, 1, down, 4, (double[]){1, 1, 1, 0});
    /* more users of the new class than there were: the stops are done in the first iteration,
     * the starts go on at the rate */
    assert_int_equal(acr_dispatch_set_classes(d, b, 1), 0);
    const char *grow[] = {"h1_a:{A0,B1} h1_b:{A0,B1}", "h1_a:{A0,B2} h1_b:{A0,B2}",
                          "h1_a:{A0,B3} h1_b:{A0,B3}"};
    expect_ramp(d, 6, 2, grow, 3, (double[]){1, 1, 0});
    /* back to every class: nothing to replace, a plain (Locust) ramp-down */
    assert_int_equal(acr_dispatch_set_classes(d, NULL, 0), 0);
    const char *all[] = {"h1_a:{A0,B3} h1_b:{A0,B2}"};
    expect_ramp(d, 5, 1, all, 1, (double[]){0});
    acr_dispatch_free(d);
}

/* A rebalance with users of an excluded class places the current count from the subset. */
static void test_class_subset_rebalance(void **state)
{
    (void)state;
    acr_user_class_t cls[] = {mk("A", 1, 0), mk("B", 1, 0)};
    const char *ids[] = {"h1_a"};
    const char *b[] = {"B"};
    acr_dispatch_t *d;
    assert_int_equal(acr_dispatch_new(cls, 2, ids, 1, &d), 0);
    const char *up[] = {"h1_a:{A2,B2}"};
    expect_ramp(d, 4, 10, up, 1, (double[]){0});
    assert_int_equal(acr_dispatch_set_classes(d, b, 1), 0);
    assert_int_equal(acr_dispatch_add_worker(d, "h2_a"), 0);
    assert_true(acr_dispatch_take_rebalance(d));
    char buf[256];
    render(d, buf, sizeof buf);
    assert_string_equal(buf, "h1_a:{A0,B2} h2_a:{A0,B2}");
    /* nothing left to replace: the ramp to the same target is the one unchanged map */
    const char *same[] = {"h1_a:{A0,B2} h2_a:{A0,B2}"};
    expect_ramp(d, 4, 10, same, 1, (double[]){0});
    acr_dispatch_free(d);
}

/* A fixed class that enters the subset is placed (Locust 2.12 would not: its try-fixed flag is
 * clear after a ramp-up without removal). Unknown names change nothing. */
static void test_class_subset_fixed_and_errors(void **state)
{
    (void)state;
    acr_user_class_t cls[] = {mk("A", 1, 0), mk("F", 1, 1)};
    const char *ids[] = {"w_1"};
    const char *a[] = {"A"}, *af[] = {"A", "F"}, *bad[] = {"A", "Nobody"};
    acr_dispatch_t *d;
    assert_int_equal(acr_dispatch_new(cls, 2, ids, 1, &d), 0);
    assert_int_equal(acr_dispatch_set_classes(d, a, 1), 0);
    const char *up[] = {"w_1:{A3,F0}"};
    expect_ramp(d, 3, 10, up, 1, (double[]){0});
    assert_int_equal(acr_dispatch_set_classes(d, bad, 2), -EINVAL);
    assert_int_equal(acr_dispatch_set_classes(d, af, 2), 0);
    const char *more[] = {"w_1:{A4,F1}"};
    expect_ramp(d, 5, 10, more, 1, (double[]){0});
    /* a subset of fixed classes only: no user to spawn ends the ramp below its target */
    const char *f[] = {"F"};
    assert_int_equal(acr_dispatch_set_classes(d, f, 1), 0);
    acr_dispatch_new_dispatch(d, 5, 100);
    double delay;
    while (acr_dispatch_next(d, &delay) == 1) {
    }
    assert_int_equal(dispatch_count(d, "w_1", "A"), 0);
    assert_int_equal(dispatch_count(d, "w_1", "F"), 1);
    assert_false(dispatch_in_progress(d));
    acr_dispatch_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swrr_examples),
        cmocka_unit_test(test_dispatch_order_one_worker),
        cmocka_unit_test(test_ramp_worked_example),
        cmocka_unit_test(test_host_ordering),
        cmocka_unit_test(test_rebalance),
        cmocka_unit_test(test_last_worker_removed),
        cmocka_unit_test(test_fractional_rate_and_fixed_only),
        cmocka_unit_test(test_bad_classes),
        cmocka_unit_test(test_class_subset_like_locust),
        cmocka_unit_test(test_class_swap_replaces_users),
        cmocka_unit_test(test_class_subset_rebalance),
        cmocka_unit_test(test_class_subset_fixed_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
