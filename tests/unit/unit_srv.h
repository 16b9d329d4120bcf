/*
 * The unit tests' one in-process HTTP server and client driver (test_httpc.c, test_httpc_tls.c,
 * test_runtime.c).
 *
 * Server: a thread accepts on 127.0.0.1 port 0 and runs the test's script on each connection in
 * a thread of its own, with blocking sockets (optionally TLS through OpenSSL). Blocking scripts
 * make misbehaviour easy to write (a byte at a time, a reset, a response held until the test
 * releases it) and keep the server off the loop under test. Every request read is counted and
 * the first SRV_MAX_REQS are logged in order for assertions. Server threads are left out of
 * unit_alloc.h's counts.
 *
 * Loop: run_until() drives the loop under test until a condition holds, for at most
 * UNIT_DEADLINE_S seconds (then the test fails naming what it waited for); a SIGALRM watchdog
 * ends the binary if a callback never returns at all. Tests wait for events, never for time.
 *
 * Client: run_req() runs one request on a session and waits for its callback; expect_ok()
 * checks an answer.
 */
#ifndef ACR_UNIT_SRV_H
#define ACR_UNIT_SRV_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "tests/unit/unit_alloc.h"
#include "worker/http/http_internal.h"

#define SRV_MAX_REQS 64
#define SRV_REQ_MAX 4096
#define SRV_MAX_CONNS 64

/* How long a test waits for an event before it fails: far beyond any run on a loaded machine. */
#define UNIT_DEADLINE_S 60

typedef struct srv srv_t;
typedef struct sconn {
    int fd;
    SSL *ssl;
    int idx; /* connection number, from 0 */
    srv_t *sv;
    char req[SRV_REQ_MAX]; /* the request sc_req() read last, NUL-terminated */
} sconn_t;

typedef void (*srv_script)(sconn_t *c);

struct srv {
    int lfd, port;
    pthread_t th;
    srv_script script;
    SSL_CTX *tls;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* held and released */
    int stop;
    int nconns;
    int nreqs;      /* every request read */
    int tls_reused; /* connections on which SSL_session_reused was 1 */
    int held;       /* scripts waiting in sc_hold() */
    bool released;
    char reqs[SRV_MAX_REQS][SRV_REQ_MAX]; /* the first SRV_MAX_REQS requests */
    int req_conn[SRV_MAX_REQS];
    sconn_t conns[SRV_MAX_CONNS];
    pthread_t conn_th[SRV_MAX_CONNS];
};

static inline int srv_get(srv_t *sv, const int *field)
{
    pthread_mutex_lock(&sv->mu);
    int n = *field;
    pthread_mutex_unlock(&sv->mu);
    return n;
}

static inline bool srv_stopping(srv_t *sv)
{
    return srv_get(sv, &sv->stop) != 0;
}

/* Reads what is there (blocking), 0 at EOF, on errors, or once the server stops. */
static inline int sc_read(sconn_t *c, char *buf, size_t n)
{
    for (;;) {
        if (!c->ssl || SSL_pending(c->ssl) == 0) {
            struct pollfd p = {c->fd, POLLIN, 0};
            int pr = poll(&p, 1, 100);
            if (pr <= 0) {
                if ((pr == 0 || errno == EINTR) && !srv_stopping(c->sv)) continue;
                return 0;
            }
        }
        if (c->ssl) {
            int r = SSL_read(c->ssl, buf, (int)n);
            if (r > 0) return r;
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || (e == SSL_ERROR_SYSCALL && errno == EINTR)) continue;
            return 0;
        }
        ssize_t r = recv(c->fd, buf, n, 0);
        if (r < 0 && errno == EINTR) continue;
        return r > 0 ? (int)r : 0;
    }
}

static inline void sc_write(sconn_t *c, const char *p, size_t n)
{
    if (c->ssl) {
        SSL_write(c->ssl, p, (int)n);
        return;
    }
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static inline void sc_puts(sconn_t *c, const char *s)
{
    sc_write(c, s, strlen(s));
}

/* Reads one request (head + Content-Length body) into c->req, counts and logs it. Returns its
 * number (from 0), or -1 at EOF or when it does not fit. */
static inline int sc_req(sconn_t *c)
{
    char *buf = c->req;
    size_t len = 0;
    char *end = NULL;
    while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
        if (len >= SRV_REQ_MAX - 1) return -1;
        int r = sc_read(c, buf + len, SRV_REQ_MAX - 1 - len);
        if (r <= 0) return -1;
        len += (size_t)r;
    }
    buf[len] = '\0';
    size_t need = (size_t)(end + 4 - buf);
    const char *cl = strcasestr(buf, "\r\ncontent-length:");
    if (cl && cl < end) need += strtoul(cl + 17, NULL, 10);
    while (len < need && len < SRV_REQ_MAX - 1) {
        int r = sc_read(c, buf + len, SRV_REQ_MAX - 1 - len);
        if (r <= 0) return -1;
        len += (size_t)r;
    }
    buf[len] = '\0';
    pthread_mutex_lock(&c->sv->mu);
    int i = c->sv->nreqs++;
    if (i < SRV_MAX_REQS) {
        memcpy(c->sv->reqs[i], buf, len + 1);
        c->sv->req_conn[i] = c->idx;
    }
    pthread_mutex_unlock(&c->sv->mu);
    return i;
}

/* Waits until the client closes (or the server stops). */
static inline void sc_wait_eof(sconn_t *c)
{
    char b[512];
    while (sc_read(c, b, sizeof b) > 0) {
    }
}

/* Closes with RST. */
static inline void sc_reset(sconn_t *c)
{
    struct linger l = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

/* Blocks the script until the test calls srv_release() (or the server stops). */
static inline void sc_hold(sconn_t *c)
{
    srv_t *sv = c->sv;
    pthread_mutex_lock(&sv->mu);
    sv->held++;
    pthread_cond_broadcast(&sv->cv);
    while (!sv->released && !sv->stop) pthread_cond_wait(&sv->cv, &sv->mu);
    pthread_mutex_unlock(&sv->mu);
}

static inline void *srv_conn_main(void *arg)
{
    sconn_t *c = arg;
    srv_t *sv = c->sv;
    unit_alloc_ignore_thread();
    if (sv->tls) {
        c->ssl = SSL_new(sv->tls);
        SSL_set_fd(c->ssl, c->fd);
        if (SSL_accept(c->ssl) != 1) {
            ERR_clear_error();
            SSL_free(c->ssl);
            c->ssl = NULL;
            close(c->fd);
            return NULL;
        }
        if (SSL_session_reused(c->ssl)) {
            pthread_mutex_lock(&sv->mu);
            sv->tls_reused++;
            pthread_mutex_unlock(&sv->mu);
        }
    }
    sv->script(c);
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    close(c->fd);
    return NULL;
}

/* Accepts connections; each runs the script in its own thread (joined by srv_stop). */
static inline void *srv_main(void *arg)
{
    srv_t *sv = arg;
    unit_alloc_ignore_thread();
    for (;;) {
        int fd = accept(sv->lfd, NULL, NULL);
        if (fd < 0) {
            if (srv_stopping(sv)) break;
            if (errno == EINTR) continue;
            break;
        }
        struct timeval tv = {UNIT_DEADLINE_S, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        pthread_mutex_lock(&sv->mu);
        if (sv->nconns >= SRV_MAX_CONNS) {
            pthread_mutex_unlock(&sv->mu);
            close(fd);
            continue;
        }
        sconn_t *c = &sv->conns[sv->nconns];
        c->fd = fd;
        c->ssl = NULL;
        c->idx = sv->nconns++;
        c->sv = sv;
        if (pthread_create(&sv->conn_th[c->idx], NULL, srv_conn_main, c) != 0) abort();
        pthread_mutex_unlock(&sv->mu);
    }
    return NULL;
}

/* Starts a server running @script on every connection, over TLS when @tls is set (borrowed). */
static inline srv_t *srv_start(srv_script script, SSL_CTX *tls)
{
    srv_t *sv = calloc(1, sizeof *sv);
    if (!sv) abort();
    sv->script = script;
    sv->tls = tls;
    pthread_mutex_init(&sv->mu, NULL);
    pthread_cond_init(&sv->cv, NULL);
    sv->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(sv->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(sv->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(sv->lfd, 128) != 0) abort();
    socklen_t al = sizeof a;
    getsockname(sv->lfd, (struct sockaddr *)&a, &al);
    sv->port = ntohs(a.sin_port);
    if (pthread_create(&sv->th, NULL, srv_main, sv) != 0) abort();
    return sv;
}

/* Stops accepting, wakes held scripts, joins every thread, frees @sv. */
static inline void srv_stop(srv_t *sv)
{
    pthread_mutex_lock(&sv->mu);
    sv->stop = 1;
    pthread_cond_broadcast(&sv->cv);
    pthread_mutex_unlock(&sv->mu);
    shutdown(sv->lfd, SHUT_RDWR);
    pthread_join(sv->th, NULL);
    for (int i = 0; i < sv->nconns; i++) pthread_join(sv->conn_th[i], NULL);
    close(sv->lfd);
    pthread_cond_destroy(&sv->cv);
    pthread_mutex_destroy(&sv->mu);
    free(sv);
}

/* Lets every script blocked in sc_hold() go on, and later ones pass straight through. */
static inline void srv_release(srv_t *sv)
{
    pthread_mutex_lock(&sv->mu);
    sv->released = true;
    pthread_cond_broadcast(&sv->cv);
    pthread_mutex_unlock(&sv->mu);
}

static inline int srv_nreqs(srv_t *sv)
{
    return srv_get(sv, &sv->nreqs);
}

static inline int srv_nconns(srv_t *sv)
{
    return srv_get(sv, &sv->nconns);
}

/* A port nobody listens on. */
static inline int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- driving the loop ---- */

typedef bool (*unit_pred)(void *arg);

static const char *unit_waiting_for = "";

static void unit_watchdog(int sig)
{
    static const char msg[] = "unit test watchdog: the loop never returned while waiting for ";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0 ||
        write(2, unit_waiting_for, strlen(unit_waiting_for)) < 0 || write(2, "\n", 1) < 0)
        _exit(3);
    _exit(2);
}

static void unit_tick_cb(uv_timer_t *t)
{
    (void)t; /* wakes the loop so conditions changed by server threads are seen */
}

static void unit_tick_closed(uv_handle_t *h)
{
    free(h);
}

/* Runs @loop until @pred(@arg) holds. Fails the test after UNIT_DEADLINE_S seconds, naming
 * @what. The predicate is checked after every loop iteration; an iteration lasts at most 1 ms
 * (a timer, allocated on the loop's first wait and kept in loop->data until unit_loop_close;
 * later waits allocate nothing). */
static inline void run_until_pred(uv_loop_t *loop, unit_pred pred, void *arg, const char *what)
{
    if (pred(arg)) return;
    uv_timer_t *tick = loop->data;
    if (!tick) {
        tick = malloc(sizeof *tick);
        assert_non_null(tick);
        assert_int_equal(uv_timer_init(loop, tick), 0);
        loop->data = tick;
    }
    uv_timer_start(tick, unit_tick_cb, 1, 1);
    unit_waiting_for = what;
    signal(SIGALRM, unit_watchdog);
    alarm(UNIT_DEADLINE_S + 30);
    uint64_t deadline = uv_hrtime() + (uint64_t)UNIT_DEADLINE_S * 1000000000u;
    bool ok;
    while (!(ok = pred(arg)) && uv_hrtime() < deadline) uv_run(loop, UV_RUN_ONCE);
    alarm(0);
    uv_timer_stop(tick);
    if (!ok) fail_msg("still waiting for %s after %d s", what, UNIT_DEADLINE_S);
}

/* Runs @loop until nothing is left on it and closes it; fails if a handle stays open. */
static inline void unit_loop_close(uv_loop_t *loop)
{
    if (loop->data) uv_close(loop->data, unit_tick_closed);
    loop->data = NULL;
    while (uv_run(loop, UV_RUN_DEFAULT)) {
    }
    assert_int_equal(uv_loop_close(loop), 0);
}

static bool unit_flag_set(void *arg)
{
    return *(const int *)arg != 0;
}

/* Runs @loop until *@flag is non-zero. */
static inline void run_until(uv_loop_t *loop, const int *flag)
{
    run_until_pred(loop, unit_flag_set, (void *)flag, "a callback");
}

/* ---- client side ---- */

typedef struct result {
    int done;
    int status;
    char error[256];
    bool has_error;
    char body[70000];
    size_t body_len;
    uint64_t content_length, elapsed_us;
    char url[512];
    char headers[8192]; /* "name: value\n"... */
    size_t nheaders;
    acr_http_timings_t tm;
} result_t;

static inline void done_cb(acr_http_session_t *s, const acr_http_response_t *r, void *ud)
{
    (void)s;
    result_t *res = ud;
    res->done++;
    res->status = r->status;
    res->has_error = r->error != NULL;
    snprintf(res->error, sizeof res->error, "%s", r->error ? r->error : "");
    res->body_len = r->body_len;
    memcpy(res->body, r->body, r->body_len < sizeof res->body ? r->body_len : sizeof res->body);
    res->content_length = r->content_length;
    res->elapsed_us = r->elapsed_us;
    res->tm = r->timings;
    snprintf(res->url, sizeof res->url, "%s", r->url ? r->url : "");
    res->nheaders = r->nheaders;
    size_t off = 0;
    res->headers[0] = '\0';
    for (size_t i = 0; i < r->nheaders && off < sizeof res->headers; i++)
        off += (size_t)snprintf(res->headers + off, sizeof res->headers - off, "%.*s: %.*s\n",
                                (int)r->headers[i].name_len, r->headers[i].name,
                                (int)r->headers[i].value_len, r->headers[i].value);
}

static inline void wait_done(uv_loop_t *loop, result_t *res)
{
    run_until(loop, &res->done);
}

/* Runs @rq on @s and waits for its callback. Returns 0, the request's error code, or -999 when
 * the callback ran synchronously (it never may). */
static inline int run_req(uv_loop_t *loop, acr_http_session_t *s, acr_http_request_t *rq,
                          result_t *res)
{
    memset(res, 0, sizeof *res);
    int rc = acr_http_session_request(s, rq, done_cb, res);
    if (rc < 0) return rc;
    if (res->done) return -999;
    wait_done(loop, res);
    return 0;
}

static inline void closed_cb(void *ud)
{
    (*(int *)ud)++;
}

static inline void close_session(uv_loop_t *loop, acr_http_session_t *s)
{
    int closed = 0;
    acr_http_session_close(s, false, closed_cb, &closed);
    run_until(loop, &closed);
}

/* A client test's fixture: a loop, a client, one session, and a server running @script. */
typedef struct fix {
    uv_loop_t loop;
    acr_http_client_t *c;
    acr_http_session_t *s;
    srv_t *sv;
    SSL_CTX *sctx;
    char url[256]; /* http[s]://127.0.0.1:<port> of sv */
    result_t res;
} fix_t;

/* A fixture whose server runs @script (none when NULL), over TLS with @sctx (owned from here on,
 * may be NULL); the client uses @cfg (NULL: user agent "acrida/test"). */
static inline fix_t *fix_new(srv_script script, SSL_CTX *sctx, const acr_http_config_t *cfg)
{
    fix_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    char err[256] = "";
    acr_http_config_t def = {.user_agent = "acrida/test"};
    f->c = acr_http_client_new(&f->loop, cfg ? cfg : &def, err, sizeof err);
    if (!f->c) fail_msg("acr_http_client_new: %s", err);
    f->s = acr_http_session_new(f->c);
    assert_non_null(f->s);
    f->sctx = sctx;
    if (script) {
        f->sv = srv_start(script, sctx);
        snprintf(f->url, sizeof f->url, "%s://127.0.0.1:%d", sctx ? "https" : "http", f->sv->port);
    }
    return f;
}

/* Closes the session (unless the test did and set f->s to NULL), stops the server, frees the
 * client, and checks that no handle is left on the loop. */
static inline void fix_free(fix_t *f)
{
    if (f->s) close_session(&f->loop, f->s);
    if (f->sv) srv_stop(f->sv);
    if (f->sctx) SSL_CTX_free(f->sctx);
    acr_http_client_free(f->c);
    unit_loop_close(&f->loop);
    free(f);
}

/* A GET of @url that follows redirects and times out well before the test's deadline. */
static inline acr_http_request_t get(const char *url)
{
    acr_http_request_t r = {
        .method = "GET", .url = url, .allow_redirects = true, .timeout = UNIT_DEADLINE_S / 2};
    return r;
}

/* Runs @rq on session @s (NULL: the fixture's) and returns the fixture's result. */
static inline result_t *req_on(fix_t *f, acr_http_session_t *s, acr_http_request_t *rq)
{
    int rc = run_req(&f->loop, s ? s : f->s, rq, &f->res);
    if (rc != 0) fail_msg("request %s %s: rc %d", rq->method, rq->url, rc);
    return &f->res;
}

/* Runs @method on the fixture's server at @path. */
static inline result_t *req(fix_t *f, const char *method, const char *path)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", f->url, path);
    acr_http_request_t r = get(url);
    r.method = method;
    return req_on(f, NULL, &r);
}

/* A completed request without error, with this status and body. */
static inline void expect_ok(const result_t *r, int status, const char *body)
{
    if (r->has_error) fail_msg("unexpected error '%s' (status %d)", r->error, r->status);
    assert_int_equal(r->status, status);
    assert_int_equal(r->body_len, strlen(body));
    assert_memory_equal(r->body, body, r->body_len);
}

#endif
