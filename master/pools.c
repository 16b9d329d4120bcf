/*
 * The master's pool store (master/pools.h): pools of msgpack rows, the leases and FIFO waits of
 * lease pools, the cursors of the others, and acrida.pool on the master's Lua state.
 *
 * A lease pool keeps its free rows in a ring (released rows go to the back, so rows rotate) and
 * its leased rows in an array (each row knows its position there), so leasing, releasing and
 * walking a worker's or a user's leases never scan the free rows.
 */
#include "master/pools.h"

#include "common/csv.h"
#include "common/list.h"
#include "common/log.h"
#include "common/lua_value.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct row {
    char *data;
    size_t len;
    char *node; /**< holder's worker (lease pools), NULL when free */
    uint64_t user;
    size_t lpos; /**< index in the pool's leased array while held */
} row_t;

typedef struct waiter {
    acr_list_t link;
    char *node;
    uint64_t user, req_id;
    double deadline; /**< monotonic s; < 0 = none */
} waiter_t;

typedef struct pool {
    char *name;
    acr_pool_mode_t mode;
    row_t *rows;
    size_t n, cap;
    size_t *ring; /**< lease: free row ids, ring of n slots */
    size_t head, nfree;
    size_t *leased; /**< lease: held row ids */
    size_t nleased;
    size_t cursor; /**< queue / circular: next row */
    acr_list_t waiters;
    size_t nwaiting;
    bool ready; /**< the ring was built (first request) */
} pool_t;

struct acr_pools {
    pool_t *pools;
    size_t n, cap;
    acr_pools_reply_fn reply;
    void *ud;
    uint64_t rng;
    double next_deadline; /**< no wait times out before (monotonic s); < 0 = none has a timeout */
    bool frozen;          /**< requests began: no more pools (they would move) */
};

static const char *const mode_names[] = {"lease", "queue", "circular", "random"};

const char *acr_pool_mode_name(acr_pool_mode_t m)
{
    return (unsigned)m < ACR_ARRAY_SIZE(mode_names) ? mode_names[m] : "?";
}

acr_pools_t *acr_pools_new(acr_pools_reply_fn reply, void *ud)
{
    acr_pools_t *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->reply = reply;
    p->ud = ud;
    p->next_deadline = -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    acr_pools_seed(p, (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32));
    return p;
}

void acr_pools_seed(acr_pools_t *p, uint64_t seed)
{
    p->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
}

static uint64_t rng_next(acr_pools_t *p)
{
    uint64_t x = p->rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    p->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

int acr_pools_add(acr_pools_t *p, const char *name, acr_pool_mode_t mode, size_t *idx)
{
    if (p->frozen) return -EBUSY;
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->pools[i].name, name) == 0) return -EEXIST;
    if (p->n >= ACR_POOLS_MAX) return -ENOSPC;
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 4;
        pool_t *np = realloc(p->pools, nc * sizeof(*np));
        if (!np) return -ENOMEM;
        p->pools = np;
        p->cap = nc;
    }
    pool_t *pl = &p->pools[p->n];
    memset(pl, 0, sizeof(*pl));
    pl->name = strdup(name);
    if (!pl->name) return -ENOMEM;
    pl->mode = mode;
    *idx = p->n++;
    return 0;
}

int acr_pools_add_row(acr_pools_t *p, size_t idx, const void *data, size_t len)
{
    pool_t *pl = &p->pools[idx];
    if (p->frozen) return -EBUSY;
    if (pl->n >= ACR_POOL_MAX_ROWS || len > ACR_POOL_ROW_MAX_BYTES) return -EFBIG;
    if (pl->n == pl->cap) {
        size_t nc = pl->cap ? pl->cap * 2 : 16;
        row_t *nr = realloc(pl->rows, nc * sizeof(*nr));
        if (!nr) return -ENOMEM;
        pl->rows = nr;
        pl->cap = nc;
    }
    row_t *r = &pl->rows[pl->n];
    memset(r, 0, sizeof(*r));
    r->data = malloc(len ? len : 1);
    if (!r->data) return -ENOMEM;
    memcpy(r->data, data, len);
    r->len = len;
    pl->n++;
    return 0;
}

/* Builds the free ring and the waiters' list of every pool, once: pools no longer move. */
static int prepare(acr_pools_t *p)
{
    p->frozen = true;
    for (size_t i = 0; i < p->n; i++) {
        pool_t *pl = &p->pools[i];
        if (pl->ready) continue;
        acr_list_init(&pl->waiters);
        if (pl->mode == ACR_POOL_LEASE && pl->n) {
            pl->ring = malloc(pl->n * sizeof(*pl->ring));
            pl->leased = malloc(pl->n * sizeof(*pl->leased));
            if (!pl->ring || !pl->leased) return -ENOMEM;
            for (size_t r = 0; r < pl->n; r++) pl->ring[r] = r;
            pl->nfree = pl->n;
        }
        pl->ready = true;
    }
    return 0;
}

static size_t available(const pool_t *pl)
{
    switch (pl->mode) {
    case ACR_POOL_LEASE:
        return pl->nfree;
    case ACR_POOL_QUEUE:
        return pl->n - pl->cursor;
    default:
        return pl->n;
    }
}

static void send_reply(acr_pools_t *p, const char *node, pool_t *pl, uint64_t req_id,
                       const row_t *r, int64_t row_id, const char *error)
{
    acr_pool_reply_t rep = {
        .req_id = req_id,
        .row = r ? r->data : NULL,
        .row_len = r ? r->len : 0,
        .row_id = row_id,
        .size = pl ? (int64_t)pl->n : -1,
        .available = pl ? (int64_t)available(pl) : -1,
        .error = error,
    };
    p->reply(node, &rep, p->ud);
}

static pool_t *find(acr_pools_t *p, const char *name)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->pools[i].name, name) == 0) return &p->pools[i];
    return NULL;
}

/* Takes the oldest free row of a lease pool for (@node, @user). -1 when none is free. */
static long lease(pool_t *pl, const char *node, uint64_t user)
{
    if (!pl->nfree) return -1;
    char *dup = strdup(node);
    if (!dup) return -1;
    size_t id = pl->ring[pl->head];
    pl->head = (pl->head + 1) % pl->n;
    pl->nfree--;
    row_t *r = &pl->rows[id];
    r->node = dup;
    r->user = user;
    r->lpos = pl->nleased;
    pl->leased[pl->nleased++] = id;
    return (long)id;
}

static void waiter_free(waiter_t *w)
{
    acr_list_remove(&w->link);
    free(w->node);
    free(w);
}

/* Row @id of a lease pool is free again: the oldest waiter gets it, else it joins the ring. */
static void unlease(acr_pools_t *p, pool_t *pl, size_t id)
{
    row_t *r = &pl->rows[id];
    free(r->node);
    r->node = NULL;
    size_t last = pl->leased[--pl->nleased];
    pl->leased[r->lpos] = last;
    pl->rows[last].lpos = r->lpos;
    pl->ring[(pl->head + pl->nfree) % pl->n] = id;
    pl->nfree++;
    acr_list_t *first;
    while (pl->nfree && (first = acr_list_first(&pl->waiters))) {
        waiter_t *w = acr_list_entry(first, waiter_t, link);
        long got = lease(pl, w->node, w->user);
        if (got < 0) break; /* out of memory: the wait goes on */
        pl->nwaiting--;
        acr_list_remove(&w->link);
        send_reply(p, w->node, pl, w->req_id, &pl->rows[got], got, NULL);
        waiter_free(w);
    }
}

static void op_acquire(acr_pools_t *p, pool_t *pl, const char *node, const acr_msg_pool_t *req,
                       double now)
{
    long got = lease(pl, node, req->user);
    if (got >= 0) {
        send_reply(p, node, pl, req->req_id, &pl->rows[got], got, NULL);
        return;
    }
    if (req->timeout == 0 || pl->n == 0) {
        send_reply(p, node, pl, req->req_id, NULL, -1, pl->n ? "timeout" : "empty pool");
        return;
    }
    waiter_t *w = calloc(1, sizeof(*w));
    if (w) w->node = strdup(node);
    if (!w || !w->node) {
        free(w);
        send_reply(p, node, pl, req->req_id, NULL, -1, "out of memory on the master");
        return;
    }
    w->user = req->user;
    w->req_id = req->req_id;
    w->deadline = req->timeout > 0 ? now + req->timeout : -1;
    acr_list_push_back(&pl->waiters, &w->link);
    pl->nwaiting++;
    if (w->deadline >= 0 && (p->next_deadline < 0 || w->deadline < p->next_deadline))
        p->next_deadline = w->deadline;
}

static void op_next(acr_pools_t *p, pool_t *pl, const char *node, uint64_t req_id)
{
    size_t id;
    if (pl->n == 0) {
        send_reply(p, node, pl, req_id, NULL, -1, "empty pool");
        return;
    }
    switch (pl->mode) {
    case ACR_POOL_QUEUE:
        if (pl->cursor >= pl->n) {
            send_reply(p, node, pl, req_id, NULL, -1, "exhausted");
            return;
        }
        id = pl->cursor++;
        break;
    case ACR_POOL_CIRCULAR:
        id = pl->cursor;
        pl->cursor = (pl->cursor + 1) % pl->n;
        break;
    default:
        id = (size_t)(rng_next(p) % pl->n);
        break;
    }
    send_reply(p, node, pl, req_id, &pl->rows[id], -1, NULL);
}

/* Releases what (@node, @user) holds in @pl and drops its waits; @user UINT64_MAX = every user
 * of @node. */
static void release_holder(acr_pools_t *p, pool_t *pl, const char *node, uint64_t user)
{
    if (pl->mode != ACR_POOL_LEASE) return;
    acr_list_t *n = pl->waiters.next;
    while (n != &pl->waiters) {
        waiter_t *w = acr_list_entry(n, waiter_t, link);
        n = n->next;
        if (strcmp(w->node, node) == 0 && (user == UINT64_MAX || w->user == user)) {
            pl->nwaiting--;
            waiter_free(w);
        }
    }
    for (size_t i = pl->nleased; i-- > 0;) {
        if (i >= pl->nleased) continue; /* unlease may have moved entries */
        row_t *r = &pl->rows[pl->leased[i]];
        if (strcmp(r->node, node) == 0 && (user == UINT64_MAX || r->user == user))
            unlease(p, pl, pl->leased[i]);
    }
}

static const char *check_op(const pool_t *pl, acr_pool_op_t op)
{
    bool lease_pool = pl->mode == ACR_POOL_LEASE;
    if (op == ACR_POOL_OP_NEXT && lease_pool)
        return "next() is for queue, circular and random pools; this is a lease pool (acquire)";
    if ((op == ACR_POOL_OP_ACQUIRE || op == ACR_POOL_OP_RELEASE) && !lease_pool)
        return "acquire() and release() are for lease pools; this pool's mode has next()";
    return NULL;
}

void acr_pools_request(acr_pools_t *p, const char *node, const acr_msg_pool_t *req, double now)
{
    char err[ACR_MSG_POOL_NAME_MAX + 64];
    bool answers = req->op != ACR_POOL_OP_RELEASE && req->op != ACR_POOL_OP_RELEASE_USER;
    if (prepare(p) < 0) {
        if (answers)
            send_reply(p, node, NULL, req->req_id, NULL, -1, "out of memory on the master");
        return;
    }
    pool_t *pl = find(p, req->name);
    if (!pl) {
        snprintf(err, sizeof err, "unknown pool '%s'", req->name);
        if (answers) send_reply(p, node, NULL, req->req_id, NULL, -1, err);
        return;
    }
    const char *bad = check_op(pl, req->op);
    if (bad) {
        if (answers) send_reply(p, node, pl, req->req_id, NULL, -1, bad);
        return;
    }
    switch (req->op) {
    case ACR_POOL_OP_ACQUIRE:
        op_acquire(p, pl, node, req, now);
        break;
    case ACR_POOL_OP_NEXT:
        op_next(p, pl, node, req->req_id);
        break;
    case ACR_POOL_OP_SIZE:
        send_reply(p, node, pl, req->req_id, NULL, -1, NULL);
        break;
    case ACR_POOL_OP_RELEASE: {
        row_t *r = req->row_id >= 0 && (size_t)req->row_id < pl->n ? &pl->rows[req->row_id] : NULL;
        if (r && r->node && strcmp(r->node, node) == 0 && r->user == req->user)
            unlease(p, pl, (size_t)req->row_id);
        else
            ACR_WARN("pool '%s': worker %s released row %lld, which its user %llu does not hold",
                     ACR_ESC(pl->name), ACR_ESC(node), (long long)req->row_id,
                     (unsigned long long)req->user);
        break;
    }
    case ACR_POOL_OP_RELEASE_USER:
        release_holder(p, pl, node, req->user);
        break;
    }
}

void acr_pools_expire(acr_pools_t *p, double now)
{
    if (p->next_deadline < 0 || now < p->next_deadline) return;
    double first = -1;
    for (size_t i = 0; i < p->n; i++) {
        pool_t *pl = &p->pools[i];
        if (!pl->ready) continue;
        acr_list_t *n = pl->waiters.next;
        while (n != &pl->waiters) {
            waiter_t *w = acr_list_entry(n, waiter_t, link);
            n = n->next;
            if (w->deadline < 0) continue;
            if (w->deadline > now) {
                if (first < 0 || w->deadline < first) first = w->deadline;
                continue;
            }
            pl->nwaiting--;
            acr_list_remove(&w->link);
            send_reply(p, w->node, pl, w->req_id, NULL, -1, "timeout");
            waiter_free(w);
        }
    }
    p->next_deadline = first;
}

void acr_pools_release_node(acr_pools_t *p, const char *node)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->pools[i].ready) release_holder(p, &p->pools[i], node, UINT64_MAX);
}

void acr_pools_test_start(acr_pools_t *p)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->pools[i].mode == ACR_POOL_QUEUE) p->pools[i].cursor = 0;
}

void acr_pools_test_stop(acr_pools_t *p)
{
    for (size_t i = 0; i < p->n; i++) {
        pool_t *pl = &p->pools[i];
        if (!pl->ready || pl->mode != ACR_POOL_LEASE) continue;
        acr_list_t *n;
        while ((n = acr_list_first(&pl->waiters))) {
            waiter_t *w = acr_list_entry(n, waiter_t, link);
            pl->nwaiting--;
            acr_list_remove(&w->link);
            send_reply(p, w->node, pl, w->req_id, NULL, -1, "test stopped");
            waiter_free(w);
        }
        while (pl->nleased) unlease(p, pl, pl->leased[pl->nleased - 1]);
    }
}

size_t acr_pools_count(const acr_pools_t *p)
{
    return p->n;
}

void acr_pools_stat(const acr_pools_t *p, size_t i, acr_pool_stat_t *out)
{
    const pool_t *pl = &p->pools[i];
    out->name = pl->name;
    out->mode = pl->mode;
    out->size = pl->n;
    out->available =
        pl->ready ? available(pl) : (pl->mode == ACR_POOL_QUEUE ? pl->n - pl->cursor : pl->n);
    out->leased = pl->nleased;
    out->waiting = pl->nwaiting;
}

void acr_pools_free(acr_pools_t *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->n; i++) {
        pool_t *pl = &p->pools[i];
        if (pl->ready) {
            acr_list_t *n;
            while ((n = acr_list_first(&pl->waiters)))
                waiter_free(acr_list_entry(n, waiter_t, link));
        }
        for (size_t r = 0; r < pl->n; r++) {
            free(pl->rows[r].data);
            free(pl->rows[r].node);
        }
        free(pl->rows);
        free(pl->ring);
        free(pl->leased);
        free(pl->name);
    }
    free(p->pools);
    free(p);
}

/* ---- acrida.pool on the master ---- */

#define POOLS_KEY "acrida.pools"
#define BASEDIR_KEY "acrida.pools.dir"

/* Encodes the table at the top of @L as pool @idx's next row; raises on failure. */
static void add_lua_row(lua_State *L, acr_pools_t *p, size_t idx, const char *what)
{
    acr_buf_t b = {0};
    char err[256];
    int rc = acr_lua_value_encode(L, -1, what, &b, err, sizeof err);
    if (rc == 0) {
        rc = acr_pools_add_row(p, idx, b.data, b.len);
        if (rc == -EFBIG)
            snprintf(err, sizeof err, "%s: more than %d rows or a row over %d bytes", what,
                     ACR_POOL_MAX_ROWS, ACR_POOL_ROW_MAX_BYTES);
        else if (rc < 0)
            snprintf(err, sizeof err, "out of memory");
    }
    acr_buf_free(&b);
    if (rc < 0) luaL_error(L, "acrida.pool: %s", err);
}

static void load_csv(lua_State *L, acr_pools_t *p, size_t idx, const char *file)
{
    char path[4096];
    lua_getfield(L, LUA_REGISTRYINDEX, BASEDIR_KEY);
    const char *dir = lua_tostring(L, -1);
    if (file[0] == '/' || !dir || !*dir)
        snprintf(path, sizeof path, "%s", file);
    else
        snprintf(path, sizeof path, "%s/%s", dir, file);
    lua_pop(L, 1);
    acr_csv_t t;
    char err[512];
    if (acr_csv_read_file(path, &t, err, sizeof err) < 0) luaL_error(L, "acrida.pool: %s", err);
    char what[64];
    for (size_t r = 0; r < t.nrows; r++) {
        lua_createtable(L, 0, (int)t.ncols);
        for (size_t c = 0; c < t.ncols; c++) {
            lua_pushstring(L, t.cells[r * t.ncols + c]);
            lua_setfield(L, -2, t.cols[c]);
        }
        snprintf(what, sizeof what, "row %zu", r + 1);
        acr_buf_t b = {0};
        char eerr[256];
        int rc = acr_lua_value_encode(L, -1, what, &b, eerr, sizeof eerr);
        if (rc == 0) rc = acr_pools_add_row(p, idx, b.data, b.len);
        acr_buf_free(&b);
        lua_pop(L, 1);
        if (rc < 0) {
            acr_csv_free(&t);
            luaL_error(L, "acrida.pool: %s: record %d: %s", path, (int)r + 1,
                       rc == -EFBIG ? "more rows than the limit or a row too large"
                                    : "cannot store the row");
        }
    }
    acr_csv_free(&t);
}

/* acrida.pool(name, {csv = "f.csv" | rows = {...}, mode = "lease"}) on the master. */
static int l_pool(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, POOLS_KEY);
    acr_pools_t *p = lua_touserdata(L, -1);
    lua_pop(L, 1);
    size_t nlen;
    const char *name = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &nlen) : NULL;
    if (!name || nlen == 0 || nlen > ACR_MSG_POOL_NAME_MAX || strlen(name) != nlen)
        return luaL_error(L, "acrida.pool: the name must be a string of 1 to %d bytes",
                          ACR_MSG_POOL_NAME_MAX);
    if (!lua_istable(L, 2))
        return luaL_error(L, "acrida.pool('%s', opts): opts must be a table with csv or rows",
                          name);
    lua_getfield(L, 2, "mode");
    lua_getfield(L, 2, "csv");
    lua_getfield(L, 2, "rows");
    acr_pool_mode_t mode = ACR_POOL_LEASE;
    if (!lua_isnil(L, 3)) {
        const char *m = lua_type(L, 3) == LUA_TSTRING ? lua_tostring(L, 3) : "";
        size_t i;
        for (i = 0; i < ACR_ARRAY_SIZE(mode_names); i++)
            if (strcmp(m, mode_names[i]) == 0) break;
        if (i == ACR_ARRAY_SIZE(mode_names))
            return luaL_error(L,
                              "acrida.pool('%s'): unknown mode '%s' (lease, queue, circular or "
                              "random)",
                              name, lua_type(L, 3) == LUA_TSTRING ? m : luaL_typename(L, 3));
        mode = (acr_pool_mode_t)i;
    }
    bool csv = !lua_isnil(L, 4), rows = !lua_isnil(L, 5);
    if (csv == rows)
        return luaL_error(L,
                          "acrida.pool('%s'): give exactly one of csv = \"file.csv\" or rows = "
                          "{...}",
                          name);
    if (csv && lua_type(L, 4) != LUA_TSTRING)
        return luaL_error(L, "acrida.pool('%s'): csv must be a file name", name);
    if (rows && !lua_istable(L, 5))
        return luaL_error(L, "acrida.pool('%s'): rows must be a list of tables", name);
    size_t idx;
    int rc = acr_pools_add(p, name, mode, &idx);
    if (rc == -EEXIST) return luaL_error(L, "acrida.pool: pool '%s' is declared twice", name);
    if (rc == -ENOSPC) return luaL_error(L, "acrida.pool: more than %d pools", ACR_POOLS_MAX);
    if (rc == -EBUSY)
        return luaL_error(L, "acrida.pool: pools are declared when the scenario loads");
    if (rc < 0) return luaL_error(L, "acrida.pool: out of memory");
    if (csv) {
        load_csv(L, p, idx, lua_tostring(L, 4));
    } else {
        size_t n = lua_objlen(L, 5);
        char what[64];
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, 5, (int)i);
            if (!lua_istable(L, -1))
                return luaL_error(L, "acrida.pool('%s'): rows[%d] is a %s, not a table", name,
                                  (int)i, luaL_typename(L, -1));
            snprintf(what, sizeof what, "rows[%zu]", i);
            add_lua_row(L, p, idx, what);
            lua_pop(L, 1);
        }
    }
    acr_pool_stat_t st;
    acr_pools_stat(p, idx, &st);
    ACR_DEBUG("pool '%s' (%s): %zu rows", ACR_ESC(name), mode_names[mode], st.size);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, mode_names[mode]);
    lua_setfield(L, -2, "mode");
    return 1;
}

int acr_pools_open(lua_State *L, acr_pools_t *p, const char *base_dir)
{
    lua_pushlightuserdata(L, p);
    lua_setfield(L, LUA_REGISTRYINDEX, POOLS_KEY);
    lua_pushstring(L, base_dir ? base_dir : "");
    lua_setfield(L, LUA_REGISTRYINDEX, BASEDIR_KEY);
    lua_getglobal(L, "acrida");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return -EINVAL;
    }
    lua_pushcfunction(L, l_pool);
    lua_setfield(L, -2, "pool");
    lua_pop(L, 1);
    return 0;
}
