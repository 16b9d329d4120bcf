/*
 * Internals of the master's HTTP server, shared by httpd.c (listener, connections, request
 * parsing, answers) and httpd_tls.c (OpenSSL over memory BIOs), and reached by the unit tests
 * (which lower the limits in acr_httpd_t after start) and the fuzz driver (a connection without a
 * socket, fed by acr__httpd_feed).
 *
 * A connection's states (acr__httpd_state_t), changed only by set_state() in httpd.c:
 *   HANDSHAKE --handshake done--> READING --too much output queued--> BLOCKED --drained--> READING
 *   any --last response queued (close, error, EOF)--> DRAINING --written, FIN, client EOF--> CLOSED
 * Its one timer serves whichever deadline the state needs (acr__httpd_tmode_t).
 *
 * Fairness: answering is budgeted per loop iteration (slice_ns of handler and parser time for all
 * connections together). A connection with input left when the budget is spent is deferred: it
 * stops reading and waits in a FIFO queue that an idle handle serves at the next iteration, so
 * pipelined or simultaneous expensive requests never hold the loop (and the workers' heartbeats)
 * for long. At the connection cap the least recently active connection makes room for a new one.
 */
#ifndef ACR_MASTER_HTTPD_INT_H
#define ACR_MASTER_HTTPD_INT_H

#include "master/web/httpd.h"

#include <llhttp.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#define ACR__HTTPD_READ_BUF (64 * 1024)
#define ACR__HTTPD_LINGER_MS 2000 /**< after our FIN, wait this long for the client's */
#define ACR__HTTPD_KEEP_BUF                                                                        \
    (64 * 1024) /**< per-connection buffers shrink to this between requests */
/** Output queued on all connections together above which a response over out_pause bytes is
 *  refused (503) rather than queued: slow readers of large answers cannot exhaust memory. */
#define ACR__HTTPD_OUT_TOTAL ((size_t)256 * 1024 * 1024)
/** Parsing and answering time per loop iteration, all connections together. */
#define ACR__HTTPD_SLICE_NS (10u * 1000 * 1000)

typedef enum {
    ACR__HC_HANDSHAKE = 0, /**< TLS handshake in progress */
    ACR__HC_READING,       /**< reading, parsing and answering requests in order */
    ACR__HC_BLOCKED,       /**< more than out_pause bytes queued: no reading until they drain */
    ACR__HC_DRAINING,      /**< the last response is queued: write it, FIN, wait for EOF, close */
    ACR__HC_CLOSED,        /**< handles closing; freed in the last close callback */
} acr__httpd_state_t;

typedef enum {
    ACR__HT_NONE = 0,
    ACR__HT_IDLE,    /**< keep-alive with nothing to do: close at idle_timeout_ms */
    ACR__HT_REQUEST, /**< a request (or handshake) under way: 408 at req_deadline */
    ACR__HT_WRITE,   /**< output queued: close when no byte was written for write_timeout_ms */
    ACR__HT_LINGER,  /**< FIN sent: close at linger_ms unless the client's EOF comes first */
} acr__httpd_tmode_t;

typedef struct acr__httpd_conn acr__httpd_conn_t;

struct acr_httpd {
    uv_loop_t *loop; /**< NULL for a detached server (fuzzing) */
    uv_tcp_t listener;
    bool listening;   /**< listener initialised and not closed */
    bool closing;     /**< acr_httpd_close was called */
    uv_idle_t resume; /**< serves the deferred connections while any wait */
    bool resume_init; /**< resume initialised (after a successful bind) */
    unsigned live;    /**< connections accepted and not closing (what the cap counts) */
    uint64_t evicted; /**< connections closed to make room for a new one at the cap */
    acr__httpd_conn_t *defer_head, *defer_tail; /**< FIFO of deferred connections */
    uint64_t slice_at;                          /**< uv_now() of the current budget */
    uint64_t slice_spent; /**< ns spent parsing and answering since slice_at */
    size_t out_total;     /**< output queued on every connection (their out_acct summed) */
    SSL_CTX *ssl_ctx;
    acr_httpd_handler_fn handler;
    void *ud;
    bool auth;
    unsigned char auth_digest[32]; /**< SHA-256 of "USER:PASS" */
    acr__httpd_conn_t *conns;      /**< every open connection */
    /* limits: the httpd.h defaults, lowered by tests */
    unsigned max_conns;
    uint64_t request_timeout_ms, idle_timeout_ms, write_timeout_ms, linger_ms;
    size_t out_pause;
    size_t out_total_max; /**< ACR__HTTPD_OUT_TOTAL */
    uint64_t slice_ns;    /**< ACR__HTTPD_SLICE_NS; 0 = one request per connection per turn */
    /* rate-limited logs */
    uint64_t cap_logged_at, accept_err_logged_at, busy_logged_at;
    uint64_t cap_unlogged;
    bool cap_logged, accept_err_logged, busy_logged;
    acr_httpd_stats_t stats;
    char rbuf[ACR__HTTPD_READ_BUF]; /**< socket reads, consumed synchronously */
    char pbuf[ACR__HTTPD_READ_BUF]; /**< TLS plaintext, consumed synchronously */
};

struct acr__httpd_conn {
    acr_httpd_t *srv;
    acr__httpd_conn_t *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    int closes_pending;
    bool detached; /**< no socket (fuzzing): output goes to sink */
    acr__httpd_state_t state;
    acr__httpd_tmode_t tmode;
    bool reading, writing, shutting, eof, failed;
    char peer[64];      /**< "ip:port" */
    uint64_t active_at; /**< uv_now() of the accept or the last answer: the cap's LRU order */
    bool deferred;      /**< in the server's deferred queue (not reading meanwhile) */
    bool granted;       /**< resumed: may parse one request whatever the budget */
    acr__httpd_conn_t *dprev, *dnext; /**< the deferred queue */

    /* TLS (NULL for plain HTTP); the SSL owns both BIOs */
    SSL *ssl;
    BIO *rbio, *wbio;
    bool tls_shut; /**< close_notify queued */

    /* input: the unparsed view (into srv->rbuf, srv->pbuf or stash) */
    llhttp_t parser;
    const char *ip;
    size_t ilen;
    acr_buf_t stash;
    bool req_started;      /**< bytes of a request (or stray CRLFs) arrived since the last answer */
    uint64_t req_deadline; /**< uv_now() ms for ACR__HT_REQUEST */

    /* the request being parsed */
    bool in_msg, in_head, upgrade;
    const char *head_mark; /**< head bytes are counted up to here */
    size_t head_bytes;     /**< of the head, then of the trailers */
    uint64_t body_bytes;
    int limit_status; /**< 413/431 when a callback stopped the parser for a limit */
    acr_buf_t url, body;
    acr_buf_t hval[3]; /**< Content-Type, Authorization, Expect (first of each) */
    bool hseen[3];
    int hwhich; /**< index into hval of the header being read, -1 for others */
    char hname[16];
    size_t hname_len; /**< sizeof(hname) when longer than any header we keep */

    /* answering */
    acr_buf_t path, head;
    acr_httpd_resp_t resp;

    /* output: out fills while wout is in flight */
    acr_buf_t out, wout, sink;
    uint64_t written, progress_seen;
    size_t out_acct; /**< this connection's share of srv->out_total */
};

/* httpd_tls.c */
/** A server SSL_CTX (TLS 1.2+, ALPN http/1.1) for @cert and @key. 0 or a negative errno with a
 *  message naming the file in @err. */
int acr__httpd_tls_ctx_new(const char *cert, const char *key, SSL_CTX **out, char *err,
                           size_t errlen);
/** Gives @c an SSL in accept state over two memory BIOs. 0 or -ENOMEM. */
int acr__httpd_tls_conn(acr__httpd_conn_t *c);
/** Hands @n bytes read from the socket to OpenSSL. 0 or -EIO. */
int acr__httpd_tls_input(acr__httpd_conn_t *c, const char *p, size_t n);
/** Advances the handshake: 1 done, 0 needs more input, -1 failed (logged at debug level). */
int acr__httpd_tls_handshake(acr__httpd_conn_t *c);
/** Decrypts the next plaintext into srv->pbuf and points the input view at it. True if any;
 *  sets c->eof at the end of the stream and c->failed on errors. */
bool acr__httpd_tls_pull(acr__httpd_conn_t *c);
/** Encrypts @n bytes into c->out. 0 or a negative errno. */
int acr__httpd_tls_emit(acr__httpd_conn_t *c, const char *p, size_t n);
/** Queues close_notify (once, after a completed handshake). */
void acr__httpd_tls_shutdown(acr__httpd_conn_t *c);
/** Moves what OpenSSL wrote (handshake, alerts, records) into c->out. 0 or -ENOMEM. */
int acr__httpd_tls_drain(acr__httpd_conn_t *c);

/* httpd_listen.c */
/** Binds and listens on @host:@port ("" or "*": every interface) with @cb for new connections;
 *  0 or a negative errno with a message in @err. s->listening tells whether s->listener was
 *  initialised (then it must be closed, also after a failure). */
int acr__httpd_bind(acr_httpd_t *s, const char *host, int port, uv_connection_cb cb, char *err,
                    size_t errlen);
/** The port s->listener is bound to, -1 if unknown. */
int acr__httpd_bound_port(acr_httpd_t *s);
/** The connection cap: @want, or half the open-file limit when lower. */
unsigned acr__httpd_conn_cap(unsigned want);

/* Fuzzing and tests: a server without a listener and connections without a socket. */
/** A server for @cfg (auth and handler only; no TLS, no socket). NULL when out of memory. Free
 *  with acr_httpd_free after freeing its connections. */
acr_httpd_t *acr__httpd_new_detached(const acr_httpd_config_t *cfg);
/** A connection of @s in READING whose output goes to its sink. */
acr__httpd_conn_t *acr__httpd_conn_detached(acr_httpd_t *s);
/** Parses @n bytes as if read from the socket and answers what is complete. Returns false once
 *  the connection is closed (after a final response, which is in the sink). */
bool acr__httpd_feed(acr__httpd_conn_t *c, const char *p, size_t n);
/** The bytes written so far (owned by @c; the caller may reset it). */
acr_buf_t *acr__httpd_sink(acr__httpd_conn_t *c);
/** Frees a detached connection. */
void acr__httpd_conn_free_detached(acr__httpd_conn_t *c);

#endif
