/*
 * The worker side of the data pools (worker/pools.h): acrida.pool on the worker, the pool
 * object's methods, the requests waiting for the master's answer and the rows each user holds.
 *
 * State: one full userdata (collected with the Lua state) holding the sender and the pending
 * requests; in the registry, the declared pools (name -> mode) and the rows held per user
 * (pool uid -> {[row table] = {pool, row_id}}). A user gets its pool uid, unique in this worker
 * process, on its first pool call (acr__user_t.pool_uid).
 *
 * A request is sent, the user's coroutine yields (ACR__WAIT_POOL) and the answer resumes it.
 * When the coroutine is dropped first (the user stops, or leaves for on_stop), its pending
 * requests are orphaned and their answers ignored; rows the master leased in the meantime are
 * returned by the user's release_user when the user is gone.
 *
 * Self-fencing. The master gives a worker's leases to other users once it has not heard from
 * that worker for 3 s (master/core/registry.c, MISSING_AFTER_S), while the worker, frozen
 * (SIGSTOP, a paused VM) or cut off, still believes it holds them. The classic lease rule
 * applies: the holder must consider a lease lost before the grantor can reassign it. The worker
 * cannot read the master's clock, but it hears the master, which sends a heartbeat every second
 * to each live acrida worker: a leased row is used only while the last word from the master
 * (worker.c calls acr_rt_pools_contact for each message) is at most ACR__LEASE_FENCE_S = 2 s old.
 * Why 2 s: the worker sends its own heartbeat every second, so its last message before it fell
 * silent at F left at F - 1 s or later and the master gives the rows away after F + 2 s plus that
 * message's delivery, at its next 250 ms liveness tick; the worker's last word from the master
 * came by F, so 2 s after it is no later than the master's 3 s: the margin is the delivery time
 * and the tick. On the other side a live connection sees the master every ~1 s, which leaves a
 * second for a slow master loop before a false fence.
 *
 * The check runs before any user is resumed (acr__user_resume calls acr__pools_check, so after a
 * SIGCONT the users' timers, which libuv runs before it reads the master's socket, meet it first),
 * every ACR__FENCE_CHECK_MS, and in acr_rt_pools_contact before a message that ends a silence is
 * handled: messages queued during the silence are old, and their grants may be of rows the
 * master has reassigned since. A fenced user (acr__users_fence) is killed without on_stop, an
 * exception row says so, its leases are forgotten and release_user sent (the master ignores the
 * releases of rows now held by others: it checks node and user), and a fresh user takes its
 * place. At the message that ends a silence, users whose acquire left more than 2 s earlier are
 * fenced too: its answer may be one of those old grants; an answer to a younger acquire was sent
 * after the master got it, so no later than 2 s ago. Answers to a fenced user's requests match no
 * pending request any more and are dropped.
 */
#include "worker/pools.h"

#include "common/log.h"
#include "common/lua_value.h"
#include "worker/runtime_int.h"

#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STATE_KEY "acrida.pools.state"
#define DECL_KEY "acrida.pools.decl"
#define HELD_KEY "acrida.pools.held"
#define POOL_MT "acrida.pool"

/* What an answer resumes the user with. */
typedef enum { RES_ROW = 0, RES_SIZE, RES_AVAILABLE } result_t;

typedef struct pending {
    acr_list_t link;
    uint64_t req_id;
    acr__user_t *u; /**< NULL once orphaned */
    result_t result;
    char name[ACR_MSG_POOL_NAME_MAX + 1];
} pending_t;

struct acr__pools {
    acr_rt_t *rt;
    acr_rt_pool_send_fn send;
    void *send_ud;
    uint64_t next_req, next_uid;
    acr_list_t pending;
    acr_buf_t buf;
    double contact;   /**< monotonic s of the last message from the master, 0 before the first */
    uint64_t nleases; /**< rows of lease pools held by this worker's users */
    bool has_lease;   /**< the scenario declares a lease pool */
};

static const char *const modes[] = {"lease", "queue", "circular", "random"};

/* The methods as the scenario sees them: each C function runs under pcall (LuaJIT yields across
 * it), so its errors and the master's hard errors (an unknown pool, a wrong operation: nil, msg,
 * true) are raised at the scenario's own file:line. */
static const char methods_src[] = "local error, pcall = error, pcall\n"
                                  "local function wrap(f)\n"
                                  "  return function(...)\n"
                                  "    local ok, a, b, hard = pcall(f, ...)\n"
                                  "    if not ok or hard then error(ok and b or a, 2) end\n"
                                  "    if b ~= nil then return a, b end\n"
                                  "    return a\n"
                                  "  end\n"
                                  "end\n"
                                  "local m = {}\n"
                                  "for k, f in pairs(...) do m[k] = wrap(f) end\n"
                                  "return m\n";

/* Answer errors that are results (nil, err); any other is raised in the user. */
static bool soft_error(const char *e)
{
    return strcmp(e, "timeout") == 0 || strcmp(e, "exhausted") == 0 ||
           strcmp(e, "test stopped") == 0 || strcmp(e, "empty pool") == 0;
}

/* ---- requests ---- */

static int send_req(acr__pools_t *ps, const char *name, acr_pool_op_t op, uint64_t req_id,
                    uint64_t user, int64_t row_id, double timeout)
{
    if (!ps->send) return -ENOTCONN;
    acr_buf_reset(&ps->buf);
    int rc =
        acr_msg_encode_pool_req(&ps->buf, name, op, req_id, user, row_id, timeout, ps->rt->node_id);
    if (rc < 0) return rc;
    return ps->send(ps->buf.data, ps->buf.len, ps->send_ud);
}

static const char *send_error(int rc)
{
    switch (rc) {
    case -ENOTSUP:
        return "pools need an acrida master (a stock Locust master has none)";
    case -ENOTCONN:
        return "not connected to the master";
    case -ENOMEM:
        return "out of memory";
    default:
        return strerror(-rc);
    }
}

static acr__pools_t *state(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, STATE_KEY);
    acr__pools_t *ps = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return ps;
}

/* The pool object at index 1: its name and mode (raises for anything else). */
static const char *check_pool(lua_State *L, int *mode)
{
    luaL_checkudata(L, 1, POOL_MT);
    lua_getfenv(L, 1);
    lua_getfield(L, -1, "name");
    lua_getfield(L, -2, "mode");
    const char *name = lua_tostring(L, -2);
    *mode = (int)lua_tointeger(L, -1);
    lua_pop(L, 3); /* the name stays referenced by the environment table */
    return name;
}

static uint64_t user_uid(acr__pools_t *ps, acr__user_t *u)
{
    if (!u->pool_uid) u->pool_uid = ++ps->next_uid;
    return u->pool_uid;
}

/* Sends @op for the current user and suspends it until the answer. */
static int ask(lua_State *L, const char *what, const char *name, acr_pool_op_t op, double timeout,
               result_t result)
{
    acr__user_t *u = acr__rt_check_user(L, what);
    acr__pools_t *ps = state(L);
    if (acr__user_stop_due(u)) { /* told to stop now: leave instead of asking */
        u->abandon = true;
        return lua_yield(L, 0);
    }
    pending_t *pd = calloc(1, sizeof(*pd));
    if (!pd) return luaL_error(L, "%s: out of memory", what);
    pd->req_id = ++ps->next_req;
    pd->u = u;
    pd->result = result;
    snprintf(pd->name, sizeof pd->name, "%s", name);
    int rc = send_req(ps, name, op, pd->req_id, user_uid(ps, u), -1, timeout);
    if (rc < 0) {
        free(pd);
        return luaL_error(L, "%s (pool '%s'): %s", what, name, send_error(rc));
    }
    acr_list_push_back(&ps->pending, &pd->link);
    if (op == ACR_POOL_OP_ACQUIRE) u->acquire_sent = acr_mono_s();
    u->wait = ACR__WAIT_POOL;
    return lua_yield(L, 0);
}

/* pool:acquire([timeout_s]) -> row | nil, "timeout" */
static int l_acquire(lua_State *L)
{
    int mode;
    const char *name = check_pool(L, &mode);
    double timeout = -1;
    if (!lua_isnoneornil(L, 2)) {
        if (lua_type(L, 2) != LUA_TNUMBER || !(lua_tonumber(L, 2) >= 0) ||
            !isfinite(lua_tonumber(L, 2)))
            return luaL_error(L, "pool:acquire(timeout): timeout must be a number of seconds >= 0");
        timeout = lua_tonumber(L, 2);
        if (timeout > 1e9) timeout = -1;
    }
    if (mode != 0)
        return luaL_error(L, "pool '%s' is a %s pool: use pool:next() (acquire is for lease pools)",
                          name, modes[mode]);
    return ask(L, "pool:acquire()", name, ACR_POOL_OP_ACQUIRE, timeout, RES_ROW);
}

/* pool:next() -> row | nil, "exhausted" */
static int l_next(lua_State *L)
{
    int mode;
    const char *name = check_pool(L, &mode);
    if (mode == 0)
        return luaL_error(L,
                          "pool '%s' is a lease pool: use pool:acquire() and pool:release(row) "
                          "(next is for queue, circular and random pools)",
                          name);
    return ask(L, "pool:next()", name, ACR_POOL_OP_NEXT, -1, RES_ROW);
}

static int l_size(lua_State *L)
{
    int mode;
    const char *name = check_pool(L, &mode);
    (void)mode;
    return ask(L, "pool:size()", name, ACR_POOL_OP_SIZE, -1, RES_SIZE);
}

static int l_available(lua_State *L)
{
    int mode;
    const char *name = check_pool(L, &mode);
    (void)mode;
    return ask(L, "pool:available()", name, ACR_POOL_OP_SIZE, -1, RES_AVAILABLE);
}

/* pool:release(row) */
static int l_release(lua_State *L)
{
    int mode;
    const char *name = check_pool(L, &mode);
    acr__user_t *u = acr__rt_check_user(L, "pool:release(row)");
    acr__pools_t *ps = state(L);
    if (mode != 0)
        return luaL_error(L, "pool '%s' is a %s pool: rows from next() are not released", name,
                          modes[mode]);
    if (!lua_istable(L, 2)) return luaL_error(L, "release: expects the row acquire() returned");
    lua_getfield(L, LUA_REGISTRYINDEX, HELD_KEY);
    lua_rawgeti(L, -1, (int)u->pool_uid);
    if (!u->pool_uid || !lua_istable(L, -1))
        return luaL_error(L, "release: this row is not held by this user");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    if (!lua_istable(L, -1)) return luaL_error(L, "release: this row is not held by this user");
    lua_getfield(L, -1, "pool");
    lua_getfield(L, -2, "row_id");
    if (strcmp(lua_tostring(L, -2), name) != 0)
        return luaL_error(L, "release: this row is not held by this user (it is from pool '%s')",
                          lua_tostring(L, -2));
    int64_t row_id = (int64_t)lua_tonumber(L, -1);
    lua_pop(L, 3);
    lua_pushvalue(L, 2);
    lua_pushnil(L);
    lua_rawset(L, -3); /* no longer held */
    u->nleases--;
    ps->nleases--;
    int rc = send_req(ps, name, ACR_POOL_OP_RELEASE, 0, u->pool_uid, row_id, -1);
    if (rc < 0)
        ACR_WARN("pool '%s': release not sent (%s); the master frees the row when the user ends",
                 ACR_ESC(name), send_error(rc));
    lua_pop(L, 2);
    return 0;
}

static int l_tostring(lua_State *L)
{
    int mode;
    const char *name = check_pool(L, &mode);
    lua_pushfstring(L, "<acrida pool '%s' (%s)>", name, modes[mode]);
    return 1;
}

/* pool.name / pool.mode, then the methods */
static int l_index(lua_State *L)
{
    int mode;
    const char *name = check_pool(L, &mode);
    const char *k = lua_tostring(L, 2);
    if (k && strcmp(k, "name") == 0) {
        lua_pushstring(L, name);
        return 1;
    }
    if (k && strcmp(k, "mode") == 0) {
        lua_pushstring(L, modes[mode]);
        return 1;
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

/* acrida.pool(name, opts) on a worker: checks the declaration and returns the pool object (the
 * master reads the data; the worker never needs the file). */
static int l_pool(lua_State *L)
{
    size_t nlen;
    const char *name = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &nlen) : NULL;
    if (!name || nlen == 0 || nlen > ACR_MSG_POOL_NAME_MAX || strlen(name) != nlen)
        return luaL_error(L, "acrida.pool: the name must be a string of 1 to %d bytes",
                          ACR_MSG_POOL_NAME_MAX);
    if (!lua_istable(L, 2))
        return luaL_error(L, "acrida.pool('%s', opts): opts must be a table with csv or rows",
                          name);
    lua_getfield(L, 2, "mode");
    int mode = 0;
    if (!lua_isnil(L, -1)) {
        const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        for (mode = 0; mode < (int)ACR_ARRAY_SIZE(modes); mode++)
            if (strcmp(m, modes[mode]) == 0) break;
        if (mode == (int)ACR_ARRAY_SIZE(modes))
            return luaL_error(L,
                              "acrida.pool('%s'): unknown mode '%s' (lease, queue, circular or "
                              "random)",
                              name, lua_type(L, -1) == LUA_TSTRING ? m : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, DECL_KEY);
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1)) return luaL_error(L, "acrida.pool: pool '%s' is declared twice", name);
    lua_pop(L, 1);
    lua_pushinteger(L, mode);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
    if (mode == 0 && state(L)) state(L)->has_lease = true;
    lua_newuserdata(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, mode);
    lua_setfield(L, -2, "mode");
    lua_setfenv(L, -2);
    luaL_getmetatable(L, POOL_MT);
    lua_setmetatable(L, -2);
    return 1;
}

/* ---- answers ---- */

void acr_rt_pools_on_reply(acr_rt_t *rt, const acr_msg_t *m)
{
    acr__pools_t *ps = rt->pools;
    pending_t *pd = NULL;
    if (!ps) return;
    for (acr_list_t *n = ps->pending.next; n != &ps->pending; n = n->next) {
        pending_t *p = acr_list_entry(n, pending_t, link);
        if (p->req_id == m->pool.req_id) {
            pd = p;
            break;
        }
    }
    if (!pd) {
        ACR_DEBUG("pool answer %llu matches no request; ignored",
                  (unsigned long long)m->pool.req_id);
        return;
    }
    acr_list_remove(&pd->link);
    acr__user_t *u = pd->u;
    if (u) u->acquire_sent = 0;
    if (!u || !u->co_alive || u->wait != ACR__WAIT_POOL) {
        free(pd);
        return; /* orphaned: the user left; release_user returns a leased row */
    }
    lua_State *co = u->co;
    char err[256];
    int nargs;
    if (pd->result != RES_ROW) {
        int64_t v = pd->result == RES_SIZE ? m->pool.size : m->pool.available;
        if (m->pool.error) {
            lua_pushnil(co);
            lua_pushfstring(co, "pool '%s': %s", pd->name, m->pool.error);
            lua_pushboolean(co, 1);
            nargs = 3;
        } else {
            lua_pushnumber(co, (double)(v < 0 ? 0 : v));
            nargs = 1;
        }
    } else if (!m->data) {
        const char *e = m->pool.error ? m->pool.error : "no row";
        lua_pushnil(co);
        if (soft_error(e)) {
            lua_pushstring(co, e);
            nargs = 2;
        } else {
            lua_pushfstring(co, "pool '%s': %s", pd->name, e);
            lua_pushboolean(co, 1);
            nargs = 3;
        }
    } else if (acr_lua_value_push(co, m->data, m->data_len, err, sizeof err) < 0) {
        ACR_WARN("pool '%s': the master's row cannot be read: %s", ACR_ESC(pd->name),
                 ACR_ESC_LONG(err));
        lua_pushnil(co);
        lua_pushfstring(co, "bad row from the master: %s", err);
        nargs = 2;
        if (m->pool.row_id >= 0) /* give the lease back */
            send_req(ps, pd->name, ACR_POOL_OP_RELEASE, 0, u->pool_uid, m->pool.row_id, -1);
    } else {
        nargs = 1;
        if (m->pool.row_id >= 0 && lua_istable(co, -1)) { /* a lease: remember who holds it */
            lua_getfield(co, LUA_REGISTRYINDEX, HELD_KEY);
            lua_rawgeti(co, -1, (int)u->pool_uid);
            if (!lua_istable(co, -1)) {
                lua_pop(co, 1);
                lua_newtable(co);
                lua_pushvalue(co, -1);
                lua_rawseti(co, -3, (int)u->pool_uid);
            }
            lua_pushvalue(co, -3); /* the row */
            lua_createtable(co, 0, 2);
            lua_pushstring(co, pd->name);
            lua_setfield(co, -2, "pool");
            lua_pushnumber(co, (double)m->pool.row_id);
            lua_setfield(co, -2, "row_id");
            lua_rawset(co, -3);
            lua_pop(co, 2);
            u->nleases++;
            ps->nleases++;
        }
    }
    free(pd);
    acr__user_resume(u, nargs);
}

/* ---- the runtime's hooks ---- */

void acr__pools_user_left(acr__user_t *u)
{
    acr__pools_t *ps = u->rt->pools;
    u->acquire_sent = 0;
    if (!ps || !u->pool_uid) return;
    for (acr_list_t *n = ps->pending.next; n != &ps->pending; n = n->next) {
        pending_t *p = acr_list_entry(n, pending_t, link);
        if (p->u == u) p->u = NULL;
    }
}

void acr__pools_user_done(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    acr__pools_t *ps = rt->pools;
    if (!ps || !u->pool_uid) return;
    acr__pools_user_left(u);
    ps->nleases -= u->nleases;
    u->nleases = 0;
    lua_State *L = rt->L;
    lua_getfield(L, LUA_REGISTRYINDEX, HELD_KEY);
    lua_pushnil(L);
    lua_rawseti(L, -2, (int)u->pool_uid);
    lua_pop(L, 1);
    /* every lease pool: rows still held and waits still queued on the master return */
    lua_getfield(L, LUA_REGISTRYINDEX, DECL_KEY);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_tointeger(L, -1) == 0 && lua_type(L, -2) == LUA_TSTRING)
            send_req(ps, lua_tostring(L, -2), ACR_POOL_OP_RELEASE_USER, 0, u->pool_uid, -1, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* ---- self-fencing (see the file comment) ---- */

bool acr__pools_fence_due(const acr__user_t *u, double now, bool gap)
{
    if (u->nleases > 0) return true;
    return gap && u->acquire_sent > 0 && now - u->acquire_sent > ACR__LEASE_FENCE_S;
}

void acr__pools_check(acr_rt_t *rt)
{
    acr__pools_t *ps = rt->pools;
    if (!ps || ps->nleases == 0 || ps->contact <= 0) return;
    double now = acr_mono_s();
    if (now - ps->contact > ACR__LEASE_FENCE_S) acr__users_fence(rt, now - ps->contact, now, false);
}

static void fence_tick(uv_timer_t *t)
{
    acr__pools_check(acr_container_of(t, acr_rt_t, fence_timer));
}

void acr_rt_pools_contact(acr_rt_t *rt, double now)
{
    acr__pools_t *ps = rt->pools;
    if (!ps || rt->closing) return;
    if (ps->contact > 0 && now - ps->contact > ACR__LEASE_FENCE_S)
        acr__users_fence(rt, now - ps->contact, now, true);
    ps->contact = now;
    if (ps->has_lease && !rt->fence_on) {
        uv_timer_start(&rt->fence_timer, fence_tick, ACR__FENCE_CHECK_MS, ACR__FENCE_CHECK_MS);
        uv_unref((uv_handle_t *)&rt->fence_timer);
        rt->fence_on = true;
    }
}

static int l_state_gc(lua_State *L)
{
    acr__pools_t *ps = lua_touserdata(L, 1);
    acr_list_t *n;
    while ((n = acr_list_first(&ps->pending))) {
        acr_list_remove(n);
        free(acr_list_entry(n, pending_t, link));
    }
    acr_buf_free(&ps->buf);
    if (ps->rt) ps->rt->pools = NULL;
    return 0;
}

int acr__pools_open(acr_rt_t *rt)
{
    lua_State *L = rt->L;
    acr__pools_t *ps = lua_newuserdata(L, sizeof(*ps));
    memset(ps, 0, sizeof(*ps));
    ps->rt = rt;
    acr_list_init(&ps->pending);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, l_state_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, STATE_KEY);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, DECL_KEY);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, HELD_KEY);
    luaL_newmetatable(L, POOL_MT);
    if (luaL_loadbuffer(L, methods_src, sizeof(methods_src) - 1, "=[acrida pools]") != 0)
        return -EINVAL;
    lua_createtable(L, 0, 5);
    lua_pushcfunction(L, l_acquire);
    lua_setfield(L, -2, "acquire");
    lua_pushcfunction(L, l_release);
    lua_setfield(L, -2, "release");
    lua_pushcfunction(L, l_next);
    lua_setfield(L, -2, "next");
    lua_pushcfunction(L, l_size);
    lua_setfield(L, -2, "size");
    lua_pushcfunction(L, l_available);
    lua_setfield(L, -2, "available");
    if (lua_pcall(L, 1, 1, 0) != 0) return -EINVAL;
    lua_setfield(L, -2, "methods");
    lua_pushcfunction(L, l_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "acrida.pool");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    lua_getglobal(L, "acrida");
    lua_pushcfunction(L, l_pool);
    lua_setfield(L, -2, "pool");
    lua_pop(L, 1);
    rt->pools = ps;
    return 0;
}

void acr_rt_pools_set_sender(acr_rt_t *rt, acr_rt_pool_send_fn send, void *ud)
{
    if (!rt->pools) return;
    rt->pools->send = send;
    rt->pools->send_ud = ud;
}
