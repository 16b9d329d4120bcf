/*
 * The API's data routes (routes.h): the /stats/requests document, the Locust CSV downloads, the
 * exceptions, the HTML report, the task ratios, the workers table, the chart history and the
 * Prometheus text. Each one takes a core snapshot, formats it and frees it; none changes the
 * run.
 */
#include "master/web/routes.h"

#include "master/core/dispatch.h"
#include "master/html.h"
#include "master/report.h"
#include "master/pools.h"
#include "master/shape.h"
#include "master/web/metrics.h"

#include <errno.h>
#include <limits.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The largest --csv-full-history file served; beyond, it is read from disk. */
#define MAX_HISTORY_FILE (256L * 1024 * 1024)

/* A snapshot of the core whose stats are never NULL: before the first report they are an empty
 * table, *@empty, which the caller frees (acr_stats_free) with the snapshot. 0 or -ENOMEM. */
static int snapshot(acr_routes_t *r, acr_core_snapshot_t *snap, acr_stats_t **empty)
{
    *empty = NULL;
    acr_core_snapshot(r->core, snap);
    if (!snap->stats) {
        *empty = acr_stats_new(acr_now());
        if (!*empty) {
            acr_core_snapshot_free(snap);
            return -ENOMEM;
        }
        snap->stats = *empty;
    }
    return 0;
}

static void snapshot_free(acr_core_snapshot_t *snap, acr_stats_t *empty)
{
    acr_core_snapshot_free(snap);
    acr_stats_free(empty);
}

/* A download name's time stamp: Python's repr(time.time()), as Locust's names have. */
static void stamp(char *buf, size_t size)
{
    acr_report_fmt_float(buf, size, acr_now());
}

void acr__routes_requests(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp)
{
    acr_core_snapshot_t snap;
    acr_stats_t *empty;
    (void)req;
    if (snapshot(r, &snap, &empty) < 0) {
        acr__routes_fail(resp, 500, "out of memory");
        return;
    }
    acr_report_meta_t meta = {
        .state = acr_run_state_name(snap.state),
        .user_count = snap.user_count,
        .run_time = snap.run_time,
        .test_id = snap.test_id,
        .adopted = snap.adopted,
        .workers = snap.workers,
        .nworkers = snap.nworkers,
        .now = acr_now(),
        .lost_reports = snap.lost_reports,
        .current = snap.current,
        .reports_merged = snap.reports_merged,
    };
    if (acr_shape_current(r->shape, &meta.shape_users, &meta.shape_rate, &meta.shape_stage)) {
        meta.have_shape = true;
        meta.shape_stage += 1; /* 1-based; -1 (a shape function) becomes 0 = null */
    }
    acr_pool_stat_t pools[64]; /* the first 64 pools: /stats/requests stays small */
    meta.npools = r->pools ? acr_pools_count(r->pools) : 0;
    if (meta.npools > ACR_ARRAY_SIZE(pools)) meta.npools = ACR_ARRAY_SIZE(pools);
    for (size_t i = 0; i < meta.npools; i++) acr_pools_stat(r->pools, i, &pools[i]);
    meta.pools = pools;
    char *doc = acr_report_json(snap.stats, &meta);
    snapshot_free(&snap, empty);
    if (!doc || acr_buf_append(&resp->body, doc, strlen(doc)) < 0) {
        free(doc);
        acr__routes_fail(resp, 500, "out of memory");
        return;
    }
    free(doc);
    resp->content_type = "application/json";
}

typedef int (*csv_writer_fn)(FILE *f, acr_stats_t *s);

/* A CSV download: @write's body, Content-Disposition attachment;filename=@base_<ts>.csv. */
static void send_csv(acr_routes_t *r, acr_httpd_resp_t *resp, csv_writer_fn write, const char *base)
{
    acr_core_snapshot_t snap;
    acr_stats_t *empty;
    char *text = NULL, ts[40];
    size_t len = 0;
    if (snapshot(r, &snap, &empty) < 0) {
        acr__routes_fail(resp, 500, "out of memory");
        return;
    }
    FILE *f = open_memstream(&text, &len);
    int rc = f ? write(f, snap.stats) : -ENOMEM;
    if (f && fclose(f) != 0 && rc == 0) rc = -ENOMEM;
    snapshot_free(&snap, empty);
    if (rc < 0 || acr_buf_append(&resp->body, text, len) < 0) {
        free(text);
        acr__routes_fail(resp, 500, "cannot write the CSV: %s", strerror(rc < 0 ? -rc : ENOMEM));
        return;
    }
    free(text);
    stamp(ts, sizeof(ts));
    resp->content_type = "text/csv";
    acr__routes_header(resp, "Content-Disposition: attachment;filename=%s_%s.csv", base, ts);
}

void acr__routes_requests_csv(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp)
{
    (void)req;
    send_csv(r, resp, acr_report_csv_stats, "requests");
}

void acr__routes_failures_csv(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp)
{
    (void)req;
    send_csv(r, resp, acr_report_csv_failures, "failures");
}

void acr__routes_exceptions_csv(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp)
{
    (void)req;
    send_csv(r, resp, acr_report_csv_exceptions, "exceptions");
}

/* The on-disk PREFIX_stats_history.csv of --csv with --csv-full-history, as Locust sends it. */
void acr__routes_full_history_csv(acr_routes_t *r, const acr_httpd_req_t *req,
                                  acr_httpd_resp_t *resp)
{
    const acr_cli_opts_t *o = r->opts;
    char path[4096], ts[40];
    (void)req;
    if (!o || !o->csv || !*o->csv || !o->csv_full_history) {
        acr__routes_text(resp, 404, "text/html; charset=utf-8",
                         "Error: Server was not started with option to generate full history.");
        return;
    }
    if ((size_t)snprintf(path, sizeof(path), "%s_stats_history.csv", o->csv) >= sizeof(path)) {
        acr__routes_fail(resp, 500, "the --csv prefix is too long");
        return;
    }
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f) {
        if (errno == ENOENT)
            acr__routes_text(resp, 404, "text/html; charset=utf-8",
                             "Error: the full history file has not been written yet.");
        else
            acr__routes_fail(resp, 500, "cannot read the full history file: %s", strerror(errno));
        return;
    }
    if (fstat(fileno(f), &st) < 0 || st.st_size > MAX_HISTORY_FILE) {
        acr__routes_fail(resp, 500,
                         "the full history file is larger than %ld MiB: read it from disk "
                         "(--csv prefix + _stats_history.csv)",
                         MAX_HISTORY_FILE / (1024 * 1024));
        fclose(f);
        return;
    }
    if (acr_buf_reserve(&resp->body, (size_t)st.st_size) < 0) {
        fclose(f);
        acr__routes_fail(resp, 500, "out of memory");
        return;
    }
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (rc == 0 && resp->body.len < (size_t)MAX_HISTORY_FILE &&
           (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = acr_buf_append(&resp->body, chunk, n);
    if (rc == 0 && ferror(f)) rc = -EIO;
    fclose(f);
    if (rc < 0) {
        acr__routes_fail(resp, 500, "cannot read the full history file: %s", strerror(-rc));
        return;
    }
    stamp(ts, sizeof(ts));
    resp->content_type = "text/csv; charset=utf-8";
    acr__routes_header(
        resp, "Content-Disposition: attachment; filename=requests_full_history_%s.csv", ts);
    acr__routes_header(resp, "Cache-Control: no-cache, max-age=0");
}

static json_t *jescaped(const char *s, int *err)
{
    char *e = acr_report_html_escape(s ? s : "", true);
    if (!e) {
        *err = 1;
        return NULL;
    }
    json_t *v = acr__routes_jstr(e);
    free(e);
    return v;
}

void acr__routes_exceptions(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp)
{
    acr_core_snapshot_t snap;
    acr_stats_t *empty;
    int err = 0;
    size_t n;
    (void)req;
    if (snapshot(r, &snap, &empty) < 0) {
        acr__routes_fail(resp, 500, "out of memory");
        return;
    }
    json_t *doc = json_object(), *rows = json_array();
    acr_stats_exception_t *const *ex = acr_stats_exceptions(snap.stats, &n);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        acr__routes_jset(o, "count", json_integer((json_int_t)ex[i]->count), &err);
        acr__routes_jset(o, "msg", jescaped(ex[i]->msg, &err), &err);
        acr__routes_jset(o, "traceback", jescaped(ex[i]->traceback, &err), &err);
        acr__routes_jset(o, "nodes", acr__routes_jstr(ex[i]->nodes ? ex[i]->nodes : ""), &err);
        acr__routes_jappend(rows, o, &err);
    }
    acr__routes_jset(doc, "exceptions", rows, &err);
    snapshot_free(&snap, empty);
    if (err) {
        json_decref(doc);
        doc = NULL;
    }
    acr__routes_json(resp, 200, doc);
}

/* /stats/report?download=X: Locust treats any non-empty value as a download. */
static bool wants_download(const acr_httpd_req_t *req)
{
    char *v = acr_httpd_form_get(req->query, strlen(req->query), "download");
    bool yes = v && *v;
    free(v);
    return yes;
}

void acr__routes_report(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp)
{
    acr_core_snapshot_t snap;
    acr_stats_t *empty;
    char ts[40];
    if (snapshot(r, &snap, &empty) < 0) {
        acr__routes_fail(resp, 500, "out of memory");
        return;
    }
    bool download = wants_download(req);
    acr_html_input_t in = {
        .snap = &snap,
        .history = r->history,
        .scenario = r->opts ? r->opts->scenario : NULL,
        .host = r->host[0]                                   ? r->host
                : r->opts && r->opts->host && *r->opts->host ? r->opts->host
                                                             : NULL,
        .users = snap.target_users > 0 ? snap.target_users : r->users,
        .spawn_rate = snap.spawn_rate > 0 ? snap.spawn_rate : r->spawn_rate,
        .start_time = r->start_time,
        .end_time = r->end_time,
        .download = download,
    };
    int rc = acr_html_report(&in, &resp->body);
    snapshot_free(&snap, empty);
    if (rc < 0) {
        acr__routes_fail(resp, 500, "out of memory");
        return;
    }
    resp->content_type = "text/html; charset=utf-8";
    if (download) {
        stamp(ts, sizeof(ts));
        acr__routes_header(resp, "Content-Disposition: attachment;filename=report_%s.html", ts);
    }
}

void acr__routes_history(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp)
{
    (void)req;
    int rc = r->history ? acr_history_json(r->history, &resp->body)
                        : acr_buf_append(&resp->body, "[]", 2);
    if (rc == 0) rc = acr_buf_putc(&resp->body, '\n');
    if (rc < 0) {
        acr__routes_fail(resp, 500, "out of memory");
        return;
    }
    resp->content_type = "application/json";
}

/* ---- /tasks ---- */

static int cmp_class_name(const void *a, const void *b)
{
    const acr_user_class_t *x = *(const acr_user_class_t *const *)a;
    const acr_user_class_t *y = *(const acr_user_class_t *const *)b;
    return strcmp(x->name, y->name);
}

/*
 * How many users of each class Locust's dispatcher (master/core/dispatch.h) has placed when
 * @users run, ramped up from none: the fixed_count classes first, filled in their smooth
 * weighted round-robin order, then the weighted classes in theirs, cycled. @users < 0 means
 * one full round: every fixed class full and one cycle of the weighted ones. @counts gets one
 * value per class of @r, in @r's order. 0 or -ENOMEM.
 */
static int class_counts(const acr_routes_t *r, long users, double *counts)
{
    bool round = users < 0;
    const acr_user_class_t **sorted = calloc(r->nclasses, sizeof(*sorted));
    double *w = calloc(r->nclasses, sizeof(*w));
    size_t *idx = calloc(r->nclasses, sizeof(*idx));
    long *cur = calloc(r->nclasses, sizeof(*cur));
    int *seq = NULL, rc = -ENOMEM;
    if (!sorted || !w || !idx || !cur) goto done;
    for (size_t i = 0; i < r->nclasses; i++) sorted[i] = &r->classes[i];
    qsort(sorted, r->nclasses, sizeof(*sorted), cmp_class_name);
    long left = round ? LONG_MAX : users;
    for (int pass = 0; pass < 2; pass++) {
        size_t k = 0;
        for (size_t i = 0; i < r->nclasses; i++) {
            bool fixed = sorted[i]->fixed_count > 0;
            if (fixed != (pass == 0) || (!fixed && !(sorted[i]->weight > 0))) continue;
            w[k] = fixed ? (double)sorted[i]->fixed_count : sorted[i]->weight;
            idx[k++] = (size_t)(sorted[i] - r->classes);
        }
        if (k == 0 || left <= 0) continue;
        free(seq);
        seq = NULL;
        long len = acr_dispatch_swrr_sequence(w, k, &seq);
        if (len < 0) goto done;
        if (len == 0) continue;
        if (pass == 0) {
            long full = 0; /* fixed classes: one user at a time until each is full */
            for (size_t j = 0; j < k; j++) full += r->classes[idx[j]].fixed_count;
            if (round || left >= full) {
                for (size_t j = 0; j < k; j++)
                    counts[idx[j]] = (double)r->classes[idx[j]].fixed_count;
                left -= full;
            } else {
                for (long p = 0; left > 0; p = (p + 1) % len) {
                    size_t c = idx[seq[p]];
                    if (cur[seq[p]] >= r->classes[c].fixed_count) continue;
                    cur[seq[p]]++;
                    counts[c]++;
                    left--;
                }
            }
        } else {
            long cycles = round ? 1 : left / len, rest = round ? 0 : left % len;
            for (long p = 0; p < len; p++)
                counts[idx[seq[p]]] += (double)cycles + (p < rest ? 1 : 0);
        }
    }
    rc = 0;
done:
    free(seq);
    free(cur);
    free(idx);
    free(w);
    free(sorted);
    return rc;
}

/* The "tasks" object of one class: each task's share of the class's picks times @factor; tasks
 * of the same name are summed. */
static json_t *task_ratios(const acr_user_class_t *c, double factor, int *err)
{
    json_t *tasks = json_object();
    double total = 0;
    for (size_t t = 0; t < c->ntasks; t++) total += c->task_weights[t];
    for (size_t t = 0; tasks && t < c->ntasks; t++) {
        double ratio = total > 0 ? c->task_weights[t] / total * factor : 0;
        json_t *old = json_object_get(tasks, c->task_names[t]), *o = json_object();
        if (old) ratio += json_real_value(json_object_get(old, "ratio"));
        acr__routes_jset(o, "ratio", json_real(ratio), err);
        acr__routes_jset(tasks, c->task_names[t], o, err);
    }
    if (!tasks) *err = 1;
    return tasks;
}

void acr__routes_tasks(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp)
{
    acr_core_snapshot_t snap;
    int err = 0;
    (void)req;
    acr_core_snapshot(r->core, &snap);
    long users = snap.user_count;
    acr_core_snapshot_free(&snap);
    if (users <= 0) users = -1; /* no user yet: one round of the dispatcher, so ratios show */
    double *counts = calloc(r->nclasses ? r->nclasses : 1, sizeof(*counts)), sum = 0;
    if (!counts || class_counts(r, users, counts) < 0) {
        free(counts);
        acr__routes_fail(resp, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < r->nclasses; i++) sum += counts[i];
    json_t *doc = json_object(), *per_class = json_object(), *total = json_object();
    for (size_t i = 0; i < r->nclasses; i++) {
        const acr_user_class_t *c = &r->classes[i];
        double ratio = counts[i] / (sum > 1 ? sum : 1);
        json_t *pc = json_object(), *tc = json_object();
        acr__routes_jset(pc, "ratio", json_real(ratio), &err);
        acr__routes_jset(pc, "tasks", task_ratios(c, 1.0, &err), &err);
        acr__routes_jset(tc, "ratio", json_real(ratio), &err);
        acr__routes_jset(tc, "tasks", task_ratios(c, ratio, &err), &err);
        acr__routes_jset(per_class, c->name, pc, &err);
        acr__routes_jset(total, c->name, tc, &err);
    }
    free(counts);
    acr__routes_jset(doc, "per_class", per_class, &err);
    acr__routes_jset(doc, "total", total, &err);
    if (err) {
        json_decref(doc);
        doc = NULL;
    }
    acr__routes_json(resp, 200, doc);
}

/* ---- /workers, /metrics ---- */

void acr__routes_workers(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp)
{
    static const char *const states[] = {"ready", "spawning", "running", "stopped", "missing"};
    acr_core_snapshot_t snap;
    int err = 0;
    long by_state[ACR_ARRAY_SIZE(states)] = {0};
    (void)req;
    acr_core_snapshot(r->core, &snap);
    json_t *doc = json_object(), *rows = json_array(), *counts = json_object();
    for (size_t i = 0; i < snap.nworkers; i++) {
        const acr_core_worker_t *w = &snap.workers[i];
        json_t *o = json_object();
        acr__routes_jset(o, "id", acr__routes_jstr(w->id), &err);
        acr__routes_jset(o, "host", acr__routes_jstr(w->host), &err);
        acr__routes_jset(o, "state", acr__routes_jstr(w->state), &err);
        acr__routes_jset(o, "user_count", json_integer(w->user_count), &err);
        acr__routes_jset(o, "cpu_usage", acr__routes_jreal(w->cpu_usage), &err);
        acr__routes_jset(o, "memory_usage", json_integer(w->memory_usage), &err);
        acr__routes_jset(o, "last_heartbeat_age", acr__routes_jreal(w->heartbeat_age), &err);
        acr__routes_jappend(rows, o, &err);
        for (size_t s = 0; s < ACR_ARRAY_SIZE(states); s++)
            if (w->state && strcmp(w->state, states[s]) == 0) by_state[s]++;
    }
    for (size_t s = 0; s < ACR_ARRAY_SIZE(states); s++)
        acr__routes_jset(counts, states[s], json_integer(by_state[s]), &err);
    acr__routes_jset(doc, "workers", rows, &err);
    acr__routes_jset(doc, "by_state", counts, &err);
    acr__routes_jset(doc, "total", json_integer((json_int_t)snap.nworkers), &err);
    acr__routes_jset(doc, "live", json_integer((json_int_t)snap.live_workers), &err);
    acr__routes_jset(doc, "state", json_string(acr_run_state_name(snap.state)), &err);
    acr__routes_jset(doc, "user_count", json_integer(snap.user_count), &err);
    acr_core_snapshot_free(&snap);
    if (err) {
        json_decref(doc);
        doc = NULL;
    }
    acr__routes_json(resp, 200, doc);
}

void acr__routes_metrics(acr_routes_t *r, const acr_httpd_req_t *req, acr_httpd_resp_t *resp)
{
    acr_core_snapshot_t snap;
    acr_stats_t *empty;
    (void)req;
    if (snapshot(r, &snap, &empty) < 0) {
        acr__routes_fail(resp, 500, "out of memory");
        return;
    }
    int rc = acr_metrics_text(&snap, &resp->body);
    snapshot_free(&snap, empty);
    if (rc < 0) {
        acr__routes_fail(resp, 500, "out of memory");
        return;
    }
    resp->content_type = ACR_METRICS_CONTENT_TYPE;
}
