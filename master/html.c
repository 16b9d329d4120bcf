/*
 * The self-contained HTML report (html.h). One document with no external URL: the stylesheet
 * inline (light and dark through prefers-color-scheme), uPlot's script and stylesheet inlined
 * from the embedded assets (master/web/assets.h), the chart samples as JSON in a
 * <script type="application/json"> block, and the tables as plain HTML, so the page reads even
 * with scripts off.
 *
 * What comes from the run (entry names, errors, tracebacks, node ids, hosts, the scenario's name)
 * is hostile: text goes through put_esc (& < > " ' as entities), JSON inside a script through
 * put_script_json (< > & and U+2028/U+2029 as \u escapes, so neither "</script" nor "<!--" can
 * appear), and the inlined library text through put_raw_text, which breaks any "</script" or
 * "</style" in it the way the HTML spec recommends ("<\/").
 *
 * The writer keeps the first error (-ENOMEM) and ignores every later append, so the builders
 * need no error path of their own; the report is then cut back to where it began.
 */
#include "master/html.h"

#include "common/log.h"
#include "master/report.h"
#include "master/web/assets.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#ifndef ACR_VERSION
#define ACR_VERSION "unknown"
#endif

typedef struct html_writer {
    acr_buf_t *b;
    int rc;
} html_writer_t;

/* ---- the writer ---- */

static void put_n(html_writer_t *w, const char *s, size_t n)
{
    if (w->rc == 0 && n > 0) w->rc = acr_buf_append(w->b, s, n);
}

static void put(html_writer_t *w, const char *s)
{
    put_n(w, s, strlen(s));
}

static void putf(html_writer_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(html_writer_t *w, const char *fmt, ...)
{
    if (w->rc < 0) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        w->rc = -EINVAL;
        return;
    }
    w->rc = acr_buf_reserve(w->b, (size_t)n);
    if (w->rc < 0) return;
    va_start(ap, fmt);
    vsnprintf(w->b->data + w->b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    w->b->len += (size_t)n;
}

/* Text or an attribute value: & < > " ' as entities. NULL writes nothing. */
static void put_esc(html_writer_t *w, const char *s)
{
    if (!s) return;
    const char *run = s;
    for (const char *p = s; *p; p++) {
        const char *rep;
        switch (*p) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            continue;
        }
        put_n(w, run, (size_t)(p - run));
        put(w, rep);
        run = p + 1;
    }
    put(w, run);
}

/* JSON text inside a <script> element: '<', '>' and '&' (which valid JSON has only inside
 * strings) and the line separators U+2028/U+2029 become \u escapes with the same meaning, so the
 * block can neither end early ("</script") nor open a comment ("<!--"). */
static void put_script_json(html_writer_t *w, const char *json, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        const char *rep = NULL;
        size_t skip = 1;
        unsigned char c = (unsigned char)json[i];
        if (c == '<')
            rep = "\\u003c";
        else if (c == '>')
            rep = "\\u003e";
        else if (c == '&')
            rep = "\\u0026";
        else if (c == 0xe2 && i + 2 < len && (unsigned char)json[i + 1] == 0x80 &&
                 ((unsigned char)json[i + 2] == 0xa8 || (unsigned char)json[i + 2] == 0xa9)) {
            rep = (unsigned char)json[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
            skip = 3;
        }
        if (!rep) continue;
        put_n(w, json + run, i - run);
        put(w, rep);
        i += skip - 1;
        run = i + 1;
    }
    put_n(w, json + run, len - run);
}

/* A library's text inlined in a <script> (@tag "script") or <style> ("style"): every "</tag"
 * (any case) becomes "<\/tag", which the script or stylesheet reads the same, and in a script
 * "<!--" becomes "<\!--". Today's uPlot has neither; this keeps a future version from ending the
 * element early. */
static void put_raw_text(html_writer_t *w, const char *s, size_t len, const char *tag)
{
    size_t tl = strlen(tag);
    bool script = strcmp(tag, "script") == 0;
    size_t run = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] != '<') continue;
        size_t at;
        if (s[i + 1] == '/' && i + 2 + tl <= len && strncasecmp(s + i + 2, tag, tl) == 0)
            at = i + 1; /* a backslash before the '/' */
        else if (script && i + 4 <= len && memcmp(s + i, "<!--", 4) == 0)
            at = i + 1; /* a backslash before the '!' */
        else
            continue;
        put_n(w, s + run, at - run);
        put(w, "\\");
        run = at;
    }
    put_n(w, s + run, len - run);
}

/* ---- values ---- */

static void fmt_time(char *buf, size_t size, double t)
{
    time_t s = (time_t)t;
    struct tm tm;
    if (t <= 0 || !isfinite(t) || !localtime_r(&s, &tm) ||
        strftime(buf, size, "%Y-%m-%d %H:%M:%S %z", &tm) == 0)
        snprintf(buf, size, "-");
}

static void fmt_duration(char *buf, size_t size, double s)
{
    if (!(s > 0) || !isfinite(s)) s = 0;
    unsigned long long t = (unsigned long long)llround(s);
    if (t >= 3600)
        snprintf(buf, size, "%lluh %02llum %02llus", t / 3600, t / 60 % 60, t % 60);
    else if (t >= 60)
        snprintf(buf, size, "%llum %02llus", t / 60, t % 60);
    else
        snprintf(buf, size, "%llus", t);
}

static void fmt_bytes(char *buf, size_t size, long long b)
{
    if (b < 0) b = 0;
    if (b >= 1LL << 30)
        snprintf(buf, size, "%.1f GiB", (double)b / (double)(1LL << 30));
    else if (b >= 1LL << 20)
        snprintf(buf, size, "%.1f MiB", (double)b / (double)(1LL << 20));
    else if (b >= 1LL << 10)
        snprintf(buf, size, "%.1f KiB", (double)b / (double)(1LL << 10));
    else
        snprintf(buf, size, "%lld B", b);
}

static void td_ms(html_writer_t *w, double ms)
{
    char v[32];
    acr_report_fmt_ms(v, sizeof v, ms);
    putf(w, "<td class=\"num\">%s</td>", v);
}

static void td_text(html_writer_t *w, const char *s)
{
    put(w, "<td>");
    put_esc(w, s);
    put(w, "</td>");
}

/* ---- the page ---- */

static const char STYLE[] =
    ":root{color-scheme:light dark;--bg:#fff;--fg:#1d2330;--muted:#5b6475;--line:#d9dde5;"
    "--head:#f1f3f7;--accent:#2f6fdd;--ok:#1f8a4c;--bad:#c62828;--warn:#b26a00;--p50:#2f6fdd;"
    "--p95:#b26a00;--p99:#c62828}\n"
    "@media (prefers-color-scheme:dark){:root{--bg:#14171d;--fg:#e3e6ec;--muted:#9aa3b2;"
    "--line:#323845;--head:#1d2129;--accent:#7aa7ff;--ok:#4cc38a;--bad:#ff6b6b;--warn:#f0b429;"
    "--p50:#7aa7ff;--p95:#f0b429;--p99:#ff6b6b}}\n"
    "body{margin:0 auto;max-width:1400px;padding:16px 24px 48px;background:var(--bg);"
    "color:var(--fg);font:14px/1.45 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}\n"
    "h1{font-size:22px;margin:8px 0 4px}h2{font-size:17px;margin:28px 0 8px;"
    "border-bottom:1px solid var(--line);padding-bottom:4px}\n"
    ".muted{color:var(--muted)}a{color:var(--accent)}\n"
    "header{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 24px}"
    "header .download{margin-left:auto}\n"
    ".scroll{overflow-x:auto}\n"
    "table{border-collapse:collapse;width:100%}th,td{padding:4px 8px;text-align:left;"
    "border-bottom:1px solid var(--line);vertical-align:top}\n"
    "th{background:var(--head);font-weight:600;white-space:nowrap}\n"
    "td.num,th.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}\n"
    "tr.total td{font-weight:600}tr.missing td{color:var(--bad)}td.none{color:var(--muted)}\n"
    "table.params{width:auto}table.params th{text-align:left;background:none}\n"
    "pre{margin:0;white-space:pre-wrap;word-break:break-word;font-size:12px}\n"
    ".bad{color:var(--bad)}\n"
    ".chart{margin:12px 0 20px;min-height:40px}.uplot{color:var(--fg)}\n"
    ".u-select{background:rgba(127,127,127,.15)}\n"
    ".uplot table{width:auto}.uplot th,.uplot td{background:none;border:0;padding:0 4px}\n";

static void head(html_writer_t *w, const acr_html_input_t *in)
{
    char start[64], end[64];
    fmt_time(start, sizeof start, in->start_time);
    fmt_time(end, sizeof end, in->end_time);
    put(w, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
           "<meta name=\"color-scheme\" content=\"light dark\">\n<title>acrida report: ");
    put_esc(w, in->scenario ? in->scenario : "test");
    putf(w, " (%s", start);
    if (in->end_time > 0) putf(w, " to %s", end);
    put(w, ")</title>\n");
    const acr_asset_t *css = acr_asset_find("uPlot.min.css");
    if (css) {
        put(w, "<style>\n");
        put_raw_text(w, (const char *)css->data, css->len, "style");
        put(w, "\n</style>\n");
    }
    put(w, "<style>\n");
    put(w, STYLE);
    put(w, "</style>\n</head>\n<body>\n<header>\n<h1>acrida test report</h1>\n<p class=\"muted\">");
    put_esc(w, in->scenario ? in->scenario : "");
    putf(w, " &middot; %s", start);
    if (in->end_time > 0) putf(w, " to %s", end);
    put(w, "</p>\n");
    if (!in->download)
        put(w, "<a class=\"download\" href=\"?download=1\">Download the report</a>\n");
    put(w, "</header>\n");
}

static void param(html_writer_t *w, const char *label, const char *value)
{
    putf(w, "<tr><th>%s</th><td>", label);
    put_esc(w, value);
    put(w, "</td></tr>\n");
}

static void params(html_writer_t *w, const acr_html_input_t *in)
{
    const acr_core_snapshot_t *s = in->snap;
    char v[96];
    put(w, "<section id=\"parameters\">\n<h2>Run parameters</h2>\n<table class=\"params\">\n");
    param(w, "Scenario", in->scenario ? in->scenario : "-");
    param(w, "Host", in->host && *in->host ? in->host : "(each user class's own)");
    snprintf(v, sizeof v, "%ld", in->users);
    param(w, "Users", v);
    snprintf(v, sizeof v, "%g users/s", in->spawn_rate);
    param(w, "Spawn rate", v);
    fmt_time(v, sizeof v, in->start_time);
    param(w, "Start time", v);
    if (in->end_time > 0)
        fmt_time(v, sizeof v, in->end_time);
    else
        snprintf(v, sizeof v, "still running");
    param(w, "End time", v);
    double dur = in->start_time > 0 && in->end_time >= in->start_time
                     ? in->end_time - in->start_time
                     : s->run_time;
    fmt_duration(v, sizeof v, dur);
    param(w, "Duration", v);
    param(w, "Test id", s->test_id[0] ? s->test_id : "-");
    param(w, "State", acr_run_state_name(s->state));
    snprintf(v, sizeof v, "%llu", s->lost_reports);
    putf(w, "<tr><th>Lost report intervals</th><td%s>%s", s->lost_reports ? " class=\"bad\"" : "",
         v);
    if (s->lost_reports) {
        put(w, " (the totals are incomplete:");
        for (size_t i = 0; i < s->nlost; i++) {
            put(w, i ? ", " : " ");
            put_esc(w, s->lost[i].worker);
            putf(w, " lost %llu", s->lost[i].lost);
        }
        put(w, ")");
    }
    put(w, "</td></tr>\n");
    snprintf(v, sizeof v, "%llu", s->reports_merged);
    param(w, "Worker reports merged", v);
    put(w, "</table>\n</section>\n");
}

static void request_row(html_writer_t *w, const acr_stats_entry_t *e,
                        const acr_stats_entry_t *total, bool is_total)
{
    put(w, is_total ? "<tr class=\"total\">" : "<tr>");
    td_text(w, e->method);
    td_text(w, e->name);
    putf(w, "<td class=\"num\">%llu</td><td class=\"num\">%llu</td>",
         (unsigned long long)e->num_requests, (unsigned long long)e->num_failures);
    td_ms(w, acr_stats_avg_ms(e));
    td_ms(w, acr_stats_min_ms(e));
    td_ms(w, acr_stats_max_ms(e));
    td_ms(w, acr_stats_percentile_ms(e, 0.5));
    putf(w, "<td class=\"num\">%.0f</td><td class=\"num\">%.2f</td><td class=\"num\">%.2f</td>",
         acr_stats_avg_content_length(e), acr_stats_total_rps(e, total),
         acr_stats_total_fail_per_sec(e, total));
    put(w, "</tr>\n");
}

static void requests(html_writer_t *w, acr_stats_t *st)
{
    put(w, "<section id=\"requests\">\n<h2>Request statistics</h2>\n<div class=\"scroll\">"
           "<table>\n<thead><tr><th>Type</th><th>Name</th><th class=\"num\"># Requests</th>"
           "<th class=\"num\"># Fails</th><th class=\"num\">Average (ms)</th>"
           "<th class=\"num\">Min (ms)</th><th class=\"num\">Max (ms)</th>"
           "<th class=\"num\">Median (ms)</th><th class=\"num\">Average size (bytes)</th>"
           "<th class=\"num\">RPS</th><th class=\"num\">Failures/s</th></tr></thead>\n<tbody>\n");
    if (st) {
        const acr_stats_entry_t *total = acr_stats_total(st);
        size_t n;
        acr_stats_entry_t *const *v = acr_stats_sorted(st, &n);
        for (size_t i = 0; i < n; i++) request_row(w, v[i], total, false);
        request_row(w, total, total, true);
    }
    put(w, "</tbody>\n</table></div>\n</section>\n");
}

static const double PCTS[] = {0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0};
static const char *const PCT_LABELS[] = {"50%", "60%", "70%",   "80%", "90%",
                                         "95%", "99%", "99.9%", "100%"};

static void percentile_row(html_writer_t *w, const acr_stats_entry_t *e, bool is_total)
{
    put(w, is_total ? "<tr class=\"total\">" : "<tr>");
    td_text(w, e->method);
    td_text(w, e->name);
    for (size_t i = 0; i < ACR_ARRAY_SIZE(PCTS); i++) td_ms(w, acr_stats_percentile_ms(e, PCTS[i]));
    put(w, "</tr>\n");
}

static void percentiles(html_writer_t *w, acr_stats_t *st)
{
    put(w, "<section id=\"percentiles\">\n<h2>Response time percentiles (ms)</h2>\n"
           "<div class=\"scroll\"><table>\n<thead><tr><th>Type</th><th>Name</th>");
    for (size_t i = 0; i < ACR_ARRAY_SIZE(PCT_LABELS); i++)
        putf(w, "<th class=\"num\">%s</th>", PCT_LABELS[i]);
    put(w, "</tr></thead>\n<tbody>\n");
    if (st) {
        size_t n;
        acr_stats_entry_t *const *v = acr_stats_sorted(st, &n);
        for (size_t i = 0; i < n; i++) percentile_row(w, v[i], false);
        percentile_row(w, acr_stats_total(st), true);
    }
    put(w, "</tbody>\n</table></div>\n</section>\n");
}

static void none_row(html_writer_t *w, int cols, const char *what)
{
    putf(w, "<tr><td class=\"none\" colspan=\"%d\">%s</td></tr>\n", cols, what);
}

static void failures(html_writer_t *w, acr_stats_t *st)
{
    put(w, "<section id=\"failures\">\n<h2>Failures</h2>\n<div class=\"scroll\"><table>\n"
           "<thead><tr><th>Method</th><th>Name</th><th>Error</th>"
           "<th class=\"num\">Occurrences</th></tr></thead>\n<tbody>\n");
    size_t n = 0;
    acr_stats_error_t *const *v = st ? acr_stats_errors(st, &n) : NULL;
    for (size_t i = 0; i < n; i++) {
        put(w, "<tr>");
        td_text(w, v[i]->method);
        td_text(w, v[i]->name);
        td_text(w, v[i]->error);
        putf(w, "<td class=\"num\">%llu</td></tr>\n", (unsigned long long)v[i]->occurrences);
    }
    if (n == 0) none_row(w, 4, "No failures");
    put(w, "</tbody>\n</table></div>\n</section>\n");
}

static void exceptions(html_writer_t *w, acr_stats_t *st)
{
    put(w, "<section id=\"exceptions\">\n<h2>Exceptions</h2>\n<div class=\"scroll\"><table>\n"
           "<thead><tr><th class=\"num\">Count</th><th>Message</th><th>Traceback</th>"
           "<th>Nodes</th></tr></thead>\n<tbody>\n");
    size_t n = 0;
    acr_stats_exception_t *const *v = st ? acr_stats_exceptions(st, &n) : NULL;
    for (size_t i = 0; i < n; i++) {
        putf(w, "<tr><td class=\"num\">%llu</td>", (unsigned long long)v[i]->count);
        td_text(w, v[i]->msg);
        put(w, "<td><pre>");
        put_esc(w, v[i]->traceback);
        put(w, "</pre></td>");
        td_text(w, v[i]->nodes);
        put(w, "</tr>\n");
    }
    if (n == 0) none_row(w, 4, "No exceptions");
    put(w, "</tbody>\n</table></div>\n</section>\n");
}

static void workers(html_writer_t *w, const acr_core_snapshot_t *s)
{
    put(w, "<section id=\"workers\">\n<h2>Workers</h2>\n<div class=\"scroll\"><table>\n"
           "<thead><tr><th>ID</th><th>Host</th><th>State</th><th class=\"num\">Users</th>"
           "<th class=\"num\">CPU</th><th class=\"num\">Memory</th></tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < s->nworkers; i++) {
        const acr_core_worker_t *k = &s->workers[i];
        char mem[32];
        fmt_bytes(mem, sizeof mem, k->memory_usage);
        bool missing = k->state && strcmp(k->state, "missing") == 0;
        put(w, missing ? "<tr class=\"missing\">" : "<tr>");
        td_text(w, k->id);
        td_text(w, k->host);
        td_text(w, k->state);
        putf(w, "<td class=\"num\">%ld</td><td class=\"num\">%.1f %%</td><td class=\"num\">%s</td>",
             k->user_count, isfinite(k->cpu_usage) ? k->cpu_usage : 0.0, mem);
        put(w, "</tr>\n");
    }
    if (s->nworkers == 0) none_row(w, 6, "No workers");
    put(w, "</tbody>\n</table></div>\n</section>\n");
}

/* The charts: uPlot over the samples of the JSON block, colours from the page's CSS variables. */
static const char CHARTS_JS[] =
    "(function () {\n"
    "  \"use strict\";\n"
    "  var note = document.getElementById(\"charts-note\");\n"
    "  var data = JSON.parse(document.getElementById(\"acr-history\").textContent);\n"
    "  if (!data.length) { note.textContent = \"No samples were taken.\"; return; }\n"
    "  if (typeof uPlot === \"undefined\") {\n"
    "    note.textContent = \"The charting library is missing from this build of acrida.\";\n"
    "    return;\n"
    "  }\n"
    "  var css = getComputedStyle(document.documentElement);\n"
    "  function v(name) { return css.getPropertyValue(name).trim(); }\n"
    "  function col(k) { return data.map(function (s) { return s[k]; }); }\n"
    "  function axis(label) {\n"
    "    return {stroke: v(\"--fg\"), label: label, grid: {stroke: v(\"--line\"), width: 1},\n"
    "            ticks: {stroke: v(\"--line\"), width: 1}};\n"
    "  }\n"
    "  var t = col(\"time\"), charts = [];\n"
    "  function width(el) { return Math.max(el.clientWidth, 320); }\n"
    "  function chart(id, title, unit, series) {\n"
    "    var el = document.getElementById(id);\n"
    "    var opts = {title: title, width: width(el), height: 280, scales: {x: {time: true}},\n"
    "      axes: [axis(\"\"), axis(unit)],\n"
    "      series: [{}].concat(series.map(function (s) {\n"
    "        return {label: s[1], stroke: v(s[2]), width: 2};\n"
    "      }))};\n"
    "    var cols = [t].concat(series.map(function (s) { return col(s[0]); }));\n"
    "    charts.push([new uPlot(opts, cols, el), el]);\n"
    "  }\n"
    "  chart(\"chart-rps\", \"Total requests per second\", \"per second\",\n"
    "        [[\"rps\", \"RPS\", \"--ok\"], [\"fail_per_sec\", \"Failures/s\", \"--bad\"]]);\n"
    "  chart(\"chart-rt\", \"Response times (ms)\", \"ms\",\n"
    "        [[\"p50\", \"p50\", \"--p50\"], [\"p95\", \"p95\", \"--p95\"], "
    "[\"p99\", \"p99\", \"--p99\"]]);\n"
    "  chart(\"chart-users\", \"Number of users\", \"users\", [[\"users\", \"Users\", "
    "\"--accent\"]]);\n"
    "  window.addEventListener(\"resize\", function () {\n"
    "    charts.forEach(function (c) { c[0].setSize({width: width(c[1]), height: 280}); });\n"
    "  });\n"
    "})();\n";

static void charts(html_writer_t *w, const acr_html_input_t *in)
{
    put(w, "<section id=\"charts\">\n<h2>Charts</h2>\n<p class=\"muted\" id=\"charts-note\">");
    if (in->history)
        putf(w, "The whole test, one sample every %g s (current values: the last 10 s).",
             acr_history_step(in->history));
    else
        put(w, "No chart history was kept.");
    put(w, "</p>\n<div class=\"chart\" id=\"chart-rps\"></div>\n"
           "<div class=\"chart\" id=\"chart-rt\"></div>\n"
           "<div class=\"chart\" id=\"chart-users\"></div>\n</section>\n"
           "<script type=\"application/json\" id=\"acr-history\">");
    acr_buf_t json = {0};
    int rc = acr_history_json(in->history, &json);
    if (rc < 0)
        w->rc = rc;
    else
        put_script_json(w, json.data, json.len);
    acr_buf_free(&json);
    put(w, "</script>\n");
    const acr_asset_t *js = acr_asset_find("uPlot.iife.min.js");
    if (js) {
        put(w, "<script>\n");
        put_raw_text(w, (const char *)js->data, js->len, "script");
        put(w, "\n</script>\n");
    }
    put(w, "<script>\n");
    put(w, CHARTS_JS);
    put(w, "</script>\n");
}

int acr_html_report(const acr_html_input_t *in, acr_buf_t *out)
{
    html_writer_t w = {.b = out};
    size_t start = out->len;
    acr_stats_t *st = in->snap->stats;
    head(&w, in);
    params(&w, in);
    requests(&w, st);
    percentiles(&w, st);
    failures(&w, st);
    exceptions(&w, st);
    workers(&w, in->snap);
    charts(&w, in);
    put(&w, "<footer class=\"muted\"><p>acrida ");
    put_esc(&w, ACR_VERSION);
    put(&w, "</p></footer>\n</body>\n</html>\n");
    if (w.rc < 0) {
        out->len = start;
        if (out->data) out->data[start] = 0;
        return -ENOMEM;
    }
    return 0;
}

int acr_html_write(const acr_html_input_t *in, const char *path)
{
    acr_html_input_t file = *in;
    file.download = true; /* a file on disk has nothing to download from */
    acr_buf_t b = {0};
    int rc = acr_html_report(&file, &b);
    if (rc < 0) {
        ACR_ERROR("cannot build the HTML report: %s", strerror(-rc));
    } else {
        rc = acr_write_file_atomic(path, b.data ? b.data : "", b.len);
        if (rc < 0) ACR_ERROR("cannot write the HTML report %s: %s", path, strerror(-rc));
    }
    acr_buf_free(&b);
    return rc;
}
