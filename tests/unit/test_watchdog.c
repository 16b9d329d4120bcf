/*
 * Unit tests of the stall watchdog (worker/watchdog.c) with the worker's runtime (the hook in
 * worker/runtime.c, the resume marks in worker/users.c), on a real loop with a 0.3 s stall
 * timeout: a user spinning in a loop the JIT compiles, behind a pcall that would catch an error, is
 * ended with an exception row naming its task and class and reported once through on_stall while
 * another user goes on; a spinning acrida.spawn task is ended the same way; a scenario whose main
 * chunk spins fails to load with a "stalled" error. Waits are for events (unit_srv.h's deadline);
 * only the lower bound of the measured duration is asserted.
 */
#define _GNU_SOURCE
#include "tests/unit/unit_srv.h"

#include "common/stats.h"
#include "common/util.h"
#include "worker/runtime.h"
#include "worker/watchdog.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define STALL_S 0.3

typedef struct fx {
    uv_loop_t loop;
    acr_stats_t *stats;
    acr_watchdog_t *wd;
    acr_rt_t *rt;
    int closed, wd_closed, stalls;
    char stall_cls[64], stall_task[64];
    double stall_secs;
} fx_t;

static void on_stall(const char *cls, const char *task, double secs, void *ud)
{
    fx_t *f = ud;
    f->stalls++;
    snprintf(f->stall_cls, sizeof f->stall_cls, "%s", cls);
    snprintf(f->stall_task, sizeof f->stall_task, "%s", task);
    f->stall_secs = secs;
}

static void fx_init(fx_t *f)
{
    char err[256];
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->stats = acr_stats_new(acr_now());
    acr_watchdog_config_t wc = {.loop = &f->loop, .stall_timeout = STALL_S};
    if (acr_watchdog_start(&f->wd, &wc, err, sizeof err) < 0) fail_msg("watchdog: %s", err);
    acr_rt_config_t rc = {.loop = &f->loop,
                          .stats = f->stats,
                          .node_id = "test_node",
                          .watchdog = f->wd,
                          .on_stall = on_stall,
                          .stall_ud = f};
    f->rt = acr_rt_new(&rc, err, sizeof err);
    if (!f->rt) fail_msg("acr_rt_new: %s", err);
}

static int fx_load(fx_t *f, const char *src, char *err, size_t errlen)
{
    char path[64] = "/tmp/acr_wd_XXXXXX.lua";
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    ssize_t n = write(fd, src, strlen(src));
    close(fd);
    assert_int_equal(n, (ssize_t)strlen(src));
    int rc = acr_rt_load_file(f->rt, path, err, errlen);
    unlink(path);
    return rc;
}

static void flag_cb(void *ud)
{
    *(int *)ud = 1;
}

static void stopped_cb(acr_rt_t *rt, void *ud)
{
    (void)rt;
    *(int *)ud = 1;
}

static void fx_free(fx_t *f)
{
    int stopped = 0;
    acr_rt_stop_all(f->rt, stopped_cb, &stopped);
    run_until(&f->loop, &stopped);
    acr_rt_close(f->rt, flag_cb, &f->closed);
    run_until(&f->loop, &f->closed);
    acr_watchdog_close(f->wd, flag_cb, &f->wd_closed);
    run_until(&f->loop, &f->wd_closed);
    unit_loop_close(&f->loop);
    acr_watchdog_free(f->wd);
    acr_stats_free(f->stats);
}

static uint64_t reqs(fx_t *f, const char *name)
{
    acr_stats_entry_t *e = acr_stats_find(f->stats, "CUSTOM", name);
    return e ? e->num_requests : 0;
}

typedef struct count_wait {
    fx_t *f;
    const char *name;
    uint64_t n;
} count_wait_t;

static bool reqs_reached(void *arg)
{
    count_wait_t *w = arg;
    return reqs(w->f, w->name) >= w->n;
}

static const acr_stats_exception_t *find_exception(fx_t *f, const char *needle)
{
    size_t n;
    acr_stats_exception_t *const *ex = acr_stats_exceptions(f->stats, &n);
    for (size_t i = 0; i < n; i++)
        if (strstr(ex[i]->msg, needle)) return ex[i];
    for (size_t i = 0; i < n; i++) print_message("exception: %s\n", ex[i]->msg);
    return NULL;
}

static void test_spinning_user_is_ended(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f);
    char err[512];
    int rc = fx_load(&f,
                     "acrida.user { name = 'S', fixed_count = 1,\n"
                     "  on_stop = function(self) acrida.report{ name = 'on_stop' } end,\n"
                     "  tasks = { { name = 'spin', fn = function(self)\n"
                     "    acrida.report{ name = 'spin_start' }\n"
                     "    while true do pcall(function() local x = 0\n"
                     "      while true do x = x + 1 end end) end\n"
                     "  end } } }\n"
                     "acrida.user { name = 'N', wait_time = acrida.constant(0.01),\n"
                     "  tasks = { function(self) acrida.report{ name = 'n' } end } }\n",
                     err, sizeof err);
    if (rc != 0) fail_msg("load: %s", err);
    acr_rt_set_class_users(f.rt, 0, 1);
    acr_rt_set_class_users(f.rt, 1, 1);
    count_wait_t w = {&f, "on_stop", 1};
    run_until_pred(&f.loop, reqs_reached, &w, "the spinning user's on_stop");
    assert_int_equal(reqs(&f, "spin_start"), 1); /* ended, not restarted */
    const acr_stats_exception_t *ex =
        find_exception(&f, "stalled: task spin of user class S ran for ");
    assert_non_null(ex);
    assert_int_equal(ex->count, 1);
    assert_non_null(strstr(ex->traceback, ":6:")); /* where it spun */
    assert_int_equal(f.stalls, 1);
    assert_string_equal(f.stall_cls, "S");
    assert_string_equal(f.stall_task, "spin");
    assert_true(f.stall_secs >= STALL_S);
    /* the other user goes on */
    count_wait_t more = {&f, "n", reqs(&f, "n") + 5};
    run_until_pred(&f.loop, reqs_reached, &more, "more runs of the normal user");
    assert_int_equal(acr_rt_user_count(f.rt), 1);
    fx_free(&f);
}

static void test_spinning_spawned_task_is_ended(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f);
    char err[512];
    int rc = fx_load(&f,
                     "acrida.user { name = 'G', wait_time = acrida.constant(0.01),\n"
                     "  on_start = function(self)\n"
                     "    acrida.spawn(function() while true do end end) end,\n"
                     "  tasks = { function(self) acrida.report{ name = 'g' } end } }\n",
                     err, sizeof err);
    if (rc != 0) fail_msg("load: %s", err);
    acr_rt_set_class_users(f.rt, 0, 1);
    count_wait_t w = {&f, "g", 5};
    run_until_pred(&f.loop, reqs_reached, &w, "the user's runs after the spawned task spun");
    assert_non_null(find_exception(&f, "stalled: a task of acrida.spawn ("));
    assert_int_equal(acr_rt_green_count(f.rt), 0);
    assert_int_equal(f.stalls, 0); /* no class to quarantine */
    fx_free(&f);
}

static void test_spinning_main_chunk_fails_to_load(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f);
    char err[512];
    int rc = fx_load(&f,
                     "acrida.user { name = 'U', tasks = { function(self) end } }\n"
                     "while true do end\n",
                     err, sizeof err);
    assert_true(rc < 0);
    if (!strstr(err, "stalled: Lua code outside a user's task"))
        fail_msg("load error '%s' does not name the stall", err);
    fx_free(&f);
}

static void timer_flag_cb(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* C work of our own that holds the loop past the timeout arms the hook, but no Lua ran meanwhile:
 * once the loop turns the hook goes, and the next Lua code (a load) runs unharmed. */
static void test_slow_c_work_leaves_no_hook(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f);
    usleep((useconds_t)(STALL_S * 2.5 * 1e6)); /* the loop does not turn: the thread arms */
    int fired = 0;
    uv_timer_t t;
    uv_timer_init(&f.loop, &t);
    t.data = &fired;
    uv_timer_start(&t, timer_flag_cb, 600, 0); /* a few beats (every 250 ms) */
    run_until(&f.loop, &fired);
    uv_close((uv_handle_t *)&t, NULL);
    char err[512];
    int rc = fx_load(&f,
                     "local n = 0\n"
                     "for i = 1, 100000 do n = n + i end\n"
                     "acrida.user { name = 'U', tasks = { function(self) end } }\n",
                     err, sizeof err);
    if (rc != 0) fail_msg("load: %s", err);
    fx_free(&f);
}

/* A SIGPROF tick that arrives after the profiler stopped (its timer is process-wide) does not
 * kill the worker. */
static void test_late_profiler_tick_is_harmless(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f);
    char err[512];
    if (fx_load(&f, "acrida.user { name = 'U', tasks = { function(self) end } }\n", err,
                sizeof err) != 0)
        fail_msg("load: %s", err);
    fx_free(&f); /* closes the Lua state: the profiler stops */
    raise(SIGPROF);
    raise(SIGPROF);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spinning_user_is_ended),
        cmocka_unit_test(test_spinning_spawned_task_is_ended),
        cmocka_unit_test(test_spinning_main_chunk_fails_to_load),
        cmocka_unit_test(test_slow_c_work_leaves_no_hook),
        cmocka_unit_test(test_late_profiler_tick_is_harmless),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
