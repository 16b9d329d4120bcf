/*
 * The worker's Lua runtime and the whole of worker/runtime.h: create, load, spawn counts, stop and
 * close (the scheduler behind them is users.c); the LuaJIT state, the running side of the `acrida`
 * module on top of common/scenario.c's declarations (acrida.sleep, acrida.report, self:stop(),
 * the user loop prelude), exception capture with file:line tracebacks, and the class table the
 * scheduler and the HTTP binding (lua_http.c) use.
 *
 * The user loop is a Lua prelude (chunk "=[acrida]") run in each user's coroutine: on_start, then
 * pick a task by weight, run it under xpcall, end the task, wait. Every call into Lua is protected:
 * tasks by xpcall inside the coroutine, the coroutine itself by lua_resume, everything else by
 * lua_pcall. Frames of the prelude are left out of tracebacks so each scenario error groups by
 * its own stack.
 */
#include "worker/runtime_int.h"

#include "common/events.h"
#include "common/log.h"
#include "common/scenario.h"
#include "worker/watchdog.h"

#include <errno.h>
#include <lauxlib.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char user_prelude[] =
    "local C = ...\n"
    "local xpcall, random, type, rawget, rawset, error = xpcall, math.random, type, rawget, "
    "rawset, error\n"
    "local on_error, task_end, wait, nomem = C.on_error, C.task_end, C.wait, C.nomem\n"
    "local NOMEM = 'not enough memory' -- the error of a refused allocation (no handler runs)\n"
    "local STACK = {} -- key in a user of the list of tasksets it is in, innermost last\n"
    "local INT_NOW, INT_WAIT = {}, {} -- self:interrupt() error values\n"
    "local function handler(e)\n"
    "  if e == INT_NOW or e == INT_WAIT then return e end\n"
    "  return on_error(e)\n"
    "end\n"
    "local function pick(node)\n"
    "  local items, n = node.items, node.n\n"
    "  if n == 1 then return items[1] end\n"
    "  local r, cum = random() * node.total, node.cum\n"
    "  for i = 1, n - 1 do\n"
    "    if r < cum[i] then return items[i] end\n"
    "  end\n"
    "  return items[n]\n"
    "end\n"
    "local function pause(self, wt)\n"
    "  local s = 0\n"
    "  if wt then\n"
    "    local ok, v = xpcall(wt, handler, self)\n"
    "    if ok then s = v end\n"
    "  end\n"
    "  wait(s)\n"
    "end\n"
    "local run_set\n"
    "-- The task loop of the user (node = its class's root) or of a taskset. Returns the "
    "interrupt\n"
    "-- value that ended a taskset; the user's own loop never returns.\n"
    "local function loop(self, node, wt, uwt)\n"
    "  local seq, nseq, i = node.seq, node.nseq, 0\n"
    "  while true do\n"
    "    local t\n"
    "    if seq then\n"
    "      i = i % nseq + 1\n"
    "      t = seq[i]\n"
    "    else\n"
    "      t = pick(node)\n"
    "    end\n"
    "    local after\n"
    "    if type(t) == 'function' then\n"
    "      local ok, e = xpcall(t, handler, self)\n"
    "      if not ok and e == NOMEM then nomem(t) end\n"
    "      task_end(true)\n"
    "      if not ok and (e == INT_NOW or e == INT_WAIT) then return e end\n"
    "    else\n"
    "      after = run_set(self, t, uwt)\n"
    "    end\n"
    "    if after == INT_NOW then wait(0) else pause(self, wt) end\n"
    "  end\n"
    "end\n"
    "run_set = function(self, node, uwt)\n"
    "  local st = rawget(self, STACK)\n"
    "  if not st then\n"
    "    st = {}\n"
    "    rawset(self, STACK, st)\n"
    "  end\n"
    "  local prev = rawget(self, 'taskset')\n"
    "  st[#st + 1] = node\n"
    "  rawset(self, 'taskset', node.decl)\n"
    "  local r, ok, e = nil, true, nil\n"
    "  local f = node.on_start\n"
    "  if f then\n"
    "    ok, e = xpcall(f, handler, self)\n"
    "    task_end(true)\n"
    "  end\n"
    "  if ok then\n"
    "    r = loop(self, node, node.wait_time or uwt, uwt)\n"
    "  elseif e == INT_NOW or e == INT_WAIT then\n"
    "    r = e\n"
    "  else -- on_start failed: back to the parent without on_stop, like a failed task\n"
    "    st[#st] = nil\n"
    "    rawset(self, 'taskset', prev)\n"
    "    return nil\n"
    "  end\n"
    "  st[#st] = nil\n"
    "  f = node.on_stop\n"
    "  if f then\n"
    "    xpcall(f, handler, self)\n"
    "    task_end(true)\n"
    "  end\n"
    "  rawset(self, 'taskset', prev)\n"
    "  return r\n"
    "end\n"
    "local function user_main(self, cls)\n"
    "  local f = cls.on_start\n"
    "  if f then\n"
    "    local ok, e = xpcall(f, on_error, self)\n"
    "    if not ok and e == NOMEM then nomem(f) end\n"
    "    task_end(ok)\n"
    "    if not ok then return end\n"
    "  else\n"
    "    task_end(true)\n"
    "  end\n"
    "  local root = cls.root\n"
    "  if not root then return end\n"
    "  loop(self, root, cls.wait_time, cls.wait_time)\n"
    "end\n"
    "local function user_stop(self, cls)\n"
    "  local st = rawget(self, STACK)\n"
    "  if st then\n"
    "    for i = #st, 1, -1 do\n"
    "      local node = st[i]\n"
    "      st[i] = nil\n"
    "      rawset(self, 'taskset', node.decl)\n"
    "      if node.on_stop then xpcall(node.on_stop, handler, self) end\n"
    "    end\n"
    "    rawset(self, 'taskset', nil)\n"
    "  end\n"
    "  local f = cls.on_stop\n"
    "  if f then xpcall(f, handler, self) end\n"
    "  task_end(true)\n"
    "end\n"
    "local function interrupt(self, opts)\n"
    "  local st = rawget(self, STACK)\n"
    "  if not st or #st == 0 then\n"
    "    error('self:interrupt() is only for tasks of an acrida.taskset or acrida.sequence '\n"
    "      .. '(self:stop() stops the user)', 2)\n"
    "  end\n"
    "  if type(opts) == 'table' and opts.reschedule == false then error(INT_WAIT, 0) end\n"
    "  error(INT_NOW, 0)\n"
    "end\n"
    "local function in_taskset(self)\n"
    "  local st = rawget(self, STACK)\n"
    "  return st ~= nil and #st > 0\n"
    "end\n"
    "local function spawn_main(fn, ...)\n"
    "  local ok, e = xpcall(fn, on_error, ...)\n"
    "  if not ok and e == NOMEM then nomem(fn) end\n"
    "end\n"
    "return user_main, user_stop, interrupt, in_taskset, spawn_main\n";

acr__user_t *acr__rt_check_user(lua_State *L, const char *what)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "acrida.rt");
    acr_rt_t *rt = lua_touserdata(L, -1);
    lua_pop(L, 1);
    acr__user_t *u = rt ? rt->current : NULL;
    if (!u || u->co != L) {
        luaL_error(L,
                   "%s can only be called from a user's tasks or an acrida.spawn task (not at "
                   "load time, in an event listener or message handler, nor from another "
                   "coroutine)",
                   what);
        return NULL;
    }
    /* Every caller may yield. A yield from a Lua function that C called (a table.sort comparator,
     * a string.gsub callback) fails after the fact, so refuse before anything is sent or armed:
     * the task fails with this error and the counts stay exact. */
    if (!lua_isyieldable(L)) {
        luaL_error(L,
                   "%s cannot wait inside a function called from C (a table.sort comparator, a "
                   "string.gsub callback, ...): nothing was sent",
                   what);
        return NULL;
    }
    return u;
}

/* Appends the traceback of @co (from @level) without the prelude's frames, one "  frame" line
 * each, to @b. */
static void format_traceback(lua_State *L, lua_State *co, int level, luaL_Buffer *b)
{
    lua_Debug ar;
    bool first = true;
    for (int lv = level; lua_getstack(co, lv, &ar); lv++) {
        if (!lua_getinfo(co, "Snl", &ar)) continue;
        if (strcmp(ar.short_src, "[acrida]") == 0) continue;
        if (ar.what && strcmp(ar.what, "C") == 0 && ar.name &&
            (strcmp(ar.name, "xpcall") == 0 || strcmp(ar.name, "pcall") == 0))
            continue;
        if (!first) luaL_addchar(b, '\n');
        first = false;
        char line[600];
        if (ar.currentline > 0) {
            snprintf(line, sizeof(line), "  %s:%d: in ", ar.short_src, ar.currentline);
        } else {
            snprintf(line, sizeof(line), "  %s: in ", ar.short_src);
        }
        luaL_addstring(b, line);
        if (ar.name && *ar.namewhat) {
            snprintf(line, sizeof(line), "function '%s'", ar.name);
        } else if (ar.what && *ar.what == 'm') {
            snprintf(line, sizeof(line), "main chunk");
        } else if (ar.what && *ar.what == 'C') {
            snprintf(line, sizeof(line), "a C function");
        } else {
            snprintf(line, sizeof(line), "function <%s:%d>", ar.short_src, ar.linedefined);
        }
        luaL_addstring(b, line);
    }
    (void)L;
}

void acr__rt_exception(acr_rt_t *rt, lua_State *co, const char *msg, int level)
{
    lua_State *L = co;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    format_traceback(L, co, level, &b);
    luaL_pushresult(&b);
    const char *tb = lua_tostring(L, -1);
    ACR_DEBUG("exception in user code: %s\n%s", ACR_ESC_LONG(msg), ACR_ESC_LONG(tb));
    if (rt->stats && acr_stats_add_exception(rt->stats, msg, tb, rt->node_id, 1) < 0) {
        ACR_ERROR("out of memory recording an exception");
    }
    lua_pop(L, 1);
}

/* xpcall message handler: records the exception row and returns the message. */
int acr__rt_onerror(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "acrida.rt");
    acr_rt_t *rt = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!lua_isstring(L, 1)) {
        const char *t = luaL_typename(L, 1);
        if (luaL_callmeta(L, 1, "__tostring") && lua_isstring(L, -1)) {
            lua_replace(L, 1);
        } else {
            lua_settop(L, 0);
            lua_pushfstring(L, "error object is a %s value", t);
        }
    }
    lua_settop(L, 1);
    if (rt) acr__rt_exception(rt, L, lua_tostring(L, 1), 1);
    return 1;
}

/* Listener errors of the events the runtime fires: exception rows, like task errors. */
static void listener_error(const char *msg, const char *tb, void *ud)
{
    acr_rt_t *rt = ud;
    ACR_DEBUG("error in a listener: %s\n%s", ACR_ESC_LONG(msg), ACR_ESC_LONG(tb));
    if (rt->stats && acr_stats_add_exception(rt->stats, msg, tb, rt->node_id, 1) < 0)
        ACR_ERROR("out of memory recording an exception");
}

void acr__rt_request_event(acr_rt_t *rt, lua_State *L, const char *type, const char *name,
                           bool has_rt, double ms, double len, const char *exc, const char *url,
                           int status)
{
    if (rt->closing || rt->in_request_ev || !acr_events_has_listeners(L, "request")) return;
    lua_createtable(L, 0, 7);
    lua_pushstring(L, type);
    lua_setfield(L, -2, "request_type");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "name");
    if (has_rt) {
        lua_pushnumber(L, ms);
        lua_setfield(L, -2, "response_time");
    }
    lua_pushnumber(L, len);
    lua_setfield(L, -2, "response_length");
    if (exc) {
        lua_pushstring(L, exc);
        lua_setfield(L, -2, "exception");
    }
    if (url) {
        lua_pushstring(L, url);
        lua_setfield(L, -2, "url");
    }
    if (status >= 0) {
        lua_pushinteger(L, status);
        lua_setfield(L, -2, "status");
    }
    rt->in_request_ev = true;
    acr_events_fire(L, "request", 1, listener_error, rt);
    rt->in_request_ev = false;
}

void acr__rt_user_event(acr__user_t *u, lua_State *L, const char *name)
{
    if (u->rt->closing || u->self_ref == LUA_NOREF || !acr_events_has_listeners(L, name)) return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->self_ref);
    acr_events_fire(L, name, 1, listener_error, u->rt);
}

/* C.task_end(ok): the end of on_start, a task or on_stop. Resolves catch_response verdicts; a
 * user asked to stop leaves here. */
static int l_task_end(lua_State *L)
{
    acr__user_t *u = acr__rt_check_user(L, "task_end");
    acr__lua_http_resolve_pending(u);
    if (u->state == ACR__USER_STARTING && lua_toboolean(L, 1)) {
        u->state = ACR__USER_RUNNING;
        u->started_ev = true;
        acr__rt_user_event(u, L, "user_start");
    }
    if (u->stop_req && u->state != ACR__USER_STOPPING) {
        u->abandon = true;
        return lua_yield(L, 0);
    }
    return 0;
}

static int wait_common(lua_State *L, acr__wait_t why, const char *what)
{
    acr__user_t *u = acr__rt_check_user(L, what);
    double s = 0;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        s = lua_tonumber(L, 1);
    } else if (why == ACR__WAIT_SLEEP) {
        return luaL_error(L, "acrida.sleep expects a number of seconds");
    } else if (!lua_isnil(L, 1)) {
        ACR_WARN("user class '%s': wait_time returned a %s, not seconds; not waiting",
                 ACR_ESC(u->cls->name), luaL_typename(L, 1));
    }
    if (!(s >= 0) || isinf(s)) {
        if (why == ACR__WAIT_SLEEP) return luaL_error(L, "acrida.sleep: invalid duration");
        s = 0;
    }
    if (acr__user_stop_due(u) || (why == ACR__WAIT_BETWEEN && u->stop_req)) {
        u->abandon = true;
        return lua_yield(L, 0);
    }
    acr__user_wait(u, s, why);
    return lua_yield(L, 0);
}

static int l_wait(lua_State *L)
{
    return wait_common(L, ACR__WAIT_BETWEEN, "wait");
}

static int l_sleep(lua_State *L)
{
    return wait_common(L, ACR__WAIT_SLEEP, "acrida.sleep");
}

/* self:stop() */
static int l_self_stop(lua_State *L)
{
    acr__user_t *u = acr__rt_check_user(L, "self:stop()");
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->self_ref);
    if (!lua_rawequal(L, 1, -1)) {
        return luaL_error(L, "self:stop() stops the calling user only");
    }
    lua_pop(L, 1);
    u->stop_req = true;
    if (u->state == ACR__USER_STOPPING) u->hard = true;
    u->abandon = true;
    return lua_yield(L, 0);
}

/* acrida.report{ request_type, name, response_time (ms), response_length, exception } */
static int l_report(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "acrida.rt");
    acr_rt_t *rt = lua_touserdata(L, -1);
    lua_pop(L, 1);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "request_type");
    lua_getfield(L, 1, "name");
    lua_getfield(L, 1, "response_time");
    lua_getfield(L, 1, "response_length");
    lua_getfield(L, 1, "exception");
    const char *type = lua_isnil(L, 2) ? "CUSTOM" : lua_tostring(L, 2);
    const char *name = lua_type(L, 3) == LUA_TSTRING ? lua_tostring(L, 3) : NULL;
    if (!type || !*type) return luaL_error(L, "acrida.report: 'request_type' must be a string");
    if (!name) return luaL_error(L, "acrida.report: 'name' is required (a string)");
    bool has_rt = !lua_isnil(L, 4);
    double ms = 0;
    if (has_rt) {
        /* finite and below ~292 years of µs, so the conversion to integer µs is defined */
        if (lua_type(L, 4) != LUA_TNUMBER || !(lua_tonumber(L, 4) >= 0) ||
            !(lua_tonumber(L, 4) < 9e15))
            return luaL_error(L, "acrida.report: 'response_time' must be a number of ms >= 0");
        ms = lua_tonumber(L, 4);
    }
    double len = 0;
    if (!lua_isnil(L, 5)) {
        if (lua_type(L, 5) != LUA_TNUMBER || !(lua_tonumber(L, 5) >= 0) ||
            !(lua_tonumber(L, 5) < 9e18))
            return luaL_error(L, "acrida.report: 'response_length' must be a number >= 0");
        len = lua_tonumber(L, 5);
    }
    const char *exc = NULL;
    if (lua_toboolean(L, 6)) {
        if (!lua_isstring(L, 6)) {
            lua_getglobal(L, "tostring");
            lua_pushvalue(L, 6);
            lua_call(L, 1, 1);
            lua_replace(L, 6);
        }
        exc = lua_tostring(L, 6);
    }
    if (!rt || !rt->stats) return 0;
    acr_stats_entry_t *e = acr_stats_get(rt->stats, type, name);
    if (!e) return luaL_error(L, "acrida.report: out of memory");
    acr_stats_log(rt->stats, e, has_rt, (uint64_t)llround(ms * 1000.0), (uint64_t)len, exc,
                  acr_now());
    acr__rt_request_event(rt, L, type, name, has_rt, ms, len, exc, NULL, -1);
    return 0;
}

/* ---- the stall watchdog's hook (worker/watchdog.h) ---- */

/* Searches the task tree @node (on top of L's stack) for the function at @fn; on a match writes
 * its declared name into @out. */
static bool find_task(lua_State *L, int fn, int depth, char *out, size_t outlen)
{
    if (depth > 8 || !lua_istable(L, -1)) return false;
    bool found = false;
    lua_getfield(L, -1, "items");
    lua_getfield(L, -2, "names");
    int n = lua_istable(L, -2) ? (int)lua_objlen(L, -2) : 0;
    for (int i = 1; i <= n && !found; i++) {
        lua_rawgeti(L, -2, i);
        if (lua_rawequal(L, -1, fn)) {
            lua_rawgeti(L, -2, i);
            snprintf(out, outlen, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
            lua_pop(L, 1);
            found = true;
        } else if (lua_istable(L, -1)) {
            found = find_task(L, fn, depth + 1, out, outlen);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return found;
}

/* The running task of @u on @L: its declared name, else "<file>:<line>" of its function. */
static void task_label(acr__user_t *u, lua_State *L, char *out, size_t outlen)
{
    lua_Debug ar;
    int top = -1;
    snprintf(out, outlen, "?");
    for (int lv = 0; lua_getstack(L, lv, &ar); lv++) { /* the outermost frame of the scenario */
        if (lua_getinfo(L, "S", &ar) && strcmp(ar.short_src, "[acrida]") != 0 &&
            strcmp(ar.what, "C") != 0)
            top = lv;
    }
    if (top < 0 || !lua_getstack(L, top, &ar) || !lua_getinfo(L, "Sf", &ar)) return;
    snprintf(out, outlen, "%s:%d", ar.short_src, ar.linedefined);
    int fn = lua_gettop(L);
    if (u->cls) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, u->cls->ref);
        lua_getfield(L, -1, "root");
        find_task(L, fn, 0, out, outlen);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
}

/* Runs on the loop's thread at the next VM instruction once the watchdog armed it, in the code
 * that ran too long. In a user's own coroutine the hook yields (LuaJIT lets count hooks yield):
 * the exception row is recorded here and the coroutine is abandoned, so no pcall in the task can
 * catch it; the user then leaves (on_stop runs) as after self:stop(). Where it cannot yield (a
 * coroutine of the task's own, a function called from C, code outside users' tasks) it raises
 * "stalled: ..." instead, and fires again every 1000 instructions until the resume returns. */
static void stall_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_getfield(L, LUA_REGISTRYINDEX, "acrida.rt");
    acr_rt_t *rt = lua_touserdata(L, -1);
    lua_pop(L, 1);
    double secs = 0;
    acr_wd_reason_t why = rt && rt->wd ? acr_watchdog_reason(rt->wd, &secs) : ACR_WD_NONE;
    if (why == ACR_WD_NONE) {
        if (!rt || !rt->wd) lua_sethook(L, NULL, 0, 0);
        return;
    }
    acr__user_t *u = rt->current;
    const char *head = why == ACR_WD_SIGNAL ? "stopped by SIGTERM/SIGINT" : "stalled";
    char msg[512], task[160];
    if (!u) {
        snprintf(msg, sizeof msg,
                 "%s: Lua code outside a user's task (the scenario's main chunk, an event "
                 "listener or a message handler) ran for %.1f s without yielding",
                 head, secs);
        luaL_error(L, "%s", msg);
        return;
    }
    task_label(u, L, task, sizeof task);
    if (u->cls)
        snprintf(msg, sizeof msg, "%s: task %s of user class %s ran for %.1f s without yielding",
                 head, task, u->cls->name, secs);
    else
        snprintf(msg, sizeof msg, "%s: a task of acrida.spawn (%s) ran for %.1f s without yielding",
                 head, task, secs);
    u->stop_req = true;
    u->hard = true;
    if (!u->stalled && u->cls && why == ACR_WD_STALL) {
        u->stalled = true;
        rt->stall_pending = true;
        snprintf(rt->stall_cls, sizeof rt->stall_cls, "%s", u->cls->name);
        snprintf(rt->stall_task, sizeof rt->stall_task, "%s", task);
        rt->stall_secs = secs;
        ACR_ERROR("%s; the user is ended", ACR_ESC_LONG(msg));
    }
    if (L == u->co && lua_isyieldable(L)) {
        acr__rt_exception(rt, L, msg, 0);
        u->abandon = true;
        lua_yield(L, 0); /* does not return: the resume returns LUA_YIELD */
        return;
    }
    acr_watchdog_rearm(rt->wd, 1000);
    luaL_error(L, "%s", msg);
}

/* ---- memory cap and os.exit ---- */

/* The Lua state's allocator: LuaJIT's own (rt->base_alloc, taken from the state luaL_newstate
 * made: much denser than malloc for small Lua objects), counting what the state holds and
 * refusing a block that would take it over rt->mem_cap. LuaJIT turns a refusal into the error
 * "not enough memory", which no xpcall handler sees: the prelude checks for it after a failed
 * call (nomem). */
static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    acr_rt_t *rt = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        rt->mem_used -= old;
        return rt->base_alloc(rt->base_ud, ptr, osize, 0);
    }
    if (rt->mem_cap && nsize > old &&
        (rt->mem_used > rt->mem_cap || nsize - old > rt->mem_cap - rt->mem_used)) {
        rt->mem_refused = true;
        return NULL;
    }
    void *p = rt->base_alloc(rt->base_ud, ptr, osize, nsize);
    if (!p) {
        rt->mem_refused = true;
        return NULL;
    }
    rt->mem_used = rt->mem_used - old + nsize;
    return p;
}

/* A Lua state on LuaJIT's allocator with lua_alloc counting in front of it (what the state
 * allocated before the switch is counted from its GC total). */
static lua_State *new_state(acr_rt_t *rt)
{
    lua_State *L = luaL_newstate();
    if (!L) return NULL;
    rt->base_alloc = lua_getallocf(L, &rt->base_ud);
    rt->mem_used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
    lua_setallocf(L, lua_alloc, rt);
    return L;
}

/* lua_close with LuaJIT's allocator back in place: only then does it release its arena (with
 * another allocator installed it frees the state's blocks one by one and keeps the arena). */
static void close_state(acr_rt_t *rt)
{
    lua_setallocf(rt->L, rt->base_alloc, rt->base_ud);
    lua_close(rt->L);
}

/* An error outside every protected call (LuaJIT then exits the process with status 1). */
static int on_panic(lua_State *L)
{
    const char *m = lua_tostring(L, -1);
    ACR_ERROR("unprotected Lua error, the worker exits: %s%s", m ? m : "(not a string)",
              m && strcmp(m, "not enough memory") == 0
                  ? " (the scenario keeps its Lua memory at --max-lua-memory)"
                  : "");
    return 0;
}

/* Writes what the function at @idx is to @u ("task 'browse' of user class 'Shop'", "on_start of
 * user class 'Shop'", "the task at shop.lua:12 of user class 'Shop'", "the acrida.spawn task at
 * shop.lua:30"); @where gets "file:line" of its definition. */
static void describe_task(lua_State *L, acr__user_t *u, int idx, char *out, size_t len, char *where,
                          size_t wlen)
{
    lua_Debug ar;
    snprintf(where, wlen, "?");
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    lua_pushvalue(L, idx);
    if (lua_isfunction(L, -1) && lua_getinfo(L, ">S", &ar))
        snprintf(where, wlen, "%s:%d", ar.short_src, ar.linedefined);
    else
        lua_pop(L, 1);
    if (!u->cls) {
        snprintf(out, len, "the acrida.spawn task at %s", where);
        return;
    }
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->cls->ref);
    int cls = lua_gettop(L);
    snprintf(out, len, "the task at %s of user class '%s'", where, u->cls->name);
    static const char *const hooks[] = {"on_start", "on_stop"};
    for (size_t i = 0; i < ACR_ARRAY_SIZE(hooks); i++) {
        lua_getfield(L, cls, hooks[i]);
        if (lua_rawequal(L, -1, idx))
            snprintf(out, len, "%s of user class '%s'", hooks[i], u->cls->name);
        lua_pop(L, 1);
    }
    lua_getfield(L, cls, "task_fns");
    lua_getfield(L, cls, "task_names");
    if (lua_istable(L, -2) && lua_istable(L, -1)) {
        for (int k = 1; k <= (int)lua_objlen(L, -2); k++) {
            lua_rawgeti(L, -2, k);
            bool same = lua_rawequal(L, -1, idx);
            lua_pop(L, 1);
            if (!same) continue;
            lua_rawgeti(L, -1, k);
            if (lua_type(L, -1) == LUA_TSTRING)
                snprintf(out, len, "task '%s' of user class '%s'", lua_tostring(L, -1),
                         u->cls->name);
            else
                snprintf(out, len, "task %d (at %s) of user class '%s'", k, where, u->cls->name);
            break;
        }
    }
    lua_settop(L, top);
}

/* C.nomem(fn): @fn failed with "not enough memory". When the allocator refused a block (not a
 * scenario's own error of that text), the garbage of the unwound call is collected, the
 * exception row names the task and the cap, and the user stops (its task_end leaves). */
static int l_nomem(lua_State *L)
{
    acr__user_t *u = acr__rt_check_user(L, "nomem");
    acr_rt_t *rt = u->rt;
    if (!rt->mem_refused) return 0;
    rt->mem_refused = false;
    lua_gc(L, LUA_GCCOLLECT, 0);
    char what[512], where[300], msg[800], tb[400];
    describe_task(L, u, 1, what, sizeof what, where, sizeof where);
    snprintf(msg, sizeof msg,
             "not enough memory: %s went over --max-lua-memory (%zu MiB); the user stops", what,
             rt->mem_cap >> 20);
    snprintf(tb, sizeof tb, "  %s: in the function that ran out", where);
    ACR_WARN("%s", msg);
    if (rt->stats && acr_stats_add_exception(rt->stats, msg, tb, rt->node_id, 1) < 0)
        ACR_ERROR("out of memory recording an exception");
    u->stop_req = true;
    return 0;
}

/* The level in @L's stack of the scenario function the prelude called (a task, on_start, ...):
 * the outermost Lua frame above the prelude's. -1 when there is none. */
static int task_level(lua_State *L)
{
    lua_Debug ar;
    int found = -1;
    for (int lv = 1; lua_getstack(L, lv, &ar); lv++) {
        if (!lua_getinfo(L, "S", &ar)) continue;
        if (strcmp(ar.short_src, "[acrida]") == 0) break;
        if (ar.what && strcmp(ar.what, "C") != 0) found = lv;
    }
    return found;
}

/* os.exit() would end the worker with the master's test under way (it then counts a fraction of
 * what the target served): in a user it is an error naming the task, and the user stops; at load
 * time it is a load error. docs/scenario-api.md. */
static int l_os_exit(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "acrida.rt");
    acr_rt_t *rt = lua_touserdata(L, -1);
    lua_pop(L, 1);
    acr__user_t *u = rt ? rt->current : NULL;
    if (!u || u->co != L)
        return luaL_error(L, "os.exit() called %s: a scenario cannot end its worker",
                          rt && !rt->loaded ? "while the scenario loads" : "outside a user");
    char what[512] = "a task", where[300];
    lua_Debug ar;
    int lv = task_level(L);
    if (lv >= 0 && lua_getstack(L, lv, &ar) && lua_getinfo(L, "f", &ar)) {
        describe_task(L, u, -1, what, sizeof what, where, sizeof where);
        lua_pop(L, 1);
    }
    u->stop_req = true;
    return luaL_error(
        L, "os.exit() called by %s: a scenario cannot end its worker (the user stops)", what);
}

void acr_rt_watch(acr_rt_t *rt)
{
    if (rt->wd && acr_watchdog_timeout(rt->wd) > 0) acr_watchdog_set_lua(rt->wd, rt->L, stall_hook);
}

acr_rt_t *acr_rt_new(const acr_rt_config_t *cfg, char *err, size_t errlen)
{
    acr_rt_t *rt = calloc(1, sizeof(*rt));
    if (!rt) goto nomem;
    rt->loop = cfg->loop;
    rt->stats = cfg->stats;
    rt->http = cfg->http;
    rt->worker_index = -1;
    rt->main_ref = rt->stop_ref = rt->onerror_ref = LUA_NOREF;
    rt->json_encode_ref = rt->json_decode_ref = LUA_NOREF;
    rt->spawn_main_ref = rt->intaskset_ref = LUA_NOREF;
    rt->wd = cfg->watchdog;
    rt->on_stall = cfg->on_stall;
    rt->stall_ud = cfg->stall_ud;
    rt->node_id = strdup(cfg->node_id ? cfg->node_id : "local");
    if (!rt->node_id) goto nomem;
    rt->mem_cap = cfg->max_lua_memory;
    rt->L = new_state(rt);
    if (!rt->L) goto nomem;
    lua_State *L = rt->L;
    lua_atpanic(L, on_panic);
    if (acr_scenario_open(L, "worker", err, errlen) < 0) goto fail;
    acr_rt_watch(rt);
    lua_pushlightuserdata(L, rt);
    lua_setfield(L, LUA_REGISTRYINDEX, "acrida.rt");
    lua_getglobal(L, "os");
    lua_pushcfunction(L, l_os_exit);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);

    lua_getglobal(L, "acrida");
    lua_pushcfunction(L, l_sleep);
    lua_setfield(L, -2, "sleep");
    lua_pushcfunction(L, l_report);
    lua_setfield(L, -2, "report");
    lua_pushcfunction(L, acr__users_l_spawn);
    lua_setfield(L, -2, "spawn");
    lua_pop(L, 1);

    /* The prelude's C helpers; the methods every user instance inherits. */
    if (luaL_loadbuffer(L, user_prelude, sizeof(user_prelude) - 1, "=[acrida]") != 0) {
        snprintf(err, errlen, "prelude: %s", lua_tostring(L, -1));
        goto fail;
    }
    lua_createtable(L, 0, 5);
    lua_pushcfunction(L, acr__rt_onerror);
    lua_setfield(L, -2, "on_error");
    lua_pushcfunction(L, l_task_end);
    lua_setfield(L, -2, "task_end");
    lua_pushcfunction(L, l_wait);
    lua_setfield(L, -2, "wait");
    lua_pushcfunction(L, l_nomem);
    lua_setfield(L, -2, "nomem");
    if (lua_pcall(L, 1, 5, 0) != 0) {
        snprintf(err, errlen, "prelude: %s", lua_tostring(L, -1));
        goto fail;
    }
    rt->spawn_main_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    rt->intaskset_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    int interrupt_idx = lua_gettop(L);
    lua_pushvalue(L, -2);
    rt->stop_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -3);
    rt->main_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushcfunction(L, acr__rt_onerror);
    rt->onerror_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_createtable(L, 0, 2); /* methods, behind every class's proto */
    lua_pushcfunction(L, l_self_stop);
    lua_setfield(L, -2, "stop");
    lua_pushvalue(L, interrupt_idx);
    lua_setfield(L, -2, "interrupt");
    lua_setfield(L, LUA_REGISTRYINDEX, "acrida.methods");
    lua_settop(L, interrupt_idx - 3);

    /* lua-cjson for opts.json and r:json() */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    if (lua_pcall(L, 1, 1, 0) != 0) {
        snprintf(err, errlen, "cannot load lua-cjson: %s", lua_tostring(L, -1));
        goto fail;
    }
    lua_getfield(L, -1, "encode");
    rt->json_encode_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getfield(L, -1, "decode");
    rt->json_decode_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);

    acr__lua_http_open(rt);
    acr__pools_open(rt); /* acrida.pool (worker/pools.c) */
    if (acr__users_init(rt) < 0) {
        snprintf(err, errlen, "cannot initialise the scheduler");
        goto fail_noclose;
    }
    return rt;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    if (!rt) return NULL;
fail_noclose:
    if (rt->wd && rt->L) acr_watchdog_drop_lua(rt->wd, rt->L);
    if (rt->L) close_state(rt);
    free(rt->node_id);
    free(rt);
    return NULL;
}

/* Reads the declared classes into rt->classes and prepares their instance metatables. */
static int prepare_classes(acr_rt_t *rt, char *err, size_t errlen)
{
    lua_State *L = rt->L;
    size_t n = acr_scenario_nclasses(L);
    if (n == 0) {
        snprintf(err, errlen, "scenario declares no user class (use acrida.user { ... })");
        return -EINVAL;
    }
    rt->classes = calloc(n, sizeof(*rt->classes));
    if (!rt->classes) goto nomem;
    for (size_t i = 0; i < n; i++) acr_list_init(&rt->classes[i].users);
    for (size_t i = 0; i < n; i++) {
        acr__class_t *c = &rt->classes[i];
        c->ref = c->mt_ref = LUA_NOREF;
        rt->nclasses = i + 1;
        acr_scenario_push_class(L, i);
        lua_getfield(L, -1, "name");
        c->name = strdup(lua_tostring(L, -1));
        lua_getfield(L, -2, "host");
        if (lua_isstring(L, -1)) {
            c->host = strdup(lua_tostring(L, -1));
            if (!c->host) goto nomem_pop;
        }
        lua_pop(L, 2);
        if (!c->name) goto nomem_pop;
        lua_getfield(L, -1, "proto");
        lua_getfield(L, -1, "insecure");
        c->insecure = lua_toboolean(L, -1);
        lua_pop(L, 1);
        lua_createtable(L, 0, 1); /* proto's metatable: the methods */
        lua_getfield(L, LUA_REGISTRYINDEX, "acrida.methods");
        lua_setfield(L, -2, "__index");
        lua_setmetatable(L, -2);
        lua_createtable(L, 0, 1); /* the instances' metatable */
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "__index");
        c->mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_pop(L, 1);
        c->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    rt->loaded = true;
    return 0;
nomem_pop:
    lua_pop(L, 1);
nomem:
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

/* The init event, once the scenario loaded: env = {role, host, user_count, worker_index, options}
 * (options empty: no spawn has carried any yet). */
static void fire_init(acr_rt_t *rt)
{
    lua_State *L = rt->L;
    if (!acr_events_has_listeners(L, "init")) return;
    lua_createtable(L, 0, 5);
    lua_newtable(L); /* options: nothing carried before the first spawn */
    lua_setfield(L, -2, "options");
    lua_pushliteral(L, "worker");
    lua_setfield(L, -2, "role");
    if (rt->host) {
        lua_pushstring(L, rt->host);
        lua_setfield(L, -2, "host");
    }
    lua_pushnumber(L, 0);
    lua_setfield(L, -2, "user_count");
    if (rt->worker_index >= 0) {
        lua_pushnumber(L, (double)rt->worker_index);
        lua_setfield(L, -2, "worker_index");
    }
    acr_events_fire(L, "init", 1, listener_error, rt);
}

static int loaded(acr_rt_t *rt, int rc, char *err, size_t errlen)
{
    if (rc < 0) return rc;
    rc = prepare_classes(rt, err, errlen);
    if (rc == 0) fire_init(rt);
    return rc;
}

int acr_rt_load_file(acr_rt_t *rt, const char *path, char *err, size_t errlen)
{
    if (rt->loaded) {
        snprintf(err, errlen, "a scenario is already loaded");
        return -EBUSY;
    }
    return loaded(rt, acr_scenario_exec_file(rt->L, path, err, errlen), err, errlen);
}

int acr_rt_load_string(acr_rt_t *rt, const char *name, const char *src, size_t len, char *err,
                       size_t errlen)
{
    if (rt->loaded) {
        snprintf(err, errlen, "a scenario is already loaded");
        return -EBUSY;
    }
    return loaded(rt, acr_scenario_exec_string(rt->L, name, src, len, err, errlen), err, errlen);
}

int acr_rt_load_bundle(acr_rt_t *rt, const char *root, const char *main, const char *src,
                       size_t len, char *err, size_t errlen)
{
    if (rt->loaded) {
        snprintf(err, errlen, "a scenario is already loaded");
        return -EBUSY;
    }
    return loaded(rt, acr_scenario_exec_bundle(rt->L, root, main, src, len, err, errlen), err,
                  errlen);
}

lua_State *acr_rt_lua(acr_rt_t *rt)
{
    return rt->L;
}

size_t acr_rt_nclasses(const acr_rt_t *rt)
{
    return rt->nclasses;
}

size_t acr_rt_user_count(const acr_rt_t *rt)
{
    return rt->nrunning;
}

size_t acr_rt_users_alive(const acr_rt_t *rt)
{
    return rt->nrunning + rt->nstopping;
}

void acr_rt_class_counts(const acr_rt_t *rt, acr_class_count_t *out)
{
    for (size_t i = 0; i < rt->nclasses; i++) {
        out[i].name = rt->classes[i].name;
        out[i].count = (int64_t)rt->classes[i].running;
    }
}

int acr_rt_set_host(acr_rt_t *rt, const char *host)
{
    char *h = NULL;
    if (host && *host) {
        size_t n = strlen(host);
        while (n > 0 && host[n - 1] == '/') n--;
        h = strndup(host, n);
        if (!h) return -ENOMEM;
    }
    free(rt->host);
    rt->host = h;
    return 0;
}

void acr_rt_set_worker_index(acr_rt_t *rt, int64_t index)
{
    rt->worker_index = index;
    lua_getglobal(rt->L, "acrida");
    lua_getfield(rt->L, -1, "runner");
    lua_pushinteger(rt->L, (lua_Integer)index);
    lua_setfield(rt->L, -2, "worker_index");
    lua_pop(rt->L, 2);
}

static bool same_list(char *const *a, const char *const *b)
{
    size_t i = 0;
    for (; a && a[i] && b && b[i]; i++)
        if (strcmp(a[i], b[i]) != 0) return false;
    return !(a && a[i]) && !(b && b[i]);
}

static void free_list(char **l)
{
    for (size_t i = 0; l && l[i]; i++) free(l[i]);
    free(l);
}

static char **copy_list(const char *const *l, bool *nomem)
{
    size_t n = 0;
    while (l && l[n]) n++;
    if (n == 0) return NULL;
    char **c = calloc(n + 1, sizeof(*c));
    if (!c) goto fail;
    for (size_t i = 0; i < n; i++) {
        c[i] = strdup(l[i]);
        if (!c[i]) goto fail;
    }
    return c;
fail:
    free_list(c);
    *nomem = true;
    return NULL;
}

int acr_rt_set_tags(acr_rt_t *rt, const char *const *tags, const char *const *exclude, char *err,
                    size_t errlen)
{
    if (same_list(rt->tags, tags) && same_list(rt->exclude_tags, exclude)) return 0;
    bool nomem = false;
    char **t = copy_list(tags, &nomem), **x = copy_list(exclude, &nomem);
    if (nomem) {
        free_list(t);
        free_list(x);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = acr_scenario_apply_tags(rt->L, tags, exclude, err, errlen);
    if (rc < 0) {
        free_list(t);
        free_list(x);
        return rc;
    }
    free_list(rt->tags);
    free_list(rt->exclude_tags);
    rt->tags = t;
    rt->exclude_tags = x;
    return 0;
}

size_t acr_rt_green_count(const acr_rt_t *rt)
{
    return rt->ngreen;
}

void acr_rt_set_stop_timeout(acr_rt_t *rt, double seconds)
{
    rt->stop_timeout = seconds > 0 ? seconds : 0;
}

int acr_rt_set_class_users(acr_rt_t *rt, size_t i, size_t count)
{
    if (i >= rt->nclasses || rt->closing) return -EINVAL;
    return acr__users_set_count(rt, &rt->classes[i], count);
}

int acr_rt_set_users(acr_rt_t *rt, const acr_class_count_t *counts, size_t n)
{
    int rc = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = 0;
        while (i < rt->nclasses && strcmp(rt->classes[i].name, counts[k].name) != 0) i++;
        if (i == rt->nclasses) {
            ACR_WARN("spawn names an unknown user class '%s'; skipped", ACR_ESC(counts[k].name));
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
    acr__users_stop_all(rt);
}

void acr__rt_release(acr_rt_t *rt)
{
    if (!rt->closing || rt->closes > 0) return;
    void (*cb)(void *) = rt->closed_cb;
    void *ud = rt->closed_ud;
    for (size_t i = 0; i < rt->nclasses; i++) {
        free(rt->classes[i].name);
        free(rt->classes[i].host);
    }
    free(rt->classes);
    free_list(rt->tags);
    free_list(rt->exclude_tags);
    if (rt->wd) acr_watchdog_drop_lua(rt->wd, rt->L);
    close_state(rt);
    free(rt->host);
    free(rt->node_id);
    free(rt);
    if (cb) cb(ud);
}

void acr_rt_close(acr_rt_t *rt, void (*closed_cb)(void *ud), void *ud)
{
    if (rt->closing) return;
    rt->stop_done = NULL;
    rt->closed_cb = closed_cb;
    rt->closed_ud = ud;
    acr__users_close(rt); /* users still there are dropped without on_stop */
}
