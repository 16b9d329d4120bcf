/*
 * The user scheduler: each simulated user is a C struct (acr__user_t) plus a Lua table (self) and
 * one coroutine at a time on the worker's libuv loop. The coroutine runs the prelude's user_main
 * (on_start, then the task loop) and, when the user stops, a fresh coroutine runs user_stop
 * (on_stop). A coroutine is anchored in the registry while alive and its state is tracked in C
 * (co_alive), since lua_resume has no guard against dead coroutines.
 *
 * Waking: a wait of 0 goes through the ready queue, drained once per loop turn by an idle handle
 * (only the users queued before the drain started), so a user without waits or I/O cannot starve
 * the loop; a longer wait uses the user's own timer.
 *
 * Stopping (acr_rt_stop_all, or fewer users asked): the user leaves the class's running list for
 * the stopping list and starts no new task. Waiting between tasks, queued, or (without a stop
 * timeout) sleeping: it leaves at once. A request in flight completes first and the task resumes
 * with its response, so the task's own code decides the verdict and runs what follows; its next
 * request, wait or yield then ends it (acr__user_stop_due), sending nothing more. With a stop
 * timeout the user may finish its current task until the deadline. on_stop then runs, bounded by
 * the stop timeout or ACR__ONSTOP_CAP_S. A reaper timer enforces the deadlines of waiting users.
 */
#include "worker/runtime_int.h"

#include "common/log.h"

#include <errno.h>
#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const user_state_names[] = {"starting", "running", "stopping", "done"};

static void user_set_state(acr__user_t *u, acr__user_state_t to)
{
    if (u->state == to) return;
    if (acr_log_enabled(ACR_LOG_DEBUG)) {
        ACR_DEBUG("user %lld (%s): %s -> %s", (long long)u->id, u->cls->name,
                  user_state_names[u->state], user_state_names[to]);
    }
    u->state = (uint8_t)to;
}

static void idle_cb(uv_idle_t *h);
static void reaper_cb(uv_timer_t *t);

/* ---- lists ---- */

static void class_unlink(acr__user_t *u)
{
    acr__class_t *c = u->cls;
    if (u->prev) {
        u->prev->next = u->next;
    } else {
        c->head = u->next;
    }
    if (u->next) {
        u->next->prev = u->prev;
    } else {
        c->tail = u->prev;
    }
    u->prev = u->next = NULL;
    c->running--;
    u->rt->nrunning--;
}

static void class_append(acr__user_t *u)
{
    acr__class_t *c = u->cls;
    u->next = NULL;
    u->prev = c->tail;
    if (c->tail) {
        c->tail->next = u;
    } else {
        c->head = u;
    }
    c->tail = u;
    c->running++;
    u->rt->nrunning++;
}

static void stopping_push(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    u->prev = NULL;
    u->next = rt->stopping;
    if (rt->stopping) rt->stopping->prev = u;
    rt->stopping = u;
    u->stopping_list = true;
    rt->nstopping++;
    /* the reaper enforces the stop deadlines, also of users that stopped themselves */
    if (!rt->reaper_on && !rt->closing) {
        uv_timer_start(&rt->reaper, reaper_cb, 50, 50);
        rt->reaper_on = true;
    }
}

static void stopping_unlink(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    if (u->prev) {
        u->prev->next = u->next;
    } else {
        rt->stopping = u->next;
    }
    if (u->next) u->next->prev = u->prev;
    u->prev = u->next = NULL;
    u->stopping_list = false;
    rt->nstopping--;
}

static void ready_remove(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    if (!u->in_ready) return;
    if (u->rprev) {
        u->rprev->rnext = u->rnext;
    } else {
        rt->rhead = u->rnext;
    }
    if (u->rnext) {
        u->rnext->rprev = u->rprev;
    } else {
        rt->rtail = u->rprev;
    }
    u->rprev = u->rnext = NULL;
    u->in_ready = false;
}

static void ready_push(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    if (u->in_ready) return; /* already queued (a wait whose yield failed left it there) */
    u->rgen = rt->rgen;
    u->rnext = NULL;
    u->rprev = rt->rtail;
    if (rt->rtail) {
        rt->rtail->rnext = u;
    } else {
        rt->rhead = u;
    }
    rt->rtail = u;
    u->in_ready = true;
    if (!uv_is_active((uv_handle_t *)&rt->idle)) uv_idle_start(&rt->idle, idle_cb);
}

/* ---- waking ---- */

static void cancel_wake(acr__user_t *u)
{
    ready_remove(u);
    if (u->timer_on) {
        uv_timer_stop(&u->timer);
        u->timer_on = false;
    }
}

static void wake(acr__user_t *u)
{
    int nargs = u->wait == ACR_WAIT_START ? 2 : 0;
    acr__user_resume(u, nargs);
}

static void timer_cb(uv_timer_t *t)
{
    acr__user_t *u = acr_container_of(t, acr__user_t, timer);
    u->timer_on = false;
    wake(u);
}

void acr__user_wait(acr__user_t *u, double seconds, acr__wait_t why)
{
    u->wait = (uint8_t)why;
    if (seconds <= 0) {
        ready_push(u);
        return;
    }
    if (seconds >= ACR__IDLE_TRIM_S) acr__lua_http_trim(u);
    double ms = ceil(seconds * 1000.0);
    if (ms > 1e12) ms = 1e12;
    uv_timer_start(&u->timer, timer_cb, (uint64_t)ms, 0);
    u->timer_on = true;
}

/* ---- lifecycle ---- */

static void maybe_stop_done(acr_rt_t *rt)
{
    if (rt->stop_done && rt->nrunning == 0 && rt->nstopping == 0) {
        void (*cb)(acr_rt_t *, void *) = rt->stop_done;
        rt->stop_done = NULL;
        cb(rt, rt->stop_ud);
    }
}

static void drop_coroutine(acr__user_t *u)
{
    cancel_wake(u);
    if (u->co_ref != LUA_NOREF) luaL_unref(u->rt->L, LUA_REGISTRYINDEX, u->co_ref);
    u->co_ref = LUA_NOREF;
    u->co = NULL;
    u->co_alive = false;
    u->wait = ACR_WAIT_NONE;
}

static void rt_release(acr_rt_t *rt);

/* The user is gone: no more Lua; handles close from the idle callback (never from inside a
 * session's own completion callback). */
static void user_done(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    if (u->state == ACR_USER_DONE) return;
    acr__lua_http_resolve_pending(u);
    drop_coroutine(u);
    if (u->stopping_list) {
        stopping_unlink(u);
    } else {
        class_unlink(u);
    }
    user_set_state(u, ACR_USER_DONE);
    if (u->client) u->client->u = NULL;
    u->client = NULL;
    if (u->self_ref != LUA_NOREF) luaL_unref(rt->L, LUA_REGISTRYINDEX, u->self_ref);
    u->self_ref = LUA_NOREF;
    acr__lua_http_free_req(u);
    u->next = rt->dead;
    rt->dead = u;
    if (!uv_is_active((uv_handle_t *)&rt->idle)) uv_idle_start(&rt->idle, idle_cb);
    maybe_stop_done(rt);
}

/* One of the user's handles closed; the memory goes with the last. */
static void user_release(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    if (--u->closes > 0) return;
    free(u);
    rt->closes--;
    rt_release(rt);
}

static void session_closed(void *ud)
{
    user_release(ud);
}

static void timer_closed(uv_handle_t *h)
{
    user_release(h->data);
}

static void close_dead(acr_rt_t *rt)
{
    while (rt->dead) {
        acr__user_t *u = rt->dead;
        rt->dead = u->next;
        u->next = NULL;
        u->closes = 1;
        rt->closes++;
        if (u->session) {
            u->closes++;
            acr_http_session_t *s = u->session;
            u->session = NULL;
            acr_http_session_close(s, true, session_closed, u);
        }
        uv_close((uv_handle_t *)&u->timer, timer_closed);
    }
}

/* Starts a coroutine running @fn_ref(self, class) at the next loop turn. */
static int begin_phase(acr__user_t *u, int fn_ref)
{
    lua_State *L = u->rt->L;
    lua_State *co = lua_newthread(L);
    if (!co) return -ENOMEM;
    u->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    u->co = co;
    lua_rawgeti(co, LUA_REGISTRYINDEX, fn_ref);
    lua_rawgeti(co, LUA_REGISTRYINDEX, u->self_ref);
    lua_rawgeti(co, LUA_REGISTRYINDEX, u->cls->ref);
    u->co_alive = true;
    acr__user_wait(u, 0, ACR_WAIT_START);
    return 0;
}

void acr__user_leave(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    acr__lua_http_resolve_pending(u);
    drop_coroutine(u);
    if (u->state == ACR_USER_DONE) return;
    if (u->state == ACR_USER_STOPPING || rt->closing) {
        user_done(u);
        return;
    }
    if (!u->stopping_list) { /* self:stop() */
        class_unlink(u);
        stopping_push(u);
    }
    u->stop_req = true;
    u->hard = false;
    user_set_state(u, ACR_USER_STOPPING);
    double cap = rt->stop_timeout > 0 ? rt->stop_timeout : ACR__ONSTOP_CAP_S;
    u->deadline = acr_mono_s() + cap;
    lua_rawgeti(rt->L, LUA_REGISTRYINDEX, u->cls->ref);
    lua_getfield(rt->L, -1, "on_stop");
    bool has_on_stop = lua_isfunction(rt->L, -1);
    lua_pop(rt->L, 2);
    if (!has_on_stop || begin_phase(u, rt->stop_ref) < 0) user_done(u);
}

bool acr__user_stop_due(acr__user_t *u)
{
    if (!u->hard && u->stop_req && u->deadline > 0 && acr_mono_s() >= u->deadline) u->hard = true;
    return u->hard;
}

void acr__user_resume(acr__user_t *u, int nargs)
{
    acr_rt_t *rt = u->rt;
    if (!u->co_alive) return; /* no resuming a dead coroutine */
    u->wait = ACR_WAIT_NONE;
    rt->current = u;
    int st = lua_resume(u->co, nargs);
    rt->current = NULL;
    if (st == LUA_YIELD) {
        if (u->abandon) {
            u->abandon = false;
            acr__user_leave(u);
        } else if (u->wait == ACR_WAIT_NONE && acr__user_stop_due(u)) {
            acr__user_leave(u); /* a plain coroutine.yield() ends a user told to stop now */
        } else if (u->wait == ACR_WAIT_NONE) {
            /* a plain coroutine.yield() from the task: treat as a zero wait */
            acr__user_wait(u, 0, ACR_WAIT_SLEEP);
        }
        return;
    }
    u->co_alive = false;
    if (st != 0) { /* cannot normally happen: the prelude catches task errors */
        const char *msg = lua_isstring(u->co, -1) ? lua_tostring(u->co, -1) : "error in user";
        acr__rt_exception(rt, u->co, msg, 0);
    }
    /* The coroutine returned: on_start failed, or on_stop finished. */
    user_done(u);
}

static void idle_cb(uv_idle_t *h)
{
    acr_rt_t *rt = acr_container_of(h, acr_rt_t, idle);
    uint64_t gen = rt->rgen++;
    while (rt->rhead && rt->rhead->rgen <= gen) {
        acr__user_t *u = rt->rhead;
        ready_remove(u);
        wake(u);
    }
    close_dead(rt);
    if (!rt->rhead && !rt->dead) uv_idle_stop(&rt->idle);
}

/* Marks @u as stopping; it leaves now or at its next chance (see the file comment). */
static void user_request_stop(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    if (u->state == ACR_USER_STOPPING || u->state == ACR_USER_DONE || u->stopping_list) return;
    class_unlink(u);
    stopping_push(u);
    u->stop_req = true;
    if (rt->stop_timeout > 0) {
        u->deadline = acr_mono_s() + rt->stop_timeout;
    } else {
        u->hard = true;
    }
    switch (u->wait) {
    case ACR_WAIT_START: /* never ran: nothing to undo */
        user_done(u);
        break;
    case ACR_WAIT_BETWEEN:
        acr__user_leave(u);
        break;
    case ACR_WAIT_SLEEP:
        if (u->hard) acr__user_leave(u);
        break;
    default: /* HTTP: the completion leaves or resumes */
        break;
    }
    if (!rt->reaper_on && rt->nstopping > 0) {
        uv_timer_start(&rt->reaper, reaper_cb, 50, 50);
        rt->reaper_on = true;
    }
}

static void reaper_cb(uv_timer_t *t)
{
    acr_rt_t *rt = acr_container_of(t, acr_rt_t, reaper);
    double now = acr_mono_s();
    acr__user_t *next;
    for (acr__user_t *u = rt->stopping; u; u = next) {
        next = u->next;
        if (u->deadline <= 0 || now < u->deadline || u->hard) continue;
        u->hard = true;
        if (u->wait == ACR_WAIT_SLEEP || u->wait == ACR_WAIT_BETWEEN || u->wait == ACR_WAIT_START) {
            /* (next may be unlinked by this only if it is u itself) */
            acr__user_leave(u);
            next = rt->stopping; /* restart: leave may have reordered the list */
            now = acr_mono_s();
        }
    }
    if (rt->nstopping == 0) {
        uv_timer_stop(&rt->reaper);
        rt->reaper_on = false;
    }
}

int acr__users_init(acr_rt_t *rt)
{
    if (uv_idle_init(rt->loop, &rt->idle) < 0) return -EIO;
    if (uv_timer_init(rt->loop, &rt->reaper) < 0) return -EIO;
    return 0;
}

static acr__user_t *user_new(acr_rt_t *rt, acr__class_t *c)
{
    lua_State *L = rt->L;
    acr__user_t *u = calloc(1, sizeof(*u));
    if (!u) return NULL;
    u->rt = rt;
    u->cls = c;
    u->co_ref = u->self_ref = LUA_NOREF;
    uv_timer_init(rt->loop, &u->timer);
    u->timer.data = u;
    rt->next_seq++;
    u->id = rt->worker_index >= 0 ? rt->worker_index * 1000000000LL + (int64_t)rt->next_seq
                                  : (int64_t)rt->next_seq;
    lua_createtable(L, 0, 3);
    lua_pushnumber(L, (lua_Number)u->id);
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, (lua_Integer)rt->worker_index);
    lua_setfield(L, -2, "worker_index");
    acr__lua_http_push_client(L, u);
    lua_setfield(L, -2, "client");
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->mt_ref);
    lua_setmetatable(L, -2);
    u->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    class_append(u);
    user_set_state(u, ACR_USER_STARTING);
    if (begin_phase(u, rt->main_ref) < 0) {
        user_done(u);
        return NULL;
    }
    return u;
}

int acr_rt_set_class_users(acr_rt_t *rt, size_t i, size_t count)
{
    if (i >= rt->nclasses || rt->closing) return -EINVAL;
    acr__class_t *c = &rt->classes[i];
    while (c->running < count) {
        if (!user_new(rt, c)) return -ENOMEM;
    }
    while (c->running > count) user_request_stop(c->tail);
    return 0;
}

int acr_rt_set_users(acr_rt_t *rt, const acr_class_count_t *counts, size_t n)
{
    int rc = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = 0;
        while (i < rt->nclasses && strcmp(rt->classes[i].name, counts[k].name) != 0) i++;
        if (i == rt->nclasses) {
            ACR_WARN("spawn names an unknown user class '%s'; skipped", counts[k].name);
            continue;
        }
        size_t want = counts[k].count > 0 ? (size_t)counts[k].count : 0;
        int r = acr_rt_set_class_users(rt, i, want);
        if (r < 0) rc = r;
    }
    return rc;
}

void acr_rt_stop_all(acr_rt_t *rt, void (*done)(acr_rt_t *rt, void *ud), void *ud)
{
    rt->stop_done = done;
    rt->stop_ud = ud;
    for (size_t i = 0; i < rt->nclasses; i++) {
        while (rt->classes[i].tail) user_request_stop(rt->classes[i].tail);
    }
    maybe_stop_done(rt);
}

static void rt_release(acr_rt_t *rt)
{
    if (!rt->closing || rt->closes > 0) return;
    void (*cb)(void *) = rt->closed_cb;
    void *ud = rt->closed_ud;
    for (size_t i = 0; i < rt->nclasses; i++) {
        free(rt->classes[i].name);
        free(rt->classes[i].host);
    }
    free(rt->classes);
    lua_close(rt->L);
    free(rt->host);
    free(rt->node_id);
    free(rt);
    if (cb) cb(ud);
}

static void rt_handle_closed(uv_handle_t *h)
{
    acr_rt_t *rt = h->data;
    rt->closes--;
    rt_release(rt);
}

void acr_rt_close(acr_rt_t *rt, void (*closed_cb)(void *ud), void *ud)
{
    if (rt->closing) return;
    rt->stop_done = NULL;
    rt->closed_cb = closed_cb;
    rt->closed_ud = ud;
    /* Users still there are dropped without on_stop. */
    for (size_t i = 0; i < rt->nclasses; i++) {
        while (rt->classes[i].head) user_done(rt->classes[i].head);
    }
    while (rt->stopping) user_done(rt->stopping);
    rt->closing = true;
    close_dead(rt);
    rt->idle.data = rt;
    rt->reaper.data = rt;
    rt->closes += 2;
    uv_close((uv_handle_t *)&rt->idle, rt_handle_closed);
    uv_close((uv_handle_t *)&rt->reaper, rt_handle_closed);
}
