/*
 * acrida-target internals: the server context, the per-connection struct and the calls between
 * the connection layer (conn.c: sockets, TLS, llhttp, output queue, connection state machine),
 * the routes (routes.c: one response per parsed request, counters) and main.c (options, listener,
 * signals). Single-threaded: everything runs on one libuv loop.
 */
#ifndef ACR_TARGET_H
#define ACR_TARGET_H

#include <llhttp.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/util.h"

#define TGT_MAX_HEADER_BYTES (64 * 1024)       /**< request line + headers; more -> 431 */
#define TGT_MAX_BODY_BYTES (16u * 1024 * 1024) /**< request body; more -> 413 */
#define TGT_MAX_HEADERS 128                    /**< header lines; more -> 431 */
#define TGT_MAX_BYTES (64u * 1024 * 1024)      /**< /bytes/<n> and /chunked/<n> limit */
#define TGT_READ_BUF (64 * 1024)
#define TGT_EARLY_HOLD_MS 10000         /**< /early reads no more of the request for this long */
#define TGT_STASH_LIMIT (1024 * 1024)   /**< unparsed input kept while a response waits */
#define TGT_OUT_LIMIT (4 * 1024 * 1024) /**< queued output above which parsing pauses */

/** Routes, also the keys of the per-path-prefix counters. */
typedef enum {
    TGT_R_ROOT = 0,
    TGT_R_STATUS,
    TGT_R_DELAY,
    TGT_R_BYTES,
    TGT_R_CHUNKED,
    TGT_R_REDIRECT,
    TGT_R_REDIRECT_TO,
    TGT_R_COOKIES,
    TGT_R_ECHO,
    TGT_R_RESET,
    TGT_R_TRUNCATE,
    TGT_R_GARBAGE,
    TGT_R_HANG,
    TGT_R_BIGHDR,
    TGT_R_CLOSE,
    TGT_R_EARLY,
    TGT_R_OTHER, /* 404 */
    TGT_R_COUNT_,
} tgt_route_t;

typedef struct tgt_counters {
    uint64_t served;                 /**< requests answered (or reset/garbage/truncate) */
    uint64_t bad;                    /**< malformed/oversized requests answered 400/413/431 */
    uint64_t hung;                   /**< /hang requests (never answered, not in served) */
    uint64_t connections;            /**< connections accepted */
    uint64_t by_status[600];         /**< status code of the status line written */
    uint64_t by_route[TGT_R_COUNT_]; /**< by path prefix */
} tgt_counters_t;

typedef struct tgt_conn tgt_conn_t;

/** The server: one per process, owned by main(). */
typedef struct tgt_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_signal_t sigterm, sigint;
    SSL_CTX *ssl_ctx;  /**< NULL = plain HTTP */
    tgt_conn_t *conns; /**< live connections (doubly linked) */
    bool stopping;
    tgt_counters_t cnt;
    char rbuf[TGT_READ_BUF]; /**< socket reads; consumed synchronously */
    char pbuf[TGT_READ_BUF]; /**< TLS plaintext; consumed synchronously */
    char *xblock;            /**< TGT_XBLOCK bytes of 'x' (response bodies by reference) */
    char *chunkblock;        /**< TGT_CHUNKS_PER_BLOCK chunks "3e8\r\n" + 1000 x + "\r\n" */
    acr_buf_t bighdr;        /**< the /bighdr response head, built once */
} tgt_server_t;

#define TGT_XBLOCK (256 * 1024)
#define TGT_CHUNK 1000
#define TGT_CHUNK_WIRE (5 + TGT_CHUNK + 2)
#define TGT_CHUNKS_PER_BLOCK 256

/** A reference to read-only bytes owned by the server, spliced into the output at @at. */
typedef struct tgt_ref {
    size_t at;
    const char *p;
    size_t n;
} tgt_ref_t;

/** Output bytes queued for one uv_write: buffered bytes with read-only references spliced in. */
typedef struct tgt_outq {
    acr_buf_t buf;
    tgt_ref_t *refs;
    size_t nrefs, caprefs;
    uint64_t bytes; /**< buf.len + referenced bytes */
} tgt_outq_t;

typedef struct tgt_hdr {
    uint32_t noff, nlen, voff, vlen;
} tgt_hdr_t;

typedef enum {
    TGT_C_HANDSHAKE = 0, /**< TLS handshake in progress */
    TGT_C_READING,       /**< parsing requests and answering them in order */
    TGT_C_WAITING,       /**< a /delay response waits for its timer */
    TGT_C_HANGING,       /**< /hang: nothing more is answered */
    TGT_C_BLOCKED,       /**< too much output queued: parsing paused until writes drain */
    TGT_C_DRAINING,      /**< last response queued: close once it is written */
    TGT_C_RESETTING,     /**< reset (RST) once the queued bytes are written */
    TGT_C_CLOSED,        /**< uv_close called; freed in the last close_cb */
} tgt_conn_state_t;

/** Action a route asks of the connection after queuing its response. */
typedef enum {
    TGT_A_NEXT = 0, /**< go on with the next request (or close if not keep-alive) */
    TGT_A_CLOSE,    /**< close after the queued bytes are written */
    TGT_A_RESET,    /**< reset after the queued bytes are written */
    TGT_A_WAIT,     /**< the route started the delay timer */
    TGT_A_HANG,     /**< never answer */
} tgt_action_t;

struct tgt_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    llhttp_t parser;
    tgt_server_t *srv;
    tgt_conn_t *prev, *next;
    tgt_conn_state_t state;
    int closes_pending;
    bool reading, writing, eof, failed, shutting;

    /* the request being parsed / answered */
    acr_buf_t url, hdrs, body;
    tgt_hdr_t hv[TGT_MAX_HEADERS];
    unsigned nhdrs;
    int hdr_phase; /* 0 none, 1 in field, 2 in value */
    size_t head_bytes;
    uint64_t body_bytes;
    int limit_status; /* 431/413 when a limit was hit */
    bool keep_body;   /* store the body (only /echo reads it) */
    bool early;       /* /early: answered at its headers (routes.c acr__tgt_early) */
    uint8_t method;
    bool keep_alive, http10, upgrade, head;
    uint64_t delay_ms;
    int delay_status; /**< status of the pending /delay response */

    /* unparsed input: a view into srv->rbuf/pbuf or into the stash */
    acr_buf_t stash;
    const char *ip;
    size_t ilen;

    /* output: q[fill] collects, q[!fill] is being written (plain); TLS encrypts q[0] to enc[] */
    tgt_outq_t q[2];
    int fill;
    uv_buf_t *iov;
    size_t iovcap;
    uint64_t inflight; /**< plaintext bytes in the uv_write in flight */

    SSL *ssl;
    BIO *rbio, *wbio;
    acr_buf_t enc[2];
    int encfill;
};

/* conn.c */
/** Accepts a connection from srv->listener; logs and drops it on failure. */
void acr__tgt_accept(tgt_server_t *srv);
/** Closes @c now (RST when @reset); safe to call twice. */
void acr__tgt_close(tgt_conn_t *c, bool reset);
/** Starts the delay timer of @c; the route then returns TGT_A_WAIT. */
int acr__tgt_start_delay(tgt_conn_t *c, uint64_t ms);
/** Appends to the output of @c (copied). Failures mark @c failed (it is then closed). */
void acr__tgt_out(tgt_conn_t *c, const void *p, size_t n);
void acr__tgt_outs(tgt_conn_t *c, const char *s);
void acr__tgt_outf(tgt_conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Appends a reference to server-owned read-only bytes (not copied). */
void acr__tgt_out_ref(tgt_conn_t *c, const char *p, size_t n);
/** Value of request header @name (case-insensitive, first match) or NULL; @len gets its size. */
const char *acr__tgt_header(tgt_conn_t *c, const char *name, size_t *len);

/* routes.c */
/** Builds the server's static blocks (x bodies, chunks, /bighdr head). Returns 0 or -ENOMEM. */
int acr__tgt_routes_init(tgt_server_t *srv);
void acr__tgt_routes_free(tgt_server_t *srv);
/** Answers the parsed request in @c (counting it); returns what the connection does next. */
tgt_action_t acr__tgt_route(tgt_conn_t *c);
/** Writes the /delay response once its timer fired. */
void acr__tgt_route_delayed(tgt_conn_t *c);
/** /early: when @c's request is for /early, answers it now, at its headers (@keep_alive and
 *  @head from the parser), and returns true; the caller then holds the rest of the request. */
bool acr__tgt_early(tgt_conn_t *c, bool keep_alive, bool head);
/** Queues an error response (400/413/431, Connection: close) for a malformed request. */
void acr__tgt_bad_request(tgt_conn_t *c, int status);

#endif
