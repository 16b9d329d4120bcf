/*
 * acrida-target routes: one response per parsed request, queued on the connection's output, and
 * the counters behind /_count. A request is counted when it has been parsed and its route starts
 * writing (for /delay: when the timer is armed); /_count and /_reset are never counted, /hang is
 * counted as "hung" and malformed or oversized requests as "bad", both outside "served".
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "tests/target/target.h"

#define CHUNKED_LEN (-2)
#define NO_LEN (-1)

static const char *const route_names[TGT_R_COUNT_] = {
    "/",        "/status", "/delay", "/bytes",    "/chunked", "/redirect", "/redirect-to",
    "/cookies", "/echo",   "/reset", "/truncate", "/garbage", "/hang",     "/bighdr",
    "/close",   "/early",  "other",
};

static bool no_body_status(int status)
{
    return status < 200 || status == 204 || status == 304;
}

static void count(tgt_conn_t *c, tgt_route_t r, int status)
{
    tgt_counters_t *k = &c->srv->cnt;
    k->served++;
    k->by_route[r]++;
    if (status >= 0 && status < 600) k->by_status[status]++;
}

/*
 * Queues a response head. @clen: body length, NO_LEN (none) or CHUNKED_LEN. @extra: more header
 * lines, each ending in "\r\n", or NULL. @close adds "Connection: close".
 */
static void head(tgt_conn_t *c, int status, const char *ctype, long long clen, const char *extra,
                 bool close)
{
    char len[48] = "";
    const char *conn = "";

    if (no_body_status(status)) clen = NO_LEN;
    if (clen >= 0)
        snprintf(len, sizeof(len), "Content-Length: %lld\r\n", clen);
    else if (clen == CHUNKED_LEN)
        snprintf(len, sizeof(len), "Transfer-Encoding: chunked\r\n");
    if (close || !c->keep_alive || c->upgrade)
        conn = "Connection: close\r\n";
    else if (c->http10)
        conn = "Connection: keep-alive\r\n";
    if (status < 200) { /* informational: a bare status line */
        acr__tgt_outf(c, "HTTP/1.1 %d %s\r\n%s\r\n", status, acr_http_reason(status),
                      extra ? extra : "");
        return;
    }
    acr__tgt_outf(c, "HTTP/1.1 %d %s\r\nServer: acrida-target\r\n%s%s%s%s%s%s\r\n", status,
                  acr_http_reason(status), ctype ? "Content-Type: " : "", ctype ? ctype : "",
                  ctype ? "\r\n" : "", len, conn, extra ? extra : "");
}

static void body(tgt_conn_t *c, const char *p, size_t n)
{
    if (!c->head) acr__tgt_out(c, p, n);
}

/* A complete small text response. */
static tgt_action_t text(tgt_conn_t *c, tgt_route_t r, int status, const char *msg,
                         const char *extra, bool close)
{
    size_t n = no_body_status(status) ? 0 : strlen(msg);
    count(c, r, status);
    head(c, status, "text/plain", (long long)n, extra, close);
    body(c, msg, n);
    return close ? TGT_A_CLOSE : TGT_A_NEXT;
}

static tgt_action_t json_response(tgt_conn_t *c, tgt_route_t r, json_t *doc, bool counted)
{
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    size_t n;

    json_decref(doc);
    if (!s) {
        c->failed = true;
        return TGT_A_CLOSE;
    }
    n = strlen(s);
    if (counted) count(c, r, 200);
    head(c, 200, "application/json", (long long)(n + 1), NULL, false);
    body(c, s, n);
    body(c, "\n", 1);
    free(s);
    return TGT_A_NEXT;
}

/* Parses a decimal number of at most @maxdigits digits filling the whole of [p, p+n). */
static bool parse_num(const char *p, size_t n, int maxdigits, long long *out)
{
    long long v = 0;
    if (n == 0 || n > (size_t)maxdigits) return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/* Does @path (length @plen) start with @prefix? Sets *rest and *rlen to what follows. */
static bool prefixed(const char *path, size_t plen, const char *prefix, const char **rest,
                     size_t *rlen)
{
    size_t n = strlen(prefix);
    if (plen < n || memcmp(path, prefix, n) != 0) return false;
    *rest = path + n;
    *rlen = plen - n;
    return true;
}

static bool is_exact(const char *path, size_t plen, const char *want)
{
    return plen == strlen(want) && memcmp(path, want, plen) == 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Appends the URL-decoded [p, p+n) to @b ('+' = space). */
static int url_decode(acr_buf_t *b, const char *p, size_t n)
{
    acr_buf_reset(b);
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        int hi, lo;
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%' && i + 2 < n && (hi = hexval(p[i + 1])) >= 0 &&
                   (lo = hexval(p[i + 2])) >= 0) {
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (acr_buf_putc(b, ch) < 0) return -ENOMEM;
    }
    return acr_buf_append(b, "", 0);
}

/* Iterates "k=v&k2=v2": decodes the next pair into @k/@v. Returns 1, 0 at the end, or <0. */
static int next_param(const char **q, acr_buf_t *k, acr_buf_t *v)
{
    const char *s = *q, *amp, *eq;
    while (*s == '&') s++;
    if (!*s) return 0;
    amp = strchr(s, '&');
    if (!amp) amp = s + strlen(s);
    eq = memchr(s, '=', (size_t)(amp - s));
    if (url_decode(k, s, (size_t)((eq ? eq : amp) - s)) < 0) return -ENOMEM;
    if (url_decode(v, eq ? eq + 1 : amp, eq ? (size_t)(amp - eq - 1) : 0) < 0) return -ENOMEM;
    *q = amp;
    return 1;
}

/* Safe inside a header line: no control characters (CR, LF, NUL...). */
static bool header_safe(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

static bool cookie_name_ok(const char *s, size_t n)
{
    if (n == 0 || !header_safe(s, n)) return false;
    for (size_t i = 0; i < n; i++)
        if (strchr(" \t;=,\"", s[i])) return false;
    return true;
}

/* A JSON string of arbitrary bytes: UTF-8 as is, anything else read as Latin-1. */
static json_t *json_bytes(const char *p, size_t n)
{
    json_t *j = json_stringn(p, n);
    acr_buf_t b = {0};

    if (j) return j;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch < 0x80) {
            if (acr_buf_putc(&b, (char)ch) < 0) goto out;
        } else {
            char two[2] = {(char)(0xc0 | (ch >> 6)), (char)(0x80 | (ch & 0x3f))};
            if (acr_buf_append(&b, two, 2) < 0) goto out;
        }
    }
    j = json_stringn(b.data ? b.data : "", b.len);
out:
    acr_buf_free(&b);
    return j;
}

static tgt_action_t route_echo(tgt_conn_t *c, const char *path, size_t plen, const char *query)
{
    json_t *doc = json_object(), *hdrs = json_object();
    acr_buf_t name = {0};

    if (!doc || !hdrs) goto fail;
    json_object_set_new(doc, "method", json_string(llhttp_method_name(c->method)));
    json_object_set_new(doc, "path", json_bytes(path, plen));
    json_object_set_new(doc, "query", json_bytes(query, strlen(query)));
    for (unsigned i = 0; i < c->nhdrs; i++) {
        const tgt_hdr_t *h = &c->hv[i];
        json_t *old, *val;
        acr_buf_reset(&name);
        for (uint32_t j = 0; j < h->nlen; j++) {
            char ch = c->hdrs.data[h->noff + j];
            if (acr_buf_putc(&name, (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch)) < 0) goto fail;
        }
        if (!name.data) continue;
        old = json_object_get(hdrs, name.data);
        if (old) { /* repeated header: "a, b" */
            acr_buf_t joined = {0};
            int rc = acr_buf_append(&joined, json_string_value(old), json_string_length(old));
            rc = rc ?: acr_buf_append(&joined, ", ", 2);
            rc = rc ?: acr_buf_append(&joined, c->hdrs.data + h->voff, h->vlen);
            val = rc ? NULL : json_bytes(joined.data, joined.len);
            acr_buf_free(&joined);
        } else {
            val = json_bytes(c->hdrs.data + h->voff, h->vlen);
        }
        if (!val) goto fail;
        json_object_set_new(hdrs, name.data, val); /* fails (and frees val) for non-UTF-8 keys */
    }
    json_object_set_new(doc, "headers", hdrs);
    hdrs = NULL;
    json_object_set_new(doc, "body", json_bytes(c->body.data ? c->body.data : "", c->body.len));
    acr_buf_free(&name);
    return json_response(c, TGT_R_ECHO, doc, true);
fail:
    acr_buf_free(&name);
    json_decref(hdrs);
    json_decref(doc);
    c->failed = true;
    return TGT_A_CLOSE;
}

static tgt_action_t route_cookies(tgt_conn_t *c)
{
    json_t *doc = json_object(), *jar = json_object();
    size_t n = 0;
    const char *v = acr__tgt_header(c, "cookie", &n), *end = v ? v + n : NULL;
    acr_buf_t key = {0};

    if (!doc || !jar) goto fail;
    while (v && v < end) {
        const char *semi = memchr(v, ';', (size_t)(end - v)), *stop = semi ? semi : end, *eq;
        while (v < stop && (*v == ' ' || *v == '\t')) v++;
        eq = memchr(v, '=', (size_t)(stop - v));
        if (eq && eq > v) {
            json_t *val = json_bytes(eq + 1, (size_t)(stop - eq - 1));
            acr_buf_reset(&key);
            if (!val || acr_buf_append(&key, v, (size_t)(eq - v)) < 0) {
                json_decref(val);
                goto fail;
            }
            json_object_set_new(jar, key.data, val); /* fails (frees val) for non-UTF-8 names */
        }
        v = semi ? semi + 1 : end;
    }
    json_object_set_new(doc, "cookies", jar);
    acr_buf_free(&key);
    return json_response(c, TGT_R_COOKIES, doc, true);
fail:
    acr_buf_free(&key);
    json_decref(jar);
    json_decref(doc);
    c->failed = true;
    return TGT_A_CLOSE;
}

static tgt_action_t route_cookies_set(tgt_conn_t *c, const char *query)
{
    acr_buf_t k = {0}, v = {0}, hdrs = {0};
    tgt_action_t a;
    int rc;

    while ((rc = next_param(&query, &k, &v)) > 0) {
        if (!cookie_name_ok(k.data, k.len) || !header_safe(v.data, v.len) ||
            memchr(v.data, ';', v.len)) {
            a = text(c, TGT_R_COOKIES, 400, "invalid cookie\n", NULL, false);
            goto out;
        }
        rc = acr_buf_appendf(&hdrs, "Set-Cookie: %s=%s; Path=/\r\n", k.data, v.data);
        if (rc < 0) break;
    }
    if (rc < 0) {
        c->failed = true;
        a = TGT_A_CLOSE;
        goto out;
    }
    a = text(c, TGT_R_COOKIES, 200, "cookies set\n", hdrs.data, false);
out:
    acr_buf_free(&k);
    acr_buf_free(&v);
    acr_buf_free(&hdrs);
    return a;
}

static tgt_action_t route_redirect_to(tgt_conn_t *c, const char *query)
{
    acr_buf_t k = {0}, v = {0}, loc = {0}, extra = {0};
    long long status = 302;
    tgt_action_t a;
    bool have_url = false, ok = true;
    int rc;

    while ((rc = next_param(&query, &k, &v)) > 0) {
        if (strcmp(k.data, "url") == 0) {
            have_url = true;
            acr_buf_reset(&loc);
            if (acr_buf_append(&loc, v.data, v.len) < 0) rc = -ENOMEM;
            if (!header_safe(v.data, v.len)) ok = false;
        } else if (strcmp(k.data, "status") == 0) {
            if (!parse_num(v.data, v.len, 3, &status) || status < 100 || status > 599) ok = false;
        }
        if (rc < 0) break;
    }
    if (rc < 0 || acr_buf_appendf(&extra, "Location: %s\r\n", loc.data ? loc.data : "") < 0) {
        c->failed = true;
        a = TGT_A_CLOSE;
    } else if (!have_url || !ok) {
        a = text(c, TGT_R_REDIRECT_TO, 400, "redirect-to needs url=U and status=100..599\n", NULL,
                 false);
    } else {
        a = text(c, TGT_R_REDIRECT_TO, (int)status, "redirecting\n", extra.data, false);
    }
    acr_buf_free(&k);
    acr_buf_free(&v);
    acr_buf_free(&loc);
    acr_buf_free(&extra);
    return a;
}

static tgt_action_t route_bytes(tgt_conn_t *c, long long n)
{
    tgt_server_t *srv = c->srv;
    count(c, TGT_R_BYTES, 200);
    head(c, 200, "application/octet-stream", n, NULL, false);
    if (c->head) return TGT_A_NEXT;
    for (long long left = n; left > 0;) {
        size_t piece = left > TGT_XBLOCK ? TGT_XBLOCK : (size_t)left;
        acr__tgt_out_ref(c, srv->xblock, piece);
        left -= (long long)piece;
    }
    return TGT_A_NEXT;
}

static tgt_action_t route_chunked(tgt_conn_t *c, long long n)
{
    tgt_server_t *srv = c->srv;
    long long chunks = n / TGT_CHUNK, rem = n % TGT_CHUNK;

    count(c, TGT_R_CHUNKED, 200);
    head(c, 200, "application/octet-stream", CHUNKED_LEN, NULL, false);
    if (c->head) return TGT_A_NEXT;
    while (chunks > 0) {
        long long k = chunks > TGT_CHUNKS_PER_BLOCK ? TGT_CHUNKS_PER_BLOCK : chunks;
        acr__tgt_out_ref(c, srv->chunkblock, (size_t)k * TGT_CHUNK_WIRE);
        chunks -= k;
    }
    if (rem) {
        acr__tgt_outf(c, "%llx\r\n", rem);
        acr__tgt_out_ref(c, srv->xblock, (size_t)rem);
        acr__tgt_outs(c, "\r\n");
    }
    acr__tgt_outs(c, "0\r\n\r\n");
    return TGT_A_NEXT;
}

static tgt_action_t route_counters(tgt_conn_t *c)
{
    tgt_counters_t *k = &c->srv->cnt;
    json_t *doc = json_object(), *st = json_object(), *rt = json_object();
    char key[16];

    if (!doc || !st || !rt) {
        json_decref(doc);
        json_decref(st);
        json_decref(rt);
        c->failed = true;
        return TGT_A_CLOSE;
    }
    json_object_set_new(doc, "served", json_integer((json_int_t)k->served));
    json_object_set_new(doc, "bad", json_integer((json_int_t)k->bad));
    json_object_set_new(doc, "hung", json_integer((json_int_t)k->hung));
    json_object_set_new(doc, "connections", json_integer((json_int_t)k->connections));
    for (int s = 0; s < 600; s++) {
        if (!k->by_status[s]) continue;
        snprintf(key, sizeof(key), "%d", s);
        json_object_set_new(st, key, json_integer((json_int_t)k->by_status[s]));
    }
    for (int r = 0; r < TGT_R_COUNT_; r++)
        if (k->by_route[r])
            json_object_set_new(rt, route_names[r], json_integer((json_int_t)k->by_route[r]));
    json_object_set_new(doc, "by_status", st);
    json_object_set_new(doc, "by_path_prefix", rt);
    return json_response(c, TGT_R_OTHER, doc, false);
}

/* /delay/<ms>[?status=<code>]: that status (default 200) after <ms> milliseconds. */
static tgt_action_t route_delay(tgt_conn_t *c, const char *rest, size_t rlen, const char *query)
{
    acr_buf_t k = {0}, v = {0};
    long long ms = 0, status = 200;
    bool ok = parse_num(rest, rlen, 6, &ms) && ms <= 600000;
    int rc;

    while ((rc = next_param(&query, &k, &v)) > 0) {
        if (strcmp(k.data, "status") == 0 &&
            (!parse_num(v.data, v.len, 3, &status) || status < 200 || status > 599))
            ok = false;
    }
    acr_buf_free(&k);
    acr_buf_free(&v);
    if (rc < 0) {
        c->failed = true;
        return TGT_A_CLOSE;
    }
    if (!ok)
        return text(c, TGT_R_DELAY, 400, "delay must be 0..600000 ms, status 200..599\n", NULL,
                    false);
    c->delay_status = (int)status;
    if (acr__tgt_start_delay(c, (uint64_t)ms) < 0) {
        c->failed = true;
        return TGT_A_CLOSE;
    }
    count(c, TGT_R_DELAY, (int)status);
    return TGT_A_WAIT;
}

tgt_action_t acr__tgt_route(tgt_conn_t *c)
{
    char *url = c->url.data ? c->url.data : "", *frag = strchr(url, '#');
    const char *path = url, *query, *rest;
    size_t plen, rlen;
    long long n;

    if (frag) *frag = '\0'; /* clients should not send fragments; ignore them */

    if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) {
        path = strchr(strstr(url, "//") + 2, '/'); /* absolute-form */
        if (!path) path = "/";
    }
    plen = strcspn(path, "?");
    query = path[plen] == '?' ? path + plen + 1 : "";

    if (is_exact(path, plen, "/"))
        return text(c, TGT_R_ROOT, 200, "Hello from acrida-target\n", NULL, false);
    if (prefixed(path, plen, "/status/", &rest, &rlen)) {
        char msg[32];
        if (!parse_num(rest, rlen, 3, &n) || n < 100 || n > 599)
            return text(c, TGT_R_STATUS, 400, "invalid status code\n", NULL, false);
        snprintf(msg, sizeof(msg), "status %lld\n", n);
        return text(c, TGT_R_STATUS, (int)n, msg, NULL, false);
    }
    if (prefixed(path, plen, "/delay/", &rest, &rlen)) return route_delay(c, rest, rlen, query);
    if (prefixed(path, plen, "/bytes/", &rest, &rlen)) {
        if (!parse_num(rest, rlen, 9, &n) || n > (long long)TGT_MAX_BYTES)
            return text(c, TGT_R_BYTES, 400, "bytes must be 0..67108864\n", NULL, false);
        return route_bytes(c, n);
    }
    if (prefixed(path, plen, "/chunked/", &rest, &rlen)) {
        if (!parse_num(rest, rlen, 9, &n) || n > (long long)TGT_MAX_BYTES)
            return text(c, TGT_R_CHUNKED, 400, "chunked must be 0..67108864\n", NULL, false);
        return route_chunked(c, n);
    }
    if (prefixed(path, plen, "/redirect/", &rest, &rlen)) {
        char loc[64];
        if (!parse_num(rest, rlen, 3, &n) || n > 100)
            return text(c, TGT_R_REDIRECT, 400, "redirect must be 0..100\n", NULL, false);
        if (n == 0)
            snprintf(loc, sizeof(loc), "Location: /\r\n");
        else
            snprintf(loc, sizeof(loc), "Location: /redirect/%lld\r\n", n - 1);
        return text(c, TGT_R_REDIRECT, 302, "redirecting\n", loc, false);
    }
    if (is_exact(path, plen, "/redirect-to")) return route_redirect_to(c, query);
    if (is_exact(path, plen, "/cookies/set")) return route_cookies_set(c, query);
    if (is_exact(path, plen, "/cookies")) return route_cookies(c);
    if (is_exact(path, plen, "/echo")) return route_echo(c, path, plen, query);
    if (is_exact(path, plen, "/reset")) {
        count(c, TGT_R_RESET, 200);
        acr__tgt_outs(c, "HTTP/1.1 200 OK\r\nServer: acrida-target\r\nContent-Ty");
        return TGT_A_RESET;
    }
    if (is_exact(path, plen, "/truncate")) {
        count(c, TGT_R_TRUNCATE, 200);
        acr__tgt_outs(c, "HTTP/1.1 200 OK\r\nServer: acrida-target\r\nContent-Type: text/plain\r\n"
                         "Content-Length: 100\r\n\r\n");
        body(c, "truncated\n", 10);
        return TGT_A_CLOSE;
    }
    if (is_exact(path, plen, "/garbage")) {
        count(c, TGT_R_GARBAGE, 0);
        acr__tgt_outs(c, "garbage\r\n\r\n not http at all\r\n");
        return TGT_A_CLOSE;
    }
    if (is_exact(path, plen, "/hang")) {
        c->srv->cnt.hung++;
        return TGT_A_HANG;
    }
    if (is_exact(path, plen, "/bighdr"))
        return text(c, TGT_R_BIGHDR, 200, "big headers\n", c->srv->bighdr.data, false);
    if (is_exact(path, plen, "/close")) return text(c, TGT_R_CLOSE, 200, "closing\n", NULL, true);
    if (is_exact(path, plen, "/early")) /* answered at its headers */
        return c->early ? TGT_A_NEXT : text(c, TGT_R_EARLY, 200, "early\n", NULL, false);
    if (is_exact(path, plen, "/_count")) return route_counters(c);
    if (is_exact(path, plen, "/_reset")) {
        memset(&c->srv->cnt, 0, sizeof(c->srv->cnt));
        head(c, 200, "text/plain", 6, NULL, false);
        body(c, "reset\n", 6);
        return TGT_A_NEXT;
    }
    return text(c, TGT_R_OTHER, 404, "not found\n", NULL, false);
}

bool acr__tgt_early(tgt_conn_t *c, bool keep_alive, bool head_req)
{
    const char *url = c->url.data ? c->url.data : "";
    if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) {
        url = strchr(strstr(url, "//") + 2, '/'); /* absolute-form */
        if (!url) return false;
    }
    if (!is_exact(url, strcspn(url, "?#"), "/early")) return false;
    c->keep_alive = keep_alive;
    c->head = head_req;
    c->early = true;
    text(c, TGT_R_EARLY, 200, "early\n", NULL, false);
    return true;
}

void acr__tgt_route_delayed(tgt_conn_t *c)
{
    char msg[48];
    int n = snprintf(msg, sizeof(msg), "delayed %llu ms\n", (unsigned long long)c->delay_ms);
    head(c, c->delay_status, "text/plain", n, NULL, false);
    body(c, msg, (size_t)n);
}

void acr__tgt_bad_request(tgt_conn_t *c, int status)
{
    const char *msg = status == 431   ? "request header fields too large\n"
                      : status == 413 ? "payload too large\n"
                                      : "bad request\n";
    c->srv->cnt.bad++;
    c->head = false;
    c->keep_alive = false;
    head(c, status, "text/plain", (long long)strlen(msg), NULL, true);
    acr__tgt_outs(c, msg);
}

int acr__tgt_routes_init(tgt_server_t *srv)
{
    srv->xblock = malloc(TGT_XBLOCK);
    srv->chunkblock = malloc((size_t)TGT_CHUNKS_PER_BLOCK * TGT_CHUNK_WIRE);
    if (!srv->xblock || !srv->chunkblock) return -ENOMEM;
    memset(srv->xblock, 'x', TGT_XBLOCK);
    for (int i = 0; i < TGT_CHUNKS_PER_BLOCK; i++) {
        char *p = srv->chunkblock + (size_t)i * TGT_CHUNK_WIRE;
        memcpy(p, "3e8\r\n", 5);
        memset(p + 5, 'x', TGT_CHUNK);
        memcpy(p + 5 + TGT_CHUNK, "\r\n", 2);
    }
    /* /bighdr: 72 headers of 1000 bytes of value, > 70 KiB in all */
    for (int i = 0; i < 72; i++) {
        if (acr_buf_appendf(&srv->bighdr, "X-Big-%02d: ", i) < 0) return -ENOMEM;
        for (int j = 0; j < 1000; j++)
            if (acr_buf_putc(&srv->bighdr, (char)('a' + (i + j) % 26)) < 0) return -ENOMEM;
        if (acr_buf_append(&srv->bighdr, "\r\n", 2) < 0) return -ENOMEM;
    }
    return 0;
}

void acr__tgt_routes_free(tgt_server_t *srv)
{
    free(srv->xblock);
    free(srv->chunkblock);
    srv->xblock = srv->chunkblock = NULL;
    acr_buf_free(&srv->bighdr);
}
