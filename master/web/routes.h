/*
 * The master's HTTP API (docs/http-api.md): every route as a synchronous handler over the control
 * core, the chart history and the options. The routes never touch a socket: the web front-end
 * (master/web/web.c) passes each request from the server (master/web/httpd.h) to
 * acr_routes_handle, which fills the response. Shapes, CSV headers and download names follow
 * Locust 2.12; bad input answers 400 {"success": false, "message": "..."} naming the field, and a
 * test under way is never disturbed by it.
 * Error convention: 0 or a negative errno; HTTP errors are answers, never a crash.
 */
#ifndef ACR_MASTER_ROUTES_H
#define ACR_MASTER_ROUTES_H

#include "common/cli.h"
#include "common/scenario.h"
#include "master/core/core.h"
#include "master/history.h"
#include "master/web/httpd.h"

#include <stdbool.h>
#include <stddef.h>

#define ACR_ROUTES_HOST_MAX 2048 /**< longest host /swarm accepts, NUL included */
#define ACR_ROUTES_MAX_USERS 10000000L
#define ACR_ROUTES_MAX_RATE 1e7 /**< users per second */

typedef struct acr_routes acr_routes_t;

/** Called after /swarm started (@edit false) or re-targeted (@edit true) a test. */
typedef void (*acr_routes_swarm_fn)(acr_routes_t *r, bool edit, void *ud);

/**
 * What the routes read and the little they remember. The front-end zeroes it, fills the
 * borrowed pointers (they must outlive every call) and optionally on_swarm; the "last test"
 * fields are kept up to date by the routes (/swarm) and by acr_routes_core_listener.
 */
struct acr_routes {
    acr_core_t *core;                /**< required */
    acr_history_t *history;          /**< chart samples; NULL = "[]" and no report charts */
    const acr_cli_opts_t *opts;      /**< required: scenario, host, csv, csv_full_history */
    const acr_user_class_t *classes; /**< the scenario's classes (/tasks, user_classes) */
    size_t nclasses;
    /** The scenario's load shape (master/shape.h): it starts each test and gives its users and
     *  rate, so /swarm's user_count and spawn_rate are optional; NULL = none. */
    struct acr_shape *shape;
    /** The scenario's data pools (master/pools.h), shown in /stats/requests; NULL = none. */
    struct acr_pools *pools;

    /* The last test, for the HTML report (/stats/report). /swarm sets users, spawn_rate and
     * host; a front-end that starts a test itself (--autostart) sets them as well. */
    long users;
    double spawn_rate;
    char host[ACR_ROUTES_HOST_MAX]; /**< "" = opts->host (or the classes' own) */
    /** Epoch s of the last test's start and end; 0 = none yet / still running. Set by
     *  acr_routes_core_listener on the core's state events. */
    double start_time, end_time;

    acr_routes_swarm_fn on_swarm; /**< NULL = none */
    void *ud;                     /**< for on_swarm */
};

/** Answers one request: fills @resp (status, content type, extra headers, body). Never fails:
 *  out of memory answers 500 with whatever could be said. */
void acr_routes_handle(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp);

/** A core subscriber (acr_core_subscribe(core, acr_routes_core_listener, r)) that records the
 *  test's start and end times in @ud, an acr_routes_t. */
void acr_routes_core_listener(acr_core_t *c, const acr_core_event_t *ev, void *ud);

/* ---- internal to master/web/routes*.c ---- */

struct json_t;

/** POST /swarm (routes_swarm.c). */
void acr__routes_swarm(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp);
/** The data routes (routes_stats.c). */
void acr__routes_requests(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp);
void acr__routes_requests_csv(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp);
void acr__routes_failures_csv(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp);
void acr__routes_exceptions_csv(acr_routes_t *r, const acr_httpd_req_t *req,
                                acr_httpd_resp_t *resp);
void acr__routes_full_history_csv(acr_routes_t *r, const acr_httpd_req_t *req,
                                  acr_httpd_resp_t *resp);
void acr__routes_exceptions(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp);
void acr__routes_report(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp);
void acr__routes_history(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp);
void acr__routes_tasks(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp);
void acr__routes_workers(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp);
void acr__routes_metrics(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp);

/** Helpers (routes.c). */
/** Appends the header line printf(@fmt) + CRLF to @resp (dropped beyond 511 bytes). */
void acr__routes_header(acr_httpd_resp_t *resp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/** Replaces the answer with @status and {"success": false, "message": printf(@fmt)}. */
void acr__routes_fail(acr_httpd_resp_t *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** Replaces the body with @text, of type @type (a static string). */
void acr__routes_text(acr_httpd_resp_t *resp, int status, const char *type, const char *text);
/** @s[0..len) made safe to echo in a message: printable ASCII, others '?', at most 48
 *  characters then "...". @size >= 56 holds any. */
void acr__routes_show(char *dst, size_t size, const char *s, size_t len);
/** jansson values that never fail on odd input: a string with non-UTF-8 bytes gets '?' for its
 *  non-ASCII bytes (NULL -> null), a non-finite real is null. NULL only on ENOMEM. */
struct json_t *acr__routes_jstr(const char *s);
struct json_t *acr__routes_jreal(double v);
/** Sets / appends @v, stealing it; sets *@err when either allocation failed. */
void acr__routes_jset(struct json_t *o, const char *key, struct json_t *v, int *err);
void acr__routes_jappend(struct json_t *a, struct json_t *v, int *err);
/** Answers @status with @doc (stolen; NULL = out of memory -> 500) as Locust's Flask does:
 *  keys sorted, 2-space indent, reals in Python's repr, trailing newline, application/json. */
void acr__routes_json(acr_httpd_resp_t *resp, int status, struct json_t *doc);

#endif
