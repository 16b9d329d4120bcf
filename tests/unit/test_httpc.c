/*
 * Unit tests for the worker's HTTP client over plain TCP (worker/http/session.c, conn.c, dns.c,
 * cookies.c, url.c) against scripted loopback servers: request format, keep-alive and its cost,
 * body framings, HEAD/204/304, redirects, cookies, every failure message, timeouts, DNS, close
 * and abort. TLS is in test_httpc_tls.c, the pure helpers in test_httpc_parts.c.
 */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/unit_srv.h"

static void stats(fix_t *f, acr__http_stats_t *st)
{
    *st = f->c->stats;
}

/* ---- scripts ---- */

/* Answers every request on the connection with a keep-alive 200 "hello". */
static void s_hello(sconn_t *c)
{
    while (sc_req(c) >= 0)
        sc_puts(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test: Yes  \r\n\r\nhello");
}

static void test_basic_get(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_hello, NULL, NULL);
    result_t *r = req(f, "GET", "/a/b?x=1&y=a b");
    expect_ok(r, 200, "hello");
    assert_non_null(strstr(r->headers, "x-test: Yes\n"));
    assert_int_equal(r->nheaders, 2);
    char want_url[300];
    snprintf(want_url, sizeof want_url, "%s/a/b?x=1&y=a b", f->url);
    assert_string_equal(r->url, want_url);
    assert_int_equal(r->content_length, 5);
    assert_true(r->elapsed_us > 0);
    assert_true(r->tm.total > 0);
    assert_true(r->tm.connect > 0);
    assert_true(r->tm.dns == 0.0); /* IP literal: no lookup */
    assert_true(r->tm.tls == 0.0);
    char want[512];
    snprintf(want, sizeof want,
             "GET /a/b?x=1&y=a%%20b HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: acrida/test\r\n"
             "Connection: keep-alive\r\n\r\n",
             f->sv->port);
    assert_string_equal(f->sv->reqs[0], want);
    fix_free(f);
}

static void test_keepalive_and_cost(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_hello, NULL, NULL);
    for (int i = 0; i < 3; i++) expect_ok(req(f, "GET", "/"), 200, "hello");
    acr__http_stats_t a, b;
    stats(f, &a);
    assert_int_equal(a.conns_opened, 1);
    assert_int_equal(a.conns_reused, 2);
    /* Steady state on the kept-alive connection: not one heap allocation per request, neither
     * acrida's buffers (buf_grows) nor any call to malloc and friends on the client side:
     * acrida, libuv, llhttp, glibc (unit_alloc.h; the server's threads are not counted). */
    unit_alloc_snap_t m0 = unit_alloc_snap();
    for (int i = 0; i < 200; i++) {
        result_t *r = req(f, "GET", "/");
        if (r->status != 200) fail_msg("request %d: %d %s", i, r->status, r->error);
    }
    unit_alloc_snap_t m1 = unit_alloc_snap();
    stats(f, &b);
    print_message("sizeof session %zu + connection %zu bytes; 200 requests: %llu allocations, "
                  "%llu buffer growths (first request: %llu)\n",
                  sizeof(acr_http_session_t), sizeof(acr__http_conn_t),
                  (unsigned long long)(m1.allocs - m0.allocs),
                  (unsigned long long)(b.buf_grows - a.buf_grows), (unsigned long long)a.buf_grows);
    assert_int_equal(m1.allocs - m0.allocs, 0);
    assert_int_equal(m1.live, m0.live);
    assert_int_equal(b.buf_grows, a.buf_grows);
    assert_int_equal(b.conns_opened, 1);
    assert_int_equal(srv_nconns(f->sv), 1);
    fix_free(f);
}

static void s_echo_post(sconn_t *c)
{
    while (sc_req(c) >= 0) {
        const char *req = c->req;
        const char *body = strstr(req, "\r\n\r\n") + 4;
        char resp[SRV_REQ_MAX + 128];
        snprintf(resp, sizeof resp, "HTTP/1.1 201 Created\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(body), body);
        sc_puts(c, resp);
    }
}

static void test_post_body_and_header_override(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_echo_post, NULL, NULL);
    char url[300];
    snprintf(url, sizeof url, "%s/post", f->url);
    acr_http_header_t h[] = {{"user-agent", 10, "custom/1", 8},
                             {"X-Extra", 7, "v", 1},
                             {"Content-Type", 12, "text/plain", 10}};
    acr_http_request_t rq = get(url);
    rq.method = "POST";
    rq.headers = h;
    rq.nheaders = 3;
    rq.body = "a=1&b";
    rq.body_len = 5;
    assert_int_equal(run_req(&f->loop, f->s, &rq, &f->res), 0);
    expect_ok(&f->res, 201, "a=1&b");
    char want[512];
    snprintf(want, sizeof want,
             "POST /post HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: keep-alive\r\n"
             "user-agent: custom/1\r\nX-Extra: v\r\nContent-Type: text/plain\r\n"
             "Content-Length: 5\r\n\r\na=1&b",
             f->sv->port);
    assert_string_equal(f->sv->reqs[0], want);
    /* POST without a body still says Content-Length: 0 */
    rq.body = NULL;
    rq.body_len = 0;
    rq.nheaders = 0;
    assert_int_equal(run_req(&f->loop, f->s, &rq, &f->res), 0);
    expect_ok(&f->res, 201, "");
    assert_non_null(strstr(f->sv->reqs[1], "\r\nContent-Length: 0\r\n"));
    fix_free(f);
}

static void s_chunked(sconn_t *c)
{
    while (sc_req(c) >= 0)
        sc_puts(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n");
}

static void test_chunked(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_chunked, NULL, NULL);
    for (int i = 0; i < 2; i++) {
        result_t *r = req(f, "GET", "/");
        expect_ok(r, 200, "hello world");
        assert_null(strstr(r->headers, "x-trailer")); /* trailers ignored */
    }
    assert_int_equal(srv_nconns(f->sv), 1);
    fix_free(f);
}

/* HEAD, 204 and 304 carry Content-Length but no body; the next response must still parse. */
static void s_nobody(sconn_t *c)
{
    while (sc_req(c) >= 0) {
        const char *r = c->req;
        if (strncmp(r, "HEAD ", 5) == 0)
            sc_puts(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        else if (strstr(r, " /204 "))
            sc_puts(c, "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n");
        else if (strstr(r, " /304 "))
            sc_puts(c, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n");
        else if (strstr(r, " /100 "))
            sc_puts(c,
                    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        else
            sc_puts(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody");
    }
}

static void test_head_204_304(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_nobody, NULL, NULL);
    result_t *r = req(f, "HEAD", "/");
    expect_ok(r, 200, "");
    assert_non_null(strstr(r->headers, "content-length: 1000\n"));
    expect_ok(req(f, "GET", "/"), 200, "body");
    expect_ok(req(f, "GET", "/204"), 204, "");
    expect_ok(req(f, "GET", "/"), 200, "body");
    expect_ok(req(f, "GET", "/304"), 304, "");
    expect_ok(req(f, "GET", "/"), 200, "body");
    expect_ok(req(f, "GET", "/100"), 200, "ok");
    expect_ok(req(f, "GET", "/"), 200, "body");
    assert_int_equal(srv_nconns(f->sv), 1);
    fix_free(f);
}

/* Body until EOF (HTTP/1.0, no length), then Connection: close. */
static void s_close(sconn_t *c)
{
    int i = sc_req(c);
    if (i < 0) return;
    if (strstr(c->req, " /eof "))
        sc_puts(c, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
    else
        sc_puts(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye");
}

static void test_eof_body_and_close(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_close, NULL, NULL);
    expect_ok(req(f, "GET", "/eof"), 200, "until the end");
    expect_ok(req(f, "GET", "/eof"), 200, "until the end");
    expect_ok(req(f, "GET", "/close"), 200, "bye");
    expect_ok(req(f, "GET", "/close"), 200, "bye");
    assert_int_equal(srv_nconns(f->sv), 4);
    acr__http_stats_t st;
    stats(f, &st);
    assert_int_equal(st.retries, 0);
    fix_free(f);
}

static int g_port2; /* a second server for cross-origin redirects */

static void s_redirects(sconn_t *c)
{
    while (sc_req(c) >= 0) {
        const char *r = c->req;
        char resp[512];
        if (strstr(r, " /r1 "))
            sc_puts(c, "HTTP/1.1 302 Found\r\nLocation: /dir/r2\r\nContent-Length: 2\r\n\r\nxx");
        else if (strstr(r, " /dir/r2 "))
            sc_puts(c, "HTTP/1.1 301 Moved\r\nLocation: r3?q=1\r\nContent-Length: 0\r\n\r\n");
        else if (strstr(r, " /dir/r3?q=1 "))
            sc_puts(c, "HTTP/1.1 307 Temp\r\nLocation: /final\r\nContent-Length: 0\r\n\r\n");
        else if (strstr(r, " /final "))
            sc_puts(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal");
        else if (strstr(r, " /post303 "))
            sc_puts(c, "HTTP/1.1 303 See Other\r\nLocation: /final\r\nContent-Length: 0\r\n\r\n");
        else if (strstr(r, " /post307 "))
            sc_puts(c, "HTTP/1.1 307 Temp\r\nLocation: /echo\r\nContent-Length: 0\r\n\r\n");
        else if (strstr(r, " /echo ")) {
            const char *body = strstr(r, "\r\n\r\n") + 4;
            snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
                     strlen(body));
            sc_puts(c, resp);
            sc_puts(c, body);
        } else if (strstr(r, " /loop ")) {
            sc_puts(c, "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n");
        } else if (strstr(r, " /other ")) {
            snprintf(resp, sizeof resp,
                     "HTTP/1.1 302 Found\r\nLocation: http://localhost:%d/final\r\n"
                     "Content-Length: 0\r\n\r\n",
                     g_port2);
            sc_puts(c, resp);
        } else {
            sc_puts(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
    }
}

static void test_redirects(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_redirects, NULL, NULL);
    result_t *r = req(f, "GET", "/r1");
    expect_ok(r, 200, "final");
    char want[300];
    snprintf(want, sizeof want, "%s/final", f->url);
    assert_string_equal(r->url, want);
    assert_int_equal(srv_nreqs(f->sv), 4);
    assert_int_equal(srv_nconns(f->sv), 1); /* same origin: same keep-alive connection */

    /* 303 after POST: GET without body or Content-Type */
    char url[300];
    snprintf(url, sizeof url, "%s/post303", f->url);
    acr_http_header_t ct = {"Content-Type", 12, "text/plain", 10};
    acr_http_request_t rq = get(url);
    rq.method = "POST";
    rq.body = "data";
    rq.body_len = 4;
    rq.headers = &ct;
    rq.nheaders = 1;
    assert_int_equal(run_req(&f->loop, f->s, &rq, &f->res), 0);
    expect_ok(&f->res, 200, "final");
    const char *last = f->sv->reqs[srv_nreqs(f->sv) - 1];
    assert_true(strncmp(last, "GET /final HTTP/1.1\r\n", 21) == 0);
    assert_null(strcasestr(last, "content-type"));
    assert_null(strcasestr(last, "content-length"));

    /* 307 keeps method and body */
    snprintf(url, sizeof url, "%s/post307", f->url);
    rq.url = url;
    assert_int_equal(run_req(&f->loop, f->s, &rq, &f->res), 0);
    expect_ok(&f->res, 200, "data");
    last = f->sv->reqs[srv_nreqs(f->sv) - 1];
    assert_true(strncmp(last, "POST /echo HTTP/1.1\r\n", 21) == 0);

    /* too many */
    int before = srv_nreqs(f->sv);
    r = req(f, "GET", "/loop");
    assert_string_equal(r->error, "too many redirects (5)");
    assert_int_equal(r->status, 302);
    assert_int_equal(srv_nreqs(f->sv) - before, 6);

    /* disabled */
    snprintf(url, sizeof url, "%s/r1", f->url);
    acr_http_request_t nr = get(url);
    nr.allow_redirects = false;
    assert_int_equal(run_req(&f->loop, f->s, &nr, &f->res), 0);
    expect_ok(&f->res, 302, "xx");
    assert_non_null(strstr(f->res.headers, "location: /dir/r2\n"));
    fix_free(f);
}

static void test_redirect_other_host(void **state)
{
    (void)state;
    srv_t *other = srv_start(s_redirects, NULL);
    g_port2 = other->port;
    fix_t *f = fix_new(s_redirects, NULL, NULL);
    result_t *r = req(f, "GET", "/other");
    expect_ok(r, 200, "final");
    char want[300];
    snprintf(want, sizeof want, "http://localhost:%d/final", other->port);
    assert_string_equal(r->url, want);
    assert_int_equal(srv_nreqs(other), 1);
    char host[64];
    snprintf(host, sizeof host, "\r\nHost: localhost:%d\r\n", other->port);
    assert_non_null(strstr(other->reqs[0], host));
    acr__http_stats_t st;
    stats(f, &st);
    assert_int_equal(st.conns_opened, 2);
    assert_int_equal(st.dns_lookups, 1);
    fix_free(f);
    srv_stop(other);
}

static void s_cookies(sconn_t *c)
{
    while (sc_req(c) >= 0) {
        const char *r = c->req;
        if (strstr(r, " /login "))
            sc_puts(c, "HTTP/1.1 200 OK\r\nSet-Cookie: sid=abc123; Path=/; HttpOnly\r\n"
                       "Set-Cookie: pref=dark\r\n"
                       "Set-Cookie: other=1; Path=/other\r\n"
                       "Set-Cookie: gone=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                       "Set-Cookie: sec=1; Secure\r\n"
                       "Set-Cookie: evil=1; Domain=example.com\r\n"
                       "Content-Length: 0\r\n\r\n");
        else if (strstr(r, " /logout "))
            sc_puts(c, "HTTP/1.1 200 OK\r\nSet-Cookie: sid=; Max-Age=0\r\n"
                       "Content-Length: 0\r\n\r\n");
        else
            sc_puts(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    }
}

static void test_cookies(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_cookies, NULL, NULL);
    expect_ok(req(f, "GET", "/login"), 200, "");
    assert_null(strstr(f->sv->reqs[0], "Cookie:"));
    expect_ok(req(f, "GET", "/x"), 200, "");
    assert_non_null(strstr(f->sv->reqs[1], "\r\nCookie: sid=abc123; pref=dark\r\n"));
    expect_ok(req(f, "GET", "/other/page"), 200, "");
    assert_non_null(strstr(f->sv->reqs[2], "\r\nCookie: sid=abc123; pref=dark; other=1\r\n"));
    expect_ok(req(f, "GET", "/logout"), 200, "");
    expect_ok(req(f, "GET", "/x"), 200, "");
    assert_non_null(strstr(f->sv->reqs[4], "\r\nCookie: pref=dark\r\n"));
    /* another session has its own jar */
    acr_http_session_t *s2 = acr_http_session_new(f->c);
    char url[300];
    snprintf(url, sizeof url, "%s/x", f->url);
    acr_http_request_t rq = get(url);
    assert_int_equal(run_req(&f->loop, s2, &rq, &f->res), 0);
    assert_null(strstr(f->sv->reqs[5], "Cookie:"));
    close_session(&f->loop, s2);
    fix_free(f);
}

/* ---- failures ---- */

static void s_reset(sconn_t *c)
{
    if (sc_req(c) < 0) return;
    sc_puts(c, "HTTP/1.1 200 OK\r\nContent-Len");
    usleep(50000);
    sc_reset(c);
}

static void test_reset(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_reset, NULL, NULL);
    result_t *r = req(f, "GET", "/");
    assert_string_equal(r->error, "connection reset by peer");
    assert_int_equal(r->status, 0);
    fix_free(f);
}

static void s_truncated(sconn_t *c)
{
    if (sc_req(c) < 0) return;
    sc_puts(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this");
}

static void test_truncated(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_truncated, NULL, NULL);
    result_t *r = req(f, "GET", "/");
    assert_string_equal(r->error, "connection closed before the response completed");
    assert_int_equal(r->status, 200);
    /* the connection was discarded: the next request connects again */
    r = req(f, "GET", "/");
    assert_string_equal(r->error, "connection closed before the response completed");
    assert_int_equal(srv_nconns(f->sv), 2);
    fix_free(f);
}

static void s_silent_close(sconn_t *c)
{
    sc_req(c);
}

static void test_closed_without_response(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_silent_close, NULL, NULL);
    result_t *r = req(f, "GET", "/");
    assert_string_equal(r->error, "connection closed before the response completed");
    assert_int_equal(r->status, 0);
    acr__http_stats_t st;
    stats(f, &st);
    assert_int_equal(st.retries, 0); /* a fresh connection is never retried */
    assert_int_equal(srv_nconns(f->sv), 1);
    fix_free(f);
}

static void s_garbage(sconn_t *c)
{
    if (sc_req(c) < 0) return;
    sc_puts(c, "HTTX/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    sc_wait_eof(c);
}

static void test_garbage_status(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_garbage, NULL, NULL);
    result_t *r = req(f, "GET", "/");
    assert_string_equal(r->error, "malformed response: Expected HTTP/");
    assert_int_equal(r->status, 0);
    fix_free(f);
}

static void s_huge_headers(sconn_t *c)
{
    if (sc_req(c) < 0) return;
    sc_puts(c, "HTTP/1.1 200 OK\r\n");
    char line[1100];
    memset(line, 'a', sizeof line);
    memcpy(line, "X-Big: ", 7);
    memcpy(line + sizeof line - 2, "\r\n", 2);
    for (int i = 0; i < 70; i++) sc_write(c, line, sizeof line);
    sc_puts(c, "Content-Length: 0\r\n\r\n");
    sc_wait_eof(c);
}

static void test_huge_headers(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_huge_headers, NULL, NULL);
    result_t *r = req(f, "GET", "/");
    assert_string_equal(r->error, "malformed response: headers exceed 64 KiB");
    fix_free(f);
}

static void s_never(sconn_t *c)
{
    if (sc_req(c) < 0) return;
    sc_wait_eof(c);
}

static void test_timeout(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_never, NULL, NULL);
    char url[300];
    snprintf(url, sizeof url, "%s/", f->url);
    acr_http_request_t rq = get(url);
    rq.timeout = 0.3;
    assert_int_equal(run_req(&f->loop, f->s, &rq, &f->res), 0);
    assert_string_equal(f->res.error, "timeout after 0.3 s");
    assert_int_equal(f->res.status, 0);
    /* never early (the timer starts on a fresh loop clock); how late is the machine's business,
     * and a timeout far too long would hit run_until's deadline */
    assert_true(f->res.elapsed_us >= 299000);
    fix_free(f);
}

static void test_refused(void **state)
{
    (void)state;
    fix_t *f = fix_new(NULL, NULL, NULL);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d", free_port());
    result_t *r = req(f, "GET", "/");
    assert_string_equal(r->error, "connection refused");
    assert_int_equal(r->status, 0);
    fix_free(f);
}

static void s_trickle(sconn_t *c)
{
    while (sc_req(c) >= 0) {
        const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-A: b\r\n\r\ntrickle";
        for (const char *p = resp; *p; p++) {
            sc_write(c, p, 1);
            usleep(1000);
        }
    }
}

static void test_trickle(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_trickle, NULL, NULL);
    result_t *r = req(f, "GET", "/");
    expect_ok(r, 200, "trickle");
    assert_non_null(strstr(r->headers, "x-a: b\n"));
    assert_true(r->tm.ttfb > 0 && r->tm.ttfb <= r->tm.total);
    expect_ok(req(f, "GET", "/"), 200, "trickle");
    assert_int_equal(srv_nconns(f->sv), 1);
    fix_free(f);
}

/* Keep-alive connection closed by the server when the next request arrives. */
static void s_stale(sconn_t *c)
{
    if (c->idx == 0) {
        if (sc_req(c) < 0) return;
        sc_puts(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nk1");
        sc_req(c); /* read the second request, close without an answer */
        return;
    }
    s_hello(c);
}

static void test_stale_keepalive_retry(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_stale, NULL, NULL);
    expect_ok(req(f, "GET", "/"), 200, "k1");
    expect_ok(req(f, "GET", "/"), 200, "hello");
    acr__http_stats_t st;
    stats(f, &st);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.conns_opened, 2);
    assert_int_equal(srv_nreqs(f->sv), 3);
    fix_free(f);
}

static void test_body_cap(void **state)
{
    (void)state;
    acr_http_config_t cfg = {.body_cap = 3, .user_agent = "x"};
    fix_t *f = fix_new(s_hello, NULL, &cfg);
    result_t *r = req(f, "GET", "/");
    assert_int_equal(r->status, 200);
    assert_int_equal(r->body_len, 3);
    assert_memory_equal(r->body, "hel", 3);
    assert_int_equal(r->content_length, 5);
    fix_free(f);
}

static void test_dns(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_hello, NULL, NULL);
    snprintf(f->url, sizeof f->url, "http://LocalHost:%d", f->sv->port);
    result_t *r = req(f, "GET", "/");
    expect_ok(r, 200, "hello");
    assert_true(r->tm.dns > 0);
    char host[64];
    snprintf(host, sizeof host, "\r\nHost: localhost:%d\r\n", f->sv->port);
    assert_non_null(strstr(f->sv->reqs[0], host));
    /* another user: cached answer, no second lookup */
    acr_http_session_t *s2 = acr_http_session_new(f->c);
    char url[300];
    snprintf(url, sizeof url, "%s/", f->url);
    acr_http_request_t rq = get(url);
    assert_int_equal(run_req(&f->loop, s2, &rq, &f->res), 0);
    expect_ok(&f->res, 200, "hello");
    assert_true(f->res.tm.dns == 0.0);
    close_session(&f->loop, s2);
    acr__http_stats_t st;
    stats(f, &st);
    assert_int_equal(st.dns_lookups, 1);

    snprintf(f->url, sizeof f->url, "http://no-such-host.invalid");
    r = req(f, "GET", "/");
    assert_true(strncmp(r->error, "DNS lookup failed for no-such-host.invalid: ", 44) == 0);
    print_message("DNS failure message: %s\n", r->error);
    r = req(f, "GET", "/"); /* negative cache */
    assert_true(strncmp(r->error, "DNS lookup failed for no-such-host.invalid: ", 44) == 0);
    stats(f, &st);
    assert_int_equal(st.dns_lookups, 2);
    fix_free(f);
}

static void test_shared_lookup(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_hello, NULL, NULL);
    char url[300];
    snprintf(url, sizeof url, "http://localhost:%d/", f->sv->port);
    acr_http_request_t rq = get(url);
    acr_http_session_t *s2 = acr_http_session_new(f->c);
    result_t *r2 = calloc(1, sizeof *r2);
    memset(&f->res, 0, sizeof f->res);
    assert_int_equal(acr_http_session_request(f->s, &rq, done_cb, &f->res), 0);
    assert_int_equal(acr_http_session_request(s2, &rq, done_cb, r2), 0);
    wait_done(&f->loop, &f->res);
    wait_done(&f->loop, r2);
    expect_ok(&f->res, 200, "hello");
    expect_ok(r2, 200, "hello");
    acr__http_stats_t st;
    stats(f, &st);
    assert_int_equal(st.dns_lookups, 1); /* both users waited on one getaddrinfo */
    close_session(&f->loop, s2);
    free(r2);
    fix_free(f);
}

/* Heap held by an idle user: session + keep-alive connection + kept buffers + cookie. */
static void s_hello_cookie(sconn_t *c)
{
    while (sc_req(c) >= 0)
        sc_puts(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: test\r\n"
                   "Content-Type: text/plain\r\nSet-Cookie: sid=0123456789abcdef; Path=/\r\n"
                   "\r\nhello");
}

static void test_idle_memory(void **state)
{
    (void)state;
    enum { N = 50 };
    fix_t *f = fix_new(s_hello_cookie, NULL, NULL);
    expect_ok(req(f, "GET", "/"), 200, "hello"); /* warm the client */
    char url[300];
    snprintf(url, sizeof url, "%s/index.html", f->url);
    acr_http_request_t rq = get(url);
    acr_http_session_t *ss[N];
    /* every client-side malloc counts (acrida, libuv, glibc; unit_alloc.h), in both builds */
    unit_alloc_snap_t before = unit_alloc_snap();
    for (int i = 0; i < N; i++) {
        ss[i] = acr_http_session_new(f->c);
        assert_int_equal(run_req(&f->loop, ss[i], &rq, &f->res), 0);
        expect_ok(&f->res, 200, "hello");
    }
    unit_alloc_snap_t after = unit_alloc_snap();
    double per_user = (double)(after.live - before.live) / N;
    print_message("idle user (plain, keep-alive, 1 cookie): %.0f heap bytes in %.1f blocks\n",
                  per_user,
                  (double)(after.allocs - before.allocs - (after.frees - before.frees)) / N);
    if (per_user < (double)(sizeof(acr_http_session_t) + sizeof(acr__http_conn_t)))
        fail_msg("%.0f bytes per user is less than its session and connection structs", per_user);
    if (per_user >= 3072) fail_msg("an idle user holds %.0f heap bytes, want < 3072", per_user);
    for (int i = 0; i < N; i++) close_session(&f->loop, ss[i]);
    fix_free(f);
}

/* acr_http_session_trim: the idle session gives its buffers back, keeps its connection and
 * cookie; the next request regrows them once and then runs allocation-free again. */
static void test_trim(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_hello_cookie, NULL, NULL);
    expect_ok(req(f, "GET", "/first"), 200, "hello");
    acr__http_stats_t a, b, c, d;
    stats(f, &a);
    assert_int_equal(a.conns_opened, 1);

    /* trim is a no-op while a request is in flight */
    char url[300];
    snprintf(url, sizeof url, "%s/busy", f->url);
    acr_http_request_t rq = get(url);
    memset(&f->res, 0, sizeof f->res);
    assert_int_equal(acr_http_session_request(f->s, &rq, done_cb, &f->res), 0);
    unit_alloc_snap_t m0 = unit_alloc_snap();
    acr_http_session_trim(f->s);
    unit_alloc_snap_t m1 = unit_alloc_snap();
    assert_int_equal(m1.frees, m0.frees);
    wait_done(&f->loop, &f->res);
    expect_ok(&f->res, 200, "hello");
    stats(f, &b);
    if (b.buf_grows != a.buf_grows)
        fail_msg("trim while busy released buffers: grows %llu -> %llu",
                 (unsigned long long)a.buf_grows, (unsigned long long)b.buf_grows);

    /* idle: the buffers go back to the heap (unit_alloc.h counts the frees) */
    m0 = unit_alloc_snap();
    acr_http_session_trim(f->s);
    m1 = unit_alloc_snap();
    acr_http_session_trim(f->s); /* twice is harmless: nothing left to release */
    unit_alloc_snap_t m2 = unit_alloc_snap();
    print_message("trim freed %llu blocks, %lld bytes\n", (unsigned long long)(m1.frees - m0.frees),
                  (long long)(m0.live - m1.live));
    if (m1.frees - m0.frees < 5 || m1.live >= m0.live)
        fail_msg("trim freed %llu blocks (%lld bytes), want >= 5 buffers",
                 (unsigned long long)(m1.frees - m0.frees), (long long)(m0.live - m1.live));
    assert_int_equal(m1.allocs, m0.allocs);
    assert_int_equal(m2.frees, m1.frees);

    expect_ok(req(f, "GET", "/after"), 200, "hello");
    stats(f, &c);
    assert_int_equal(c.conns_opened, 1); /* the keep-alive connection survived */
    assert_int_equal(c.conns_reused, b.conns_reused + 1);
    assert_int_equal(c.retries, 0);
    assert_int_equal(srv_nconns(f->sv), 1);
    /* released, so regrown once each: URL, serialized request, header bytes, header array, body */
    print_message("buffers regrown after trim: %llu (first request: %llu)\n",
                  (unsigned long long)(c.buf_grows - b.buf_grows), (unsigned long long)a.buf_grows);
    if (c.buf_grows - b.buf_grows < 5)
        fail_msg("trim released %llu buffers, want >= 5 (grows %llu -> %llu)",
                 (unsigned long long)(c.buf_grows - b.buf_grows), (unsigned long long)b.buf_grows,
                 (unsigned long long)c.buf_grows);
    /* the cookie jar survived: the request after the trim sent the cookie */
    int n = srv_nreqs(f->sv);
    if (!strstr(f->sv->reqs[n - 1], "\r\nCookie: sid=0123456789abcdef\r\n"))
        fail_msg("cookie lost by trim; request was:\n%s", f->sv->reqs[n - 1]);

    expect_ok(req(f, "GET", "/after"), 200, "hello");
    stats(f, &d);
    if (d.buf_grows != c.buf_grows)
        fail_msg("steady state after trim grows: %llu -> %llu", (unsigned long long)c.buf_grows,
                 (unsigned long long)d.buf_grows);
    fix_free(f);
}

static void test_busy_and_invalid(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_hello, NULL, NULL);
    static const char *bad[] = {"ftp://x/",        "http://",     "http://a b/", "http://h:0/",
                                "http://h:65536/", "http://u@h/", "/relative",   "http://[::1/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        acr_http_request_t rq = get(bad[i]);
        int rc = acr_http_session_request(f->s, &rq, done_cb, &f->res);
        if (rc != -EINVAL) fail_msg("'%s': rc %d, expected -EINVAL", bad[i], rc);
    }
    char url[300];
    snprintf(url, sizeof url, "%s/", f->url);
    acr_http_request_t rq = get(url);
    acr_http_header_t inj = {"X-A", 3, "1\r\nX-B: 2", 9};
    rq.headers = &inj;
    rq.nheaders = 1;
    assert_int_equal(acr_http_session_request(f->s, &rq, done_cb, &f->res), -EINVAL);
    rq.nheaders = 0;
    rq.method = "GE T";
    assert_int_equal(acr_http_session_request(f->s, &rq, done_cb, &f->res), -EINVAL);
    rq.method = "GET";
    memset(&f->res, 0, sizeof f->res);
    assert_int_equal(acr_http_session_request(f->s, &rq, done_cb, &f->res), 0);
    assert_true(f->s->busy);
    result_t other;
    assert_int_equal(acr_http_session_request(f->s, &rq, done_cb, &other), -EBUSY);
    wait_done(&f->loop, &f->res);
    assert_false(f->s->busy);
    expect_ok(&f->res, 200, "hello");
    fix_free(f);
}

static void test_close_graceful_and_abort(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_hello, NULL, NULL);
    char url[300];
    snprintf(url, sizeof url, "%s/", f->url);
    acr_http_request_t rq = get(url);
    memset(&f->res, 0, sizeof f->res);
    assert_int_equal(acr_http_session_request(f->s, &rq, done_cb, &f->res), 0);
    int closed = 0;
    acr_http_session_close(f->s, false, closed_cb, &closed);
    assert_int_equal(f->res.done, 0);
    run_until(&f->loop, &closed);
    assert_int_equal(f->res.done, 1); /* the in-flight request finished first */
    expect_ok(&f->res, 200, "hello");
    f->s = NULL;
    fix_free(f);

    f = fix_new(s_never, NULL, NULL);
    snprintf(url, sizeof url, "%s/", f->url);
    rq.url = url;
    memset(&f->res, 0, sizeof f->res);
    assert_int_equal(acr_http_session_request(f->s, &rq, done_cb, &f->res), 0);
    for (int i = 0; i < 5; i++) uv_run(&f->loop, UV_RUN_NOWAIT);
    closed = 0;
    acr_http_session_close(f->s, true, closed_cb, &closed);
    assert_int_equal(f->res.done, 0); /* never from inside close */
    run_until(&f->loop, &closed);
    assert_int_equal(f->res.done, 1);
    assert_string_equal(f->res.error, "aborted");
    f->s = NULL;
    fix_free(f);
}

/* The runtime resumes the user inside the callback, which often issues the next request at
 * once, or stops the user (closes the session). */
typedef struct chain {
    acr_http_session_t *s;
    acr_http_request_t rq;
    int left, done, ok, closed;
    bool close_in_cb;
    result_t res;
} chain_t;

static void chain_cb(acr_http_session_t *s, const acr_http_response_t *r, void *ud)
{
    chain_t *ch = ud;
    if (r->status == 200 && !r->error && r->body_len == 5) ch->ok++;
    if (ch->close_in_cb) {
        acr_http_session_close(s, false, closed_cb, &ch->closed);
        acr_http_session_close(s, true, closed_cb, &ch->closed); /* second close: no-op */
        assert_int_equal(acr_http_session_request(s, &ch->rq, chain_cb, ch), -ECANCELED);
        ch->done = 1;
        return;
    }
    if (--ch->left > 0) {
        int rc = acr_http_session_request(s, &ch->rq, chain_cb, ch);
        if (rc != 0) fail_msg("request from the callback: %d", rc);
    } else {
        ch->done = 1;
    }
}

static void test_request_and_close_from_callback(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_hello, NULL, NULL);
    char url[300];
    snprintf(url, sizeof url, "%s/", f->url);
    chain_t ch = {.s = f->s, .rq = get(url), .left = 20};
    assert_int_equal(acr_http_session_request(f->s, &ch.rq, chain_cb, &ch), 0);
    run_until(&f->loop, &ch.done);
    assert_int_equal(ch.ok, 20);
    assert_int_equal(srv_nconns(f->sv), 1);
    ch.close_in_cb = true;
    ch.done = 0;
    assert_int_equal(acr_http_session_request(f->s, &ch.rq, chain_cb, &ch), 0);
    run_until(&f->loop, &ch.done);
    run_until(&f->loop, &ch.closed);
    assert_int_equal(ch.closed, 1);
    f->s = NULL;
    fix_free(f);
}

static void test_abort_during_dns_then_free(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_hello, NULL, NULL);
    char url[300];
    snprintf(url, sizeof url, "http://localhost:%d/", f->sv->port);
    acr_http_request_t rq = get(url);
    memset(&f->res, 0, sizeof f->res);
    assert_int_equal(acr_http_session_request(f->s, &rq, done_cb, &f->res), 0);
    int closed = 0;
    acr_http_session_close(f->s, true, closed_cb, &closed);
    run_until(&f->loop, &closed);
    assert_string_equal(f->res.error, "aborted");
    f->s = NULL;
    fix_free(f); /* frees the client while getaddrinfo may still run: no leak, no crash */
}

/* Many concurrent sessions against one server, each a few requests (keep-alive per user). */
static void s_hello_threaded(sconn_t *c)
{
    s_hello(c);
}

static void test_many_sessions(void **state)
{
    (void)state;
    fix_t *f = fix_new(s_hello_threaded, NULL, NULL);
    /* the scripted server handles connections one after another: run users in sequence but
     * interleave their sessions' lifetimes */
    acr_http_session_t *ss[8];
    for (int i = 0; i < 8; i++) ss[i] = acr_http_session_new(f->c);
    char url[300];
    snprintf(url, sizeof url, "%s/", f->url);
    acr_http_request_t rq = get(url);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(run_req(&f->loop, ss[i], &rq, &f->res), 0);
        expect_ok(&f->res, 200, "hello");
        close_session(&f->loop, ss[i]);
    }
    fix_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_get),
        cmocka_unit_test(test_keepalive_and_cost),
        cmocka_unit_test(test_post_body_and_header_override),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_head_204_304),
        cmocka_unit_test(test_eof_body_and_close),
        cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_redirect_other_host),
        cmocka_unit_test(test_cookies),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_closed_without_response),
        cmocka_unit_test(test_garbage_status),
        cmocka_unit_test(test_huge_headers),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_trickle),
        cmocka_unit_test(test_stale_keepalive_retry),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_dns),
        cmocka_unit_test(test_shared_lookup),
        cmocka_unit_test(test_idle_memory),
        cmocka_unit_test(test_trim),
        cmocka_unit_test(test_busy_and_invalid),
        cmocka_unit_test(test_close_graceful_and_abort),
        cmocka_unit_test(test_many_sessions),
        cmocka_unit_test(test_request_and_close_from_callback),
        cmocka_unit_test(test_abort_during_dns_then_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
