/*
 * Internals of the worker's HTTP client (worker/http/http.h), shared by its files only:
 *   session.c    client + session: request lifecycle, redirects, timeouts, completion
 *   conn.c       one keep-alive connection: TCP, write queue, llhttp response parsing
 *   tls.c        OpenSSL contexts, per-connection SSL over custom in-memory BIOs, session cache
 *   dns.c        asynchronous resolution with a per-client positive/negative cache
 *   cookies.c    per-session cookie jar (Set-Cookie parsing, Cookie header, cookie dates)
 *   url.c        URL parsing and redirect Location resolution
 * Every name here is acr__http_* / ACR__HTTP_*. Nothing outside worker/http/ and its unit tests
 * includes this.
 */
#ifndef ACR_WORKER_HTTP_HTTP_INTERNAL_H
#define ACR_WORKER_HTTP_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>
#include <llhttp.h>

#include "common/util.h"
#include "worker/http/http.h"

/* Buffers of an idle connection or session larger than this are released after a request. */
#define ACR__HTTP_KEEP_BUF (8 * 1024)
#define ACR__HTTP_MAX_HEADERS 1000 /* response header lines (trailers not stored) */
#define ACR__HTTP_MAX_CONNS 4      /* connections kept per session */
#define ACR__HTTP_MAX_REDIRECTS 5
#define ACR__HTTP_ERR_LEN 256          /* error messages */
#define ACR__HTTP_READ_BUF (64 * 1024) /* the per-client read buffer */
#define ACR__HTTP_TLS_BUF (16 * 1024)  /* the per-client decrypted-record buffer */
#define ACR__HTTP_DNS_MAX_ADDRS 4
#define ACR__HTTP_DNS_TTL_OK_MS 60000
#define ACR__HTTP_DNS_TTL_FAIL_MS 5000
#define ACR__HTTP_DNS_MAX_ENTRIES 1024
#define ACR__HTTP_TLS_MAX_SESSIONS 1024
#define ACR__HTTP_COOKIE_MAX 64       /* cookies per session jar */
#define ACR__HTTP_COOKIE_MAX_LEN 4096 /* one Set-Cookie value */
/* Descriptors the connections leave to the rest of the process (the master's ZeroMQ connection and
 * its reconnects, DNS, logs, the scenario's files): a connection beyond RLIMIT_NOFILE minus this
 * fails with ACR_HTTP_ERR_NOFILE before any socket is made. */
#define ACR__HTTP_FD_RESERVE 64

/* ---- URL ---- */

/** Offsets into the parsed string; 32 bits, so URLs are under 4 GiB (callers check). */
typedef struct acr__http_url {
    bool tls, ipv6;
    uint16_t port;
    uint32_t host_off, host_len; /* lower-cased in place, without IPv6 brackets */
    uint32_t auth_off, auth_len; /* "host[:port]" as written in the URL (Host header source) */
    uint32_t path_off, path_len; /* "/path?query", "" when absent (send "/"), no fragment */
} acr__http_url_t;

/** Parses the NUL-terminated absolute URL @s (modified: scheme and host lower-cased).
 *  Returns 0 or -EINVAL. */
int acr__http_url_parse(char *s, acr__http_url_t *u);

/**
 * Resolves redirect target @loc (length @loc_len) against @base/@u into @out (emptied first).
 * Returns 0, -EINVAL for an unusable Location, -ENOMEM.
 */
int acr__http_url_resolve(const char *base, const acr__http_url_t *u, const char *loc,
                          size_t loc_len, acr_buf_t *out, uint64_t *grows);

/* ---- DNS ---- */

/** One IPv4 or IPv6 address (28 bytes instead of sockaddr_storage's 128). */
typedef union acr__http_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
} acr__http_addr_t;

typedef struct acr__http_dns acr__http_dns_t;
typedef struct acr__http_dns_entry acr__http_dns_entry_t;

/** Someone waiting for a lookup (embedded in the session). */
typedef struct acr__http_dns_waiter {
    struct acr__http_dns_waiter *next, **pprev;
    acr__http_dns_entry_t *entry;
    /** Runs once with the entry's result: @status 0 and @addrs, or a libuv error. */
    void (*cb)(struct acr__http_dns_waiter *w, int status, const acr__http_addr_t *addrs,
               int naddrs);
} acr__http_dns_waiter_t;

acr__http_dns_t *acr__http_dns_new(uv_loop_t *loop, uint64_t *lookups_counter);
/** Frees the cache; lookups still running are orphaned and free themselves when they end. */
void acr__http_dns_free(acr__http_dns_t *d);

/**
 * Resolves @host. Returns 1 with the addresses in @addrs/@naddrs (cache hit), 0 when @w was
 * queued (its cb runs later from the loop), or a negative libuv error for a cached failure
 * (reason via uv_strerror). Never calls @w->cb synchronously.
 */
int acr__http_dns_resolve(acr__http_dns_t *d, const char *host, acr__http_dns_waiter_t *w,
                          acr__http_addr_t *addrs, int *naddrs);
/** Removes a queued waiter (timeout/abort); its cb will not run. */
void acr__http_dns_cancel(acr__http_dns_waiter_t *w);

/* ---- TLS ---- */

typedef struct acr__http_tls acr__http_tls_t;
typedef struct acr__http_conn acr__http_conn_t;

/** Creates the verified and insecure contexts. NULL on failure with the reason in @err. */
acr__http_tls_t *acr__http_tls_new(const char *ca_file, char *err, size_t errlen);
void acr__http_tls_free(acr__http_tls_t *t);
/** Attaches an SSL object to @c (SNI, host check unless @c->insecure, cached session).
 *  Returns 0 or -ENOMEM. */
int acr__http_tls_attach(acr__http_tls_t *t, acr__http_conn_t *c);
void acr__http_tls_detach(acr__http_conn_t *c);
/** Advances the handshake. 1 done, 0 needs more input, <0 failed (message in @err). */
int acr__http_tls_handshake(acr__http_conn_t *c, char *err, size_t errlen);
/** Encrypts @n bytes into the connection's write queue. 0 or <0 (message in @err). */
int acr__http_tls_write(acr__http_conn_t *c, const char *p, size_t n, char *err, size_t errlen);
/**
 * Decrypts what is available into @out. Returns bytes (>0), 0 when more input is needed,
 * UV_EOF at a clean or unclean end of stream, or another negative error (message in @err).
 */
int acr__http_tls_read(acr__http_conn_t *c, char *out, size_t outlen, char *err, size_t errlen);

/* ---- cookies ---- */

typedef struct acr__http_cookie acr__http_cookie_t;
typedef struct acr__http_jar {
    acr__http_cookie_t *head;
    unsigned count;
} acr__http_jar_t;

/** Stores one Set-Cookie header value received from @host for request path @path. */
void acr__http_jar_set(acr__http_jar_t *j, const char *host, size_t host_len, const char *path,
                       size_t path_len, const char *v, size_t vlen, double now);
/** Appends "Cookie: a=1; b=2\r\n" to @out when cookies match; 0 or -ENOMEM. */
int acr__http_jar_header(acr__http_jar_t *j, const char *host, size_t host_len, const char *path,
                         size_t path_len, bool tls, double now, acr_buf_t *out, uint64_t *grows);
void acr__http_jar_free(acr__http_jar_t *j);
/** Parses an HTTP date (IMF-fixdate, RFC 850, asctime). Returns 0 and epoch seconds or -1. */
int acr__http_cookie_date(const char *s, size_t n, double *out);

/* ---- client, session, connection ---- */

/** Counters of one client: the cost budget of issue #3, which the unit tests assert on. */
typedef struct acr__http_stats {
    uint64_t buf_grows;      /**< heap growth events of the client's own buffers */
    uint64_t conns_opened;   /**< connections created (TCP connects started) */
    uint64_t conns_reused;   /**< requests sent on an already used keep-alive connection */
    uint64_t retries;        /**< requests retried once after a stale keep-alive connection */
    uint64_t dns_lookups;    /**< getaddrinfo calls (cache misses) */
    uint64_t tls_handshakes; /**< completed TLS handshakes */
    uint64_t tls_resumed;    /**< ... of which resumed a cached session */
} acr__http_stats_t;

struct acr_http_client {
    uv_loop_t *loop;
    size_t body_cap;
    bool insecure;    /* cfg->insecure: every request skips verification */
    char *user_agent; /* owned */
    acr__http_tls_t *tls;
    acr__http_dns_t *dns;
    char *rbuf;   /* ACR__HTTP_READ_BUF, handed to every uv_read; consumed synchronously */
    char *tlsbuf; /* ACR__HTTP_TLS_BUF, decrypted bytes, consumed synchronously */
    unsigned nsessions;
    size_t nconns;    /* connections whose socket may be open (created, not yet closed) */
    size_t max_conns; /* RLIMIT_NOFILE - ACR__HTTP_FD_RESERVE at creation */
    acr__http_stats_t stats;
};

typedef enum acr__http_conn_state {
    ACR__HTTP_CONN_CONNECTING = 0, /* TCP connect in progress */
    ACR__HTTP_CONN_HANDSHAKE,      /* TLS handshake in progress */
    ACR__HTTP_CONN_ACTIVE,         /* request written (or being written), response awaited */
    ACR__HTTP_CONN_IDLE,           /* keep-alive, no request */
    ACR__HTTP_CONN_CLOSING,        /* uv_close called; freed in its close_cb */
    ACR__HTTP_CONN_NSTATES
} acr__http_conn_state_t;

extern const char *const acr__http_conn_state_names[ACR__HTTP_CONN_NSTATES];
/** Whether @from -> @to is a legal connection transition. */
bool acr__http_conn_transition_ok(acr__http_conn_state_t from, acr__http_conn_state_t to);

/** The connection's one libuv request: connect, then writes (one in flight at a time). */
typedef union acr__http_conn_req {
    uv_connect_t connect;
    uv_write_t write;
} acr__http_conn_req_t;

struct acr__http_conn {
    uv_tcp_t tcp;
    acr__http_conn_req_t *req; /* allocated at connect, kept for writes; freed by a full trim */
    llhttp_t parser;
    acr_http_session_t *s;
    acr__http_conn_t *next; /* session's connection list */
    acr__http_conn_state_t state;
    int status;
    bool tls, insecure;
    bool writing;      /* a uv_write is in flight (or its callback has not run yet) */
    bool send_pending; /* plain: the rest of the request waits for that callback */
    bool reusable;     /* the last response allows keep-alive */
    bool msg_done;     /* on_message_complete seen for the current request */
    bool got_bytes;    /* response bytes seen for the current request */
    bool head_req;     /* current request is HEAD */
    bool tls_done;     /* handshake completed */
    bool tls_eof;      /* TLS: the peer's EOF arrived, decrypt what is left */
    uint8_t hstate;    /* header parsing: 0 between headers, 1 in a name, 2 in a value */
    uint8_t wq_fill;   /* TLS: index of the write queue buffer that collects */
    uint16_t port;
    uint32_t requests;        /* requests completed on this connection */
    uint32_t send_off;        /* plain: bytes of the request already written when send_pending */
    uint32_t nharr, harr_cap; /* response headers parsed, entries allocated */
    uint32_t hdr_bytes;       /* raw status + header bytes seen (limit) */
    /* TLS */
    void *ssl;          /* SSL *, NULL for plain */
    const char *tls_in; /* unread ciphertext of the current read callback */
    size_t tls_in_len;
    acr_buf_t wq[2]; /* ciphertext write queue: [wq_fill] collects, other is in flight */
    /* response */
    acr_buf_t hdrs;          /* header bytes: "name\0value\0"... */
    acr_http_header_t *harr; /* while parsing: offsets into hdrs (cast); pointers when done */
    acr_buf_t body;
    uint64_t body_seen;
    uint64_t t_start, t_connected, t_ready; /* uv_hrtime: connect start, TCP up, TLS up */
    uint64_t t_sent;                        /* the request was handed to the socket */
    uint64_t t_first;                       /* first response byte */
    char host[];                            /* NUL-terminated, lower case */
};

/** What a connection reports back to its session (conn.c -> session.c). */
typedef enum acr__http_conn_event {
    ACR__HTTP_EV_READY = 0, /* TCP (and TLS) up: the request may be sent */
    ACR__HTTP_EV_RESPONSE,  /* a complete response is in c->status/harr/body */
    ACR__HTTP_EV_ERROR,     /* failure: @status is a libuv code or 1 (message in err) */
} acr__http_conn_event_t;

struct acr_http_session {
    acr_http_client_t *c;
    uv_timer_t timer; /* request timeout, and deferred completions */
    acr__http_conn_t *conns;
    acr__http_conn_t *cur; /* connection of the current hop */
    acr__http_dns_waiter_t dns_wait;
    uint64_t t_dns;
    acr__http_addr_t addrs[ACR__HTTP_DNS_MAX_ADDRS]; /* resolved; tried in order */
    acr__http_jar_t jar;
    acr_http_done_cb cb;
    void *ud;
    void (*closed_cb)(void *ud);
    void *closed_ud;
    double timeout;
    uint64_t t_start; /* uv_hrtime */
    acr_http_timings_t tm;
    const char *pending_error; /* deferred completion (timer with 0 ms) */
    acr_buf_t url;             /* current URL (NUL-terminated), parsed into u */
    acr__http_url_t u;
    acr_buf_t args; /* caller header lines "Name: value\r\n" then the body */
    acr_buf_t out;  /* serialized request (plain: written as is; TLS: fed to SSL_write) */
    size_t args_hdr_len, body_len;
    char *err; /* ACR__HTTP_ERR_LEN, allocated at the first failure, kept until a trim */
    int pending_status;
    unsigned pending_closes; /* handles whose close_cb has not run */
    int naddrs, addr_idx;
    uint8_t args_has; /* ACR__HTTP_H_* bits: defaults overridden by caller headers */
    uint8_t redirects;
    bool busy, closing, timer_closing, timer_closed;
    bool retried; /* the current hop has used its one keep-alive retry */
    bool redirects_ok, insecure, head;
    char method[32];
};

enum {
    ACR__HTTP_H_HOST = 1,
    ACR__HTTP_H_UA = 2,
    ACR__HTTP_H_CONN = 4,
    ACR__HTTP_H_CLEN = 8,
    ACR__HTTP_H_TE = 16,
    ACR__HTTP_H_COOKIE = 32,
};

/** Creates a connection to the session's current URL, linked into s->conns (not connected).
 *  NULL on ENOMEM. */
acr__http_conn_t *acr__http_conn_new(acr_http_session_t *s, bool insecure);
/** Starts connecting to @addr; ACR__HTTP_EV_READY or ACR__HTTP_EV_ERROR follows from the loop.
 *  Returns 0 or a negative libuv error (nothing reported then). */
int acr__http_conn_connect(acr__http_conn_t *c, const struct sockaddr *addr);
/** Writes s->out as the request on a ready connection; the response arrives as an event.
 *  Returns 0 or a negative error (the message in @err when it is a TLS one). */
int acr__http_conn_send(acr__http_conn_t *c, bool head, char *err, size_t errlen);
/** Response handed over: back to idle (buffers kept until acr__http_conn_trim) or closed. */
void acr__http_conn_release(acr__http_conn_t *c);
/** Shrinks the buffers of an idle connection: those over @keep bytes are freed (@keep 0: all of
 *  them, and the libuv request struct unless a write callback is pending). No-op unless idle. */
void acr__http_conn_trim(acr__http_conn_t *c, size_t keep);
/** Closes and unlinks the connection; freed in its close_cb. Safe to call twice. */
void acr__http_conn_discard(acr__http_conn_t *c);
void acr__http_conn_set_state(acr__http_conn_t *c, acr__http_conn_state_t to);

/** Connection -> session notification (session.c). */
void acr__http_session_conn_event(acr_http_session_t *s, acr__http_conn_t *c,
                                  acr__http_conn_event_t ev, int status, const char *err);
/** A handle of the session finished closing (session.c frees the session after the last). */
void acr__http_session_handle_closed(acr_http_session_t *s);

#endif
