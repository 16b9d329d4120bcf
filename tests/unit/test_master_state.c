/*
 * The master's control core (master/core/): the run state machine's transition table, one test
 * per (from, to) pair through the one transition function (legal: state changed and one
 * ACR_CORE_EV_STATE event; illegal: -EINVAL, state kept, no event), then the core's API
 * (start, edit, stop, reset, snapshot, quit) driven with fake workers whose frames are fed to the
 * registry as the ROUTER would (the core has no channel here, so what it sends goes nowhere).
 */
#include "master/core/core_int.h"

#include "common/util.h"
#include "proto/msg.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "unit_core.h"

static const char *const legal_pairs[] = {
    "ready>spawning",   "ready>stopped",    "spawning>running", "spawning>stopping",
    "running>spawning", "running>stopping", "stopping>stopped", "stopped>spawning",
};

static bool expected_legal(acr_run_state_t from, acr_run_state_t to)
{
    char key[64];
    snprintf(key, sizeof key, "%s>%s", acr_run_state_name(from), acr_run_state_name(to));
    for (size_t i = 0; i < ACR_ARRAY_SIZE(legal_pairs); i++)
        if (strcmp(legal_pairs[i], key) == 0) return true;
    return false;
}

/* ---- events seen by a subscriber ---- */

#define MAX_EVENTS 64

typedef struct {
    acr_core_event_t ev[MAX_EVENTS];
    size_t n;
} events_t;

static void record(acr_core_t *c, const acr_core_event_t *ev, void *ud)
{
    (void)c;
    events_t *e = ud;
    if (e->n < MAX_EVENTS) e->ev[e->n++] = *ev;
}

static size_t count_events(const events_t *e, acr_core_event_type_t type)
{
    size_t n = 0;
    for (size_t i = 0; i < e->n; i++) n += e->ev[i].type == type;
    return n;
}

/* The STATE events in order, as "a>b,b>c". */
static void state_path(const events_t *e, char *out, size_t len)
{
    size_t o = 0;
    out[0] = 0;
    for (size_t i = 0; i < e->n && o < len; i++)
        if (e->ev[i].type == ACR_CORE_EV_STATE)
            o += (size_t)snprintf(out + o, len - o, "%s%s>%s", o ? "," : "",
                                  acr_run_state_name(e->ev[i].from),
                                  acr_run_state_name(e->ev[i].to));
}

/* ---- the transition table, one test per pair ---- */

typedef struct {
    acr_run_state_t from, to;
    char name[64];
} pair_t;

static pair_t pairs[ACR_RUN__COUNT * ACR_RUN__COUNT];

static void test_transition(void **state)
{
    const pair_t *p = *state;
    acr_core_t c;
    events_t ev = {0};
    memset(&c, 0, sizeof c);
    c.run.state = p->from;
    assert_int_equal(acr_core_subscribe(&c, record, &ev), 0);
    bool want = expected_legal(p->from, p->to);
    bool got = acr_run_transition_legal(p->from, p->to);
    if (want != got)
        fail_msg("%s: expected %s, table says %s", p->name, want ? "legal" : "illegal",
                 got ? "legal" : "illegal");
    int rc = acr__run_set_state(&c, p->to);
    if (want) {
        if (rc != 0 || c.run.state != p->to)
            fail_msg("%s: rc %d, state %s", p->name, rc, acr_run_state_name(c.run.state));
        assert_int_equal(ev.n, 1);
        assert_int_equal(ev.ev[0].type, ACR_CORE_EV_STATE);
        assert_int_equal(ev.ev[0].from, p->from);
        assert_int_equal(ev.ev[0].to, p->to);
    } else {
        if (rc != -EINVAL || c.run.state != p->from)
            fail_msg("%s should be refused: rc %d, state %s", p->name, rc,
                     acr_run_state_name(c.run.state));
        assert_int_equal(ev.n, 0);
    }
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(acr_run_state_name(ACR_RUN_READY), "ready");
    assert_string_equal(acr_run_state_name(ACR_RUN_SPAWNING), "spawning");
    assert_string_equal(acr_run_state_name(ACR_RUN_RUNNING), "running");
    assert_string_equal(acr_run_state_name(ACR_RUN_STOPPING), "stopping");
    assert_string_equal(acr_run_state_name(ACR_RUN_STOPPED), "stopped");
    assert_string_equal(acr_run_state_name(ACR_RUN__COUNT), "?");
    assert_string_equal(acr_worker_state_name(ACR_WORKER_MISSING), "missing");
    assert_false(acr_run_transition_legal(ACR_RUN__COUNT, ACR_RUN_READY));
    assert_false(acr_run_transition_legal(ACR_RUN_READY, ACR_RUN__COUNT));
}

/* ---- the core with fake workers ---- */

static acr_user_class_t classes[] = {
    {.name = (char *)"Reader", .weight = 1},
    {.name = (char *)"Writer", .weight = 1},
};

typedef struct {
    uv_loop_t loop;
    acr_core_t *c;
    events_t ev;
    acr_buf_t b;
    int64_t seq;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    acr_core_config_t cfg = {
        .classes = classes,
        .nclasses = ACR_ARRAY_SIZE(classes),
        .host = "http://default.test",
        .stop_timeout = -1,
        .scenario_name = "s.lua",
        .scenario_src = "-- scenario",
        .scenario_len = 11,
    };
    ucore_open(&f->loop, &cfg, &f->c);
    assert_int_equal(acr_core_subscribe(f->c, record, &f->ev), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    ucore_close(&f->loop, f->c);
    acr_buf_free(&f->b);
    free(f);
    return 0;
}

/* A stats report of @requests GET / from worker @id (final: its last one after a stop). */
static void worker_report(fixture_t *f, const char *id, int requests, bool final)
{
    acr_stats_t *delta = ucore_requests(requests);
    acr_buf_reset(&f->b);
    assert_int_equal(acr_msg_encode_stats(&f->b, delta, NULL, 0, 0, f->seq++, final, id), 0);
    acr_stats_free(delta);
    ucore_feed(f->c, &f->b, id);
}

static acr_core_snapshot_t snap(fixture_t *f)
{
    acr_core_snapshot_t s;
    assert_int_equal(acr_core_snapshot(f->c, &s), 0);
    return s;
}

static acr_run_state_t run_state(fixture_t *f)
{
    acr_core_snapshot_t s = snap(f);
    acr_core_snapshot_free(&s);
    return s.state;
}

static void assert_path(fixture_t *f, const char *want)
{
    char got[512];
    state_path(&f->ev, got, sizeof got);
    if (strcmp(got, want) != 0) fail_msg("state events: got '%s', expected '%s'", got, want);
}

/* Two workers, started and fully spawned: running, 4 users. */
static void two_running(fixture_t *f)
{
    ucore_worker_ready(f->c, &f->b, "h1_a");
    ucore_worker_ready(f->c, &f->b, "h2_b");
    assert_int_equal(acr_core_start(f->c, 4, 100, NULL, 0, NULL, 0), 0);
    assert_int_equal(run_state(f), ACR_RUN_SPAWNING);
    ucore_worker_spawned(f->c, &f->b, "h1_a");
    assert_int_equal(run_state(f), ACR_RUN_SPAWNING);
    ucore_worker_spawned(f->c, &f->b, "h2_b");
    assert_int_equal(run_state(f), ACR_RUN_RUNNING);
}

static void test_start_needs_a_worker(void **state)
{
    fixture_t *f = *state;
    acr_core_snapshot_t s = snap(f);
    assert_int_equal(s.state, ACR_RUN_READY);
    assert_int_equal(s.nworkers, 0);
    acr_core_snapshot_free(&s);
    assert_int_equal(acr_core_start(f->c, 1, 1, NULL, 0, NULL, 0), -EAGAIN);
    assert_int_equal(acr_core_start(f->c, -1, 1, NULL, 0, NULL, 0), -EINVAL);
    assert_int_equal(acr_core_start(f->c, 1, 0, NULL, 0, NULL, 0), -EINVAL);
    assert_int_equal(run_state(f), ACR_RUN_READY);
    assert_int_equal(count_events(&f->ev, ACR_CORE_EV_STATE), 0);
}

static void test_commands_refused_in_ready(void **state)
{
    fixture_t *f = *state;
    ucore_worker_ready(f->c, &f->b, "h1_a");
    assert_int_equal(acr_core_edit(f->c, 3, 1, NULL, 0), -EINVAL);
    assert_int_equal(acr_core_stop(f->c), -EINVAL);
    assert_int_equal(run_state(f), ACR_RUN_READY);
    assert_true(count_events(&f->ev, ACR_CORE_EV_WORKERS) >= 1);
}

static void test_full_cycle(void **state)
{
    fixture_t *f = *state;
    two_running(f);
    acr_core_snapshot_t s = snap(f);
    assert_int_equal(s.user_count, 4);
    assert_int_equal(s.target_users, 4);
    assert_int_equal(s.live_workers, 2);
    assert_true(s.test_id[0] != 0);
    acr_core_snapshot_free(&s);
    /* start while running is refused; edit re-targets: running -> spawning -> running */
    assert_int_equal(acr_core_start(f->c, 2, 1, NULL, 0, NULL, 0), -EBUSY);
    assert_int_equal(acr_core_edit(f->c, 2, 100, NULL, 0), 0);
    assert_int_equal(run_state(f), ACR_RUN_SPAWNING);
    ucore_worker_spawned(f->c, &f->b, "h1_a");
    ucore_worker_spawned(f->c, &f->b, "h2_b");
    assert_int_equal(run_state(f), ACR_RUN_RUNNING);
    s = snap(f);
    assert_int_equal(s.user_count, 2);
    acr_core_snapshot_free(&s);
    /* stop: stopping until each worker sent client_stopped and its final report */
    assert_int_equal(acr_core_stop(f->c), 0);
    assert_int_equal(acr_core_stop(f->c), -EINVAL);
    assert_int_equal(acr_core_start(f->c, 2, 1, NULL, 0, NULL, 0), -EBUSY);
    assert_int_equal(acr_core_edit(f->c, 2, 1, NULL, 0), -EINVAL);
    worker_report(f, "h1_a", 3, true);
    ucore_worker_nil(f->c, &f->b, "h1_a", "client_stopped");
    assert_int_equal(run_state(f), ACR_RUN_STOPPING);
    worker_report(f, "h2_b", 4, true);
    ucore_worker_nil(f->c, &f->b, "h2_b", "client_stopped");
    assert_int_equal(run_state(f), ACR_RUN_STOPPED);
    s = snap(f);
    assert_int_equal(acr_stats_total(s.stats)->num_requests, 7);
    assert_int_equal(s.reports_merged, 2);
    assert_int_equal(s.lost_reports, 0);
    acr_core_snapshot_free(&s);
    /* stopped -> spawning: a new test, stats cleared */
    assert_int_equal(acr_core_edit(f->c, 2, 1, NULL, 0), -EINVAL);
    ucore_worker_ready(f->c, &f->b, "h1_a");
    ucore_worker_ready(f->c, &f->b, "h2_b");
    assert_int_equal(acr_core_start(f->c, 2, 100, NULL, 0, NULL, 0), 0);
    s = snap(f);
    assert_int_equal(acr_stats_total(s.stats)->num_requests, 0);
    acr_core_snapshot_free(&s);
    assert_path(f, "ready>spawning,spawning>running,running>spawning,spawning>running,"
                   "running>stopping,stopping>stopped,stopped>spawning");
}

static void test_stop_while_spawning(void **state)
{
    fixture_t *f = *state;
    ucore_worker_ready(f->c, &f->b, "h1_a");
    assert_int_equal(acr_core_start(f->c, 10, 1, NULL, 0, NULL, 0), 0);
    assert_int_equal(run_state(f), ACR_RUN_SPAWNING);
    assert_int_equal(acr_core_stop(f->c), 0);
    assert_int_equal(run_state(f), ACR_RUN_STOPPING);
    ucore_worker_nil(f->c, &f->b, "h1_a", "client_stopped");
    worker_report(f, "h1_a", 0, true);
    assert_int_equal(run_state(f), ACR_RUN_STOPPED);
    assert_path(f, "ready>spawning,spawning>stopping,stopping>stopped");
}

static void test_start_host_and_classes(void **state)
{
    fixture_t *f = *state;
    ucore_worker_ready(f->c, &f->b, "h1_a");
    const char *unknown[] = {"Reader", "Nobody"};
    assert_int_equal(acr_core_start(f->c, 2, 10, NULL, 0, unknown, 2), -EINVAL);
    assert_int_equal(run_state(f), ACR_RUN_READY);
    const char *only[] = {"Writer"};
    assert_int_equal(acr_core_start(f->c, 2, 10, "http://other.test", 0, only, 1), 0);
    /* the dispatcher knows every class (a later edit may switch); only Writer users run */
    acr_dispatch_t *d = f->c->run.dispatch;
    assert_int_equal(acr_dispatch_nclasses(d), 2);
    assert_string_equal(acr_dispatch_class_name(d, 1), "Writer");
    assert_int_equal(acr_dispatch_entry_counts(d, 0)[0], 0);
    assert_int_equal(acr_dispatch_entry_counts(d, 0)[1], 2);
    assert_string_equal(f->c->run.host, "http://other.test");
    assert_int_equal(f->c->reg.workers[0]->spawns_sent, 1);
    /* an edit to other classes: the Writer users are replaced by Reader users */
    assert_int_equal(acr_core_edit(f->c, 2, 10, unknown, 2), -EINVAL);
    const char *reader[] = {"Reader"};
    assert_int_equal(acr_core_edit(f->c, 2, 10, reader, 1), 0);
    assert_int_equal(acr_dispatch_entry_counts(d, 0)[0], 2);
    assert_int_equal(acr_dispatch_entry_counts(d, 0)[1], 0);
    assert_int_equal(f->c->reg.workers[0]->spawns_sent, 2);
}

static void test_snapshot_and_reset(void **state)
{
    fixture_t *f = *state;
    two_running(f);
    acr_core_snapshot_t s = snap(f);
    assert_int_equal(s.nworkers, 2);
    assert_string_equal(s.workers[0].id, "h1_a");
    assert_string_equal(s.workers[0].host, "h1");
    assert_string_equal(s.workers[0].state, "running");
    assert_int_equal(s.workers[0].user_count + s.workers[1].user_count, 4);
    assert_null(s.current);
    acr_core_snapshot_free(&s);
    worker_report(f, "h1_a", 5, false);
    s = snap(f);
    assert_int_equal(acr_stats_total(s.stats)->num_requests, 5);
    assert_int_equal(s.reports_merged, 1);
    assert_non_null(s.current);
    acr_core_snapshot_free(&s);
    acr_core_reset(f->c);
    s = snap(f);
    assert_int_equal(acr_stats_total(s.stats)->num_requests, 0);
    assert_int_equal(s.state, ACR_RUN_RUNNING);
    acr_core_snapshot_free(&s);
}

static void test_run_time_stops_the_test(void **state)
{
    fixture_t *f = *state;
    ucore_worker_ready(f->c, &f->b, "h1_a");
    assert_int_equal(acr_core_start(f->c, 1, 100, NULL, 0.05, NULL, 0), 0);
    ucore_worker_spawned(f->c, &f->b, "h1_a");
    assert_int_equal(run_state(f), ACR_RUN_RUNNING);
    /* only the run's timers are on the loop: it returns once the limit stopped the test */
    while (run_state(f) != ACR_RUN_STOPPING) uv_run(&f->loop, UV_RUN_ONCE);
    assert_path(f, "ready>spawning,spawning>running,running>stopping");
}

static void test_missing_worker_rebalances(void **state)
{
    fixture_t *f = *state;
    two_running(f);
    acr_mworker_t *b = acr__registry_find(f->c, "h2_b");
    acr_mworker_t *a = acr__registry_find(f->c, "h1_a");
    uint64_t sent_a = a->spawns_sent;
    assert_int_equal(acr__registry_start(f->c), 0);
    b->last_seen = acr_mono_s() - 60;
    while (b->state != ACR_WORKER_MISSING) uv_run(&f->loop, UV_RUN_ONCE);
    acr_core_snapshot_t s = snap(f);
    assert_int_equal(s.live_workers, 1);
    assert_string_equal(s.workers[1].state, "missing");
    acr_core_snapshot_free(&s);
    assert_int_equal(a->spawns_sent, sent_a + 1); /* its users moved to h1_a at once */
    assert_int_equal(acr_dispatch_nworkers(f->c->run.dispatch), 1);
    assert_int_equal(run_state(f), ACR_RUN_RUNNING);
}

static void test_last_worker_quit_stops(void **state)
{
    fixture_t *f = *state;
    two_running(f);
    ucore_worker_nil(f->c, &f->b, "h1_a", "quit");
    assert_int_equal(run_state(f), ACR_RUN_RUNNING);
    ucore_worker_nil(f->c, &f->b, "h2_b", "quit");
    assert_int_equal(run_state(f), ACR_RUN_STOPPED);
    assert_path(f, "ready>spawning,spawning>running,running>stopping,stopping>stopped");
}

static void test_quit_and_finish(void **state)
{
    fixture_t *f = *state;
    two_running(f);
    worker_report(f, "h1_a", 1, false);
    acr_core_quit(f->c);
    acr_core_quit(f->c);
    assert_int_equal(acr_core_start(f->c, 1, 1, NULL, 0, NULL, 0), -ESHUTDOWN);
    ucore_worker_nil(f->c, &f->b, "h1_a", "quit");
    assert_int_equal(count_events(&f->ev, ACR_CORE_EV_QUIT_DONE), 0);
    ucore_worker_nil(f->c, &f->b, "h2_b", "quit");
    assert_int_equal(count_events(&f->ev, ACR_CORE_EV_QUIT_DONE), 1);
    /* both quit during the test without a final report: one lost interval each */
    acr_core_finish(f->c);
    acr_core_snapshot_t s = snap(f);
    assert_int_equal(s.lost_reports, 2);
    assert_int_equal(s.nlost, 2);
    acr_core_snapshot_free(&s);
}

#define CORE_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    struct CMUnitTest tests[1 + ACR_ARRAY_SIZE(pairs) + 10];
    size_t n = 0;
    tests[n++] = (struct CMUnitTest){"test_names", test_names, NULL, NULL, NULL};
    for (int from = 0; from < ACR_RUN__COUNT; from++)
        for (int to = 0; to < ACR_RUN__COUNT; to++) {
            pair_t *p = &pairs[from * ACR_RUN__COUNT + to];
            p->from = (acr_run_state_t)from;
            p->to = (acr_run_state_t)to;
            snprintf(p->name, sizeof p->name, "transition %s -> %s (%s)",
                     acr_run_state_name(p->from), acr_run_state_name(p->to),
                     expected_legal(p->from, p->to) ? "legal" : "illegal");
            tests[n++] = (struct CMUnitTest){p->name, test_transition, NULL, NULL, p};
        }
    const struct CMUnitTest core[] = {
        CORE_TEST(test_start_needs_a_worker),
        CORE_TEST(test_commands_refused_in_ready),
        CORE_TEST(test_full_cycle),
        CORE_TEST(test_stop_while_spawning),
        CORE_TEST(test_start_host_and_classes),
        CORE_TEST(test_snapshot_and_reset),
        CORE_TEST(test_run_time_stops_the_test),
        CORE_TEST(test_missing_worker_rebalances),
        CORE_TEST(test_last_worker_quit_stops),
        CORE_TEST(test_quit_and_finish),
    };
    for (size_t i = 0; i < ACR_ARRAY_SIZE(core); i++) tests[n++] = core[i];
    return _cmocka_run_group_tests("test_master_state", tests, n, NULL, NULL);
}
