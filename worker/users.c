/*
 * The user scheduler: each simulated user is a C struct (acr__user_t) plus a Lua table (self) and
 * one coroutine at a time on the worker's libuv loop. The coroutine runs the prelude's user_main
 * (on_start, then the task loop) and, when the user stops, a fresh coroutine runs user_stop
 * (on_stop). A coroutine is anchored in the registry while alive and its state is tracked in C
 * (co_alive), since lua_resume has no guard against dead coroutines.
 *
 * Waking: a wait of 0 goes through the ready queue, drained once per loop turn by an idle handle
 * (only the users queued before the drain started, at most ACR__READY_BATCH), so neither a user
 * without waits or I/O nor a spawn of a million users starves the loop; a longer wait uses the
 * user's own timer. A request that failed with "too many open files" hands its response back after
 * a backoff (acr__user_backoff), so users short of descriptors do not spin.
 *
 * Stopping (acr_rt_stop_all, or fewer users asked): the user leaves the class's running list for
 * the stopping list and starts no new task. Waiting between tasks, queued, or (without a stop
 * timeout) sleeping: it leaves at once. A request in flight completes first and the task resumes
 * with its response, so the task's own code decides the verdict and runs what follows; its next
 * request, wait or yield then ends it (acr__user_stop_due), sending nothing more. With a stop
 * timeout the user may finish its current task until the deadline. on_stop then runs, bounded by
 * the stop timeout or ACR__ONSTOP_CAP_S. A reaper timer enforces the deadlines of waiting users,
 * and the grace of requests in flight (the stop timeout, else ACR__STOP_GRACE_S): a request still
 * in flight then is aborted, counted as aborted at stop (not a failure), and its user leaves.
 */
#include "worker/runtime_int.h"

#include "common/log.h"
#include "worker/watchdog.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdlib.h>

static const char *const user_state_names[] = {"starting", "running", "stopping", "done"};

static void user_set_state(acr__user_t *u, acr__user_state_t to)
{
    if (u->state == to) return;
    if (acr_log_enabled(ACR_LOG_DEBUG)) {
        ACR_DEBUG("user %lld (%s): %s -> %s", (long long)u->id,
                  ACR_ESC(u->cls ? u->cls->name : "spawned task"), user_state_names[u->state],
                  user_state_names[to]);
    }
    u->state = (uint8_t)to;
}

static void idle_cb(uv_idle_t *h);
static void reaper_cb(uv_timer_t *t);

/* ---- lists ---- */

static acr__user_t *link_user(acr_list_t *n)
{
    return n ? acr_list_entry(n, acr__user_t, link) : NULL;
}

static void class_unlink(acr__user_t *u)
{
    acr_list_remove(&u->link);
    u->cls->running--;
    u->rt->nrunning--;
}

static void class_append(acr__user_t *u)
{
    acr_list_push_back(&u->cls->users, &u->link);
    u->cls->running++;
    u->rt->nrunning++;
}

static void stopping_push(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    acr_list_push_back(&rt->stopping, &u->link);
    u->stopping_list = true;
    rt->nstopping++;
    /* the reaper enforces the stop deadlines, also of users that stopped themselves */
    if (!rt->reaper_on && !rt->closing) {
        uv_timer_start(&rt->reaper, reaper_cb, ACR__REAPER_MS, ACR__REAPER_MS);
        rt->reaper_on = true;
    }
}

static void stopping_unlink(acr__user_t *u)
{
    acr_list_remove(&u->link);
    u->stopping_list = false;
    u->rt->nstopping--;
}

static void ready_push(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    if (acr_list_linked(&u->ready)) return; /* queued already (a wait whose yield failed) */
    u->rgen = rt->rgen;
    acr_list_push_back(&rt->ready_q, &u->ready);
    if (!uv_is_active((uv_handle_t *)&rt->idle)) uv_idle_start(&rt->idle, idle_cb);
}

/* ---- waking ---- */

static void cancel_wake(acr__user_t *u)
{
    acr_list_remove(&u->ready);
    if (u->timer_on) {
        uv_timer_stop(&u->timer);
        u->timer_on = false;
    }
}

static void wake(acr__user_t *u)
{
    int nargs = u->wait == ACR__WAIT_START     ? (u->green ? u->nstart : 2)
                : u->wait == ACR__WAIT_BACKOFF ? 1
                                               : 0;
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
    /* The loop's cached clock is from the start of this turn: the time the turn has already spent
     * is added, or the wait would end early. The cached clock itself is not refreshed: libuv runs
     * every timer due by it in one pass, so a refreshed clock would let a pass over many users
     * never end while their waits are shorter than the pass (issue #12). */
    uv_loop_t *loop = u->timer.loop;
    uint64_t now_ms = uv_hrtime() / 1000000,
             spent = now_ms > uv_now(loop) ? now_ms - uv_now(loop) : 0;
    uv_timer_start(&u->timer, timer_cb, acr_timer_ms(seconds) + spent, 0);
    u->timer_on = true;
}

void acr__user_backoff(acr__user_t *u)
{
    double b = u->nofile_backoff * 2;
    if (b < ACR__NOFILE_BACKOFF_MIN_S) b = ACR__NOFILE_BACKOFF_MIN_S;
    if (b > ACR__NOFILE_BACKOFF_MAX_S) b = ACR__NOFILE_BACKOFF_MAX_S;
    u->nofile_backoff = b;
    acr__user_wait(u, b, ACR__WAIT_BACKOFF);
}

/* ---- lifecycle ---- */

static void user_done(acr__user_t *u);
static acr__user_t *user_new(acr_rt_t *rt, acr__class_t *c);

/* Kills every green task (no waiting: their coroutines are dropped, requests aborted). */
static void kill_green(acr_rt_t *rt)
{
    acr_list_t *n;
    while ((n = acr_list_first(&rt->green))) {
        acr__user_t *g = link_user(n);
        if (g->wait == ACR__WAIT_HTTP) acr__lua_http_abort(g); /* counted as aborted at stop */
        user_done(g);
    }
}

static void maybe_stop_done(acr_rt_t *rt)
{
    if (rt->stop_done && rt->nrunning == 0 && rt->nstopping == 0) {
        kill_green(rt); /* also those the users' on_stop started */
        void (*cb)(acr_rt_t *, void *) = rt->stop_done;
        rt->stop_done = NULL;
        cb(rt, rt->stop_ud);
    }
}

static void drop_coroutine(acr__user_t *u)
{
    cancel_wake(u);
    acr__pools_user_left(u);
    if (u->co_ref != LUA_NOREF) luaL_unref(u->rt->L, LUA_REGISTRYINDEX, u->co_ref);
    u->co_ref = LUA_NOREF;
    u->co = NULL;
    u->co_alive = false;
    u->wait = ACR__WAIT_NONE;
}

/* The user is gone: no more Lua; handles close from the idle callback (never from inside a
 * session's own completion callback). */
static void user_done(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    if (u->state == ACR__USER_DONE) return;
    acr__lua_http_resolve_pending(u);
    drop_coroutine(u);
    if (u->green) {
        acr_list_remove(&u->link);
        rt->ngreen--;
        if (u->handle) u->handle->g = NULL;
        u->handle = NULL;
    } else if (u->stopping_list) {
        stopping_unlink(u);
    } else {
        class_unlink(u);
    }
    user_set_state(u, ACR__USER_DONE);
    acr__pools_user_done(u); /* the master frees the rows it still holds */
    if (u->started_ev) {     /* after on_stop; the user object is still whole */
        u->started_ev = false;
        acr__rt_user_event(u, rt->L, "user_stop");
    }
    if (u->client) u->client->u = NULL;
    u->client = NULL;
    if (u->self_ref != LUA_NOREF) luaL_unref(rt->L, LUA_REGISTRYINDEX, u->self_ref);
    u->self_ref = LUA_NOREF;
    acr__lua_http_free_req(u);
    acr_list_push_back(&rt->dead, &u->link);
    if (!uv_is_active((uv_handle_t *)&rt->idle)) uv_idle_start(&rt->idle, idle_cb);
    if (!u->green) maybe_stop_done(rt);
}

/* One of the user's handles closed; the memory goes with the last. */
static void user_release(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    if (--u->closes > 0) return;
    free(u);
    rt->closes--;
    acr__rt_release(rt);
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
    acr__user_t *u;
    while ((u = link_user(acr_list_first(&rt->dead)))) {
        acr_list_remove(&u->link);
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
    acr__user_wait(u, 0, ACR__WAIT_START);
    return 0;
}

/* Whether stopping @u runs Lua: its class's on_stop, or the on_stop of tasksets it is in. */
static bool has_stop_work(acr__user_t *u)
{
    lua_State *L = u->rt->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->cls->ref);
    lua_getfield(L, -1, "on_stop");
    bool yes = lua_isfunction(L, -1);
    lua_pop(L, 2);
    if (yes) return true;
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->rt->intaskset_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->self_ref);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        lua_pop(L, 1);
        return false;
    }
    yes = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return yes;
}

void acr__user_leave(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    acr__lua_http_resolve_pending(u);
    drop_coroutine(u);
    if (u->state == ACR__USER_DONE) return;
    if (u->state == ACR__USER_STOPPING || rt->closing || u->green) {
        user_done(u);
        return;
    }
    if (!u->stopping_list) { /* self:stop() */
        class_unlink(u);
        stopping_push(u);
    }
    u->stop_req = true;
    u->hard = false;
    user_set_state(u, ACR__USER_STOPPING);
    double cap = rt->stop_timeout > 0 ? rt->stop_timeout : ACR__ONSTOP_CAP_S;
    u->deadline = acr_mono_s() + cap;
    u->abort_at = u->deadline;
    if (!has_stop_work(u) || begin_phase(u, rt->stop_ref) < 0) user_done(u);
}

bool acr__user_stop_due(acr__user_t *u)
{
    if (!u->hard && u->stop_req && u->deadline > 0 && acr_mono_s() >= u->deadline) u->hard = true;
    return u->hard;
}

void acr__user_resume(acr__user_t *u, int nargs)
{
    acr_rt_t *rt = u->rt;
    /* Every resume passes here, so no user runs on with a lease the master may have given away:
     * after a freeze (SIGSTOP) the users' timers fire before the master's messages are read. */
    acr__pools_check(rt);
    if (!u->co_alive) return; /* no resuming a dead coroutine (or @u was just fenced) */
    u->wait = ACR__WAIT_NONE;
    rt->current = u;
    if (rt->wd) acr_watchdog_enter(rt->wd, u->cls ? u->cls->name : NULL);
    int st = lua_resume(u->co, nargs);
    if (rt->wd) acr_watchdog_leave(rt->wd);
    rt->current = NULL;
    if (rt->stall_pending) { /* the watchdog interrupted it (runtime.c, stall_hook) */
        rt->stall_pending = false;
        if (rt->on_stall) rt->on_stall(rt->stall_cls, rt->stall_task, rt->stall_secs, rt->stall_ud);
    }
    if (st == LUA_YIELD) {
        if (u->abandon) {
            u->abandon = false;
            acr__user_leave(u);
        } else if (u->wait == ACR__WAIT_NONE && acr__user_stop_due(u)) {
            acr__user_leave(u); /* a plain coroutine.yield() ends a user told to stop now */
        } else if (u->wait == ACR__WAIT_NONE) {
            /* a plain coroutine.yield() from the task: treat as a zero wait */
            acr__user_wait(u, 0, ACR__WAIT_SLEEP);
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
    acr_list_t *n;
    unsigned woken = 0;
    while ((n = acr_list_first(&rt->ready_q)) && woken++ < ACR__READY_BATCH) {
        acr__user_t *u = acr_list_entry(n, acr__user_t, ready);
        if (u->rgen > gen) break;
        acr_list_remove(&u->ready);
        wake(u);
    }
    close_dead(rt);
    if (acr_list_empty(&rt->ready_q) && acr_list_empty(&rt->dead)) uv_idle_stop(&rt->idle);
}

/* Marks @u as stopping; it leaves now or at its next chance (see the file comment). */
static void user_request_stop(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    if (u->state == ACR__USER_STOPPING || u->state == ACR__USER_DONE || u->stopping_list) return;
    class_unlink(u);
    stopping_push(u);
    u->stop_req = true;
    u->abort_at = acr_mono_s() + (rt->stop_timeout > 0 ? rt->stop_timeout : ACR__STOP_GRACE_S);
    if (rt->stop_timeout > 0) {
        u->deadline = acr_mono_s() + rt->stop_timeout;
    } else {
        u->hard = true;
    }
    switch (u->wait) {
    case ACR__WAIT_START: /* never ran: nothing to undo */
        user_done(u);
        break;
    case ACR__WAIT_BETWEEN:
        acr__user_leave(u);
        break;
    case ACR__WAIT_SLEEP:
    case ACR__WAIT_BACKOFF: /* its failure is recorded already */
    case ACR__WAIT_POOL:    /* a pool wait ends like a sleep; the answer is then ignored */
        if (u->hard) acr__user_leave(u);
        break;
    default: /* HTTP: the completion resumes the task (acr__user_stop_due decides after) */
        break;
    }
}

static void reaper_cb(uv_timer_t *t)
{
    acr_rt_t *rt = acr_container_of(t, acr_rt_t, reaper);
    double now = acr_mono_s();
    acr_list_t *n = rt->stopping.next;
    while (n != &rt->stopping) {
        acr__user_t *u = link_user(n);
        n = n->next;
        if (u->wait == ACR__WAIT_HTTP && u->abort_at > 0 && now >= u->abort_at) {
            acr__lua_http_abort(u); /* past the grace: aborted at stop */
            u->hard = true;
            acr__user_leave(u);
            n = rt->stopping.next;
            now = acr_mono_s();
            continue;
        }
        if (u->deadline <= 0 || now < u->deadline || u->hard) continue;
        u->hard = true;
        if (u->wait == ACR__WAIT_SLEEP || u->wait == ACR__WAIT_BETWEEN ||
            u->wait == ACR__WAIT_START || u->wait == ACR__WAIT_POOL ||
            u->wait == ACR__WAIT_BACKOFF) {
            acr__user_leave(u);
            n = rt->stopping.next; /* restart: leaving may have moved users */
            now = acr_mono_s();
        }
    }
    if (rt->nstopping == 0) {
        uv_timer_stop(&rt->reaper);
        rt->reaper_on = false;
    }
}

/* ---- self-fencing (worker/pools.c decides who) ---- */

/* Kills @u at once, as when its stop deadline has passed but without on_stop (which may use a row
 * the user no longer holds): the coroutine is dropped, a request in flight is aborted when the
 * session closes, the leases are forgotten and release_user is sent (user_done). A running user
 * is replaced by a fresh one of its class, so the worker's user count does not change. */
static void fence_user(acr__user_t *u, double silent_s)
{
    acr_rt_t *rt = u->rt;
    acr__class_t *c = u->cls;
    bool replace = c && !u->stopping_list && u->state != ACR__USER_STOPPING;
    char msg[160];
    if (!c) {
        snprintf(msg, sizeof msg,
                 "lease lost: no word from the master for %.1f s; spawned task "
                 "killed",
                 silent_s);
    } else {
        snprintf(msg, sizeof msg, "lease lost: no word from the master for %.1f s; user %s %s",
                 silent_s, c->name, replace ? "restarted" : "ended without on_stop");
    }
    if (u->co) acr__rt_exception(rt, u->co, msg, 0);
    user_done(u);
    if (replace && !rt->closing && !user_new(rt, c))
        ACR_ERROR("%s: out of memory starting a user in its place", ACR_ESC_LONG(msg));
}

/* The first user of @list to fence, or NULL. */
static acr__user_t *fence_next(acr_list_t *list, double now, bool gap)
{
    for (acr_list_t *n = list->next; n != list; n = n->next) {
        acr__user_t *u = link_user(n);
        if (u != u->rt->current && u->state != ACR__USER_DONE && acr__pools_fence_due(u, now, gap))
            return u;
    }
    return NULL;
}

size_t acr__users_fence(acr_rt_t *rt, double silent_s, double now, bool gap)
{
    size_t n = 0;
    /* One at a time from the lists' heads: fencing moves users between lists and appends new
     * ones (which hold nothing, so the scan ends). */
    for (;;) {
        acr__user_t *u = fence_next(&rt->stopping, now, gap);
        for (size_t i = 0; !u && i < rt->nclasses; i++)
            u = fence_next(&rt->classes[i].users, now, gap);
        if (!u) u = fence_next(&rt->green, now, gap);
        if (!u) break;
        fence_user(u, silent_s);
        n++;
    }
    if (n > 0)
        ACR_WARN("no word from the master for %.1f s: %zu users that held or awaited leases "
                 "stopped using them (fenced) and were replaced",
                 silent_s, n);
    return n;
}

/* ---- green tasks (acrida.spawn) ---- */

static acr__ghandle_t *check_task(lua_State *L)
{
    return luaL_checkudata(L, 1, ACR__TASK_MT);
}

/* task:kill(): the task is gone at once (a request in flight is abandoned, not recorded); from
 * inside the task itself it ends there. Returns whether it was alive. */
static int l_task_kill(lua_State *L)
{
    acr__ghandle_t *h = check_task(L);
    acr__user_t *g = h->g;
    if (!g) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (g == g->rt->current) {
        if (L != g->co || !lua_isyieldable(L))
            return luaL_error(L, "a spawned task can kill itself only from its own function");
        g->abandon = true;
        return lua_yield(L, 0);
    }
    user_done(g);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_task_alive(lua_State *L)
{
    lua_pushboolean(L, check_task(L)->g != NULL);
    return 1;
}

static int l_task_gc(lua_State *L)
{
    acr__ghandle_t *h = lua_touserdata(L, 1);
    if (h->g) h->g->handle = NULL;
    h->g = NULL;
    return 0;
}

static int l_task_tostring(lua_State *L)
{
    acr__ghandle_t *h = check_task(L);
    lua_pushfstring(L, "<acrida task %s>", h->g ? "alive" : "gone");
    return 1;
}

int acr__users_l_spawn(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "acrida.rt");
    acr_rt_t *rt = lua_touserdata(L, -1);
    lua_pop(L, 1);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (!rt || rt->closing) return luaL_error(L, "acrida.spawn: the worker is shutting down");
    int nargs = lua_gettop(L);
    if (nargs > 200) return luaL_error(L, "acrida.spawn: too many arguments");
    acr__user_t *g = calloc(1, sizeof(*g));
    if (!g) return luaL_error(L, "acrida.spawn: out of memory");
    g->rt = rt;
    g->green = true;
    g->co_ref = g->self_ref = LUA_NOREF;
    if (uv_timer_init(rt->loop, &g->timer) < 0) {
        free(g);
        return luaL_error(L, "acrida.spawn: cannot create a timer");
    }
    g->timer.data = g;
    acr_list_init(&g->link);
    acr_list_init(&g->ready);
    g->id = -1;
    lua_State *co = lua_newthread(L);
    g->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    g->co = co;
    lua_rawgeti(co, LUA_REGISTRYINDEX, rt->spawn_main_ref);
    for (int i = 1; i <= nargs; i++) lua_pushvalue(L, i);
    lua_xmove(L, co, nargs);
    g->nstart = nargs;
    g->co_alive = true;
    g->state = ACR__USER_RUNNING;
    acr_list_push_back(&rt->green, &g->link);
    rt->ngreen++;
    acr__ghandle_t *h = lua_newuserdata(L, sizeof(*h));
    h->g = g;
    g->handle = h;
    luaL_getmetatable(L, ACR__TASK_MT);
    lua_setmetatable(L, -2);
    acr__user_wait(g, 0, ACR__WAIT_START);
    return 1;
}

int acr__users_init(acr_rt_t *rt)
{
    acr_list_init(&rt->ready_q);
    acr_list_init(&rt->dead);
    acr_list_init(&rt->stopping);
    acr_list_init(&rt->green);
    luaL_newmetatable(rt->L, ACR__TASK_MT);
    lua_createtable(rt->L, 0, 2);
    lua_pushcfunction(rt->L, l_task_kill);
    lua_setfield(rt->L, -2, "kill");
    lua_pushcfunction(rt->L, l_task_alive);
    lua_setfield(rt->L, -2, "alive");
    lua_setfield(rt->L, -2, "__index");
    lua_pushcfunction(rt->L, l_task_gc);
    lua_setfield(rt->L, -2, "__gc");
    lua_pushcfunction(rt->L, l_task_tostring);
    lua_setfield(rt->L, -2, "__tostring");
    lua_pop(rt->L, 1);
    int rc = uv_idle_init(rt->loop, &rt->idle);
    if (rc == 0) rc = uv_timer_init(rt->loop, &rt->reaper);
    if (rc == 0) rc = uv_timer_init(rt->loop, &rt->fence_timer);
    return rc;
}

static acr__user_t *user_new(acr_rt_t *rt, acr__class_t *c)
{
    lua_State *L = rt->L;
    acr__user_t *u = calloc(1, sizeof(*u));
    if (!u) return NULL;
    u->rt = rt;
    u->cls = c;
    u->co_ref = u->self_ref = LUA_NOREF;
    if (uv_timer_init(rt->loop, &u->timer) < 0) {
        free(u);
        return NULL;
    }
    u->timer.data = u;
    acr_list_init(&u->link);
    acr_list_init(&u->ready);
    rt->next_seq++;
    u->id = rt->worker_index >= 0 ? rt->worker_index * ACR__USER_ID_STRIDE + (int64_t)rt->next_seq
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
    user_set_state(u, ACR__USER_STARTING);
    if (begin_phase(u, rt->main_ref) < 0) {
        user_done(u);
        return NULL;
    }
    return u;
}

int acr__users_set_count(acr_rt_t *rt, acr__class_t *c, size_t count)
{
    while (c->running < count) {
        if (!user_new(rt, c)) return -ENOMEM;
    }
    while (c->running > count) user_request_stop(link_user(acr_list_last(&c->users)));
    return 0;
}

void acr__users_stop_all(acr_rt_t *rt)
{
    kill_green(rt);
    for (size_t i = 0; i < rt->nclasses; i++) {
        acr_list_t *n;
        while ((n = acr_list_last(&rt->classes[i].users))) user_request_stop(link_user(n));
    }
    maybe_stop_done(rt);
}

static void rt_handle_closed(uv_handle_t *h)
{
    acr_rt_t *rt = h->data;
    rt->closes--;
    acr__rt_release(rt);
}

void acr__users_close(acr_rt_t *rt)
{
    for (size_t i = 0; i < rt->nclasses; i++) {
        acr_list_t *n;
        while ((n = acr_list_first(&rt->classes[i].users))) user_done(link_user(n));
    }
    while (!acr_list_empty(&rt->stopping)) user_done(link_user(acr_list_first(&rt->stopping)));
    kill_green(rt);
    rt->closing = true;
    close_dead(rt);
    rt->idle.data = rt;
    rt->reaper.data = rt;
    rt->fence_timer.data = rt;
    rt->closes += 3;
    uv_close((uv_handle_t *)&rt->idle, rt_handle_closed);
    uv_close((uv_handle_t *)&rt->reaper, rt_handle_closed);
    uv_close((uv_handle_t *)&rt->fence_timer, rt_handle_closed);
}
