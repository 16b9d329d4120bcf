/*
 * The master's HTTP/1.1 server (dashboard and API) on the master's libuv loop, with llhttp for
 * every parse and OpenSSL for HTTPS. It owns the connections: keep-alive and pipelined requests
 * answered in order, bounded request line + headers (431 beyond) and body (413 beyond), a
 * connection cap, idle and slow-client deadlines (a client that trickles its request is closed,
 * never waited for), HTTP Basic auth checked before any handler (401 with
 * `WWW-Authenticate: Basic realm="acrida"`), `Access-Control-Allow-Origin: *` on every
 * response. Handlers are synchronous: they fill a response from what the master holds in memory.
 * Error convention: 0 or a negative errno; detail goes to the log or @err.
 */
#ifndef ACR_MASTER_HTTPD_H
#define ACR_MASTER_HTTPD_H

#include "common/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define ACR_HTTPD_MAX_HEADER (16 * 1024) /**< request line + headers; beyond: 431 */
#define ACR_HTTPD_MAX_BODY (1024 * 1024) /**< body; beyond: 413 */
/** Open connections (at most half the open-file limit); a new one beyond closes the least recently
 *  active (accepted or answered) connection. */
#define ACR_HTTPD_MAX_CONNS 1024
/** From the first byte of a request (or the TCP accept on HTTPS, for the handshake) to its last
 *  byte; beyond: 408 and close (a bare close when no request had begun). */
#define ACR_HTTPD_REQUEST_TIMEOUT_MS 10000
/** A connection with no request under way and nothing to write: closed after this long. */
#define ACR_HTTPD_IDLE_TIMEOUT_MS 60000
/** Queued responses that make no write progress for this long: the client does not read; closed. */
#define ACR_HTTPD_WRITE_TIMEOUT_MS 60000
/** Queued output above which a connection stops reading and parsing (pipelined requests wait). */
#define ACR_HTTPD_OUT_PAUSE (1024 * 1024)

typedef struct acr_httpd acr_httpd_t;

/** One parsed request, valid during the handler call only. Strings are NUL-terminated. */
typedef struct acr_httpd_req {
    const char *method;       /**< "GET", "POST", "HEAD", ... */
    const char *path;         /**< percent-decoded path without the query ("/stats/requests") */
    const char *query;        /**< raw query string after '?', "" when none (not decoded) */
    const char *content_type; /**< Content-Type header value, "" when absent */
    const char *body;         /**< the body (NUL-terminated; may contain NULs, see body_len) */
    size_t body_len;
    const char *peer; /**< "ip:port" of the client, for logs */
} acr_httpd_req_t;

/** The handler's answer. The server sets status 200 and an empty body before the call; the
 *  handler sets status, content_type (static string, default "text/plain; charset=utf-8"),
 *  appends extra header lines ("Name: value\r\n" each) to @headers and the body to @body. For
 *  HEAD the server sends the headers only. */
typedef struct acr_httpd_resp {
    int status;
    const char *content_type;
    acr_buf_t headers;
    acr_buf_t body;
} acr_httpd_resp_t;

typedef void (*acr_httpd_handler_fn)(const acr_httpd_req_t *req, acr_httpd_resp_t *resp, void *ud);

typedef struct acr_httpd_config {
    const char *host; /**< bind address ("127.0.0.1", "::", "0.0.0.0", a name); "*" or "" = all */
    int port;         /**< 0 = ephemeral */
    const char *auth; /**< "USER:PASS" for Basic auth on every request, NULL = none */
    const char *tls_cert, *tls_key; /**< PEM files; both NULL = plain HTTP */
    acr_httpd_handler_fn handler;
    void *ud;
} acr_httpd_config_t;

/** Binds and listens on @loop. Returns 0, *@out and the bound port in *@bound_port; or a
 *  negative errno with a message in @err ("cannot load --tls-cert x.pem: ..."). */
int acr_httpd_start(uv_loop_t *loop, const acr_httpd_config_t *cfg, acr_httpd_t **out,
                    int *bound_port, char *err, size_t errlen);
/** Closes the listener and every connection (their handles close on the loop). */
void acr_httpd_close(acr_httpd_t *s);
/** Frees the server after the loop has closed its handles. NULL is fine. */
void acr_httpd_free(acr_httpd_t *s);

/** Counters since acr_httpd_start, for logs, /metrics and tests. */
typedef struct acr_httpd_stats {
    uint64_t accepted;      /**< connections accepted */
    uint64_t rejected;      /**< new connections closed at once (none could be made room for) */
    uint64_t requests;      /**< responses sent (100 Continue not counted) */
    uint64_t handled;       /**< requests passed to the handler */
    uint64_t bad_requests;  /**< 400, 408, 413, 431 and 505 answers */
    uint64_t auth_failures; /**< 401 answers */
    uint64_t timeouts;      /**< request deadlines (408 or close) and stalled writes (close) */
    uint64_t tls_failures;  /**< failed TLS handshakes */
    unsigned open;          /**< connections open now */
} acr_httpd_stats_t;

/** Copies @s's counters into *@out. */
void acr_httpd_get_stats(const acr_httpd_t *s, acr_httpd_stats_t *out);

/** Helpers for handlers. */
/** Value of the first @name field of an application/x-www-form-urlencoded string (query or
 *  body), percent- and '+'-decoded into a malloc'ed string; NULL when absent or out of memory.
 *  Fields are split on '&'; a field without '=' has the value "". A bad escape and %00 stay as
 *  written. Only @len bytes of @form are read. */
char *acr_httpd_form_get(const char *form, size_t len, const char *name);
/** Sets a JSON error answer: @status and {"success": false, "message": @msg}. */
void acr_httpd_json_error(acr_httpd_resp_t *resp, int status, const char *msg);

#endif
