/*
 * The master's HTTP/1.1 server: listener, connections, llhttp request parsing, answers, limits
 * and deadlines (TLS is in httpd_tls.c, binding in httpd_listen.c, the handlers' helpers in
 * httpd_helpers.c; the shared structs and the state diagram in httpd_int.h).
 *
 * Requests on a connection are answered strictly in order. The parser pauses at the end of every
 * message; the request is checked (version, target, Basic auth) and handed to the synchronous
 * handler, whose response is queued at once; parsing then resumes. Responses of pipelined
 * requests collect in one output buffer that goes out with one uv_write while the next fills.
 * While more than out_pause bytes wait to be written the connection stops reading, so a client
 * that pipelines without reading holds at most out_pause plus one response; when its queued
 * output makes no progress for write_timeout_ms it is closed. Parsing and answering share a time
 * budget per loop iteration (httpd_int.h), so no client holds the loop, and at the connection cap
 * the least recently active connection is closed to let a new one in.
 *
 * Answers made here rather than by the handler (all with a JSON body
 * {"message": ..., "success": false} and then a close, except 401 and 204):
 *   400 malformed request, non-origin-form target, bad or %00 percent escape in the path
 *   401 Basic auth missing or wrong (cfg->auth): WWW-Authenticate: Basic realm="acrida"
 *   408 a request still incomplete request_timeout_ms after its first byte
 *   413 body over ACR_HTTPD_MAX_BODY (Content-Length up front, or counted while chunked)
 *   431 request line + headers (or trailers) over ACR_HTTPD_MAX_HEADER
 *   505 an HTTP major version other than 1
 *   503 an answer over out_pause bytes when out_total_max bytes would then wait for clients
 *       (Retry-After: 10): slow readers of large answers (the full-history CSV) cannot exhaust
 *       memory
 *   204 for OPTIONS (after auth; the handler is not called): Allow and the CORS Allow-* headers,
 *       so a browser's preflight for a cross-origin POST succeeds.
 * Every response carries Access-Control-Allow-Origin: *, Cache-Control: no-store (unless the
 * handler set Cache-Control) and Content-Length (except 204 and 304, which have no body).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "common/log.h"
#include "master/web/httpd_int.h"

typedef acr__httpd_conn_t conn_t;

enum { H_CTYPE = 0, H_AUTHZ, H_EXPECT };

static const char *const state_names[] = {"handshake", "reading", "blocked", "draining", "closed"};

static void conn_run(conn_t *c);
static void undefer(conn_t *c);
static void account_out(conn_t *c);
static void flush(conn_t *c);
static void arm_timer(conn_t *c);
static void update_reading(conn_t *c);

/* The one place a connection changes state. */
static void set_state(conn_t *c, acr__httpd_state_t st)
{
    if (c->state == st) return;
    if (acr_log_enabled(ACR_LOG_DEBUG))
        ACR_DEBUG("web: %s: %s -> %s", c->peer, state_names[c->state], state_names[st]);
    c->state = st;
}

/* ---- closing --------------------------------------------------------------------------------- */

static void conn_free(conn_t *c)
{
    acr_httpd_t *s = c->srv;

    if (c->prev)
        c->prev->next = c->next;
    else if (s->conns == c)
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    if (!c->detached) s->stats.open--;
    acr_buf_free(&c->stash);
    acr_buf_free(&c->url);
    acr_buf_free(&c->body);
    for (size_t i = 0; i < ACR_ARRAY_SIZE(c->hval); i++) acr_buf_free(&c->hval[i]);
    acr_buf_free(&c->path);
    acr_buf_free(&c->head);
    acr_buf_free(&c->resp.headers);
    acr_buf_free(&c->resp.body);
    acr_buf_free(&c->out);
    acr_buf_free(&c->wout);
    acr_buf_free(&c->sink);
    if (c->ssl) SSL_free(c->ssl); /* and both BIOs */
    free(c);
}

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->closes_pending == 0) conn_free(c);
}

/* Closes at once, dropping whatever is queued. */
static void conn_close(conn_t *c)
{
    if (c->state == ACR__HC_CLOSED) return;
    set_state(c, ACR__HC_CLOSED);
    c->tmode = ACR__HT_NONE;
    undefer(c);
    account_out(c); /* its queued output no longer counts */
    if (c->detached) return;
    c->srv->live--;
    c->closes_pending = 2;
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->handle->data;
    if (c->state == ACR__HC_CLOSED) return;
    /* our FIN is out: wait (reading and discarding) for the client's, so unread input does not
     * turn into a reset that could destroy the response in flight */
    if (status < 0 || c->eof)
        conn_close(c);
    else
        arm_timer(c);
}

/* Everything queued is written: a draining connection sends its FIN. */
static void finish_if_done(conn_t *c)
{
    if (c->state != ACR__HC_DRAINING || c->shutting) return;
    c->shutting = true;
    if (c->detached || uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

/* ---- output ---------------------------------------------------------------------------------- */

static size_t pending_out(const conn_t *c)
{
    return c->out.len + c->wout.len;
}

/* Brings srv->out_total up to date with what @c has queued. */
static void account_out(conn_t *c)
{
    size_t now = c->state == ACR__HC_CLOSED ? 0 : pending_out(c);
    c->srv->out_total = c->srv->out_total - c->out_acct + now;
    c->out_acct = now;
}

/* Queues @n response bytes (encrypted first on TLS). */
static void emit(conn_t *c, const char *p, size_t n)
{
    if (c->failed || n == 0) return;
    if (c->ssl ? acr__httpd_tls_emit(c, p, n) < 0 : acr_buf_append(&c->out, p, n) < 0)
        c->failed = true;
}

static void on_write(uv_write_t *req, int status)
{
    conn_t *c = acr_container_of(req, conn_t, wreq);

    c->writing = false;
    if (c->state == ACR__HC_CLOSED) return;
    if (status < 0) {
        ACR_DEBUG("web: %s: write failed: %s", c->peer, uv_strerror(status));
        conn_close(c);
        return;
    }
    c->written += c->wout.len;
    acr_buf_trim(&c->wout, ACR__HTTPD_KEEP_BUF);
    if (c->state == ACR__HC_BLOCKED && pending_out(c) <= c->srv->out_pause)
        set_state(c, ACR__HC_READING);
    conn_run(c); /* parses what waited, flushes, rearms */
}

/* Hands the queued output to libuv (one uv_write) unless a write is in flight. */
static void flush(conn_t *c)
{
    acr_buf_t t;
    uv_buf_t b;

    if (c->state == ACR__HC_CLOSED) return;
    if (c->ssl) {
        if (c->state == ACR__HC_DRAINING) acr__httpd_tls_shutdown(c);
        if (acr__httpd_tls_drain(c) < 0) c->failed = true;
    }
    if (c->failed) {
        conn_close(c);
        return;
    }
    if (c->writing) return;
    if (c->detached) {
        if (c->out.len && acr_buf_append(&c->sink, c->out.data, c->out.len) < 0) {
            conn_close(c);
            return;
        }
        c->written += c->out.len;
        acr_buf_reset(&c->out);
        finish_if_done(c);
        return;
    }
    if (c->out.len == 0) {
        finish_if_done(c);
        return;
    }
    t = c->wout; /* empty: swap the buffers so the filled one is in flight */
    c->wout = c->out;
    c->out = t;
    b = uv_buf_init(c->wout.data, (unsigned)c->wout.len);
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) < 0) {
        conn_close(c);
        return;
    }
    c->writing = true;
}

/* ---- responses ------------------------------------------------------------------------------- */

/* True if the handler's header block holds a @name line (case-insensitive). */
static bool has_header(const acr_buf_t *h, const char *name)
{
    size_t n = strlen(name);
    const char *p = h->data, *end;

    if (!p) return false;
    end = p + h->len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if ((size_t)(end - p) > n && p[n] == ':' && strncasecmp(p, name, n) == 0) return true;
        p = eol ? eol + 1 : end;
    }
    return false;
}

/* The handler's extra headers must be "Name: value\r\n" lines: no NUL, no bare CR or LF, no empty
 * line (which would end the head early), at least one character before a ':' on every line. */
static bool headers_valid(const acr_buf_t *h)
{
    size_t line = 0;
    bool colon = false;

    for (size_t i = 0; i < h->len; i++) {
        char ch = h->data[i];
        if (ch == '\0') return false;
        if (ch == '\r') {
            if (i + 1 >= h->len || h->data[i + 1] != '\n' || !colon) return false;
            i++;
            line = 0;
            colon = false;
            continue;
        }
        if (ch == '\n' || (line == 0 && (ch == ' ' || ch == '\t'))) return false;
        if (ch == ':' && line > 0) colon = true;
        line++;
    }
    return line == 0;
}

/* Queues one response. @hdrs: extra "Name: value\r\n" lines (may be NULL). */
static void respond(conn_t *c, int status, const char *ctype, const acr_buf_t *hdrs,
                    const char *body, size_t blen, bool close)
{
    acr_buf_t *h = &c->head;
    bool nobody = status == 204 || status == 304;
    bool is_head = c->parser.method == HTTP_HEAD;
    bool http10 = c->parser.http_major == 1 && c->parser.http_minor == 0;
    int rc;

    acr_buf_reset(h);
    rc = acr_buf_appendf(h, "HTTP/1.1 %d %s\r\n", status, acr_http_reason(status));
    if (!nobody)
        rc |= acr_buf_appendf(h, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                              ctype ? ctype : "text/plain; charset=utf-8", blen);
    rc |= acr_buf_appendf(h, "Access-Control-Allow-Origin: *\r\n");
    if (!hdrs || !has_header(hdrs, "cache-control"))
        rc |= acr_buf_appendf(h, "Cache-Control: no-store\r\n");
    if (close)
        rc |= acr_buf_appendf(h, "Connection: close\r\n");
    else if (http10)
        rc |= acr_buf_appendf(h, "Connection: keep-alive\r\n");
    if (hdrs && hdrs->len) rc |= acr_buf_append(h, hdrs->data, hdrs->len);
    rc |= acr_buf_append(h, "\r\n", 2);
    if (rc != 0) {
        c->failed = true;
        return;
    }
    emit(c, h->data, h->len);
    if (!is_head && !nobody) emit(c, body, blen);
    acr_buf_trim(h, ACR__HTTPD_KEEP_BUF);
    c->srv->stats.requests++;
}

/* A JSON error answer of the server's own; @close ends the connection after it. */
static void respond_error(conn_t *c, int status, const char *msg, const char *hdrs, bool close)
{
    acr_buf_t h = {0};
    acr_httpd_resp_t r = {0};

    acr_httpd_json_error(&r, status, msg);
    if (hdrs && acr_buf_append(&h, hdrs, strlen(hdrs)) < 0) c->failed = true;
    respond(c, status, r.content_type, &h, r.body.data, r.body.len, close);
    acr_buf_free(&h);
    acr_buf_free(&r.headers);
    acr_buf_free(&r.body);
    if (status == 401)
        c->srv->stats.auth_failures++;
    else if (status != 404 && status != 500 && status != 503)
        c->srv->stats.bad_requests++;
}

/* ---- checking a request ---------------------------------------------------------------------- */

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Splits c->url into the percent-decoded path (c->path) and the raw query (from the '?', without
 * it, up to a '#'). Returns NULL or why the target is refused. */
static const char *split_target(conn_t *c, size_t *qoff, size_t *qlen)
{
    const char *u = c->url.data ? c->url.data : "";
    size_t n = c->url.len, pend, i;

    if (n == 0 || u[0] != '/') return "the request target must be a path";
    for (pend = 0; pend < n && u[pend] != '?' && u[pend] != '#'; pend++) {
    }
    *qoff = pend < n && u[pend] == '?' ? pend + 1 : pend;
    for (*qlen = 0; *qoff + *qlen < n && u[*qoff + *qlen] != '#'; (*qlen)++) {
    }
    acr_buf_reset(&c->path);
    if (acr_buf_reserve(&c->path, pend) < 0) {
        c->failed = true;
        return "out of memory";
    }
    for (i = 0; i < pend; i++) {
        char ch = u[i];
        if (ch == '%') {
            int hi = i + 2 < pend ? hexval((unsigned char)u[i + 1]) : -1;
            int lo = hi >= 0 ? hexval((unsigned char)u[i + 2]) : -1;
            if (lo < 0) return "bad percent escape in the path";
            ch = (char)(hi * 16 + lo);
            if (ch == '\0') return "%00 in the path";
            i += 2;
        }
        c->path.data[c->path.len++] = ch;
    }
    c->path.data[c->path.len] = '\0';
    return NULL;
}

/* Whether the request carries the configured Basic credentials. The candidate and the expected
 * "USER:PASS" are compared as SHA-256 digests with CRYPTO_memcmp: the time taken says nothing
 * about either's content or length. */
static bool auth_ok(conn_t *c)
{
    acr_httpd_t *s = c->srv;
    const char *v = c->hval[H_AUTHZ].data;
    size_t n = c->hval[H_AUTHZ].len;
    unsigned char *dec = NULL, md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int dlen;
    bool ok = false;

    if (!s->auth) return true;
    if (!c->hseen[H_AUTHZ] || !v) return false;
    while (n > 0 && (*v == ' ' || *v == '\t')) v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
    if (n < 6 || strncasecmp(v, "basic", 5) != 0 || (v[5] != ' ' && v[5] != '\t')) return false;
    v += 6;
    n -= 6;
    while (n > 0 && (*v == ' ' || *v == '\t')) v++, n--;
    if (n == 0 || n % 4 != 0) return false;
    dec = malloc(n / 4 * 3 + 1);
    if (!dec) return false;
    dlen = EVP_DecodeBlock(dec, (const unsigned char *)v, (int)n);
    if (dlen >= 0) {
        /* EVP_DecodeBlock counts the padding as zero bytes */
        dlen -= (v[n - 1] == '=') + (v[n - 2] == '=');
        if (dlen >= 0 && EVP_Digest(dec, (size_t)dlen, md, &mdlen, EVP_sha256(), NULL) == 1 &&
            mdlen == sizeof(s->auth_digest))
            ok = CRYPTO_memcmp(md, s->auth_digest, sizeof(s->auth_digest)) == 0;
    }
    OPENSSL_cleanse(dec, n / 4 * 3 + 1);
    free(dec);
    ERR_clear_error();
    return ok;
}

/* The request is complete (the parser is paused after it): answers it. */
static void answer(conn_t *c)
{
    acr_httpd_t *s = c->srv;
    llhttp_t *p = &c->parser;
    bool close = !llhttp_should_keep_alive(p) || c->upgrade;
    const char *why;
    size_t qoff = 0, qlen = 0;
    char qsave;
    acr_httpd_req_t req;
    acr_httpd_resp_t *r = &c->resp;

    if (p->http_major != 1) {
        respond_error(c, 505, "only HTTP/1.x is supported", NULL, true);
        set_state(c, ACR__HC_DRAINING);
        return;
    }
    if ((why = split_target(c, &qoff, &qlen)) != NULL) {
        if (acr_log_enabled(ACR_LOG_DEBUG)) {
            char esc[256];
            ACR_DEBUG("web: %s: bad request target '%s': %s", c->peer,
                      acr_log_escape(esc, sizeof(esc), c->url.data, c->url.len), why);
        }
        respond_error(c, 400, why, NULL, true);
        set_state(c, ACR__HC_DRAINING);
        return;
    }
    if (!auth_ok(c)) {
        respond_error(c, 401, "authentication required",
                      "WWW-Authenticate: Basic realm=\"acrida\"\r\n", close);
    } else if (p->method == HTTP_OPTIONS) {
        static const char allow[] = "Allow: GET, HEAD, POST, OPTIONS\r\n"
                                    "Access-Control-Allow-Methods: GET, HEAD, POST, OPTIONS\r\n"
                                    "Access-Control-Allow-Headers: Authorization, Content-Type\r\n"
                                    "Access-Control-Max-Age: 600\r\n";
        const acr_buf_t a = {(char *)allow, sizeof(allow) - 1, 0};
        respond(c, 204, NULL, &a, NULL, 0, close);
    } else {
        acr_buf_t *ct = &c->hval[H_CTYPE];
        while (ct->len > 0 && (ct->data[ct->len - 1] == ' ' || ct->data[ct->len - 1] == '\t'))
            ct->data[--ct->len] = '\0';
        acr_buf_reset(&r->headers);
        acr_buf_reset(&r->body);
        r->status = 200;
        r->content_type = NULL;
        /* the query is NUL-terminated in place (the url buffer is rebuilt for each request) */
        qsave = c->url.data[qoff + qlen];
        c->url.data[qoff + qlen] = '\0';
        req = (acr_httpd_req_t){
            .method = llhttp_method_name((llhttp_method_t)p->method),
            .path = c->path.data,
            .query = c->url.data + qoff,
            .content_type = c->hval[H_CTYPE].data ? c->hval[H_CTYPE].data : "",
            .body = c->body.data ? c->body.data : "",
            .body_len = c->body.len,
            .peer = c->peer,
        };
        s->stats.handled++;
        if (s->handler)
            s->handler(&req, r, s->ud);
        else
            acr_httpd_json_error(r, 404, "not found");
        if (c->state == ACR__HC_CLOSED) return; /* the handler closed the server */
        c->url.data[qoff + qlen] = qsave;
        if (r->status < 200 || r->status > 599 || !headers_valid(&r->headers)) {
            char esc[256];
            ACR_ERROR("web: the handler's answer to %s %s is invalid (status %d)", req.method,
                      acr_log_escape(esc, sizeof(esc), c->path.data, c->path.len), r->status);
            respond_error(c, 500, "internal error", NULL, close);
        } else if (!c->detached && r->body.len > s->out_pause && p->method != HTTP_HEAD &&
                   s->out_total - c->out_acct + pending_out(c) + r->body.len > s->out_total_max) {
            uint64_t now = uv_now(s->loop);
            if (!s->busy_logged || now - s->busy_logged_at >= 10000) {
                ACR_WARN("web: %s: an answer of %zu bytes refused (503): %zu bytes already wait "
                         "for clients that read slowly",
                         c->peer, r->body.len, s->out_total);
                s->busy_logged = true;
                s->busy_logged_at = now;
            }
            respond_error(c, 503, "the server is busy sending large answers: retry later",
                          "Retry-After: 10\r\n", close);
        } else {
            respond(c, r->status, r->content_type, &r->headers, r->body.data, r->body.len, close);
        }
        if (acr_log_enabled(ACR_LOG_DEBUG)) {
            char esc[256];
            ACR_DEBUG("web: %s: %s %s -> %d", c->peer, req.method,
                      acr_log_escape(esc, sizeof(esc), c->path.data, c->path.len), r->status);
        }
        acr_buf_trim(&r->headers, ACR__HTTPD_KEEP_BUF);
        acr_buf_trim(&r->body, ACR__HTTPD_KEEP_BUF);
    }
    acr_buf_trim(&c->body, ACR__HTTPD_KEEP_BUF);
    acr_buf_trim(&c->url, ACR__HTTPD_KEEP_BUF);
    if (close)
        set_state(c, ACR__HC_DRAINING);
    else if (pending_out(c) > s->out_pause)
        set_state(c, ACR__HC_BLOCKED);
}

/* ---- parsing (llhttp callbacks) -------------------------------------------------------------- */

static int limit(conn_t *c, int status, const char *reason)
{
    c->limit_status = status;
    llhttp_set_error_reason(&c->parser, reason);
    return HPE_USER;
}

/* Counts the request line and header bytes from head_mark up to @end against the limit. */
static int head_count(conn_t *c, const char *end)
{
    if (c->head_mark && end > c->head_mark) c->head_bytes += (size_t)(end - c->head_mark);
    c->head_mark = end;
    return c->head_bytes > ACR_HTTPD_MAX_HEADER ? -1 : 0;
}

static int head_data(conn_t *c, const char *at, size_t len)
{
    if (c->parser.flags & F_TRAILING) {
        /* counted as the head is: from the first trailer byte, separators included */
        if (!c->in_head) {
            c->in_head = true;
            c->head_mark = at;
            c->head_bytes = 0;
        }
        if (head_count(c, at + len) < 0) return limit(c, 431, "request trailers too large");
        return 0;
    }
    if (head_count(c, at + len) < 0) return limit(c, 431, "request headers too large");
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    conn_t *c = p->data;
    acr_buf_reset(&c->url);
    acr_buf_reset(&c->body);
    for (size_t i = 0; i < ACR_ARRAY_SIZE(c->hval); i++) {
        acr_buf_reset(&c->hval[i]);
        c->hseen[i] = false;
    }
    c->hwhich = -1;
    c->hname_len = 0;
    c->in_msg = true;
    c->in_head = false;
    c->head_mark = NULL;
    c->head_bytes = 0;
    c->body_bytes = 0;
    c->limit_status = 0;
    c->upgrade = false;
    return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (!c->in_head) {
        c->in_head = true;
        c->head_mark = at;
    }
    return head_data(c, at, len);
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (head_data(c, at, len)) return HPE_USER;
    if (acr_buf_append(&c->url, at, len) < 0) return limit(c, 0, "out of memory");
    return 0;
}

static int on_version(llhttp_t *p, const char *at, size_t len)
{
    return head_data(p->data, at, len);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (head_data(c, at, len)) return HPE_USER;
    if (c->hname_len + len < sizeof(c->hname)) {
        memcpy(c->hname + c->hname_len, at, len);
        c->hname_len += len;
    } else {
        c->hname_len = sizeof(c->hname); /* longer than any name we keep */
    }
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    static const char *const kept[] = {"content-type", "authorization", "expect"};
    conn_t *c = p->data;

    c->hwhich = -1;
    if (!(p->flags & F_TRAILING) && c->hname_len < sizeof(c->hname)) {
        for (int i = 0; i < (int)ACR_ARRAY_SIZE(kept); i++) {
            if (strlen(kept[i]) == c->hname_len &&
                strncasecmp(c->hname, kept[i], c->hname_len) == 0 && !c->hseen[i]) {
                c->hwhich = i; /* the first of each counts */
                c->hseen[i] = true;
            }
        }
    }
    c->hname_len = 0;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    if (head_data(c, at, len)) return HPE_USER;
    if (c->hwhich >= 0 && acr_buf_append(&c->hval[c->hwhich], at, len) < 0)
        return limit(c, 0, "out of memory");
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    ((conn_t *)p->data)->hwhich = -1;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    const acr_buf_t *e = &c->hval[H_EXPECT];
    bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);

    c->in_head = false;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > ACR_HTTPD_MAX_BODY)
        return limit(c, 413, "request body too large");
    /* a client waiting for 100 Continue gets it when it has a body and the body is welcome */
    if (has_body && c->hseen[H_EXPECT] && e->len == 12 &&
        strncasecmp(e->data, "100-continue", 12) == 0 && p->http_major == 1 && p->http_minor >= 1 &&
        auth_ok(c))
        emit(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    return 0;
}

/* A chunk announced beyond the body limit is refused at once, not after 1 MiB has arrived. */
static int on_chunk_header(llhttp_t *p)
{
    conn_t *c = p->data;
    if (p->content_length > ACR_HTTPD_MAX_BODY - c->body_bytes)
        return limit(c, 413, "request body too large");
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    conn_t *c = p->data;
    c->body_bytes += len;
    if (c->body_bytes > ACR_HTTPD_MAX_BODY) return limit(c, 413, "request body too large");
    if (acr_buf_append(&c->body, at, len) < 0) return limit(c, 0, "out of memory");
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    conn_t *c = p->data;
    c->in_msg = false;
    c->in_head = false; /* after trailers */
    c->upgrade = c->upgrade || p->upgrade;
    return HPE_PAUSED; /* answer this request before parsing the next */
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_method = on_method,
    .on_url = on_url,
    .on_version = on_version,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};

/* ---- the connection loop --------------------------------------------------------------------- */

/* Bytes of a new request (or stray line ends) arrived on an idle connection: its deadline runs. */
static void start_request(conn_t *c)
{
    c->req_started = true;
    if (!c->detached) c->req_deadline = uv_now(c->srv->loop) + c->srv->request_timeout_ms;
    if (c->tmode == ACR__HT_REQUEST) c->tmode = ACR__HT_NONE; /* rearm with the new deadline */
}

/* Makes the unconsumed input survive the shared read buffers: moves it to the stash front. */
static void keep_view(conn_t *c)
{
    if (c->ilen == 0) {
        acr_buf_trim(&c->stash, ACR__HTTPD_KEEP_BUF);
        c->ip = NULL;
        return;
    }
    if (c->stash.data && c->ip >= c->stash.data && c->ip < c->stash.data + c->stash.len) {
        memmove(c->stash.data, c->ip, c->ilen);
        c->stash.len = c->ilen;
    } else {
        acr_buf_reset(&c->stash);
        if (acr_buf_append(&c->stash, c->ip, c->ilen) < 0) {
            c->failed = true;
            c->ilen = 0;
            return;
        }
    }
    c->ip = c->stash.data;
}

static void parse_error(conn_t *c, enum llhttp_errno err)
{
    int status = c->limit_status ? c->limit_status : 400;
    const char *reason = llhttp_get_error_reason(&c->parser);

    if (status == 0) { /* out of memory in a callback */
        c->failed = true;
        return;
    }
    if (acr_log_enabled(ACR_LOG_DEBUG))
        ACR_DEBUG("web: %s: bad request: %s (%s)", c->peer, llhttp_errno_name(err),
                  reason ? reason : "");
    respond_error(c, status,
                  status == 431   ? "request headers too large"
                  : status == 413 ? "request body too large"
                                  : "malformed request",
                  NULL, true);
    c->ilen = 0;
    set_state(c, ACR__HC_DRAINING);
}

/* ---- fairness: the per-iteration budget and the deferred queue ------------------------------- */

/* Whether this loop iteration's budget is spent (a new iteration, seen as a new uv_now(), starts
 * a new budget). Never for a detached connection. */
static bool slice_over(const conn_t *c)
{
    acr_httpd_t *s = c->srv;
    uint64_t now;

    if (c->detached) return false;
    now = uv_now(s->loop);
    if (now != s->slice_at) {
        s->slice_at = now;
        s->slice_spent = 0;
    }
    return s->slice_spent >= s->slice_ns;
}

static void on_resume(uv_idle_t *h);

/* Queues @c (at the tail) to go on at the next iteration; it stops reading meanwhile. */
static void defer(conn_t *c)
{
    acr_httpd_t *s = c->srv;

    if (c->deferred) return;
    c->deferred = true;
    c->dnext = NULL;
    c->dprev = s->defer_tail;
    if (s->defer_tail)
        s->defer_tail->dnext = c;
    else
        s->defer_head = c;
    s->defer_tail = c;
    if (s->resume_init && !uv_is_active((uv_handle_t *)&s->resume))
        uv_idle_start(&s->resume, on_resume);
}

static void undefer(conn_t *c)
{
    acr_httpd_t *s = c->srv;

    if (!c->deferred) return;
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        s->defer_head = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    else
        s->defer_tail = c->dprev;
    c->dprev = c->dnext = NULL;
    c->deferred = false;
}

/* A new iteration: the deferred connections go on in their order, each with at least one request,
 * until the budget is spent again (those deferred anew wait at the tail). */
static void on_resume(uv_idle_t *h)
{
    acr_httpd_t *s = acr_container_of(h, acr_httpd_t, resume);
    conn_t *c;

    s->slice_at = uv_now(s->loop);
    s->slice_spent = 0;
    while ((c = s->defer_head) != NULL) {
        undefer(c);
        c->granted = true;
        conn_run(c);
        if (s->slice_spent >= s->slice_ns) break;
    }
    if (!s->defer_head) uv_idle_stop(h);
}

/* Parses and answers requests while the connection is READING, then flushes and rearms. */
static void conn_run(conn_t *c)
{
    while (c->state == ACR__HC_READING && !c->failed) {
        enum llhttp_errno err;
        uint64_t t0;
        if (c->ilen == 0 && !(c->ssl && acr__httpd_tls_pull(c))) break;
        if (!c->granted && slice_over(c)) {
            defer(c); /* its input waits in the stash */
            break;
        }
        c->granted = false;
        t0 = c->detached ? 0 : uv_hrtime();
        if (!c->req_started) start_request(c);
        if (c->in_head) c->head_mark = c->ip;
        err = llhttp_execute(&c->parser, c->ip, c->ilen);
        if (err == HPE_OK) {
            if (c->in_head && head_count(c, c->ip + c->ilen) < 0) {
                c->limit_status = 431;
                parse_error(c, HPE_USER);
            }
            c->ilen = 0;
        } else if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            if (pos && pos >= c->ip && pos <= c->ip + c->ilen) {
                c->ilen -= (size_t)(pos - c->ip);
                c->ip = pos;
            } else {
                c->ilen = 0;
            }
            if (err == HPE_PAUSED)
                llhttp_resume(&c->parser);
            else
                c->upgrade = true; /* what follows is not HTTP: answer, then close */
            answer(c);
            if (c->state == ACR__HC_CLOSED) return;
            c->req_started = false; /* the next byte starts the next request's deadline */
            if (!c->detached) c->active_at = uv_now(c->srv->loop);
        } else {
            parse_error(c, err);
        }
        if (!c->detached) c->srv->slice_spent += uv_hrtime() - t0;
    }
    c->granted = false;
    if (c->failed) {
        conn_close(c);
        return;
    }
    if (c->state == ACR__HC_CLOSED) return;
    keep_view(c);
    if (c->eof && c->state == ACR__HC_READING && c->ilen == 0) {
        /* the client is done sending: answer what was complete, then close */
        set_state(c, ACR__HC_DRAINING);
    }
    flush(c);
    if (c->state == ACR__HC_CLOSED) return;
    account_out(c);
    update_reading(c);
    arm_timer(c);
}

/* ---- timers ---------------------------------------------------------------------------------- */

/* Bytes the socket has taken so far (a partial write counts). */
static uint64_t write_progress(const conn_t *c)
{
    uint64_t p = c->written;
    if (c->writing) {
        size_t q = uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
        if (q <= c->wout.len) p += c->wout.len - q;
    }
    return p;
}

static acr__httpd_tmode_t wanted_tmode(const conn_t *c)
{
    switch (c->state) {
    case ACR__HC_HANDSHAKE:
        return ACR__HT_REQUEST;
    case ACR__HC_READING:
        if (c->writing || c->out.len) return ACR__HT_WRITE;
        return c->req_started ? ACR__HT_REQUEST : ACR__HT_IDLE;
    case ACR__HC_BLOCKED:
        return ACR__HT_WRITE;
    case ACR__HC_DRAINING:
        return c->shutting ? ACR__HT_LINGER : ACR__HT_WRITE;
    case ACR__HC_CLOSED:
        break;
    }
    return ACR__HT_NONE;
}

static void on_timer(uv_timer_t *t);

/* Starts the timer for the deadline the state needs; a running one of the same kind is kept. */
static void arm_timer(conn_t *c)
{
    acr_httpd_t *s = c->srv;
    acr__httpd_tmode_t m = wanted_tmode(c);
    uint64_t ms = 0, now;

    if (c->detached || m == c->tmode) return;
    c->tmode = m;
    switch (m) {
    case ACR__HT_NONE:
        uv_timer_stop(&c->timer);
        return;
    case ACR__HT_IDLE:
        ms = s->idle_timeout_ms;
        break;
    case ACR__HT_REQUEST:
        now = uv_now(s->loop);
        ms = c->req_deadline > now ? c->req_deadline - now : 0;
        break;
    case ACR__HT_WRITE:
        c->progress_seen = write_progress(c);
        ms = s->write_timeout_ms;
        break;
    case ACR__HT_LINGER:
        ms = s->linger_ms;
        break;
    }
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    acr_httpd_t *s = c->srv;
    uint64_t p;

    switch (c->tmode) {
    case ACR__HT_NONE:
        return;
    case ACR__HT_IDLE:
        ACR_DEBUG("web: %s: idle, closing", c->peer);
        conn_close(c);
        return;
    case ACR__HT_REQUEST:
        s->stats.timeouts++;
        if (c->state == ACR__HC_HANDSHAKE || !c->in_msg) {
            ACR_DEBUG("web: %s: no request within the deadline, closing", c->peer);
            conn_close(c);
            return;
        }
        ACR_DEBUG("web: %s: request incomplete at the deadline: 408", c->peer);
        c->tmode = ACR__HT_NONE;
        respond_error(c, 408, "request timeout", NULL, true);
        c->ilen = 0;
        set_state(c, ACR__HC_DRAINING);
        conn_run(c);
        return;
    case ACR__HT_WRITE:
        p = write_progress(c);
        if (p > c->progress_seen) {
            c->progress_seen = p;
            uv_timer_start(&c->timer, on_timer, s->write_timeout_ms, 0);
            return;
        }
        s->stats.timeouts++;
        ACR_INFO("web: %s: the client has not read its responses for %g s, closing", c->peer,
                 (double)s->write_timeout_ms / 1000.0);
        conn_close(c);
        return;
    case ACR__HT_LINGER:
        conn_close(c);
        return;
    }
}

/* ---- reading --------------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->srv->rbuf, sizeof(c->srv->rbuf));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void update_reading(conn_t *c)
{
    bool want = false;

    if (c->detached) return;
    switch (c->state) {
    case ACR__HC_HANDSHAKE:
    case ACR__HC_READING:
        want = !c->eof && !c->deferred; /* a deferred connection's input waits in the kernel */
        break;
    case ACR__HC_DRAINING: /* read and discard: see EOF, and no reset over unread input */
        want = !c->eof;
        break;
    case ACR__HC_BLOCKED:
    case ACR__HC_CLOSED:
        break;
    }
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void stash_add(conn_t *c, const char *p, size_t n)
{
    keep_view(c);
    if (c->failed || acr_buf_append(&c->stash, p, n) < 0) {
        c->failed = true;
        return;
    }
    c->ip = c->stash.data;
    c->ilen = c->stash.len;
}

static void on_eof(conn_t *c)
{
    c->eof = true;
    c->reading = false; /* libuv stops reading at EOF */
    if (c->rbio) BIO_set_mem_eof_return(c->rbio, 0);
    switch (c->state) {
    case ACR__HC_HANDSHAKE:
        conn_close(c);
        break;
    case ACR__HC_READING:
        conn_run(c);
        break;
    case ACR__HC_DRAINING:
        if (c->shutting && !c->writing) conn_close(c);
        break;
    case ACR__HC_BLOCKED:
    case ACR__HC_CLOSED:
        break;
    }
}

static void tls_handshake(conn_t *c)
{
    int r = acr__httpd_tls_handshake(c);
    if (r > 0) {
        set_state(c, ACR__HC_READING);
        c->req_started = false; /* idle until the first request byte */
    } else if (r < 0) {
        c->srv->stats.tls_failures++;
        set_state(c, ACR__HC_DRAINING); /* send the alert, then close */
    }
}

/* The first bytes on an HTTPS connection look like a plain HTTP request (a TLS record starts with
 * 0x16, a request with a method in capitals): answers a plain 400 saying so, then closes. */
static bool plain_on_tls(conn_t *c, const char *p, size_t n)
{
    static const char msg[] = "HTTP/1.1 400 Bad Request\r\n"
                              "Content-Type: text/plain; charset=utf-8\r\n"
                              "Content-Length: 50\r\n"
                              "Connection: close\r\n\r\n"
                              "This port speaks HTTPS: use an https:// address.\r\n";

    if (c->state != ACR__HC_HANDSHAKE || BIO_number_written(c->rbio) != 0 || n < 4) return false;
    for (size_t i = 0; i < 3; i++)
        if (p[i] < 'A' || p[i] > 'Z') return false;
    ACR_DEBUG("web: %s: plain HTTP on the HTTPS port", c->peer);
    c->srv->stats.tls_failures++;
    if (acr_buf_append(&c->out, msg, sizeof(msg) - 1) < 0) c->failed = true;
    set_state(c, ACR__HC_DRAINING);
    return true;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = st->data;

    if (c->state == ACR__HC_CLOSED || nread == 0) return;
    if (nread < 0) {
        if (nread == UV_EOF) {
            on_eof(c);
        } else {
            ACR_DEBUG("web: %s: read failed: %s", c->peer, uv_strerror((int)nread));
            conn_close(c);
        }
        return;
    }
    if (c->state == ACR__HC_DRAINING) return; /* discarded */
    if (c->ssl && plain_on_tls(c, buf->base, (size_t)nread)) {
        /* answered in plain text; the rest is discarded */
    } else if (c->ssl) {
        if (acr__httpd_tls_input(c, buf->base, (size_t)nread) < 0) {
            conn_close(c);
            return;
        }
        if (c->state == ACR__HC_HANDSHAKE) tls_handshake(c);
    } else if (c->state == ACR__HC_READING && c->ilen == 0) {
        c->ip = buf->base; /* parse straight from the shared read buffer */
        c->ilen = (size_t)nread;
    } else {
        stash_add(c, buf->base, (size_t)nread);
    }
    conn_run(c);
}

/* ---- accepting ------------------------------------------------------------------------------- */

static void peer_name(conn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof(ip));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            port = ntohs(a->sin6_port);
            if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
                const unsigned char *b = a->sin6_addr.s6_addr + 12;
                snprintf(ip, sizeof(ip), "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
            } else {
                char v6[INET6_ADDRSTRLEN];
                uv_ip6_name(a, v6, sizeof(v6));
                snprintf(ip, sizeof(ip), "[%.*s]", (int)sizeof(ip) - 3, v6);
            }
        }
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
}

static void free_handle(uv_handle_t *h)
{
    free(h);
}

/* Over the connection cap: accepts and closes at once, logging once per burst (10 s). */
static void reject(acr_httpd_t *s, uv_stream_t *l)
{
    uv_tcp_t *t = malloc(sizeof(*t));
    uint64_t now = uv_now(s->loop);

    if (!t || uv_tcp_init(s->loop, t) < 0) {
        free(t);
        ACR_ERROR("web: out of memory refusing a connection");
        return;
    }
    if (uv_accept(l, (uv_stream_t *)t) == 0) s->stats.rejected++;
    uv_close((uv_handle_t *)t, free_handle);
    s->cap_unlogged++;
    if (!s->cap_logged || now - s->cap_logged_at >= 10000) {
        ACR_WARN("web: %u connections open (the limit): closed %llu new connection(s)",
                 s->stats.open, (unsigned long long)s->cap_unlogged);
        s->cap_logged = true;
        s->cap_logged_at = now;
        s->cap_unlogged = 0;
    }
}

/* At the cap: closes the least recently active connection (accepted or answered longest ago) so a
 * new client gets in (the earliest accepted among equals). Idle connections, slow clients and
 * stalled readers cannot hold every slot; a client that is being served was active recently. False
 * when there is none to close. */
static bool evict(acr_httpd_t *s)
{
    conn_t *victim = NULL;
    uint64_t now = uv_now(s->loop);

    for (conn_t *c = s->conns; c; c = c->next)
        if (c->state != ACR__HC_CLOSED && !c->detached &&
            (!victim || c->active_at <= victim->active_at))
            victim = c;
    if (!victim) return false;
    ACR_DEBUG("web: %s: closed to make room (connection cap)", victim->peer);
    conn_close(victim);
    s->evicted++;
    s->cap_unlogged++;
    if (!s->cap_logged || now - s->cap_logged_at >= 10000) {
        ACR_WARN("web: %u connections open (the limit): closed %llu least recently active "
                 "connection(s) to accept new ones",
                 s->max_conns, (unsigned long long)s->cap_unlogged);
        s->cap_logged = true;
        s->cap_logged_at = now;
        s->cap_unlogged = 0;
    }
    return true;
}

static void link_conn(acr_httpd_t *s, conn_t *c)
{
    c->srv = s;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.data = c; /* after llhttp_init, which zeroes it */
    c->hwhich = -1;
}

static void on_connection(uv_stream_t *l, int status)
{
    acr_httpd_t *s = acr_container_of(l, acr_httpd_t, listener);
    conn_t *c;
    int rc;

    if (status < 0) {
        uint64_t now = uv_now(s->loop);
        if (!s->accept_err_logged || now - s->accept_err_logged_at >= 10000) {
            ACR_WARN("web: accept failed: %s", uv_strerror(status));
            s->accept_err_logged = true;
            s->accept_err_logged_at = now;
        }
        return;
    }
    if (s->closing) return;
    if ((s->live >= s->max_conns && !evict(s)) || !(c = calloc(1, sizeof(*c)))) {
        reject(s, l);
        return;
    }
    link_conn(s, c);
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->active_at = uv_now(s->loop);
    s->stats.open++;
    s->live++;
    snprintf(c->peer, sizeof(c->peer), "?");
    c->state = ACR__HC_READING;
    if ((rc = uv_accept(l, (uv_stream_t *)&c->tcp)) < 0) {
        ACR_WARN("web: accept failed: %s", uv_strerror(rc));
        conn_close(c);
        return;
    }
    s->stats.accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c);
    if (s->ssl_ctx) {
        if (acr__httpd_tls_conn(c) < 0) {
            ACR_ERROR("web: out of memory for a TLS connection");
            conn_close(c);
            return;
        }
        c->state = ACR__HC_HANDSHAKE;
        c->req_started = true;
        c->req_deadline = uv_now(s->loop) + s->request_timeout_ms;
    }
    ACR_DEBUG("web: %s: connected (%s)", c->peer, state_names[c->state]);
    update_reading(c);
    arm_timer(c);
}

/* ---- the server ------------------------------------------------------------------------------ */

static acr_httpd_t *server_new(const acr_httpd_config_t *cfg, char *err, size_t errlen)
{
    acr_httpd_t *s = calloc(1, sizeof(*s));

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->handler = cfg->handler;
    s->ud = cfg->ud;
    s->request_timeout_ms = ACR_HTTPD_REQUEST_TIMEOUT_MS;
    s->idle_timeout_ms = ACR_HTTPD_IDLE_TIMEOUT_MS;
    s->write_timeout_ms = ACR_HTTPD_WRITE_TIMEOUT_MS;
    s->linger_ms = ACR__HTTPD_LINGER_MS;
    s->out_pause = ACR_HTTPD_OUT_PAUSE;
    s->out_total_max = ACR__HTTPD_OUT_TOTAL;
    s->slice_ns = ACR__HTTPD_SLICE_NS;
    s->max_conns = acr__httpd_conn_cap(ACR_HTTPD_MAX_CONNS);
    if (cfg->auth) {
        unsigned int mdlen = 0;
        if (!strchr(cfg->auth, ':')) {
            snprintf(err, errlen, "--web-auth must be USER:PASS");
            free(s);
            return NULL;
        }
        if (EVP_Digest(cfg->auth, strlen(cfg->auth), s->auth_digest, &mdlen, EVP_sha256(), NULL) !=
                1 ||
            mdlen != sizeof(s->auth_digest)) {
            ERR_clear_error();
            snprintf(err, errlen, "cannot hash the --web-auth credentials");
            free(s);
            return NULL;
        }
        s->auth = true;
    }
    return s;
}

static void free_server_cb(uv_handle_t *h)
{
    acr_httpd_free(acr_container_of(h, acr_httpd_t, listener));
}

int acr_httpd_start(uv_loop_t *loop, const acr_httpd_config_t *cfg, acr_httpd_t **out,
                    int *bound_port, char *err, size_t errlen)
{
    acr_httpd_t *s;
    int rc;

    *out = NULL;
    if (errlen) err[0] = '\0';
    if (cfg->port < 0 || cfg->port > 65535) {
        snprintf(err, errlen, "web port %d out of range", cfg->port);
        return -EINVAL;
    }
    if (!(s = server_new(cfg, err, errlen))) return -EINVAL;
    s->loop = loop;
    if (cfg->tls_cert || cfg->tls_key) {
        rc = acr__httpd_tls_ctx_new(cfg->tls_cert, cfg->tls_key, &s->ssl_ctx, err, errlen);
        if (rc < 0) {
            acr_httpd_free(s);
            return rc;
        }
    }
    rc = acr__httpd_bind(s, cfg->host, cfg->port, on_connection, err, errlen);
    if (rc < 0) {
        if (s->listening)
            uv_close((uv_handle_t *)&s->listener, free_server_cb); /* freed on the loop */
        else
            acr_httpd_free(s);
        return rc;
    }
    uv_idle_init(loop, &s->resume);
    s->resume_init = true;
    if (bound_port) *bound_port = acr__httpd_bound_port(s);
    ACR_DEBUG("web: listening on port %d%s%s", acr__httpd_bound_port(s), s->ssl_ctx ? " (TLS)" : "",
              s->auth ? " (Basic auth)" : "");
    *out = s;
    return 0;
}

void acr_httpd_close(acr_httpd_t *s)
{
    if (!s || s->closing) return;
    s->closing = true;
    if (s->listening) {
        uv_close((uv_handle_t *)&s->listener, NULL);
        s->listening = false;
    }
    for (conn_t *c = s->conns; c; c = c->next) conn_close(c);
    if (s->resume_init) uv_close((uv_handle_t *)&s->resume, NULL);
}

void acr_httpd_free(acr_httpd_t *s)
{
    if (!s) return;
    SSL_CTX_free(s->ssl_ctx);
    free(s);
}

void acr_httpd_get_stats(const acr_httpd_t *s, acr_httpd_stats_t *out)
{
    *out = s->stats;
}

/* ---- detached connections (fuzzing) ---------------------------------------------------------- */

acr_httpd_t *acr__httpd_new_detached(const acr_httpd_config_t *cfg)
{
    char err[128];
    return server_new(cfg, err, sizeof(err));
}

acr__httpd_conn_t *acr__httpd_conn_detached(acr_httpd_t *s)
{
    conn_t *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    link_conn(s, c);
    c->detached = true;
    c->state = ACR__HC_READING;
    snprintf(c->peer, sizeof(c->peer), "fuzz:0");
    return c;
}

bool acr__httpd_feed(acr__httpd_conn_t *c, const char *p, size_t n)
{
    if (c->state == ACR__HC_CLOSED) return false;
    if (c->state != ACR__HC_READING || n == 0) return true;
    if (c->ilen == 0) {
        c->ip = p;
        c->ilen = n;
    } else {
        stash_add(c, p, n);
    }
    conn_run(c);
    return c->state != ACR__HC_CLOSED;
}

acr_buf_t *acr__httpd_sink(acr__httpd_conn_t *c)
{
    return &c->sink;
}

void acr__httpd_conn_free_detached(acr__httpd_conn_t *c)
{
    if (c) conn_free(c);
}
