/*
 * Unit tests of common/lua_value.c: Lua values round-trip through msgpack (nested tables, arrays vs
 * maps, integers vs floats, non-UTF-8 strings as bin), values that cannot be sent are refused with
 * the path of the culprit (function, userdata, cycle, depth, size), hostile bytes are refused
 * without crashing, and the messages API (register_message, send_message through a fake sender,
 * dispatch with a handler, an unknown type, bad data and a handler error). The custom message and
 * the stats report's extra fields also go through proto/msg's encoders and decoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/events.h"
#include "common/lua_value.h"
#include "common/scenario.h"
#include "proto/msg.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lua_State *new_state(void)
{
    char err[256];
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    assert_int_equal(acr_scenario_open(L, "worker", err, sizeof err), 0);
    assert_int_equal(acr_events_open(L), 0);
    return L;
}

static void run(lua_State *L, const char *src)
{
    if (luaL_loadbuffer(L, src, strlen(src), "=t.lua") != 0 || lua_pcall(L, 0, 0, 0) != 0)
        fail_msg("lua: %s", lua_tostring(L, -1));
}

/* Encodes global @name, decodes it into global "back". Returns the encode result. */
static int roundtrip(lua_State *L, const char *name, char *err, size_t errlen)
{
    acr_buf_t b = {0};
    lua_getglobal(L, name);
    int r = acr_lua_value_encode(L, -1, "data", &b, err, errlen);
    lua_pop(L, 1);
    assert_int_equal(lua_gettop(L), 0);
    if (r == 0) {
        char derr[256];
        assert_int_equal(acr_lua_value_push(L, b.data, b.len, derr, sizeof derr), 0);
        lua_setglobal(L, "back");
    } else {
        assert_int_equal(b.len, 0);
    }
    acr_buf_free(&b);
    return r;
}

static void test_roundtrip(void **state)
{
    (void)state;
    lua_State *L = new_state();
    char err[256];
    run(L, "v = { name = 'x', n = 3, f = 1.5, neg = -70000, big = 2^53, t = true, no = false,\n"
           "  list = { 1, 'two', { three = 3 }, { 4, 5 } }, empty = {}, [7] = 'seven',\n"
           "  bytes = '\\255\\0\\1', ['a key'] = 'spaced', [true] = 'yes', [2.5] = 'half',\n"
           "  deep = { a = { b = { c = { d = 'e' } } } } }\n");
    assert_int_equal(roundtrip(L, "v", err, sizeof err), 0);
    run(L, "local function same(a, b, p)\n"
           "  assert(type(a) == type(b), p .. ': ' .. type(a) .. ' vs ' .. type(b))\n"
           "  if type(a) ~= 'table' then assert(a == b, p .. ': ' .. tostring(a) .. ' vs ' .. "
           "tostring(b)) return end\n"
           "  for k, x in pairs(a) do same(x, b[k], p .. '.' .. tostring(k)) end\n"
           "  for k in pairs(b) do assert(a[k] ~= nil, p .. ': extra ' .. tostring(k)) end\n"
           "end\n"
           "same(v, back, 'v')\n"
           "assert(#back.list == 4 and back.list[4][2] == 5)\n");
    /* scalars */
    run(L, "s = 'plain'; n = -1; z = 0; x = 1e300; h = 0.1; m = -2^63; u = 2^64");
    const char *names[] = {"s", "n", "z", "x", "h", "m", "u"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        assert_int_equal(roundtrip(L, names[i], err, sizeof err), 0);
        lua_getglobal(L, names[i]);
        lua_getglobal(L, "back");
        assert_true(lua_rawequal(L, -1, -2));
        lua_pop(L, 2);
    }
    /* nil as a value */
    lua_pushnil(L);
    lua_setglobal(L, "nothing");
    assert_int_equal(roundtrip(L, "nothing", err, sizeof err), 0);
    lua_close(L);
}

static void test_wire_forms(void **state)
{
    (void)state;
    lua_State *L = new_state();
    char err[256];
    acr_buf_t b = {0};
    /* array, empty table = map, integer forms, float, bin for invalid UTF-8 */
    run(L, "a = { 1, -1, 300, 0.5 }; e = {}; bin = '\\255'");
    lua_getglobal(L, "a");
    assert_int_equal(acr_lua_value_encode(L, -1, "data", &b, err, sizeof err), 0);
    const unsigned char want_a[] = {0x94, 0x01, 0xff, 0xcd, 0x01, 0x2c, 0xcb, 0x3f,
                                    0xe0, 0,    0,    0,    0,    0,    0};
    assert_int_equal(b.len, sizeof want_a);
    assert_memory_equal(b.data, want_a, sizeof want_a);
    acr_buf_reset(&b);
    lua_getglobal(L, "e");
    assert_int_equal(acr_lua_value_encode(L, -1, "data", &b, err, sizeof err), 0);
    assert_int_equal(b.len, 1);
    assert_int_equal((unsigned char)b.data[0], 0x80);
    acr_buf_reset(&b);
    lua_getglobal(L, "bin");
    assert_int_equal(acr_lua_value_encode(L, -1, "data", &b, err, sizeof err), 0);
    assert_int_equal(b.len, 3);
    assert_int_equal((unsigned char)b.data[0], 0xc4);
    lua_pop(L, 3);
    acr_buf_free(&b);
    lua_close(L);
}

static void test_refusals(void **state)
{
    (void)state;
    lua_State *L = new_state();
    char err[256];
    run(L, "f = { x = print }\n"
           "u = { list = { 1, 2, io.stdout } }\n"
           "c = { inner = {} }; c.inner.back = c\n"
           "d = {}; local t = d; for i = 1, 20 do t.n = {}; t = t.n end\n"
           "k = { [{}] = 1 }\n"
           "co = { coroutine.create(print) }\n"
           "big = { string.rep('x', 9 * 1024 * 1024) }\n"
           "shared = {}; dag = { a = shared, b = shared }\n");
    assert_int_equal(roundtrip(L, "f", err, sizeof err), -EINVAL);
    assert_string_equal(err, "data.x is a function, which cannot be sent");
    assert_int_equal(roundtrip(L, "u", err, sizeof err), -EINVAL);
    assert_string_equal(err, "data.list[3] is a userdata, which cannot be sent");
    assert_int_equal(roundtrip(L, "c", err, sizeof err), -EINVAL);
    assert_string_equal(err,
                        "data.inner.back is a table that contains itself (a cycle), which cannot "
                        "be sent");
    assert_int_equal(roundtrip(L, "d", err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "nests tables deeper than 14 levels"));
    assert_int_equal(roundtrip(L, "k", err, sizeof err), -EINVAL);
    assert_string_equal(err, "data has a table as a key, which cannot be sent");
    assert_int_equal(roundtrip(L, "co", err, sizeof err), -EINVAL);
    assert_string_equal(err, "data[1] is a coroutine, which cannot be sent");
    assert_int_equal(roundtrip(L, "big", err, sizeof err), -EFBIG);
    assert_non_null(strstr(err, "limit"));
    /* the same table twice (not a cycle) is fine */
    assert_int_equal(roundtrip(L, "dag", err, sizeof err), 0);
    lua_close(L);
}

static void test_hostile_bytes(void **state)
{
    (void)state;
    lua_State *L = new_state();
    char err[256];
    static const struct {
        const char *bytes;
        size_t len;
        const char *why;
    } bad[] = {
        {"\xdd\xff\xff\xff\xff", 5, "count larger"},
        {"\xdf\x7f\xff\xff\xff\x01", 6, "count larger"},
        {"\xdb\x00\x10\x00\x00ab", 7, "truncated"},
        {"\x81\xc0\x01", 3, "nil or NaN"},
        {"\x81\x90\x01", 3, "array or a map"},
        {"\xc1", 1, "reserved"},
        {"\xd4\x01\x02", 3, "ext"},
        {"\x01\x02", 2, "trailing"},
        {"\xcb\x00", 2, "truncated"},
        {"", 0, "no data"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(acr_lua_value_push(L, bad[i].bytes, bad[i].len, err, sizeof err), -EPROTO);
        if (!strstr(err, bad[i].why)) fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].why);
        assert_int_equal(lua_gettop(L), 0);
    }
    char deep[64];
    memset(deep, 0x91, sizeof deep);
    deep[sizeof deep - 1] = (char)0xc0;
    assert_int_equal(acr_lua_value_push(L, deep, sizeof deep, err, sizeof err), -EPROTO);
    assert_non_null(strstr(err, "deeply"));
    lua_close(L);
}

typedef struct sent {
    int n;
    char type[64], node[64];
    acr_buf_t data;
    int rc;
} sent_t;

static int fake_send(const char *type, const void *data, size_t len, const char *node_id, void *ud,
                     char *err, size_t errlen)
{
    sent_t *s = ud;
    s->n++;
    snprintf(s->type, sizeof s->type, "%s", type);
    snprintf(s->node, sizeof s->node, "%s", node_id ? node_id : "(all)");
    acr_buf_reset(&s->data);
    acr_buf_append(&s->data, data, len);
    if (s->rc == -ENOENT) snprintf(err, errlen, "no worker %s", node_id);
    return s->rc ? s->rc : 1;
}

typedef struct errs {
    int n;
    char msg[256];
} errs_t;

static void on_err(const char *msg, const char *tb, void *ud)
{
    errs_t *e = ud;
    (void)tb;
    e->n++;
    snprintf(e->msg, sizeof e->msg, "%s", msg);
}

static void test_messages(void **state)
{
    (void)state;
    lua_State *L = new_state();
    sent_t s = {0};
    errs_t e = {0};
    char err[256];
    assert_int_equal(acr_messages_open(L, fake_send, &s), 0);
    run(L, "got = {}\n"
           "acrida.runner:register_message('hello', function(msg)\n"
           "  got[#got + 1] = msg.type .. ':' .. msg.node_id .. ':' .. msg.data.items[2].v\n"
           "end)\n"
           "acrida.runner:register_message('boom', function(msg) error('handler failed') end)\n"
           "assert(acrida.runner:send_message('hello', { items = { {v = 1}, {v = 'two'} } }))\n");
    assert_int_equal(s.n, 1);
    assert_string_equal(s.type, "hello");
    assert_string_equal(s.node, "(all)");
    /* deliver what was sent back to the state */
    assert_int_equal(acr_messages_dispatch(L, "hello", s.data.data, s.data.len, "w1", on_err, &e,
                                           err, sizeof err),
                     1);
    run(L, "assert(got[1] == 'hello:w1:two', got[1])");
    /* node id, dot call, nil data, refusals */
    run(L, "assert(acrida.runner.send_message('hello', nil, 'node_a'))\n"
           "local ok, m = pcall(acrida.runner.send_message, acrida.runner, 'hello', { f = print "
           "})\n"
           "assert(not ok and m:find(\"send_message('hello'): data.f is a function, which "
           "cannot be sent\", 1, true), m)\n"
           "ok, m = pcall(acrida.runner.send_message, acrida.runner, 'stats', {})\n"
           "assert(not ok and m:find('built-in', 1, true), m)\n"
           "ok, m = pcall(acrida.runner.register_message, acrida.runner, 'spawn', print)\n"
           "assert(not ok and m:find('built-in', 1, true), m)\n"
           "ok, m = pcall(acrida.runner.register_message, acrida.runner, 'x', 3)\n"
           "assert(not ok and m:find('must be a function', 1, true), m)\n"
           "ok, m = pcall(acrida.runner.send_message, acrida.runner, '', 1)\n"
           "assert(not ok and m:find('1 to 256 bytes', 1, true), m)\n"
           "ok, m = pcall(acrida.runner.send_message, acrida.runner, 'x', 1, 5)\n"
           "assert(not ok and m:find('node_id must be a string', 1, true), m)\n");
    assert_int_equal(s.n, 2);
    assert_string_equal(s.node, "node_a");
    assert_int_equal(s.data.len, 1); /* nil */
    assert_int_equal((unsigned char)s.data.data[0], 0xc0);
    s.rc = -ENOENT;
    run(L, "local ok, m = acrida.runner:send_message('hello', 1, 'gone')\n"
           "assert(ok == false and m == 'no worker gone', tostring(m))\n");
    /* a handler error is reported, unknown types are counted once, bad data is refused */
    assert_int_equal(acr_messages_dispatch(L, "boom", NULL, 0, "w1", on_err, &e, err, sizeof err),
                     1);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.msg, "t.lua:5: handler failed");
    assert_int_equal(acr_messages_dispatch(L, "nobody", NULL, 0, "w1", on_err, &e, err, sizeof err),
                     0);
    assert_int_equal(acr_messages_dispatch(L, "nobody", NULL, 0, "w1", on_err, &e, err, sizeof err),
                     0);
    assert_int_equal(
        acr_messages_dispatch(L, "hello", "\xc1", 1, "w1", on_err, &e, err, sizeof err), -EPROTO);
    assert_int_equal(lua_gettop(L), 0);
    acr_buf_free(&s.data);
    lua_close(L);
}

/* The wire: a custom message and a stats report with extra fields through proto/msg. */
static void test_proto(void **state)
{
    (void)state;
    lua_State *L = new_state();
    char err[256];
    acr_buf_t data = {0}, frame = {0};
    run(L, "v = { deep = { list = { 1, 2, 3 } }, s = 'x' }\n"
           "extra = { stats = 'not mine', mine = { 1, 2 }, note = 'hi' }\n");
    lua_getglobal(L, "v");
    assert_int_equal(acr_lua_value_encode(L, -1, "data", &data, err, sizeof err), 0);
    lua_pop(L, 1);
    assert_int_equal(acr_msg_encode_custom(&frame, "my_type", data.data, data.len, "node_1"), 0);
    assert_int_equal(acr_msg_encode_custom(&frame, "stats", NULL, 0, "node_1"), -EINVAL);
    acr_msg_t m;
    assert_int_equal(acr_msg_decode(frame.data, frame.len, &m, err, sizeof err), 0);
    assert_int_equal(m.type, ACR_MSG_CUSTOM);
    assert_string_equal(m.type_name, "my_type");
    assert_int_equal(m.data_len, data.len);
    assert_memory_equal(m.data, data.data, data.len);
    acr_msg_free(&m);

    /* stats + extras */
    acr_buf_reset(&data);
    acr_buf_reset(&frame);
    uint32_t np = 0;
    lua_getglobal(L, "extra");
    assert_int_equal(
        acr_lua_value_encode_pairs(L, -1, "data", acr_msg_stats_keys, &data, &np, err, sizeof err),
        0);
    lua_pop(L, 1);
    assert_int_equal(np, 2);
    acr_stats_t *st = acr_stats_new(1000);
    assert_non_null(st);
    assert_int_equal(acr_msg_encode_stats_extra(&frame, st, NULL, 0, 4, 1, false, data.data,
                                                data.len, np, "node_1"),
                     0);
    assert_int_equal(acr_msg_decode(frame.data, frame.len, &m, err, sizeof err), 0);
    assert_int_equal(m.type, ACR_MSG_STATS);
    assert_int_equal(m.user_count, 4);
    assert_non_null(m.data);
    assert_int_equal(acr_lua_value_push(L, m.data, m.data_len, err, sizeof err), 0);
    lua_setglobal(L, "got");
    run(L, "assert(got.note == 'hi' and got.mine[2] == 2 and got.stats == nil)\n"
           "local n = 0; for _ in pairs(got) do n = n + 1 end; assert(n == 2)\n");
    acr_msg_free(&m);
    /* a plain report has no extra data */
    acr_buf_reset(&frame);
    assert_int_equal(acr_msg_encode_stats(&frame, st, NULL, 0, 0, 2, false, "node_1"), 0);
    assert_int_equal(acr_msg_decode(frame.data, frame.len, &m, err, sizeof err), 0);
    assert_null(m.data);
    acr_msg_free(&m);
    acr_stats_free(st);
    acr_buf_free(&data);
    acr_buf_free(&frame);
    lua_close(L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_wire_forms),
        cmocka_unit_test(test_refusals),  cmocka_unit_test(test_hostile_bytes),
        cmocka_unit_test(test_messages),  cmocka_unit_test(test_proto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
