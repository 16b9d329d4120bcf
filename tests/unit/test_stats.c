/*
 * Unit tests of the statistics tables: logging (Locust's double counting on entry and total),
 * error grouping, exceptions, merging deltas, reset/clear, sorted views and derived values.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/stats.h"
#include "tests/unit/unit_alloc.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define T0 1700000000.0

#define assert_double_eq(a, b)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= 1e-9 * fmax(1.0, fabs(b_))))                                        \
            fail_msg("%s = %.17g, expected %.17g", #a, a_, b_);                                    \
    } while (0)

static void test_log_counts_entry_and_total(void **state)
{
    (void)state;
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    acr_stats_entry_t *tot = acr_stats_total(s);
    assert_string_equal(tot->name, "Aggregated");
    assert_string_equal(tot->method, "");
    assert_double_eq(tot->start_time, T0);

    acr_stats_entry_t *g = acr_stats_get(s, "GET", "/a");
    assert_non_null(g);
    assert_ptr_equal(acr_stats_get(s, "GET", "/a"), g);
    assert_ptr_equal(acr_stats_find(s, "GET", "/a"), g);
    assert_null(acr_stats_find(s, "POST", "/a"));
    assert_int_equal(acr_stats_count(s), 1);

    acr_stats_log(s, g, true, 10000, 100, NULL, T0 + 1.5);
    acr_stats_log(s, g, true, 30000, 300, NULL, T0 + 1.7);
    acr_stats_log(s, g, true, 20000, 0, "HTTPError('500')", T0 + 2.1);
    acr_stats_log(s, g, false, 0, 0, NULL, T0 + 2.2);

    const acr_stats_entry_t *es[] = {g, tot};
    for (int i = 0; i < 2; i++) {
        const acr_stats_entry_t *e = es[i];
        assert_int_equal(e->num_requests, 4);
        assert_int_equal(e->num_failures, 1);
        assert_int_equal(e->num_none_requests, 1);
        assert_int_equal(e->total_rt_us, 60000);
        assert_int_equal(e->total_content_length, 400);
        assert_int_equal(e->hist.count, 3);
        assert_double_eq(e->last_request_ts, T0 + 2.2);
        assert_double_eq(acr_stats_avg_ms(e), 20.0); /* 60 ms / 3 timed requests */
        assert_double_eq(acr_stats_min_ms(e), 10.0);
        assert_double_eq(acr_stats_max_ms(e), 30.0);
        assert_double_eq(acr_stats_fail_ratio(e), 0.25);
        assert_double_eq(acr_stats_avg_content_length(e), 100.0);
        uint32_t r, f;
        assert_true(acr_persec_get(&e->persec, (int64_t)T0 + 1, &r, &f));
        assert_int_equal(r, 2);
        assert_int_equal(f, 0);
        assert_true(acr_persec_get(&e->persec, (int64_t)T0 + 2, &r, &f));
        assert_int_equal(r, 2);
        assert_int_equal(f, 1);
        assert_false(acr_persec_get(&e->persec, (int64_t)T0 + 3, &r, &f));
        assert_int_equal(r, 0);
    }
    /* the median is the histogram's 50th percentile (20 ms lies in a bucket within 0.8 %) */
    assert_true(fabs(acr_stats_percentile_ms(g, 0.5) - 20.0) <= 0.2);
    assert_double_eq(acr_stats_percentile_ms(g, 1.0), 30.0);
    assert_double_eq(acr_stats_percentile_ms(g, 0.0), 10.0);

    size_t n;
    acr_stats_error_t *const *errs = acr_stats_errors(s, &n);
    assert_int_equal(n, 1);
    assert_string_equal(errs[0]->method, "GET");
    assert_string_equal(errs[0]->name, "/a");
    assert_string_equal(errs[0]->error, "HTTPError('500')");
    assert_int_equal(errs[0]->occurrences, 1);
    acr_stats_free(s);
}

static void test_empty_derived_values(void **state)
{
    (void)state;
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    acr_stats_entry_t *tot = acr_stats_total(s);
    assert_double_eq(acr_stats_avg_ms(tot), 0.0);
    assert_double_eq(acr_stats_min_ms(tot), 0.0);
    assert_double_eq(acr_stats_max_ms(tot), 0.0);
    assert_double_eq(acr_stats_percentile_ms(tot, 0.5), 0.0);
    assert_double_eq(acr_stats_fail_ratio(tot), 0.0);
    assert_double_eq(acr_stats_avg_content_length(tot), 0.0);
    assert_double_eq(acr_stats_current_rps(tot, tot), 0.0);
    assert_double_eq(acr_stats_total_rps(tot, tot), 0.0);
    /* failures without requests: ratio 1 (Locust) */
    tot->num_failures = 2;
    assert_double_eq(acr_stats_fail_ratio(tot), 1.0);
    /* only requests without a response time: average 0, not a division by zero */
    acr_stats_entry_t *e = acr_stats_get(s, "GET", "/x");
    acr_stats_log(s, e, false, 0, 0, NULL, T0 + 1);
    assert_double_eq(acr_stats_avg_ms(e), 0.0);
    assert_double_eq(acr_stats_min_ms(e), 0.0);
    acr_stats_free(s);
}

static void test_error_grouping(void **state)
{
    (void)state;
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    acr_stats_entry_t *a = acr_stats_get(s, "GET", "/a");
    acr_stats_entry_t *b = acr_stats_get(s, "POST", "/a");
    for (int i = 0; i < 3; i++) acr_stats_log(s, a, true, 1000, 0, "boom", T0 + 1);
    acr_stats_log(s, a, true, 1000, 0, "other", T0 + 1);
    acr_stats_log(s, b, true, 1000, 0, "boom", T0 + 1);
    assert_int_equal(acr_stats_add_error(s, "GET", "/a", "boom", 10), 0);
    assert_int_equal(acr_stats_add_error(s, "DELETE", "/z", "gone", 2), 0);

    size_t n;
    acr_stats_error_t *const *errs = acr_stats_errors(s, &n);
    assert_int_equal(n, 4);
    /* sorted by (method, name, error) */
    const char *want[][3] = {{"DELETE", "/z", "gone"},
                             {"GET", "/a", "boom"},
                             {"GET", "/a", "other"},
                             {"POST", "/a", "boom"}};
    const uint64_t occ[] = {2, 13, 1, 1};
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(errs[i]->method, want[i][0]);
        assert_string_equal(errs[i]->name, want[i][1]);
        assert_string_equal(errs[i]->error, want[i][2]);
        assert_int_equal(errs[i]->occurrences, occ[i]);
    }
    /* add_error does not count requests or failures on entries */
    assert_int_equal(a->num_failures, 4);
    assert_int_equal(acr_stats_total(s)->num_failures, 5);
    assert_int_equal(acr_stats_total(s)->num_requests, 5);
    acr_stats_free(s);
}

static void test_exceptions(void **state)
{
    (void)state;
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    assert_int_equal(acr_stats_add_exception(s, "ValueError", "tb1", "w1", 1), 0);
    assert_int_equal(acr_stats_add_exception(s, "ValueError", "tb1", "w2", 2), 0);
    assert_int_equal(acr_stats_add_exception(s, "ValueError", "tb1", "w1", 1), 0);
    assert_int_equal(acr_stats_add_exception(s, "KeyError", "tb2", "w2", 1), 0);
    size_t n;
    acr_stats_exception_t *const *ex = acr_stats_exceptions(s, &n);
    assert_int_equal(n, 2);
    assert_string_equal(ex[0]->traceback, "tb1");
    assert_int_equal(ex[0]->count, 4);
    assert_string_equal(ex[0]->nodes, "w1, w2");
    assert_string_equal(ex[1]->msg, "KeyError");
    assert_string_equal(ex[1]->nodes, "w2");
    /* counts change the order: tb2 overtakes tb1 */
    assert_int_equal(acr_stats_add_exception(s, "KeyError", "tb2", "w3", 10), 0);
    ex = acr_stats_exceptions(s, &n);
    assert_string_equal(ex[0]->traceback, "tb2");
    assert_string_equal(ex[0]->nodes, "w2, w3");
    acr_stats_free(s);
}

static void test_sorted_view(void **state)
{
    (void)state;
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    /* enough entries to force the table to grow several times */
    char name[32];
    for (int i = 199; i >= 0; i--) {
        snprintf(name, sizeof(name), "/n%03d", i);
        assert_non_null(acr_stats_get(s, i % 2 ? "POST" : "GET", name));
    }
    assert_non_null(acr_stats_get(s, "POST", "/n000"));
    assert_non_null(acr_stats_get(s, "DELETE", "/n000"));
    size_t n;
    acr_stats_entry_t *const *v = acr_stats_sorted(s, &n);
    assert_int_equal(n, 202);
    assert_int_equal(acr_stats_count(s), 202);
    assert_string_equal(v[0]->method, "DELETE");
    assert_string_equal(v[1]->method, "GET");
    assert_string_equal(v[2]->method, "POST");
    assert_string_equal(v[2]->name, "/n000");
    for (size_t i = 1; i < n; i++) {
        int c = strcmp(v[i - 1]->name, v[i]->name);
        if (!c) c = strcmp(v[i - 1]->method, v[i]->method);
        if (c >= 0)
            fail_msg("not sorted at %zu: %s %s then %s %s", i, v[i - 1]->method, v[i - 1]->name,
                     v[i]->method, v[i]->name);
    }
    /* pointers from the view are the entries themselves */
    assert_ptr_equal(v[0], acr_stats_find(s, "DELETE", "/n000"));
    /* a new entry invalidates the view; the next call includes it */
    assert_non_null(acr_stats_get(s, "GET", "/"));
    v = acr_stats_sorted(s, &n);
    assert_int_equal(n, 203);
    assert_string_equal(v[0]->name, "/");
    acr_stats_free(s);
}

static void test_current_rps(void **state)
{
    (void)state;
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    acr_stats_entry_t *tot = acr_stats_total(s);
    acr_stats_entry_t *a = acr_stats_get(s, "GET", "/a");
    acr_stats_entry_t *b = acr_stats_get(s, "GET", "/b");
    assert_double_eq(acr_stats_current_rps(a, tot), 0.0);

    /* /a: 5 req/s with 1 failure/s for 30 s; /b: one request at second 20 */
    for (int sec = 0; sec < 30; sec++)
        for (int k = 0; k < 5; k++)
            acr_stats_log(s, a, true, 1000, 0, k == 0 ? "err" : NULL, T0 + sec + 0.1 * k);
    acr_stats_log(s, b, true, 1000, 0, NULL, T0 + 20.5);
    /* last request at T0+29.4: window [T0+17, T0+27) = 10 s */
    assert_double_eq(acr_stats_current_rps(a, tot), 5.0);
    assert_double_eq(acr_stats_current_fail_per_sec(a, tot), 1.0);
    assert_double_eq(acr_stats_current_rps(b, tot), 0.1);
    assert_double_eq(acr_stats_current_rps(tot, tot), 5.1);

    /* early in the run the window is clamped to the start: last at T0+4.x -> [T0, T0+2) */
    acr_stats_t *s2 = acr_stats_new(T0);
    assert_non_null(s2);
    acr_stats_entry_t *c = acr_stats_get(s2, "GET", "/c");
    acr_stats_log(s2, c, true, 1000, 0, NULL, T0 + 0.5);
    acr_stats_log(s2, c, true, 1000, 0, NULL, T0 + 1.5);
    acr_stats_log(s2, c, true, 1000, 0, NULL, T0 + 1.6);
    assert_double_eq(acr_stats_current_rps(c, acr_stats_total(s2)), 0.0); /* empty range */
    acr_stats_log(s2, c, true, 1000, 0, NULL, T0 + 4.2);
    assert_double_eq(acr_stats_current_rps(c, acr_stats_total(s2)), 1.5);
    /* whole-run rate: 4 requests over 4.2 s */
    assert_double_eq(acr_stats_total_rps(c, acr_stats_total(s2)), 4.0 / ((T0 + 4.2) - T0));
    assert_double_eq(acr_stats_total_fail_per_sec(c, acr_stats_total(s2)), 0.0);
    acr_stats_free(s2);
    acr_stats_free(s);
}

static void test_persec_ring(void **state)
{
    (void)state;
    acr_persec_t p;
    acr_persec_reset(&p);
    acr_persec_add(&p, 100, 3, 1);
    acr_persec_add(&p, 100, 2, 0);
    acr_persec_add(&p, 100 + ACR_PERSEC_SLOTS, 7, 0); /* replaces the old second's slot */
    acr_persec_add(&p, 100, 9, 9);                    /* older than the ring: ignored */
    uint32_t r, f;
    assert_false(acr_persec_get(&p, 100, &r, &f));
    assert_true(acr_persec_get(&p, 100 + ACR_PERSEC_SLOTS, &r, &f));
    assert_int_equal(r, 7);
    assert_int_equal(f, 0);
    acr_persec_add(&p, -5, 1, 0); /* negative seconds map to a valid slot */
    assert_true(acr_persec_get(&p, -5, &r, NULL));
    assert_int_equal(r, 1);
}

static void test_merge(void **state)
{
    (void)state;
    acr_stats_t *m = acr_stats_new(T0);
    acr_stats_t *w1 = acr_stats_new(T0 - 5);
    acr_stats_t *w2 = acr_stats_new(T0 + 1);
    acr_stats_t *all = acr_stats_new(T0 - 5); /* everything recorded directly */
    assert_non_null(m);
    assert_non_null(w1);
    assert_non_null(w2);
    assert_non_null(all);

    struct {
        acr_stats_t *w;
        const char *method, *name;
        uint64_t rt;
        const char *err;
        double t;
    } reqs[] = {
        {w1, "GET", "/a", 1200, NULL, T0 + 2.0},   {w1, "GET", "/a", 800, "e1", T0 + 3.0},
        {w2, "GET", "/a", 500000, NULL, T0 + 2.5}, {w2, "POST", "/b", 70, "e2", T0 + 9.0},
        {w2, "GET", "/a", 3000, "e1", T0 + 4.0},
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        acr_stats_log(reqs[i].w, acr_stats_get(reqs[i].w, reqs[i].method, reqs[i].name), true,
                      reqs[i].rt, 10, reqs[i].err, reqs[i].t);
        acr_stats_log(all, acr_stats_get(all, reqs[i].method, reqs[i].name), true, reqs[i].rt, 10,
                      reqs[i].err, reqs[i].t);
    }
    assert_non_null(acr_stats_get(w1, "GET", "/never")); /* untouched: not merged */
    assert_int_equal(acr_stats_add_exception(w1, "X", "tb", "w1", 1), 0);
    assert_int_equal(acr_stats_add_exception(w2, "X", "tb", "w2", 2), 0);

    assert_int_equal(acr_stats_merge(m, w1), 0);
    assert_int_equal(acr_stats_merge(m, w2), 0);

    assert_int_equal(acr_stats_count(m), 2);
    assert_null(acr_stats_find(m, "GET", "/never"));
    const char *keys[][2] = {{"GET", "/a"}, {"POST", "/b"}};
    for (int i = 0; i < 3; i++) {
        const acr_stats_entry_t *x =
            i < 2 ? acr_stats_find(m, keys[i][0], keys[i][1]) : acr_stats_total(m);
        const acr_stats_entry_t *y =
            i < 2 ? acr_stats_find(all, keys[i][0], keys[i][1]) : acr_stats_total(all);
        assert_non_null(x);
        assert_int_equal(x->num_requests, y->num_requests);
        assert_int_equal(x->num_failures, y->num_failures);
        assert_int_equal(x->total_rt_us, y->total_rt_us);
        assert_int_equal(x->total_content_length, y->total_content_length);
        assert_double_eq(x->last_request_ts, y->last_request_ts);
        assert_memory_equal(&x->hist, &y->hist, sizeof(x->hist));
        for (int64_t t = (int64_t)T0; t < (int64_t)T0 + 10; t++) {
            uint32_t r1, f1, r2, f2;
            acr_persec_get(&x->persec, t, &r1, &f1);
            acr_persec_get(&y->persec, t, &r2, &f2);
            assert_int_equal(r1, r2);
            assert_int_equal(f1, f2);
        }
    }
    /* start_time is the minimum (Locust's extend) */
    assert_double_eq(acr_stats_total(m)->start_time, T0 - 5);
    assert_double_eq(acr_stats_max_ms(acr_stats_total(m)), 500.0);
    assert_double_eq(acr_stats_min_ms(acr_stats_total(m)), 0.07);

    size_t n;
    acr_stats_error_t *const *errs = acr_stats_errors(m, &n);
    assert_int_equal(n, 2);
    assert_string_equal(errs[0]->error, "e1");
    assert_int_equal(errs[0]->occurrences, 2);
    assert_string_equal(errs[1]->method, "POST");
    assert_int_equal(errs[1]->occurrences, 1);
    acr_stats_exception_t *const *ex = acr_stats_exceptions(m, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ex[0]->count, 3);
    assert_string_equal(ex[0]->nodes, "w1, w2");
    /* merging a delta again adds again; node lists stay deduplicated */
    assert_int_equal(acr_stats_merge(m, w2), 0);
    ex = acr_stats_exceptions(m, &n);
    assert_int_equal(ex[0]->count, 5);
    assert_string_equal(ex[0]->nodes, "w1, w2");
    assert_int_equal(acr_stats_total(m)->num_requests, 8);

    acr_stats_free(m);
    acr_stats_free(w1);
    acr_stats_free(w2);
    acr_stats_free(all);
}

static void test_reset_and_clear(void **state)
{
    (void)state;
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    acr_stats_entry_t *a = acr_stats_get(s, "GET", "/a");
    acr_stats_log(s, a, true, 5000, 10, "x", T0 + 1);
    assert_int_equal(acr_stats_add_exception(s, "m", "tb", "local", 1), 0);

    acr_stats_reset(s, T0 + 50);
    size_t n;
    assert_int_equal(acr_stats_count(s), 1);
    assert_ptr_equal(acr_stats_find(s, "GET", "/a"), a); /* kept, same pointer */
    acr_stats_entry_t *const *v = acr_stats_sorted(s, &n);
    assert_int_equal(n, 1);
    assert_ptr_equal(v[0], a);
    const acr_stats_entry_t *es[] = {a, acr_stats_total(s)};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(es[i]->num_requests, 0);
        assert_int_equal(es[i]->num_failures, 0);
        assert_int_equal(es[i]->total_rt_us, 0);
        assert_int_equal(es[i]->hist.count, 0);
        assert_double_eq(es[i]->start_time, T0 + 50);
        assert_double_eq(es[i]->last_request_ts, 0);
        assert_false(acr_persec_get(&es[i]->persec, (int64_t)T0 + 1, NULL, NULL));
    }
    acr_stats_errors(s, &n);
    assert_int_equal(n, 0);
    acr_stats_exceptions(s, &n);
    assert_int_equal(n, 0);

    acr_stats_log(s, a, true, 5000, 10, "x", T0 + 51);
    assert_int_equal(acr_stats_add_exception(s, "m", "tb", "local", 1), 0);
    acr_stats_clear(s, T0 + 60);
    assert_int_equal(acr_stats_count(s), 0);
    assert_null(acr_stats_find(s, "GET", "/a"));
    v = acr_stats_sorted(s, &n);
    assert_int_equal(n, 0);
    acr_stats_errors(s, &n);
    assert_int_equal(n, 0);
    acr_stats_exceptions(s, &n);
    assert_int_equal(n, 0);
    assert_int_equal(acr_stats_total(s)->num_requests, 0);
    assert_double_eq(acr_stats_total(s)->start_time, T0 + 60);
    assert_string_equal(acr_stats_total(s)->name, "Aggregated");
    /* usable again after clear */
    a = acr_stats_get(s, "GET", "/a");
    assert_non_null(a);
    acr_stats_log(s, a, true, 1000, 0, NULL, T0 + 61);
    assert_int_equal(a->num_requests, 1);
    assert_double_eq(a->start_time, T0 + 60); /* new entries start at the latest time seen */
    acr_stats_free(s);
}

/* A cleared table keeps up to 256 entry nodes (each holds a whole histogram) and hands them out
 * again as new entries: the first 256 new entries allocate only their names, the next ones whole
 * nodes; every field of a reused entry starts empty, whatever the old one held. */
static void test_clear_reuses_nodes(void **state)
{
    (void)state;
    enum { N = 300, KEPT = 256 };
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "/old/%d", i);
        acr_stats_entry_t *e = acr_stats_get(s, "GET", name);
        assert_non_null(e);
        acr_stats_log(s, e, true, 10 + (uint64_t)i * 1000, 5, i % 2 ? "boom" : NULL, T0 + 1);
        acr_stats_log(s, e, false, 0, 0, NULL, T0 + 2);
        acr_stats_log_aborted(s, e, T0 + 3);
    }
    acr_stats_clear(s, T0 + 10);
    unit_alloc_snap_t a0 = unit_alloc_snap(), a1 = a0;
    for (int i = 0; i < N; i++) {
        if (i == KEPT) a1 = unit_alloc_snap();
        snprintf(name, sizeof name, "/new/%d", i);
        acr_stats_entry_t *e = acr_stats_get(s, "POST", name);
        assert_non_null(e);
        assert_string_equal(e->method, "POST");
        assert_string_equal(e->name, name);
        assert_int_equal(e->num_requests + e->num_none_requests + e->num_failures, 0);
        assert_int_equal(e->num_aborted + e->total_rt_us + e->total_content_length, 0);
        assert_double_eq(e->start_time, T0 + 10);
        assert_double_eq(e->last_request_ts, 0);
        assert_false(acr_persec_get(&e->persec, (int64_t)T0 + 1, NULL, NULL));
        assert_int_equal(e->hist.count, 0);
        for (unsigned b = 0; b < ACR_HIST_BUCKETS; b++)
            if (e->hist.counts[b]) fail_msg("%s: bucket %u left from the old entry", name, b);
        acr_stats_log(s, e, true, 777, 1, NULL, T0 + 11);
        assert_int_equal(acr_stats_percentile_ms(e, 1.0) * 1000, 777);
    }
    unit_alloc_snap_t a2 = unit_alloc_snap();
    /* names and the table's growth: far less than one histogram per reused entry */
    int64_t reused = a1.live - a0.live, fresh = a2.live - a1.live;
    if (reused >= KEPT * (int64_t)sizeof(acr_hist_t) / 4)
        fail_msg("%d entries after a clear took %lld bytes: their nodes were not reused", KEPT,
                 (long long)reused);
    assert_true(fresh >= (N - KEPT) * (int64_t)sizeof(acr_hist_t));
    assert_int_equal(acr_stats_count(s), N);
    assert_int_equal(acr_stats_total(s)->num_requests, N);
    acr_stats_clear(s, T0 + 20); /* freed with the table, spares included (ASan: no leak) */
    acr_stats_free(s);
}

static void test_names_past_the_cap_fold(void **state)
{
    (void)state;
    acr_stats_t *dst = acr_stats_new(T0), *delta = acr_stats_new(T0);
    assert_non_null(dst);
    assert_non_null(delta);
    acr_stats_set_max_names(dst, 3);
    char name[32];
    for (int i = 0; i < 10; i++) { /* 10 names, one failing, merged into a table capped at 3 */
        snprintf(name, sizeof name, "/u/%d", i);
        acr_stats_entry_t *e = acr_stats_get(delta, i == 7 ? "POST" : "GET", name);
        assert_non_null(e);
        for (int k = 0; k <= i; k++)
            acr_stats_log(delta, e, true, 1000u * (unsigned)(k + 1), 1, i == 5 ? "boom" : NULL,
                          T0 + 1);
    }
    assert_int_equal(acr_stats_merge(dst, delta), 0);
    assert_null(acr_stats_fold_notice(delta)); /* the delta has the default cap: nothing folded */
    /* the names merged first are kept (the hash order decides which): 3 of them, then one
     * [other] per method; the totals are exact */
    size_t n = 0, named = 0;
    acr_stats_entry_t *const *v = acr_stats_sorted(dst, &n);
    uint64_t sum = 0, hist = 0;
    for (size_t i = 0; i < n; i++) {
        sum += v[i]->num_requests;
        hist += v[i]->hist.count;
        if (strcmp(v[i]->name, ACR_STATS_OTHER) != 0) named++;
    }
    assert_int_equal(named, 3);
    assert_true(n >= 4 && n <= 5);
    assert_int_equal(sum, 55);
    assert_int_equal(hist, 55);
    assert_int_equal(acr_stats_total(dst)->num_requests, 55);
    acr_stats_entry_t *other = acr_stats_find(dst, "GET", ACR_STATS_OTHER);
    assert_non_null(other);
    /* the failures of a folded name go with its requests */
    size_t ne = 0;
    acr_stats_error_t *const *errs = acr_stats_errors(dst, &ne);
    assert_int_equal(ne, 1);
    assert_int_equal(errs[0]->occurrences, 6);
    if (!acr_stats_find(dst, "GET", "/u/5")) assert_string_equal(errs[0]->name, ACR_STATS_OTHER);
    /* the first folded name, once */
    const char *first = acr_stats_fold_notice(dst);
    assert_non_null(first);
    assert_true(strncmp(first, "GET /u/", 7) == 0 || strncmp(first, "POST /u/", 8) == 0);
    assert_null(acr_stats_fold_notice(dst));
    /* a kept name keeps counting under its own name; a folded one goes on into [other] */
    uint64_t before = other->num_requests;
    assert_true(acr_stats_get(dst, "GET", "/new") == other);
    assert_int_equal(other->num_requests, before);
    /* clear forgets: the cap applies afresh */
    acr_stats_clear(dst, T0 + 2);
    assert_null(acr_stats_fold_notice(dst));
    assert_int_equal(acr_stats_count(dst), 0);
    acr_stats_free(dst);
    acr_stats_free(delta);
}

static void test_other_methods_are_bounded(void **state)
{
    (void)state;
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    acr_stats_set_max_names(s, 1);
    assert_non_null(acr_stats_get(s, "GET", "/kept"));
    char method[32];
    for (int i = 0; i < 200; i++) { /* 200 methods past the cap, and 200 reported [other]s */
        snprintf(method, sizeof method, "M%d", i);
        assert_non_null(acr_stats_get(s, method, "/x"));
        snprintf(method, sizeof method, "R%d", i);
        assert_non_null(acr_stats_get(s, method, ACR_STATS_OTHER));
    }
    assert_int_equal(acr_stats_count(s), 1 + ACR_STATS_MAX_OTHER + 1);
    assert_non_null(acr_stats_find(s, ACR_STATS_OTHER, ACR_STATS_OTHER));
    /* without a cap nothing folds */
    acr_stats_set_max_names(s, 0);
    assert_non_null(acr_stats_get(s, "GET", "/another"));
    assert_non_null(acr_stats_find(s, "GET", "/another"));
    acr_stats_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_counts_entry_and_total),
        cmocka_unit_test(test_empty_derived_values),
        cmocka_unit_test(test_error_grouping),
        cmocka_unit_test(test_exceptions),
        cmocka_unit_test(test_sorted_view),
        cmocka_unit_test(test_current_rps),
        cmocka_unit_test(test_persec_ring),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_reset_and_clear),
        cmocka_unit_test(test_clear_reuses_nodes),
        cmocka_unit_test(test_names_past_the_cap_fold),
        cmocka_unit_test(test_other_methods_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
