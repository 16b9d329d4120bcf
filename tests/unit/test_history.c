/*
 * The chart history (master/history.c): the buffer's pure logic driven directly (push, pairwise
 * merge with the step doubling, bounded memory over long runs, the JSON), the sample a snapshot
 * gives, and the sampling of a real core driven by fake workers whose frames are fed to its
 * registry as in test_master_state.c: cleared at a test's start, a sample per step while it runs,
 * a last one at the stop.
 */
#include "master/history.c"

#include "master/core/core_int.h"
#include "proto/msg.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "unit_core.h"

/* A history with no loop or core, for the buffer functions. */
static acr_history_t *bare(void)
{
    acr_history_t *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    history_clear(h);
    return h;
}

static acr_history_sample_t sample(double t, double rps, double p99, long users)
{
    return (acr_history_sample_t){.time = t,
                                  .rps = rps,
                                  .fail_per_sec = rps / 10,
                                  .p50 = p99 / 4,
                                  .p95 = p99 / 2,
                                  .p99 = p99,
                                  .users = users};
}

static json_t *parse(const acr_buf_t *b)
{
    json_error_t err;
    json_t *j = json_loadb(b->data, b->len, 0, &err);
    if (!j) fail_msg("bad JSON (%s): %.200s", err.text, b->data);
    return j;
}

static void test_json_empty_and_values(void **state)
{
    (void)state;
    acr_history_t *h = bare();
    acr_buf_t b = {0};
    assert_int_equal(acr_history_json(h, &b), 0);
    assert_string_equal(b.data, "[]");
    acr_buf_reset(&b);
    assert_int_equal(acr_history_json(NULL, &b), 0);
    assert_string_equal(b.data, "[]");

    acr_history_sample_t s = sample(1700000000.125, 12.5, 40, 7);
    assert_int_equal(history_push(h, &s), 0);
    s = sample(1700000002.5, NAN, INFINITY, 9);
    assert_int_equal(history_push(h, &s), 0);
    acr_buf_reset(&b);
    assert_int_equal(acr_buf_append(&b, "x", 1), 0); /* appends after what is there */
    assert_int_equal(acr_history_json(h, &b), 0);
    assert_string_equal(b.data, "x[{\"time\":1700000000.125,\"rps\":12.5,\"fail_per_sec\":1.25,"
                                "\"p50\":10,\"p95\":20,\"p99\":40,\"users\":7},"
                                "{\"time\":1700000002.5,\"rps\":0,\"fail_per_sec\":0,"
                                "\"p50\":0,\"p95\":0,\"p99\":0,\"users\":9}]");
    acr_buf_reset(&b);
    assert_int_equal(acr_history_json(h, &b), 0);
    json_t *j = parse(&b);
    assert_int_equal(json_array_size(j), 2);
    json_t *o = json_array_get(j, 0);
    assert_true(json_real_value(json_object_get(o, "time")) == 1700000000.125);
    assert_int_equal(json_integer_value(json_object_get(o, "users")), 7);
    json_decref(j);
    size_t n;
    const acr_history_sample_t *v = acr_history_samples(h, &n);
    assert_int_equal(n, 2);
    assert_true(v[0].rps == 12.5);
    acr_buf_free(&b);
    acr_history_free(h);
}

/* A full buffer merges pairs on the next push: time and users of the later sample, rates
 * averaged, percentiles the larger; the step doubles. */
static void test_merge_when_full(void **state)
{
    (void)state;
    acr_history_t *h = bare();
    for (size_t i = 0; i < ACR_HISTORY_MAX; i++) {
        double p99 = i == 101 ? 5000 : 10; /* one spike, in the second of its pair */
        if (i == 200) p99 = 7000;          /* one in the first of its pair */
        acr_history_sample_t s = sample((double)i, (double)i, p99, (long)i);
        assert_int_equal(history_push(h, &s), 0);
    }
    assert_int_equal(h->n, ACR_HISTORY_MAX);
    assert_true(acr_history_step(h) == ACR_HISTORY_STEP_S);
    acr_history_sample_t s = sample(ACR_HISTORY_MAX, 1, 10, 3);
    assert_int_equal(history_push(h, &s), 0);
    assert_int_equal(h->n, ACR_HISTORY_MAX / 2 + 1);
    assert_true(acr_history_step(h) == 2 * ACR_HISTORY_STEP_S);
    for (size_t k = 0; k < ACR_HISTORY_MAX / 2; k++) {
        const acr_history_sample_t *m = &h->samples[k];
        if (m->time != (double)(2 * k + 1) || m->users != (long)(2 * k + 1) ||
            m->rps != (double)(2 * k) + 0.5 ||
            fabs(m->fail_per_sec - ((double)(2 * k) + 0.5) / 10) > 1e-9)
            fail_msg("merged sample %zu: time %g users %ld rps %g fail/s %g", k, m->time, m->users,
                     m->rps, m->fail_per_sec);
        double want = k == 50 ? 5000 : k == 100 ? 7000 : 10;
        if (m->p99 != want || m->p95 != want / 2 || m->p50 != want / 4)
            fail_msg("merged sample %zu: p50/p95/p99 %g/%g/%g, expected %g/%g/%g", k, m->p50,
                     m->p95, m->p99, want / 4, want / 2, want);
    }
    assert_true(h->samples[ACR_HISTORY_MAX / 2].time == ACR_HISTORY_MAX);
    assert_int_equal(h->samples[ACR_HISTORY_MAX / 2].users, 3);
    acr_history_free(h);
}

/* Days of samples: never more than ACR_HISTORY_MAX, always in time order, the step a power of two
 * of the first, the last sample pushed always kept as is. */
static void test_bounded_over_a_long_run(void **state)
{
    (void)state;
    acr_history_t *h = bare();
    size_t total = 10 * ACR_HISTORY_MAX + 17;
    size_t merges = 0;
    double step = acr_history_step(h);
    for (size_t i = 0; i < total; i++) {
        acr_history_sample_t s = sample((double)i, 1, 1, 1);
        assert_int_equal(history_push(h, &s), 0);
        if (h->n > ACR_HISTORY_MAX) fail_msg("%zu samples after %zu pushes", h->n, i + 1);
        if (acr_history_step(h) != step) {
            assert_true(acr_history_step(h) == 2 * step);
            step = acr_history_step(h);
            merges++;
        }
        assert_true(h->samples[h->n - 1].time == (double)i);
    }
    assert_true(h->cap <= ACR_HISTORY_MAX);
    assert_true(merges >= 3);
    for (size_t k = 1; k < h->n; k++)
        if (!(h->samples[k].time > h->samples[k - 1].time))
            fail_msg("samples %zu and %zu out of order: %g, %g", k - 1, k, h->samples[k - 1].time,
                     h->samples[k].time);
    history_clear(h);
    assert_int_equal(h->n, 0);
    assert_true(acr_history_step(h) == ACR_HISTORY_STEP_S);
    acr_history_free(h);
}

/* An odd count (never reached through push, which merges a full even buffer) keeps the last one. */
static void test_downsample_odd(void **state)
{
    (void)state;
    acr_history_t *h = bare();
    for (int i = 0; i < 5; i++) {
        acr_history_sample_t s = sample(i, 2 * i, i, i);
        assert_int_equal(history_push(h, &s), 0);
    }
    history_downsample(h);
    assert_int_equal(h->n, 3);
    assert_true(h->samples[0].time == 1 && h->samples[0].rps == 1);
    assert_true(h->samples[1].time == 3 && h->samples[1].rps == 5);
    assert_true(h->samples[2].time == 4 && h->samples[2].rps == 8);
    acr_history_free(h);
}

static void test_sample_of_snapshot(void **state)
{
    (void)state;
    acr_core_snapshot_t s = {.state = ACR_RUN_RUNNING, .user_count = 12};
    acr_history_sample_t out;
    history_sample_of(&s, 42.5, &out); /* no stats, no window yet */
    assert_true(out.time == 42.5 && out.rps == 0 && out.p99 == 0);
    assert_int_equal(out.users, 12);

    double now = acr_now();
    s.stats = acr_stats_new(now - 30);
    assert_non_null(s.stats);
    acr_stats_entry_t *e = acr_stats_get(s.stats, "GET", "/");
    /* 20 s of 3 requests a second, one a failure: current rps 3, failures/s 1 */
    for (int sec = 20; sec >= 0; sec--)
        for (int k = 0; k < 3; k++)
            acr_stats_log(s.stats, e, true, 1000, 0, k == 0 ? "boom" : NULL, now - sec);
    acr_hist_t *cur = malloc(sizeof(*cur));
    assert_non_null(cur);
    acr_hist_reset(cur);
    acr_hist_record_n(cur, 2000, 90);
    acr_hist_record_n(cur, 50000, 9);
    acr_hist_record_n(cur, 900000, 1);
    s.current = cur;
    history_sample_of(&s, now, &out);
    if (fabs(out.rps - 3) > 1e-9 || fabs(out.fail_per_sec - 1) > 1e-9)
        fail_msg("rps %g fail/s %g, expected 3 and 1", out.rps, out.fail_per_sec);
    /* ranks 50, 95 and 99 of 100: 2 ms, 50 ms, 50 ms within the histogram's 1 % */
    if (fabs(out.p50 - 2) > 0.02 || fabs(out.p95 - 50) > 0.5 || fabs(out.p99 - 50) > 0.5)
        fail_msg("p50/p95/p99 %g/%g/%g", out.p50, out.p95, out.p99);
    acr_hist_reset(cur); /* an empty window: percentiles 0 */
    history_sample_of(&s, now, &out);
    assert_true(out.p50 == 0 && out.p95 == 0 && out.p99 == 0);
    free(cur);
    acr_stats_free(s.stats);
}

/* ---- a real core with fake workers ---- */

static acr_user_class_t classes[] = {{.name = (char *)"Reader", .weight = 1}};

typedef struct {
    uv_loop_t loop;
    acr_core_t *c;
    acr_history_t *h;
    acr_buf_t b;
    int64_t seq;
} fixture_t;

static void nop_listener(acr_core_t *c, const acr_core_event_t *ev, void *ud)
{
    (void)c;
    (void)ev;
    (void)ud;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    acr_core_config_t cfg = {.classes = classes, .nclasses = 1, .stop_timeout = -1};
    ucore_open(&f->loop, &cfg, &f->c);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    acr_history_close(f->h);
    ucore_close(&f->loop, f->c);
    acr_history_free(f->h);
    acr_buf_free(&f->b);
    free(f);
    return 0;
}

static void worker_spawned(fixture_t *f, const char *id, long users)
{
    acr_class_count_t cc = {(char *)"Reader", users};
    acr_buf_reset(&f->b);
    assert_int_equal(acr_msg_encode_spawning_complete(&f->b, &cc, 1, users, id), 0);
    ucore_feed(f->c, &f->b, id);
}

/* A report of @requests GET / of 1 ms from worker @id, which runs @users users. */
static void worker_report(fixture_t *f, const char *id, int requests, long users, bool final)
{
    acr_class_count_t cc = {(char *)"Reader", users};
    acr_stats_t *delta = ucore_requests(requests);
    acr_buf_reset(&f->b);
    assert_int_equal(acr_msg_encode_stats(&f->b, delta, &cc, 1, users, f->seq++, final, id), 0);
    acr_stats_free(delta);
    ucore_feed(f->c, &f->b, id);
}

/* Runs the loop until the history holds @n samples (the timer is the only thing that adds one
 * while the test runs); fails after 60 s. */
static void wait_samples(fixture_t *f, size_t n)
{
    double deadline = acr_mono_s() + 60;
    while (f->h->n < n) {
        if (acr_mono_s() > deadline) fail_msg("%zu samples after 60 s, expected %zu", f->h->n, n);
        uv_run(&f->loop, UV_RUN_ONCE);
    }
}

static void test_samples_a_core(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(acr_history_new(&f->loop, f->c, &f->h), 0);
    assert_int_equal(f->h->n, 0); /* ready: nothing yet */
    ucore_worker_ready(f->c, &f->b, "h1_a");
    assert_int_equal(acr_core_start(f->c, 3, 100, NULL, 0, NULL, 0), 0);
    assert_int_equal(f->h->n, 1); /* the start's sample */
    assert_int_equal(f->h->samples[0].users, 0);
    assert_true(f->h->samples[0].p99 == 0);
    worker_spawned(f, "h1_a", 3);
    worker_report(f, "h1_a", 20, 3, false);
    wait_samples(f, 2); /* one tick of the timer */
    assert_int_equal(f->h->samples[1].users, 3);
    assert_true(f->h->samples[1].p50 == 1.0 && f->h->samples[1].p99 == 1.0);
    assert_true(f->h->samples[1].time >= f->h->samples[0].time);

    /* an edit (running -> spawning -> running) is the same test: nothing cleared */
    size_t kept = f->h->n;
    assert_int_equal(acr_core_edit(f->c, 2, 100, NULL, 0), 0);
    worker_spawned(f, "h1_a", 2);
    assert_int_equal(f->h->n, kept);
    assert_true(uv_is_active((uv_handle_t *)&f->h->timer));

    /* the stop: no sample at stopping, a last one at stopped, then no more */
    assert_int_equal(acr_core_stop(f->c), 0);
    size_t before = f->h->n;
    worker_report(f, "h1_a", 5, 0, true);
    ucore_worker_nil(f->c, &f->b, "h1_a", "client_stopped");
    acr_core_snapshot_t s;
    acr_core_snapshot(f->c, &s);
    assert_int_equal(s.state, ACR_RUN_STOPPED);
    acr_core_snapshot_free(&s);
    assert_int_equal(f->h->n, before + 1);
    assert_false(f->h->active);
    assert_false(uv_is_active((uv_handle_t *)&f->h->timer));
    assert_true(f->h->samples[f->h->n - 1].p99 == 1.0);

    acr_buf_t b = {0};
    assert_int_equal(acr_history_json(f->h, &b), 0);
    json_t *j = parse(&b);
    assert_int_equal(json_array_size(j), f->h->n);
    json_decref(j);
    acr_buf_free(&b);

    /* a new test clears it */
    ucore_worker_ready(f->c, &f->b, "h1_a");
    assert_int_equal(acr_core_start(f->c, 1, 100, NULL, 0, NULL, 0), 0);
    assert_int_equal(f->h->n, 1);
    assert_true(acr_history_step(f->h) == ACR_HISTORY_STEP_S);
    assert_true(uv_is_active((uv_handle_t *)&f->h->timer));
}

/* Made while a test is under way, it samples from then on. */
static void test_made_during_a_test(void **state)
{
    fixture_t *f = *state;
    ucore_worker_ready(f->c, &f->b, "h1_a");
    assert_int_equal(acr_core_start(f->c, 2, 100, NULL, 0, NULL, 0), 0);
    worker_spawned(f, "h1_a", 2);
    assert_int_equal(acr_history_new(&f->loop, f->c, &f->h), 0);
    assert_int_equal(f->h->n, 1);
    assert_int_equal(f->h->samples[0].users, 2);
    assert_true(uv_is_active((uv_handle_t *)&f->h->timer));
}

/* With the core's subscriber slots (eight) taken: -ENOSPC, nothing leaks (ASan checks). */
static void test_no_subscriber_slot(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 8; i++) assert_int_equal(acr_core_subscribe(f->c, nop_listener, NULL), 0);
    assert_int_equal(acr_core_subscribe(f->c, nop_listener, NULL), -ENOSPC);
    acr_history_t *h = (acr_history_t *)1;
    assert_int_equal(acr_history_new(&f->loop, f->c, &h), -ENOSPC);
    assert_null(h);
}

#define CORE_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_empty_and_values),
        cmocka_unit_test(test_merge_when_full),
        cmocka_unit_test(test_bounded_over_a_long_run),
        cmocka_unit_test(test_downsample_odd),
        cmocka_unit_test(test_sample_of_snapshot),
        CORE_TEST(test_samples_a_core),
        CORE_TEST(test_made_during_a_test),
        CORE_TEST(test_no_subscriber_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
