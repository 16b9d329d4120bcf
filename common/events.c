/*
 * The scenario's events (common/events.h): acrida.events.<name> for the standard events and
 * acrida.event([name]) for custom ones. An event is a table with the metatable of the Lua prelude
 * below; its listeners live in a list that add_listener/remove_listener replace (copy on write),
 * so a fire in progress keeps the list it started with whatever its listeners add or remove.
 *
 * Each listener runs under xpcall (Lua-side ev:fire) or lua_pcall (acr_events_fire) with the same
 * message handler, which turns an error into {message, traceback}; the traceback lists the
 * scenario's frames ("  file.lua:12: in function 'f'"), without this module's own. Errors go to
 * the caller's callback (acr_events_fire) or to the handler the runtime registered with
 * acr_events_set_error_handler (kept in the registry under ERRH_KEY), else to the log.
 */
#include "common/events.h"

#include "common/log.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

#define EVENTS_KEY "acrida.events"       /* registry: name -> standard event */
#define ERRH_KEY "acrida.events.onerror" /* registry: userdata errh_t */
#define MODULE_KEY "acrida.module"       /* registry: the acrida module (common/scenario.c) */
#define PRELUDE_NAME "[acrida.events]"   /* chunk name, left out of tracebacks */
#define TRACEBACK_MAX_FRAMES 40

static const char *const standard_events[] = {
    "init",      "test_start", "test_stop",        "spawning_complete", "user_start",
    "user_stop", "request",    "report_to_master", "worker_report",     "quitting",
};

typedef struct errh {
    acr_events_error_fn fn;
    void *ud;
} errh_t;

/* Arguments: the module table, the standard names, a table of C helpers (msgh, report).
 * Returns the table name -> standard event. */
static const char prelude_src[] =
    "local acrida, names, C = ...\n"
    "local type, error, xpcall, setmetatable, getmetatable, tostring = "
    "type, error, xpcall, setmetatable, getmetatable, tostring\n"
    "local msgh, report = C.msgh, C.report\n"
    "local Event = {}\n"
    "Event.__index = Event\n"
    "Event.__metatable = 'acrida.event'\n"
    "function Event.__tostring(e) return 'acrida event ' .. e._name end\n"
    "local function check(self, what)\n"
    "  if getmetatable(self) ~= 'acrida.event' or rawget(self, '_listeners') == nil then\n"
    "    error('event:' .. what .. '(...) must be called with a colon on an event', 3)\n"
    "  end\n"
    "end\n"
    "function Event.add_listener(self, fn)\n"
    "  check(self, 'add_listener')\n"
    "  if type(fn) ~= 'function' then\n"
    "    error(self._name .. ':add_listener expects a function, got a ' .. type(fn) .. ' value', "
    "2)\n"
    "  end\n"
    "  local old, new = self._listeners, {}\n"
    "  for i = 1, #old do new[i] = old[i] end\n"
    "  new[#old + 1] = fn\n"
    "  self._listeners = new\n"
    "  return fn\n"
    "end\n"
    "function Event.remove_listener(self, fn)\n"
    "  check(self, 'remove_listener')\n"
    "  local old, new, found = self._listeners, {}, false\n"
    "  for i = 1, #old do\n"
    "    if not found and old[i] == fn then found = true else new[#new + 1] = old[i] end\n"
    "  end\n"
    "  if found then self._listeners = new end\n"
    "  return found\n"
    "end\n"
    "function Event.fire(self, ...)\n"
    "  check(self, 'fire')\n"
    "  local ls, failed = self._listeners, 0\n"
    "  for i = 1, #ls do\n"
    "    local ok, e = xpcall(ls[i], msgh, ...)\n"
    "    if not ok then failed = failed + 1; report(self._name, e) end\n"
    "  end\n"
    "  return failed\n"
    "end\n"
    "local function new(name) return setmetatable({ _name = name, _listeners = {} }, Event) end\n"
    "local std, events = {}, {}\n"
    "for i = 1, #names do local e = new(names[i]); std[names[i]] = e; events[names[i]] = e end\n"
    "acrida.events = events\n"
    "function acrida.event(name)\n"
    "  if name ~= nil and type(name) ~= 'string' then\n"
    "    error('acrida.event([name]): name must be a string', 2)\n"
    "  end\n"
    "  return new(name or 'custom event')\n"
    "end\n"
    "return std\n";

/* Appends the frames of @L from @level on, without this module's and the acrida preludes' own
 * and without C functions, one "  file:line: in ..." line each. */
static void format_traceback(lua_State *L, int level, luaL_Buffer *b)
{
    lua_Debug ar;
    int n = 0;
    for (int lv = level; n < TRACEBACK_MAX_FRAMES && lua_getstack(L, lv, &ar); lv++) {
        if (!lua_getinfo(L, "Snl", &ar)) continue;
        if (ar.what && strcmp(ar.what, "C") == 0) continue;
        if (strcmp(ar.short_src, PRELUDE_NAME) == 0 || strcmp(ar.short_src, "[acrida]") == 0)
            continue;
        char line[600];
        if (n++) luaL_addchar(b, '\n');
        if (ar.currentline > 0)
            snprintf(line, sizeof line, "  %s:%d: in ", ar.short_src, ar.currentline);
        else
            snprintf(line, sizeof line, "  %s: in ", ar.short_src);
        luaL_addstring(b, line);
        if (ar.name && *ar.namewhat)
            snprintf(line, sizeof line, "function '%s'", ar.name);
        else if (ar.what && *ar.what == 'm')
            snprintf(line, sizeof line, "main chunk");
        else
            snprintf(line, sizeof line, "function <%s:%d>", ar.short_src, ar.linedefined);
        luaL_addstring(b, line);
    }
}

/* Message handler: returns {message, traceback}. */
static int l_msgh(lua_State *L)
{
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
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    format_traceback(L, 1, &b);
    luaL_pushresult(&b);
    lua_rawseti(L, -2, 2);
    return 1;
}

/* Reports the error value at @idx (the handler's table, or a bare message when the handler did
 * not run, e.g. out of memory) of a listener of @event. */
static void report_error(lua_State *L, int idx, const char *event, acr_events_error_fn on_error,
                         void *ud)
{
    const char *msg = NULL, *tb = "";
    idx = idx < 0 ? lua_gettop(L) + idx + 1 : idx;
    if (lua_istable(L, idx)) {
        lua_rawgeti(L, idx, 1);
        lua_rawgeti(L, idx, 2);
        msg = lua_tostring(L, -2);
        tb = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
    } else {
        lua_pushvalue(L, idx);
        lua_pushliteral(L, "");
        msg = lua_tostring(L, -2);
    }
    if (!msg) msg = "error in an event listener";
    if (!on_error) {
        lua_getfield(L, LUA_REGISTRYINDEX, ERRH_KEY);
        errh_t *h = lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (h && h->fn) {
            on_error = h->fn;
            ud = h->ud;
        }
    }
    if (on_error)
        on_error(msg, tb, ud);
    else
        ACR_ERROR("error in a listener of %s: %s\n%s", ACR_ESC(event ? event : "an event"),
                  ACR_ESC_LONG(msg), ACR_ESC_LONG(tb));
    lua_pop(L, 2);
}

/* C.report(event_name, err): a listener raised during a Lua-side ev:fire(). */
static int l_report(lua_State *L)
{
    report_error(L, 2, lua_tostring(L, 1), NULL, NULL);
    return 0;
}

int acr_events_open(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, EVENTS_KEY);
    bool done = lua_istable(L, -1);
    lua_pop(L, 1);
    if (done) return 0;

    lua_getfield(L, LUA_REGISTRYINDEX, MODULE_KEY);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_getglobal(L, "package");
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            return -EINVAL;
        }
        lua_getfield(L, -1, "loaded");
        lua_remove(L, -2);
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            return -EINVAL;
        }
        lua_getfield(L, -1, "acrida");
        lua_remove(L, -2);
        if (!lua_istable(L, -1)) {
            lua_pop(L, 1);
            return -EINVAL;
        }
    }
    int module = lua_gettop(L);
    if (luaL_loadbuffer(L, prelude_src, sizeof prelude_src - 1, "=" PRELUDE_NAME) != 0) {
        ACR_ERROR("events prelude: %s", lua_tostring(L, -1));
        lua_settop(L, module - 1);
        return -ENOMEM;
    }
    lua_pushvalue(L, module);
    lua_createtable(L, (int)(sizeof standard_events / sizeof *standard_events), 0);
    for (size_t i = 0; i < sizeof standard_events / sizeof *standard_events; i++) {
        lua_pushstring(L, standard_events[i]);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, l_msgh);
    lua_setfield(L, -2, "msgh");
    lua_pushcfunction(L, l_report);
    lua_setfield(L, -2, "report");
    if (lua_pcall(L, 3, 1, 0) != 0) {
        ACR_ERROR("events prelude: %s", lua_tostring(L, -1));
        lua_settop(L, module - 1);
        return -ENOMEM;
    }
    lua_setfield(L, LUA_REGISTRYINDEX, EVENTS_KEY);
    lua_settop(L, module - 1);
    return 0;
}

void acr_events_set_error_handler(lua_State *L, acr_events_error_fn fn, void *ud)
{
    errh_t *h = lua_newuserdata(L, sizeof *h);
    h->fn = fn;
    h->ud = ud;
    lua_setfield(L, LUA_REGISTRYINDEX, ERRH_KEY);
}

/* Pushes the listener list of the standard event @name, or nothing (returns false). */
static bool push_listeners(lua_State *L, const char *name)
{
    lua_getfield(L, LUA_REGISTRYINDEX, EVENTS_KEY);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return false;
    }
    lua_getfield(L, -1, name);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 2);
        return false;
    }
    lua_getfield(L, -1, "_listeners");
    lua_remove(L, -2);
    lua_remove(L, -2);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return false;
    }
    return true;
}

bool acr_events_has_listeners(lua_State *L, const char *name)
{
    if (!push_listeners(L, name)) return false;
    bool any = lua_objlen(L, -1) > 0;
    lua_pop(L, 1);
    return any;
}

int acr_events_fire(lua_State *L, const char *name, int nargs, acr_events_error_fn on_error,
                    void *ud)
{
    int base = lua_gettop(L) - nargs; /* the arguments are base+1 .. base+nargs */
    if (base < 0 || !lua_checkstack(L, nargs + 6) || !push_listeners(L, name)) {
        lua_settop(L, base < 0 ? 0 : base);
        return 0;
    }
    int ls = lua_gettop(L);
    int n = (int)lua_objlen(L, ls), failed = 0;
    for (int i = 1; i <= n; i++) {
        lua_pushcfunction(L, l_msgh);
        lua_rawgeti(L, ls, i);
        for (int a = 1; a <= nargs; a++) lua_pushvalue(L, base + a);
        if (lua_pcall(L, nargs, 0, ls + 1) != 0) {
            failed++;
            report_error(L, -1, name, on_error, ud);
            lua_pop(L, 1);
        }
        lua_settop(L, ls);
    }
    lua_settop(L, base);
    return failed;
}

int acr_events_call(lua_State *L, int nargs, const char *what, acr_events_error_fn on_error,
                    void *ud)
{
    int fn = lua_gettop(L) - nargs; /* the function's index */
    lua_pushcfunction(L, l_msgh);
    lua_insert(L, fn);
    int failed = 0;
    if (lua_pcall(L, nargs, 0, fn) != 0) {
        failed = 1;
        report_error(L, -1, what, on_error, ud);
    }
    lua_settop(L, fn - 1);
    return failed;
}
