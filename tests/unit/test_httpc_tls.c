/*
 * Unit tests for the HTTP client's TLS path (worker/http/tls.c + conn.c) against a loopback TLS
 * server with certificates generated at test time by the openssl CLI: verification on by
 * default with its exact message, --insecure, a private CA file, host name mismatch, session
 * resumption (TLS 1.3 and 1.2), keep-alive, large bodies both ways, bodies ending at EOF with and
 * without close_notify.
 */
#define _GNU_SOURCE /* memmem, strcasestr, mkdtemp */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/unit_srv.h"

static char g_dir[64];
static char g_cert[128], g_key[128], g_wrong_cert[128], g_wrong_key[128];

static int gen_cert(const char *cert, const char *key, const char *cn, const char *san)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-keyout %s -out %s -subj /CN=%s -addext subjectAltName=%s >/dev/null 2>&1",
             key, cert, cn, san);
    return system(cmd);
}

static int setup_certs(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/acrida-tls-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_cert, sizeof g_cert, "%s/cert.pem", g_dir);
    snprintf(g_key, sizeof g_key, "%s/key.pem", g_dir);
    snprintf(g_wrong_cert, sizeof g_wrong_cert, "%s/wrong.pem", g_dir);
    snprintf(g_wrong_key, sizeof g_wrong_key, "%s/wrong-key.pem", g_dir);
    if (gen_cert(g_cert, g_key, "localhost", "DNS:localhost,IP:127.0.0.1") != 0) return -1;
    if (gen_cert(g_wrong_cert, g_wrong_key, "wrong.example", "DNS:wrong.example") != 0) return -1;
    return 0;
}

static int teardown_certs(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static SSL_CTX *server_ctx(const char *cert, const char *key, int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_use_certificate_chain_file(ctx, cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
    if (max_version) SSL_CTX_set_max_proto_version(ctx, max_version);
    return ctx;
}

/* GET https://@host:<port>@path on session @s (NULL: the fixture's). */
static result_t *get_on(fix_t *f, acr_http_session_t *s, const char *host, const char *path,
                        bool insecure)
{
    char url[256];
    snprintf(url, sizeof url, "https://%s:%d%s", host, f->sv->port, path);
    acr_http_request_t rq = get(url);
    rq.insecure = insecure;
    return req_on(f, s, &rq);
}

static void s_hello(sconn_t *c)
{
    while (sc_req(c) >= 0) sc_puts(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
}

static void test_verify_fails_by_default(void **state)
{
    (void)state;
    acr_http_config_t cfg = {.user_agent = "t"};
    fix_t *f = fix_new(s_hello, server_ctx(g_cert, g_key, 0), &cfg);
    result_t *r = get_on(f, NULL, "localhost", "/", false);
    assert_string_equal(
        r->error, "TLS handshake failed: certificate verify failed (self-signed certificate)");
    assert_int_equal(r->status, 0);
    /* per-request insecure */
    expect_ok(get_on(f, NULL, "localhost", "/", true), 200, "hello");
    fix_free(f);
}

static void test_insecure_client(void **state)
{
    (void)state;
    acr_http_config_t cfg = {.insecure = true};
    fix_t *f = fix_new(s_hello, server_ctx(g_wrong_cert, g_wrong_key, 0), &cfg);
    expect_ok(get_on(f, NULL, "127.0.0.1", "/", false), 200, "hello");
    fix_free(f);
}

static void test_ca_file_keepalive(void **state)
{
    (void)state;
    acr_http_config_t cfg = {.ca_file = g_cert};
    fix_t *f = fix_new(s_hello, server_ctx(g_cert, g_key, 0), &cfg);
    result_t *r = get_on(f, NULL, "localhost", "/", false);
    expect_ok(r, 200, "hello");
    assert_true(r->tm.tls > 0);
    assert_true(r->tm.connect > 0);
    for (int i = 0; i < 3; i++) {
        r = get_on(f, NULL, "localhost", "/", false);
        expect_ok(r, 200, "hello");
        assert_true(r->tm.tls == 0.0 && r->tm.connect == 0.0); /* reused connection */
    }
    /* Steady state over TLS, counting every client-side malloc (unit_alloc.h): acrida's buffers
     * never grow, and nothing allocated during a request outlives it. What is allocated is
     * OpenSSL's: SSL_MODE_RELEASE_BUFFERS (worker/http/tls.c) frees the two ~16 KiB record buffers
     * whenever a connection is idle, so each request allocates them again, plus a few small
     * blocks: 7 allocations per request with OpenSSL 3.0, and no more are allowed. */
    acr__http_stats_t a, b;
    a = f->c->stats;
    unit_alloc_snap_t m0 = unit_alloc_snap();
    for (int i = 0; i < 100; i++) expect_ok(get_on(f, NULL, "localhost", "/", false), 200, "hello");
    unit_alloc_snap_t m1 = unit_alloc_snap();
    b = f->c->stats;
    print_message(
        "100 TLS requests: %llu allocations, %lld bytes still held, %llu buffer growths\n",
        (unsigned long long)(m1.allocs - m0.allocs), (long long)(m1.live - m0.live),
        (unsigned long long)(b.buf_grows - a.buf_grows));
    assert_int_equal(b.buf_grows, a.buf_grows);
    assert_int_equal(m1.live, m0.live);
    if (m1.allocs - m0.allocs > 7 * 100)
        fail_msg("%llu allocations for 100 requests, want <= 700",
                 (unsigned long long)(m1.allocs - m0.allocs));
    assert_int_equal(srv_nconns(f->sv), 1);
    /* the IP address SAN verifies too */
    acr_http_session_t *s2 = acr_http_session_new(f->c);
    expect_ok(get_on(f, s2, "127.0.0.1", "/", false), 200, "hello");
    close_session(&f->loop, s2);
    fix_free(f);
}

static void test_hostname_mismatch(void **state)
{
    (void)state;
    acr_http_config_t cfg = {.ca_file = g_wrong_cert};
    fix_t *f = fix_new(s_hello, server_ctx(g_wrong_cert, g_wrong_key, 0), &cfg);
    result_t *r = get_on(f, NULL, "localhost", "/", false);
    assert_string_equal(r->error,
                        "TLS handshake failed: certificate verify failed (hostname mismatch)");
    fix_free(f);
}

static void test_bad_ca_file(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    acr_http_config_t cfg = {.ca_file = "/nonexistent/ca.pem"};
    char err[256] = "";
    assert_null(acr_http_client_new(&loop, &cfg, err, sizeof err));
    assert_true(strncmp(err, "cannot load CA file /nonexistent/ca.pem: ", 41) == 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void resumption(int max_version)
{
    acr_http_config_t cfg = {.ca_file = g_cert};
    fix_t *f = fix_new(s_hello, server_ctx(g_cert, g_key, max_version), &cfg);
    expect_ok(get_on(f, NULL, "localhost", "/", false), 200, "hello");
    for (int i = 0; i < 3; i++) {
        acr_http_session_t *s2 = acr_http_session_new(f->c);
        expect_ok(get_on(f, s2, "localhost", "/", false), 200, "hello");
        close_session(&f->loop, s2);
    }
    acr__http_stats_t st;
    st = f->c->stats;
    assert_int_equal(st.tls_handshakes, 4);
    assert_int_equal(st.tls_resumed, 3);
    close_session(&f->loop, f->s);
    f->s = NULL;
    pthread_mutex_lock(&f->sv->mu);
    int reused = f->sv->tls_reused;
    pthread_mutex_unlock(&f->sv->mu);
    assert_int_equal(reused, 3); /* SSL_session_reused on the server side */
    fix_free(f);
}

static void test_resumption_tls13(void **state)
{
    (void)state;
    resumption(0);
}

static void test_resumption_tls12(void **state)
{
    (void)state;
    resumption(TLS1_2_VERSION);
}

/* Big bodies both ways (many records, the write queue's double buffer). */
static void s_big(sconn_t *c)
{
    static char buf[300000];
    size_t len = 0;
    char *end;
    while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
        int r = sc_read(c, buf + len, sizeof buf - len);
        if (r <= 0) return;
        len += (size_t)r;
    }
    const char *cl = strcasestr(buf, "\r\ncontent-length:");
    size_t need = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
    while (len < need) {
        int r = sc_read(c, buf + len, sizeof buf - len);
        if (r <= 0) return;
        len += (size_t)r;
    }
    size_t body = need - (size_t)(end + 4 - buf);
    char head[128];
    snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", body * 2);
    sc_puts(c, head);
    sc_write(c, end + 4, body);
    sc_write(c, end + 4, body);
    sc_wait_eof(c);
}

static void test_big_bodies(void **state)
{
    (void)state;
    acr_http_config_t cfg = {.ca_file = g_cert};
    fix_t *f = fix_new(s_big, server_ctx(g_cert, g_key, 0), &cfg);
    size_t n = 100000;
    char *body = malloc(n);
    for (size_t i = 0; i < n; i++) body[i] = (char)('a' + i % 26);
    char url[128];
    snprintf(url, sizeof url, "https://localhost:%d/up", f->sv->port);
    acr_http_request_t rq = {
        .method = "POST", .url = url, .timeout = UNIT_DEADLINE_S / 2, .body = body, .body_len = n};
    result_t *res = malloc(sizeof *res);
    assert_int_equal(run_req(&f->loop, f->s, &rq, res), 0);
    if (res->has_error) fail_msg("error %s", res->error);
    assert_int_equal(res->status, 200);
    assert_int_equal(res->content_length, 2 * n);
    assert_int_equal(res->body_len, 2 * n);
    assert_memory_equal(res->body, body, sizeof res->body); /* the copy is capped */
    free(res);
    free(body);
    fix_free(f);
}

/* HTTP/1.0 body until EOF: with close_notify, and with a bare TCP close. */
static void s_eof(sconn_t *c)
{
    int i = sc_req(c);
    if (i < 0) return;
    sc_puts(c, "HTTP/1.0 200 OK\r\n\r\nto the end");
    if (strstr(c->req, " /rude ")) SSL_set_quiet_shutdown(c->ssl, 1);
}

static void test_eof_bodies(void **state)
{
    (void)state;
    acr_http_config_t cfg = {.ca_file = g_cert};
    fix_t *f = fix_new(s_eof, server_ctx(g_cert, g_key, 0), &cfg);
    expect_ok(get_on(f, NULL, "localhost", "/polite", false), 200, "to the end");
    expect_ok(get_on(f, NULL, "localhost", "/rude", false), 200, "to the end");
    assert_int_equal(srv_nconns(f->sv), 2);
    fix_free(f);
}

/* A plain-HTTP server behind an https:// URL. */
static void s_plain(sconn_t *c)
{
    char b[512];
    sc_read(c, b, sizeof b);
    sc_puts(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
}

static void test_not_tls(void **state)
{
    (void)state;
    acr_http_config_t cfg = {.ca_file = g_cert};
    fix_t *f = fix_new(s_plain, NULL, &cfg);
    result_t *r = get_on(f, NULL, "localhost", "/", false);
    assert_true(strncmp(r->error, "TLS handshake failed: ", 22) == 0);
    print_message("plain server behind https: %s\n", r->error);
    fix_free(f);
}

typedef struct chain {
    acr_http_request_t rq;
    int left, done, ok;
} chain_t;

static void chain_cb(acr_http_session_t *s, const acr_http_response_t *r, void *ud)
{
    chain_t *ch = ud;
    if (r->status == 200 && !r->error && r->body_len == 5) ch->ok++;
    if (--ch->left > 0) {
        if (acr_http_session_request(s, &ch->rq, chain_cb, ch) != 0) ch->done = 1;
    } else {
        ch->done = 1;
    }
}

/* The next request issued from inside the completion callback (the runtime's usual pattern)
 * while the TLS read loop is still on the stack. */
static void test_request_from_callback(void **state)
{
    (void)state;
    acr_http_config_t cfg = {.ca_file = g_cert};
    fix_t *f = fix_new(s_hello, server_ctx(g_cert, g_key, 0), &cfg);
    char url[128];
    snprintf(url, sizeof url, "https://localhost:%d/", f->sv->port);
    chain_t ch = {.rq = {.method = "GET", .url = url, .timeout = UNIT_DEADLINE_S / 2}, .left = 30};
    assert_int_equal(acr_http_session_request(f->s, &ch.rq, chain_cb, &ch), 0);
    run_until(&f->loop, &ch.done);
    assert_int_equal(ch.ok, 30);
    assert_int_equal(srv_nconns(f->sv), 1);
    fix_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_fails_by_default),
        cmocka_unit_test(test_insecure_client),
        cmocka_unit_test(test_ca_file_keepalive),
        cmocka_unit_test(test_hostname_mismatch),
        cmocka_unit_test(test_bad_ca_file),
        cmocka_unit_test(test_resumption_tls13),
        cmocka_unit_test(test_resumption_tls12),
        cmocka_unit_test(test_big_bodies),
        cmocka_unit_test(test_eof_bodies),
        cmocka_unit_test(test_not_tls),
        cmocka_unit_test(test_request_from_callback),
    };
    return cmocka_run_group_tests(tests, setup_certs, teardown_certs);
}
