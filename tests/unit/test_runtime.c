/*
 * Unit tests of the worker's Lua runtime and user scheduler (worker/runtime.c, lua_http.c,
 * users.c): scenarios are loaded from temp files and their users run on a real libuv loop, either
 * with acrida.report-only tasks or against a small HTTP responder on the same loop (127.0.0.1, port
 * 0).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/stats.h"
#include "common/util.h"
#include "worker/http/http.h"
#include "worker/runtime.h"

#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* ---- a keep-alive HTTP responder on the test's loop ---- */

typedef struct sconn sconn_t;
typedef struct srv {
    uv_tcp_t tcp;
    sconn_t *conns;
    int port;
    int served;
    int served_status; /* /status/... */
} srv_t;

struct sconn {
    uv_tcp_t tcp;
    sconn_t *next;
    srv_t *sv;
    uv_timer_t delay;
    char buf[16384];
    size_t len;
    char pending[512]; /* a delayed response */
    size_t pending_len;
    int closes;
};

typedef struct wreq {
    uv_write_t w;
    char data[];
} wreq_t;

static void write_done(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void conn_send(sconn_t *c, const char *data, size_t len)
{
    wreq_t *r = malloc(sizeof(*r) + len);
    memcpy(r->data, data, len);
    uv_buf_t b = uv_buf_init(r->data, (unsigned)len);
    uv_write(&r->w, (uv_stream_t *)&c->tcp, &b, 1, write_done);
}

static void delay_cb(uv_timer_t *t)
{
    sconn_t *c = t->data;
    conn_send(c, c->pending, c->pending_len);
}

static void conn_closed(uv_handle_t *h)
{
    sconn_t *c = h->data;
    if (--c->closes == 0) free(c);
}

static void conn_close(sconn_t *c)
{
    for (sconn_t **p = &c->sv->conns; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    c->closes = 2;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
    uv_close((uv_handle_t *)&c->delay, conn_closed);
}

/* Handles every complete request in the buffer. */
static void conn_process(sconn_t *c)
{
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end) return;
        size_t head = (size_t)(end - c->buf) + 4, body = 0;
        char *cl = memmem(c->buf, head, "Content-Length: ", 16);
        if (cl) body = strtoul(cl + 16, NULL, 10);
        if (c->len < head + body) return;
        char path[256] = "/";
        sscanf(c->buf, "%*s %255s", path);
        int status = 200, delay = 0;
        const char *rbody = "hello";
        char jbody[64];
        if (strncmp(path, "/status/", 8) == 0) {
            status = atoi(path + 8);
            c->sv->served_status++;
        } else if (strncmp(path, "/delay/", 7) == 0) {
            delay = atoi(path + 7);
        } else if (strcmp(path, "/json") == 0) {
            snprintf(jbody, sizeof jbody, "{\"ok\":true,\"n\":%zu}", body);
            rbody = jbody;
        }
        c->sv->served++;
        char resp[512];
        int n = snprintf(resp, sizeof resp,
                         "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nX-Test: a\r\nX-Test: b\r\n\r\n%s",
                         status, strlen(rbody), rbody);
        if (delay) {
            memcpy(c->pending, resp, (size_t)n);
            c->pending_len = (size_t)n;
            uv_timer_start(&c->delay, delay_cb, (uint64_t)delay, 0);
        } else {
            conn_send(c, resp, (size_t)n);
        }
        memmove(c->buf, c->buf + head + body, c->len - head - body);
        c->len -= head + body;
    }
}

static void conn_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    sconn_t *c = h->data;
    (void)sz;
    *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len));
}

static void conn_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    sconn_t *c = s->data;
    (void)b;
    if (n < 0) {
        conn_close(c);
        return;
    }
    c->len += (size_t)n;
    conn_process(c);
}

static void on_conn(uv_stream_t *server, int status)
{
    srv_t *sv = server->data;
    assert_int_equal(status, 0);
    sconn_t *c = calloc(1, sizeof(*c));
    c->sv = sv;
    c->next = sv->conns;
    sv->conns = c;
    uv_tcp_init(server->loop, &c->tcp);
    uv_timer_init(server->loop, &c->delay);
    c->tcp.data = c->delay.data = c;
    uv_accept(server, (uv_stream_t *)&c->tcp);
    uv_read_start((uv_stream_t *)&c->tcp, conn_alloc, conn_read);
}

static void srv_start(uv_loop_t *loop, srv_t *sv)
{
    struct sockaddr_in a;
    memset(sv, 0, sizeof(*sv));
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &sv->tcp);
    sv->tcp.data = sv;
    assert_int_equal(uv_tcp_bind(&sv->tcp, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&sv->tcp, 128, on_conn), 0);
    struct sockaddr_in got;
    int len = sizeof got;
    uv_tcp_getsockname(&sv->tcp, (struct sockaddr *)&got, &len);
    sv->port = ntohs(got.sin_port);
}

static void srv_stop(srv_t *sv)
{
    while (sv->conns) conn_close(sv->conns);
    uv_close((uv_handle_t *)&sv->tcp, NULL);
}

/* ---- fixture ---- */

typedef struct fx {
    uv_loop_t loop;
    acr_stats_t *stats;
    acr_http_client_t *httpc;
    acr_rt_t *rt;
    srv_t sv;
    bool have_srv;
    char path[64];
    bool stopped;
    double stopped_at;
} fx_t;

static void fx_init(fx_t *f, bool http)
{
    char err[256];
    memset(f, 0, sizeof(*f));
    uv_loop_init(&f->loop);
    f->stats = acr_stats_new(acr_now());
    if (http) {
        acr_http_config_t hc = {.user_agent = "acrida/test"};
        f->httpc = acr_http_client_new(&f->loop, &hc, err, sizeof err);
        assert_non_null(f->httpc);
        srv_start(&f->loop, &f->sv);
        f->have_srv = true;
    }
    acr_rt_config_t rc = {
        .loop = &f->loop, .stats = f->stats, .http = f->httpc, .node_id = "test_node"};
    f->rt = acr_rt_new(&rc, err, sizeof err);
    if (!f->rt) fail_msg("acr_rt_new: %s", err);
}

/* Writes @src to a temp file and loads it; returns the load result, message in @err. */
static int fx_load(fx_t *f, const char *src, char *err, size_t errlen)
{
    snprintf(f->path, sizeof f->path, "/tmp/acr_rt_XXXXXX.lua");
    int fd = mkstemps(f->path, 4);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, src, strlen(src)), (ssize_t)strlen(src));
    close(fd);
    return acr_rt_load_file(f->rt, f->path, err, errlen);
}

static void fx_load_ok(fx_t *f, const char *src)
{
    char err[512];
    if (fx_load(f, src, err, sizeof err) != 0) fail_msg("load failed: %s", err);
}

static void stop_timer_cb(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Runs the loop for @ms milliseconds. */
static void fx_run(fx_t *f, unsigned ms)
{
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, stop_timer_cb, ms, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void stopped_cb(acr_rt_t *rt, void *ud)
{
    fx_t *f = ud;
    (void)rt;
    f->stopped = true;
    f->stopped_at = acr_mono_s();
    uv_stop(&f->loop);
}

/* Stops every user and runs the loop until they are gone (at most @max_ms). Returns seconds. */
static double fx_stop(fx_t *f, unsigned max_ms)
{
    double t0 = acr_mono_s();
    f->stopped = false;
    acr_rt_stop_all(f->rt, stopped_cb, f);
    if (!f->stopped) fx_run(f, max_ms);
    assert_true(f->stopped);
    return f->stopped_at - t0;
}

static void rt_closed(void *ud)
{
    fx_t *f = ud;
    if (f->httpc) acr_http_client_free(f->httpc);
    f->httpc = NULL;
}

static void fx_free(fx_t *f)
{
    acr_rt_close(f->rt, rt_closed, f);
    for (int i = 0; i < 100 && f->httpc; i++) uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_null(f->httpc);
    if (f->have_srv) srv_stop(&f->sv);
    while (uv_run(&f->loop, UV_RUN_DEFAULT)) {
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    acr_stats_free(f->stats);
    if (f->path[0]) unlink(f->path);
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
    fx_run(&f, 200);
    uint64_t a = reqs(&f, "CUSTOM", "a"), b = reqs(&f, "CUSTOM", "b");
    double ratio = (double)a / (double)(a + b);
    print_message("a=%llu b=%llu ratio=%.4f\n", (unsigned long long)a, (unsigned long long)b,
                  ratio);
    assert_true(a + b > 5000);
    if (ratio < 0.72 || ratio > 0.78) fail_msg("ratio %.4f not near 0.75", ratio);
    fx_stop(&f, 1000);
    assert_int_equal(acr_rt_users_alive(f.rt), 0);
    fx_free(&f);
}

static void test_wait_helpers(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    lua_State *L = acr_rt_lua(f.rt);
    const char *code =
        "local b = acrida.between(1, 3)\n"
        "local lo, hi, sum = 99, -1, 0\n"
        "for i = 1, 20000 do local v = b() lo = math.min(lo, v) hi = math.max(hi, v) "
        "sum = sum + v end\n"
        "assert(lo >= 1 and hi <= 3, 'between out of range')\n"
        "assert(math.abs(sum / 20000 - 2) < 0.05, 'between mean ' .. sum / 20000)\n"
        "assert(acrida.constant(2.5)() == 2.5)\n"
        "local p, self = acrida.constant_pacing(0.05), {}\n"
        "assert(p(self) == 0.05, 'first pacing call returns the interval')\n"
        "local t0 = acrida.time() while acrida.time() - t0 < 0.07 do end\n"
        "local w = p(self)\n"
        "assert(w >= 0.025 and w <= 0.035, 'pacing after a 20 ms task: ' .. w)\n"
        "local q = acrida.constant_throughput(10)\n"
        "assert(q({}) == 0.1)\n"
        "assert(not pcall(acrida.between, 3, 1))\n"
        "assert(not pcall(acrida.constant_throughput, 0))\n";
    if (luaL_dostring(L, code) != 0) fail_msg("%s", lua_tostring(L, -1));
    fx_free(&f);
}

static void test_constant_pacing_runs_tasks_on_schedule(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    fx_load_ok(&f, "acrida.user { name = 'P', wait_time = acrida.constant_pacing(0.05),\n"
                   "  tasks = { function() acrida.report{ name = 'p', response_time = 1 }\n"
                   "    acrida.sleep(0.02) end } }\n");
    acr_rt_set_class_users(f.rt, 0, 1);
    fx_run(&f, 520);
    uint64_t n = reqs(&f, "CUSTOM", "p");
    print_message("runs in 0.52 s at 0.05 s pacing: %llu\n", (unsigned long long)n);
    assert_true(n >= 9 && n <= 12);
    fx_stop(&f, 1000);
    fx_free(&f);
}

static void test_task_error_is_exception_and_user_continues(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    fx_load_ok(&f, "local acrida = require 'acrida'\n"
                   "local function inner()\n"
                   "  error('boom from task')\n"
                   "end\n"
                   "acrida.user { name = 'E', tasks = { function(self)\n"
                   "  acrida.report{ name = 'before' }\n"
                   "  inner()\n"
                   "end } }\n");
    acr_rt_set_class_users(f.rt, 0, 2);
    fx_run(&f, 50);
    assert_true(reqs(&f, "CUSTOM", "before") > 10);
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
    assert_true(ex[0]->count == reqs(&f, "CUSTOM", "before") ||
                ex[0]->count + 2 >= reqs(&f, "CUSTOM", "before"));
    assert_int_equal(acr_rt_user_count(f.rt), 2);
    fx_stop(&f, 1000);
    fx_free(&f);
}

static void test_on_start_error_stops_user(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    fx_load_ok(&f, "acrida.user { name = 'S',\n"
                   "  on_start = function(self) error('no login') end,\n"
                   "  on_stop = function(self) acrida.report{ name = 'on_stop' } end,\n"
                   "  tasks = { function() acrida.report{ name = 'task' } end } }\n");
    acr_rt_set_class_users(f.rt, 0, 3);
    fx_run(&f, 30);
    assert_int_equal(reqs(&f, "CUSTOM", "task"), 0);
    assert_int_equal(acr_rt_users_alive(f.rt), 0);
    size_t n;
    acr_stats_exception_t *const *ex = acr_stats_exceptions(f.stats, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ex[0]->count, 3);
    assert_non_null(strstr(ex[0]->msg, ":2: no login"));
    fx_free(&f);
}

static void test_stop_is_immediate_for_waiting_users_and_runs_on_stop(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    fx_load_ok(&f, "acrida.user { name = 'L', wait_time = acrida.constant(30),\n"
                   "  on_stop = function(self) acrida.report{ name = 'on_stop' } end,\n"
                   "  tasks = { function() acrida.report{ name = 't' } end } }\n"
                   "acrida.user { name = 'Z', tasks = { function() acrida.sleep(30) end } }\n");
    acr_rt_set_class_users(f.rt, 0, 50);
    acr_rt_set_class_users(f.rt, 1, 5);
    fx_run(&f, 30);
    assert_int_equal(reqs(&f, "CUSTOM", "t"), 50);
    double took = fx_stop(&f, 2000);
    print_message("stop took %.4f s\n", took);
    assert_true(took < 0.2);
    assert_int_equal(reqs(&f, "CUSTOM", "on_stop"), 50);
    assert_int_equal(acr_rt_users_alive(f.rt), 0);
    fx_free(&f);
}

static void test_fewer_users_stops_newest_first(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    fx_load_ok(&f, "acrida.user { name = 'N', wait_time = acrida.constant(0.01),\n"
                   "  on_stop = function(self) acrida.report{ name = 'stop' .. self.id } end,\n"
                   "  tasks = { function() end } }\n");
    acr_rt_set_class_users(f.rt, 0, 5);
    fx_run(&f, 20);
    acr_class_count_t want = {.name = "N", .count = 2};
    assert_int_equal(acr_rt_set_users(f.rt, &want, 1), 0);
    assert_int_equal(acr_rt_class_users(f.rt, 0), 2);
    fx_run(&f, 20);
    assert_int_equal(reqs(&f, "CUSTOM", "stop5"), 1);
    assert_int_equal(reqs(&f, "CUSTOM", "stop4"), 1);
    assert_int_equal(reqs(&f, "CUSTOM", "stop3"), 1);
    assert_int_equal(reqs(&f, "CUSTOM", "stop1"), 0);
    fx_stop(&f, 1000);
    fx_free(&f);
}

static int ticks;
static void tick_cb(uv_timer_t *t)
{
    (void)t;
    ticks++;
}

static void test_busy_users_do_not_starve_the_loop(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    fx_load_ok(&f, "acrida.user { name = 'B', tasks = { function() end } }\n");
    acr_rt_set_class_users(f.rt, 0, 100);
    uv_timer_t t;
    uv_timer_init(&f.loop, &t);
    ticks = 0;
    uv_timer_start(&t, tick_cb, 10, 10);
    fx_run(&f, 205);
    uv_close((uv_handle_t *)&t, NULL);
    print_message("10 ms timer ticks in 205 ms: %d\n", ticks);
    assert_true(ticks >= 15);
    fx_stop(&f, 1000);
    fx_free(&f);
}

static void test_self_stop(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    fx_load_ok(&f, "acrida.user { name = 'X', n = 0,\n"
                   "  on_stop = function(self) acrida.report{ name = 'bye' } end,\n"
                   "  tasks = { function(self) self.n = self.n + 1\n"
                   "    acrida.report{ name = 'run' }\n"
                   "    if self.n == 3 then self:stop() end end } }\n");
    acr_rt_set_class_users(f.rt, 0, 2);
    fx_run(&f, 30);
    assert_int_equal(reqs(&f, "CUSTOM", "run"), 6);
    assert_int_equal(reqs(&f, "CUSTOM", "bye"), 2);
    assert_int_equal(acr_rt_users_alive(f.rt), 0);
    fx_free(&f);
}

static void test_report_fields(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, false);
    fx_load_ok(&f, "acrida.user { name = 'R', tasks = { function(self)\n"
                   "  acrida.report{ request_type = 'ASYNC', name = 'job', response_time = 2.5,\n"
                   "    response_length = 10, exception = 'took too long' }\n"
                   "  self:stop() end } }\n");
    acr_rt_set_class_users(f.rt, 0, 1);
    fx_run(&f, 20);
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
    snprintf(src, sizeof src, "PORT = %d\n%s", f.sv.port, http_scenario);
    fx_load_ok(&f, src);
    char host[64];
    snprintf(host, sizeof host, "http://127.0.0.1:%d/", f.sv.port);
    assert_int_equal(acr_rt_set_host(f.rt, host), 0);
    acr_rt_set_class_users(f.rt, 0, 3);
    fx_run(&f, 300);
    assert_int_equal(acr_rt_users_alive(f.rt), 0);
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
    assert_int_equal(total->num_requests, (uint64_t)f.sv.served);
    assert_int_equal(total->num_requests, 33); /* 11 requests x 3 users */

    /* without any host: a failure naming the problem, no I/O */
    acr_rt_set_host(f.rt, NULL);
    acr_rt_set_class_users(f.rt, 1, 1);
    fx_run(&f, 30);
    assert_true(has_error(&f, "GET", "/x", "no host: set host on the user class or pass -H"));
    fx_free(&f);
}

/* A user's sleep of >= ACR__IDLE_TRIM_S (1 s) releases its request buffers (they regrow on the
 * next request) but keeps the keep-alive connection; a shorter sleep keeps the buffers. */
static void run_sleeper(double sleep_s, acr_http_stats_t *first, acr_http_stats_t *second)
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
    snprintf(host, sizeof host, "http://127.0.0.1:%d", f.sv.port);
    assert_int_equal(acr_rt_set_host(f.rt, host), 0);
    acr_rt_set_class_users(f.rt, 0, 1);
    fx_run(&f, 150);
    assert_int_equal(reqs(&f, "GET", "/a"), 1);
    assert_int_equal(reqs(&f, "GET", "/b"), 0);
    acr_http_client_stats(f.httpc, first);
    fx_run(&f, (unsigned)(sleep_s * 1000) + 250);
    assert_int_equal(reqs(&f, "GET", "/b"), 1);
    assert_int_equal(fails(&f, "GET", "/b"), 0);
    acr_http_client_stats(f.httpc, second);
    fx_free(&f);
}

static void test_long_sleep_trims_buffers_keeps_connection(void **state)
{
    (void)state;
    acr_http_stats_t a, b;
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

static void test_graceful_stop_records_in_flight_requests(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, true);
    char src[512];
    snprintf(src, sizeof src,
             "acrida.user { name = 'D', host = 'http://127.0.0.1:%d',\n"
             "  tasks = { function(self) self.client:get('/delay/300', { name = 'slow' })\n"
             "    acrida.report{ name = 'after' } end } }\n"
             "acrida.user { name = 'F', host = 'http://127.0.0.1:%d',\n"
             "  tasks = { function(self) self.client:get('/') end } }\n",
             f.sv.port, f.sv.port);
    fx_load_ok(&f, src);
    acr_rt_set_class_users(f.rt, 0, 10);
    acr_rt_set_class_users(f.rt, 1, 10);
    fx_run(&f, 100); /* the first slow requests are in flight */
    double took = fx_stop(&f, 3000);
    print_message("stop with requests in flight took %.3f s; served %d\n", took, f.sv.served);
    assert_true(took > 0.05 && took < 1.0);
    assert_int_equal(reqs(&f, "GET", "slow"), 10);
    assert_int_equal(reqs(&f, "CUSTOM", "after"), 10); /* resumed: the code after it runs */
    acr_stats_entry_t *total = acr_stats_total(f.stats);
    assert_int_equal(total->num_requests - reqs(&f, "CUSTOM", "after"), (uint64_t)f.sv.served);
    fx_free(&f);
}

static void test_stop_timeout_lets_the_task_finish(void **state)
{
    (void)state;
    fx_t f;
    fx_init(&f, true);
    char src[512];
    snprintf(src, sizeof src,
             "acrida.user { name = 'D', host = 'http://127.0.0.1:%d',\n"
             "  tasks = { function(self) self.client:get('/delay/100', { name = 'slow' })\n"
             "    acrida.report{ name = 'after' } end } }\n",
             f.sv.port);
    fx_load_ok(&f, src);
    acr_rt_set_stop_timeout(f.rt, 2);
    acr_rt_set_class_users(f.rt, 0, 5);
    fx_run(&f, 50);
    fx_stop(&f, 3000);
    assert_int_equal(reqs(&f, "GET", "slow"), 5);
    assert_int_equal(reqs(&f, "CUSTOM", "after"), 5); /* the task finished */
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
        cmocka_unit_test(test_report_fields),
        cmocka_unit_test(test_http_verdicts_and_exact_count),
        cmocka_unit_test(test_long_sleep_trims_buffers_keeps_connection),
        cmocka_unit_test(test_graceful_stop_records_in_flight_requests),
        cmocka_unit_test(test_stop_timeout_lets_the_task_finish),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
