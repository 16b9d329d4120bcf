/*
 * Unit tests of the scenario's events (common/events.c) in a plain Lua state with an `acrida`
 * table in package.loaded: listeners in registration order, remove_listener, a listener error
 * reported with its message and file:line traceback while the others still run (from C and from a
 * Lua-side fire, with and without a registered handler), changes to the listener list during a
 * fire, custom events, bad calls, has_listeners and a second acr_events_open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/events.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

typedef struct errs {
    int n;
    char msg[4][256];
    char tb[4][1024];
} errs_t;

static void on_err(const char *msg, const char *tb, void *ud)
{
    errs_t *e = ud;
    if (e->n < 4) {
        snprintf(e->msg[e->n], sizeof e->msg[0], "%s", msg);
        snprintf(e->tb[e->n], sizeof e->tb[0], "%s", tb);
    }
    e->n++;
}

static lua_State *new_state(void)
{
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "acrida");
    lua_setfield(L, -2, "acrida");
    lua_pop(L, 2);
    assert_int_equal(acr_events_open(L), 0);
    return L;
}

/* Runs @src as chunk "=t.lua"; asserts it succeeds. */
static void run(lua_State *L, const char *src)
{
    if (luaL_loadbuffer(L, src, strlen(src), "=t.lua") != 0 || lua_pcall(L, 0, 0, 0) != 0) {
        fail_msg("lua: %s", lua_tostring(L, -1));
    }
}

static const char *get_str(lua_State *L, const char *global)
{
    lua_getglobal(L, global);
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s ? s : "(nil)";
}

static void test_order_and_args(void **state)
{
    (void)state;
    lua_State *L = new_state();
    run(L, "log = ''\n"
           "acrida.events.test_start:add_listener(function(env) log = log .. 'a' .. env.role end)\n"
           "acrida.events.test_start:add_listener(function(env, x) log = log .. 'b' .. x end)\n");
    assert_true(acr_events_has_listeners(L, "test_start"));
    assert_false(acr_events_has_listeners(L, "test_stop"));
    assert_false(acr_events_has_listeners(L, "no_such_event"));
    int top = lua_gettop(L);
    lua_newtable(L);
    lua_pushliteral(L, "worker");
    lua_setfield(L, -2, "role");
    lua_pushinteger(L, 7);
    assert_int_equal(acr_events_fire(L, "test_start", 2, NULL, NULL), 0);
    assert_int_equal(lua_gettop(L), top);
    assert_string_equal(get_str(L, "log"), "aworkerb7");
    /* no listener and unknown names: the arguments are popped, nothing runs */
    lua_pushinteger(L, 1);
    assert_int_equal(acr_events_fire(L, "test_stop", 1, NULL, NULL), 0);
    lua_pushinteger(L, 1);
    assert_int_equal(acr_events_fire(L, "nope", 1, NULL, NULL), 0);
    assert_int_equal(lua_gettop(L), top);
    lua_close(L);
}

static void test_error_isolated(void **state)
{
    (void)state;
    lua_State *L = new_state();
    errs_t e = {0};
    run(L, "log = ''\n"
           "local function boom(n)\n"
           "  error('boom ' .. n)\n"
           "end\n"
           "acrida.events.request:add_listener(function(r) log = log .. '1' end)\n"
           "acrida.events.request:add_listener(function(r) boom(r.n) end)\n"
           "acrida.events.request:add_listener(function(r) log = log .. '3' end)\n");
    lua_newtable(L);
    lua_pushinteger(L, 5);
    lua_setfield(L, -2, "n");
    assert_int_equal(acr_events_fire(L, "request", 1, on_err, &e), 1);
    assert_string_equal(get_str(L, "log"), "13");
    assert_int_equal(e.n, 1);
    assert_string_equal(e.msg[0], "t.lua:3: boom 5");
    assert_non_null(strstr(e.tb[0], "t.lua:3: in function 'boom'"));
    assert_non_null(strstr(e.tb[0], "t.lua:6:"));
    assert_null(strstr(e.tb[0], "acrida.events"));
    assert_int_equal(lua_gettop(L), 0);

    /* a non-string error value */
    run(L, "acrida.events.quitting:add_listener(function() error({}) end)\n"
           "acrida.events.quitting:add_listener(function() error(setmetatable({}, {__tostring = "
           "function() return 'custom' end})) end)\n");
    assert_int_equal(acr_events_fire(L, "quitting", 0, on_err, &e), 2);
    assert_int_equal(e.n, 3);
    assert_string_equal(e.msg[1], "error object is a table value");
    assert_string_equal(e.msg[2], "custom");
    lua_close(L);
}

static void test_lua_fire_uses_handler(void **state)
{
    (void)state;
    lua_State *L = new_state();
    errs_t e = {0};
    /* before a handler is set, errors are logged and do not propagate */
    run(L, "ev = acrida.event('my_event')\n"
           "log = ''\n"
           "ev:add_listener(function(a, b) log = log .. a .. b end)\n"
           "ev:add_listener(function() error('listener failed') end)\n"
           "ev:add_listener(function(a) log = log .. a end)\n"
           "failed = ev:fire('x', 'y')\n");
    assert_string_equal(get_str(L, "log"), "xyx");
    assert_string_equal(get_str(L, "failed"), "1");
    acr_events_set_error_handler(L, on_err, &e);
    run(L, "ev:fire('p', 'q')\n"
           "acrida.events.init:add_listener(function() error('init failed') end)\n"
           "acrida.events.init:fire()\n");
    assert_int_equal(e.n, 2);
    assert_string_equal(e.msg[0], "t.lua:4: listener failed");
    assert_non_null(strstr(e.tb[0], "t.lua:4:"));
    assert_string_equal(e.msg[1], "t.lua:2: init failed");
    /* acr_events_fire with no callback goes to the handler too */
    assert_int_equal(acr_events_fire(L, "init", 0, NULL, NULL), 1);
    assert_int_equal(e.n, 3);
    lua_close(L);
}

static void test_remove_and_changes_during_fire(void **state)
{
    (void)state;
    lua_State *L = new_state();
    run(L, "log = ''\n"
           "local ev = acrida.events.user_start\n"
           "local function a() log = log .. 'a' end\n"
           "local function b() log = log .. 'b'; ev:remove_listener(b) end\n"
           "local function c() log = log .. 'c'; ev:add_listener(a) end\n"
           "ev:add_listener(a); ev:add_listener(b); ev:add_listener(c)\n"
           "ev:fire()\n" /* abc, then the list is a c a */
           "log = log .. '|'\n"
           "ev:fire()\n" /* a c a, then a c a a */
           "assert(ev:remove_listener(a) == true)\n"
           "assert(ev:remove_listener(function() end) == false)\n"
           "log = log .. '|'\n"
           "ev:fire()\n"); /* c a a (first a removed) -> c adds a */
    assert_string_equal(get_str(L, "log"), "abc|aca|caa");
    lua_close(L);
}

static void test_bad_calls(void **state)
{
    (void)state;
    lua_State *L = new_state();
    run(L, "local ok, e = pcall(function() acrida.events.init:add_listener('x') end)\n"
           "assert(not ok and e:find('t.lua:1: init:add_listener expects a function, got a "
           "string', 1, true), e)\n"
           "ok, e = pcall(function() acrida.events.init.add_listener({}, print) end)\n"
           "assert(not ok and e:find('with a colon', 1, true), e)\n"
           "ok, e = pcall(function() acrida.events.init.fire() end)\n"
           "assert(not ok and e:find('with a colon', 1, true), e)\n"
           "ok, e = pcall(acrida.event, 3)\n"
           "assert(not ok and e:find('name must be a string', 1, true), e)\n"
           "assert(tostring(acrida.events.test_stop) == 'acrida event test_stop')\n"
           "assert(tostring(acrida.event()) == 'acrida event custom event')\n"
           "for _, n in ipairs({'init', 'test_start', 'test_stop', 'spawning_complete',\n"
           "  'user_start', 'user_stop', 'request', 'report_to_master', 'worker_report',\n"
           "  'quitting'}) do assert(acrida.events[n], n) end\n");
    /* replacing acrida.events from the scenario does not break the C side */
    run(L, "n = 0\n"
           "acrida.events.test_stop:add_listener(function() n = n + 1 end)\n"
           "acrida.events = nil\n");
    assert_int_equal(acr_events_open(L), 0); /* second call: no-op */
    assert_int_equal(acr_events_fire(L, "test_stop", 0, NULL, NULL), 0);
    assert_string_equal(get_str(L, "n"), "1");
    lua_close(L);
}

static void test_no_module(void **state)
{
    (void)state;
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    assert_int_equal(acr_events_open(L), -EINVAL);
    assert_false(acr_events_has_listeners(L, "init"));
    lua_pushinteger(L, 1);
    assert_int_equal(acr_events_fire(L, "init", 1, NULL, NULL), 0);
    assert_int_equal(lua_gettop(L), 0);
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_args),
        cmocka_unit_test(test_error_isolated),
        cmocka_unit_test(test_lua_fire_uses_handler),
        cmocka_unit_test(test_remove_and_changes_during_fire),
        cmocka_unit_test(test_bad_calls),
        cmocka_unit_test(test_no_module),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
