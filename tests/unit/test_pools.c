/*
 * Unit tests of master/pools.c without sockets: the store's answers go to a recording callback.
 * Lease exclusivity, FIFO waits, timeouts, release by the holder only, release_user, release by
 * node, the test stop, queue exhaustion and restart, circular order, random coverage, wrong
 * operations and unknown pools; acrida.pool on the master's Lua state (CSV relative to the base
 * directory, rows tables, declaration errors at file:line); the pool messages' round trip through
 * proto/msg. The worker's self-fencing (worker/pools.c, users.c) on a real runtime and loop, with
 * the master played by the test: a user holding a lease is killed without on_stop, recorded and
 * replaced once the master is silent for more than 2 s; at the message that ends a silence an
 * old acquire's waiter is fenced too and the answer it gets later is dropped.
 */
#define _GNU_SOURCE
#include "tests/unit/unit_srv.h"

#include "common/lua_value.h"
#include "common/scenario.h"
#include "common/stats.h"
#include "master/pools.h"
#include "proto/msg.h"
#include "worker/pools.h"
#include "worker/runtime_int.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXREP 64

typedef struct rec {
    char node[64];
    acr_pool_reply_t rep;
    char row[64]; /**< the row's msgpack bytes (our rows are tiny) */
    char error[128];
} rec_t;

typedef struct recorder {
    rec_t r[MAXREP];
    size_t n;
} recorder_t;

static void on_reply(const char *node, const acr_pool_reply_t *rep, void *ud)
{
    recorder_t *rc = ud;
    assert_true(rc->n < MAXREP);
    rec_t *r = &rc->r[rc->n++];
    snprintf(r->node, sizeof r->node, "%s", node);
    r->rep = *rep;
    assert_true(rep->row_len <= sizeof r->row);
    if (rep->row) memcpy(r->row, rep->row, rep->row_len);
    r->rep.row = rep->row ? r->row : NULL;
    snprintf(r->error, sizeof r->error, "%s", rep->error ? rep->error : "");
    r->rep.error = rep->error ? r->error : NULL;
}

/* A store with pool "p" of @n rows whose msgpack value is the positive fixint i. */
static acr_pools_t *store(recorder_t *rc, acr_pool_mode_t mode, int n)
{
    memset(rc, 0, sizeof(*rc));
    acr_pools_t *p = acr_pools_new(on_reply, rc);
    assert_non_null(p);
    size_t idx;
    assert_int_equal(acr_pools_add(p, "p", mode, &idx), 0);
    for (int i = 0; i < n; i++) {
        char b = (char)i;
        assert_int_equal(acr_pools_add_row(p, idx, &b, 1), 0);
    }
    return p;
}

static void ask(acr_pools_t *p, const char *node, acr_pool_op_t op, uint64_t id, uint64_t user,
                int64_t row_id, double timeout, double now)
{
    acr_msg_pool_t m = {.name = (char *)"p",
                        .op = op,
                        .req_id = id,
                        .user = user,
                        .row_id = row_id,
                        .timeout = timeout};
    acr_pools_request(p, node, &m, now);
}

static acr_pool_stat_t stat0(acr_pools_t *p)
{
    acr_pool_stat_t s;
    acr_pools_stat(p, 0, &s);
    return s;
}

static void test_lease_exclusive_and_fifo(void **state)
{
    (void)state;
    recorder_t rc;
    acr_pools_t *p = store(&rc, ACR_POOL_LEASE, 2);
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 1, 1, -1, -1, 0);
    ask(p, "w2", ACR_POOL_OP_ACQUIRE, 2, 1, -1, -1, 0);
    assert_int_equal(rc.n, 2);
    assert_int_equal(rc.r[0].rep.row_id, 0);
    assert_int_equal(rc.r[1].rep.row_id, 1);
    assert_int_equal(rc.r[1].rep.available, 0);
    /* three waiters, in order */
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 3, 2, -1, -1, 0);
    ask(p, "w2", ACR_POOL_OP_ACQUIRE, 4, 2, -1, -1, 0);
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 5, 3, -1, -1, 0);
    assert_int_equal(rc.n, 2);
    acr_pool_stat_t s = stat0(p);
    assert_int_equal(s.leased, 2);
    assert_int_equal(s.waiting, 3);
    assert_int_equal(s.available, 0);
    /* a release by someone who does not hold the row changes nothing */
    ask(p, "w2", ACR_POOL_OP_RELEASE, 0, 1, 0, -1, 0); /* row 0 is w1's user 1 */
    ask(p, "w1", ACR_POOL_OP_RELEASE, 0, 9, 0, -1, 0);
    assert_int_equal(rc.n, 2);
    /* the holder's release goes to the oldest waiter */
    ask(p, "w1", ACR_POOL_OP_RELEASE, 0, 1, 0, -1, 0);
    assert_int_equal(rc.n, 3);
    assert_int_equal(rc.r[2].rep.req_id, 3);
    assert_string_equal(rc.r[2].node, "w1");
    assert_int_equal(rc.r[2].rep.row_id, 0);
    ask(p, "w2", ACR_POOL_OP_RELEASE, 0, 1, 1, -1, 0);
    assert_int_equal(rc.n, 4);
    assert_int_equal(rc.r[3].rep.req_id, 4);
    assert_int_equal(rc.r[3].rep.row_id, 1);
    assert_int_equal(stat0(p).waiting, 1);
    acr_pools_free(p);
}

static void test_timeout(void **state)
{
    (void)state;
    recorder_t rc;
    acr_pools_t *p = store(&rc, ACR_POOL_LEASE, 1);
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 1, 1, -1, -1, 100);
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 2, 2, -1, 0, 100); /* 0: try once */
    assert_int_equal(rc.n, 2);
    assert_string_equal(rc.r[1].error, "timeout");
    assert_null(rc.r[1].rep.row);
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 3, 3, -1, 5, 100);
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 4, 4, -1, 2, 100);
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 5, 5, -1, -1, 100); /* no limit */
    acr_pools_expire(p, 101.9);
    assert_int_equal(rc.n, 2);
    acr_pools_expire(p, 102.0);
    assert_int_equal(rc.n, 3);
    assert_int_equal(rc.r[2].rep.req_id, 4);
    assert_string_equal(rc.r[2].error, "timeout");
    acr_pools_expire(p, 1000);
    assert_int_equal(rc.n, 4);
    assert_int_equal(rc.r[3].rep.req_id, 3);
    assert_int_equal(stat0(p).waiting, 1); /* the one without a limit */
    acr_pools_free(p);
}

static void test_release_user_and_node(void **state)
{
    (void)state;
    recorder_t rc;
    acr_pools_t *p = store(&rc, ACR_POOL_LEASE, 3);
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 1, 1, -1, -1, 0);
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 2, 1, -1, -1, 0); /* a user may hold two */
    ask(p, "w2", ACR_POOL_OP_ACQUIRE, 3, 1, -1, -1, 0);
    ask(p, "w2", ACR_POOL_OP_ACQUIRE, 4, 2, -1, -1, 0); /* waits */
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 5, 7, -1, -1, 0); /* waits */
    assert_int_equal(rc.n, 3);
    /* user 7 of w1 ends: its wait goes; user 1 of w1 ends: both rows return */
    ask(p, "w1", ACR_POOL_OP_RELEASE_USER, 0, 7, -1, -1, 0);
    assert_int_equal(stat0(p).waiting, 1);
    ask(p, "w1", ACR_POOL_OP_RELEASE_USER, 0, 1, -1, -1, 0);
    assert_int_equal(rc.n, 4); /* w2's user 2 got one */
    assert_int_equal(rc.r[3].rep.req_id, 4);
    acr_pool_stat_t s = stat0(p);
    assert_int_equal(s.leased, 2);
    assert_int_equal(s.available, 1);
    /* w2 is lost: its two leases return */
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 6, 8, -1, -1, 0);
    ask(p, "w2", ACR_POOL_OP_ACQUIRE, 7, 3, -1, -1, 0); /* waits, dropped with the node */
    acr_pools_release_node(p, "w2");
    s = stat0(p);
    assert_int_equal(s.leased, 1);
    assert_int_equal(s.available, 2);
    assert_int_equal(s.waiting, 0);
    /* the test stops: the last lease returns, waits are answered */
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 8, 9, -1, -1, 0);
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 9, 9, -1, -1, 0);
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 10, 9, -1, -1, 0);
    size_t before = rc.n;
    acr_pools_test_stop(p);
    assert_int_equal(rc.n, before + 1);
    assert_string_equal(rc.r[before].error, "test stopped");
    s = stat0(p);
    assert_int_equal(s.leased, 0);
    assert_int_equal(s.available, 3);
    acr_pools_free(p);
}

static void test_queue_circular_random(void **state)
{
    (void)state;
    recorder_t rc;
    acr_pools_t *p = store(&rc, ACR_POOL_QUEUE, 3);
    for (int i = 0; i < 4; i++)
        ask(p, i % 2 ? "w2" : "w1", ACR_POOL_OP_NEXT, (uint64_t)i + 1, 1, -1, -1, 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rc.r[i].rep.row_len, 1);
        assert_int_equal(rc.r[i].row[0], i);
        assert_int_equal(rc.r[i].rep.row_id, -1);
    }
    assert_null(rc.r[3].rep.row);
    assert_string_equal(rc.r[3].error, "exhausted");
    assert_int_equal(stat0(p).available, 0);
    acr_pools_test_start(p); /* a new test starts over */
    ask(p, "w1", ACR_POOL_OP_NEXT, 9, 1, -1, -1, 0);
    assert_int_equal(rc.r[4].row[0], 0);
    /* acquire on a queue pool is refused */
    ask(p, "w1", ACR_POOL_OP_ACQUIRE, 10, 1, -1, -1, 0);
    assert_non_null(strstr(rc.r[5].error, "lease pools"));
    acr_pools_free(p);

    p = store(&rc, ACR_POOL_CIRCULAR, 3);
    for (int i = 0; i < 7; i++) ask(p, "w1", ACR_POOL_OP_NEXT, (uint64_t)i + 1, 1, -1, -1, 0);
    for (int i = 0; i < 7; i++) assert_int_equal(rc.r[i].row[0], i % 3);
    acr_pools_free(p);

    p = store(&rc, ACR_POOL_RANDOM, 4);
    acr_pools_seed(p, 42);
    int seen[4] = {0};
    for (int i = 0; i < 60; i++) {
        ask(p, "w1", ACR_POOL_OP_NEXT, (uint64_t)i + 1, 1, -1, -1, 0);
        int v = rc.r[rc.n - 1].row[0];
        assert_true(v >= 0 && v < 4);
        seen[v]++;
        rc.n = 0;
    }
    for (int i = 0; i < 4; i++) assert_true(seen[i] > 0);
    /* next on a lease pool, size, an unknown pool */
    acr_pools_free(p);
    p = store(&rc, ACR_POOL_LEASE, 2);
    ask(p, "w1", ACR_POOL_OP_NEXT, 1, 1, -1, -1, 0);
    assert_non_null(strstr(rc.r[0].error, "lease pool"));
    ask(p, "w1", ACR_POOL_OP_SIZE, 2, 1, -1, -1, 0);
    assert_int_equal(rc.r[1].rep.size, 2);
    assert_int_equal(rc.r[1].rep.available, 2);
    assert_null(rc.r[1].rep.error);
    acr_msg_pool_t m = {.name = (char *)"nope", .op = ACR_POOL_OP_SIZE, .req_id = 3};
    acr_pools_request(p, "w1", &m, 0);
    assert_string_equal(rc.r[2].error, "unknown pool 'nope'");
    /* no more pools once requests began */
    size_t idx;
    assert_int_equal(acr_pools_add(p, "late", ACR_POOL_LEASE, &idx), -EBUSY);
    acr_pools_free(p);
}

/* ---- acrida.pool on the master's Lua state ---- */

static int run_lua(lua_State *L, const char *src, char *err, size_t errlen)
{
    if (luaL_loadbuffer(L, src, strlen(src), "@scen.lua") != 0 || lua_pcall(L, 0, 0, 0) != 0) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    return 0;
}

static void test_declare(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_pools_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/acc.csv", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("user,password\nalice,\"a,1\"\nbob,b2\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/bad.csv", dir);
    f = fopen(path, "w");
    fputs("a,b\n1,2\n3\n", f);
    fclose(f);

    recorder_t rc = {0};
    acr_pools_t *p = acr_pools_new(on_reply, &rc);
    lua_State *L = luaL_newstate();
    char err[512];
    assert_int_equal(acr_scenario_open(L, "master", err, sizeof err), 0);
    assert_int_equal(acr_pools_open(L, p, dir), 0);
    assert_int_equal(run_lua(L,
                             "local a = acrida.pool('acc', {csv = 'acc.csv'})\n"
                             "assert(a.name == 'acc' and a.mode == 'lease')\n"
                             "acrida.pool('u', {rows = {{url = '/a'}, {url = '/b', n = 2}}, "
                             "mode = 'queue'})\n",
                             err, sizeof err),
                     0);
    assert_int_equal(acr_pools_count(p), 2);
    acr_pool_stat_t s;
    acr_pools_stat(p, 0, &s);
    assert_string_equal(s.name, "acc");
    assert_int_equal(s.size, 2);
    acr_pools_stat(p, 1, &s);
    assert_int_equal(s.mode, ACR_POOL_QUEUE);
    assert_int_equal(s.size, 2);
    /* the first CSV row is {user = "alice", password = "a,1"} */
    acr_msg_pool_t m = {.name = (char *)"acc",
                        .op = ACR_POOL_OP_ACQUIRE,
                        .req_id = 1,
                        .user = 1,
                        .row_id = -1,
                        .timeout = -1};
    acr_pools_request(p, "w", &m, 0);
    assert_int_equal(rc.n, 1);
    assert_int_equal(acr_lua_value_push(L, rc.r[0].rep.row, rc.r[0].rep.row_len, err, sizeof err),
                     0);
    lua_getfield(L, -1, "password");
    assert_string_equal(lua_tostring(L, -1), "a,1");
    lua_pop(L, 2);
    acr_pools_free(p);
    lua_close(L);

    static const struct {
        const char *src, *want;
    } bad[] = {
        {"acrida.pool('x', {rows = {}, mode = 'lifo'})",
         "scen.lua:1: acrida.pool('x'): unknown mode 'lifo' (lease, queue, circular or random)"},
        {"acrida.pool('x', {})",
         "scen.lua:1: acrida.pool('x'): give exactly one of csv = \"file.csv\" or rows = {...}"},
        {"acrida.pool('x', {rows = {1}})", "scen.lua:1: acrida.pool('x'): rows[1] is a number, "
                                           "not a table"},
        {"acrida.pool('x', {rows = {}})\nacrida.pool('x', {rows = {}})",
         "scen.lua:2: acrida.pool: pool 'x' is declared twice"},
        {"acrida.pool('x', {rows = {{f = print}}})",
         "scen.lua:1: acrida.pool: rows[1].f is a function, which cannot be sent"},
        {"acrida.pool('x', {csv = 'missing.csv'})", "cannot open: No such file or directory"},
        {"acrida.pool('x', {csv = 'bad.csv'})", "bad.csv:3: record has 1 field, the header has 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = acr_pools_new(on_reply, &rc);
        L = luaL_newstate();
        assert_int_equal(acr_scenario_open(L, "master", err, sizeof err), 0);
        assert_int_equal(acr_pools_open(L, p, dir), 0);
        assert_int_equal(run_lua(L, bad[i].src, err, sizeof err), -1);
        if (!strstr(err, bad[i].want)) fail_msg("error '%s' lacks '%s'", err, bad[i].want);
        lua_close(L);
        acr_pools_free(p);
    }
    snprintf(path, sizeof path, "%s/acc.csv", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/bad.csv", dir);
    unlink(path);
    rmdir(dir);
}

static void test_messages(void **state)
{
    (void)state;
    acr_buf_t b = {0};
    acr_msg_t m;
    char err[256];
    assert_int_equal(acr_msg_encode_pool_req(&b, "acc", ACR_POOL_OP_ACQUIRE, 7, 3, -1, 2.5, "w1"),
                     0);
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof err), 0);
    assert_int_equal(m.type, ACR_MSG_POOL_REQ);
    assert_string_equal(m.pool.name, "acc");
    assert_int_equal(m.pool.op, ACR_POOL_OP_ACQUIRE);
    assert_int_equal(m.pool.req_id, 7);
    assert_int_equal(m.pool.user, 3);
    assert_int_equal(m.pool.row_id, -1);
    assert_true(m.pool.timeout == 2.5);
    acr_msg_free(&m);
    acr_buf_reset(&b);
    const char row[] = "\x81\xa1k\xa1v"; /* {"k": "v"} */
    assert_int_equal(acr_msg_encode_pool_rep(&b, 7, row, 5, 4, 10, 3, NULL, "w1"), 0);
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof err), 0);
    assert_int_equal(m.type, ACR_MSG_POOL_REP);
    assert_int_equal(m.pool.row_id, 4);
    assert_int_equal(m.pool.size, 10);
    assert_int_equal(m.pool.available, 3);
    assert_null(m.pool.error);
    assert_int_equal(m.data_len, 5);
    assert_memory_equal(m.data, row, 5);
    acr_msg_free(&m);
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_pool_rep(&b, 8, NULL, 0, -1, 10, 0, "timeout", "w1"), 0);
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof err), 0);
    assert_null(m.data);
    assert_string_equal(m.pool.error, "timeout");
    acr_msg_free(&m);
    /* a release without row_id, an unknown op, a negative timeout: refused */
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_pool_req(&b, "acc", ACR_POOL_OP_RELEASE, 0, 3, -1, -1, "w1"),
                     0);
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof err), -EPROTO);
    assert_string_equal(err, "acrida_pool_req: 'row_id' missing for a release");
    acr_buf_reset(&b);
    assert_int_equal(acr_msg_encode_pool_req(&b, "", ACR_POOL_OP_SIZE, 0, 3, -1, -1, "w1"), 0);
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof err), -EPROTO);
    assert_string_equal(err, "acrida_pool_req: 'pool' must be 1 to 256 bytes");
    assert_true(acr_msg_type_is_builtin("acrida_pool_req"));
    acr_buf_free(&b);
}

/* ---- the worker's self-fencing ---- */

#define WREQ_MAX 32

typedef struct wfx {
    uv_loop_t loop;
    acr_stats_t *stats;
    acr_rt_t *rt;
    acr_msg_t req[WREQ_MAX]; /**< the pool requests the runtime sent, decoded */
    size_t nreq;
    size_t want; /**< acquires_sent: how many acquire requests to wait for */
    int stopped, closed;
} wfx_t;

static int wsend(const void *frame, size_t len, void *ud)
{
    wfx_t *f = ud;
    char err[256];
    assert_true(f->nreq < WREQ_MAX);
    assert_int_equal(acr_msg_decode(frame, len, &f->req[f->nreq], err, sizeof err), 0);
    f->nreq++;
    return 0;
}

/* The first request of @op by @user after index @from, or NULL. */
static const acr_msg_t *wfind(const wfx_t *f, size_t from, acr_pool_op_t op, uint64_t user)
{
    for (size_t i = from; i < f->nreq; i++)
        if (f->req[i].pool.op == op && (user == 0 || f->req[i].pool.user == user))
            return &f->req[i];
    return NULL;
}

static bool acquires_sent(void *arg)
{
    wfx_t *f = arg;
    size_t n = 0;
    for (size_t i = 0; i < f->nreq; i++) n += f->req[i].pool.op == ACR_POOL_OP_ACQUIRE;
    return n >= f->want;
}

static uint64_t fenced_rows(wfx_t *f)
{
    size_t n;
    uint64_t c = 0;
    acr_stats_exception_t *const *ex = acr_stats_exceptions(f->stats, &n);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(strstr(ex[i]->msg, "lease lost: no word from the master for "));
        assert_non_null(strstr(ex[i]->msg, " s; user Holder restarted"));
        c += ex[i]->count;
    }
    return c;
}

static bool one_fenced(void *arg)
{
    return fenced_rows(arg) >= 1;
}

/* Answers request @q with row {n = @n} (row id @n). */
static void wgrant(wfx_t *f, const acr_msg_t *q, int n)
{
    acr_buf_t b = {0};
    acr_msg_t m;
    char err[256];
    unsigned char row[] = {0x81, 0xa1, 'n', (unsigned char)n}; /* {"n": n}, 0 <= n < 128 */
    assert_int_equal(
        acr_msg_encode_pool_rep(&b, q->pool.req_id, row, sizeof row, n, 2, 0, NULL, "master"), 0);
    assert_int_equal(acr_msg_decode(b.data, b.len, &m, err, sizeof err), 0);
    acr_rt_pools_on_reply(f->rt, &m);
    acr_msg_free(&m);
    acr_buf_free(&b);
}

static void wstopped(acr_rt_t *rt, void *ud)
{
    (void)rt;
    ((wfx_t *)ud)->stopped = 1;
}

static void wclosed(void *ud)
{
    ((wfx_t *)ud)->closed = 1;
}

static uint32_t leases_held(wfx_t *f)
{
    uint32_t n = 0;
    for (acr_list_t *l = f->rt->classes[0].users.next; l != &f->rt->classes[0].users; l = l->next)
        n += acr_list_entry(l, acr__user_t, link)->nleases;
    return n;
}

static int lua_global_int(wfx_t *f, const char *name)
{
    lua_State *L = acr_rt_lua(f->rt);
    lua_getglobal(L, name);
    int v = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    return v;
}

static void test_worker_fencing(void **state)
{
    (void)state;
    static const char src[] = "local acrida = require 'acrida'\n"
                              "local acc = acrida.pool('acc', { rows = { {n = 1}, {n = 2} } })\n"
                              "STOPS, HELD = 0, 0\n"
                              "acrida.user { name = 'Holder', wait_time = acrida.constant(0.01),\n"
                              "  on_start = function(self) self.row = acc:acquire() end,\n"
                              "  on_stop = function(self) STOPS = STOPS + 1 end,\n"
                              "  tasks = { function(self) HELD = HELD + 1 end } }\n";
    wfx_t *f = calloc(1, sizeof(*f));
    char err[512];
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->stats = acr_stats_new(acr_now());
    acr_rt_config_t rc = {.loop = &f->loop, .stats = f->stats, .node_id = "test_node"};
    f->rt = acr_rt_new(&rc, err, sizeof err);
    assert_non_null(f->rt);
    if (acr_rt_load_string(f->rt, "fence.lua", src, sizeof src - 1, err, sizeof err) != 0)
        fail_msg("load: %s", err);
    acr_rt_pools_set_sender(f->rt, wsend, f);
    acr_rt_pools_contact(f->rt, acr_mono_s());
    assert_int_equal(acr_rt_set_class_users(f->rt, 0, 2), 0);
    f->want = 2;
    run_until_pred(&f->loop, acquires_sent, f, "both users' acquire");
    const acr_msg_t *a1 = wfind(f, 0, ACR_POOL_OP_ACQUIRE, 1),
                    *a2 = wfind(f, 0, ACR_POOL_OP_ACQUIRE, 2);
    assert_non_null(a1);
    assert_non_null(a2);
    wgrant(f, a1, 1); /* user 1 holds row 1, user 2 waits */
    assert_int_equal(leases_held(f), 1);

    /* The master silent for 3 s: user 1's next resume (after its 10 ms wait) fences it first. */
    size_t before = f->nreq;
    int held = lua_global_int(f, "HELD");
    acr_rt_pools_contact(f->rt, acr_mono_s() - 3.0);
    run_until_pred(&f->loop, one_fenced, f, "the lease holder fenced");
    assert_int_equal(fenced_rows(f), 1);
    assert_int_equal(lua_global_int(f, "HELD"), held); /* not one more task with the row */
    assert_int_equal(lua_global_int(f, "STOPS"), 0);   /* no on_stop: it may use the row */
    assert_int_equal(acr_rt_user_count(f->rt), 2);     /* a fresh user in its place */
    assert_int_equal(leases_held(f), 0);
    assert_non_null(wfind(f, before, ACR_POOL_OP_RELEASE_USER, 1));
    assert_null(wfind(f, before, ACR_POOL_OP_RELEASE, 0));      /* never a plain release */
    assert_null(wfind(f, before, ACR_POOL_OP_RELEASE_USER, 2)); /* the waiter holds nothing */
    f->want = 3;
    run_until_pred(&f->loop, acquires_sent, f, "the new user's acquire");
    const acr_msg_t *a3 = wfind(f, before, ACR_POOL_OP_ACQUIRE, 3);
    assert_non_null(a3);

    /* The message that ends the silence: user 2's acquire is 3 s old (as if sent before a freeze),
     * so the grant queued for it may be stale: user 2 is fenced before the message is handled;
     * user 3 asked just now and keeps waiting. */
    for (acr_list_t *l = f->rt->classes[0].users.next; l != &f->rt->classes[0].users; l = l->next) {
        acr__user_t *u = acr_list_entry(l, acr__user_t, link);
        if (u->pool_uid == 2) u->acquire_sent = acr_mono_s() - 3.0;
    }
    before = f->nreq;
    acr_rt_pools_contact(f->rt, acr_mono_s());
    assert_int_equal(fenced_rows(f), 2);
    assert_int_equal(acr_rt_user_count(f->rt), 2);
    assert_non_null(wfind(f, before, ACR_POOL_OP_RELEASE_USER, 2));
    assert_null(wfind(f, before, ACR_POOL_OP_RELEASE_USER, 3));
    wgrant(f, a2, 2); /* the stale grant: matches no waiting user, dropped */
    assert_int_equal(leases_held(f), 0);
    wgrant(f, a3, 2); /* user 3's answer is used */
    assert_int_equal(leases_held(f), 1);

    acr_rt_stop_all(f->rt, wstopped, f);
    run_until(&f->loop, &f->stopped);
    acr_rt_close(f->rt, wclosed, f);
    run_until(&f->loop, &f->closed);
    unit_loop_close(&f->loop);
    for (size_t i = 0; i < f->nreq; i++) acr_msg_free(&f->req[i]);
    acr_stats_free(f->stats);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lease_exclusive_and_fifo),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_release_user_and_node),
        cmocka_unit_test(test_queue_circular_random),
        cmocka_unit_test(test_declare),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_worker_fencing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
