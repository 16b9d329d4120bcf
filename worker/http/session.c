/*
 * The worker's HTTP client (worker/http/http.h): the per-loop client (shared read buffers, DNS
 * cache, TLS contexts) and the per-user session, which runs one request at a time through its
 * hops: pick an idle keep-alive connection or resolve + connect a new one, serialize the request
 * into the session's reused buffer, hand it to the connection (conn.c), then follow
 * redirects, store cookies and complete exactly once.
 *
 * Completion: success is delivered from the read callback that finished the response; every
 * failure is delivered from the session's timer (0 ms), so the callback never runs inside
 * acr_http_session_request() or acr_http_session_close(). The same timer enforces the request
 * timeout. A stale keep-alive connection (closed or reset by the peer before any response byte)
 * is retried once on a fresh connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "common/log.h"
#include "common/util.h"
#include "worker/http/http_internal.h"

#ifndef ACR_VERSION
#define ACR_VERSION "0.1.0"
#endif

static void on_timer(uv_timer_t *t);

/* ---- client ---- */

acr_http_client_t *acr_http_client_new(uv_loop_t *loop, const acr_http_config_t *cfg, char *err,
                                       size_t errlen)
{
    acr_http_client_t *c = calloc(1, sizeof *c);
    if (!c) goto nomem;
    c->loop = loop;
    c->body_cap = cfg && cfg->body_cap ? cfg->body_cap : ACR_HTTP_DEFAULT_BODY_CAP;
    c->insecure = cfg && cfg->insecure;
    c->user_agent = strdup(cfg && cfg->user_agent ? cfg->user_agent : "acrida/" ACR_VERSION);
    c->rbuf = malloc(ACR__HTTP_READ_BUF);
    c->tlsbuf = malloc(ACR__HTTP_TLS_BUF);
    c->dns = acr__http_dns_new(loop, &c->stats.dns_lookups);
    if (!c->user_agent || !c->rbuf || !c->tlsbuf || !c->dns) goto nomem;
    c->tls = acr__http_tls_new(cfg ? cfg->ca_file : NULL, err, errlen);
    if (!c->tls) goto fail;
    struct rlimit rl;
    c->max_conns = SIZE_MAX;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        c->max_conns = rl.rlim_cur > ACR__HTTP_FD_RESERVE ? rl.rlim_cur - ACR__HTTP_FD_RESERVE : 1;
    return c;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    acr_http_client_free(c);
    return NULL;
}

void acr_http_client_free(acr_http_client_t *c)
{
    if (!c) return;
    if (c->nsessions) ACR_ERROR("http: freed with %u sessions still open", c->nsessions);
    acr__http_dns_free(c->dns);
    acr__http_tls_free(c->tls);
    free(c->rbuf);
    free(c->tlsbuf);
    free(c->user_agent);
    free(c);
}

/* ---- session lifecycle ---- */

acr_http_session_t *acr_http_session_new(acr_http_client_t *c)
{
    acr_http_session_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->c = c;
    if (uv_timer_init(c->loop, &s->timer) < 0) {
        free(s);
        return NULL;
    }
    s->timer.data = s;
    c->nsessions++;
    return s;
}

static void free_session(acr_http_session_t *s)
{
    void (*closed_cb)(void *) = s->closed_cb;
    void *closed_ud = s->closed_ud;
    acr__http_jar_free(&s->jar);
    acr_buf_free(&s->url);
    acr_buf_free(&s->args);
    acr_buf_free(&s->out);
    free(s->err);
    s->c->nsessions--;
    free(s);
    if (closed_cb) closed_cb(closed_ud);
}

void acr__http_session_handle_closed(acr_http_session_t *s)
{
    s->pending_closes--;
    if (s->pending_closes == 0 && s->timer_closed) free_session(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    acr_http_session_t *s = h->data;
    s->timer_closed = true;
    acr__http_session_handle_closed(s);
}

static void finish_close(acr_http_session_t *s)
{
    if (s->timer_closing) return;
    s->timer_closing = true;
    while (s->conns) acr__http_conn_discard(s->conns);
    s->pending_closes++;
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

void acr_http_session_close(acr_http_session_t *s, bool abort, void (*closed_cb)(void *ud),
                            void *ud)
{
    if (s->closing) return;
    s->closing = true;
    s->closed_cb = closed_cb;
    s->closed_ud = ud;
    if (!s->busy) {
        finish_close(s);
        return;
    }
    if (!abort) return; /* complete() closes after the callback */
    acr__http_dns_cancel(&s->dns_wait);
    if (s->cur) acr__http_conn_discard(s->cur);
    s->pending_error = "aborted";
    s->pending_status = 0;
    uv_timer_start(&s->timer, on_timer, 0, 0);
}

void acr_http_session_cancel(acr_http_session_t *s)
{
    if (!s->busy) return;
    uv_timer_stop(&s->timer);
    acr__http_dns_cancel(&s->dns_wait);
    if (s->cur) acr__http_conn_discard(s->cur);
    s->cur = NULL;
    s->pending_error = NULL;
    s->cb = NULL;
    s->busy = false;
    if (s->closing) finish_close(s);
}

void acr_http_session_trim(acr_http_session_t *s)
{
    if (s->busy || s->closing) return;
    acr_buf_free(&s->url);
    acr_buf_free(&s->args);
    acr_buf_free(&s->out);
    free(s->err);
    s->err = NULL;
    for (acr__http_conn_t *k = s->conns; k; k = k->next) acr__http_conn_trim(k, 0);
}

/* ---- completion ---- */

static double ms(uint64_t from, uint64_t to)
{
    return to > from ? (double)(to - from) / 1e6 : 0.0;
}

/* Delivers the response (headers and body from @c when given) and runs the callback. */
static void complete(acr_http_session_t *s, acr__http_conn_t *c, int status, const char *error)
{
    uv_timer_stop(&s->timer);
    acr__http_dns_cancel(&s->dns_wait);
    s->pending_error = NULL;
    s->cur = NULL;
    acr_http_response_t r;
    memset(&r, 0, sizeof r);
    r.status = status;
    r.error = error;
    if (c) {
        r.headers = c->harr;
        r.nheaders = c->nharr;
        r.body = c->body.data ? c->body.data : "";
        r.body_len = c->body.len;
        r.content_length = c->body_seen;
    } else {
        r.body = "";
    }
    uint64_t now = uv_hrtime();
    r.elapsed_us = (now - s->t_start) / 1000;
    s->tm.total = (double)(now - s->t_start) / 1e6;
    r.timings = s->tm;
    r.url = s->url.data;
    acr_http_done_cb cb = s->cb;
    void *ud = s->ud;
    s->cb = NULL;
    s->busy = false;
    cb(s, &r, ud);
    /* the session is still allocated: it is freed only from close callbacks */
    if (c) acr__http_conn_trim(c, ACR__HTTP_KEEP_BUF);
    if (!s->busy) {
        acr_buf_trim(&s->args, ACR__HTTP_KEEP_BUF);
        acr_buf_trim(&s->out, ACR__HTTP_KEEP_BUF);
        if (s->url.cap > ACR__HTTP_KEEP_BUF) acr_buf_free(&s->url);
        if (s->closing) finish_close(s);
    }
}

/* Schedules a failed completion from the loop (never inside the caller's call). */
static void fail_async(acr_http_session_t *s, int status, const char *msg)
{
    if (s->cur) acr__http_conn_discard(s->cur);
    acr__http_dns_cancel(&s->dns_wait);
    if (!s->err) s->err = malloc(ACR__HTTP_ERR_LEN); /* kept: errors tend to repeat */
    if (s->err) snprintf(s->err, ACR__HTTP_ERR_LEN, "%s", msg);
    s->pending_error = s->err ? s->err : "out of memory";
    s->pending_status = status;
    uv_timer_start(&s->timer, on_timer, 0, 0);
}

static void on_timer(uv_timer_t *t)
{
    acr_http_session_t *s = t->data;
    if (!s->busy) return;
    if (s->pending_error) {
        complete(s, NULL, s->pending_status, s->pending_error);
        return;
    }
    int status = s->cur && s->cur->state == ACR__HTTP_CONN_ACTIVE ? s->cur->status : 0;
    if (s->cur) acr__http_conn_discard(s->cur);
    char msg[64];
    snprintf(msg, sizeof msg, "timeout after %g s", s->timeout);
    complete(s, NULL, status, msg);
}

/* ---- request serialization ---- */

static int out_put(acr_http_session_t *s, const char *p, size_t n)
{
    return acr_buf_append_counted(&s->out, p, n, &s->c->stats.buf_grows);
}

static int out_puts(acr_http_session_t *s, const char *p)
{
    return out_put(s, p, strlen(p));
}

/* Request target: the path with bytes that may not appear on the request line %-encoded. */
static int put_target(acr_http_session_t *s)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *p = s->url.data + s->u.path_off;
    size_t n = s->u.path_len;
    if (n == 0) return out_put(s, "/", 1);
    if (p[0] == '?' && out_put(s, "/", 1) < 0) return -ENOMEM;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch > 0x20 && ch < 0x7f) continue;
        char enc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
        if (out_put(s, p + run, i - run) < 0 || out_put(s, enc, 3) < 0) return -ENOMEM;
        run = i + 1;
    }
    return out_put(s, p + run, n - run);
}

static int serialize(acr_http_session_t *s)
{
    const acr__http_url_t *u = &s->u;
    const char *url = s->url.data;
    acr_buf_reset(&s->out);
    if (out_puts(s, s->method) < 0 || out_put(s, " ", 1) < 0 || put_target(s) < 0 ||
        out_puts(s, " HTTP/1.1\r\n") < 0)
        return -ENOMEM;
    if (!(s->args_has & ACR__HTTP_H_HOST) &&
        (out_puts(s, "Host: ") < 0 || out_put(s, url + u->auth_off, u->auth_len) < 0 ||
         out_put(s, "\r\n", 2) < 0))
        return -ENOMEM;
    if (!(s->args_has & ACR__HTTP_H_UA) &&
        (out_puts(s, "User-Agent: ") < 0 || out_puts(s, s->c->user_agent) < 0 ||
         out_put(s, "\r\n", 2) < 0))
        return -ENOMEM;
    if (!(s->args_has & ACR__HTTP_H_CONN) && out_puts(s, "Connection: keep-alive\r\n") < 0)
        return -ENOMEM;
    if (!(s->args_has & ACR__HTTP_H_COOKIE) && s->jar.head &&
        acr__http_jar_header(&s->jar, url + u->host_off, u->host_len, url + u->path_off,
                             u->path_len, u->tls, acr_now(), &s->out, &s->c->stats.buf_grows) < 0)
        return -ENOMEM;
    if (out_put(s, s->args.data, s->args_hdr_len) < 0) return -ENOMEM;
    bool wants_body = s->body_len > 0 || strcmp(s->method, "POST") == 0 ||
                      strcmp(s->method, "PUT") == 0 || strcmp(s->method, "PATCH") == 0;
    if (wants_body && !(s->args_has & (ACR__HTTP_H_CLEN | ACR__HTTP_H_TE))) {
        char cl[48];
        int n = snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", s->body_len);
        if (out_put(s, cl, (size_t)n) < 0) return -ENOMEM;
    }
    if (out_put(s, "\r\n", 2) < 0 || out_put(s, s->args.data + s->args_hdr_len, s->body_len) < 0)
        return -ENOMEM;
    return 0;
}

/* ---- hops ---- */

static void start_hop(acr_http_session_t *s);

static void send_request(acr_http_session_t *s, acr__http_conn_t *c)
{
    s->cur = c;
    if (serialize(s) < 0) {
        fail_async(s, 0, "out of memory");
        return;
    }
    char err[ACR__HTTP_ERR_LEN] = "";
    int rc = acr__http_conn_send(c, s->head, err, sizeof err);
    if (rc < 0) fail_async(s, 0, err[0] ? err : uv_strerror(rc));
}

static void connect_next(acr_http_session_t *s)
{
    if (s->c->nconns >= s->c->max_conns) { /* the process's last descriptors stay free */
        fail_async(s, 0, ACR_HTTP_ERR_NOFILE);
        return;
    }
    acr__http_conn_t *c = acr__http_conn_new(s, s->insecure);
    if (!c) {
        fail_async(s, 0, "out of memory");
        return;
    }
    s->cur = c;
    unsigned n = 0;
    acr__http_conn_t *last_idle = NULL;
    for (acr__http_conn_t *k = s->conns; k; k = k->next) {
        n++;
        if (k->state == ACR__HTTP_CONN_IDLE) last_idle = k;
    }
    if (n > ACR__HTTP_MAX_CONNS && last_idle) acr__http_conn_discard(last_idle);
    acr__http_addr_t *a = &s->addrs[s->addr_idx];
    if (a->sa.sa_family == AF_INET)
        a->in.sin_port = htons(s->u.port);
    else
        a->in6.sin6_port = htons(s->u.port);
    int rc = acr__http_conn_connect(c, &a->sa);
    if (rc < 0) acr__http_session_conn_event(s, c, ACR__HTTP_EV_ERROR, rc, NULL);
}

static void on_dns(acr__http_dns_waiter_t *w, int status, const acr__http_addr_t *addrs, int naddrs)
{
    acr_http_session_t *s = acr_container_of(w, acr_http_session_t, dns_wait);
    s->tm.dns += ms(s->t_dns, uv_hrtime());
    if (status < 0) {
        char host[256];
        snprintf(host, sizeof host, "%.*s", (int)s->u.host_len, s->url.data + s->u.host_off);
        char msg[ACR__HTTP_ERR_LEN];
        snprintf(msg, sizeof msg, "DNS lookup failed for %.200s: %s", host, uv_strerror(status));
        fail_async(s, 0, msg);
        return;
    }
    memcpy(s->addrs, addrs, sizeof addrs[0] * (size_t)naddrs);
    s->naddrs = naddrs;
    s->addr_idx = 0;
    connect_next(s);
}

static void start_hop(acr_http_session_t *s)
{
    const acr__http_url_t *u = &s->u;
    const char *host = s->url.data + u->host_off;
    for (acr__http_conn_t *c = s->conns; c; c = c->next) {
        if (c->state == ACR__HTTP_CONN_IDLE && c->tls == u->tls && c->port == u->port &&
            c->insecure == s->insecure && strlen(c->host) == u->host_len &&
            memcmp(c->host, host, u->host_len) == 0) {
            send_request(s, c);
            return;
        }
    }
    char name[256];
    memcpy(name, host, u->host_len);
    name[u->host_len] = '\0';
    s->addr_idx = 0;
    s->naddrs = 1;
    memset(&s->addrs[0], 0, sizeof s->addrs[0]);
    if (uv_ip4_addr(name, u->port, &s->addrs[0].in) == 0 ||
        uv_ip6_addr(name, u->port, &s->addrs[0].in6) == 0) {
        connect_next(s);
        return;
    }
    s->dns_wait.cb = on_dns;
    s->t_dns = uv_hrtime();
    int rc = acr__http_dns_resolve(s->c->dns, name, &s->dns_wait, s->addrs, &s->naddrs);
    if (rc == 1) {
        connect_next(s);
    } else if (rc < 0) {
        char msg[ACR__HTTP_ERR_LEN];
        snprintf(msg, sizeof msg, "DNS lookup failed for %.200s: %s", name, uv_strerror(rc));
        fail_async(s, 0, msg);
    }
}

/* ---- redirects, cookies ---- */

static const acr_http_header_t *find_header(const acr__http_conn_t *c, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < c->nharr; i++)
        if (c->harr[i].name_len == n && memcmp(c->harr[i].name, name, n) == 0) return &c->harr[i];
    return NULL;
}

/* Removes caller header lines named @name (lower case) from s->args. */
static void drop_arg_header(acr_http_session_t *s, const char *name)
{
    size_t n = strlen(name), i = 0;
    char *a = s->args.data;
    while (i < s->args_hdr_len) {
        char *eol = memchr(a + i, '\n', s->args_hdr_len - i);
        size_t line = (size_t)(eol - (a + i)) + 1;
        if (line > n && a[i + n] == ':' && strncasecmp(a + i, name, n) == 0) {
            memmove(a + i, a + i + line, s->args.len - i - line);
            s->args.len -= line;
            s->args_hdr_len -= line;
        } else {
            i += line;
        }
    }
}

/* Follows a redirect response on @c if it is one. Returns true when a new hop started or the
 * request failed (then @c is released). */
static bool redirect(acr_http_session_t *s, acr__http_conn_t *c)
{
    int st = c->status;
    if (!s->redirects_ok || !(st == 301 || st == 302 || st == 303 || st == 307 || st == 308))
        return false;
    const acr_http_header_t *loc = find_header(c, "location");
    if (!loc) return false;
    if (s->redirects >= ACR__HTTP_MAX_REDIRECTS) {
        acr__http_conn_release(c);
        s->cur = NULL;
        char msg[64];
        snprintf(msg, sizeof msg, "too many redirects (%d)", ACR__HTTP_MAX_REDIRECTS);
        fail_async(s, st, msg);
        return true;
    }
    int rc = acr__http_url_resolve(s->url.data, &s->u, loc->value, loc->value_len, &s->out,
                                   &s->c->stats.buf_grows);
    acr__http_conn_release(c);
    acr__http_conn_trim(c, ACR__HTTP_KEEP_BUF);
    s->cur = NULL;
    acr__http_url_t nu;
    if (rc == 0) rc = acr__http_url_parse(s->out.data, &nu);
    if (rc < 0) {
        fail_async(s, st, rc == -ENOMEM ? "out of memory" : "invalid redirect location");
        return true;
    }
    bool same_origin =
        nu.tls == s->u.tls && nu.port == s->u.port && nu.host_len == s->u.host_len &&
        memcmp(s->out.data + nu.host_off, s->url.data + s->u.host_off, nu.host_len) == 0;
    acr_buf_t tmp = s->url;
    s->url = s->out;
    s->out = tmp;
    s->u = nu;
    if (!same_origin) drop_arg_header(s, "authorization");
    if ((st == 303 && strcmp(s->method, "HEAD") != 0) ||
        ((st == 301 || st == 302) && strcmp(s->method, "POST") == 0)) {
        snprintf(s->method, sizeof s->method, "GET");
        s->head = false;
        s->args.len = s->args_hdr_len;
        s->body_len = 0;
        drop_arg_header(s, "content-type");
        drop_arg_header(s, "content-length");
        drop_arg_header(s, "transfer-encoding");
        s->args_has &= (uint8_t) ~(ACR__HTTP_H_CLEN | ACR__HTTP_H_TE);
    }
    s->redirects++;
    s->retried = false;
    start_hop(s);
    return true;
}

static void store_cookies(acr_http_session_t *s, const acr__http_conn_t *c)
{
    double now = -1;
    for (size_t i = 0; i < c->nharr; i++) {
        const acr_http_header_t *h = &c->harr[i];
        if (h->name_len != 10 || memcmp(h->name, "set-cookie", 10) != 0) continue;
        if (now < 0) now = acr_now();
        acr__http_jar_set(&s->jar, s->url.data + s->u.host_off, s->u.host_len,
                          s->url.data + s->u.path_off, s->u.path_len, h->value, h->value_len, now);
    }
}

/* ---- connection events ---- */

static const char *uv_message(int status)
{
    switch (status) {
    case UV_ECONNREFUSED:
        return "connection refused";
    case UV_ECONNRESET:
    case UV_EPIPE:
        return "connection reset by peer";
    case UV_EOF:
        return "connection closed before the response completed";
    case UV_EMFILE:
    case UV_ENFILE:
        return ACR_HTTP_ERR_NOFILE;
    default:
        return uv_strerror(status);
    }
}

void acr__http_session_conn_event(acr_http_session_t *s, acr__http_conn_t *c,
                                  acr__http_conn_event_t ev, int status, const char *err)
{
    if (c != s->cur || !s->busy || s->pending_error) {
        /* a connection the request no longer waits for */
        if (ev == ACR__HTTP_EV_RESPONSE)
            acr__http_conn_release(c);
        else
            acr__http_conn_discard(c);
        return;
    }
    switch (ev) {
    case ACR__HTTP_EV_READY:
        s->tm.connect += ms(c->t_start, c->t_connected);
        if (c->tls) s->tm.tls += ms(c->t_connected, c->t_ready);
        send_request(s, c);
        return;
    case ACR__HTTP_EV_RESPONSE:
        s->tm.ttfb = ms(c->t_sent, c->t_first);
        store_cookies(s, c);
        if (redirect(s, c)) return;
        acr__http_conn_release(c);
        complete(s, c, c->status, NULL);
        return;
    case ACR__HTTP_EV_ERROR:
        break;
    }
    bool stale = c->requests > 0 && !c->got_bytes &&
                 (status == UV_EOF || status == UV_ECONNRESET || status == UV_EPIPE);
    if (stale && !s->retried) {
        s->retried = true;
        s->c->stats.retries++;
        acr__http_conn_discard(c);
        start_hop(s);
        return;
    }
    if (c->state == ACR__HTTP_CONN_CONNECTING && s->addr_idx + 1 < s->naddrs) {
        acr__http_conn_discard(c);
        s->addr_idx++;
        connect_next(s);
        return;
    }
    int seen = c->state == ACR__HTTP_CONN_ACTIVE && c->status >= 200 ? c->status : 0;
    fail_async(s, seen, err ? err : uv_message(status));
}

/* ---- requests ---- */

static bool token_char(unsigned char ch)
{
    return ch > 0x20 && ch < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", ch);
}

static bool is_name(const char *p, size_t n, const char *lc)
{
    return strlen(lc) == n && strncasecmp(p, lc, n) == 0;
}

/* Copies method, URL, caller headers and body into the session. -EINVAL or -ENOMEM. */
static int load_request(acr_http_session_t *s, const acr_http_request_t *req)
{
    uint64_t *g = &s->c->stats.buf_grows;
    size_t ml = req->method ? strlen(req->method) : 0;
    if (ml == 0 || ml >= sizeof s->method || !req->url) return -EINVAL;
    for (size_t i = 0; i < ml; i++)
        if (!token_char((unsigned char)req->method[i])) return -EINVAL;
    size_t ul = strlen(req->url);
    if (ul >= UINT32_MAX / 2) return -EINVAL; /* acr__http_url_t offsets are 32 bits */
    acr_buf_reset(&s->url);
    if (acr_buf_append_counted(&s->url, req->url, ul, g) < 0) return -ENOMEM;
    if (acr__http_url_parse(s->url.data, &s->u) < 0) return -EINVAL;
    acr_buf_reset(&s->args);
    s->args_has = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        const acr_http_header_t *h = &req->headers[i];
        if (!h->name || h->name_len == 0 || (h->value_len && !h->value)) return -EINVAL;
        for (size_t k = 0; k < h->name_len; k++)
            if (!token_char((unsigned char)h->name[k])) return -EINVAL;
        for (size_t k = 0; k < h->value_len; k++)
            if (h->value[k] == '\r' || h->value[k] == '\n' || h->value[k] == '\0') return -EINVAL;
        if (is_name(h->name, h->name_len, "host")) s->args_has |= ACR__HTTP_H_HOST;
        if (is_name(h->name, h->name_len, "user-agent")) s->args_has |= ACR__HTTP_H_UA;
        if (is_name(h->name, h->name_len, "connection")) s->args_has |= ACR__HTTP_H_CONN;
        if (is_name(h->name, h->name_len, "content-length")) s->args_has |= ACR__HTTP_H_CLEN;
        if (is_name(h->name, h->name_len, "transfer-encoding")) s->args_has |= ACR__HTTP_H_TE;
        if (is_name(h->name, h->name_len, "cookie")) s->args_has |= ACR__HTTP_H_COOKIE;
        if (acr_buf_append_counted(&s->args, h->name, h->name_len, g) < 0 ||
            acr_buf_append_counted(&s->args, ": ", 2, g) < 0 ||
            acr_buf_append_counted(&s->args, h->value, h->value_len, g) < 0 ||
            acr_buf_append_counted(&s->args, "\r\n", 2, g) < 0)
            return -ENOMEM;
    }
    s->args_hdr_len = s->args.len;
    if (req->body_len && !req->body) return -EINVAL;
    if (req->body_len && acr_buf_append_counted(&s->args, req->body, req->body_len, g) < 0)
        return -ENOMEM;
    s->body_len = req->body_len;
    memcpy(s->method, req->method, ml + 1);
    return 0;
}

int acr_http_session_request(acr_http_session_t *s, const acr_http_request_t *req,
                             acr_http_done_cb cb, void *ud)
{
    if (s->busy) return -EBUSY;
    if (s->closing) return -ECANCELED;
    if (!req || !cb) return -EINVAL;
    int rc = load_request(s, req);
    if (rc < 0) return rc;
    s->busy = true;
    s->cb = cb;
    s->ud = ud;
    s->redirects = 0;
    s->retried = false;
    s->pending_error = NULL;
    s->redirects_ok = req->allow_redirects;
    s->insecure = req->insecure || s->c->insecure;
    s->head = strcmp(s->method, "HEAD") == 0;
    s->timeout = req->timeout > 0 ? req->timeout : ACR_HTTP_DEFAULT_TIMEOUT;
    memset(&s->tm, 0, sizeof s->tm);
    s->t_start = uv_hrtime();
    uv_update_time(s->c->loop); /* the loop's cached clock may be stale */
    uv_timer_start(&s->timer, on_timer, acr_timer_ms(s->timeout), 0);
    start_hop(s);
    return 0;
}
