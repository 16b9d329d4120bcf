/*
 * Lua values <-> msgpack (common/lua_value.h) with a small writer and reader of their own: the
 * writer walks the Lua value (cycle set on the stack, depth and size bounds, the path of each
 * element kept for error messages); the reader checks every length against the bytes left before
 * it touches them. And the messages' Lua API: acrida.runner:register_message / :send_message
 * (handlers in the registry under HANDLERS_KEY, the sender as a closure upvalue) and the dispatch
 * of a received message to its handler.
 */
#include "common/lua_value.h"

#include "common/log.h"
#include "proto/msg.h"
#include "proto/proto.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define HANDLERS_KEY "acrida.messages"      /* registry: type -> handler */
#define WARNED_KEY "acrida.messages.warned" /* registry: type -> true once warned */
#define MODULE_KEY "acrida.module"          /* registry: the acrida module (common/scenario.c) */
#define PATH_MAX_LEN 200
#define TYPE_MAX_LEN 256

/* ---- encoding ---- */

typedef struct enc {
    lua_State *L;
    acr_buf_t *b;
    size_t start;
    int seen; /* stack index of the table set of the tables being encoded */
    char path[PATH_MAX_LEN + 8];
    char *err;
    size_t errlen;
} enc_t;

static int put(enc_t *e, const void *p, size_t n)
{
    if (e->b->len - e->start + n > ACR_LUA_VALUE_MAX_BYTES) {
        snprintf(e->err, e->errlen, "%s is larger than the %u-byte limit of a message", e->path,
                 ACR_LUA_VALUE_MAX_BYTES);
        return -EFBIG;
    }
    if (acr_buf_append(e->b, p, n) < 0) {
        snprintf(e->err, e->errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* A type byte followed by @n big-endian bytes of @v. */
static int put_be(enc_t *e, uint8_t type, uint64_t v, unsigned n)
{
    uint8_t buf[9];
    buf[0] = type;
    for (unsigned i = 0; i < n; i++) buf[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return put(e, buf, n + 1);
}

static int put_int(enc_t *e, int64_t v)
{
    if (v >= 0) {
        if (v < 128) return put_be(e, (uint8_t)v, 0, 0);
        if (v <= UINT8_MAX) return put_be(e, 0xcc, (uint64_t)v, 1);
        if (v <= UINT16_MAX) return put_be(e, 0xcd, (uint64_t)v, 2);
        if (v <= UINT32_MAX) return put_be(e, 0xce, (uint64_t)v, 4);
        return put_be(e, 0xcf, (uint64_t)v, 8);
    }
    if (v >= -32) return put_be(e, (uint8_t)(int8_t)v, 0, 0);
    if (v >= INT8_MIN) return put_be(e, 0xd0, (uint64_t)v & 0xff, 1);
    if (v >= INT16_MIN) return put_be(e, 0xd1, (uint64_t)v & 0xffff, 2);
    if (v >= INT32_MIN) return put_be(e, 0xd2, (uint64_t)v & 0xffffffffu, 4);
    return put_be(e, 0xd3, (uint64_t)v, 8);
}

static int put_num(enc_t *e, double d)
{
    /* integral and exactly representable as int64: [-2^63, 2^63) */
    if (d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
        return put_int(e, (int64_t)d);
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return put_be(e, 0xcb, bits, 8);
}

static int put_str(enc_t *e, const char *s, size_t n)
{
    int r;
    if (acr_proto_utf8_valid(s, n)) {
        if (n < 32)
            r = put_be(e, (uint8_t)(0xa0 | n), 0, 0);
        else if (n <= UINT8_MAX)
            r = put_be(e, 0xd9, n, 1);
        else if (n <= UINT16_MAX)
            r = put_be(e, 0xda, n, 2);
        else
            r = put_be(e, 0xdb, n, 4);
    } else if (n <= UINT8_MAX) {
        r = put_be(e, 0xc4, n, 1);
    } else if (n <= UINT16_MAX) {
        r = put_be(e, 0xc5, n, 2);
    } else {
        r = put_be(e, 0xc6, n, 4);
    }
    return r ? r : put(e, s, n);
}

static int put_container(enc_t *e, bool map, uint32_t n)
{
    if (n < 16) return put_be(e, (uint8_t)((map ? 0x80 : 0x90) | n), 0, 0);
    if (n <= UINT16_MAX) return put_be(e, map ? 0xde : 0xdc, n, 2);
    return put_be(e, map ? 0xdf : 0xdd, n, 4);
}

/* Appends the key at @kidx to e->path ("[3]", ".name" or "[\"a b\"]"); returns the old length. */
static size_t path_push(enc_t *e, int kidx)
{
    size_t old = strlen(e->path), room = sizeof e->path - old;
    char *p = e->path + old;
    if (old >= PATH_MAX_LEN) {
        if (!strstr(e->path, "...")) snprintf(p, room, "...");
        return old;
    }
    if (lua_type(e->L, kidx) == LUA_TNUMBER) {
        snprintf(p, room, "[%.14g]", lua_tonumber(e->L, kidx));
    } else if (lua_type(e->L, kidx) == LUA_TSTRING) {
        size_t n;
        const char *k = lua_tolstring(e->L, kidx, &n);
        bool ident = n > 0 && n < 40 && !(k[0] >= '0' && k[0] <= '9');
        for (size_t i = 0; i < n && ident; i++)
            ident = (k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
                    (k[i] >= '0' && k[i] <= '9') || k[i] == '_';
        if (ident)
            snprintf(p, room, ".%s", k);
        else
            snprintf(p, room, "[\"%.40s%s\"]", k, n > 40 ? "..." : "");
    } else {
        snprintf(p, room, "[%s]", lua_toboolean(e->L, kidx) ? "true" : "false");
    }
    return old;
}

static int refuse(enc_t *e, const char *fmt, const char *arg)
{
    char what[120];
    snprintf(what, sizeof what, fmt, arg);
    snprintf(e->err, e->errlen, "%s %s, which cannot be sent", e->path, what);
    return -EINVAL;
}

static int enc_value(enc_t *e, int idx, int depth);

/* Whether the table at @idx is an array (keys exactly 1..n, n > 0); *n its length. */
static bool is_array(lua_State *L, int idx, uint32_t *n)
{
    size_t count = 0;
    double max = 0;
    bool arr = true;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_pop(L, 1);
        count++;
        if (arr) {
            double k = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
            if (k >= 1 && k == floor(k) && k <= UINT32_MAX) {
                if (k > max) max = k;
            } else {
                arr = false;
            }
        }
    }
    *n = count > UINT32_MAX ? UINT32_MAX : (uint32_t)count;
    return arr && count > 0 && max == (double)count;
}

static int enc_key(enc_t *e, int kidx)
{
    switch (lua_type(e->L, kidx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(e->L, kidx, &n);
        return put_str(e, s, n);
    }
    case LUA_TNUMBER:
        if (isnan(lua_tonumber(e->L, kidx))) return refuse(e, "has a NaN key%s", "");
        return put_num(e, lua_tonumber(e->L, kidx));
    case LUA_TBOOLEAN:
        return put_be(e, lua_toboolean(e->L, kidx) ? 0xc3 : 0xc2, 0, 0);
    default:
        return refuse(e, "has a %s as a key", lua_typename(e->L, lua_type(e->L, kidx)));
    }
}

/* The pairs of the table at @idx (absolute); @skip: string keys left out (pairs mode). */
static int enc_pairs(enc_t *e, int idx, int depth, const char *const *skip, uint32_t *written)
{
    lua_State *L = e->L;
    int r = 0;
    *written = 0;
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        int k = lua_gettop(L) - 1;
        if (skip && lua_type(L, k) == LUA_TSTRING) {
            bool skipped = false;
            for (const char *const *s = skip; *s && !skipped; s++)
                skipped = strcmp(*s, lua_tostring(L, k)) == 0;
            if (skipped) {
                lua_pop(L, 1);
                continue;
            }
        }
        r = enc_key(e, k);
        size_t old = path_push(e, k);
        if (!r) r = enc_value(e, k + 1, depth);
        e->path[old] = '\0';
        lua_pop(L, 1);
        if (r) {
            lua_pop(L, 1);
            return r;
        }
        (*written)++;
    }
    return 0;
}

static int enc_table(enc_t *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth >= ACR_LUA_VALUE_MAX_DEPTH) {
        char lim[16];
        snprintf(lim, sizeof lim, "%d", ACR_LUA_VALUE_MAX_DEPTH);
        return refuse(e, "nests tables deeper than %s levels", lim);
    }
    if (!lua_checkstack(L, 8)) return refuse(e, "is nested too deeply%s", "");
    lua_pushvalue(L, idx);
    lua_rawget(L, e->seen);
    bool cycle = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (cycle) return refuse(e, "is a table that contains itself (a cycle)%s", "");
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, e->seen);

    uint32_t n, written;
    int r;
    if (is_array(L, idx, &n)) {
        r = put_container(e, false, n);
        for (uint32_t i = 1; i <= n && !r; i++) {
            lua_pushnumber(L, i);
            size_t old = path_push(e, lua_gettop(L));
            lua_pop(L, 1);
            lua_rawgeti(L, idx, (int)i);
            r = enc_value(e, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
            e->path[old] = '\0';
        }
    } else {
        r = put_container(e, true, n);
        if (!r) r = enc_pairs(e, idx, depth + 1, NULL, &written);
    }
    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, e->seen);
    return r;
}

static int enc_value(enc_t *e, int idx, int depth)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return put_be(e, 0xc0, 0, 0);
    case LUA_TBOOLEAN:
        return put_be(e, lua_toboolean(L, idx) ? 0xc3 : 0xc2, 0, 0);
    case LUA_TNUMBER:
        return put_num(e, lua_tonumber(L, idx));
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        return put_str(e, s, n);
    }
    case LUA_TTABLE:
        return enc_table(e, idx, depth);
    case LUA_TFUNCTION:
        return refuse(e, "is a function%s", "");
    case LUA_TUSERDATA:
    case LUA_TLIGHTUSERDATA:
        return refuse(e, "is a userdata%s", "");
    case LUA_TTHREAD:
        return refuse(e, "is a coroutine%s", "");
    default:
        return refuse(e, "is a %s value", luaL_typename(L, idx));
    }
}

static int enc_begin(enc_t *e, lua_State *L, int *idx, const char *what, acr_buf_t *b, char *err,
                     size_t errlen)
{
    *e = (enc_t){.L = L, .b = b, .start = b->len, .err = err, .errlen = errlen};
    if (errlen) err[0] = '\0';
    snprintf(e->path, sizeof e->path, "%.*s", PATH_MAX_LEN / 2, what ? what : "value");
    if (*idx < 0 && *idx > LUA_REGISTRYINDEX) *idx = lua_gettop(L) + *idx + 1;
    if (!lua_checkstack(L, 10)) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    lua_newtable(L);
    e->seen = lua_gettop(L);
    return 0;
}

static int enc_end(enc_t *e, int r)
{
    lua_settop(e->L, e->seen - 1);
    if (r) e->b->len = e->start;
    return r;
}

int acr_lua_value_encode(lua_State *L, int idx, const char *what, acr_buf_t *b, char *err,
                         size_t errlen)
{
    enc_t e;
    int r = enc_begin(&e, L, &idx, what, b, err, errlen);
    if (r) return r;
    return enc_end(&e, enc_value(&e, idx, 0));
}

int acr_lua_value_encode_pairs(lua_State *L, int idx, const char *what, const char *const *skip,
                               acr_buf_t *b, uint32_t *npairs, char *err, size_t errlen)
{
    enc_t e;
    *npairs = 0;
    int r = enc_begin(&e, L, &idx, what, b, err, errlen);
    if (r) return r;
    if (!lua_istable(L, idx)) return enc_end(&e, refuse(&e, "is not a table%s", ""));
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, e.seen);
    return enc_end(&e, enc_pairs(&e, idx, 1, skip, npairs));
}

/* ---- decoding ---- */

typedef struct dec {
    lua_State *L;
    const uint8_t *p;
    size_t len, off;
    char *err;
    size_t errlen;
} dec_t;

static int dfail(dec_t *d, const char *what)
{
    snprintf(d->err, d->errlen, "malformed data at byte %zu: %s", d->off, what);
    return -EPROTO;
}

static int rd(dec_t *d, unsigned n, uint64_t *v)
{
    if (d->len - d->off < n) return dfail(d, "truncated");
    *v = 0;
    for (unsigned i = 0; i < n; i++) *v = (*v << 8) | d->p[d->off + i];
    d->off += n;
    return 0;
}

static int dec_value(dec_t *d, int depth);

static int dec_bytes(dec_t *d, uint64_t n)
{
    if (d->len - d->off < n) return dfail(d, "truncated string");
    lua_pushlstring(d->L, (const char *)d->p + d->off, (size_t)n);
    d->off += (size_t)n;
    return 0;
}

static int dec_container(dec_t *d, uint64_t n, bool map, int depth)
{
    lua_State *L = d->L;
    if (depth >= ACR_LUA_VALUE_MAX_DEPTH + 2) return dfail(d, "nested too deeply");
    if (n > (d->len - d->off) / (map ? 2 : 1)) return dfail(d, "count larger than the data");
    if (!lua_checkstack(L, 6)) return dfail(d, "nested too deeply");
    lua_createtable(L, map ? 0 : (int)(n < 1024 ? n : 1024), map ? (int)(n < 1024 ? n : 1024) : 0);
    for (uint64_t i = 0; i < n; i++) {
        int r;
        if (map) {
            size_t at = d->off;
            r = dec_value(d, depth + 1);
            if (r) return r;
            int kt = lua_type(L, -1);
            if (kt == LUA_TNIL || kt == LUA_TTABLE ||
                (kt == LUA_TNUMBER && isnan(lua_tonumber(L, -1)))) {
                d->off = at;
                return dfail(d, kt == LUA_TTABLE ? "a map key is an array or a map"
                                                 : "a map key is nil or NaN");
            }
            r = dec_value(d, depth + 1);
            if (r) return r;
            lua_rawset(L, -3);
        } else {
            r = dec_value(d, depth + 1);
            if (r) return r;
            lua_rawseti(L, -2, (int)(i + 1));
        }
    }
    return 0;
}

static int dec_value(dec_t *d, int depth)
{
    lua_State *L = d->L;
    uint64_t v = 0;
    int r;
    if (d->off >= d->len) return dfail(d, "truncated");
    uint8_t t = d->p[d->off++];
    if (t <= 0x7f) {
        lua_pushnumber(L, t);
        return 0;
    }
    if (t >= 0xe0) {
        lua_pushnumber(L, (int8_t)t);
        return 0;
    }
    if (t <= 0x8f) return dec_container(d, t & 0x0f, true, depth);
    if (t <= 0x9f) return dec_container(d, t & 0x0f, false, depth);
    if (t <= 0xbf) return dec_bytes(d, t & 0x1f);
    switch (t) {
    case 0xc0:
        lua_pushnil(L);
        return 0;
    case 0xc2:
    case 0xc3:
        lua_pushboolean(L, t == 0xc3);
        return 0;
    case 0xc4:
    case 0xd9:
        return (r = rd(d, 1, &v)) ? r : dec_bytes(d, v);
    case 0xc5:
    case 0xda:
        return (r = rd(d, 2, &v)) ? r : dec_bytes(d, v);
    case 0xc6:
    case 0xdb:
        return (r = rd(d, 4, &v)) ? r : dec_bytes(d, v);
    case 0xca: {
        if ((r = rd(d, 4, &v))) return r;
        uint32_t b32 = (uint32_t)v;
        float f;
        memcpy(&f, &b32, sizeof f);
        lua_pushnumber(L, f);
        return 0;
    }
    case 0xcb: {
        if ((r = rd(d, 8, &v))) return r;
        double f;
        memcpy(&f, &v, sizeof f);
        lua_pushnumber(L, f);
        return 0;
    }
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        if ((r = rd(d, 1u << (t - 0xcc), &v))) return r;
        lua_pushnumber(L, (double)v);
        return 0;
    case 0xd0:
        if ((r = rd(d, 1, &v))) return r;
        lua_pushnumber(L, (int8_t)v);
        return 0;
    case 0xd1:
        if ((r = rd(d, 2, &v))) return r;
        lua_pushnumber(L, (int16_t)v);
        return 0;
    case 0xd2:
        if ((r = rd(d, 4, &v))) return r;
        lua_pushnumber(L, (int32_t)v);
        return 0;
    case 0xd3:
        if ((r = rd(d, 8, &v))) return r;
        lua_pushnumber(L, (double)(int64_t)v);
        return 0;
    case 0xdc:
        return (r = rd(d, 2, &v)) ? r : dec_container(d, v, false, depth);
    case 0xdd:
        return (r = rd(d, 4, &v)) ? r : dec_container(d, v, false, depth);
    case 0xde:
        return (r = rd(d, 2, &v)) ? r : dec_container(d, v, true, depth);
    case 0xdf:
        return (r = rd(d, 4, &v)) ? r : dec_container(d, v, true, depth);
    default:
        d->off--;
        return dfail(d, t == 0xc1 ? "reserved byte 0xc1" : "ext types are not supported");
    }
}

int acr_lua_value_push(lua_State *L, const void *p, size_t len, char *err, size_t errlen)
{
    dec_t d = {.L = L, .p = p, .len = len, .off = 0, .err = err, .errlen = errlen};
    int top = lua_gettop(L);
    if (errlen) err[0] = '\0';
    if (!p || len == 0) {
        snprintf(err, errlen, "no data");
        return -EPROTO;
    }
    int r = dec_value(&d, 0);
    if (r == 0 && d.off != len) {
        snprintf(err, errlen, "%zu trailing bytes after the data", len - d.off);
        r = -EPROTO;
    }
    if (r) lua_settop(L, top);
    return r;
}

/* ---- messages ---- */

typedef struct sender {
    acr_messages_send_fn fn;
    void *ud;
} sender_t;

/* Removes a leading runner table (a call with a colon) so that arguments start at 1. */
static void drop_self(lua_State *L)
{
    if (lua_istable(L, 1)) lua_remove(L, 1);
}

static const char *check_type(lua_State *L, const char *fn)
{
    size_t n;
    if (lua_type(L, 1) != LUA_TSTRING) {
        luaL_error(L, "%s: the message type must be a string, got %s", fn, luaL_typename(L, 1));
        return NULL;
    }
    const char *t = lua_tolstring(L, 1, &n);
    if (n == 0 || n > TYPE_MAX_LEN || !acr_proto_utf8_valid(t, n) || strlen(t) != n)
        luaL_error(L, "%s: the message type must be 1 to %d bytes of UTF-8 text", fn, TYPE_MAX_LEN);
    if (acr_msg_type_is_builtin(t))
        luaL_error(L, "%s: '%s' is a built-in message type of the protocol; choose another name",
                   fn, t);
    return t;
}

static int l_register(lua_State *L)
{
    drop_self(L);
    const char *t = check_type(L, "register_message");
    if (lua_type(L, 2) != LUA_TFUNCTION)
        return luaL_error(L, "register_message('%s', fn): fn must be a function(msg), got %s", t,
                          luaL_typename(L, 2));
    lua_getfield(L, LUA_REGISTRYINDEX, HANDLERS_KEY);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_rawset(L, -3);
    return 0;
}

static int l_send(lua_State *L)
{
    sender_t *s = lua_touserdata(L, lua_upvalueindex(1));
    char err[512];
    drop_self(L);
    const char *t = check_type(L, "send_message");
    const char *node = NULL;
    if (!lua_isnoneornil(L, 3)) {
        if (lua_type(L, 3) != LUA_TSTRING)
            return luaL_error(L, "send_message: node_id must be a string or nil, got %s",
                              luaL_typename(L, 3));
        node = lua_tostring(L, 3);
    }
    acr_buf_t b = {0};
    int r = acr_lua_value_encode(L, 2, "data", &b, err, sizeof err);
    if (r < 0) {
        acr_buf_free(&b);
        return luaL_error(L, "send_message('%s'): %s", t, err);
    }
    err[0] = '\0';
    r = s && s->fn ? s->fn(t, b.data, b.len, node, s->ud, err, sizeof err) : -ENOTCONN;
    acr_buf_free(&b);
    if (r == -EINVAL) return luaL_error(L, "send_message('%s'): %s", t, err);
    if (r < 0) {
        lua_pushboolean(L, 0);
        lua_pushstring(L, err[0] ? err : strerror(-r));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

int acr_messages_open(lua_State *L, acr_messages_send_fn send, void *ud)
{
    lua_getfield(L, LUA_REGISTRYINDEX, MODULE_KEY);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return -EINVAL;
    }
    lua_getfield(L, -1, "runner");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "runner");
    }
    lua_getfield(L, LUA_REGISTRYINDEX, HANDLERS_KEY);
    if (!lua_istable(L, -1)) {
        lua_newtable(L);
        lua_setfield(L, LUA_REGISTRYINDEX, HANDLERS_KEY);
        lua_newtable(L);
        lua_setfield(L, LUA_REGISTRYINDEX, WARNED_KEY);
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_register);
    lua_setfield(L, -2, "register_message");
    sender_t *s = lua_newuserdata(L, sizeof *s);
    s->fn = send;
    s->ud = ud;
    lua_pushcclosure(L, l_send, 1);
    lua_setfield(L, -2, "send_message");
    lua_pop(L, 2);
    return 0;
}

int acr_messages_dispatch(lua_State *L, const char *type, const void *data, size_t len,
                          const char *node_id, acr_events_error_fn on_error, void *ud, char *err,
                          size_t errlen)
{
    int top = lua_gettop(L);
    if (errlen) err[0] = '\0';
    lua_getfield(L, LUA_REGISTRYINDEX, HANDLERS_KEY);
    if (lua_istable(L, -1)) lua_getfield(L, -1, type);
    if (!lua_isfunction(L, -1)) {
        lua_settop(L, top);
        lua_getfield(L, LUA_REGISTRYINDEX, WARNED_KEY);
        bool first = true;
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, type);
            first = !lua_toboolean(L, -1);
            lua_pop(L, 1);
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, type);
        }
        lua_settop(L, top);
        if (first)
            ACR_WARN("Unknown message type received from %s: '%s' (no handler registered with "
                     "acrida.runner:register_message; further ones are not logged)",
                     ACR_ESC(node_id && *node_id ? node_id : "the master"), ACR_ESC(type));
        return 0;
    }
    lua_createtable(L, 0, 3);
    lua_pushstring(L, type);
    lua_setfield(L, -2, "type");
    lua_pushstring(L, node_id ? node_id : "");
    lua_setfield(L, -2, "node_id");
    if (data && len) {
        if (acr_lua_value_push(L, data, len, err, errlen) < 0) {
            lua_settop(L, top);
            return -EPROTO;
        }
        lua_setfield(L, -2, "data");
    }
    acr_events_call(L, 1, type, on_error, ud);
    lua_settop(L, top);
    return 1;
}
