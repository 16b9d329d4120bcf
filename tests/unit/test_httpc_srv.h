/*
 * Scripted loopback test servers for the HTTP client's unit tests (test_httpc*.c): one pthread
 * accepts on 127.0.0.1 port 0 and runs a per-test script on each connection with blocking
 * sockets (optionally TLS through OpenSSL). Requests the server read are logged for assertions.
 * Plus the client-side driver: run one request on a session and wait for its callback.
 */
#ifndef ACR_TEST_HTTPC_SRV_H
#define ACR_TEST_HTTPC_SRV_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "worker/http/http.h"

#define SRV_MAX_REQS 64
#define SRV_REQ_MAX 4096
#define SRV_MAX_CONNS 64

typedef struct srv srv_t;
typedef struct sconn {
    int fd;
    SSL *ssl;
    int idx; /* connection number, from 0 */
    srv_t *sv;
} sconn_t;

typedef void (*srv_script)(sconn_t *c);

struct srv {
    int lfd, port;
    pthread_t th;
    srv_script script;
    SSL_CTX *tls;
    pthread_mutex_t mu;
    volatile int stop;
    int nconns;
    int nreqs;
    int tls_reused; /* connections on which SSL_session_reused was 1 */
    char reqs[SRV_MAX_REQS][SRV_REQ_MAX];
    int req_conn[SRV_MAX_REQS];
    sconn_t conns[SRV_MAX_CONNS];
    pthread_t conn_th[SRV_MAX_CONNS];
};

static inline int sc_read(sconn_t *c, char *buf, size_t n)
{
    if (c->ssl) {
        int r = SSL_read(c->ssl, buf, (int)n);
        return r > 0 ? r : 0;
    }
    for (;;) {
        struct pollfd p = {c->fd, POLLIN, 0};
        int pr = poll(&p, 1, 100);
        if (pr == 0) {
            if (c->sv->stop) return 0;
            continue;
        }
        ssize_t r = recv(c->fd, buf, n, 0);
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

/* Reads one request (head + Content-Length body) into the log. Returns its log index, or -1 at
 * EOF. */
static inline int sc_req(sconn_t *c)
{
    char buf[SRV_REQ_MAX];
    size_t len = 0;
    char *end = NULL;
    while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
        if (len >= sizeof buf - 1) return -1;
        int r = sc_read(c, buf + len, sizeof buf - 1 - len);
        if (r <= 0) return -1;
        len += (size_t)r;
    }
    buf[len] = '\0';
    size_t need = (size_t)(end + 4 - buf);
    const char *cl = strcasestr(buf, "\r\ncontent-length:");
    if (cl && cl < end) need += strtoul(cl + 17, NULL, 10);
    while (len < need && len < sizeof buf - 1) {
        int r = sc_read(c, buf + len, sizeof buf - 1 - len);
        if (r <= 0) return -1;
        len += (size_t)r;
    }
    buf[len] = '\0';
    pthread_mutex_lock(&c->sv->mu);
    int i = c->sv->nreqs < SRV_MAX_REQS ? c->sv->nreqs++ : SRV_MAX_REQS - 1;
    memcpy(c->sv->reqs[i], buf, len + 1);
    c->sv->req_conn[i] = c->idx;
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

static inline void *srv_conn_main(void *arg)
{
    sconn_t *c = arg;
    srv_t *sv = c->sv;
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
    for (;;) {
        int fd = accept(sv->lfd, NULL, NULL);
        if (fd < 0) {
            if (sv->stop) break;
            if (errno == EINTR) continue;
            break;
        }
        struct timeval tv = {10, 0};
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
        pthread_create(&sv->conn_th[c->idx], NULL, srv_conn_main, c);
        pthread_mutex_unlock(&sv->mu);
    }
    return NULL;
}

static inline srv_t *srv_start(srv_script script, SSL_CTX *tls)
{
    srv_t *sv = calloc(1, sizeof *sv);
    if (!sv) abort();
    sv->script = script;
    sv->tls = tls;
    pthread_mutex_init(&sv->mu, NULL);
    sv->lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(sv->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(sv->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(sv->lfd, 64) != 0) abort();
    socklen_t al = sizeof a;
    getsockname(sv->lfd, (struct sockaddr *)&a, &al);
    sv->port = ntohs(a.sin_port);
    pthread_create(&sv->th, NULL, srv_main, sv);
    return sv;
}

static inline void srv_stop(srv_t *sv)
{
    sv->stop = 1;
    shutdown(sv->lfd, SHUT_RDWR);
    pthread_join(sv->th, NULL);
    for (int i = 0; i < sv->nconns; i++) pthread_join(sv->conn_th[i], NULL);
    close(sv->lfd);
    pthread_mutex_destroy(&sv->mu);
    free(sv);
}

static inline int srv_nreqs(srv_t *sv)
{
    pthread_mutex_lock(&sv->mu);
    int n = sv->nreqs;
    pthread_mutex_unlock(&sv->mu);
    return n;
}

static inline int srv_nconns(srv_t *sv)
{
    pthread_mutex_lock(&sv->mu);
    int n = sv->nconns;
    pthread_mutex_unlock(&sv->mu);
    return n;
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

/* Runs the loop until @flag is set. (UV_RUN_ONCE could block forever in its poll after the
 * callback ran, as idle keep-alive connections keep the loop alive.) */
static inline void run_until(uv_loop_t *loop, const int *flag)
{
    while (!*flag) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (!*flag) usleep(200);
    }
}

static inline void wait_done(uv_loop_t *loop, result_t *res)
{
    run_until(loop, &res->done);
}

static inline int run_req(uv_loop_t *loop, acr_http_session_t *s, acr_http_request_t *rq,
                          result_t *res)
{
    memset(res, 0, sizeof *res);
    int rc = acr_http_session_request(s, rq, done_cb, res);
    if (rc < 0) return rc;
    if (res->done) return -999; /* the callback must never run synchronously */
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

#endif
