/*
 * Unit tests for the HTTP client's pure parts: URL parsing and redirect resolution (url.c), the
 * cookie jar and cookie dates (cookies.c), and the connection state machine's transition table
 * (http/conn.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/http/http_internal.h"

static void test_url_parse(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        bool tls;
        unsigned port;
        const char *host, *auth, *path;
    } ok[] = {
        {"http://example.com", false, 80, "example.com", "example.com", ""},
        {"HTTPS://Example.COM:8443/a/b?q=1#frag", true, 8443, "example.com", "example.com:8443",
         "/a/b?q=1"},
        {"http://127.0.0.1:8080?x", false, 8080, "127.0.0.1", "127.0.0.1:8080", "?x"},
        {"http://[::1]:81/p", false, 81, "::1", "[::1]:81", "/p"},
        {"https://h/", true, 443, "h", "h", "/"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", ok[i].in);
        acr__http_url_t u;
        int rc = acr__http_url_parse(buf, &u);
        if (rc != 0) fail_msg("'%s': rc %d", ok[i].in, rc);
        assert_int_equal(u.tls, ok[i].tls);
        assert_int_equal(u.port, ok[i].port);
        char got[256];
        snprintf(got, sizeof got, "%.*s", (int)u.host_len, buf + u.host_off);
        assert_string_equal(got, ok[i].host);
        snprintf(got, sizeof got, "%.*s", (int)u.auth_len, buf + u.auth_off);
        assert_string_equal(got, ok[i].auth);
        snprintf(got, sizeof got, "%.*s", (int)u.path_len, buf + u.path_off);
        assert_string_equal(got, ok[i].path);
    }
    static const char *bad[] = {"",
                                "example.com",
                                "ftp://x",
                                "http://",
                                "http://:80/",
                                "http://h:/",
                                "http://h:0",
                                "http://h:99999",
                                "http://h:123456",
                                "http://u:p@h/",
                                "http://h h/",
                                "http://[zz]/",
                                "http://[::1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", bad[i]);
        acr__http_url_t u;
        int rc = acr__http_url_parse(buf, &u);
        if (rc != -EINVAL) fail_msg("'%s': rc %d, expected -EINVAL", bad[i], rc);
    }
}

static void test_url_resolve(void **state)
{
    (void)state;
    static const struct {
        const char *base, *loc, *want;
    } cases[] = {
        {"http://h:81/a/b?q", "/x", "http://h:81/x"},
        {"http://h:81/a/b?q", "c?d=1", "http://h:81/a/c?d=1"},
        {"http://h:81/a/b?q", "?z", "http://h:81/a/b?z"},
        {"http://h:81", "c", "http://h:81/c"},
        {"https://h/a", "//other:9/p", "https://other:9/p"},
        {"https://h/a", "  HTTP://o/p ", "HTTP://o/p"},
    };
    uint64_t grows = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char base[256];
        snprintf(base, sizeof base, "%s", cases[i].base);
        acr__http_url_t u;
        assert_int_equal(acr__http_url_parse(base, &u), 0);
        acr_buf_t out = {0};
        int rc = acr__http_url_resolve(base, &u, cases[i].loc, strlen(cases[i].loc), &out, &grows);
        assert_int_equal(rc, 0);
        assert_string_equal(out.data, cases[i].want);
        acr_buf_free(&out);
    }
    char base[] = "http://h/";
    acr__http_url_t u;
    assert_int_equal(acr__http_url_parse(base, &u), 0);
    acr_buf_t out = {0};
    assert_int_equal(acr__http_url_resolve(base, &u, "", 0, &out, &grows), -EINVAL);
    assert_int_equal(acr__http_url_resolve(base, &u, "/a\r\nb", 5, &out, &grows), -EINVAL);
    acr_buf_free(&out);
    assert_true(grows > 0);
}

static void test_buf(void **state)
{
    (void)state;
    acr_buf_t b = {0};
    uint64_t grows = 0;
    assert_int_equal(acr_buf_append_counted(&b, "abc", 3, &grows), 0);
    assert_int_equal(grows, 1);
    assert_int_equal(acr_buf_append_counted(&b, "def", 3, &grows), 0);
    assert_int_equal(grows, 1); /* fits the first 64 bytes */
    assert_memory_equal(b.data, "abcdef", 6);
    char big[200] = {0};
    assert_int_equal(acr_buf_append_counted(&b, big, sizeof big, &grows), 0);
    assert_int_equal(grows, 2);
    assert_int_equal(b.cap, 257); /* room for 256 bytes and the NUL */
    acr_buf_trim(&b, 1024);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 257); /* kept */
    acr_buf_trim(&b, 128);
    assert_null(b.data); /* released */
    assert_int_equal(acr_buf_reserve_counted(&b, SIZE_MAX, &grows), -ENOMEM);
    acr_buf_free(&b);
}

static void test_http_date(void **state)
{
    (void)state;
    double t;
    assert_int_equal(acr__http_cookie_date("Sun, 06 Nov 1994 08:49:37 GMT", 29, &t), 0);
    assert_true(t == 784111777.0);
    const char *rfc850 = "Sunday, 06-Nov-94 08:49:37 GMT";
    assert_int_equal(acr__http_cookie_date(rfc850, strlen(rfc850), &t), 0);
    assert_true(t == 784111777.0);
    const char *asc = "Sun Nov  6 08:49:37 1994";
    assert_int_equal(acr__http_cookie_date(asc, strlen(asc), &t), 0);
    assert_true(t == 784111777.0);
    assert_int_equal(acr__http_cookie_date("garbage", 7, &t), -1);
    assert_int_equal(acr__http_cookie_date("Sun, 06 Nov 1994 25:49:37 GMT", 29, &t), -1);
}

static char *jar_header(acr__http_jar_t *j, const char *host, const char *path, bool tls,
                        double now)
{
    static char out[1024];
    acr_buf_t b = {0};
    uint64_t g = 0;
    assert_int_equal(
        acr__http_jar_header(j, host, strlen(host), path, strlen(path), tls, now, &b, &g), 0);
    snprintf(out, sizeof out, "%.*s", (int)b.len, b.data ? b.data : "");
    acr_buf_free(&b);
    return out;
}

static void set(acr__http_jar_t *j, const char *host, const char *path, const char *v, double now)
{
    acr__http_jar_set(j, host, strlen(host), path, strlen(path), v, strlen(v), now);
}

static void test_jar(void **state)
{
    (void)state;
    acr__http_jar_t j = {0};
    double now = 1e9;
    set(&j, "www.example.com", "/shop/cart?x=1", "a=1", now);                 /* path /shop */
    set(&j, "www.example.com", "/", "b=2; Domain=.Example.com; Path=/", now); /* domain */
    set(&j, "www.example.com", "/", "c=3; Max-Age=10", now);
    set(&j, "www.example.com", "/", "d=4; Secure", now);
    set(&j, "www.example.com", "/", "e=5; Domain=other.com", now);      /* rejected */
    set(&j, "www.example.com", "/", "f=6; Domain=ww.example.com", now); /* rejected */
    set(&j, "www.example.com", "/", "noequals", now);                   /* rejected */
    set(&j, "www.example.com", "/", "=x", now);                         /* rejected */
    assert_int_equal(j.count, 4);
    assert_string_equal(jar_header(&j, "www.example.com", "/", false, now), "Cookie: b=2; c=3\r\n");
    assert_string_equal(jar_header(&j, "www.example.com", "/shop/x", true, now),
                        "Cookie: a=1; b=2; c=3; d=4\r\n");
    assert_string_equal(jar_header(&j, "www.example.com", "/shopping", false, now),
                        "Cookie: b=2; c=3\r\n"); /* /shop does not match /shopping */
    assert_string_equal(jar_header(&j, "api.example.com", "/shop", false, now),
                        "Cookie: b=2\r\n"); /* host-only cookies stay on their host */
    assert_string_equal(jar_header(&j, "example.org", "/", false, now), "");
    /* expiry: Max-Age ran out */
    assert_string_equal(jar_header(&j, "www.example.com", "/", false, now + 11), "Cookie: b=2\r\n");
    assert_int_equal(j.count, 3); /* the expired cookie was removed */
    /* replacement and deletion */
    set(&j, "www.example.com", "/", "b=22; Domain=example.com", now);
    assert_string_equal(jar_header(&j, "www.example.com", "/", false, now), "Cookie: b=22\r\n");
    set(&j, "www.example.com", "/", "b=; Domain=example.com; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        now);
    assert_string_equal(jar_header(&j, "www.example.com", "/", false, now), "");
    /* a re-sent cookie is refreshed in place, keeping its order */
    set(&j, "h2", "/", "y=1", now);
    set(&j, "h2", "/", "z=long-value", now);
    unsigned count = j.count;
    set(&j, "h2", "/", "y=2", now);
    set(&j, "h2", "/", "z=short", now);
    assert_int_equal(j.count, count);
    assert_string_equal(jar_header(&j, "h2", "/", false, now), "Cookie: y=2; z=short\r\n");
    set(&j, "h2", "/", "y=much-longer-now", now);
    assert_string_equal(jar_header(&j, "h2", "/", false, now),
                        "Cookie: z=short; y=much-longer-now\r\n");
    /* bounded */
    for (int i = 0; i < 200; i++) {
        char v[32];
        snprintf(v, sizeof v, "k%d=%d", i, i);
        set(&j, "h", "/", v, now);
    }
    assert_int_equal(j.count, ACR__HTTP_COOKIE_MAX);
    acr__http_jar_free(&j);
    assert_int_equal(j.count, 0);
}

static void test_conn_transitions(void **state)
{
    (void)state;
    enum {
        C = ACR__HTTP_CONN_CONNECTING,
        H = ACR__HTTP_CONN_HANDSHAKE,
        A = ACR__HTTP_CONN_ACTIVE,
        I = ACR__HTTP_CONN_IDLE,
        X = ACR__HTTP_CONN_CLOSING
    };
    static const int legal[][2] = {{C, H}, {C, A}, {C, X}, {H, A}, {H, X},
                                   {A, I}, {A, X}, {I, A}, {I, X}};
    for (int from = 0; from < ACR__HTTP_CONN_NSTATES; from++) {
        for (int to = 0; to < ACR__HTTP_CONN_NSTATES; to++) {
            bool want = false;
            for (size_t k = 0; k < sizeof legal / sizeof legal[0]; k++)
                if (legal[k][0] == from && legal[k][1] == to) want = true;
            bool got = acr__http_conn_transition_ok((acr__http_conn_state_t)from,
                                                    (acr__http_conn_state_t)to);
            if (got != want)
                fail_msg("%s -> %s: %d, expected %d", acr__http_conn_state_names[from],
                         acr__http_conn_state_names[to], got, want);
        }
    }
    assert_false(acr__http_conn_transition_ok(ACR__HTTP_CONN_NSTATES, ACR__HTTP_CONN_IDLE));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse), cmocka_unit_test(test_url_resolve),
        cmocka_unit_test(test_buf),       cmocka_unit_test(test_http_date),
        cmocka_unit_test(test_jar),       cmocka_unit_test(test_conn_transitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
