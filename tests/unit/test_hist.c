/*
 * Unit tests of the log-linear histogram: bucket geometry, accuracy of percentiles against the
 * exact order statistics of skewed data, lossless merging.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/hist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSAMPLES 200000
#define ONE_HOUR_US 3600000000ull

static const double PCTS[] = {0.5, 0.66, 0.75, 0.8, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0};

/* splitmix64: a fixed-seed PRNG so the data set is the same on every run. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1). */
static double rng_unit(uint64_t *s)
{
    return ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
}

static uint64_t clamp_us(double v)
{
    if (v < 1.0) return 1;
    if (v > (double)ONE_HOUR_US) return ONE_HOUR_US;
    return (uint64_t)v;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Exact nearest-rank percentile, with the same tolerance for the rounding of p * n as the
 * histogram (0.9999 * n must not become one rank higher because 0.9999 is not representable). */
static uint64_t exact_percentile(const uint64_t *sorted, size_t n, double p)
{
    double x = p * (double)n;
    double r = ceil(x - x * 1e-12);
    size_t rank = r < 1.0 ? 1 : (size_t)r;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

static void check_accuracy(uint64_t *vals, size_t n, const char *what)
{
    acr_hist_t *h = malloc(sizeof(*h));
    assert_non_null(h);
    acr_hist_reset(h);
    for (size_t i = 0; i < n; i++) acr_hist_record(h, vals[i]);
    qsort(vals, n, sizeof(*vals), cmp_u64);
    assert_int_equal(h->count, n);
    assert_int_equal(h->min_us, vals[0]);
    assert_int_equal(h->max_us, vals[n - 1]);
    /* The data must really be skewed over a wide range, or the test proves nothing. */
    assert_true(vals[0] <= 10);
    assert_true(vals[n - 1] >= 1000000000ull);

    for (size_t i = 0; i < sizeof(PCTS) / sizeof(PCTS[0]); i++) {
        uint64_t exact = exact_percentile(vals, n, PCTS[i]);
        uint64_t got = acr_hist_percentile(h, PCTS[i]);
        double err = fabs((double)got - (double)exact) / (double)exact;
        if (err > 0.01)
            fail_msg("%s p%g: histogram %llu vs exact %llu (error %.4f%%)", what, PCTS[i] * 100,
                     (unsigned long long)got, (unsigned long long)exact, err * 100);
    }
    assert_int_equal(acr_hist_percentile(h, 1.0), vals[n - 1]);
    assert_int_equal(acr_hist_percentile(h, 0.0), vals[0]);
    free(h);
}

static void test_accuracy_lognormal(void **state)
{
    (void)state;
    uint64_t *vals = malloc(NSAMPLES * sizeof(*vals));
    assert_non_null(vals);
    uint64_t seed = 42;
    /* Lognormal around 20 ms with sigma 3: spans 1 µs .. 1 h after clamping. */
    for (size_t i = 0; i < NSAMPLES; i++) {
        double u1 = rng_unit(&seed), u2 = rng_unit(&seed);
        double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
        vals[i] = clamp_us(exp(log(20000.0) + 3.0 * z));
    }
    check_accuracy(vals, NSAMPLES, "lognormal");
    free(vals);
}

static void test_accuracy_pareto(void **state)
{
    (void)state;
    uint64_t *vals = malloc(NSAMPLES * sizeof(*vals));
    assert_non_null(vals);
    uint64_t seed = 7;
    /* Pareto with x_m = 1 µs and alpha = 0.45: heavy tail reaching the 1 h clamp. */
    for (size_t i = 0; i < NSAMPLES; i++) vals[i] = clamp_us(pow(rng_unit(&seed), -1.0 / 0.45));
    check_accuracy(vals, NSAMPLES, "pareto");
    free(vals);
}

static void test_small_values_exact(void **state)
{
    (void)state;
    acr_hist_t h;
    acr_hist_reset(&h);
    /* 1..100 once each: everything below 128 is an exact bucket. */
    for (uint64_t v = 1; v <= 100; v++) acr_hist_record(&h, v);
    assert_int_equal(acr_hist_percentile(&h, 0.5), 50);
    assert_int_equal(acr_hist_percentile(&h, 0.66), 66);
    assert_int_equal(acr_hist_percentile(&h, 0.99), 99);
    assert_int_equal(acr_hist_percentile(&h, 0.001), 1);
    assert_int_equal(acr_hist_percentile(&h, 1.0), 100);
    assert_int_equal(acr_hist_percentile(&h, 0.0), 1);
}

static void test_empty_and_single(void **state)
{
    (void)state;
    acr_hist_t h;
    acr_hist_reset(&h);
    assert_int_equal(h.count, 0);
    assert_int_equal(h.min_us, UINT64_MAX);
    assert_int_equal(h.max_us, 0);
    assert_int_equal(acr_hist_percentile(&h, 0.5), 0);
    assert_int_equal(acr_hist_percentile(&h, 1.0), 0);

    /* One value in a wide bucket: every percentile is the value itself (clamped to min/max). */
    acr_hist_record(&h, 123457);
    for (size_t i = 0; i < sizeof(PCTS) / sizeof(PCTS[0]); i++)
        assert_int_equal(acr_hist_percentile(&h, PCTS[i]), 123457);

    /* record_n with n = 0 records nothing */
    acr_hist_reset(&h);
    acr_hist_record_n(&h, 5, 0);
    assert_int_equal(h.count, 0);
    assert_int_equal(h.min_us, UINT64_MAX);
    acr_hist_record_n(&h, 5, 3);
    assert_int_equal(h.count, 3);
    assert_int_equal(h.counts[5], 3);
}

static void test_percentile_clamps_to_min_max(void **state)
{
    (void)state;
    acr_hist_t h;
    acr_hist_reset(&h);
    /* Values at the top of a wide bucket: the midpoint lies below min, so min is returned. */
    unsigned idx = acr_hist_index(1000000);
    uint64_t top = acr_hist_bucket_low(idx) + acr_hist_bucket_width(idx) - 1;
    acr_hist_record_n(&h, top, 10);
    assert_true(acr_hist_bucket_value(idx) < top);
    assert_int_equal(acr_hist_percentile(&h, 0.5), top);
    acr_hist_reset(&h);
    /* and at the bottom: the midpoint lies above max. */
    uint64_t low = acr_hist_bucket_low(idx);
    acr_hist_record_n(&h, low, 10);
    assert_true(acr_hist_bucket_value(idx) > low);
    assert_int_equal(acr_hist_percentile(&h, 0.5), low);
}

static void test_bucket_geometry(void **state)
{
    (void)state;
    assert_int_equal(ACR_HIST_BUCKETS, 64 + 30 * 64);
    /* Contiguity: bucket i+1 starts where bucket i ends, and both ends map back to i. */
    assert_int_equal(acr_hist_bucket_low(0), 0);
    for (unsigned i = 0; i < ACR_HIST_BUCKETS; i++) {
        uint64_t low = acr_hist_bucket_low(i), w = acr_hist_bucket_width(i);
        assert_true(w >= 1);
        if (acr_hist_index(low) != i || acr_hist_index(low + w - 1) != i)
            fail_msg("bucket %u [%llu, +%llu): index(low)=%u index(high)=%u", i,
                     (unsigned long long)low, (unsigned long long)w, acr_hist_index(low),
                     acr_hist_index(low + w - 1));
        if (i + 1 < ACR_HIST_BUCKETS && acr_hist_bucket_low(i + 1) != low + w)
            fail_msg("bucket %u ends at %llu but bucket %u starts at %llu", i,
                     (unsigned long long)(low + w), i + 1,
                     (unsigned long long)acr_hist_bucket_low(i + 1));
        uint64_t mid = acr_hist_bucket_value(i);
        assert_true(mid >= low && mid < low + w);
        /* relative half-width <= 1/128 for every non-exact bucket */
        if (w > 1) assert_true((double)(w / 2) / (double)low <= 1.0 / 128.0);
    }
    /* The last bucket ends at 2^36. */
    unsigned last = ACR_HIST_BUCKETS - 1;
    assert_int_equal(acr_hist_bucket_low(last) + acr_hist_bucket_width(last), 1ull << 36);

    /* Boundaries */
    assert_int_equal(acr_hist_index(0), 0);
    assert_int_equal(acr_hist_index(1), 1);
    assert_int_equal(acr_hist_index(63), 63);
    assert_int_equal(acr_hist_index(64), 64);
    assert_int_equal(acr_hist_index(127), 127);
    assert_int_equal(acr_hist_index(128), 128);
    assert_int_equal(acr_hist_index(129), 128);
    assert_int_equal(acr_hist_index(130), 129);
    assert_int_equal(acr_hist_bucket_width(63), 1);
    assert_int_equal(acr_hist_bucket_width(127), 1);
    assert_int_equal(acr_hist_bucket_width(128), 2);
    assert_int_equal(acr_hist_bucket_value(63), 63);
    assert_int_equal(acr_hist_bucket_value(127), 127);
    assert_int_equal(acr_hist_bucket_value(128), 129);
    assert_int_equal(acr_hist_index((1ull << 36) - 1), last);
    assert_int_equal(acr_hist_index(1ull << 36), last);
    assert_int_equal(acr_hist_index(1ull << 50), last);
    assert_int_equal(acr_hist_index(UINT64_MAX), last);
    assert_int_equal(acr_hist_index(1ull << 35), last - 63);
    assert_int_equal(acr_hist_index((1ull << 35) - 1), last - 64);
    /* Out-of-range indexes are clamped by the accessors. */
    assert_int_equal(acr_hist_bucket_low(ACR_HIST_BUCKETS + 5), acr_hist_bucket_low(last));

    /* Huge values are kept exactly in max and returned for p = 1. */
    acr_hist_t h;
    acr_hist_reset(&h);
    acr_hist_record(&h, UINT64_MAX);
    acr_hist_record(&h, 1);
    assert_int_equal(h.counts[last], 1);
    assert_int_equal(acr_hist_percentile(&h, 1.0), UINT64_MAX);
    assert_int_equal(acr_hist_percentile(&h, 0.5), 1);
}

static void test_merge_equals_union(void **state)
{
    (void)state;
    acr_hist_t *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)), *u = malloc(sizeof(*u));
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(u);
    acr_hist_reset(a);
    acr_hist_reset(b);
    acr_hist_reset(u);
    uint64_t seed = 99;
    for (int i = 0; i < 50000; i++) {
        uint64_t v = clamp_us(pow(rng_unit(&seed), -1.0 / 0.5));
        acr_hist_record(i % 3 ? a : b, v);
        acr_hist_record(u, v);
    }
    acr_hist_record(b, 0); /* b holds the global min */
    acr_hist_record(u, 0);
    acr_hist_merge(a, b);
    assert_int_equal(a->count, u->count);
    assert_int_equal(a->min_us, u->min_us);
    assert_int_equal(a->max_us, u->max_us);
    for (unsigned i = 0; i < ACR_HIST_BUCKETS; i++)
        if (a->counts[i] != u->counts[i])
            fail_msg("bucket %u: merged %llu vs union %llu", i, (unsigned long long)a->counts[i],
                     (unsigned long long)u->counts[i]);
    for (size_t i = 0; i < sizeof(PCTS) / sizeof(PCTS[0]); i++)
        assert_int_equal(acr_hist_percentile(a, PCTS[i]), acr_hist_percentile(u, PCTS[i]));

    /* Merging an empty histogram changes nothing; merging into an empty one copies. */
    acr_hist_t *e = malloc(sizeof(*e));
    assert_non_null(e);
    acr_hist_reset(e);
    acr_hist_merge(a, e);
    assert_memory_equal(a, u, sizeof(*a));
    acr_hist_merge(e, u);
    assert_memory_equal(e, u, sizeof(*e));
    free(a);
    free(b);
    free(u);
    free(e);
}

struct walk {
    unsigned last_idx;
    uint64_t total;
    unsigned calls;
};

static void walk_fn(unsigned idx, uint64_t n, void *ud)
{
    struct walk *w = ud;
    if (w->calls) assert_true(idx > w->last_idx);
    assert_true(n > 0);
    w->last_idx = idx;
    w->total += n;
    w->calls++;
}

static void test_foreach_and_add_bucket(void **state)
{
    (void)state;
    acr_hist_t h, g;
    acr_hist_reset(&h);
    acr_hist_record_n(&h, 5, 2);
    acr_hist_record_n(&h, 5000, 3);
    acr_hist_record_n(&h, 5000000, 4);
    struct walk w = {0, 0, 0};
    acr_hist_foreach(&h, walk_fn, &w);
    assert_int_equal(w.calls, 3);
    assert_int_equal(w.total, 9);

    /* Rebuild from buckets (as the wire decoder does) and compare. */
    acr_hist_reset(&g);
    for (unsigned i = 0; i < ACR_HIST_BUCKETS; i++)
        if (h.counts[i]) assert_true(acr_hist_add_bucket(&g, i, h.counts[i]));
    assert_false(acr_hist_add_bucket(&g, ACR_HIST_BUCKETS, 1));
    assert_false(acr_hist_add_bucket(&g, UINT32_MAX, 1));
    g.min_us = h.min_us;
    g.max_us = h.max_us;
    assert_memory_equal(&g, &h, sizeof(h));
    assert_int_equal(acr_hist_percentile(&g, 0.5), acr_hist_bucket_value(acr_hist_index(5000)));
}

static void assert_all_zero(const acr_hist_t *h)
{
    for (unsigned i = 0; i < ACR_HIST_BUCKETS; i++)
        if (h->counts[i]) fail_msg("bucket %u holds %llu", i, (unsigned long long)h->counts[i]);
}

/* The range of non-zero buckets: clearing writes only that range, merging and walking read only
 * the source's, so a range that missed a bucket would leave counts behind or lose them. */
static void test_clear_and_range(void **state)
{
    (void)state;
    acr_hist_t *h = calloc(1, sizeof(*h)), *g = calloc(1, sizeof(*g));
    assert_non_null(h);
    assert_non_null(g);
    acr_hist_clear(h); /* a zeroed struct is an empty histogram */
    assert_true(h->lo > h->hi);
    assert_int_equal(acr_hist_percentile(h, 0.5), 0);

    acr_hist_record_n(h, 300, 2);
    acr_hist_record_n(h, 90000, 1);
    assert_true(acr_hist_add_bucket(h, 0, 0)); /* nothing added: the range stays */
    assert_int_equal(h->lo, acr_hist_index(300));
    assert_int_equal(h->hi, acr_hist_index(90000));
    acr_hist_clear(h);
    assert_all_zero(h);
    assert_int_equal(h->count, 0);
    assert_int_equal(acr_hist_percentile(h, 1.0), 0);

    /* disjoint ranges on either side of the destination's (a zeroed struct's range is [0, 0]) */
    acr_hist_clear(g);
    acr_hist_record_n(h, 5000, 4);
    acr_hist_record_n(g, 7, 1);
    acr_hist_record_n(g, 1 * 1000 * 1000 * 1000, 1);
    acr_hist_merge(h, g);
    assert_int_equal(h->lo, 7);
    assert_int_equal(h->hi, acr_hist_index(1000 * 1000 * 1000));
    assert_int_equal(h->count, 6);
    assert_int_equal(acr_hist_percentile(h, 0.1), 7);
    assert_int_equal(acr_hist_percentile(h, 0.5), acr_hist_bucket_value(acr_hist_index(5000)));
    assert_int_equal(acr_hist_percentile(h, 1.0), 1000 * 1000 * 1000);
    struct walk w = {0, 0, 0};
    acr_hist_foreach(h, walk_fn, &w);
    assert_int_equal(w.calls, 3);
    assert_int_equal(w.total, 6);
    acr_hist_clear(h);
    assert_all_zero(h);
    free(h);
    free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_geometry),
        cmocka_unit_test(test_small_values_exact),
        cmocka_unit_test(test_empty_and_single),
        cmocka_unit_test(test_percentile_clamps_to_min_max),
        cmocka_unit_test(test_accuracy_lognormal),
        cmocka_unit_test(test_accuracy_pareto),
        cmocka_unit_test(test_merge_equals_union),
        cmocka_unit_test(test_foreach_and_add_bucket),
        cmocka_unit_test(test_clear_and_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
