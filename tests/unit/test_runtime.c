/*
 * Unit tests of the worker's Lua runtime and user scheduler (worker/runtime.c, lua_http.c,
 * users.c): scenarios are loaded from temp files (removed once loaded) and their users run on a
 * real libuv loop, either with acrida.report-only tasks or against the unit tests' HTTP server
 * (tests/unit/unit_srv.h, 127.0.0.1 port 0).
 *
 * Every wait is for an event (a count of recorded requests, users gone, the server holding
 * requests) with unit_srv.h's generous deadline; assertions are on counts and orders. Where a
 * duration matters (pacing), only its lower bound is asserted: a loaded machine makes waits
 * longer, never shorter.
 */
#define _GNU_SOURCE
#include "tests/unit/unit_srv.h"

#include "common/scenario.h"
#include "common/stats.h"
#include "common/util.h"
#include "worker/runtime_int.h"
#include "worker/runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* ---- the server's routes ---- */

/* Keep-alive responder: /status/<code>, /hold (answered once the test calls srv_release), /json
 * (the request body's length), anything else 200 "hello". Every response has two X-Test headers. */
static void s_routes(sconn_t *c)
{
    while (sc_req(c) >= 0) {
        char path[256] = "/", body[64] = "hello", resp[256];
        int status = 200;
        sscanf(c->req, "%*s %255s", path);
        if (strncmp(path, "/status/", 8) == 0) {
            status = atoi(path + 8);
        } else if (strcmp(path, "/hold") == 0) {
            sc_hold(c);
        } else if (strcmp(path, "/json") == 0) {
            const char *b = strstr(c->req, "\r\n\r\n") + 4;
            snprintf(body, sizeof body, "{\"ok\":true,\"n\":%zu}", strlen(b));
        }
        snprintf(resp, sizeof resp,
                 "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nX-Test: a\r\nX-Test: b\r\n\r\n%s", status,
                 strlen(body), body);
        sc_puts(c, resp);
    }
}

/* ---- fixture ---- */

typedef struct fx {
    uv_loop_t loop;
    acr_stats_t *stats;
    acr_http_client_t *httpc;
    acr_rt_t *rt;
    srv_t *sv;
    char path[64];
    int stopped, closed;
} fx_t;

/* A runtime on a fresh loop; with @http, an HTTP client and a server running s_routes. */
static void fx_init(fx_t *f, bool http)
{
    char err[256];
    memset(f, 0, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->stats = acr_stats_new(acr_now());
    if (http) {
        acr_http_config_t hc = {.user_agent = "acrida/test"};
        f->httpc = acr_http_client_new(&f->loop, &hc, err, sizeof err);
        if (!f->httpc) fail_msg("acr_http_client_new: %s", err);
        f->sv = srv_start(s_routes, NULL);
    }
    acr_rt_config_t rc = {
        .loop = &f->loop, .stats = f->stats, .http = f->httpc, .node_id = "test_node"};
    f->rt = acr_rt_new(&rc, err, sizeof err);
    if (!f->rt) fail_msg("acr_rt_new: %s", err);
}

/* Writes @src to a temp file, loads it and removes the file (its name stays in f->path, for the
 * messages that cite it). Returns the load result, message in @err. */
static int fx_load(fx_t *f, const char *src, char *err, size_t errlen)
{
    snprintf(f->path, sizeof f->path, "/tmp/acr_rt_XXXXXX.lua");
    int fd = mkstemps(f->path, 4);
    assert_true(fd >= 0);
    ssize_t n = write(fd, src, strlen(src));
    close(fd);
    int rc = n == (ssize_t)strlen(src) ? acr_rt_load_file(f->rt, f->path, err, errlen) : -EIO;
    unlink(f->path);
    if (rc == -EIO) fail_msg("cannot write %s", f->path);
    return rc;
}

static void fx_load_ok(fx_t *f, const char *src)
{
    char err[512];
    if (fx_load(f, src, err, sizeof err) != 0) fail_msg("load failed: %s", err);
}

/* A runtime without HTTP (fx_init) that loaded @src and starts @users users of its first class. */
static void fx_run(fx_t *f, const char *src, size_t users)
{
    fx_init(f, false);
    fx_load_ok(f, src);
    acr_rt_set_class_users(f->rt, 0, users);
}

static uint64_t reqs(fx_t *f, const char *method, const char *name)
{
    acr_stats_entry_t *e = acr_stats_find(f->stats, method, name);
    return e ? e->num_requests : 0;
}

static uint64_t fails(fx_t *f, const char *method, const char *name)
{
    acr_stats_entry_t *e = acr_stats_find(f->stats, method, name);
    return e ? e->num_failures : 0;
}

typedef struct count_wait {
    fx_t *f;
    const char *method, *name;
    uint64_t n;
} count_wait_t;

static bool reqs_reached(void *arg)
{
    count_wait_t *w = arg;
    return reqs(w->f, w->method, w->name) >= w->n;
}

static bool total_reached(void *arg)
{
    count_wait_t *w = arg;
    return acr_stats_total(w->f->stats)->num_requests >= w->n;
}

static bool runs_reached(void *arg)
{
    return acr_stats_total(((fx_t *)arg)->stats)->num_requests >= 20000;
}

/* Runs the loop until @n requests named @method @name are recorded. */
static void fx_wait_reqs(fx_t *f, const char *method, const char *name, uint64_t n)
{
    count_wait_t w = {f, method, name, n};
    char what[128];
    snprintf(what, sizeof what, "%llu '%s %s' recorded", (unsigned long long)n, method, name);
    run_until_pred(&f->loop, reqs_reached, &w, what);
}

static bool users_gone(void *arg)
{
    return acr_rt_users_alive(((fx_t *)arg)->rt) == 0;
}

/* Runs the loop until every user has ended (stopped itself or failed in on_start). */
static void fx_wait_gone(fx_t *f)
{
    run_until_pred(&f->loop, users_gone, f, "every user to end");
}

static void stopped_cb(acr_rt_t *rt, void *ud)
{
    (void)rt;
    ((fx_t *)ud)->stopped++;
}

/* Stops every user and runs the loop until they are gone. */
static void fx_stop(fx_t *f)
{
    f->stopped = 0;
    acr_rt_stop_all(f->rt, stopped_cb, f);
    run_until(&f->loop, &f->stopped);
    assert_int_equal(f->stopped, 1);
}

static void rt_closed(void *ud)
{
    fx_t *f = ud;
    if (f->httpc) acr_http_client_free(f->httpc);
    f->httpc = NULL;
    f->closed = 1;
}

static void fx_free(fx_t *f)
{
    acr_rt_close(f->rt, rt_closed, f);
    run_until(&f->loop, &f->closed);
    if (f->sv) srv_stop(f->sv);
    unit_loop_close(&f->loop);
    acr_stats_free(f->stats);
}

static bool has_error(fx_t *f, const char *method, const char *name, const char *error)
{
    size_t n;
    acr_stats_error_t *const *errs = acr_stats_errors(f->stats, &n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(errs[i]->method, method) == 0 && strcmp(errs[i]->name, name) == 0 &&
            strcmp(errs[i]->error, error) == 0)
            return true;
    }
    for (size_t i = 0; i < n; i++)
        print_message("  error row: %s %s '%s' x%llu\n", errs[i]->method, errs[i]->name,
                      errs[i]->error, (unsigned long long)errs[i]->occurrences);
    return false;
}

/* No exception rows; prints them otherwise (scenarios assert in Lua, a failed assert is a row). */
static void expect_no_exception(fx_t *f)
{
    size_t n;
    acr_stats_exception_t *const *ex = acr_stats_exceptions(f->stats, &n);
    for (size_t i = 0; i < n; i++) print_message("exception: %s\n", ex[i]->msg);
    assert_int_equal(n, 0);
}

/* ---- load errors ---- */

static void test_syntax_error_has_file_line(void **state)
{
    (void)state;
    fx_t f;
    char err[512];
    fx_init(&f, false);
    int rc = fx_load(&f,
                     "local acrida = require 'acrida'\n\nacrida.user { name = 'x',\n"
                     "  tasks = { function(self) end end },\n}\n",
                     err, sizeof err);
    assert_int_equal(rc, -EINVAL);
    char want[128];
    snprintf(want, sizeof want, "%s:4:", f.path);
    if (!strstr(err, want)) fail_msg("'%s' lacks '%s'", err, want);
    assert_int_equal(access(f.path, F_OK), -1); /* no temp file left behind */
    fx_free(&f);
}

static void expect_load_error(const char *src, const char *line, const char *needle)
{
    fx_t f;
    char err[512], want[128];
    fx_init(&f, false);
    assert_int_equal(fx_load(&f, src, err, sizeof err), -EINVAL);
    if (!strstr(err, needle)) fail_msg("'%s' lacks '%s'", err, needle);
    if (line) {
        snprintf(want, sizeof want, "%s:%s:", f.path, line);
        if (!strstr(err, want)) fail_msg("'%s' lacks '%s'", err, want);
    }
    fx_free(&f);
}

static void test_bad_declarations_are_named(void **state)
{
    (void)state;
    expect_load_error("local acrida = require 'acrida'\n\nacrida.user { tasks = { print } }\n", "3",
                      "acrida.user: 'name' is required");
    expect_load_error("local acrida = require 'acrida'\nacrida.user { name = 'A' }\n", "2",
                      "acrida.user 'A': 'tasks' is required");
    expect_load_error("acrida.user { name = 'A', tasks = { 42 } }\n", "1",
                      "acrida.user 'A': task #1: expected a function");
    expect_load_error("acrida.user { name = 'A', tasks = { print } }\n"
                      "acrida.user { name = 'A', tasks = { print } }\n",
                      "2", "duplicate user class name");
    expect_load_error("acrida.user { name = 'A', wait_time = 'x', tasks = { print } }\n", "1",
                      "'wait_time' must be a function");
    expect_load_error("local acrida = require 'acrida'\n", NULL, "no user class");
    expect_load_error("error('at load')\n", "1", "at load");
}

/* ---- users with report-only tasks ---- */

static void test_task_weights_distribution(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    fx_load_ok(&f, "local acrida = require 'acrida'\n"
                   "acrida.user { name = 'W', tasks = {\n"
                   "  { weight = 3, fn = function() acrida.report{ name = 'a', response_time = 1 } "
                   "end },\n"
                   "  { weight = 1, fn = function() acrida.report{ name = 'b', response_time = 1 } "
                   "end },\n"
                   "} }\n");
    assert_int_equal(acr_rt_set_class_users(f.rt, 0, 4), 0);
    assert_int_equal(acr_rt_user_count(f.rt), 4);
    run_until_pred(&f.loop, runs_reached, &f, "20000 task runs");
    uint64_t a = reqs(&f, "CUSTOM", "a"), b = reqs(&f, "CUSTOM", "b");
    double ratio = (double)a / (double)(a + b);
    print_message("a=%llu b=%llu ratio=%.4f\n", (unsigned long long)a, (unsigned long long)b,
                  ratio);
    /* 20000 draws: the standard deviation of the ratio is 0.003 */
    if (ratio < 0.72 || ratio > 0.78) fail_msg("ratio %.4f not near 0.75", ratio);
    fx_stop(&f);
    assert_int_equal(acr_rt_users_alive(f.rt), 0);
    fx_free(&f);
}

/* The wait_time helpers are pure functions of the clock: their values are checked against the
 * clock read just before and after each call, so a preempted test cannot fail them. */
static void test_wait_helpers(void **state)
{
    (void)state;
    fx_t f;
    char err[1024];
    fx_init(&f, false);
    int rc = fx_load(
        &f,
        "local acrida = require 'acrida'\n"
        "local b = acrida.between(1, 3)\n"
        "local lo, hi, sum = 99, -1, 0\n"
        "for i = 1, 20000 do local v = b() lo = math.min(lo, v) hi = math.max(hi, v) "
        "sum = sum + v end\n"
        "assert(lo >= 1 and hi <= 3, 'between out of range')\n"
        "assert(math.abs(sum / 20000 - 2) < 0.05, 'between mean ' .. sum / 20000)\n"
        "assert(acrida.constant(2.5)() == 2.5)\n"
        "local p, self = acrida.constant_pacing(0.05), {}\n"
        "local s0 = acrida.time()\n"
        "assert(p(self) == 0.05, 'first pacing call returns the interval')\n"
        "local s1 = acrida.time()\n"
        "while acrida.time() - s1 < 0.07 do end -- the 0.05 s wait, then a 0.02 s task\n"
        "local ta = acrida.time()\n"
        "local w = p(self)\n"
        "local tb = acrida.time()\n"
        "-- due 0.1 s after the first call: w = 0.1 - (now - first call), at least 0\n"
        "local wlo, whi = math.max(0, 0.1 - (tb - s0)), math.max(0, 0.1 - (ta - s1))\n"
        "assert(w >= wlo and w <= whi, ('pacing: %g not in [%g, %g]'):format(w, wlo, whi))\n"
        "local q = acrida.constant_throughput(10)\n"
        "assert(q({}) == 0.1)\n"
        "assert(not pcall(acrida.between, 3, 1))\n"
        "assert(not pcall(acrida.constant_throughput, 0))\n"
        "acrida.user { name = 'U', tasks = { function() end } }\n",
        err, sizeof err);
    if (rc != 0) fail_msg("%s", err);
    fx_free(&f);
}

/* The scheduler calls wait_time once between two runs of a task and sleeps what it returns. */
static void test_constant_pacing_runs_tasks_on_schedule(void **state)
{
    (void)state;
    fx_t f;
    fx_run(&f,
           "local acrida = require 'acrida'\n"
           "local pace, starts, waits = acrida.constant_pacing(0.05), {}, {}\n"
           "acrida.user { name = 'P',\n"
           "  wait_time = function(self) local w = pace(self) waits[#waits + 1] = w "
           "return w end,\n"
           "  tasks = { function()\n"
           "    starts[#starts + 1] = acrida.time()\n"
           "    if #starts == 10 then\n"
           "      assert(#waits == 9, 'wait_time calls: ' .. #waits)\n"
           "      assert(waits[1] == 0.05, 'first wait ' .. waits[1])\n"
           "      for i = 2, 9 do\n"
           "        assert(waits[i] >= 0 and waits[i] < 0.05, 'wait ' .. i .. ': ' .. waits[i])\n"
           "      end\n"
           "      -- nine intervals of at least 0.05 s, but for timer rounding\n"
           "      local span = starts[10] - starts[1]\n"
           "      assert(span >= 0.4, 'ten paced runs within ' .. span .. ' s')\n"
           "      acrida.report{ name = 'checked' }\n"
           "    end\n"
           "    acrida.report{ name = 'p', response_time = 1 }\n"
           "    acrida.sleep(0.02) end } }\n",
           1);
    fx_wait_reqs(&f, "CUSTOM", "p", 10);
    expect_no_exception(&f);
    assert_int_equal(reqs(&f, "CUSTOM", "checked"), 1);
    assert_int_equal(reqs(&f, "CUSTOM", "p"), 10);
    fx_stop(&f);
    fx_free(&f);
}

static void test_task_error_is_exception_and_user_continues(void **state)
{
    (void)state;
    fx_t f;
    fx_run(&f,
           "local acrida = require 'acrida'\n"
           "local function inner()\n"
           "  error('boom from task')\n"
           "end\n"
           "acrida.user { name = 'E', tasks = { function(self)\n"
           "  acrida.report{ name = 'before' }\n"
           "  inner()\n"
           "end } }\n",
           2);
    fx_wait_reqs(&f, "CUSTOM", "before", 20);
    size_t n;
    acr_stats_exception_t *const *ex = acr_stats_exceptions(f.stats, &n);
    assert_int_equal(n, 1);
    char want_msg[128], want_tb[128], want_tb2[128];
    snprintf(want_msg, sizeof want_msg, "%s:3: boom from task", f.path);
    snprintf(want_tb, sizeof want_tb, "%s:3:", f.path);
    snprintf(want_tb2, sizeof want_tb2, "%s:7:", f.path);
    if (!strstr(ex[0]->msg, want_msg)) fail_msg("msg '%s' lacks '%s'", ex[0]->msg, want_msg);
    if (!strstr(ex[0]->traceback, want_tb) || !strstr(ex[0]->traceback, want_tb2))
        fail_msg("traceback '%s' lacks '%s' / '%s'", ex[0]->traceback, want_tb, want_tb2);
    assert_null(strstr(ex[0]->traceback, "[acrida]"));
    assert_string_equal(ex[0]->nodes, "test_node");
    /* the report and the error happen in one resume of the task: one exception per run */
    assert_int_equal(ex[0]->count, reqs(&f, "CUSTOM", "before"));
    assert_int_equal(acr_rt_user_count(f.rt), 2);
    fx_stop(&f);
    fx_free(&f);
}

static void test_on_start_error_stops_user(void **state)
{
    (void)state;
    fx_t f;
    fx_run(&f,
           "acrida.user { name = 'S',\n"
           "  on_start = function(self) error('no login') end,\n"
           "  on_stop = function(self) acrida.report{ name = 'on_stop' } end,\n"
           "  tasks = { function() acrida.report{ name = 'task' } end } }\n",
           3);
    fx_wait_gone(&f);
    assert_int_equal(reqs(&f, "CUSTOM", "task"), 0);
    size_t n;
    acr_stats_exception_t *const *ex = acr_stats_exceptions(f.stats, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ex[0]->count, 3);
    assert_non_null(strstr(ex[0]->msg, ":2: no login"));
    fx_free(&f);
}

/* Users waiting an hour between tasks or sleeping an hour stop at once: the stop completes
 * within the test's deadline, far below the wait. */
static void test_stop_is_immediate_for_waiting_users_and_runs_on_stop(void **state)
{
    (void)state;
    fx_t f;
    fx_run(&f,
           "acrida.user { name = 'L', wait_time = acrida.constant(3600),\n"
           "  on_stop = function(self) acrida.report{ name = 'on_stop' } end,\n"
           "  tasks = { function() acrida.report{ name = 't' } end } }\n"
           "acrida.user { name = 'Z', tasks = { function()\n"
           "  acrida.report{ name = 'z' } acrida.sleep(3600) end } }\n",
           50);
    acr_rt_set_class_users(f.rt, 1, 5);
    fx_wait_reqs(&f, "CUSTOM", "t", 50);
    fx_wait_reqs(&f, "CUSTOM", "z", 5);
    fx_stop(&f);
    assert_int_equal(reqs(&f, "CUSTOM", "t"), 50); /* no task started by the stop */
    assert_int_equal(reqs(&f, "CUSTOM", "z"), 5);
    assert_int_equal(reqs(&f, "CUSTOM", "on_stop"), 50);
    assert_int_equal(acr_rt_users_alive(f.rt), 0);
    fx_free(&f);
}

static void test_fewer_users_stops_newest_first(void **state)
{
    (void)state;
    fx_t f;
    fx_run(&f,
           "acrida.user { name = 'N', wait_time = acrida.constant(0.01),\n"
           "  on_start = function(self) acrida.report{ name = 'start' } end,\n"
           "  on_stop = function(self) acrida.report{ name = 'stop' }\n"
           "    acrida.report{ name = 'stop' .. self.id } end,\n"
           "  tasks = { function() end } }\n",
           5);
    fx_wait_reqs(&f, "CUSTOM", "start", 5);
    acr_class_count_t want = {.name = "N", .count = 2};
    assert_int_equal(acr_rt_set_users(f.rt, &want, 1), 0);
    assert_int_equal(f.rt->classes[0].running, 2);
    fx_wait_reqs(&f, "CUSTOM", "stop", 3);
    assert_int_equal(reqs(&f, "CUSTOM", "stop"), 3);
    assert_int_equal(reqs(&f, "CUSTOM", "stop5"), 1);
    assert_int_equal(reqs(&f, "CUSTOM", "stop4"), 1);
    assert_int_equal(reqs(&f, "CUSTOM", "stop3"), 1);
    assert_int_equal(reqs(&f, "CUSTOM", "stop2"), 0);
    assert_int_equal(reqs(&f, "CUSTOM", "stop1"), 0);
    assert_int_equal(acr_rt_users_alive(f.rt), 2);
    fx_stop(&f);
    assert_int_equal(reqs(&f, "CUSTOM", "stop"), 5);
    fx_free(&f);
}

typedef struct busy {
    uv_timer_t timer;
    uv_check_t check;
    int ticks, turns;
} busy_t;

static void busy_tick(uv_timer_t *t)
{
    ((busy_t *)t->data)->ticks++;
}

static void busy_turn(uv_check_t *c)
{
    ((busy_t *)c->data)->turns++;
}

static bool busy_ticked(void *arg)
{
    return ((busy_t *)arg)->ticks >= 20;
}

/* 100 users whose task never waits: timers still fire (the loop is not starved), and a loop turn
 * runs each user at most once. */
static void test_busy_users_do_not_starve_the_loop(void **state)
{
    (void)state;
    fx_t f;
    busy_t b = {.ticks = 0};
    fx_init(&f, false);
    fx_load_ok(&f, "acrida.user { name = 'B', tasks = { function() acrida.report{ name = 'b' } "
                   "end } }\n");
    uv_timer_init(&f.loop, &b.timer);
    uv_check_init(&f.loop, &b.check);
    b.timer.data = b.check.data = &b;
    uv_timer_start(&b.timer, busy_tick, 10, 10);
    uv_check_start(&b.check, busy_turn);
    acr_rt_set_class_users(f.rt, 0, 100);
    run_until_pred(&f.loop, busy_ticked, &b, "20 ticks of a 10 ms timer beside 100 busy users");
    uv_check_stop(&b.check);
    uint64_t runs = reqs(&f, "CUSTOM", "b");
    print_message("20 ticks: %d loop turns, %llu task runs\n", b.turns, (unsigned long long)runs);
    assert_true(runs >= 100);
    if (runs > 100 * ((uint64_t)b.turns + 1))
        fail_msg("%llu task runs in %d loop turns: more than one per user and turn",
                 (unsigned long long)runs, b.turns);
    uv_close((uv_handle_t *)&b.timer, NULL);
    uv_close((uv_handle_t *)&b.check, NULL);
    fx_stop(&f);
    fx_free(&f);
}

static void test_self_stop(void **state)
{
    (void)state;
    fx_t f;
    fx_run(&f,
           "acrida.user { name = 'X', n = 0,\n"
           "  on_stop = function(self) acrida.report{ name = 'bye' } end,\n"
           "  tasks = { function(self) self.n = self.n + 1\n"
           "    acrida.report{ name = 'run' }\n"
           "    if self.n == 3 then self:stop() end end } }\n",
           2);
    fx_wait_gone(&f);
    assert_int_equal(reqs(&f, "CUSTOM", "run"), 6);
    assert_int_equal(reqs(&f, "CUSTOM", "bye"), 2);
    fx_free(&f);
}

static void test_report_fields(void **state)
{
    (void)state;
    fx_t f;
    fx_run(&f,
           "acrida.user { name = 'R', tasks = { function(self)\n"
           "  acrida.report{ request_type = 'ASYNC', name = 'job', response_time = 2.5,\n"
           "    response_length = 10, exception = 'took too long' }\n"
           "  self:stop() end } }\n",
           1);
    fx_wait_gone(&f);
    acr_stats_entry_t *e = acr_stats_find(f.stats, "ASYNC", "job");
    assert_non_null(e);
    assert_int_equal(e->num_requests, 1);
    assert_int_equal(e->num_failures, 1);
    assert_int_equal(e->total_rt_us, 2500);
    assert_int_equal(e->total_content_length, 10);
    assert_true(has_error(&f, "ASYNC", "job", "took too long"));
    fx_free(&f);
}

/* ---- HTTP ---- */

static const char http_scenario[] =
    "local acrida = require 'acrida'\n"
    "acrida.user { name = 'H', tasks = { function(self)\n"
    "  local r = self.client:get('/')\n"
    "  assert(r.status == 200 and r.ok and r.body == 'hello' and r.error == nil, 'plain get')\n"
    "  assert(r.headers['x-test'] == 'a, b', 'headers ' .. tostring(r.headers['x-test']))\n"
    "  assert(r.elapsed > 0 and r.timings.total >= 0)\n"
    "  self.client:get('/status/404')\n"
    "  self.client:get('/status/500', { check = function(r) return r.status == 500 end })\n"
    "  self.client:get('/', { name = 'checked', check = function(r) return false, 'nope' end })\n"
    "  self.client:get('/', { name = 'checked2', check = function(r) return false end })\n"
    "  self.client:get('/', { name = 'checkerr', check = function(r) error('bad check') end })\n"
    "  local c = self.client:get('/', { name = 'caught', catch_response = true })\n"
    "  c:failure('wrong content')\n"
    "  self.client:get('/status/503', { name = 'caught_default', catch_response = true })\n"
    "  local j = self.client:post('/json', { json = { a = 1 } }):json()\n"
    "  assert(j.ok == true and j.n == 7, 'json')\n"
    "  self.client:get('/q', { query = { b = 'x y', a = 1 } })\n"
    "  self.client:request('patch', 'http://127.0.0.1:' .. PORT .. '/abs?z=1')\n"
    "  self:stop()\n"
    "end } }\n"
    "acrida.user { name = 'NoHost', weight = 0, tasks = { function(self)\n"
    "  local r = self.client:get('/x')\n"
    "  assert(r.status == 0 and r.error)\n"
    "  self:stop() end } }\n";

static void test_http_verdicts_and_exact_count(void **state)
{
    (void)state;
    fx_t f;
    char src[sizeof(http_scenario) + 64];
    fx_init(&f, true);
    snprintf(src, sizeof src, "PORT = %d\n%s", f.sv->port, http_scenario);
    fx_load_ok(&f, src);
    char host[64];
    snprintf(host, sizeof host, "http://127.0.0.1:%d/", f.sv->port);
    assert_int_equal(acr_rt_set_host(f.rt, host), 0);
    acr_rt_set_class_users(f.rt, 0, 3);
    fx_wait_gone(&f);
    size_t nexc;
    acr_stats_exception_t *const *ex = acr_stats_exceptions(f.stats, &nexc);
    for (size_t i = 0; i < nexc; i++) print_message("exception: %s\n", ex[i]->msg);
    assert_int_equal(nexc, 1); /* the failing check only */
    assert_non_null(strstr(ex[0]->msg, "bad check"));
    assert_int_equal(reqs(&f, "GET", "/"), 3);
    assert_int_equal(fails(&f, "GET", "/"), 0);
    assert_true(has_error(&f, "GET", "/status/404", "HTTP 404"));
    assert_int_equal(fails(&f, "GET", "/status/500"), 0);
    assert_true(has_error(&f, "GET", "checked", "nope"));
    assert_true(has_error(&f, "GET", "checked2", "check failed"));
    assert_int_equal(fails(&f, "GET", "checkerr"), 3);
    assert_true(has_error(&f, "GET", "caught", "wrong content"));
    assert_true(has_error(&f, "GET", "caught_default", "HTTP 503"));
    assert_int_equal(reqs(&f, "POST", "/json"), 3);
    assert_int_equal(reqs(&f, "GET", "/q?a=1&b=x+y"), 3);
    assert_int_equal(reqs(&f, "PATCH", "/abs?z=1"), 3);
    acr_stats_entry_t *total = acr_stats_total(f.stats);
    assert_int_equal(total->num_requests, (uint64_t)srv_nreqs(f.sv));
    assert_int_equal(total->num_requests, 33); /* 11 requests x 3 users */

    /* without any host: a failure naming the problem, no I/O */
    acr_rt_set_host(f.rt, NULL);
    acr_rt_set_class_users(f.rt, 1, 1);
    fx_wait_gone(&f);
    assert_true(has_error(&f, "GET", "/x", "no host: set host on the user class or pass -H"));
    assert_int_equal(srv_nreqs(f.sv), 33);
    fx_free(&f);
}

/* A user's sleep of >= ACR__IDLE_TRIM_S (1 s) releases its request buffers (they regrow on the
 * next request) but keeps the keep-alive connection; a shorter sleep keeps the buffers. */
static void run_sleeper(double sleep_s, acr__http_stats_t *first, acr__http_stats_t *second)
{
    fx_t f;
    char src[512];
    fx_init(&f, true);
    snprintf(src, sizeof src,
             "local acrida = require 'acrida'\n"
             "acrida.user { name = 'Sleeper', wait_time = acrida.constant(3600), tasks = {\n"
             "  function(self)\n"
             "    self.client:get('/a')\n"
             "    acrida.sleep(%g)\n"
             "    self.client:get('/b')\n"
             "  end } }\n",
             sleep_s);
    fx_load_ok(&f, src);
    char host[64];
    snprintf(host, sizeof host, "http://127.0.0.1:%d", f.sv->port);
    assert_int_equal(acr_rt_set_host(f.rt, host), 0);
    acr_rt_set_class_users(f.rt, 0, 1);
    fx_wait_reqs(&f, "GET", "/a", 1);
    assert_int_equal(reqs(&f, "GET", "/b"), 0); /* asleep */
    *first = f.httpc->stats;
    fx_wait_reqs(&f, "GET", "/b", 1);
    assert_int_equal(fails(&f, "GET", "/b"), 0);
    *second = f.httpc->stats;
    fx_stop(&f);
    fx_free(&f);
}

static void test_long_sleep_trims_buffers_keeps_connection(void **state)
{
    (void)state;
    acr__http_stats_t a, b;
    run_sleeper(0.3, &a, &b); /* short: nothing released, nothing allocated */
    assert_int_equal(b.conns_opened, 1);
    assert_int_equal(b.conns_reused, 1);
    if (b.buf_grows != a.buf_grows)
        fail_msg("short sleep: buffers regrew %llu -> %llu", (unsigned long long)a.buf_grows,
                 (unsigned long long)b.buf_grows);
    run_sleeper(1.0, &a, &b); /* long: trimmed, same connection */
    assert_int_equal(b.conns_opened, 1);
    assert_int_equal(b.conns_reused, 1);
    assert_int_equal(b.retries, 0);
    if (b.buf_grows < a.buf_grows + 5)
        fail_msg("long sleep: want >= 5 buffers regrown after the trim, got %llu -> %llu",
                 (unsigned long long)a.buf_grows, (unsigned long long)b.buf_grows);
}

typedef struct held_wait {
    fx_t *f;
    int n;
} held_wait_t;

static bool held_reached(void *arg)
{
    held_wait_t *w = arg;
    return srv_get(w->f->sv, &w->f->sv->held) >= w->n;
}

static bool at_most_held_users_left(void *arg)
{
    fx_t *f = arg;
    return acr_rt_users_alive(f->rt) <= 10;
}

/* A stop waits for requests in flight: the server holds ten of them until the other users are
 * gone, and the stop completes only after they are answered and recorded. */
static void test_graceful_stop_records_in_flight_requests(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, true);
    char src[512];
    snprintf(src, sizeof src,
             "acrida.user { name = 'D', host = 'http://127.0.0.1:%d',\n"
             "  tasks = { function(self) self.client:get('/hold', { name = 'slow' })\n"
             "    acrida.report{ name = 'after' } end } }\n"
             "acrida.user { name = 'F', host = 'http://127.0.0.1:%d',\n"
             "  tasks = { function(self) self.client:get('/') end } }\n",
             f.sv->port, f.sv->port);
    fx_load_ok(&f, src);
    acr_rt_set_class_users(f.rt, 0, 10);
    acr_rt_set_class_users(f.rt, 1, 10);
    held_wait_t held = {&f, 10};
    run_until_pred(&f.loop, held_reached, &held, "10 requests held by the server");
    acr_rt_stop_all(f.rt, stopped_cb, &f);
    run_until_pred(&f.loop, at_most_held_users_left, &f,
                   "the users without a held request to stop");
    assert_int_equal(acr_rt_users_alive(f.rt), 10); /* still waiting for the held requests */
    assert_int_equal(f.stopped, 0);
    assert_int_equal(reqs(&f, "GET", "slow"), 0);
    srv_release(f.sv);
    run_until(&f.loop, &f.stopped);
    assert_int_equal(reqs(&f, "GET", "slow"), 10);
    assert_int_equal(fails(&f, "GET", "slow"), 0);
    assert_int_equal(reqs(&f, "CUSTOM", "after"), 10); /* resumed: the code after it runs */
    acr_stats_entry_t *total = acr_stats_total(f.stats);
    assert_int_equal(total->num_requests - reqs(&f, "CUSTOM", "after"), (uint64_t)srv_nreqs(f.sv));
    fx_free(&f);
}

/* With a stop timeout the task in progress finishes: its request is answered only after the
 * stop began, and the code after it runs; no new task starts. */
static void test_stop_timeout_lets_the_task_finish(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, true);
    char src[512];
    snprintf(src, sizeof src,
             "acrida.user { name = 'D', host = 'http://127.0.0.1:%d',\n"
             "  tasks = { function(self) self.client:get('/hold', { name = 'slow' })\n"
             "    acrida.sleep(0.01)\n"
             "    acrida.report{ name = 'after' } end } }\n",
             f.sv->port);
    fx_load_ok(&f, src);
    acr_rt_set_stop_timeout(f.rt, UNIT_DEADLINE_S);
    acr_rt_set_class_users(f.rt, 0, 5);
    held_wait_t held = {&f, 5};
    run_until_pred(&f.loop, held_reached, &held, "5 requests held by the server");
    acr_rt_stop_all(f.rt, stopped_cb, &f);
    srv_release(f.sv);
    run_until(&f.loop, &f.stopped);
    assert_int_equal(reqs(&f, "GET", "slow"), 5);
    assert_int_equal(reqs(&f, "CUSTOM", "after"), 5); /* the task finished, sleep included */
    assert_int_equal(srv_nreqs(f.sv), 5);
    fx_free(&f);
}

/* ---- tasksets, sequences, tags, spawn, record = false ---- */

static bool has_exception(fx_t *f, const char *needle)
{
    size_t n;
    acr_stats_exception_t *const *ex = acr_stats_exceptions(f->stats, &n);
    for (size_t i = 0; i < n; i++)
        if (strstr(ex[i]->msg, needle)) return true;
    for (size_t i = 0; i < n; i++) print_message("exception: %s\n", ex[i]->msg);
    return false;
}

/* A sequence runs its tasks in order (weight 2 = twice in a row) and wraps around; interrupt
 * runs its on_stop and returns to the user's loop, which enters it again (on_start again); a
 * user stopped inside it runs the sequence's on_stop, then the user's. */
static void test_sequence_order_and_interrupt(void **state)
{
    (void)state;
    fx_t f;
    fx_run(&f,
           "local log, entered = {}, 0\n"
           "local function L(s) log[#log + 1] = s end\n"
           "acrida.user { name = 'S', n = 0,\n"
           "  on_stop = function(self) L('ustop')\n"
           "    acrida.report{ name = table.concat(log, ' ') } end,\n"
           "  tasks = { acrida.sequence { name = 'seq',\n"
           "    on_start = function(self) entered = entered + 1; L('start')\n"
           "      if entered == 2 then self:stop() end end,\n"
           "    on_stop = function(self) L('stop:' .. self.taskset.name) end,\n"
           "    tasks = { function(self) L('a') end,\n"
           "      { weight = 2, fn = function(self) L('b') end },\n"
           "      function(self) L('c'); self.n = self.n + 1\n"
           "        if self.n == 2 then self:interrupt() end end } } } }\n",
           1);
    fx_wait_gone(&f);
    expect_no_exception(&f);
    assert_int_equal(reqs(&f, "CUSTOM", "start a b b c a b b c stop:seq start stop:seq ustop"), 1);
    fx_free(&f);
}

/* Nested tasksets: the inner one's tasks see self.taskset, interrupt leaves one level only (the
 * sequence around inner goes on with its next task; the sequence's interrupt returns to outer);
 * a user stopped inside runs the on_stop of the tasksets it is in, innermost first;
 * self:interrupt() in a top-level task is an exception and the user goes on. */
static void test_nested_taskset_interrupt_levels(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    fx_load_ok(
        &f,
        "local log, entered = {}, 0\n"
        "local function L(s) log[#log + 1] = s end\n"
        "local inner = acrida.taskset { name = 'inner',\n"
        "  on_start = function(self) L('in+') end, on_stop = function(self) L('in-') end,\n"
        "  tasks = { function(self) assert(self.taskset.name == 'inner')\n"
        "    L('x'); self:interrupt() end } }\n"
        "local outer = acrida.taskset { name = 'outer', ny = 0,\n"
        "  on_start = function(self) L('out+') end,\n"
        "  on_stop = function(self) L('out-') end,\n"
        "  tasks = { acrida.sequence { tasks = { inner, function(self)\n"
        "    assert(self.taskset.kind == 'sequence'); L('y'); entered = entered + 1\n"
        "    if entered == 2 then acrida.report{ name = table.concat(log, ' ') }; self:stop() end\n"
        "    self:interrupt{ reschedule = false } end } } } }\n"
        "acrida.user { name = 'N', wait_time = 0,\n"
        "  on_stop = function(self) acrida.report{ name = table.concat(log, ' ') } end,\n"
        "  tasks = { outer } }\n"
        "acrida.user { name = 'Top', k = 0, tasks = { function(self)\n"
        "    assert(self.taskset == nil); self.k = self.k + 1\n"
        "    if self.k == 1 then self:interrupt() end\n"
        "    acrida.report{ name = 'top_ok' }; self:stop() end } }\n");
    acr_rt_set_class_users(f.rt, 0, 1);
    acr_rt_set_class_users(f.rt, 1, 1);
    fx_wait_gone(&f);
    assert_true(has_exception(&f, "self:interrupt() is only for tasks of an acrida.taskset"));
    assert_int_equal(reqs(&f, "CUSTOM", "top_ok"), 1);
    /* y's interrupt leaves the sequence only: outer picks it again (no on_start/on_stop) */
    assert_int_equal(reqs(&f, "CUSTOM", "out+ in+ x in- y in+ x in- y"), 1);
    assert_int_equal(reqs(&f, "CUSTOM", "out+ in+ x in- y in+ x in- y out-"), 1);
    fx_free(&f);
}

static const char tags_scenario[] =
    "acrida.user { name = 'T', tasks = {\n"
    "  { name = 'ra', tags = { 'read' }, fn = function() acrida.report{ name = 'read' } end },\n"
    "  { name = 'wr', tags = { 'write' }, fn = function() acrida.report{ name = 'write' } end },\n"
    "  function() acrida.report{ name = 'untagged' } end,\n"
    "  acrida.taskset { tags = { 'admin' }, tasks = {\n"
    "    function(self) acrida.report{ name = 'admin' }; self:interrupt() end,\n"
    "    { tags = { 'write' }, fn = function(self) acrida.report{ name = 'admin_write' }\n"
    "      self:interrupt() end } } } } }\n"
    "acrida.user { name = 'W', weight = 1, tasks = {\n"
    "  { tags = { 'write' }, fn = function() acrida.report{ name = 'w_write' } end } } }\n";

static void run_tagged(fx_t *f, size_t nclass, uint64_t total)
{
    for (size_t i = 0; i < nclass; i++) acr_rt_set_class_users(f->rt, i, 2);
    count_wait_t w = {f, NULL, NULL, total};
    run_until_pred(&f->loop, total_reached, &w, "tagged tasks to run");
    fx_stop(f);
}

/* --tags keeps tasks with one of the tags (a taskset's tags apply to its tasks; an empty one is
 * dropped), --exclude-tags drops those with one; a class left empty is an error naming it. */
static void test_tags_filter_tasks(void **state)
{
    (void)state;
    fx_t f;
    char err[256];
    fx_init(&f, false);
    fx_load_ok(&f, tags_scenario);
    const char *read[] = {"read", NULL}, *write[] = {"write", NULL}, *admin[] = {"admin", NULL};
    assert_int_equal(acr_rt_set_tags(f.rt, read, NULL, err, sizeof err), -EINVAL);
    assert_string_equal(err, "user class 'W' has no task left after --tags/--exclude-tags");
    /* still unfiltered after the refused call */
    const char *rw[] = {"read", "write", NULL};
    assert_int_equal(acr_rt_set_tags(f.rt, rw, admin, err, sizeof err), 0);
    run_tagged(&f, 2, 2000);
    assert_true(reqs(&f, "CUSTOM", "read") > 0 && reqs(&f, "CUSTOM", "write") > 0);
    assert_true(reqs(&f, "CUSTOM", "w_write") > 0);
    assert_int_equal(reqs(&f, "CUSTOM", "untagged") + reqs(&f, "CUSTOM", "admin") +
                         reqs(&f, "CUSTOM", "admin_write"),
                     0);
    acr_stats_clear(f.stats, acr_now());
    assert_int_equal(acr_rt_set_tags(f.rt, NULL, write, err, sizeof err), -EINVAL);
    assert_string_equal(err, "user class 'W' has no task left after --tags/--exclude-tags");
    assert_int_equal(acr_rt_set_tags(f.rt, NULL, read, err, sizeof err), 0);
    run_tagged(&f, 2, 4000);
    assert_true(reqs(&f, "CUSTOM", "write") > 0 && reqs(&f, "CUSTOM", "untagged") > 0);
    assert_true(reqs(&f, "CUSTOM", "admin") > 0 && reqs(&f, "CUSTOM", "admin_write") > 0);
    assert_true(reqs(&f, "CUSTOM", "w_write") > 0);
    assert_int_equal(reqs(&f, "CUSTOM", "read"), 0);
    expect_no_exception(&f);
    fx_free(&f);
}

/* The master's loader filters too (GET /tasks shows the kept tasks) and names the empty class. */
static void test_tags_on_the_master_loader(void **state)
{
    (void)state;
    char path[64] = "/tmp/acr_tags_XXXXXX.lua", err[256];
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, tags_scenario, strlen(tags_scenario)),
                     (ssize_t)strlen(tags_scenario));
    close(fd);
    acr_user_class_t *cls;
    size_t n;
    const char *admin[] = {"admin", NULL}, *read[] = {"read", NULL};
    assert_int_equal(acr_scenario_classes_tagged(path, admin, NULL, &cls, &n, err, sizeof err),
                     -EINVAL);
    assert_string_equal(err, "user class 'W' has no task left after --tags/--exclude-tags");
    assert_int_equal(acr_scenario_classes_tagged(path, NULL, read, &cls, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(cls[0].ntasks, 3); /* wr, task3, the admin taskset */
    assert_string_equal(cls[0].task_names[0], "wr");
    assert_string_equal(cls[0].task_names[2], "taskset4");
    acr_scenario_classes_free(cls, n);
    unlink(path);
}

static bool green_reached(void *arg)
{
    count_wait_t *w = arg;
    return acr_rt_green_count(w->f->rt) >= w->n;
}

/* acrida.spawn: 100 background tasks sleeping forever are all gone after a stop (which does not
 * wait for them); an error in one is an exception; handles report alive/kill; a spawned task
 * can sleep, report, and request through a user's client (recorded normally). */
static void test_spawn_killed_at_stop(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, true);
    char src[2048];
    snprintf(
        src, sizeof src,
        "acrida.user { name = 'G', host = 'http://127.0.0.1:%d',\n"
        "  on_start = function(self)\n"
        "    for i = 1, 50 do acrida.spawn(function(n) while true do acrida.sleep(3600) end end, "
        "i) end\n"
        "    acrida.spawn(function() error('boom in spawn') end)\n"
        "    local t = acrida.spawn(function(c, name)\n"
        "      c:get('/', { name = name }); acrida.report{ name = 'spawned_done' } end,\n"
        "      self.client, 'from_spawn')\n"
        "    local k = acrida.spawn(function() acrida.sleep(3600) end)\n"
        "    assert(k:alive()); assert(k:kill() == true); assert(not k:alive())\n"
        "    self.t = t end,\n"
        "  tasks = { function(self) acrida.sleep(3600) end } }\n",
        f.sv->port);
    fx_load_ok(&f, src);
    acr_rt_set_class_users(f.rt, 0, 2);
    count_wait_t w = {&f, "CUSTOM", "spawned_done", 2};
    run_until_pred(&f.loop, reqs_reached, &w, "both spawned requests");
    count_wait_t g = {&f, NULL, NULL, 100};
    run_until_pred(&f.loop, green_reached, &g, "100 spawned tasks");
    assert_int_equal(acr_rt_green_count(f.rt), 100);
    assert_int_equal(reqs(&f, "GET", "from_spawn"), 2);
    assert_true(has_exception(&f, "boom in spawn"));
    fx_stop(&f);
    assert_int_equal(acr_rt_green_count(f.rt), 0);
    fx_free(&f);
}

/* record = false: the request is sent (the server counts it) and the response returned, but no
 * stats entry is made; check and catch_response still work on the response. */
static void test_record_false(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, true);
    char src[1024];
    snprintf(
        src, sizeof src,
        "acrida.user { name = 'F', host = 'http://127.0.0.1:%d', tasks = { function(self)\n"
        "  local r = self.client:post('/json', { json = { a = 1 }, record = false })\n"
        "  assert(r.status == 200 and r:json().ok, 'forwarded')\n"
        "  local c = self.client:get('/status/500', { record = false, catch_response = true })\n"
        "  assert(c:failure('x') == false)\n"
        "  self.client:get('/', { name = 'counted' })\n"
        "  self:stop() end } }\n",
        f.sv->port);
    fx_load_ok(&f, src);
    acr_rt_set_class_users(f.rt, 0, 3);
    fx_wait_gone(&f);
    expect_no_exception(&f);
    assert_int_equal(srv_nreqs(f.sv), 9);
    assert_int_equal(reqs(&f, "GET", "counted"), 3);
    assert_int_equal(acr_stats_total(f.stats)->num_requests, 3);
    fx_free(&f);
}

/* The worker's events: init once after the load, user_start after on_start and user_stop after
 * on_stop per user, request per recorded request or measurement with its fields (none for
 * record = false); a listener's error is an exception row and the next listener still runs. */
static void test_user_and_request_events(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, true);
    char src[3000];
    snprintf(
        src, sizeof src,
        "local log, inits = {}, 0\n"
        "acrida.events.init:add_listener(function(env)\n"
        "  inits = inits + 1; assert(env.role == 'worker') end)\n"
        "acrida.events.user_start:add_listener(function(u)\n"
        "  assert(u.started, 'after on_start'); log[#log + 1] = 'start' end)\n"
        "acrida.events.user_stop:add_listener(function(u)\n"
        "  assert(u.stopped, 'after on_stop'); log[#log + 1] = 'stop' end)\n"
        "acrida.events.user_stop:add_listener(function(u) error('listener boom') end)\n"
        "acrida.events.user_stop:add_listener(function(u)\n"
        "  acrida.report{ name = 'second listener ran' } end)\n"
        "acrida.events.request:add_listener(function(r)\n"
        "  if r.request_type == 'GET' then\n"
        "    assert(r.name == '/status/404' and r.status == 404 and r.exception == 'HTTP 404')\n"
        "    assert(r.url:match('/status/404$') and r.response_time >= 0)\n"
        "    assert(r.response_length == 5)\n"
        "    acrida.report{ name = 'seen_get' }\n"
        "  elseif r.name == 'job' then\n"
        "    assert(r.request_type == 'ASYNC' and r.response_time == 12 and r.url == nil)\n"
        "    assert(r.response_length == 3 and r.exception == 'slow')\n"
        "    acrida.report{ name = 'seen_job' }\n"
        "  end end)\n"
        "acrida.user { name = 'E', host = 'http://127.0.0.1:%d',\n"
        "  on_start = function(self) self.started = true end,\n"
        "  on_stop = function(self) self.stopped = true\n"
        "    acrida.report{ name = table.concat(log, ' ') .. ' inits=' .. inits } end,\n"
        "  tasks = { function(self)\n"
        "    self.client:get('/', { record = false })\n"
        "    self.client:get('/status/404')\n"
        "    acrida.report{ request_type = 'ASYNC', name = 'job', response_time = 12,\n"
        "      response_length = 3, exception = 'slow' }\n"
        "    self:stop() end } }\n",
        f.sv->port);
    fx_load_ok(&f, src);
    acr_rt_set_class_users(f.rt, 0, 2);
    fx_wait_gone(&f);
    assert_int_equal(reqs(&f, "CUSTOM", "seen_get"), 2);
    assert_int_equal(reqs(&f, "CUSTOM", "seen_job"), 2);
    /* the first user's on_stop sees both starts; the second's also the first's stop */
    assert_int_equal(reqs(&f, "CUSTOM", "start start inits=1"), 1);
    assert_int_equal(reqs(&f, "CUSTOM", "start start stop inits=1"), 1);
    assert_int_equal(reqs(&f, "CUSTOM", "second listener ran"), 2);
    assert_true(has_exception(&f, "listener boom"));
    size_t n;
    acr_stats_exceptions(f.stats, &n);
    assert_int_equal(n, 1); /* only the listener's error: every assert above held */
    fx_free(&f);
}

/* --max-lua-memory: a task over the cap fails with 'not enough memory' naming it and its user
 * stops (on_stop runs); os.exit() is an error of its task, and its user stops too; at load it is a
 * load error. */
static void test_memory_cap_and_os_exit(void **state)
{
    (void)state;
    fx_t f;
    char err[512];
    memset(&f, 0, sizeof f);
    assert_int_equal(uv_loop_init(&f.loop), 0);
    f.stats = acr_stats_new(acr_now());
    acr_rt_config_t rc = {.loop = &f.loop,
                          .stats = f.stats,
                          .node_id = "test_node",
                          .max_lua_memory = (size_t)32 << 20};
    f.rt = acr_rt_new(&rc, err, sizeof err);
    if (!f.rt) fail_msg("acr_rt_new: %s", err);
    fx_load_ok(&f, "acrida.user { name = 'B', on_stop = function(self) acrida.report{ name = "
                   "'bye' } end,\n"
                   "  tasks = { { name = 'bomb', fn = function(self)\n"
                   "    acrida.report{ name = 'run' }\n"
                   "    local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(100) .. i end end } } }\n"
                   "acrida.user { name = 'X', on_stop = function(self) acrida.report{ name = "
                   "'xbye' } end,\n"
                   "  tasks = { function(self) acrida.report{ name = 'x' }; os.exit(3) end } }\n");
    acr_rt_set_class_users(f.rt, 0, 2);
    acr_rt_set_class_users(f.rt, 1, 1);
    fx_wait_gone(&f);
    assert_int_equal(reqs(&f, "CUSTOM", "run"), 2);
    assert_int_equal(reqs(&f, "CUSTOM", "bye"), 2);
    assert_int_equal(reqs(&f, "CUSTOM", "x"), 1);
    assert_int_equal(reqs(&f, "CUSTOM", "xbye"), 1);
    size_t n;
    acr_stats_exception_t *const *ex = acr_stats_exceptions(f.stats, &n);
    assert_int_equal(n, 2);
    assert_true(has_exception(&f, "not enough memory: task 'bomb' of user class 'B' went over "
                                  "--max-lua-memory (32 MiB); the user stops"));
    assert_true(has_exception(&f, "os.exit() called by task 'task1' of user class 'X': a "
                                  "scenario cannot end its worker (the user stops)"));
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ex[i]->count, strstr(ex[i]->msg, "memory") ? 2 : 1);
    fx_free(&f);

    fx_init(&f, false);
    assert_true(fx_load(&f, "os.exit(0)\n", err, sizeof err) < 0);
    if (!strstr(err, "os.exit() called while the scenario loads: a scenario cannot end its worker"))
        fail_msg("load error: %s", err);
    fx_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syntax_error_has_file_line),
        cmocka_unit_test(test_bad_declarations_are_named),
        cmocka_unit_test(test_task_weights_distribution),
        cmocka_unit_test(test_wait_helpers),
        cmocka_unit_test(test_constant_pacing_runs_tasks_on_schedule),
        cmocka_unit_test(test_task_error_is_exception_and_user_continues),
        cmocka_unit_test(test_on_start_error_stops_user),
        cmocka_unit_test(test_stop_is_immediate_for_waiting_users_and_runs_on_stop),
        cmocka_unit_test(test_fewer_users_stops_newest_first),
        cmocka_unit_test(test_busy_users_do_not_starve_the_loop),
        cmocka_unit_test(test_self_stop),
        cmocka_unit_test(test_memory_cap_and_os_exit),
        cmocka_unit_test(test_report_fields),
        cmocka_unit_test(test_http_verdicts_and_exact_count),
        cmocka_unit_test(test_long_sleep_trims_buffers_keeps_connection),
        cmocka_unit_test(test_graceful_stop_records_in_flight_requests),
        cmocka_unit_test(test_stop_timeout_lets_the_task_finish),
        cmocka_unit_test(test_sequence_order_and_interrupt),
        cmocka_unit_test(test_nested_taskset_interrupt_levels),
        cmocka_unit_test(test_tags_filter_tasks),
        cmocka_unit_test(test_tags_on_the_master_loader),
        cmocka_unit_test(test_spawn_killed_at_stop),
        cmocka_unit_test(test_record_false),
        cmocka_unit_test(test_user_and_request_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
