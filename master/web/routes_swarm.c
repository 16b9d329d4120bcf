/*
 * POST /swarm (routes.h): the whole request is read before anything acts. Every field is parsed
 * and checked (form or JSON body, current or legacy names), and only a request with no error
 * reaches acr_core_start (from ready or stopped) or acr_core_edit (while a test is under way), so
 * a test under way never sees bad input. The first error answers 400 naming the field.
 */
#include "master/web/routes.h"

#include "common/log.h"
#include "common/util.h"
#include "master/report.h"
#include "master/shape.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SHOW_MAX 48                 /* characters of a bad value echoed in an error message */
#define MAX_CLASSES 4096            /* user_classes entries accepted in one /swarm */
#define MIN_RATE ACR_MIN_SPAWN_RATE /* common/cli.h */

/* One /swarm request, parsed and checked. */
typedef struct swarm {
    bool have_users, have_rate;
    long users;
    double rate;
    char host[ACR_ROUTES_HOST_MAX]; /* "" = not given (or given empty) */
    double run_time;                /* 0 = none */
    bool have_run_time;             /* a run time > 0 was given */
    char **classes;                 /* user_classes as given (owned), NULL = all */
    size_t nclasses;
    bool have_classes;
    char err[1024]; /* the first error; the request is refused when set */
} swarm_t;

static void swarm_free(swarm_t *s)
{
    for (size_t i = 0; i < s->nclasses; i++) free(s->classes[i]);
    free(s->classes);
}

static bool swarm_error(swarm_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool swarm_error(swarm_t *s, const char *fmt, ...)
{
    if (s->err[0]) return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
    return false;
}

/* @s[0..len) without leading and trailing ASCII whitespace, as Python's int() and float(). */
static void trim(const char **s, size_t *len)
{
    while (*len > 0 && isspace((unsigned char)**s)) (*s)++, (*len)--;
    while (*len > 0 && isspace((unsigned char)(*s)[*len - 1])) (*len)--;
}

/* user_count (@field: its spelling in the request) from text. */
static bool parse_users_text(swarm_t *s, const char *field, const char *v, size_t len)
{
    char shown[SHOW_MAX + 8];
    acr__routes_show(shown, sizeof(shown), v, len);
    trim(&v, &len);
    size_t i = len > 0 && (v[0] == '+' || v[0] == '-') ? 1 : 0;
    if (len == i || strspn(v + i, "0123456789") != len - i)
        return swarm_error(s, "%s must be an integer from 0 to %ld, got '%s'", field,
                           ACR_ROUTES_MAX_USERS, shown);
    if (v[0] == '-' && strspn(v + 1, "0") != len - 1)
        return swarm_error(s, "%s must be >= 0, got '%s'", field, shown);
    long users = 0;
    for (size_t k = i; k < len; k++) {
        users = users * 10 + (v[k] - '0');
        if (users > ACR_ROUTES_MAX_USERS)
            return swarm_error(s, "%s must be at most %ld, got '%s'", field, ACR_ROUTES_MAX_USERS,
                               shown);
    }
    s->users = users;
    s->have_users = true;
    return true;
}

static bool check_rate(swarm_t *s, const char *field, double rate, const char *shown)
{
    if (!isfinite(rate) || rate <= 0)
        return swarm_error(s, "%s must be a number > 0, got '%s'", field, shown);
    if (rate < MIN_RATE)
        return swarm_error(s, "%s must be at least %g users/s, got '%s'", field, MIN_RATE, shown);
    if (rate > ACR_ROUTES_MAX_RATE)
        return swarm_error(s, "%s must be at most %g users/s, got '%s'", field, ACR_ROUTES_MAX_RATE,
                           shown);
    s->rate = rate;
    s->have_rate = true;
    return true;
}

static bool parse_rate_text(swarm_t *s, const char *field, const char *v, size_t len)
{
    char shown[SHOW_MAX + 8], tmp[64];
    acr__routes_show(shown, sizeof(shown), v, len);
    trim(&v, &len);
    char *end;
    if (len == 0 || len >= sizeof(tmp) || memchr(v, 'x', len) || memchr(v, 'X', len))
        return swarm_error(s, "%s must be a number > 0, got '%s'", field, shown);
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    double rate = strtod(tmp, &end);
    if (*end) return swarm_error(s, "%s must be a number > 0, got '%s'", field, shown);
    return check_rate(s, field, rate, shown);
}

/* The /swarm host: an http:// or https:// URL with a host, as -H (common/cli.c). */
static bool check_host_url(swarm_t *s, const char *url)
{
    char shown[SHOW_MAX + 8];
    acr__routes_show(shown, sizeof(shown), url, strlen(url));
    if (s->err[0]) return false;
    return acr_cli_check_url(url, "host", shown, s->err, sizeof(s->err)) == 0;
}

/* host: every '<' and '>' removed (as Locust), then checked; empty = not given. */
static bool parse_host(swarm_t *s, const char *v, size_t len)
{
    size_t o = 0;
    if (memchr(v, '\0', len)) return swarm_error(s, "host must not contain NUL bytes");
    for (size_t i = 0; i < len; i++) {
        if (v[i] == '<' || v[i] == '>') continue;
        if (o + 1 >= sizeof(s->host))
            return swarm_error(s, "host is longer than %d bytes", ACR_ROUTES_HOST_MAX - 1);
        s->host[o++] = v[i];
    }
    s->host[o] = '\0';
    if (o == 0) return true;
    if (!check_host_url(s, s->host)) {
        s->host[0] = '\0';
        return false;
    }
    return true;
}

static bool set_run_time(swarm_t *s, double secs, const char *shown)
{
    if (!isfinite(secs) || secs < 0 || secs > 1e12)
        return swarm_error(s,
                           "run_time '%s' is not valid: valid run_time formats are : 20, 20s, 3m, "
                           "2h, 1h20m, 3h30m10s, etc.",
                           shown);
    s->run_time = secs;
    s->have_run_time = secs > 0;
    return true;
}

static bool parse_run_time_text(swarm_t *s, const char *v, size_t len)
{
    char shown[SHOW_MAX + 8], tmp[128];
    acr__routes_show(shown, sizeof(shown), v, len);
    trim(&v, &len);
    if (len == 0) return true; /* the dashboard's empty field: no limit */
    double secs = -1;
    if (len < sizeof(tmp) && !memchr(v, '\0', len)) {
        memcpy(tmp, v, len);
        tmp[len] = '\0';
        if (acr_parse_timespan(tmp, &secs) < 0) secs = -1;
    }
    return set_run_time(s, secs, shown);
}

static bool add_class(swarm_t *s, const char *v, size_t len)
{
    if (s->nclasses >= MAX_CLASSES)
        return swarm_error(s, "user_classes has more than %d entries", MAX_CLASSES);
    char **grown = realloc(s->classes, (s->nclasses + 1) * sizeof(*grown));
    if (!grown) return swarm_error(s, "out of memory");
    s->classes = grown;
    s->classes[s->nclasses] = strndup(v, len);
    if (!s->classes[s->nclasses]) return swarm_error(s, "out of memory");
    s->nclasses++;
    s->have_classes = true;
    return true;
}

/* Every user_classes entry must name a class of the scenario. */
static bool check_classes(swarm_t *s, const acr_routes_t *r)
{
    for (size_t i = 0; i < s->nclasses; i++) {
        bool known = false;
        for (size_t k = 0; k < r->nclasses && !known; k++)
            known = strcmp(s->classes[i], r->classes[k].name) == 0;
        if (!known) {
            char shown[SHOW_MAX + 8];
            acr__routes_show(shown, sizeof(shown), s->classes[i], strlen(s->classes[i]));
            return swarm_error(s, "user_classes: unknown user class '%s'", shown);
        }
    }
    return true;
}

/* Percent- and '+'-decodes @in[0..len) into a malloc'ed string (*@outlen bytes, may hold
 * NULs); a '%' not followed by two hex digits is kept, as Python's parse_qs. NULL on ENOMEM. */
static char *form_decode(const char *in, size_t len, size_t *outlen)
{
    char *out = malloc(len + 1);
    size_t o = 0;
    if (!out) return NULL;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '+') {
            out[o++] = ' ';
        } else if (in[i] == '%' && i + 2 < len && isxdigit((unsigned char)in[i + 1]) &&
                   isxdigit((unsigned char)in[i + 2])) {
            char hex[3] = {in[i + 1], in[i + 2], '\0'};
            out[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

/* Which /swarm field a key is; "" for one /swarm ignores (as Locust, unknown keys are). */
static const char *field_of(const char *key)
{
    static const char *const known[] = {"user_count", "locust_count", "spawn_rate",  "hatch_rate",
                                        "host",       "run_time",     "user_classes"};
    for (size_t i = 0; i < ACR_ARRAY_SIZE(known); i++)
        if (strcmp(key, known[i]) == 0) return known[i];
    return "";
}

/* An application/x-www-form-urlencoded body: the first value of each field (as Locust), every
 * value of user_classes. user_count wins over locust_count, spawn_rate over hatch_rate. */
static void parse_form(swarm_t *s, const char *body, size_t len)
{
    const char *users = NULL, *rate = NULL;
    char *vals[7] = {0};
    size_t lens[7] = {0};
    static const char *const order[7] = {"user_count", "locust_count", "spawn_rate",  "hatch_rate",
                                         "host",       "run_time",     "user_classes"};
    const char *p = body, *end = body + len;
    while (p < end && !s->err[0]) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pend = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pend - p));
        size_t klen, vlen;
        char *key = form_decode(p, (size_t)((eq ? eq : pend) - p), &klen);
        char *val = eq ? form_decode(eq + 1, (size_t)(pend - eq - 1), &vlen) : strdup("");
        if (!eq) vlen = 0;
        if (!key || !val) {
            swarm_error(s, "out of memory");
        } else {
            const char *f = field_of(key);
            for (size_t i = 0; i < 7; i++) {
                if (f != order[i]) continue;
                if (i == 6) {
                    if (memchr(val, '\0', vlen))
                        swarm_error(s, "user_classes must not contain NUL bytes");
                    else if (vlen > 0)
                        add_class(s, val, vlen);
                } else if (!vals[i]) {
                    vals[i] = val;
                    lens[i] = vlen;
                    val = NULL;
                }
            }
        }
        free(key);
        free(val);
        if (!amp) break;
        p = amp + 1;
    }
    if (!s->err[0]) {
        users = vals[0] ? "user_count" : vals[1] ? "locust_count" : NULL;
        rate = vals[2] ? "spawn_rate" : vals[3] ? "hatch_rate" : NULL;
        if (users) parse_users_text(s, users, vals[0] ? vals[0] : vals[1], lens[vals[0] ? 0 : 1]);
        if (rate) parse_rate_text(s, rate, vals[2] ? vals[2] : vals[3], lens[vals[2] ? 2 : 3]);
        if (vals[4]) parse_host(s, vals[4], lens[4]);
        if (vals[5]) parse_run_time_text(s, vals[5], lens[5]);
    }
    for (size_t i = 0; i < 7; i++) free(vals[i]);
}

static bool json_users(swarm_t *s, const char *field, json_t *v)
{
    char shown[SHOW_MAX + 8];
    if (json_is_string(v))
        return parse_users_text(s, field, json_string_value(v), json_string_length(v));
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 0) return swarm_error(s, "%s must be >= 0, got %lld", field, (long long)n);
        if (n > ACR_ROUTES_MAX_USERS)
            return swarm_error(s, "%s must be at most %ld, got %lld", field, ACR_ROUTES_MAX_USERS,
                               (long long)n);
        s->users = (long)n;
        s->have_users = true;
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        snprintf(shown, sizeof(shown), "%g", d);
        if (d != floor(d))
            return swarm_error(s, "%s must be an integer from 0 to %ld, got %s", field,
                               ACR_ROUTES_MAX_USERS, shown);
        if (d < 0) return swarm_error(s, "%s must be >= 0, got %s", field, shown);
        if (d > (double)ACR_ROUTES_MAX_USERS)
            return swarm_error(s, "%s must be at most %ld, got %s", field, ACR_ROUTES_MAX_USERS,
                               shown);
        s->users = (long)d;
        s->have_users = true;
        return true;
    }
    return swarm_error(s, "%s must be an integer from 0 to %ld", field, ACR_ROUTES_MAX_USERS);
}

static bool json_rate(swarm_t *s, const char *field, json_t *v)
{
    char shown[SHOW_MAX + 8];
    if (json_is_string(v))
        return parse_rate_text(s, field, json_string_value(v), json_string_length(v));
    if (!json_is_number(v)) return swarm_error(s, "%s must be a number > 0", field);
    snprintf(shown, sizeof(shown), "%g", json_number_value(v));
    return check_rate(s, field, json_number_value(v), shown);
}

/* An application/json body: an object with the same fields; host, run_time null = not given;
 * run_time a time span string or seconds; user_classes an array of strings (or one string). */
static void parse_json(swarm_t *s, const char *body, size_t len)
{
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, 0, &jerr), *v;
    if (!doc) {
        char shown[SHOW_MAX + 8];
        acr__routes_show(shown, sizeof(shown), jerr.text, strlen(jerr.text));
        swarm_error(s, "the body is not valid JSON (line %d, column %d: %s)", jerr.line,
                    jerr.column, shown);
        return;
    }
    if (!json_is_object(doc)) {
        swarm_error(s, "the JSON body must be an object such as "
                       "{\"user_count\": 10, \"spawn_rate\": 2}");
        goto done;
    }
    if ((v = json_object_get(doc, "user_count")) || (v = json_object_get(doc, "locust_count")))
        json_users(s, json_object_get(doc, "user_count") ? "user_count" : "locust_count", v);
    if ((v = json_object_get(doc, "spawn_rate")) || (v = json_object_get(doc, "hatch_rate")))
        json_rate(s, json_object_get(doc, "spawn_rate") ? "spawn_rate" : "hatch_rate", v);
    if ((v = json_object_get(doc, "host")) && !json_is_null(v)) {
        if (!json_is_string(v))
            swarm_error(s, "host must be a string (an http:// or https:// URL)");
        else
            parse_host(s, json_string_value(v), json_string_length(v));
    }
    if ((v = json_object_get(doc, "run_time")) && !json_is_null(v)) {
        if (json_is_string(v)) {
            parse_run_time_text(s, json_string_value(v), json_string_length(v));
        } else if (json_is_number(v)) {
            char shown[SHOW_MAX + 8];
            snprintf(shown, sizeof(shown), "%g", json_number_value(v));
            set_run_time(s, json_number_value(v), shown);
        } else {
            swarm_error(s, "run_time must be a time span such as \"1h20m\" or a number of seconds");
        }
    }
    if ((v = json_object_get(doc, "user_classes")) && !json_is_null(v)) {
        size_t i;
        json_t *item;
        if (json_is_string(v)) {
            add_class(s, json_string_value(v), json_string_length(v));
        } else if (!json_is_array(v)) {
            swarm_error(s, "user_classes must be an array of class names");
        } else {
            json_array_foreach(v, i, item)
            {
                if (!json_is_string(item)) {
                    swarm_error(s, "user_classes must be an array of class names (strings)");
                    break;
                }
                if (!add_class(s, json_string_value(item), json_string_length(item))) break;
            }
        }
    }
done:
    json_decref(doc);
}

/* The media type of a Content-Type value, without parameters: "application/json". */
static bool type_is(const char *content_type, const char *type)
{
    size_t n = strlen(type);
    while (*content_type == ' ' || *content_type == '\t') content_type++;
    if (strncasecmp(content_type, type, n) != 0) return false;
    char c = content_type[n];
    return c == '\0' || c == ';' || c == ' ' || c == '\t';
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The host /swarm reports and a start uses: the last one given, else -H. NULL = none. */
static const char *current_host(const acr_routes_t *r)
{
    if (r->host[0]) return r->host;
    return r->opts && r->opts->host && *r->opts->host ? r->opts->host : NULL;
}

static void swarm_reply(acr_routes_t *r, const swarm_t *s, acr_httpd_resp_t *resp)
{
    int err = 0;
    json_t *doc = json_object();
    acr__routes_jset(doc, "success", json_true(), &err);
    acr__routes_jset(doc, "message", json_string("Swarming started"), &err);
    acr__routes_jset(doc, "host", acr__routes_jstr(current_host(r)), &err);
    if (s->have_run_time)
        acr__routes_jset(doc, "run_time",
                         s->run_time == floor(s->run_time) ? json_integer((json_int_t)s->run_time)
                                                           : json_real(s->run_time),
                         &err);
    if (s->have_classes) {
        json_t *a = json_array();
        for (size_t i = 0; i < s->nclasses; i++)
            if (i == 0 || strcmp(s->classes[i], s->classes[i - 1]) != 0)
                acr__routes_jappend(a, acr__routes_jstr(s->classes[i]), &err);
        acr__routes_jset(doc, "user_classes", a, &err);
    }
    if (err) {
        json_decref(doc);
        acr__routes_fail(resp, 500, "out of memory");
        return;
    }
    acr__routes_json(resp, 200, doc);
}

/* A start with the scenario's load shape: the shape gives the users, rate and classes; a test under
 * way follows the shape and is not edited. */
static void swarm_shape(acr_routes_t *r, swarm_t *s, bool edit, acr_httpd_resp_t *resp)
{
    char err[1024];
    if (edit) {
        acr__routes_fail(resp, 409,
                         "the scenario's load shape drives the test under way: stop it to start "
                         "another");
        return;
    }
    const char *host = s->host[0] ? s->host : current_host(r);
    int rc = acr_shape_start(r->shape, host, s->run_time, err, sizeof err);
    if (rc == 1 || rc == -EINVAL) {
        acr__routes_fail(resp, rc == 1 ? 409 : 500, "load shape (%s): %s",
                         acr_shape_where(r->shape), err);
        return;
    }
    if (rc == -EAGAIN) {
        acr__routes_fail(resp, 503,
                         "no worker is connected: start acrida-worker (or use "
                         "--local-workers) and swarm again");
        return;
    }
    if (rc < 0) {
        acr__routes_fail(resp, rc == -EBUSY ? 409 : 503, "cannot start the test: %s", err);
        return;
    }
    long stage;
    acr_shape_current(r->shape, &r->users, &r->spawn_rate, &stage);
    if (s->host[0]) memcpy(r->host, s->host, sizeof(r->host));
    ACR_INFO("web: starting the test with the load shape (%s)", ACR_ESC(acr_shape_where(r->shape)));
    swarm_reply(r, s, resp);
    if (r->on_swarm) r->on_swarm(r, false, r->ud);
}

/* Acts on a checked request: a start from ready/stopped, an edit while a test is under way. */
static void swarm_act(acr_routes_t *r, swarm_t *s, acr_httpd_resp_t *resp)
{
    acr_core_snapshot_t snap;
    acr_core_snapshot(r->core, &snap);
    acr_run_state_t state = snap.state;
    acr_core_snapshot_free(&snap);
    bool edit = state == ACR_RUN_SPAWNING || state == ACR_RUN_RUNNING;
    int rc;

    if (state == ACR_RUN_STOPPING) {
        acr__routes_fail(resp, 409, "the test is stopping: swarm again once it has stopped");
        return;
    }
    if (edit && s->have_run_time) {
        acr__routes_fail(resp, 400,
                         "run_time applies when a test starts: stop the test under way first");
        return;
    }
    if (r->shape) {
        swarm_shape(r, s, edit, resp);
        return;
    }
    if (edit) {
        /* user_classes while a test is under way: new users come from those classes and the
         * ramp replaces the others (master/core/core.h); none given: the classes stay */
        rc = acr_core_edit(r->core, s->users, s->rate,
                           s->have_classes ? (const char *const *)s->classes : NULL, s->nclasses);
    } else {
        const char *host = s->host[0] ? s->host : current_host(r);
        rc = acr_core_start(r->core, s->users, s->rate, host, s->run_time,
                            (const char *const *)s->classes, s->nclasses);
    }
    switch (rc) {
    case 0:
        break;
    case -EAGAIN:
        acr__routes_fail(resp, 503,
                         "no worker is connected: start acrida-worker (or use "
                         "--local-workers) and swarm again");
        return;
    case -ESHUTDOWN:
        acr__routes_fail(resp, 503, "the master is shutting down");
        return;
    case -EBUSY:
    case -EINVAL:
        acr__routes_fail(resp, 409, "the test changed state meanwhile: try again");
        return;
    default:
        acr__routes_fail(resp, 500, "cannot start the test: %s", strerror(-rc));
        return;
    }
    if (!edit && s->host[0]) memcpy(r->host, s->host, sizeof(r->host));
    r->users = s->users;
    r->spawn_rate = s->rate;
    ACR_INFO("web: %s %ld users at %g users/s", edit ? "re-targeting the test to" : "starting",
             s->users, s->rate);
    swarm_reply(r, s, resp);
    if (r->on_swarm) r->on_swarm(r, edit, r->ud);
}

void acr__routes_swarm(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp)
{
    swarm_t *s = calloc(1, sizeof(*s));
    if (!s) {
        acr__routes_fail(resp, 500, "out of memory");
        return;
    }
    if (type_is(req->content_type, "application/json"))
        parse_json(s, req->body, req->body_len);
    else if (!*req->content_type || type_is(req->content_type, "application/x-www-form-urlencoded"))
        parse_form(s, req->body, req->body_len);
    else {
        char shown[SHOW_MAX + 8];
        acr__routes_show(shown, sizeof(shown), req->content_type, strlen(req->content_type));
        acr__routes_fail(resp, 415,
                         "Content-Type '%s' is not supported: send "
                         "application/x-www-form-urlencoded or application/json",
                         shown);
        goto done;
    }
    if (!s->err[0] && !s->have_users && !r->shape)
        swarm_error(s, "user_count is required (an integer >= 0; legacy name locust_count)");
    if (!s->err[0] && !s->have_rate && !r->shape)
        swarm_error(s, "spawn_rate is required (a number > 0; legacy name hatch_rate)");
    if (!s->err[0]) check_classes(s, r);
    if (s->err[0]) {
        acr__routes_fail(resp, 400, "%s", s->err);
        goto done;
    }
    if (s->nclasses > 1) qsort(s->classes, s->nclasses, sizeof(*s->classes), cmp_str);
    swarm_act(r, s, resp);
done:
    swarm_free(s);
    free(s);
}
