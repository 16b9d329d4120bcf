/*
 * Unit tests for the master's HTTP server (master/web/httpd.c, httpd_tls.c): the server runs on a
 * loop driven by the test thread; clients are non-blocking loopback sockets pumped between loop
 * iterations (run_until_pred of unit_srv.h), and for HTTPS the worker's own HTTP client on the
 * same loop. Every wait is for an event (responses, EOF, a counter), never for time; deadlines
 * under test are lowered through acr_httpd_t (httpd_int.h) so they fire soon.
 */
#define _GNU_SOURCE /* memmem, strcasestr, mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/unit_srv.h"

#include <fcntl.h>
#include <jansson.h>
#include <sys/resource.h>
#include <openssl/evp.h>

#include "master/web/httpd_int.h"

/* ---- the server under test ------------------------------------------------------------------- */

typedef struct tsrv {
    uv_loop_t loop;
    acr_httpd_t *s;
    int port;
    int calls;
    int mark_at; /* the call that was /mark */
    char method[16], path[512], query[512], ctype[128], peer[64];
    acr_buf_t body;
} tsrv_t;

/* Routes: /big/N (N bytes of 'x'), /echo (the body back), /hdr (own Cache-Control and X-Test),
 * /bad-status, /bad-hdr (invalid answers), /close-server (closes the server from the handler),
 * /json-error, /form (the query's "a"); anything else: "METHOD PATH ?QUERY". */
static void handler(const acr_httpd_req_t *req, acr_httpd_resp_t *resp, void *ud)
{
    tsrv_t *t = ud;
    t->calls++;
    if (strcmp(req->path, "/mark") == 0) t->mark_at = t->calls;
    snprintf(t->method, sizeof t->method, "%s", req->method);
    snprintf(t->path, sizeof t->path, "%s", req->path);
    snprintf(t->query, sizeof t->query, "%s", req->query);
    snprintf(t->ctype, sizeof t->ctype, "%s", req->content_type);
    snprintf(t->peer, sizeof t->peer, "%s", req->peer);
    acr_buf_reset(&t->body);
    acr_buf_append(&t->body, req->body, req->body_len);
    assert_int_equal(req->body[req->body_len], '\0');

    if (strncmp(req->path, "/big/", 5) == 0) {
        size_t n = strtoul(req->path + 5, NULL, 10);
        assert_int_equal(acr_buf_reserve(&resp->body, n), 0);
        memset(resp->body.data, 'x', n);
        resp->body.len = n;
    } else if (strcmp(req->path, "/echo") == 0) {
        resp->content_type = "application/octet-stream";
        acr_buf_append(&resp->body, req->body, req->body_len);
    } else if (strcmp(req->path, "/hdr") == 0) {
        acr_buf_appendf(&resp->headers, "Cache-Control: max-age=5\r\nX-Test: yes\r\n");
        acr_buf_appendf(&resp->body, "hdr");
    } else if (strcmp(req->path, "/bad-status") == 0) {
        resp->status = 99;
    } else if (strcmp(req->path, "/bad-hdr") == 0) {
        acr_buf_appendf(&resp->headers, "X-A: 1\r\nnocolon\r\n");
    } else if (strcmp(req->path, "/close-server") == 0) {
        acr_httpd_close(t->s);
    } else if (strcmp(req->path, "/json-error") == 0) {
        acr_httpd_json_error(resp, 409, "bad \"x\"");
    } else if (strcmp(req->path, "/form") == 0) {
        char *v = acr_httpd_form_get(req->query, strlen(req->query), "a");
        acr_buf_appendf(&resp->body, "%s", v ? v : "(none)");
        free(v);
    } else {
        acr_buf_appendf(&resp->body, "%s %s ?%s", req->method, req->path, req->query);
    }
}

/* Starts a server on 127.0.0.1, port 0, with @auth and TLS files (may be NULL). */
static tsrv_t *tsrv_new(const char *auth, const char *cert, const char *key)
{
    tsrv_t *t = calloc(1, sizeof *t);
    assert_non_null(t);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    acr_httpd_config_t cfg = {.host = "127.0.0.1",
                              .port = 0,
                              .auth = auth,
                              .tls_cert = cert,
                              .tls_key = key,
                              .handler = handler,
                              .ud = t};
    char err[256] = "";
    int rc = acr_httpd_start(&t->loop, &cfg, &t->s, &t->port, err, sizeof err);
    if (rc != 0) fail_msg("acr_httpd_start: %d %s", rc, err);
    assert_true(t->port > 0);
    return t;
}

static void tsrv_free(tsrv_t *t)
{
    acr_httpd_close(t->s);
    unit_loop_close(&t->loop);
    acr_httpd_free(t->s);
    acr_buf_free(&t->body);
    free(t);
}

static acr_httpd_stats_t stats(tsrv_t *t)
{
    acr_httpd_stats_t st;
    acr_httpd_get_stats(t->s, &st);
    return st;
}

/* ---- non-blocking clients -------------------------------------------------------------------- */

typedef struct cli {
    int fd;
    acr_buf_t in, out;
    size_t out_off;
    bool eof, reset, noread;
} cli_t;

static void cli_open(cli_t *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK), 0);
}

static void cli_close(cli_t *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    acr_buf_free(&c->in);
    acr_buf_free(&c->out);
}

/* Sends what it can of the queued output, reads what is there. */
static void cli_pump(cli_t *c)
{
    while (c->out_off < c->out.len) {
        ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w <= 0) break;
        c->out_off += (size_t)w;
    }
    while (!c->noread && !c->eof) {
        char b[65536];
        ssize_t r = recv(c->fd, b, sizeof b, MSG_DONTWAIT);
        if (r > 0) {
            assert_int_equal(acr_buf_append(&c->in, b, (size_t)r), 0);
        } else if (r == 0) {
            c->eof = true;
        } else {
            if (errno == EAGAIN || errno == EINTR) break;
            c->eof = c->reset = true;
        }
    }
}

static void cli_send(cli_t *c, const char *p, size_t n)
{
    assert_int_equal(acr_buf_append(&c->out, p, n), 0);
    cli_pump(c);
}

static void cli_puts(cli_t *c, const char *s)
{
    cli_send(c, s, strlen(s));
}

typedef struct tresp {
    int status;
    char head[4096];
    const char *body; /* into the client's input: valid until the next pump */
    size_t body_len;
} tresp_t;

/* Parses the responses in c->in (interim 100s skipped); bit i of @heads marks the response to a
 * HEAD. Fills up to @max into @out (may be NULL) and returns how many are complete. */
static int cli_parse(cli_t *c, unsigned heads, tresp_t *out, int max)
{
    size_t off = 0;
    int n = 0;
    while (off < c->in.len && n < max) {
        const char *p = c->in.data + off, *e = memmem(p, c->in.len - off, "\r\n\r\n", 4);
        if (!e) break;
        size_t hlen = (size_t)(e + 4 - p);
        int status = strncmp(p, "HTTP/1.1 ", 9) == 0 ? atoi(p + 9) : -1;
        if (status == 100) {
            off += hlen;
            continue;
        }
        char head[4096];
        snprintf(head, sizeof head, "%.*s", (int)(hlen < sizeof head ? hlen : sizeof head - 1), p);
        const char *cl = strcasestr(head, "\r\ncontent-length:");
        size_t blen = cl ? strtoul(cl + 17, NULL, 10) : 0;
        if ((n < 32 && (heads >> n & 1)) || status == 204 || status == 304) blen = 0;
        if (c->in.len - off < hlen + blen) break;
        if (out) {
            out[n].status = status;
            memcpy(out[n].head, head, sizeof head);
            out[n].body = p + hlen;
            out[n].body_len = blen;
        }
        n++;
        off += hlen + blen;
    }
    return n;
}

typedef struct waitn {
    cli_t *c;
    int n;
    unsigned heads;
} waitn_t;

static bool pred_resps(void *arg)
{
    waitn_t *w = arg;
    cli_pump(w->c);
    return cli_parse(w->c, w->heads, NULL, 1 << 20) >= w->n || (w->c->eof && w->n > 0);
}

static bool pred_eof(void *arg)
{
    cli_t *c = arg;
    cli_pump(c);
    return c->eof;
}

typedef struct waitstr {
    cli_t *c;
    const char *s;
} waitstr_t;

static bool pred_contains(void *arg)
{
    waitstr_t *w = arg;
    cli_pump(w->c);
    return w->c->eof || (w->c->in.data && strstr(w->c->in.data, w->s));
}

/* Waits for @n responses on @c and parses them into @out; fails if the connection ends first. */
static void cli_wait(tsrv_t *t, cli_t *c, int n, unsigned heads, tresp_t *out)
{
    waitn_t w = {c, n, heads};
    run_until_pred(&t->loop, pred_resps, &w, "responses");
    int got = cli_parse(c, heads, out, n);
    if (got < n)
        fail_msg("got %d of %d responses before EOF: '%.*s'", got, n, (int)c->in.len,
                 c->in.data ? c->in.data : "");
}

static void cli_wait_eof(tsrv_t *t, cli_t *c)
{
    run_until_pred(&t->loop, pred_eof, c, "the server to close the connection");
}

/* One request on a fresh connection; returns its response (the client stays open in @c). */
static tresp_t *roundtrip(tsrv_t *t, cli_t *c, const char *req)
{
    static tresp_t r;
    cli_open(c, t->port);
    cli_puts(c, req);
    cli_wait(t, c, 1, strncmp(req, "HEAD ", 5) == 0, &r);
    return &r;
}

static bool has_line(const tresp_t *r, const char *line)
{
    char want[512];
    snprintf(want, sizeof want, "\r\n%s\r\n", line);
    return strcasestr(r->head, want) != NULL;
}

#define assert_line(r, line)                                                                       \
    do {                                                                                           \
        if (!has_line((r), (line))) fail_msg("no '%s' in:\n%s", (line), (r)->head);                \
    } while (0)

static void assert_body(const tresp_t *r, const char *body)
{
    if (r->body_len != strlen(body) || memcmp(r->body, body, r->body_len) != 0)
        fail_msg("body '%.*s', want '%s'", (int)r->body_len, r->body, body);
}

/* The connection ends with exactly one response of @status. */
static void expect_final(tsrv_t *t, cli_t *c, int status)
{
    tresp_t r[2];
    cli_wait_eof(t, c);
    int n = cli_parse(c, 0, r, 2);
    if (n != 1) fail_msg("%d responses, want 1: '%.*s'", n, (int)c->in.len, c->in.data);
    assert_int_equal(r[0].status, status);
    assert_line(&r[0], "Connection: close");
    assert_line(&r[0], "Content-Type: application/json");
    assert_line(&r[0], "Access-Control-Allow-Origin: *");
}

/* ---- tests: requests and responses ----------------------------------------------------------- */

static void test_get(void **state)
{
    (void)state;
    tsrv_t *t = tsrv_new(NULL, NULL, NULL);
    cli_t c;
    tresp_t *r = roundtrip(t, &c, "GET /a%20b/c?x=1&y=%41 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(r->status, 200);
    assert_body(r, "GET /a b/c ?x=1&y=%41");
    assert_line(r, "Content-Length: 21");
    assert_line(r, "Content-Type: text/plain; charset=utf-8");
    assert_line(r, "Access-Control-Allow-Origin: *");
    assert_line(r, "Cache-Control: no-store");
    assert_false(has_line(r, "Connection: close"));
    assert_string_equal(t->query, "x=1&y=%41");
    assert_string_equal(t->ctype, "");
    assert_true(strncmp(t->peer, "127.0.0.1:", 10) == 0);
    assert_false(c.eof);
    cli_close(&c);

    /* the handler's own Cache-Control replaces the default; its headers are passed on */
    r = roundtrip(t, &c, "GET /hdr HTTP/1.1\r\n\r\n");
    assert_line(r, "Cache-Control: max-age=5");
    assert_line(r, "X-Test: yes");
    assert_false(has_line(r, "Cache-Control: no-store"));
    cli_close(&c);

    /* invalid answers from the handler become 500 */
    r = roundtrip(t, &c, "GET /bad-status HTTP/1.1\r\n\r\n");
    assert_int_equal(r->status, 500);
    cli_close(&c);
    r = roundtrip(t, &c, "GET /bad-hdr HTTP/1.1\r\n\r\n");
    assert_int_equal(r->status, 500);
    assert_false(has_line(r, "nocolon"));
    cli_close(&c);

    r = roundtrip(t, &c, "GET /json-error HTTP/1.1\r\n\r\n");
    assert_int_equal(r->status, 409);
    assert_line(r, "Content-Type: application/json");
    assert_body(r, "{\n  \"message\": \"bad \\\"x\\\"\",\n  \"success\": false\n}\n");
    cli_close(&c);
    assert_int_equal(t->calls, 5);
    tsrv_free(t);
}

static void test_keepalive_and_close(void **state)
{
    (void)state;
    tsrv_t *t = tsrv_new(NULL, NULL, NULL);
    cli_t c;
    tresp_t r[1];
    cli_open(&c, t->port);
    cli_puts(&c, "GET /one HTTP/1.1\r\n\r\n");
    cli_wait(t, &c, 1, 0, r);
    assert_body(&r[0], "GET /one ?");
    cli_puts(&c, "GET /two HTTP/1.1\r\nConnection: close\r\n\r\n");
    cli_wait(t, &c, 2, 0, NULL);
    tresp_t rr[2];
    assert_int_equal(cli_parse(&c, 0, rr, 2), 2);
    assert_body(&rr[1], "GET /two ?");
    assert_line(&rr[1], "Connection: close");
    cli_wait_eof(t, &c);
    assert_false(c.reset);
    cli_close(&c);
    assert_int_equal(stats(t).accepted, 1);

    /* HTTP/1.0: closed after the answer, unless it asks for keep-alive */
    tresp_t *p = roundtrip(t, &c, "GET /old HTTP/1.0\r\n\r\n");
    assert_body(p, "GET /old ?");
    assert_line(p, "Connection: close");
    cli_wait_eof(t, &c);
    cli_close(&c);
    cli_open(&c, t->port);
    cli_puts(&c, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    cli_wait(t, &c, 1, 0, r);
    assert_line(&r[0], "Connection: keep-alive");
    cli_puts(&c, "GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    cli_wait(t, &c, 2, 0, NULL);
    assert_false(c.eof);
    cli_close(&c);
    assert_int_equal(stats(t).accepted, 3);
    tsrv_free(t);
}

static void test_pipelined(void **state)
{
    (void)state;
    tsrv_t *t = tsrv_new(NULL, NULL, NULL);
    cli_t c;
    tresp_t r[4];
    cli_open(&c, t->port);
    /* three requests in one packet, the third with a body; then a HEAD split mid-line */
    cli_puts(&c, "GET /1 HTTP/1.1\r\n\r\nGET /big/70000 HTTP/1.1\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcHEAD /big/5 HT");
    cli_wait(t, &c, 3, 0, r);
    assert_body(&r[0], "GET /1 ?");
    assert_int_equal(r[1].body_len, 70000);
    assert_body(&r[2], "abc");
    cli_puts(&c, "TP/1.1\r\n\r\nGET /last HTTP/1.1\r\n\r\n");
    cli_wait(t, &c, 5, 1u << 3, NULL);
    tresp_t all[5];
    assert_int_equal(cli_parse(&c, 1u << 3, all, 5), 5);
    /* HEAD: the GET's headers, no body; the next response parses right after them */
    assert_int_equal(all[3].status, 200);
    assert_line(&all[3], "Content-Length: 5");
    assert_body(&all[4], "GET /last ?");
    assert_int_equal(t->calls, 5);
    cli_close(&c);
    assert_int_equal(stats(t).accepted, 1);
    tsrv_free(t);
}

static void test_post_bodies(void **state)
{
    (void)state;
    tsrv_t *t = tsrv_new(NULL, NULL, NULL);
    cli_t c;
    tresp_t r[1];
    /* Content-Length with binary content (NUL included), 200 kB */
    size_t n = 200000;
    char *body = malloc(n);
    assert_non_null(body);
    for (size_t i = 0; i < n; i++) body[i] = (char)(i * 7 + i / 251);
    cli_open(&c, t->port);
    char head[256];
    snprintf(head, sizeof head,
             "POST /echo HTTP/1.1\r\nContent-Type:  application/x-test \r\nContent-Length: %zu"
             "\r\n\r\n",
             n);
    cli_puts(&c, head);
    cli_send(&c, body, n);
    cli_wait(t, &c, 1, 0, r);
    assert_int_equal(r[0].status, 200);
    assert_int_equal(r[0].body_len, n);
    assert_memory_equal(r[0].body, body, n);
    assert_string_equal(t->ctype, "application/x-test");
    assert_string_equal(t->method, "POST");
    cli_close(&c);

    /* chunked, with a trailer */
    cli_open(&c, t->port);
    cli_puts(&c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nX-Trailer: 1\r\n\r\n");
    cli_wait(t, &c, 1, 0, r);
    assert_body(&r[0], "hello world!");
    cli_close(&c);

    /* Expect: 100-continue is answered before the body is sent */
    cli_open(&c, t->port);
    cli_puts(&c, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    waitstr_t ws = {&c, "HTTP/1.1 100 Continue\r\n\r\n"};
    run_until_pred(&t->loop, pred_contains, &ws, "100 Continue");
    assert_int_equal(t->calls, 2); /* not called yet */
    cli_puts(&c, "data");
    cli_wait(t, &c, 1, 0, r);
    assert_body(&r[0], "data");
    cli_close(&c);
    /* ... and not when there is no body to wait for */
    cli_open(&c, t->port);
    cli_puts(&c, "GET /nobody HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n");
    cli_wait(t, &c, 2, 0, NULL);
    assert_null(memmem(c.in.data, c.in.len, "100 Continue", 12));
    cli_close(&c);
    free(body);
    tsrv_free(t);
}

/* ---- tests: limits and bad input ------------------------------------------------------------- */

static void test_limits(void **state)
{
    (void)state;
    tsrv_t *t = tsrv_new(NULL, NULL, NULL);
    cli_t c;
    acr_buf_t big = {0};

    /* headers over 16 KiB: 431, whether in one header or in many */
    cli_open(&c, t->port);
    acr_buf_appendf(&big, "GET / HTTP/1.1\r\nX-Big: ");
    for (int i = 0; i < ACR_HTTPD_MAX_HEADER; i++) acr_buf_putc(&big, 'a');
    acr_buf_appendf(&big, "\r\n\r\n");
    cli_send(&c, big.data, big.len);
    expect_final(t, &c, 431);
    cli_close(&c);
    cli_open(&c, t->port);
    acr_buf_reset(&big);
    acr_buf_appendf(&big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 2000; i++) acr_buf_appendf(&big, "X-%d: 1\r\n", i);
    cli_send(&c, big.data, big.len);
    expect_final(t, &c, 431);
    cli_close(&c);
    /* a path over the limit too */
    cli_open(&c, t->port);
    acr_buf_reset(&big);
    acr_buf_appendf(&big, "GET /");
    for (int i = 0; i < ACR_HTTPD_MAX_HEADER; i++) acr_buf_putc(&big, 'p');
    cli_send(&c, big.data, big.len);
    expect_final(t, &c, 431);
    cli_close(&c);

    /* a body over 1 MiB: 413 at once from Content-Length, or while counting chunks */
    cli_open(&c, t->port);
    cli_puts(&c, "POST /echo HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n");
    expect_final(t, &c, 413);
    cli_close(&c);
    cli_open(&c, t->port);
    acr_buf_reset(&big);
    acr_buf_appendf(&big, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 17; i++) {
        acr_buf_appendf(&big, "10000\r\n");
        for (int j = 0; j < 0x10000; j++) acr_buf_putc(&big, 'b');
        acr_buf_appendf(&big, "\r\n");
    }
    cli_send(&c, big.data, big.len);
    expect_final(t, &c, 413);
    cli_close(&c);
    /* a chunk announced over the limit: 413 at its size line, not once 1 MiB has come */
    cli_open(&c, t->port);
    cli_puts(&c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n100001\r\n");
    expect_final(t, &c, 413);
    cli_close(&c);
    cli_open(&c, t->port);
    cli_puts(&c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "10\r\n0123456789abcdef\r\nFFFF1\r\nab");
    expect_final(t, &c, 413);
    cli_close(&c);
    cli_open(&c, t->port);
    cli_puts(&c, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "FFFFFFFFFFFFFFFF\r\nab");
    expect_final(t, &c, 413);
    cli_close(&c);
    /* trailers count as headers do, line ends included: 5000 "X:" lines are over 16 KiB */
    cli_open(&c, t->port);
    acr_buf_reset(&big);
    acr_buf_appendf(&big, "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
    for (int i = 0; i < 5000; i++) acr_buf_appendf(&big, "X:\r\n");
    acr_buf_appendf(&big, "\r\n");
    cli_send(&c, big.data, big.len);
    expect_final(t, &c, 431);
    cli_close(&c);
    /* exactly 1 MiB is fine */
    cli_open(&c, t->port);
    acr_buf_reset(&big);
    acr_buf_appendf(&big, "POST /echo HTTP/1.1\r\nContent-Length: %d\r\n\r\n", ACR_HTTPD_MAX_BODY);
    for (int j = 0; j < ACR_HTTPD_MAX_BODY; j++) acr_buf_putc(&big, 'c');
    cli_send(&c, big.data, big.len);
    tresp_t r[1];
    cli_wait(t, &c, 1, 0, r);
    assert_int_equal(r[0].status, 200);
    assert_int_equal(r[0].body_len, ACR_HTTPD_MAX_BODY);
    cli_close(&c);
    assert_int_equal(t->calls, 1);
    assert_int_equal(stats(t).bad_requests, 9);
    acr_buf_free(&big);
    tsrv_free(t);
}

static void test_bad_requests(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "HELLO\r\n\r\n",
        "GET / HTTP/1.1\nHost: x\n\n", /* bare LF */
        "GET /a%zz HTTP/1.1\r\n\r\n",
        "GET /a%2 HTTP/1.1\r\n\r\n",
        "GET /a%00b HTTP/1.1\r\n\r\n",
        "GET http://example.com/ HTTP/1.1\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\n\r\n",
        "CONNECT example.com:443 HTTP/1.1\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        "GET / HTTP/1.1\r\nBad\x01Header: 1\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    };
    tsrv_t *t = tsrv_new(NULL, NULL, NULL);
    for (size_t i = 0; i < ACR_ARRAY_SIZE(bad); i++) {
        cli_t c;
        cli_open(&c, t->port);
        cli_puts(&c, bad[i]);
        tresp_t r[2];
        cli_wait_eof(t, &c);
        if (cli_parse(&c, 0, r, 2) != 1) fail_msg("case %zu: '%.*s'", i, (int)c.in.len, c.in.data);
        if (r[0].status != 400) fail_msg("case %zu: status %d", i, r[0].status);
        cli_close(&c);
    }
    /* HTTP/2 or 0.9 style versions */
    cli_t c;
    cli_open(&c, t->port);
    cli_puts(&c, "GET / HTTP/2.0\r\n\r\n");
    cli_wait_eof(t, &c);
    tresp_t r[1];
    assert_int_equal(cli_parse(&c, 0, r, 1), 1);
    assert_true(r[0].status == 505 || r[0].status == 400);
    cli_close(&c);
    /* a good request after a bad one on the same connection is never answered */
    cli_open(&c, t->port);
    cli_puts(&c, "GET /%zz HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    expect_final(t, &c, 400);
    cli_close(&c);
    assert_int_equal(t->calls, 0);
    tsrv_free(t);
}

static void test_options(void **state)
{
    (void)state;
    tsrv_t *t = tsrv_new(NULL, NULL, NULL);
    cli_t c;
    tresp_t *r = roundtrip(t, &c, "OPTIONS /swarm HTTP/1.1\r\nOrigin: http://x\r\n\r\n");
    assert_int_equal(r->status, 204);
    assert_line(r, "Access-Control-Allow-Origin: *");
    assert_line(r, "Access-Control-Allow-Methods: GET, HEAD, POST, OPTIONS");
    assert_false(strcasestr(r->head, "content-length") != NULL);
    /* the connection goes on */
    cli_puts(&c, "GET /x HTTP/1.1\r\n\r\n");
    cli_wait(t, &c, 2, 0, NULL);
    cli_close(&c);
    assert_int_equal(t->calls, 1);
    tsrv_free(t);
}

/* ---- tests: Basic auth ----------------------------------------------------------------------- */

static void auth_req(char *out, size_t len, const char *path, const char *cred)
{
    unsigned char b64[256];
    EVP_EncodeBlock(b64, (const unsigned char *)cred, (int)strlen(cred));
    snprintf(out, len, "GET %s HTTP/1.1\r\nAuthorization: Basic %s\r\n\r\n", path, b64);
}

static void test_auth(void **state)
{
    (void)state;
    tsrv_t *t = tsrv_new("user:pa:ss", NULL, NULL);
    static const char *const wrong[] = {"user:pa:s", "user:pa:sss", "User:pa:ss", ":",
                                        "",          "user:pa:ss\n"};
    char req[512];
    cli_t c;
    tresp_t r[2];

    /* none: 401, the connection stays usable */
    cli_open(&c, t->port);
    cli_puts(&c, "GET /stats/requests HTTP/1.1\r\n\r\n");
    cli_wait(t, &c, 1, 0, r);
    assert_int_equal(r[0].status, 401);
    assert_line(&r[0], "WWW-Authenticate: Basic realm=\"acrida\"");
    assert_line(&r[0], "Access-Control-Allow-Origin: *");
    assert_body(&r[0], "{\n  \"message\": \"authentication required\",\n  \"success\": false\n}\n");
    auth_req(req, sizeof req, "/stats/requests", "user:pa:ss");
    cli_puts(&c, req);
    cli_wait(t, &c, 2, 0, NULL);
    assert_int_equal(cli_parse(&c, 0, r, 2), 2);
    assert_int_equal(r[1].status, 200);
    assert_int_equal(t->calls, 1);
    cli_close(&c);

    for (size_t i = 0; i < ACR_ARRAY_SIZE(wrong); i++) {
        auth_req(req, sizeof req, "/", wrong[i]);
        tresp_t *p = roundtrip(t, &c, req);
        if (p->status != 401) fail_msg("credential %zu: status %d", i, p->status);
        cli_close(&c);
    }
    static const char *const malformed[] = {
        "GET / HTTP/1.1\r\nAuthorization: Basic\r\n\r\n",
        "GET / HTTP/1.1\r\nAuthorization: Basic dXNlcjpwYTpzcw\r\n\r\n", /* no padding */
        "GET / HTTP/1.1\r\nAuthorization: Basic !!!!\r\n\r\n",
        "GET / HTTP/1.1\r\nAuthorization: Bearer dXNlcjpwYTpzcw==\r\n\r\n",
        "GET / HTTP/1.1\r\nAuthorization: dXNlcjpwYTpzcw==\r\n\r\n",
    };
    for (size_t i = 0; i < ACR_ARRAY_SIZE(malformed); i++) {
        tresp_t *p = roundtrip(t, &c, malformed[i]);
        if (p->status != 401) fail_msg("header %zu: status %d", i, p->status);
        cli_close(&c);
    }
    assert_int_equal(t->calls, 1);

    /* right: any path, static assets included; scheme case and spacing do not matter */
    auth_req(req, sizeof req, "/static/app.js", "user:pa:ss");
    tresp_t *p = roundtrip(t, &c, req);
    assert_int_equal(p->status, 200);
    assert_string_equal(t->path, "/static/app.js");
    cli_close(&c);
    p = roundtrip(t, &c, "HEAD / HTTP/1.1\r\nauthorization:   bAsIc   dXNlcjpwYTpzcw==  \r\n\r\n");
    assert_int_equal(p->status, 200);
    cli_close(&c);
    /* no auth on OPTIONS either */
    p = roundtrip(t, &c, "OPTIONS / HTTP/1.1\r\n\r\n");
    assert_int_equal(p->status, 401);
    cli_close(&c);
    /* 100 Continue only with the right credentials */
    cli_open(&c, t->port);
    cli_puts(&c, "POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab");
    cli_wait(t, &c, 1, 0, r);
    assert_int_equal(r[0].status, 401);
    assert_null(strstr(c.in.data, "100 Continue"));
    cli_close(&c);
    assert_int_equal(t->calls, 3);
    assert_int_equal(stats(t).auth_failures, 14);
    tsrv_free(t);
}

/* ---- tests: connections, deadlines, backpressure --------------------------------------------- */

static bool pred_open(void *arg)
{
    void **a = arg;
    return stats(a[0]).open == *(unsigned *)a[1];
}

static void wait_open(tsrv_t *t, unsigned n)
{
    void *a[2] = {t, &n};
    run_until_pred(&t->loop, pred_open, a, "a number of open connections");
}

static bool pred_accepted_closed(void *arg)
{
    acr_httpd_stats_t st = stats(arg);
    return st.accepted == 1 && st.open == 0;
}

/* At the cap the least recently active connection makes room: connections that never send a byte
 * (or trickle one) cannot lock clients out until their deadlines. */
static void test_conn_cap(void **state)
{
    (void)state;
    tsrv_t *t = tsrv_new(NULL, NULL, NULL);
    t->s->max_conns = 2;
    cli_t c[4];
    tresp_t r[1];
    cli_open(&c[0], t->port); /* idle: never sends */
    wait_open(t, 1);
    cli_open(&c[1], t->port);
    cli_puts(&c[1], "GET /1 HTTP/1.1\r\n\r\n");
    cli_wait(t, &c[1], 1, 0, r);
    /* a third client gets in; the idle one (accepted first, never answered) is closed */
    cli_open(&c[2], t->port);
    cli_puts(&c[2], "GET /2 HTTP/1.1\r\n\r\n");
    cli_wait(t, &c[2], 1, 0, r);
    assert_int_equal(r[0].status, 200);
    cli_wait_eof(t, &c[0]);
    assert_int_equal(c[0].in.len, 0);
    assert_int_equal(t->s->evicted, 1);
    assert_int_equal(stats(t).rejected, 0);
    /* then the least recently answered: c[1] (c[2] was answered after it) */
    cli_open(&c[3], t->port);
    cli_puts(&c[3], "GET /3 HTTP/1.1\r\n\r\n");
    cli_wait(t, &c[3], 1, 0, r);
    assert_body(&r[0], "GET /3 ?");
    cli_wait_eof(t, &c[1]);
    assert_int_equal(cli_parse(&c[1], 0, NULL, 4), 1); /* its own answer only */
    assert_int_equal(t->s->evicted, 2);
    cli_pump(&c[2]);
    assert_false(c[2].eof);
    for (int i = 0; i < 4; i++) cli_close(&c[i]);
    wait_open(t, 0);
    assert_int_equal(stats(t).accepted, 4);
    tsrv_free(t);
}

/* Half the open-file limit at most, so clients cannot take the descriptors the rest of the master
 * needs (at the limit, accept failed and the workers' sockets and CSV files would have too). */
static void test_conn_cap_rlimit(void **state)
{
    (void)state;
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 64;
    if (old.rlim_max != RLIM_INFINITY && old.rlim_max < 64) low.rlim_cur = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    tsrv_t *t = tsrv_new(NULL, NULL, NULL);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(t->s->max_conns, (unsigned)(low.rlim_cur / 2));
    tsrv_free(t);
    t = tsrv_new(NULL, NULL, NULL);
    if (old.rlim_cur == RLIM_INFINITY || old.rlim_cur / 2 >= ACR_HTTPD_MAX_CONNS)
        assert_int_equal(t->s->max_conns, ACR_HTTPD_MAX_CONNS);
    tsrv_free(t);
}

/* Answering is budgeted per loop iteration: a client pipelining many requests does not hold the
 * loop, another client is answered between its requests (slice_ns 0: one request per turn). */
static void test_fair_turns(void **state)
{
    (void)state;
    tsrv_t *t = tsrv_new(NULL, NULL, NULL);
    t->s->slice_ns = 0;
    cli_t a, b;
    tresp_t r[1];
    acr_buf_t reqs = {0};
    int n = 50;
    for (int i = 0; i < n; i++) acr_buf_appendf(&reqs, "GET /a%d HTTP/1.1\r\n\r\n", i);
    cli_open(&a, t->port);
    cli_send(&a, reqs.data, reqs.len);
    cli_wait(t, &a, 1, 0, r);
    assert_body(&r[0], "GET /a0 ?");
    cli_open(&b, t->port);
    cli_puts(&b, "GET /mark HTTP/1.1\r\n\r\n");
    cli_wait(t, &b, 1, 0, r);
    assert_body(&r[0], "GET /mark ?");
    print_message("the other client answered as call %d of %d\n", t->mark_at, n + 1);
    assert_true(t->mark_at < n + 1); /* before a's last request */
    /* every pipelined answer arrives, in order */
    cli_wait(t, &a, n, 0, NULL);
    tresp_t *all = calloc((size_t)n, sizeof *all);
    assert_non_null(all);
    assert_int_equal(cli_parse(&a, 0, all, n), n);
    for (int i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "GET /a%d ?", i);
        assert_body(&all[i], want);
    }
    free(all);
    cli_close(&b);
    cli_close(&a);

    /* a deferred client that half-closes still gets every answer, then the close */
    cli_open(&a, t->port);
    cli_send(&a, reqs.data, 5 * strlen("GET /a0 HTTP/1.1\r\n\r\n"));
    shutdown(a.fd, SHUT_WR);
    cli_wait_eof(t, &a);
    assert_int_equal(cli_parse(&a, 0, NULL, n), 5);
    cli_close(&a);
    wait_open(t, 0);
    acr_buf_free(&reqs);
    tsrv_free(t);
}

static void test_slow_clients(void **state)
{
    (void)state;
    tsrv_t *t = tsrv_new(NULL, NULL, NULL);
    t->s->request_timeout_ms = 3600 * 1000; /* never, for this part */
    cli_t slow, fast, idle;
    tresp_t r[1];
    cli_open(&slow, t->port);
    cli_puts(&slow, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nhalf");
    cli_open(&fast, t->port);
    cli_puts(&fast, "GET /fast HTTP/1.1\r\n\r\n");
    cli_wait(t, &fast, 1, 0, r);
    assert_body(&r[0], "GET /fast ?");
    cli_pump(&slow);
    assert_int_equal(slow.in.len, 0);
    assert_false(slow.eof);
    cli_close(&slow);
    cli_close(&fast);
    wait_open(t, 0);

    /* with short deadlines: a request incomplete at its deadline gets 408; an idle connection
     * and one that sent only line ends are closed without an answer */
    t->s->request_timeout_ms = 50;
    t->s->idle_timeout_ms = 50;
    cli_open(&slow, t->port);
    cli_puts(&slow, "GET /never HTTP/1.1\r\nHost:");
    expect_final(t, &slow, 408);
    cli_close(&slow);
    cli_open(&idle, t->port);
    cli_wait_eof(t, &idle);
    assert_int_equal(idle.in.len, 0);
    cli_close(&idle);
    cli_open(&idle, t->port);
    cli_puts(&idle, "GET /k HTTP/1.1\r\n\r\n\r\n\r\n");
    cli_wait_eof(t, &idle);
    assert_int_equal(cli_parse(&idle, 0, r, 1), 1);
    assert_body(&r[0], "GET /k ?");
    cli_close(&idle);
    assert_int_equal(t->calls, 2);
    assert_int_equal(stats(t).timeouts, 2);
    tsrv_free(t);
}

static void test_client_not_reading(void **state)
{
    (void)state;
    tsrv_t *t = tsrv_new(NULL, NULL, NULL);
    t->s->write_timeout_ms = 100;
    cli_t c;
    cli_open(&c, t->port);
    c.noread = true;
    int nreq = 128; /* 64 MiB of answers: far more than the socket buffers hold */
    for (int i = 0; i < nreq; i++) cli_puts(&c, "GET /big/524288 HTTP/1.1\r\n\r\n");
    run_until_pred(&t->loop, pred_accepted_closed, t, "the connection accepted and closed");
    print_message("answered %d of %d pipelined requests before closing\n", t->calls, nreq);
    assert_true(t->calls < nreq);
    assert_true(t->calls >= 2);
    assert_int_equal(stats(t).timeouts, 1);
    cli_close(&c);
    tsrv_free(t);
}

static bool pred_one_call(void *arg)
{
    return ((tsrv_t *)arg)->calls >= 1;
}

/* Output queued on all connections together is bounded: with large answers already waiting for a
 * client that does not read, another large answer is refused (503, Retry-After) instead of being
 * queued, a small one still goes, and the large one goes once the first client has read. */
static void test_output_budget(void **state)
{
    (void)state;
    tsrv_t *t = tsrv_new(NULL, NULL, NULL);
    t->s->out_total_max = 24u << 20;
    cli_t a, b;
    tresp_t r[1];
    cli_open(&a, t->port);
    a.noread = true;
    cli_puts(&a, "GET /big/20000000 HTTP/1.1\r\n\r\n"); /* more than the socket buffers hold */
    run_until_pred(&t->loop, pred_one_call, t, "the first large answer");
    cli_open(&b, t->port);
    cli_puts(&b, "GET /big/20000000 HTTP/1.1\r\n\r\nGET /small HTTP/1.1\r\n\r\n");
    cli_wait(t, &b, 2, 0, NULL);
    tresp_t two[2];
    assert_int_equal(cli_parse(&b, 0, two, 2), 2);
    assert_int_equal(two[0].status, 503);
    assert_line(&two[0], "Retry-After: 10");
    assert_int_equal(two[1].status, 200);
    assert_body(&two[1], "GET /small ?");
    a.noread = false;
    cli_wait(t, &a, 1, 0, r);
    assert_int_equal(r[0].body_len, 20000000);
    acr_buf_reset(&b.in);
    cli_puts(&b, "GET /big/20000000 HTTP/1.1\r\n\r\n");
    cli_wait(t, &b, 1, 0, r);
    assert_int_equal(r[0].status, 200);
    assert_int_equal(r[0].body_len, 20000000);
    cli_close(&a);
    cli_close(&b);
    wait_open(t, 0);
    assert_int_equal(t->s->out_total, 0);
    tsrv_free(t);
}

static void test_close_from_handler(void **state)
{
    (void)state;
    tsrv_t *t = tsrv_new(NULL, NULL, NULL);
    cli_t a, b;
    cli_open(&a, t->port);
    cli_puts(&a, "GET /x HTTP/1.1\r\n\r\n");
    cli_wait(t, &a, 1, 0, NULL);
    cli_open(&b, t->port);
    cli_puts(&b, "GET /close-server HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n");
    cli_wait_eof(t, &b);
    cli_wait_eof(t, &a);
    assert_int_equal(t->calls, 2);
    cli_close(&a);
    cli_close(&b);
    tsrv_free(t);
}

/* ---- tests: start ---------------------------------------------------------------------------- */

static int try_start(const char *host, int port, const char *auth, const char *cert,
                     const char *key, char *err, size_t errlen)
{
    uv_loop_t loop = {0}; /* uv_loop_init keeps .data, which unit_loop_close reads */
    acr_httpd_t *s = NULL;
    int bound = -1;
    assert_int_equal(uv_loop_init(&loop), 0);
    acr_httpd_config_t cfg = {
        .host = host, .port = port, .auth = auth, .tls_cert = cert, .tls_key = key};
    int rc = acr_httpd_start(&loop, &cfg, &s, &bound, err, errlen);
    if (rc == 0) {
        assert_non_null(s);
        assert_true(bound > 0);
        acr_httpd_close(s);
    } else {
        assert_null(s);
        assert_true(err[0] != '\0');
    }
    unit_loop_close(&loop);
    acr_httpd_free(s);
    return rc;
}

static char g_dir[64], g_cert[128], g_key[128], g_other_key[128];

static void test_start(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(try_start("", 0, NULL, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(try_start("*", 0, NULL, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(try_start("localhost", 0, NULL, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(try_start("[::1]", 0, NULL, NULL, NULL, err, sizeof err) == 0 ||
                         strstr(err, "::1") != NULL,
                     1);
    assert_int_not_equal(try_start("no-such-host.invalid", 0, NULL, NULL, NULL, err, sizeof err),
                         0);
    assert_non_null(strstr(err, "no-such-host.invalid"));
    assert_int_equal(try_start("127.0.0.1", 70000, NULL, NULL, NULL, err, sizeof err), -EINVAL);
    assert_int_equal(try_start("127.0.0.1", 0, "nocolon", NULL, NULL, err, sizeof err), -EINVAL);

    /* the port is taken */
    tsrv_t *t = tsrv_new(NULL, NULL, NULL);
    char want[128];
    snprintf(want, sizeof want, "cannot listen on 127.0.0.1:%d: ", t->port);
    assert_int_equal(try_start("127.0.0.1", t->port, NULL, NULL, NULL, err, sizeof err),
                     -EADDRINUSE);
    if (strncmp(err, want, strlen(want)) != 0) fail_msg("err '%s'", err);
    tsrv_free(t);

    /* TLS files */
    assert_int_equal(try_start("127.0.0.1", 0, NULL, "/nonexistent/c.pem", g_key, err, sizeof err),
                     -ENOENT);
    assert_string_equal(err,
                        "cannot load --tls-cert /nonexistent/c.pem: No such file or directory");
    assert_int_equal(try_start("127.0.0.1", 0, NULL, g_cert, NULL, err, sizeof err), -EINVAL);
    assert_int_equal(try_start("127.0.0.1", 0, NULL, g_key, g_key, err, sizeof err), -EINVAL);
    if (strncmp(err, "cannot load --tls-cert ", 23) != 0) fail_msg("err '%s'", err);
    assert_int_equal(try_start("127.0.0.1", 0, NULL, g_cert, g_cert, err, sizeof err), -EINVAL);
    if (strncmp(err, "cannot load --tls-key ", 22) != 0) fail_msg("err '%s'", err);
    assert_int_equal(try_start("127.0.0.1", 0, NULL, g_cert, g_other_key, err, sizeof err),
                     -EINVAL);
    if (!strstr(err, "does not match")) fail_msg("err '%s'", err);
}

/* ---- tests: TLS ------------------------------------------------------------------------------ */

static int setup_certs(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(g_dir, sizeof g_dir, "/tmp/acrida-httpd-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_cert, sizeof g_cert, "%s/cert.pem", g_dir);
    snprintf(g_key, sizeof g_key, "%s/key.pem", g_dir);
    snprintf(g_other_key, sizeof g_other_key, "%s/other-key.pem", g_dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-keyout %s -out %s -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1 && "
             "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s "
             ">/dev/null 2>&1",
             g_key, g_cert, g_other_key);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown_certs(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_tls(void **state)
{
    (void)state;
    static result_t res;
    tsrv_t *t = tsrv_new("u:p", g_cert, g_key);
    char err[256] = "", url[128];
    acr_http_config_t hc = {.ca_file = g_cert, .user_agent = "acrida/test"};
    acr_http_client_t *hcl = acr_http_client_new(&t->loop, &hc, err, sizeof err);
    if (!hcl) fail_msg("client: %s", err);
    acr_http_session_t *ss = acr_http_session_new(hcl);
    assert_non_null(ss);

    /* verified round trips over one connection, Basic auth inside TLS, a POST body */
    acr_http_header_t h = {"Authorization", 13, "Basic dTpw", 10};
    snprintf(url, sizeof url, "https://127.0.0.1:%d/tls?q=1", t->port);
    acr_http_request_t rq = get(url);
    rq.headers = &h;
    rq.nheaders = 1;
    assert_int_equal(run_req(&t->loop, ss, &rq, &res), 0);
    expect_ok(&res, 200, "GET /tls ?q=1");
    char body[100000];
    for (size_t i = 0; i < sizeof body; i++) body[i] = (char)('a' + i % 26);
    snprintf(url, sizeof url, "https://127.0.0.1:%d/echo", t->port);
    rq = get(url);
    rq.method = "POST";
    rq.headers = &h;
    rq.nheaders = 1;
    rq.body = body;
    rq.body_len = sizeof body;
    assert_int_equal(run_req(&t->loop, ss, &rq, &res), 0);
    assert_int_equal(res.status, 200);
    assert_int_equal(res.content_length, sizeof body);
    assert_memory_equal(res.body, body, 70000 < sizeof body ? 70000 : sizeof body);
    rq.headers = NULL;
    rq.nheaders = 0;
    assert_int_equal(run_req(&t->loop, ss, &rq, &res), 0);
    assert_int_equal(res.status, 401);
    assert_int_equal(t->calls, 2);

    /* plain HTTP to the TLS port: a plain 400 that says so, then the close */
    cli_t c;
    tresp_t pr[2];
    cli_open(&c, t->port);
    cli_puts(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    cli_wait_eof(t, &c);
    assert_int_equal(cli_parse(&c, 0, pr, 2), 1);
    assert_int_equal(pr[0].status, 400);
    assert_line(&pr[0], "Connection: close");
    assert_body(&pr[0], "This port speaks HTTPS: use an https:// address.\r\n");
    cli_close(&c);
    assert_int_equal(stats(t).tls_failures, 1);
    /* other bytes that are no TLS: the handshake fails, nothing in plain text */
    cli_open(&c, t->port);
    cli_puts(&c, "\x01\x02\x03\x04garbage\r\n\r\n");
    cli_wait_eof(t, &c);
    assert_true(c.in.len == 0 || strncmp(c.in.data, "HTTP/", 5) != 0);
    cli_close(&c);
    assert_int_equal(stats(t).tls_failures, 2);
    /* and a client that never starts its handshake is closed at the deadline */
    t->s->request_timeout_ms = 50;
    cli_open(&c, t->port);
    cli_wait_eof(t, &c);
    cli_close(&c);

    assert_int_equal(run_req(&t->loop, ss, &rq, &res), 0);
    assert_int_equal(res.status, 401);
    assert_int_equal(stats(t).accepted, 4); /* keep-alive: one connection for the client */
    close_session(&t->loop, ss);
    acr_http_client_free(hcl);
    tsrv_free(t);
}

/* ---- tests: helpers -------------------------------------------------------------------------- */

static void form_case(const char *form, const char *name, const char *want)
{
    char *v = acr_httpd_form_get(form, strlen(form), name);
    if (!want) {
        if (v) fail_msg("'%s' [%s]: '%s', want none", form, name, v);
        return;
    }
    if (!v) fail_msg("'%s' [%s]: none, want '%s'", form, name, want);
    if (strcmp(v, want) != 0) fail_msg("'%s' [%s]: '%s', want '%s'", form, name, v, want);
    free(v);
}

static void test_form_get(void **state)
{
    (void)state;
    form_case("a=1&b=2", "b", "2");
    form_case("a=1&b=2", "a", "1");
    form_case("a=1&a=2", "a", "1");
    form_case("x+y=a+b%20c", "x y", "a b c");
    form_case("%75ser_count=%35", "user_count", "5");
    form_case("flag&z=1", "flag", "");
    form_case("k=", "k", "");
    form_case("&&k=v&", "k", "v");
    form_case("k=v=w", "k", "v=w");
    form_case("kk=1", "k", NULL);
    form_case("k=1", "kk", NULL);
    form_case("", "k", NULL);
    form_case("=v", "", "v");
    form_case("%zz=1&k=%4", "%zz", "1");
    form_case("%zz=1&k=%4", "k", "%4");
    form_case("k=%00x", "k", "%00x");
    form_case("k=%41%4a%e2%82%ac", "k", "AJ\xe2\x82\xac");
    form_case("host=http%3A%2F%2Fx%3A8080%2Fa%3Fb%3D1", "host", "http://x:8080/a?b=1");
    /* the length bounds the form: nothing past it is read */
    char *v = acr_httpd_form_get("a=12345", 3, "a");
    assert_string_equal(v, "1");
    free(v);
    assert_null(acr_httpd_form_get("a=1", 0, "a"));
    assert_null(acr_httpd_form_get(NULL, 0, "a"));
}

static void test_json_error(void **state)
{
    (void)state;
    acr_httpd_resp_t r = {.status = 200};
    acr_buf_appendf(&r.body, "old");
    acr_httpd_json_error(&r, 400, "user_count must be a number");
    assert_int_equal(r.status, 400);
    assert_string_equal(r.content_type, "application/json");
    assert_string_equal(
        r.body.data,
        "{\n  \"message\": \"user_count must be a number\",\n  \"success\": false\n}\n");
    json_error_t je;
    json_t *doc = json_loads(r.body.data, 0, &je);
    assert_non_null(doc);
    assert_true(json_is_false(json_object_get(doc, "success")));
    json_decref(doc);
    acr_httpd_json_error(&r, 400, "caf\xc3\xa9 \x01");
    assert_string_equal(r.body.data,
                        "{\n  \"message\": \"caf\\u00e9 \\u0001\",\n  \"success\": false\n}\n");
    acr_httpd_json_error(&r, 400, "bad \xff utf-8");
    assert_non_null(strstr(r.body.data, "\"success\": false"));
    acr_buf_free(&r.body);
}

/* ---- the fuzz entry points run once (the fuzzer itself is tests/fuzz/fuzz_httpd.c) ----------- */

static void test_detached(void **state)
{
    (void)state;
    tsrv_t t = {0};
    acr_httpd_config_t cfg = {.handler = handler, .ud = &t};
    acr_httpd_t *s = acr__httpd_new_detached(&cfg);
    assert_non_null(s);
    acr__httpd_conn_t *c = acr__httpd_conn_detached(s);
    assert_non_null(c);
    const char *req = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n";
    for (size_t i = 0; req[i]; i++) acr__httpd_feed(c, req + i, 1); /* a byte at a time */
    assert_false(acr__httpd_feed(c, "x", 1));
    acr_buf_t *out = acr__httpd_sink(c);
    assert_non_null(strstr(out->data, "GET /a ?"));
    assert_non_null(strstr(out->data, "GET /b ?"));
    assert_int_equal(t.calls, 2);
    acr__httpd_conn_free_detached(c);
    acr_httpd_free(s);
    acr_buf_free(&t.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get),
        cmocka_unit_test(test_keepalive_and_close),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_post_bodies),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_conn_cap),
        cmocka_unit_test(test_conn_cap_rlimit),
        cmocka_unit_test(test_fair_turns),
        cmocka_unit_test(test_output_budget),
        cmocka_unit_test(test_slow_clients),
        cmocka_unit_test(test_client_not_reading),
        cmocka_unit_test(test_close_from_handler),
        cmocka_unit_test(test_start),
        cmocka_unit_test(test_tls),
        cmocka_unit_test(test_form_get),
        cmocka_unit_test(test_json_error),
        cmocka_unit_test(test_detached),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup_certs, teardown_certs);
}
