/*
 * The worker's HTTP/1.1 client, the whole contract of worker/http/. Names: acr_http_* is what the
 * rest of the worker may use (this header); acr__http_* are the module's internals, shared by its
 * files through http_internal.h (session.c: client and sessions; conn.c: one connection; tls.c,
 * dns.c, cookies.c, url.c); plain static names stay inside one file. The Lua side of it
 * (self.client, worker/lua_http.c) uses this header only.
 *
 * Plain TCP or TLS (OpenSSL through memory BIOs, libuv owns the
 * socket), responses parsed by llhttp. One acr_http_client_t per event loop holds what all users
 * share (DNS cache, TLS contexts and session cache, one read buffer the parser consumes
 * synchronously); one acr_http_session_t per simulated user holds its keep-alive connections (one
 * per scheme+host+port) and its cookie jar.
 *
 * A session runs one request at a time (a user is one coroutine). The response is handed to the
 * completion callback and is valid only during that call; the caller copies what it keeps.
 * Redirects (301/302/303/307/308, at most 5) are followed inside one request; the response is the
 * last one, its elapsed time covers the whole chain.
 *
 * Failures never crash: refused, reset, timeouts, malformed or truncated responses, TLS errors and
 * oversize headers complete the request with status 0 (or the status seen) and a readable
 * r->error (no headers or body then). The exact texts:
 *   "connection refused", "connection reset by peer",
 *   "too many open files" (ACR_HTTP_ERR_NOFILE: no descriptor for a new connection, EMFILE or
 *   ENFILE; the caller should back off before its next request),
 *   "connection closed before the response completed" (EOF before the end of the response),
 *   "timeout after %g s" (the request's timeout), "aborted", "too many redirects (5)",
 *   "malformed response: <llhttp reason>" (e.g. "malformed response: Expected HTTP/"),
 *   "malformed response: headers exceed 64 KiB", "malformed response: more than 1000 headers",
 *   "DNS lookup failed for <host>: <uv_strerror>", "invalid redirect location",
 *   "TLS handshake failed: <OpenSSL reason>[ (<X509 verify reason>)]", e.g.
 *   "TLS handshake failed: certificate verify failed (self-signed certificate)" or
 *   "... (hostname mismatch)", "TLS error: <OpenSSL reason>" after the handshake, and
 *   uv_strerror() text for other socket errors.
 * The connection is then discarded; the next request reconnects. A keep-alive connection that
 * the peer closed (EOF/reset before any response byte) is retried once on a fresh connection.
 *
 * Error convention: 0 or a negative errno (libuv codes pass through); details in r->error.
 */
#ifndef ACR_WORKER_HTTP_HTTP_H
#define ACR_WORKER_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define ACR_HTTP_MAX_HEADER_BYTES (64 * 1024)
#define ACR_HTTP_DEFAULT_TIMEOUT 60.0
#define ACR_HTTP_DEFAULT_BODY_CAP (16u << 20) /**< bytes stored; more are counted, not kept */
/** r->error when no file descriptor was left for a new connection (EMFILE, ENFILE) */
#define ACR_HTTP_ERR_NOFILE "too many open files"

typedef struct acr_http_client acr_http_client_t;
typedef struct acr_http_session acr_http_session_t;

typedef struct acr_http_config {
    bool insecure;          /**< skip certificate and host name verification (--insecure) */
    size_t body_cap;        /**< bytes of a body kept for r.body; 0 = ACR_HTTP_DEFAULT_BODY_CAP */
    const char *ca_file;    /**< extra CA bundle (tests); NULL = system store only */
    const char *user_agent; /**< "acrida/<version>" */
} acr_http_config_t;

typedef struct acr_http_header {
    const char *name; /**< in responses: lower case */
    size_t name_len;
    const char *value;
    size_t value_len;
} acr_http_header_t;

typedef struct acr_http_request {
    const char *method; /**< "GET", ... */
    const char *url;    /**< absolute http:// or https:// URL (the caller resolves paths) */
    const acr_http_header_t *headers; /**< extra request headers (override defaults by name) */
    size_t nheaders;
    const char *body; /**< may be NULL */
    size_t body_len;
    double timeout; /**< seconds for the whole request (connect included); <= 0 = default */
    bool allow_redirects;
    bool insecure; /**< per request (user class `insecure = true`) */
} acr_http_request_t;

typedef struct acr_http_timings {
    double dns, connect, tls, ttfb, total; /**< ms; 0 for phases that did not happen */
} acr_http_timings_t;

typedef struct acr_http_response {
    int status;        /**< 0 when no response */
    const char *error; /**< NULL on a transport success (status may still be >= 400) */
    const acr_http_header_t *headers; /**< lower-case names, in order */
    size_t nheaders;
    const char *body; /**< at most body_cap bytes */
    size_t body_len;
    uint64_t content_length; /**< bytes of body received (counted even past the cap) */
    uint64_t elapsed_us;     /**< request start to last body byte (whole redirect chain) */
    acr_http_timings_t timings;
    const char *url; /**< final URL after redirects */
} acr_http_response_t;

/** Completion callback. @r and everything it points to are valid only during the call and only
 *  until the callback starts another request on @s (which it may do). It may also close @s. */
typedef void (*acr_http_done_cb)(acr_http_session_t *s, const acr_http_response_t *r, void *ud);

/** Creates the per-loop client. @cfg is copied (NULL user_agent = "acrida/" ACR_VERSION).
 *  Returns NULL on allocation/TLS setup failure (reason in @err, e.g. "cannot load CA file
 *  <path>: <reason>"). */
acr_http_client_t *acr_http_client_new(uv_loop_t *loop, const acr_http_config_t *cfg, char *err,
                                       size_t errlen);
/** Frees the client; every session must be closed (their close callbacks run) first. */
void acr_http_client_free(acr_http_client_t *c);

/** Creates a session (a user's keep-alive connections + cookie jar). NULL when out of memory (or
 *  the loop refuses its timer). Owned by the caller until acr_http_session_close(). */
acr_http_session_t *acr_http_session_new(acr_http_client_t *c);

/**
 * Starts @req on @s; @cb runs exactly once, later, from the loop (never from inside this call).
 * @req and everything it points to are copied. Returns -EBUSY when a request is already in
 * flight, -EINVAL for an unusable URL, method or header (CR/LF in a value), -ECANCELED after
 * acr_http_session_close(), -ENOMEM (then @cb is not called).
 */
int acr_http_session_request(acr_http_session_t *s, const acr_http_request_t *req,
                             acr_http_done_cb cb, void *ud);

/**
 * Releases the memory an idle session keeps for its next request: the URL, request and
 * serialization buffers, the error text, and each idle connection's response header, body and
 * TLS write buffers and libuv request struct. Keep-alive connections (sockets, TLS sessions) and
 * the cookie jar stay, so the next request reuses them; it only regrows what it needs (counted in
 * buf_grows). For users about to wait long; a busy user should not call it, since the hot path
 * relies on the kept buffers. No-op while a request is in flight or after close. Allocates
 * nothing.
 */
void acr_http_session_trim(acr_http_session_t *s);

/**
 * Abandons the request in flight, if any: its connection is closed and its callback never runs;
 * the session stays usable. For a request aborted at a stop (the caller counts it).
 */
void acr_http_session_cancel(acr_http_session_t *s);

/**
 * Closes the session's connections and frees it once they are closed. An in-flight request is
 * allowed to finish first (its callback still runs) unless @abort, in which case it completes
 * with error "aborted" (from the loop, before @closed_cb). @closed_cb (may be NULL) runs after
 * the memory is gone. May be called from the completion callback; a second call is ignored.
 */
void acr_http_session_close(acr_http_session_t *s, bool abort, void (*closed_cb)(void *ud),
                            void *ud);

#endif
