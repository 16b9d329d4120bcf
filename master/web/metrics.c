/*
 * The /metrics text (families and label conventions in master/web/metrics.h). One pass per
 * family over the snapshot's entries, since the format wants each family's samples together
 * under its HELP and TYPE lines. Errors are sticky in the writer: the first failed append makes
 * the whole call return -ENOMEM.
 */
#include "master/web/metrics.h"

#include "master/report.h"
#include "proto/proto.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct writer {
    acr_buf_t *out;
    int rc;
} writer_t;

static void put(writer_t *w, const char *s, size_t n)
{
    if (w->rc == 0 && acr_buf_append(w->out, s, n) < 0) w->rc = -ENOMEM;
}

static void put_str(writer_t *w, const char *s)
{
    put(w, s, strlen(s));
}

static void family(writer_t *w, const char *name, const char *type, const char *help)
{
    put_str(w, "# HELP ");
    put_str(w, name);
    put_str(w, " ");
    put_str(w, help);
    put_str(w, "\n# TYPE ");
    put_str(w, name);
    put_str(w, " ");
    put_str(w, type);
    put_str(w, "\n");
}

/* Length of the UTF-8 sequence led by @c, 0 for a byte that cannot lead one. */
static size_t utf8_len(unsigned char c)
{
    if (c >= 0xc2 && c <= 0xdf) return 2;
    if (c >= 0xe0 && c <= 0xef) return 3;
    if (c >= 0xf0 && c <= 0xf4) return 4;
    return 0;
}

/* A label value between quotes: \ " and newline escaped, invalid UTF-8 bytes as U+FFFD. */
static void label_value(writer_t *w, const char *s)
{
    size_t n = strlen(s), i = 0;
    put(w, "\"", 1);
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\') {
            put_str(w, "\\\\");
        } else if (c == '"') {
            put_str(w, "\\\"");
        } else if (c == '\n') {
            put_str(w, "\\n");
        } else if (c < 0x80) {
            put(w, s + i, 1);
        } else {
            size_t len = utf8_len(c);
            if (len && i + len <= n && acr_proto_utf8_valid(s + i, len)) {
                put(w, s + i, len);
                i += len;
                continue;
            }
            put_str(w, "\xef\xbf\xbd");
        }
        i++;
    }
    put(w, "\"", 1);
}

static void entry_labels(writer_t *w, const acr_stats_entry_t *e)
{
    put_str(w, "method=");
    label_value(w, e->method);
    put_str(w, ",name=");
    label_value(w, e->name);
}

/* " VALUE\n": the shortest text that reads back as @v; NaN, +Inf, -Inf as the format spells
 * them. */
static void value(writer_t *w, double v)
{
    char buf[40];
    if (isnan(v))
        snprintf(buf, sizeof(buf), "NaN");
    else if (isinf(v))
        snprintf(buf, sizeof(buf), v > 0 ? "+Inf" : "-Inf");
    else
        acr_report_fmt_float(buf, sizeof(buf), v);
    put_str(w, " ");
    put_str(w, buf);
    put_str(w, "\n");
}

static void value_u64(writer_t *w, unsigned long long v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), " %llu\n", v);
    put_str(w, buf);
}

/* The entries in the order they are written: sorted by (name, method), then Aggregated. */
typedef struct entries {
    acr_stats_entry_t *const *rows;
    size_t n;
    const acr_stats_entry_t *total;
} entries_t;

static const acr_stats_entry_t *entry_at(const entries_t *es, size_t i)
{
    return i < es->n ? es->rows[i] : es->total;
}

static size_t entry_count(const entries_t *es)
{
    return es->total ? es->n + 1 : 0;
}

static const double QUANTILES[] = {0.5, 0.9, 0.95, 0.99};
static const char *const QUANTILE_TEXT[] = {"0.5", "0.9", "0.95", "0.99"};

static void entry_families(writer_t *w, const entries_t *es)
{
    size_t n = entry_count(es);
    family(w, "acrida_requests_total", "counter",
           "Requests per entry (the Aggregated labelset is their total).");
    for (size_t i = 0; i < n; i++) {
        put_str(w, "acrida_requests_total{");
        entry_labels(w, entry_at(es, i));
        put_str(w, "}");
        value_u64(w, entry_at(es, i)->num_requests);
    }
    family(w, "acrida_failures_total", "counter",
           "Failed requests per entry (the Aggregated labelset is their total).");
    for (size_t i = 0; i < n; i++) {
        put_str(w, "acrida_failures_total{");
        entry_labels(w, entry_at(es, i));
        put_str(w, "}");
        value_u64(w, entry_at(es, i)->num_failures);
    }
    family(w, "acrida_response_time_seconds", "summary",
           "Response times over the whole run (quantiles NaN before any).");
    for (size_t i = 0; i < n; i++) {
        const acr_stats_entry_t *e = entry_at(es, i);
        for (size_t q = 0; q < ACR_ARRAY_SIZE(QUANTILES); q++) {
            put_str(w, "acrida_response_time_seconds{");
            entry_labels(w, e);
            put_str(w, ",quantile=\"");
            put_str(w, QUANTILE_TEXT[q]);
            put_str(w, "\"}");
            value(w, e->hist.count ? acr_stats_percentile_ms(e, QUANTILES[q]) / 1000.0 : NAN);
        }
        put_str(w, "acrida_response_time_seconds_sum{");
        entry_labels(w, e);
        put_str(w, "}");
        value(w, (double)e->total_rt_us / 1e6);
        put_str(w, "acrida_response_time_seconds_count{");
        entry_labels(w, e);
        put_str(w, "}");
        value_u64(w, e->hist.count);
    }
}

static void worker_family(writer_t *w, const acr_core_snapshot_t *s)
{
    static const acr_worker_state_t states[] = {ACR_WORKER_READY, ACR_WORKER_SPAWNING,
                                                ACR_WORKER_RUNNING, ACR_WORKER_STOPPED,
                                                ACR_WORKER_MISSING};
    family(w, "acrida_workers", "gauge", "Registered workers per state.");
    for (size_t i = 0; i < ACR_ARRAY_SIZE(states); i++) {
        const char *name = acr_worker_state_name(states[i]);
        unsigned long long n = 0;
        for (size_t k = 0; k < s->nworkers; k++)
            if (s->workers[k].state && strcmp(s->workers[k].state, name) == 0) n++;
        put_str(w, "acrida_workers{state=");
        label_value(w, name);
        put_str(w, "}");
        value_u64(w, n);
    }
}

int acr_metrics_text(const acr_core_snapshot_t *s, acr_buf_t *out)
{
    writer_t w = {out, 0};
    entries_t es = {NULL, 0, NULL};
    if (s->stats) {
        es.rows = acr_stats_sorted(s->stats, &es.n);
        if (!es.rows) es.n = 0;
        es.total = acr_stats_total(s->stats);
    }
    entry_families(&w, &es);

    family(&w, "acrida_users", "gauge", "Users the workers run.");
    put_str(&w, "acrida_users");
    value_u64(&w, s->user_count > 0 ? (unsigned long long)s->user_count : 0);
    worker_family(&w, s);
    family(&w, "acrida_current_rps", "gauge", "Requests per second over the last 10 s.");
    put_str(&w, "acrida_current_rps");
    value(&w, es.total ? acr_stats_current_rps(es.total, es.total) : 0.0);
    family(&w, "acrida_current_fail_per_sec", "gauge",
           "Failed requests per second over the last 10 s.");
    put_str(&w, "acrida_current_fail_per_sec");
    value(&w, es.total ? acr_stats_current_fail_per_sec(es.total, es.total) : 0.0);
    family(&w, "acrida_run_state", "gauge", "The run's state: 1 for the current one.");
    for (int i = 0; i < ACR_RUN__COUNT; i++) {
        put_str(&w, "acrida_run_state{state=");
        label_value(&w, acr_run_state_name((acr_run_state_t)i));
        put_str(&w, "}");
        value_u64(&w, s->state == (acr_run_state_t)i);
    }
    family(&w, "acrida_lost_reports_total", "counter",
           "Worker report intervals lost in this test (the totals miss their requests).");
    put_str(&w, "acrida_lost_reports_total");
    value_u64(&w, s->lost_reports);
    return w.rc;
}
