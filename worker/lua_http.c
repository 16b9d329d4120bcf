/*
 * The Lua binding of the HTTP client (worker/http/http.h): self.client and the response object.
 * It turns client:get/post/.../request(path_or_url, opts) into an acr_http_request_t for the
 * user's session, yields the user while it is in flight, then decides the verdict and records the
 * request exactly once in the stats:
 *
 *   default   failure when status == 0 (error text = r.error) or status >= 400 ("HTTP <status>")
 *   check     check(r) -> ok[, message] wins; message default "check failed"; an error inside
 *             check is a failure with the error text (and an exception row)
 *   catch     r:success() / r:failure(msg) record at once; otherwise the default (or check)
 *             verdict is recorded when the task ends
 *
 * The stats entry is (METHOD, opts.name or the path with its query string); the response time is
 * the client's elapsed µs; the content length the body bytes received.
 */
#include "worker/runtime_int.h"

#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NO_HOST_ERROR "no host: set host on the user class or pass -H"

/* The response userdata: fixed fields, then a blob holding the strings and headers. */
typedef struct acr__resp {
    acr__user_t *u; /**< the user while a catch_response verdict is pending */
    int status;
    bool catch_resp, resolved, transport_error;
    uint64_t elapsed_us, content_length;
    acr_http_timings_t timings;
    char *verdict; /**< catch_response default verdict (malloc'ed; NULL = success) */
    int pend_ref;
    size_t nheaders;
    size_t url_off, method_off, name_off, err_off, hdr_off, body_off, body_len, blob_len;
    char blob[];
} acr__resp_t;

static const char *const method_names[] = {"get",    "post", "put",    "patch",
                                           "delete", "head", "options"};

/* ---- URL building ---- */

static bool is_absolute(const char *url)
{
    return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

static int url_encode(acr_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int rc;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            rc = acr_buf_putc(b, (char)c);
        } else if (c == ' ') {
            rc = acr_buf_putc(b, '+');
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = acr_buf_append(b, e, 3);
        }
        if (rc < 0) return rc;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void push_scalar_string(lua_State *L, int idx, const char *what)
{
    int t = lua_type(L, idx);
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        lua_pushvalue(L, idx);
        lua_tostring(L, -1);
    } else if (t == LUA_TBOOLEAN) {
        lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
    } else {
        luaL_error(L, "self.client: %s values must be strings, numbers or booleans (got a %s)",
                   what, luaL_typename(L, idx));
    }
}

/* Appends the table at @idx url-encoded (keys sorted, list values repeated) to @b. */
static int encode_pairs(lua_State *L, int idx, acr_buf_t *b, bool first, const char *what)
{
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING && lua_type(L, -2) != LUA_TNUMBER)
            luaL_error(L, "self.client: %s keys must be strings", what);
        n++;
        lua_pop(L, 1);
    }
    if (n == 0) return 0;
    const char **keys = lua_newuserdata(L, n * sizeof(*keys)); /* freed by the GC */
    int keys_idx = lua_gettop(L);
    lua_createtable(L, (int)n, 0); /* anchors the key strings */
    int anchor = lua_gettop(L);
    size_t k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        keys[k] = lua_tostring(L, -1); /* converts a number key copy, not the iteration key */
        lua_rawseti(L, anchor, (int)++k);
    }
    qsort(keys, n, sizeof(*keys), cmp_str);
    for (k = 0; k < n; k++) {
        lua_pushstring(L, keys[k]);
        lua_gettable(L, idx);
        if (lua_isnil(L, -1)) { /* the key was a number */
            lua_pop(L, 1);
            lua_pushnumber(L, strtod(keys[k], NULL));
            lua_gettable(L, idx);
        }
        int v = lua_gettop(L);
        size_t nv = lua_istable(L, v) ? lua_objlen(L, v) : 1;
        for (size_t j = 1; j <= nv; j++) {
            if (lua_istable(L, v)) {
                lua_rawgeti(L, v, (int)j);
            } else {
                lua_pushvalue(L, v);
            }
            push_scalar_string(L, -1, what);
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            if ((!first && acr_buf_putc(b, '&') < 0) || url_encode(b, keys[k], strlen(keys[k])) ||
                acr_buf_putc(b, '=') < 0 || url_encode(b, s, len) < 0)
                return -ENOMEM;
            first = false;
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
    }
    (void)keys_idx;
    lua_settop(L, keys_idx - 1);
    return 0;
}

/* ---- the response object ---- */

static acr__resp_t *check_resp(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, ACR__RESP_MT);
}

static const char *blob_str(const acr__resp_t *r, size_t off)
{
    return off == SIZE_MAX ? NULL : r->blob + off;
}

/* Records a request in the stats and fires the `request` event on @L. */
static void record(acr_rt_t *rt, lua_State *L, const char *method, const char *name, uint64_t rt_us,
                   uint64_t len, const char *error, const char *url, int status)
{
    if (!rt->stats) return;
    acr_stats_entry_t *e = acr_stats_get(rt->stats, method, name);
    if (!e) {
        ACR_ERROR("out of memory recording a request");
        return;
    }
    acr_stats_log(rt->stats, e, true, rt_us, len, error, acr_now());
    acr__rt_request_event(rt, L, method, name, true, (double)rt_us / 1000.0, (double)len, error,
                          url, status);
}

/* Removes @r's pending registration on its user; the caller records. */
static void unpend(lua_State *L, acr__resp_t *r)
{
    acr__user_t *u = r->u;
    r->u = NULL;
    r->resolved = true;
    if (r->pend_ref == LUA_NOREF) return;
    if (u) {
        for (uint32_t i = 0; i < u->npend; i++) {
            if (u->pend[i] == r->pend_ref) {
                u->pend[i] = u->pend[--u->npend];
                break;
            }
        }
    }
    luaL_unref(L, LUA_REGISTRYINDEX, r->pend_ref);
    r->pend_ref = LUA_NOREF;
}

static void resolve(lua_State *L, acr_rt_t *rt, acr__resp_t *r, const char *error)
{
    if (r->resolved) return;
    unpend(L, r);
    record(rt, L, blob_str(r, r->method_off), blob_str(r, r->name_off), r->elapsed_us,
           r->content_length, error, blob_str(r, r->url_off), r->status);
}

void acr__lua_http_resolve_pending(acr__user_t *u)
{
    /* the user's own coroutine when it is the one running (listeners of `request` run there) */
    lua_State *L = u->rt->current == u && u->co ? u->co : u->rt->L;
    while (u->npend > 0) {
        int ref = u->pend[u->npend - 1];
        lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
        acr__resp_t *r = lua_touserdata(L, -1);
        if (!r || r->resolved) { /* cannot happen; keep the loop finite */
            u->npend--;
            luaL_unref(L, LUA_REGISTRYINDEX, ref);
        } else {
            resolve(L, u->rt, r, r->verdict);
        }
        lua_pop(L, 1);
    }
}

static acr_rt_t *get_rt(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, "acrida.rt");
    acr_rt_t *rt = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return rt;
}

static int resp_success(lua_State *L)
{
    acr__resp_t *r = check_resp(L, 1);
    if (!r->catch_resp) return luaL_error(L, "r:success() needs catch_response = true");
    bool was = r->resolved;
    resolve(L, get_rt(L), r, NULL);
    lua_pushboolean(L, !was);
    return 1;
}

static int resp_failure(lua_State *L)
{
    acr__resp_t *r = check_resp(L, 1);
    if (!r->catch_resp) return luaL_error(L, "r:failure() needs catch_response = true");
    const char *msg = "failure";
    if (!lua_isnoneornil(L, 2)) {
        lua_getglobal(L, "tostring");
        lua_pushvalue(L, 2);
        lua_call(L, 1, 1);
        msg = lua_tostring(L, -1);
    }
    bool was = r->resolved;
    resolve(L, get_rt(L), r, msg ? msg : "failure");
    lua_pushboolean(L, !was);
    return 1;
}

static int resp_json(lua_State *L)
{
    acr__resp_t *r = check_resp(L, 1);
    acr_rt_t *rt = get_rt(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, rt->json_decode_ref);
    lua_pushlstring(L, r->blob + r->body_off, r->body_len);
    lua_call(L, 1, 1); /* a decoding error propagates to the caller */
    return 1;
}

static void push_headers(lua_State *L, const acr__resp_t *r)
{
    lua_createtable(L, 0, (int)r->nheaders);
    const char *p = r->blob + r->hdr_off;
    for (size_t i = 0; i < r->nheaders; i++) {
        uint32_t nl, vl;
        memcpy(&nl, p, 4);
        memcpy(&vl, p + 4, 4);
        const char *name = p + 8, *value = name + nl;
        lua_pushlstring(L, name, nl);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (lua_isstring(L, -1)) { /* repeated header: joined with ", " */
            lua_pushliteral(L, ", ");
            lua_pushlstring(L, value, vl);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushlstring(L, value, vl);
        }
        lua_rawset(L, -3);
        p = value + vl;
    }
}

static int resp_index(lua_State *L)
{
    acr__resp_t *r = check_resp(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "status") == 0) {
        lua_pushinteger(L, r->status);
    } else if (strcmp(k, "ok") == 0) {
        lua_pushboolean(L, !r->transport_error && r->status > 0 && r->status < 400);
    } else if (strcmp(k, "body") == 0) {
        lua_pushlstring(L, r->blob + r->body_off, r->body_len);
    } else if (strcmp(k, "headers") == 0) {
        push_headers(L, r);
    } else if (strcmp(k, "elapsed") == 0) {
        lua_pushnumber(L, (double)r->elapsed_us / 1000.0);
    } else if (strcmp(k, "error") == 0) {
        const char *e = blob_str(r, r->err_off);
        if (e) {
            lua_pushstring(L, e);
        } else {
            lua_pushnil(L);
        }
    } else if (strcmp(k, "url") == 0) {
        lua_pushstring(L, r->blob + r->url_off);
    } else if (strcmp(k, "content_length") == 0) {
        lua_pushnumber(L, (double)r->content_length);
    } else if (strcmp(k, "timings") == 0) {
        lua_createtable(L, 0, 5);
        lua_pushnumber(L, r->timings.dns);
        lua_setfield(L, -2, "dns");
        lua_pushnumber(L, r->timings.connect);
        lua_setfield(L, -2, "connect");
        lua_pushnumber(L, r->timings.tls);
        lua_setfield(L, -2, "tls");
        lua_pushnumber(L, r->timings.ttfb);
        lua_setfield(L, -2, "ttfb");
        lua_pushnumber(L, r->timings.total);
        lua_setfield(L, -2, "total");
    } else if (strcmp(k, "json") == 0) {
        lua_pushcfunction(L, resp_json);
    } else if (strcmp(k, "success") == 0) {
        lua_pushcfunction(L, resp_success);
    } else if (strcmp(k, "failure") == 0) {
        lua_pushcfunction(L, resp_failure);
    } else {
        lua_pushnil(L);
    }
    return 1;
}

static int resp_gc(lua_State *L)
{
    acr__resp_t *r = lua_touserdata(L, 1);
    free(r->verdict);
    r->verdict = NULL;
    return 0;
}

static int resp_tostring(lua_State *L)
{
    acr__resp_t *r = check_resp(L, 1);
    lua_pushfstring(L, "<response %d %s>", r->status, r->blob + r->url_off);
    return 1;
}

static size_t blob_put(acr__resp_t *r, size_t *pos, const void *p, size_t n)
{
    size_t off = *pos;
    if (n) memcpy(r->blob + off, p, n);
    r->blob[off + n] = '\0';
    *pos += n + 1;
    return off;
}

/* Pushes a response object for @hr on @L. */
static acr__resp_t *push_resp(lua_State *L, const acr__req_t *rq, const acr_http_response_t *hr,
                              const char *url)
{
    const char *method = rq->buf.data + rq->method_off, *name = rq->buf.data + rq->name_off;
    const char *final_url = hr->url ? hr->url : url;
    size_t need = strlen(final_url) + strlen(method) + strlen(name) + 3 + hr->body_len + 1;
    if (hr->error) need += strlen(hr->error) + 1;
    for (size_t i = 0; i < hr->nheaders; i++)
        need += 8 + hr->headers[i].name_len + hr->headers[i].value_len;
    acr__resp_t *r = lua_newuserdata(L, sizeof(*r) + need);
    memset(r, 0, sizeof(*r));
    r->pend_ref = LUA_NOREF;
    r->status = hr->status;
    r->transport_error = hr->error != NULL;
    r->elapsed_us = hr->elapsed_us;
    r->content_length = hr->content_length;
    r->timings = hr->timings;
    size_t pos = 0;
    r->url_off = blob_put(r, &pos, final_url, strlen(final_url));
    r->method_off = blob_put(r, &pos, method, strlen(method));
    r->name_off = blob_put(r, &pos, name, strlen(name));
    r->err_off = hr->error ? blob_put(r, &pos, hr->error, strlen(hr->error)) : SIZE_MAX;
    r->body_off = blob_put(r, &pos, hr->body, hr->body_len);
    r->body_len = hr->body_len;
    r->hdr_off = pos;
    for (size_t i = 0; i < hr->nheaders; i++) {
        uint32_t nl = (uint32_t)hr->headers[i].name_len, vl = (uint32_t)hr->headers[i].value_len;
        memcpy(r->blob + pos, &nl, 4);
        memcpy(r->blob + pos + 4, &vl, 4);
        memcpy(r->blob + pos + 8, hr->headers[i].name, nl);
        for (uint32_t j = 0; j < nl; j++)
            r->blob[pos + 8 + j] = (char)tolower((unsigned char)r->blob[pos + 8 + j]);
        memcpy(r->blob + pos + 8 + nl, hr->headers[i].value, vl);
        pos += 8 + nl + vl;
    }
    r->nheaders = hr->nheaders;
    r->blob_len = pos;
    luaL_getmetatable(L, ACR__RESP_MT);
    lua_setmetatable(L, -2);
    return r;
}

/*
 * Builds the response on @L (left on top), decides the verdict and records it (or registers it
 * as pending for catch_response). @L is the user's coroutine while it runs, or the main state from
 * the completion callback.
 */
static void finish_request(acr__user_t *u, lua_State *L, const acr_http_response_t *hr,
                           const char *url)
{
    acr_rt_t *rt = u->rt;
    acr__req_t *rq = u->rq;
    acr__resp_t *r = push_resp(L, rq, hr, url);
    int ridx = lua_gettop(L);
    char dflt[48];
    const char *verdict = NULL;
    if (hr->status == 0 || hr->error) {
        verdict = hr->error ? hr->error : "no response";
    } else if (hr->status >= 400) {
        snprintf(dflt, sizeof(dflt), "HTTP %d", hr->status);
        verdict = dflt;
    }
    if (rq->check_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, rt->onerror_ref);
        lua_rawgeti(L, LUA_REGISTRYINDEX, rq->check_ref);
        lua_pushvalue(L, ridx);
        if (lua_pcall(L, 1, 2, ridx + 1) != 0) {
            verdict = lua_tostring(L, -1); /* the handler made it a string and logged the row */
            if (!verdict) verdict = "check raised an error";
        } else if (lua_toboolean(L, -2)) {
            verdict = NULL;
        } else if (lua_isstring(L, -1)) {
            verdict = lua_tostring(L, -1);
        } else {
            verdict = "check failed";
        }
        luaL_unref(L, LUA_REGISTRYINDEX, rq->check_ref);
        rq->check_ref = LUA_NOREF;
    }
    if (rq->norecord) { /* a forwarder's request: the verdict is computed, nothing recorded */
        r->catch_resp = rq->catch_resp;
        r->resolved = true;
    } else if (rq->catch_resp) {
        r->catch_resp = true;
        if (verdict) r->verdict = strdup(verdict);
        if (verdict && !r->verdict) ACR_ERROR("out of memory keeping a verdict");
        if (u->npend == u->cappend) {
            uint32_t cap = u->cappend ? u->cappend * 2 : 2;
            int *p = realloc(u->pend, cap * sizeof(*p));
            if (!p) {
                resolve(L, rt, r, r->verdict);
                goto out;
            }
            u->pend = p;
            u->cappend = cap;
        }
        r->u = u;
        lua_pushvalue(L, ridx);
        r->pend_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        u->pend[u->npend++] = r->pend_ref;
    } else {
        r->resolved = true;
        record(rt, L, rq->buf.data + rq->method_off, rq->buf.data + rq->name_off, hr->elapsed_us,
               hr->content_length, verdict, r->blob + r->url_off, hr->status);
    }
out:
    lua_settop(L, ridx);
}

static void http_done(acr_http_session_t *s, const acr_http_response_t *hr, void *ud)
{
    acr__user_t *u = ud;
    acr_rt_t *rt = u->rt;
    (void)s;
    if (u->state == ACR__USER_DONE) return; /* aborted by acr_rt_close: nothing to record */
    if (!u->rq) return; /* the request's yield failed (a C-call boundary) and the user moved on */
    finish_request(u, rt->L, hr, u->rq->buf.data + u->rq->url_off);
    u->wait = ACR__WAIT_NONE;
    if (rt->closing || !u->co_alive) {
        lua_pop(rt->L, 1);
        acr__user_leave(u);
        return;
    }
    bool nofile = hr->error && strcmp(hr->error, ACR_HTTP_ERR_NOFILE) == 0;
    if (nofile && !u->hard) { /* no descriptor free: the user retries after a backoff */
        lua_xmove(rt->L, u->co, 1);
        acr__user_backoff(u);
        return;
    }
    if (!nofile) u->nofile_backoff = 0;
    /* Even when the user must stop now the task resumes: its own code decides a catch_response
     * verdict and runs what follows the request; its next request or wait ends it. */
    lua_xmove(rt->L, u->co, 1);
    acr__user_resume(u, 1);
}

void acr__lua_http_abort(acr__user_t *u)
{
    acr_rt_t *rt = u->rt;
    if (u->wait != ACR__WAIT_HTTP || !u->session) return;
    acr_http_session_cancel(u->session);
    u->wait = ACR__WAIT_NONE;
    acr__req_t *rq = u->rq;
    if (!rq || rq->norecord || !rt->stats) return;
    acr_stats_entry_t *e =
        acr_stats_get(rt->stats, rq->buf.data + rq->method_off, rq->buf.data + rq->name_off);
    if (e)
        acr_stats_log_aborted(rt->stats, e, acr_now());
    else
        ACR_ERROR("out of memory counting a request aborted at stop");
}

/* Reads opts.headers into rq (names/values as offsets first, pointers last). */
static int add_header(acr__req_t *rq, const char *name, size_t nl, const char *value, size_t vl)
{
    if (rq->nhdrs == rq->hdrcap) {
        size_t cap = rq->hdrcap ? rq->hdrcap * 2 : 8;
        acr_http_header_t *h = realloc(rq->hdrs, cap * sizeof(*h));
        if (!h) return -ENOMEM;
        rq->hdrs = h;
        rq->hdrcap = cap;
    }
    acr_http_header_t *h = &rq->hdrs[rq->nhdrs++];
    h->name = (const char *)(uintptr_t)rq->buf.len; /* offset until the buffer settles */
    h->name_len = nl;
    if (acr_buf_append(&rq->buf, name, nl) < 0 || acr_buf_putc(&rq->buf, '\0') < 0) return -ENOMEM;
    h->value = (const char *)(uintptr_t)rq->buf.len;
    h->value_len = vl;
    if (acr_buf_append(&rq->buf, value, vl) < 0 || acr_buf_putc(&rq->buf, '\0') < 0) return -ENOMEM;
    return 0;
}

static int nomem(lua_State *L)
{
    return luaL_error(L, "self.client: out of memory");
}

/* What a request's options set besides its bytes. */
typedef struct req_opts {
    double timeout;   /**< 0 = the client's default */
    bool redirects;   /**< allow_redirects */
    bool have_ctype;  /**< the caller gave a Content-Type header */
    const char *host; /**< the host a path is appended to; NULL for an absolute URL or none */
} req_opts_t;

/* The user's request buffers, emptied (allocated on the first request). Raises on ENOMEM. */
static acr__req_t *req_reset(lua_State *L, acr__user_t *u)
{
    if (!u->rq) {
        u->rq = calloc(1, sizeof(*u->rq));
        if (!u->rq) nomem(L);
        u->rq->check_ref = LUA_NOREF;
    }
    acr__req_t *rq = u->rq;
    acr_buf_reset(&rq->buf);
    rq->nhdrs = 0;
    rq->catch_resp = false;
    rq->norecord = false;
    if (rq->check_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, rq->check_ref);
        rq->check_ref = LUA_NOREF;
    }
    return rq;
}

/* Appends opts.query (url-encoded) to the URL being built. */
static void build_query(lua_State *L, acr__req_t *rq, int opts_idx)
{
    lua_getfield(L, opts_idx, "query");
    if (lua_istable(L, -1)) {
        int qi = lua_gettop(L);
        bool has_q = memchr(rq->buf.data + rq->url_off, '?', rq->buf.len - rq->url_off);
        size_t before = rq->buf.len;
        if (acr_buf_putc(&rq->buf, has_q ? '&' : '?') < 0) nomem(L);
        if (encode_pairs(L, qi, &rq->buf, true, "query") < 0) nomem(L);
        if (rq->buf.len == before + 1) rq->buf.len = before; /* empty table */
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "self.client: opts.query must be a table");
    }
    lua_pop(L, 1);
}

/*
 * Request building: "method \0 url \0 name \0" into rq->buf. The URL is @url as given when
 * absolute, else the host + path; then opts.query. The name is opts.name, else the URL's path
 * with its query string.
 */
static void build_request(lua_State *L, acr__req_t *rq, const char *method, const char *url,
                          size_t ulen, int opts_idx, const req_opts_t *o)
{
    bool has_opts = lua_istable(L, opts_idx);
    rq->method_off = 0;
    if (acr_buf_append(&rq->buf, method, strlen(method) + 1) < 0) nomem(L);
    rq->url_off = rq->buf.len;
    size_t path_start; /* offset of the path within the url */
    if (is_absolute(url)) {
        if (acr_buf_append(&rq->buf, url, ulen) < 0) nomem(L);
        const char *slash = strpbrk(strstr(url, "://") + 3, "/?");
        path_start = rq->url_off + (slash ? (size_t)(slash - url) : ulen);
    } else {
        const char *h = o->host ? o->host : "";
        if (acr_buf_append(&rq->buf, h, strlen(h)) < 0) nomem(L);
        path_start = rq->buf.len;
        if (url[0] != '/' && acr_buf_putc(&rq->buf, '/') < 0) nomem(L);
        if (acr_buf_append(&rq->buf, url, ulen) < 0) nomem(L);
    }
    if (has_opts) build_query(L, rq, opts_idx);
    size_t url_end = rq->buf.len;
    if (path_start == url_end && acr_buf_putc(&rq->buf, '/') < 0) nomem(L);
    if (acr_buf_putc(&rq->buf, '\0') < 0) nomem(L);

    rq->name_off = rq->buf.len;
    const char *name = NULL;
    size_t nlen = 0;
    if (has_opts) {
        lua_getfield(L, opts_idx, "name");
        if (lua_isstring(L, -1)) {
            name = lua_tolstring(L, -1, &nlen);
        } else if (!lua_isnil(L, -1)) {
            luaL_error(L, "self.client: opts.name must be a string");
        }
    }
    if (name) {
        if (acr_buf_append(&rq->buf, name, nlen) < 0) nomem(L);
    } else {
        size_t plen = url_end - path_start;
        if (acr_buf_reserve(&rq->buf, plen + 1) < 0) nomem(L);
        if (plen == 0) {
            acr_buf_putc(&rq->buf, '/');
        } else {
            acr_buf_append(&rq->buf, rq->buf.data + path_start, plen);
        }
    }
    if (has_opts) lua_pop(L, 1);
    if (acr_buf_putc(&rq->buf, '\0') < 0) nomem(L);
}

/*
 * Body encoding: opts.body as is, opts.json through lua-cjson or opts.form url-encoded (only one
 * of them), then a '\0', appended to rq->buf at *@body_off. Returns the Content-Type it implies,
 * or NULL.
 */
static const char *encode_body(lua_State *L, acr_rt_t *rt, acr__req_t *rq, int opts_idx,
                               size_t *body_off, size_t *body_len)
{
    const char *ctype = NULL;
    *body_off = rq->buf.len;
    *body_len = 0;
    if (lua_istable(L, opts_idx)) {
        lua_getfield(L, opts_idx, "body");
        lua_getfield(L, opts_idx, "json");
        lua_getfield(L, opts_idx, "form");
        int bi = lua_gettop(L) - 2;
        int given = !lua_isnil(L, bi) + !lua_isnil(L, bi + 1) + !lua_isnil(L, bi + 2);
        if (given > 1) luaL_error(L, "self.client: give only one of body, json and form");
        if (!lua_isnil(L, bi)) {
            if (!lua_isstring(L, bi)) luaL_error(L, "self.client: opts.body must be a string");
            const char *s = lua_tolstring(L, bi, body_len);
            if (acr_buf_append(&rq->buf, s, *body_len) < 0) nomem(L);
        } else if (!lua_isnil(L, bi + 1)) {
            lua_rawgeti(L, LUA_REGISTRYINDEX, rt->json_encode_ref);
            lua_pushvalue(L, bi + 1);
            if (lua_pcall(L, 1, 1, 0) != 0)
                luaL_error(L, "self.client: opts.json cannot be encoded: %s", lua_tostring(L, -1));
            const char *s = lua_tolstring(L, -1, body_len);
            if (acr_buf_append(&rq->buf, s, *body_len) < 0) nomem(L);
            lua_pop(L, 1);
            ctype = "application/json";
        } else if (!lua_isnil(L, bi + 2)) {
            if (!lua_istable(L, bi + 2)) luaL_error(L, "self.client: opts.form must be a table");
            if (encode_pairs(L, bi + 2, &rq->buf, true, "form") < 0) nomem(L);
            *body_len = rq->buf.len - *body_off;
            ctype = "application/x-www-form-urlencoded";
        }
        lua_pop(L, 3);
    }
    if (acr_buf_putc(&rq->buf, '\0') < 0) nomem(L);
    return ctype;
}

/* Reads opts.headers into rq (validated: no CR/LF, no ':' in a name). */
static void parse_headers(lua_State *L, acr__req_t *rq, int opts_idx, req_opts_t *o)
{
    lua_getfield(L, opts_idx, "headers");
    if (lua_istable(L, -1)) {
        int hi = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, hi)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                luaL_error(L, "self.client: header names must be strings");
            push_scalar_string(L, -1, "header");
            size_t hnl, hvl;
            const char *hn = lua_tolstring(L, -3, &hnl), *hv = lua_tolstring(L, -1, &hvl);
            if (memchr(hn, '\n', hnl) || memchr(hn, '\r', hnl) || memchr(hv, '\n', hvl) ||
                memchr(hv, '\r', hvl) || memchr(hn, ':', hnl))
                luaL_error(L, "self.client: invalid header '%s'", hn);
            if (strcasecmp(hn, "content-type") == 0) o->have_ctype = true;
            if (add_header(rq, hn, hnl, hv, hvl) < 0) nomem(L);
            lua_pop(L, 2);
        }
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "self.client: opts.headers must be a table");
    }
    lua_pop(L, 1);
}

/* Option parsing: headers, timeout, allow_redirects, catch_response and check. */
static void parse_options(lua_State *L, acr__req_t *rq, int opts_idx, req_opts_t *o)
{
    if (!lua_istable(L, opts_idx)) return;
    parse_headers(L, rq, opts_idx, o);
    lua_getfield(L, opts_idx, "timeout");
    if (!lua_isnil(L, -1)) {
        o->timeout = lua_tonumber(L, -1);
        if (lua_type(L, -1) != LUA_TNUMBER || !(o->timeout > 0))
            luaL_error(L, "self.client: opts.timeout must be a number of seconds > 0");
    }
    lua_getfield(L, opts_idx, "allow_redirects");
    if (!lua_isnil(L, -1)) o->redirects = lua_toboolean(L, -1);
    lua_getfield(L, opts_idx, "catch_response");
    rq->catch_resp = lua_toboolean(L, -1);
    lua_getfield(L, opts_idx, "record");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
        luaL_error(L, "self.client: opts.record must be a boolean");
    rq->norecord = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_getfield(L, opts_idx, "check");
    if (lua_isfunction(L, -1)) {
        lua_pushvalue(L, -1);
        rq->check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "self.client: opts.check must be a function(r)");
    }
    lua_pop(L, 5);
}

/* Starts @req on the user's session and yields; a request that cannot start gets its verdict at
 * once (no I/O) and its response is returned without yielding. */
static int start_request(lua_State *L, acr__user_t *u, const acr_http_request_t *req, bool no_host)
{
    acr_rt_t *rt = u->rt;
    const char *fail = NULL;
    char ebuf[160];
    if (no_host) {
        fail = NO_HOST_ERROR;
    } else if (!rt->http) {
        fail = "no HTTP client";
    } else {
        if (!u->session) {
            u->session = acr_http_session_new(rt->http);
            if (!u->session) return nomem(L);
        }
        int rc = acr_http_session_request(u->session, req, http_done, u);
        if (rc == 0) {
            u->wait = ACR__WAIT_HTTP;
            return lua_yield(L, 0);
        }
        if (rc == -EINVAL) {
            snprintf(ebuf, sizeof(ebuf), "invalid URL: %.120s", req->url);
        } else {
            snprintf(ebuf, sizeof(ebuf), "request not started: %s", strerror(-rc));
        }
        fail = ebuf;
    }
    acr_http_response_t hr = {.error = fail, .url = req->url};
    finish_request(u, L, &hr, req->url);
    return 1;
}

/* client:<method>(url, opts) with the method name in upper case. */
static int do_request(lua_State *L, const char *method, int url_idx, int opts_idx)
{
    acr__client_t *c = luaL_checkudata(L, 1, ACR__CLIENT_MT);
    if (!c->u) return luaL_error(L, "self.client: this user has stopped");
    acr__user_t *u = acr__rt_check_user(L, "self.client");
    /* A task of acrida.spawn may use a user's client (captured in its closure): the request
     * goes through the task's own session, with the user's host and TLS setting. */
    if (u != c->u && !u->green) return luaL_error(L, "self.client belongs to another user");
    acr__class_t *cls = c->u->cls;
    if (acr__user_stop_due(u)) { /* the user ends here, nothing is sent */
        u->abandon = true;
        return lua_yield(L, 0);
    }
    size_t ulen;
    const char *url = luaL_checklstring(L, url_idx, &ulen);
    if (!lua_isnoneornil(L, opts_idx)) luaL_checktype(L, opts_idx, LUA_TTABLE);
    req_opts_t o = {.redirects = true};
    if (!is_absolute(url)) o.host = cls->host ? cls->host : u->rt->host;
    acr__req_t *rq = req_reset(L, u);
    build_request(L, rq, method, url, ulen, opts_idx, &o);
    size_t body_off, body_len;
    const char *ctype = encode_body(L, u->rt, rq, opts_idx, &body_off, &body_len);
    parse_options(L, rq, opts_idx, &o);
    if (ctype && !o.have_ctype && add_header(rq, "Content-Type", 12, ctype, strlen(ctype)) < 0)
        return nomem(L);
    /* The buffer no longer moves: offsets become pointers. */
    for (size_t i = 0; i < rq->nhdrs; i++) {
        rq->hdrs[i].name = rq->buf.data + (uintptr_t)rq->hdrs[i].name;
        rq->hdrs[i].value = rq->buf.data + (uintptr_t)rq->hdrs[i].value;
    }
    acr_http_request_t req = {
        .method = rq->buf.data + rq->method_off,
        .url = rq->buf.data + rq->url_off,
        .headers = rq->hdrs,
        .nheaders = rq->nhdrs,
        .body = body_len ? rq->buf.data + body_off : NULL,
        .body_len = body_len,
        .timeout = o.timeout,
        .allow_redirects = o.redirects,
        .insecure = cls->insecure,
    };
    return start_request(L, u, &req, !is_absolute(url) && !o.host);
}

static int l_method(lua_State *L)
{
    return do_request(L, lua_tostring(L, lua_upvalueindex(1)), 2, 3);
}

static int l_request(lua_State *L)
{
    size_t n;
    const char *m = luaL_checklstring(L, 2, &n);
    char up[16];
    if (n == 0 || n >= sizeof(up)) return luaL_error(L, "self.client:request: invalid method");
    for (size_t i = 0; i <= n; i++) {
        unsigned char ch = (unsigned char)m[i];
        if (i < n && !isalpha(ch)) return luaL_error(L, "self.client:request: invalid method");
        up[i] = (char)toupper(ch);
    }
    return do_request(L, up, 3, 4);
}

static int client_tostring(lua_State *L)
{
    acr__client_t *c = luaL_checkudata(L, 1, ACR__CLIENT_MT);
    lua_pushfstring(L, "<acrida client of user %d>", c->u ? (int)c->u->id : -1);
    return 1;
}

/* A scenario may drop self.client; the user must then stop pointing at the collected object. */
static int client_gc(lua_State *L)
{
    acr__client_t *c = luaL_checkudata(L, 1, ACR__CLIENT_MT);
    if (c->u && c->u->client == c) c->u->client = NULL;
    c->u = NULL;
    return 0;
}

void acr__lua_http_open(acr_rt_t *rt)
{
    lua_State *L = rt->L;
    luaL_newmetatable(L, ACR__CLIENT_MT);
    lua_createtable(L, 0, 8);
    for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
        char up[16];
        size_t j = 0;
        for (; method_names[i][j]; j++) up[j] = (char)toupper((unsigned char)method_names[i][j]);
        up[j] = '\0';
        lua_pushstring(L, up);
        lua_pushcclosure(L, l_method, 1);
        lua_setfield(L, -2, method_names[i]);
    }
    lua_pushcfunction(L, l_request);
    lua_setfield(L, -2, "request");
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, client_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushcfunction(L, client_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    luaL_newmetatable(L, ACR__RESP_MT);
    lua_pushcfunction(L, resp_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, resp_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, resp_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
}

void acr__lua_http_push_client(lua_State *L, acr__user_t *u)
{
    acr__client_t *c = lua_newuserdata(L, sizeof(*c));
    c->u = u;
    u->client = c;
    luaL_getmetatable(L, ACR__CLIENT_MT);
    lua_setmetatable(L, -2);
}

void acr__lua_http_trim(acr__user_t *u)
{
    if (u->rq && u->rq->check_ref == LUA_NOREF) {
        acr_buf_free(&u->rq->buf);
        free(u->rq->hdrs);
        free(u->rq);
        u->rq = NULL;
    }
    if (u->npend == 0) {
        free(u->pend);
        u->pend = NULL;
        u->cappend = 0;
    }
    if (u->session) acr_http_session_trim(u->session);
}

void acr__lua_http_free_req(acr__user_t *u)
{
    if (u->rq) {
        if (u->rq->check_ref != LUA_NOREF)
            luaL_unref(u->rt->L, LUA_REGISTRYINDEX, u->rq->check_ref);
        acr_buf_free(&u->rq->buf);
        free(u->rq->hdrs);
        free(u->rq);
        u->rq = NULL;
    }
    free(u->pend);
    u->pend = NULL;
    u->npend = u->cappend = 0;
}
