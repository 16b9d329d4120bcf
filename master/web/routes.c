/*
 * The route table and its dispatcher, /stop, /stats/reset, the dashboard's files and the helpers
 * the other route files share (routes_swarm.c: /swarm; routes_stats.c: the data routes). Every
 * answer is built from the request and what the core holds; nothing is kept between requests
 * except the last test's parameters in acr_routes_t.
 */
#include "master/web/routes.h"

#include "common/log.h"
#include "common/util.h"
#include "master/report.h"
#include "master/web/assets.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define M_GET (1u << 0)
#define M_POST (1u << 1)

#define SHOW_MAX 48      /* characters of a bad value echoed in an error message */
#define MAX_CLASSES 4096 /* user_classes entries accepted in one /swarm */

typedef void (*route_fn)(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp);

typedef struct route {
    const char *path;
    unsigned methods;
    route_fn fn;
} route_t;

static void route_index(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp);
static void route_stop(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp);
static void route_reset(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp);

static const route_t ROUTES[] = {
    {"/", M_GET, route_index},
    {"/swarm", M_POST, acr__routes_swarm},
    {"/stop", M_GET | M_POST, route_stop},
    {"/stats/reset", M_GET, route_reset},
    {"/stats/requests", M_GET, acr__routes_requests},
    {"/stats/requests/csv", M_GET, acr__routes_requests_csv},
    {"/stats/requests_full_history/csv", M_GET, acr__routes_full_history_csv},
    {"/stats/failures/csv", M_GET, acr__routes_failures_csv},
    {"/stats/report", M_GET, acr__routes_report},
    {"/stats/history", M_GET, acr__routes_history},
    {"/exceptions", M_GET, acr__routes_exceptions},
    {"/exceptions/csv", M_GET, acr__routes_exceptions_csv},
    {"/tasks", M_GET, acr__routes_tasks},
    {"/workers", M_GET, acr__routes_workers},
    {"/metrics", M_GET, acr__routes_metrics},
};

/* ---- helpers shared with routes_swarm.c and routes_stats.c ---- */

static int dump_json(acr_httpd_resp_t *resp, int status, json_t *doc);

void acr__routes_header(acr_httpd_resp_t *resp, const char *fmt, ...)
{
    va_list ap;
    char line[512];
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line)) return;
    (void)acr_buf_appendf(&resp->headers, "%s\r\n", line);
}

void acr__routes_fail(acr_httpd_resp_t *resp, int status, const char *fmt, ...)
{
    va_list ap;
    char msg[1024];
    int err = 0;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    acr_buf_reset(&resp->headers);
    acr_buf_reset(&resp->body);
    json_t *doc = json_object();
    acr__routes_jset(doc, "success", json_false(), &err);
    acr__routes_jset(doc, "message", acr__routes_jstr(msg), &err);
    if (err || dump_json(resp, status, doc) < 0) {
        acr_buf_reset(&resp->body);
        acr_httpd_json_error(resp, status, msg); /* the server's own, smaller answer */
    }
    json_decref(doc);
}

void acr__routes_text(acr_httpd_resp_t *resp, int status, const char *type, const char *text)
{
    resp->status = status;
    resp->content_type = type;
    acr_buf_reset(&resp->body);
    if (acr_buf_append(&resp->body, text, strlen(text)) < 0)
        acr__routes_fail(resp, 500, "out of memory");
}

void acr__routes_show(char *dst, size_t size, const char *s, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 4 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= SHOW_MAX) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        dst[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    dst[o] = '\0';
}

json_t *acr__routes_jstr(const char *s)
{
    if (!s) return json_null();
    json_t *v = json_string(s);
    if (v) return v;
    char *copy = strdup(s);
    if (!copy) return NULL;
    for (char *c = copy; *c; c++)
        if ((unsigned char)*c >= 0x80) *c = '?';
    v = json_string(copy);
    free(copy);
    return v;
}

json_t *acr__routes_jreal(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

void acr__routes_jset(json_t *o, const char *key, json_t *v, int *err)
{
    if (json_object_set_new(o, key, v) < 0) *err = 1;
}

void acr__routes_jappend(json_t *a, json_t *v, int *err)
{
    if (json_array_append_new(a, v) < 0) *err = 1;
}

/* Answers @status with @doc (borrowed). Returns 0 or -ENOMEM (the body is then undefined). */
static int dump_json(acr_httpd_resp_t *resp, int status, json_t *doc)
{
    char *dump = doc ? json_dumps(doc, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_ENSURE_ASCII |
                                           JSON_REAL_PRECISION(17))
                     : NULL;
    acr_buf_reset(&resp->body);
    int rc = dump ? acr_report_pythonic_json(&resp->body, dump) : -ENOMEM;
    free(dump);
    if (rc < 0) return rc;
    resp->status = status;
    resp->content_type = "application/json";
    return 0;
}

void acr__routes_json(acr_httpd_resp_t *resp, int status, json_t *doc)
{
    if (dump_json(resp, status, doc) < 0) acr__routes_fail(resp, 500, "out of memory");
    json_decref(doc);
}

/* ---- the dashboard's files ---- */

static void send_asset(const char *name, acr_httpd_resp_t *resp)
{
    const acr_asset_t *a = acr_asset_find(name);
    if (!a) {
        acr__routes_fail(resp, 404, "no such file");
        return;
    }
    resp->content_type = a->content_type;
    if (acr_buf_append(&resp->body, a->data, a->len) < 0)
        acr__routes_fail(resp, 500, "out of memory");
}

static void route_index(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp)
{
    (void)r;
    (void)req;
    send_asset("index.html", resp);
}

/* GET /static/<name>: one embedded file; no directories, so no way out of the table. */
static void route_static(const char *name, acr_httpd_resp_t *resp)
{
    if (!*name || strchr(name, '/') || strchr(name, '\\') || strstr(name, "..")) {
        acr__routes_fail(resp, 404, "no such file");
        return;
    }
    send_asset(name, resp);
}

/* ---- /stop, /stats/reset ---- */

static void route_stop(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp)
{
    (void)req;
    if (acr_core_stop(r->core) == 0) ACR_INFO("web: stopping the test");
    int err = 0;
    json_t *doc = json_object();
    acr__routes_jset(doc, "success", json_true(), &err);
    acr__routes_jset(doc, "message", json_string("Test stopped"), &err);
    if (err) {
        json_decref(doc);
        doc = NULL;
    }
    acr__routes_json(resp, 200, doc);
}

static void route_reset(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp)
{
    (void)req;
    acr_core_reset(r->core);
    acr__routes_text(resp, 200, "text/html; charset=utf-8", "ok");
}

/* ---- the dispatcher ---- */

static void allow_header(acr_httpd_resp_t *resp, unsigned methods)
{
    acr__routes_header(resp, "Allow: %s%s%s", methods & M_GET ? "GET, HEAD, " : "",
                       methods & M_POST ? "POST, " : "", "OPTIONS");
}

void acr_routes_handle(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp)
{
    const char *m = req->method;
    unsigned method = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 ? M_GET
                      : strcmp(m, "POST") == 0                        ? M_POST
                                                                      : 0;
    bool options = strcmp(m, "OPTIONS") == 0;
    const route_t *route = NULL;
    static const route_t static_route = {"/static/", M_GET, NULL};

    for (size_t i = 0; i < ACR_ARRAY_SIZE(ROUTES) && !route; i++)
        if (strcmp(req->path, ROUTES[i].path) == 0) route = &ROUTES[i];
    if (!route && strncmp(req->path, "/static/", 8) == 0) route = &static_route;
    if (!route) {
        char shown[SHOW_MAX + 8];
        acr__routes_show(shown, sizeof(shown), req->path, strlen(req->path));
        acr__routes_fail(resp, 404, "no such route: %s", shown);
        return;
    }
    if (options) {
        resp->status = 200;
        allow_header(resp, route->methods);
        return;
    }
    if (!(route->methods & method)) {
        char shown[16];
        acr__routes_show(shown, sizeof(shown), m, strlen(m));
        acr__routes_fail(resp, 405, "method %s is not allowed on %s", shown, route->path);
        allow_header(resp, route->methods);
        return;
    }
    if (route == &static_route)
        route_static(req->path + 8, resp);
    else
        route->fn(r, req, resp);
}

void acr_routes_core_listener(acr_core_t *c, const acr_core_event_t *ev, void *ud)
{
    acr_routes_t *r = ud;
    (void)c;
    if (ev->type != ACR_CORE_EV_STATE) return;
    if (ev->to == ACR_RUN_SPAWNING && (ev->from == ACR_RUN_READY || ev->from == ACR_RUN_STOPPED)) {
        r->start_time = acr_now();
        r->end_time = 0;
    } else if (ev->to == ACR_RUN_STOPPED) {
        r->end_time = acr_now();
    }
}
