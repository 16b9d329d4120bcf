/*
 * The master's worker state machine and its restart path (master/core/adopt.c, registry.c): one
 * test per cell of the worker transition table (acr__worker_next), then a real core driven by fake
 * workers (tests/unit/unit_core.h): frames from unregistered peers are dropped and counted, a
 * silent worker goes missing and its users move, a worker joining a run gets its share after the
 * grace, and the rejoins of a restarted master's workers: adoption without moving a user, a
 * second worker joining the adopted test, the cumulative baseline, refusals (another test,
 * another scenario, the master's own test), a stopped test shown stopped, /stop of an adopted
 * test, and the adopted test's start time (the earliest plausible started_at).
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

/* ---- the worker table, one test per (event, state) ---- */

/* The expected next state per event and state (ready, spawning, running, stopped, missing);
 * "=" keeps the state, "*" takes the reported one. Written independently of the table. */
static const char *const expected[ACR_WEV__COUNT][5] = {
    [ACR_WEV_REGISTER] = {"ready", "ready", "ready", "ready", "ready"},
    [ACR_WEV_SPAWNING] = {"spawning", "spawning", "spawning", "spawning", "="},
    [ACR_WEV_SPAWNED] = {"running", "running", "running", "running", "="},
    [ACR_WEV_STOPPED] = {"ready", "ready", "ready", "ready", "ready"},
    [ACR_WEV_HEARTBEAT] = {"*", "*", "*", "*", "*"},
    [ACR_WEV_SILENT] = {"missing", "missing", "missing", "missing", "="},
    [ACR_WEV_ADOPT] = {"*", "=", "=", "=", "="},
};

typedef struct {
    acr_wevent_t ev;
    acr_worker_state_t from;
    char name[80];
} cell_t;

static cell_t cells[ACR_WEV__COUNT * 5];

static void test_worker_cell(void **state)
{
    const cell_t *p = *state;
    const char *want = expected[p->ev][p->from];
    /* a reported state different from both ends shows whether it is taken */
    acr_worker_state_t reported =
        p->from == ACR_WORKER_RUNNING ? ACR_WORKER_SPAWNING : ACR_WORKER_RUNNING;
    acr_worker_state_t got = acr__worker_next(p->from, p->ev, reported);
    const char *w = strcmp(want, "=") == 0   ? acr_worker_state_name(p->from)
                    : strcmp(want, "*") == 0 ? acr_worker_state_name(reported)
                                             : want;
    if (strcmp(w, acr_worker_state_name(got)) != 0)
        fail_msg("%s: got %s, expected %s", p->name, acr_worker_state_name(got), w);
}

/* ---- a core with fake workers ---- */

static acr_user_class_t classes[] = {
    {.name = (char *)"Reader", .weight = 1},
    {.name = (char *)"Writer", .weight = 1},
};

typedef struct {
    uv_loop_t loop;
    acr_core_t *c;
    acr_buf_t b;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    acr_core_config_t cfg = {
        .classes = classes,
        .nclasses = ACR_ARRAY_SIZE(classes),
        .stop_timeout = -1,
        .scenario_name = "s.lua",
        .scenario_src = "-- scenario",
        .scenario_len = 11,
        .adopt_rate = 5,
    };
    ucore_open(&f->loop, &cfg, &f->c);
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

static const char *const TEST_A = "0123456789abcdef0123456789abcdef";
static const char *const TEST_B = "fedcba9876543210fedcba9876543210";

/* acrida_rejoin from @id: @readers + @writers users of @test in @state, last report @last_seq,
 * the test's first spawn there at @started_at (epoch s; 0: unknown, nil). */
static void rejoin_at(fixture_t *f, const char *id, const char *test, const char *state,
                      int readers, int writers, int64_t last_seq, const char *sha,
                      double started_at)
{
    acr_class_count_t cc[2] = {{(char *)"Reader", readers}, {(char *)"Writer", writers}};
    acr_msg_rejoin_t r = {
        .test_id = test,
        .state = state,
        .classes = cc,
        .nclasses = 2,
        .user_count = readers + writers,
        .scenario_sha256 = sha ? sha : f->c->scenario_sha256,
        .stop_timeout = -1,
        .last_seq = last_seq,
        .started_at = started_at,
    };
    acr_buf_reset(&f->b);
    assert_int_equal(acr_msg_encode_rejoin(&f->b, &r, id), 0);
    ucore_feed(f->c, &f->b, id);
}

static void rejoin(fixture_t *f, const char *id, const char *test, const char *state, int readers,
                   int writers, int64_t last_seq, const char *sha)
{
    rejoin_at(f, id, test, state, readers, writers, last_seq, sha, 0);
}

/* A report of @requests GET / from @id: a delta, or the cumulative one after a rejoin. */
static void report(fixture_t *f, const char *id, int requests, int64_t seq, bool cumulative,
                   bool final)
{
    acr_stats_t *st = ucore_requests(requests);
    /* the users it runs, as a worker reports them */
    acr_mworker_t *w = acr__registry_find(f->c, id);
    const acr_class_count_t *cc = w ? w->classes : NULL;
    size_t ncc = w ? w->nclasses : 0;
    int64_t users = w ? acr__worker_users(w) : 0;
    acr_buf_reset(&f->b);
    if (cumulative)
        assert_int_equal(acr_msg_encode_stats_cumulative(&f->b, st, cc, ncc, users, seq, final, id),
                         0);
    else
        assert_int_equal(acr_msg_encode_stats(&f->b, st, cc, ncc, users, seq, final, id), 0);
    acr_stats_free(st);
    ucore_feed(f->c, &f->b, id);
}

static uint64_t total_requests(fixture_t *f)
{
    return acr_stats_total(f->c->agg.stats)->num_requests;
}

/* The users the dispatcher places on @id (both classes). */
static long placed(fixture_t *f, const char *id)
{
    acr_dispatch_t *d = f->c->run.dispatch;
    assert_non_null(d);
    for (size_t i = 0; i < acr_dispatch_nentries(d); i++)
        if (strcmp(acr_dispatch_entry_id(d, i), id) == 0)
            return (long)(acr_dispatch_entry_counts(d, i)[0] + acr_dispatch_entry_counts(d, i)[1]);
    return -1;
}

static void test_unregistered_peer_dropped(void **state)
{
    fixture_t *f = *state;
    report(f, "ghost_1", 5, 0, false, false);
    ucore_worker_nil(f->c, &f->b, "ghost_1", "spawning");
    ucore_worker_nil(f->c, &f->b, "ghost_1", "client_stopped");
    ucore_worker_nil(f->c, &f->b, "ghost_1", "quit"); /* a quit from nobody is not even counted */
    assert_int_equal(total_requests(f), 0);
    acr_core_snapshot_t s;
    assert_int_equal(acr_core_snapshot(f->c, &s), 0);
    assert_int_equal(s.unknown_frames, 3);
    assert_int_equal(s.nworkers, 0);
    acr_core_snapshot_free(&s);
    assert_int_equal(f->c->reg.nunknown, 1);
    /* once registered it is heard, and forgotten as an unknown peer */
    ucore_worker_ready(f->c, &f->b, "ghost_1");
    assert_int_equal(f->c->reg.nunknown, 0);
    report(f, "ghost_1", 5, 0, false, false);
    assert_int_equal(total_requests(f), 5);
}

static void test_unknown_table_bounded(void **state)
{
    fixture_t *f = *state;
    char id[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "p_%d", i);
        ucore_worker_nil(f->c, &f->b, id, "spawning");
    }
    assert_int_equal(f->c->reg.unknown_frames, 5000);
    assert_int_equal(f->c->reg.nunknown, 4096);
}

static void test_silent_worker_missing_users_move(void **state)
{
    fixture_t *f = *state;
    ucore_worker_ready(f->c, &f->b, "h1_a");
    ucore_worker_ready(f->c, &f->b, "h2_b");
    assert_int_equal(acr_core_start(f->c, 4, 100, NULL, 0, NULL, 0), 0);
    ucore_worker_spawned(f->c, &f->b, "h1_a");
    ucore_worker_spawned(f->c, &f->b, "h2_b");
    assert_int_equal(f->c->run.state, ACR_RUN_RUNNING);
    acr_mworker_t *b = acr__registry_find(f->c, "h2_b");
    b->last_seen = acr_mono_s() - 2.8; /* over the 2.7 s limit */
    assert_int_equal(acr__registry_start(f->c), 0);
    while (b->state != ACR_WORKER_MISSING) uv_run(&f->loop, UV_RUN_ONCE);
    /* in the same tick: all 4 users on the other worker */
    assert_int_equal(placed(f, "h1_a"), 4);
    assert_int_equal(acr_dispatch_nworkers(f->c->run.dispatch), 1);
}

static void test_joining_worker_gets_share_after_grace(void **state)
{
    fixture_t *f = *state;
    ucore_worker_ready(f->c, &f->b, "h1_a");
    assert_int_equal(acr_core_start(f->c, 4, 100, NULL, 0, NULL, 0), 0);
    ucore_worker_spawned(f->c, &f->b, "h1_a");
    ucore_worker_ready(f->c, &f->b, "h2_b");
    acr_mworker_t *b = acr__registry_find(f->c, "h2_b");
    assert_true(b->join_due > 0);
    assert_int_equal(placed(f, "h2_b"), -1); /* not yet: a rejoin may follow */
    acr__adopt_joins_due(f->c, b->join_due - 0.01);
    assert_int_equal(placed(f, "h2_b"), -1);
    acr__adopt_joins_due(f->c, b->join_due);
    assert_int_equal(placed(f, "h2_b"), 2);
    assert_int_equal(placed(f, "h1_a"), 2);
}

/* Two workers of test A rejoin a fresh master. */
static void adopt_two(fixture_t *f)
{
    ucore_worker_ready(f->c, &f->b, "h1_a");
    ucore_worker_ready(f->c, &f->b, "h2_b");
    rejoin(f, "h1_a", TEST_A, "running", 3, 1, 41, NULL);
    report(f, "h1_a", 100, 42, true, false);
    assert_int_equal(f->c->run.state, ACR_RUN_RUNNING);
    assert_string_equal(f->c->run.test_id, TEST_A);
    rejoin(f, "h2_b", TEST_A, "running", 0, 2, 7, NULL);
    report(f, "h2_b", 50, 8, true, false);
}

static void test_adopt_running(void **state)
{
    fixture_t *f = *state;
    adopt_two(f);
    acr_core_snapshot_t s;
    assert_int_equal(acr_core_snapshot(f->c, &s), 0);
    assert_int_equal(s.state, ACR_RUN_RUNNING);
    assert_true(s.adopted);
    assert_string_equal(s.test_id, TEST_A);
    assert_int_equal(s.target_users, 6);
    assert_int_equal(s.user_count, 6);
    assert_true(s.spawn_rate == 5);
    assert_int_equal(s.lost_reports, 0);
    acr_core_snapshot_free(&s);
    /* nobody moved: the dispatcher holds what each worker runs, no spawn was sent */
    assert_int_equal(placed(f, "h1_a"), 4);
    assert_int_equal(placed(f, "h2_b"), 2);
    assert_int_equal(acr__registry_find(f->c, "h1_a")->spawns_sent, 0);
    assert_int_equal(acr__registry_find(f->c, "h2_b")->spawns_sent, 0);
    assert_int_equal(acr__registry_find(f->c, "h2_b")->join_due, 0);
    /* baselines plus deltas: the totals since the test started */
    assert_int_equal(total_requests(f), 150);
    report(f, "h1_a", 10, 43, false, false);
    assert_int_equal(total_requests(f), 160);
    assert_int_equal(f->c->agg.lost_reports, 0);
    /* an edit ramps from the adopted counts */
    assert_int_equal(acr_core_edit(f->c, 8, 100, NULL, 0), 0);
    assert_int_equal(acr_dispatch_user_count(f->c->run.dispatch), 8);
}

static void test_adopted_test_stops(void **state)
{
    fixture_t *f = *state;
    adopt_two(f);
    assert_int_equal(acr_core_stop(f->c), 0);
    assert_int_equal(f->c->run.state, ACR_RUN_STOPPING);
    report(f, "h1_a", 5, 43, false, true);
    ucore_worker_nil(f->c, &f->b, "h1_a", "client_stopped");
    report(f, "h2_b", 5, 9, false, true);
    ucore_worker_nil(f->c, &f->b, "h2_b", "client_stopped");
    assert_int_equal(f->c->run.state, ACR_RUN_STOPPED);
    assert_int_equal(total_requests(f), 160);
    acr_core_finish(f->c);
    assert_int_equal(f->c->agg.lost_reports, 0);
}

static void test_rejoin_refused(void **state)
{
    fixture_t *f = *state;
    adopt_two(f);
    ucore_worker_ready(f->c, &f->b, "h3_c");
    rejoin(f, "h3_c", TEST_B, "running", 1, 1, 3, NULL); /* another test */
    acr_mworker_t *c3 = acr__registry_find(f->c, "h3_c");
    assert_true(c3->refused);
    report(f, "h3_c", 99, 4, true, false);
    report(f, "h3_c", 99, 5, false, true);
    assert_int_equal(total_requests(f), 150);
    assert_int_equal(placed(f, "h3_c"), -1);
    /* its stop done, it joins the adopted test and gets a share */
    ucore_worker_nil(f->c, &f->b, "h3_c", "client_stopped");
    assert_false(c3->refused);
    acr__adopt_joins_due(f->c, acr_mono_s());
    assert_true(placed(f, "h3_c") >= 0);
    assert_int_equal(acr_dispatch_user_count(f->c->run.dispatch), 6);
    ucore_worker_ready(f->c, &f->b, "h4_d");
    char sha[65];
    memset(sha, 'a', 64);
    sha[64] = 0;
    rejoin(f, "h4_d", TEST_A, "running", 1, 1, 3, sha); /* another scenario */
    assert_true(acr__registry_find(f->c, "h4_d")->refused);
    assert_int_equal(f->c->reg.rejoins_refused, 2);
}

static void test_rejoin_refused_during_own_test(void **state)
{
    fixture_t *f = *state;
    ucore_worker_ready(f->c, &f->b, "h1_a");
    assert_int_equal(acr_core_start(f->c, 2, 100, NULL, 0, NULL, 0), 0);
    ucore_worker_spawned(f->c, &f->b, "h1_a");
    char own[33];
    memcpy(own, f->c->run.test_id, sizeof own);
    assert_true(acr_msg_is_hex(own, 32));
    ucore_worker_ready(f->c, &f->b, "h2_b");
    rejoin(f, "h2_b", TEST_A, "running", 1, 1, 3, NULL);
    assert_true(acr__registry_find(f->c, "h2_b")->refused);
    assert_string_equal(f->c->run.test_id, own);
    assert_false(f->c->run.adopted);
    /* a new start has a new test id */
    assert_int_equal(acr_core_stop(f->c), 0);
    report(f, "h1_a", 1, 0, false, true);
    ucore_worker_nil(f->c, &f->b, "h1_a", "client_stopped");
    report(f, "h2_b", 1, 4, false, true); /* its final report of test A: not merged */
    ucore_worker_nil(f->c, &f->b, "h2_b", "client_stopped");
    assert_int_equal(f->c->run.state, ACR_RUN_STOPPED);
    assert_int_equal(total_requests(f), 1);
    assert_int_equal(acr_core_start(f->c, 2, 100, NULL, 0, NULL, 0), 0);
    assert_string_not_equal(f->c->run.test_id, own);
}

static void test_rejoin_stopped(void **state)
{
    fixture_t *f = *state;
    ucore_worker_ready(f->c, &f->b, "h1_a");
    ucore_worker_ready(f->c, &f->b, "h2_b");
    rejoin(f, "h1_a", TEST_A, "stopped", 0, 0, 20, NULL);
    report(f, "h1_a", 70, 21, true, true);
    rejoin(f, "h2_b", TEST_A, "stopped", 0, 0, 5, NULL);
    report(f, "h2_b", 30, 6, true, true);
    acr_core_snapshot_t s;
    assert_int_equal(acr_core_snapshot(f->c, &s), 0);
    assert_int_equal(s.state, ACR_RUN_STOPPED);
    assert_true(s.adopted);
    assert_string_equal(s.test_id, TEST_A);
    acr_core_snapshot_free(&s);
    assert_int_equal(total_requests(f), 100);
    /* a stopped test of another id is not mixed in */
    ucore_worker_ready(f->c, &f->b, "h3_c");
    rejoin(f, "h3_c", TEST_B, "stopped", 0, 0, 5, NULL);
    report(f, "h3_c", 30, 6, true, true);
    assert_int_equal(total_requests(f), 100);
    /* the next test starts from nothing */
    assert_int_equal(acr_core_start(f->c, 2, 100, NULL, 0, NULL, 0), 0);
    assert_int_equal(total_requests(f), 0);
    assert_false(f->c->run.adopted);
}

/* The adopted test's start (what a load shape resumes from, master/shape.h): the earliest
 * plausible started_at of its rejoins; one in the future beyond the skew is ignored (the worker
 * is adopted all the same); none known is 0; a test the master starts has none. */
static void test_adopt_start_time(void **state)
{
    fixture_t *f = *state;
    acr_core_adoption_t a;
    acr_core_adoption(f->c, &a);
    assert_false(a.adopted);
    const char *ids[] = {"h1_a", "h2_b", "h3_c", "h4_d"};
    for (size_t i = 0; i < ACR_ARRAY_SIZE(ids); i++) ucore_worker_ready(f->c, &f->b, ids[i]);
    double now = acr_now();
    rejoin_at(f, "h1_a", TEST_A, "running", 1, 0, 4, NULL, 0); /* an older worker: unknown */
    acr_core_adoption(f->c, &a);
    assert_true(a.adopted);
    assert_true(a.started_at == 0);
    assert_int_equal(a.joined, 1);
    rejoin_at(f, "h2_b", TEST_A, "running", 1, 0, 4, NULL, now - 10);
    acr_core_adoption(f->c, &a);
    assert_true(a.started_at == now - 10);
    rejoin_at(f, "h3_c", TEST_A, "running", 0, 1, 4, NULL, now - 30);   /* earlier: taken */
    rejoin_at(f, "h4_d", TEST_A, "running", 0, 1, 4, NULL, now + 3600); /* skewed: ignored */
    acr_core_adoption(f->c, &a);
    assert_true(a.started_at == now - 30);
    assert_int_equal(a.joined, 4);
    assert_false(acr__registry_find(f->c, "h4_d")->refused);
    assert_int_equal(acr_dispatch_user_count(f->c->run.dispatch), 4);
    assert_int_equal(acr_core_stop(f->c), 0);
    acr_core_adoption(f->c, &a); /* stopping: nothing to resume */
    assert_false(a.adopted);
    assert_true(a.started_at == 0);
}

static void test_cumulative_without_rejoin_dropped(void **state)
{
    fixture_t *f = *state;
    ucore_worker_ready(f->c, &f->b, "h1_a");
    report(f, "h1_a", 70, 0, true, false);
    assert_int_equal(total_requests(f), 0);
}

#define CORE_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    struct CMUnitTest tests[ACR_ARRAY_SIZE(cells) + 16];
    size_t n = 0;
    for (int ev = 0; ev < ACR_WEV__COUNT; ev++)
        for (int st = 0; st <= ACR_WORKER_MISSING; st++) {
            cell_t *p = &cells[ev * 5 + st];
            p->ev = (acr_wevent_t)ev;
            p->from = (acr_worker_state_t)st;
            snprintf(p->name, sizeof p->name, "worker %s on %s", acr_worker_state_name(p->from),
                     acr__wevent_name(p->ev));
            tests[n++] = (struct CMUnitTest){p->name, test_worker_cell, NULL, NULL, p};
        }
    const struct CMUnitTest core[] = {
        CORE_TEST(test_unregistered_peer_dropped),
        CORE_TEST(test_unknown_table_bounded),
        CORE_TEST(test_silent_worker_missing_users_move),
        CORE_TEST(test_joining_worker_gets_share_after_grace),
        CORE_TEST(test_adopt_running),
        CORE_TEST(test_adopted_test_stops),
        CORE_TEST(test_rejoin_refused),
        CORE_TEST(test_rejoin_refused_during_own_test),
        CORE_TEST(test_rejoin_stopped),
        CORE_TEST(test_cumulative_without_rejoin_dropped),
        CORE_TEST(test_adopt_start_time),
    };
    for (size_t i = 0; i < ACR_ARRAY_SIZE(core); i++) tests[n++] = core[i];
    return _cmocka_run_group_tests("test_core_adopt", tests, n, NULL, NULL);
}
