/*
 * Writers of aggregated statistics (report.h): the headless console tables (Locust's layout), the
 * Locust-format CSV files and the /stats/requests JSON document.
 *
 * Number formatting has two rules, shared by every writer:
 *   - response times in ms: integers from 1 ms up, two decimals below ("0.42"), "0" for zero;
 *   - other floats (averages, rates, JSON reals): Python's repr, the shortest string that reads
 *     back as the same double ("70.0", "3.7807597755311115").
 */
#include "master/report.h"

#include "master/pools.h"

#include "common/log.h"
#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TYPE_W 8
#define NAME_W 80 /* Locust's STATS_NAME_WIDTH when stdout is not a terminal */
#define MAX_JSON_ROWS 500

static const double PCTS[] = {0.50, 0.66, 0.75, 0.80, 0.90, 0.95, 0.98, 0.99, 0.999, 0.9999, 1.0};
static const char *const PCT_LABELS[] = {"50%", "66%", "75%",   "80%",    "90%", "95%",
                                         "98%", "99%", "99.9%", "99.99%", "100%"};
#define NPCTS (sizeof(PCTS) / sizeof(PCTS[0]))

/* ---- number formatting ---- */

void acr_report_fmt_ms(char *buf, size_t size, double ms)
{
    if (ms == 0 || !isfinite(ms))
        snprintf(buf, size, "0");
    else if (fabs(ms) < 0.995) /* would print as 1.00 with two decimals */
        snprintf(buf, size, "%.2f", ms);
    else
        snprintf(buf, size, "%.0f", ms);
}

void acr_report_fmt_float(char *buf, size_t size, double v)
{
    if (isnan(v)) {
        snprintf(buf, size, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v < 0 ? "-inf" : "inf");
        return;
    }
    if (v == 0) {
        snprintf(buf, size, signbit(v) ? "-0.0" : "0.0");
        return;
    }
    /* Shortest round-trip digits: "%.*e" with increasing precision (17 digits always suffice). */
    char tmp[40];
    for (int prec = 0; prec <= 16; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    /* tmp = [-]d[.ddd]e(+|-)xx: split into sign, digits and decimal exponent. */
    const char *p = tmp;
    bool neg = *p == '-';
    if (neg) p++;
    char digits[24];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.' && nd < sizeof(digits) - 1) digits[nd++] = *p;
    digits[nd] = '\0';
    int exp = *p == 'e' ? atoi(p + 1) : 0;

    char out[48];
    size_t k = 0;
    if (neg) out[k++] = '-';
    if (exp >= -4 && exp < 16) { /* Python's repr switches to exponent notation outside this */
        if (exp >= 0) {
            for (int i = 0; i <= exp; i++) out[k++] = (size_t)i < nd ? digits[i] : '0';
            out[k++] = '.';
            if ((size_t)exp + 1 < nd)
                for (size_t i = (size_t)exp + 1; i < nd; i++) out[k++] = digits[i];
            else
                out[k++] = '0';
        } else {
            out[k++] = '0';
            out[k++] = '.';
            for (int i = 0; i < -exp - 1; i++) out[k++] = '0';
            for (size_t i = 0; i < nd; i++) out[k++] = digits[i];
        }
        out[k] = '\0';
    } else {
        out[k++] = digits[0];
        if (nd > 1) {
            out[k++] = '.';
            for (size_t i = 1; i < nd; i++) out[k++] = digits[i];
        }
        snprintf(out + k, sizeof(out) - k, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
    }
    snprintf(buf, size, "%s", out);
}

static int check_file(FILE *f)
{
    return ferror(f) ? -EIO : 0;
}

/* ---- console ---- */

static void dashes(FILE *f, int n)
{
    for (int i = 0; i < n; i++) fputc('-', f);
}

/* After a cell of @used bytes, spaces up to @width (printf's "%-*s" for an escaped cell: entry
 * names and methods come from workers, so the console shows them through acr_log_escape_file()). */
static void pad(FILE *f, size_t used, int width)
{
    for (size_t i = used; i < (size_t)width; i++) fputc(' ', f);
}

static void stats_separator(FILE *f)
{
    static const int widths[] = {TYPE_W, NAME_W - TYPE_W + 4, 7, 13, 7, 7, 7, 7, 8, 11};
    for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
        if (i) fputc('|', f);
        dashes(f, widths[i]);
    }
    fputc('\n', f);
}

static void stats_row(FILE *f, const acr_stats_entry_t *e, const acr_stats_entry_t *total,
                      bool current)
{
    char fails[48], avg[32], min[32], max[32], med[32];
    snprintf(fails, sizeof(fails), "%llu(%.2f%%)", (unsigned long long)e->num_failures,
             acr_stats_fail_ratio(e) * 100);
    acr_report_fmt_ms(avg, sizeof(avg), acr_stats_avg_ms(e));
    acr_report_fmt_ms(min, sizeof(min), acr_stats_min_ms(e));
    acr_report_fmt_ms(max, sizeof(max), acr_stats_max_ms(e));
    acr_report_fmt_ms(med, sizeof(med), acr_stats_percentile_ms(e, 0.5));
    double rps = current ? acr_stats_current_rps(e, total) : acr_stats_total_rps(e, total);
    double fps =
        current ? acr_stats_current_fail_per_sec(e, total) : acr_stats_total_fail_per_sec(e, total);
    size_t w = acr_log_escape_file(f, e->method);
    if (e->method[0]) {
        fputc(' ', f);
        w++;
    }
    pad(f, w, TYPE_W);
    fputc(' ', f);
    pad(f, acr_log_escape_file(f, e->name), NAME_W - TYPE_W + 4);
    fprintf(f, " %7llu %12s |%7s %7s %7s%7s | %7.2f %11.2f\n", (unsigned long long)e->num_requests,
            fails, avg, min, max, med, rps, fps);
}

int acr_report_console_stats(FILE *f, acr_stats_t *s, bool current)
{
    const acr_stats_entry_t *total = acr_stats_total(s);
    fprintf(f, "%-*s %-*s %7s %12s |%7s %7s %7s%7s | %7s %11s\n", TYPE_W, "Type",
            NAME_W - TYPE_W + 4, "Name", "# reqs", "# fails", "Avg", "Min", "Max", "Med", "req/s",
            "failures/s");
    stats_separator(f);
    size_t n;
    acr_stats_entry_t *const *v = acr_stats_sorted(s, &n);
    for (size_t i = 0; i < n; i++) stats_row(f, v[i], total, current);
    stats_separator(f);
    stats_row(f, total, total, current);
    fputc('\n', f);
    return check_file(f);
}

static void pct_separator(FILE *f)
{
    dashes(f, TYPE_W);
    fputc('|', f);
    dashes(f, NAME_W);
    fputc('|', f);
    dashes(f, 8);
    for (size_t i = 0; i < NPCTS; i++) {
        fputc('|', f);
        dashes(f, 6);
    }
    fputc('\n', f);
}

static void pct_row(FILE *f, const acr_stats_entry_t *e)
{
    pad(f, acr_log_escape_file(f, e->method), TYPE_W);
    fputc(' ', f);
    pad(f, acr_log_escape_file(f, e->name), NAME_W);
    for (size_t i = 0; i < NPCTS; i++) {
        char v[32];
        acr_report_fmt_ms(v, sizeof(v), acr_stats_percentile_ms(e, PCTS[i]));
        fprintf(f, " %*s", i == 0 ? 8 : 6, v);
    }
    fprintf(f, " %6llu\n", (unsigned long long)e->num_requests);
}

int acr_report_console_percentiles(FILE *f, acr_stats_t *s)
{
    fprintf(f, "Response time percentiles (approximated)\n");
    fprintf(f, "%-*s %-*s", TYPE_W, "Type", NAME_W, "Name");
    for (size_t i = 0; i < NPCTS; i++) fprintf(f, " %*s", i == 0 ? 8 : 6, PCT_LABELS[i]);
    fprintf(f, " %6s\n", "# reqs");
    pct_separator(f);
    size_t n;
    acr_stats_entry_t *const *v = acr_stats_sorted(s, &n);
    for (size_t i = 0; i < n; i++)
        if (v[i]->hist.count) pct_row(f, v[i]);
    pct_separator(f);
    if (acr_stats_total(s)->hist.count) pct_row(f, acr_stats_total(s));
    fputc('\n', f);
    return check_file(f);
}

int acr_report_console_failures(FILE *f, acr_stats_t *s)
{
    size_t n;
    acr_stats_error_t *const *errs = acr_stats_errors(s, &n);
    if (n == 0) return 0;
    fprintf(f, "Error report\n");
    fprintf(f, "%-18s %s\n", "# occurrences", "Error");
    int sep = 80 + NAME_W - 19;
    dashes(f, 18);
    fputc('|', f);
    dashes(f, sep);
    fputc('\n', f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%-18llu ", (unsigned long long)errs[i]->occurrences);
        acr_log_escape_file(f, errs[i]->method);
        fputc(' ', f);
        acr_log_escape_file(f, errs[i]->name);
        fputs(": ", f);
        acr_log_escape_file(f, errs[i]->error);
        fputc('\n', f);
    }
    dashes(f, 18);
    fputc('|', f);
    dashes(f, sep);
    fputs("\n\n", f);
    return check_file(f);
}

int acr_report_console_exceptions(FILE *f, acr_stats_t *s)
{
    size_t n;
    acr_stats_exception_t *const *ex = acr_stats_exceptions(s, &n);
    if (n == 0) return 0;
    fprintf(f, "Exception report\n");
    fprintf(f, "%-10s %s\n", "# count", "Message / traceback");
    dashes(f, 10);
    fputc('|', f);
    dashes(f, 80 + NAME_W - 11);
    fputc('\n', f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%-10llu ", (unsigned long long)ex[i]->count);
        acr_log_escape_file(f, ex[i]->msg);
        fputc('\n', f);
        /* a traceback keeps its lines, indented (never at the start of a line, where it could
         * read as a log record on stderr), each escaped */
        const char *line = ex[i]->traceback;
        while (*line) {
            const char *end = strchr(line, '\n');
            size_t len = end ? (size_t)(end - line) : strlen(line);
            fprintf(f, "%-10s ", "");
            acr_log_escape_filen(f, line, len);
            fputc('\n', f);
            line += len + (end ? 1 : 0);
        }
        if (ex[i]->nodes[0]) {
            fprintf(f, "%-10s (nodes: ", "");
            acr_log_escape_file(f, ex[i]->nodes);
            fputs(")\n", f);
        }
    }
    dashes(f, 10);
    fputc('|', f);
    dashes(f, 80 + NAME_W - 11);
    fputs("\n\n", f);
    return check_file(f);
}

int acr_report_console_lost(FILE *f, unsigned long long lost)
{
    if (lost == 0) return 0;
    fprintf(f,
            "Lost report intervals: %llu (reports of killed or vanished workers never arrived: the "
            "totals above are incomplete)\n\n",
            lost);
    return check_file(f);
}

int acr_report_console_aborted(FILE *f, acr_stats_t *s)
{
    const acr_stats_entry_t *total = acr_stats_total(s);
    if (total->num_aborted == 0) return 0;
    fprintf(f,
            "Aborted at stop: %llu requests were still in flight when the stop's grace ran out "
            "(not counted as requests or failures)\n",
            (unsigned long long)total->num_aborted);
    fprintf(f, "%-*s %-*s %9s\n", TYPE_W, "Type", NAME_W - TYPE_W + 4, "Name", "# aborted");
    dashes(f, NAME_W + 15);
    fputc('\n', f);
    size_t n;
    acr_stats_entry_t *const *v = acr_stats_sorted(s, &n);
    for (size_t i = 0; i < n; i++) {
        if (!v[i]->num_aborted) continue;
        fprintf(f, "%-*s %-*s %9llu\n", TYPE_W, v[i]->method, NAME_W - TYPE_W + 4, v[i]->name,
                (unsigned long long)v[i]->num_aborted);
    }
    dashes(f, NAME_W + 15);
    fprintf(f, "\n%-*s %-*s %9llu\n\n", TYPE_W, "", NAME_W - TYPE_W + 4, "Aggregated",
            (unsigned long long)total->num_aborted);
    return check_file(f);
}

/* ---- CSV ---- */

/* Writes one field with Python csv's minimal quoting, preceded by a comma unless @first. */
static void csv_field(FILE *f, const char *s, bool first)
{
    if (!first) fputc(',', f);
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_row(FILE *f, const char *const *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) csv_field(f, fields[i], i == 0);
    fputs("\r\n", f);
}

static const char *const STATS_COLS[] = {"Type",
                                         "Name",
                                         "Request Count",
                                         "Failure Count",
                                         "Median Response Time",
                                         "Average Response Time",
                                         "Min Response Time",
                                         "Max Response Time",
                                         "Average Content Size",
                                         "Requests/s",
                                         "Failures/s"};

#define NUM_W 40 /* buffer size of one formatted number */

/* Formats the percentile columns of @e into @out (N/A without requests). */
static void csv_percentiles(const acr_stats_entry_t *e, char out[][NUM_W])
{
    for (size_t i = 0; i < NPCTS; i++) {
        if (e->num_requests == 0)
            snprintf(out[i], NUM_W, "N/A");
        else
            acr_report_fmt_ms(out[i], NUM_W, acr_stats_percentile_ms(e, PCTS[i]));
    }
}

static void fmt_u64(char *buf, uint64_t v)
{
    snprintf(buf, NUM_W, "%llu", (unsigned long long)v);
}

/* Average content size: a Python float, or int 0 without requests. */
static void fmt_avg_size(char *buf, const acr_stats_entry_t *e)
{
    if (e->num_requests == 0)
        snprintf(buf, NUM_W, "0");
    else
        acr_report_fmt_float(buf, NUM_W, acr_stats_avg_content_length(e));
}

static void csv_stats_row(FILE *f, const acr_stats_entry_t *e, const acr_stats_entry_t *total)
{
    char num[11][NUM_W], pct[NPCTS][NUM_W];
    const char *fields[11 + NPCTS];
    fields[0] = e->method;
    fields[1] = e->name;
    fmt_u64(num[2], e->num_requests);
    fmt_u64(num[3], e->num_failures);
    acr_report_fmt_ms(num[4], NUM_W, acr_stats_percentile_ms(e, 0.5));
    acr_report_fmt_float(num[5], NUM_W, acr_stats_avg_ms(e));
    acr_report_fmt_ms(num[6], NUM_W, acr_stats_min_ms(e));
    acr_report_fmt_ms(num[7], NUM_W, acr_stats_max_ms(e));
    fmt_avg_size(num[8], e);
    acr_report_fmt_float(num[9], NUM_W, acr_stats_total_rps(e, total));
    acr_report_fmt_float(num[10], NUM_W, acr_stats_total_fail_per_sec(e, total));
    for (size_t i = 2; i < 11; i++) fields[i] = num[i];
    csv_percentiles(e, pct);
    for (size_t i = 0; i < NPCTS; i++) fields[11 + i] = pct[i];
    csv_row(f, fields, 11 + NPCTS);
}

int acr_report_csv_stats(FILE *f, acr_stats_t *s)
{
    const char *hdr[11 + NPCTS];
    for (size_t i = 0; i < 11; i++) hdr[i] = STATS_COLS[i];
    for (size_t i = 0; i < NPCTS; i++) hdr[11 + i] = PCT_LABELS[i];
    csv_row(f, hdr, 11 + NPCTS);
    size_t n;
    acr_stats_entry_t *const *v = acr_stats_sorted(s, &n);
    const acr_stats_entry_t *total = acr_stats_total(s);
    for (size_t i = 0; i < n; i++) csv_stats_row(f, v[i], total);
    csv_stats_row(f, total, total);
    return check_file(f);
}

int acr_report_csv_failures(FILE *f, acr_stats_t *s)
{
    static const char *const hdr[] = {"Method", "Name", "Error", "Occurrences"};
    csv_row(f, hdr, 4);
    size_t n;
    acr_stats_error_t *const *errs = acr_stats_errors(s, &n);
    for (size_t i = 0; i < n; i++) {
        char occ[NUM_W];
        fmt_u64(occ, errs[i]->occurrences);
        const char *row[] = {errs[i]->method, errs[i]->name, errs[i]->error, occ};
        csv_row(f, row, 4);
    }
    return check_file(f);
}

int acr_report_csv_exceptions(FILE *f, acr_stats_t *s)
{
    static const char *const hdr[] = {"Count", "Message", "Traceback", "Nodes"};
    csv_row(f, hdr, 4);
    size_t n;
    acr_stats_exception_t *const *ex = acr_stats_exceptions(s, &n);
    for (size_t i = 0; i < n; i++) {
        char count[NUM_W];
        fmt_u64(count, ex[i]->count);
        const char *row[] = {count, ex[i]->msg, ex[i]->traceback, ex[i]->nodes};
        csv_row(f, row, 4);
    }
    return check_file(f);
}

int acr_report_csv_lost(FILE *f, const acr_report_lost_t *rows, size_t n, unsigned long long total)
{
    static const char *const hdr[] = {"Worker", "Lost Report Intervals"};
    char count[NUM_W];
    csv_row(f, hdr, 2);
    for (size_t i = 0; i < n; i++) {
        snprintf(count, sizeof count, "%llu", rows[i].lost);
        const char *row[] = {rows[i].worker, count};
        csv_row(f, row, 2);
    }
    snprintf(count, sizeof count, "%llu", total);
    const char *row[] = {"Aggregated", count};
    csv_row(f, row, 2);
    return check_file(f);
}

int acr_report_csv_aborted(FILE *f, acr_stats_t *s)
{
    static const char *const hdr[] = {"Type", "Name", "Aborted At Stop"};
    char count[NUM_W];
    csv_row(f, hdr, 3);
    size_t n;
    acr_stats_entry_t *const *v = acr_stats_sorted(s, &n);
    for (size_t i = 0; i < n; i++) {
        if (!v[i]->num_aborted) continue;
        fmt_u64(count, v[i]->num_aborted);
        const char *row[] = {v[i]->method, v[i]->name, count};
        csv_row(f, row, 3);
    }
    fmt_u64(count, acr_stats_total(s)->num_aborted);
    const char *row[] = {"", "Aggregated", count};
    csv_row(f, row, 3);
    return check_file(f);
}

int acr_report_csv_history_header(FILE *f)
{
    static const char *const pre[] = {"Timestamp", "User Count", "Type",
                                      "Name",      "Requests/s", "Failures/s"};
    static const char *const post[] = {"Total Request Count",        "Total Failure Count",
                                       "Total Median Response Time", "Total Average Response Time",
                                       "Total Min Response Time",    "Total Max Response Time",
                                       "Total Average Content Size"};
    const char *hdr[6 + NPCTS + 7];
    size_t k = 0;
    for (size_t i = 0; i < 6; i++) hdr[k++] = pre[i];
    for (size_t i = 0; i < NPCTS; i++) hdr[k++] = PCT_LABELS[i];
    for (size_t i = 0; i < 7; i++) hdr[k++] = post[i];
    csv_row(f, hdr, k);
    return check_file(f);
}

static void csv_history_row(FILE *f, const acr_stats_entry_t *e, const acr_stats_entry_t *total,
                            long user_count, long ts)
{
    char pre[6][NUM_W], pct[NPCTS][NUM_W], post[7][NUM_W];
    const char *fields[6 + NPCTS + 7];
    size_t k = 0;
    snprintf(pre[0], NUM_W, "%ld", ts);
    snprintf(pre[1], NUM_W, "%ld", user_count);
    snprintf(pre[4], NUM_W, "%.6f", acr_stats_current_rps(e, total));
    snprintf(pre[5], NUM_W, "%.6f", acr_stats_current_fail_per_sec(e, total));
    fields[k++] = pre[0];
    fields[k++] = pre[1];
    fields[k++] = e->method;
    fields[k++] = e->name;
    fields[k++] = pre[4];
    fields[k++] = pre[5];
    csv_percentiles(e, pct);
    for (size_t i = 0; i < NPCTS; i++) fields[k++] = pct[i];
    fmt_u64(post[0], e->num_requests);
    fmt_u64(post[1], e->num_failures);
    acr_report_fmt_ms(post[2], NUM_W, acr_stats_percentile_ms(e, 0.5));
    acr_report_fmt_float(post[3], NUM_W, acr_stats_avg_ms(e));
    acr_report_fmt_ms(post[4], NUM_W, acr_stats_min_ms(e));
    acr_report_fmt_ms(post[5], NUM_W, acr_stats_max_ms(e));
    fmt_avg_size(post[6], e);
    for (size_t i = 0; i < 7; i++) fields[k++] = post[i];
    csv_row(f, fields, k);
}

int acr_report_csv_history_rows(FILE *f, acr_stats_t *s, long user_count, long ts, bool full)
{
    const acr_stats_entry_t *total = acr_stats_total(s);
    if (full) {
        size_t n;
        acr_stats_entry_t *const *v = acr_stats_sorted(s, &n);
        for (size_t i = 0; i < n; i++) csv_history_row(f, v[i], total, user_count, ts);
    }
    csv_history_row(f, total, total, user_count, ts);
    return check_file(f);
}

/* ---- JSON ---- */

char *acr_report_html_escape(const char *s, bool quote)
{
    size_t len = 0;
    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '&':
            len += 5;
            break;
        case '<':
        case '>':
            len += 4;
            break;
        case '"':
            len += quote ? 6 : 1;
            break;
        case '\'':
            len += quote ? 6 : 1;
            break;
        default:
            len++;
        }
    }
    char *out = malloc(len + 1), *o = out;
    if (!out) return NULL;
    for (const char *p = s; *p; p++) {
        const char *rep = NULL;
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
            rep = quote ? "&quot;" : NULL;
            break;
        case '\'':
            rep = quote ? "&#x27;" : NULL;
            break;
        default:
            break;
        }
        if (rep) {
            size_t n = strlen(rep);
            memcpy(o, rep, n);
            o += n;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

/* json_real that never fails on non-finite values (they become null). */
static json_t *jreal(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* A number that Locust shows as int 0 when there is no data and as a float otherwise. */
static json_t *jreal_or_zero(bool have, double v)
{
    return have ? jreal(v) : json_integer(0);
}

/* json_string that accepts invalid UTF-8 (from the network or a script): offending text has its
 * non-ASCII bytes replaced by '?'. NULL only on ENOMEM. */
static json_t *jstr(const char *s)
{
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

static json_t *jstr_or_null(const char *s)
{
    return s ? jstr(s) : json_null();
}

/* Sets @key to @v, stealing it even on failure (jansson frees @v when @o is NULL); sets *@err
 * when either is NULL (an allocation failed). */
static void jset(json_t *o, const char *key, json_t *v, int *err)
{
    if (json_object_set_new(o, key, v) < 0) *err = 1;
}

static void jappend(json_t *a, json_t *v, int *err)
{
    if (json_array_append_new(a, v) < 0) *err = 1;
}

static json_t *json_stats_row(const acr_stats_entry_t *e, const acr_stats_entry_t *total)
{
    int err = 0;
    json_t *o = json_object();
    bool have = e->hist.count > 0;
    bool any = total->last_request_ts > 0;
    char *safe = acr_report_html_escape(e->name, false);
    /* Locust's Aggregated entry has no method: null, as its /stats/requests and dashboard expect */
    jset(o, "method", e == total ? json_null() : jstr(e->method), &err);
    jset(o, "name", jstr(e->name), &err);
    jset(o, "safe_name", safe ? jstr(safe) : NULL, &err);
    free(safe);
    jset(o, "num_requests", json_integer((json_int_t)e->num_requests), &err);
    jset(o, "num_failures", json_integer((json_int_t)e->num_failures), &err);
    jset(o, "aborted_at_stop", json_integer((json_int_t)e->num_aborted), &err);
    jset(o, "avg_response_time", jreal(acr_stats_avg_ms(e)), &err);
    jset(o, "min_response_time", jreal_or_zero(have, acr_stats_min_ms(e)), &err);
    jset(o, "max_response_time", jreal(acr_stats_max_ms(e)), &err);
    jset(o, "current_rps", jreal_or_zero(any, acr_stats_current_rps(e, total)), &err);
    jset(o, "current_fail_per_sec", jreal_or_zero(any, acr_stats_current_fail_per_sec(e, total)),
         &err);
    jset(o, "median_response_time", jreal_or_zero(have, acr_stats_percentile_ms(e, 0.5)), &err);
    jset(o, "ninetieth_response_time", jreal_or_zero(have, acr_stats_percentile_ms(e, 0.9)), &err);
    jset(o, "ninety_ninth_response_time", jreal_or_zero(have, acr_stats_percentile_ms(e, 0.99)),
         &err);
    jset(o, "avg_content_length",
         jreal_or_zero(e->num_requests > 0, acr_stats_avg_content_length(e)), &err);
    json_t *pcts = json_object();
    for (size_t i = 0; i < NPCTS; i++) {
        char key[16];
        snprintf(key, sizeof(key), "%.*s", (int)strlen(PCT_LABELS[i]) - 1, PCT_LABELS[i]);
        jset(pcts, key, jreal_or_zero(have, acr_stats_percentile_ms(e, PCTS[i])), &err);
    }
    jset(o, "response_time_percentiles", pcts, &err);
    if (err) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *json_errors(acr_stats_t *s)
{
    int err = 0;
    json_t *a = json_array();
    size_t n;
    acr_stats_error_t *const *errs = acr_stats_errors(s, &n);
    for (size_t i = 0; i < n && i < MAX_JSON_ROWS; i++) {
        json_t *o = json_object();
        char *text = acr_report_html_escape(errs[i]->error, true);
        char *name = acr_report_html_escape(errs[i]->name, true);
        jset(o, "error", text ? jstr(text) : NULL, &err);
        jset(o, "method", jstr(errs[i]->method), &err);
        jset(o, "name", name ? jstr(name) : NULL, &err);
        jset(o, "occurrences", json_integer((json_int_t)errs[i]->occurrences), &err);
        free(text);
        free(name);
        jappend(a, o, &err);
    }
    if (err) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static json_t *json_workers(const acr_report_meta_t *meta)
{
    int err = 0;
    json_t *a = json_array();
    for (size_t i = 0; meta && i < meta->nworkers; i++) {
        const acr_core_worker_t *w = &meta->workers[i];
        json_t *o = json_object();
        jset(o, "id", jstr_or_null(w->id), &err);
        jset(o, "host", jstr_or_null(w->host), &err);
        jset(o, "state", jstr_or_null(w->state), &err);
        jset(o, "user_count", json_integer(w->user_count), &err);
        jset(o, "cpu_usage", jreal(w->cpu_usage), &err);
        jset(o, "memory_usage", json_integer(w->memory_usage), &err);
        jset(o, "last_heartbeat_age", jreal(w->heartbeat_age), &err);
        jappend(a, o, &err);
    }
    if (err) {
        json_decref(a);
        return NULL;
    }
    return a;
}

int acr_report_pythonic_json(acr_buf_t *b, const char *in)
{
    const char *p = in;
    int rc = 0;
    while (rc == 0 && *p) {
        const char *start = p;
        if (*p == '"') { /* a string: verbatim, except \uXXXX in lower case like Python */
            for (p++; *p && *p != '"'; p++)
                if (*p == '\\' && p[1]) p++;
            if (*p) p++;
            size_t at = b->len;
            rc = acr_buf_append(b, start, (size_t)(p - start));
            for (size_t i = at; rc == 0 && i + 1 < b->len; i++) {
                if (b->data[i] != '\\') continue;
                if (b->data[i + 1] == 'u')
                    for (size_t k = i + 2; k < i + 6 && k < b->len; k++)
                        b->data[k] = (char)tolower((unsigned char)b->data[k]);
                i++; /* skip the escaped character */
            }
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            bool real = false;
            for (; *p && strchr("+-0123456789.eE", *p); p++)
                if (*p == '.' || *p == 'e' || *p == 'E') real = true;
            size_t n = (size_t)(p - start);
            if (real && n < 64) {
                char tok[64], rep[NUM_W];
                memcpy(tok, start, n);
                tok[n] = '\0';
                acr_report_fmt_float(rep, sizeof(rep), strtod(tok, NULL));
                rc = acr_buf_append(b, rep, strlen(rep));
            } else {
                rc = acr_buf_append(b, start, n);
            }
        } else {
            p++;
            rc = acr_buf_append(b, start, 1);
        }
    }
    return rc == 0 ? acr_buf_putc(b, '\n') : rc;
}

/* The data pools' counts (acrida's extension). */
static json_t *json_pools(const acr_report_meta_t *meta)
{
    int err = 0;
    json_t *o = json_object();
    for (size_t i = 0; i < meta->npools; i++) {
        const acr_pool_stat_t *p = &meta->pools[i];
        json_t *e = json_object();
        jset(e, "size", json_integer((json_int_t)p->size), &err);
        jset(e, "available", json_integer((json_int_t)p->available), &err);
        jset(e, "leased", json_integer((json_int_t)p->leased), &err);
        jset(e, "waiting", json_integer((json_int_t)p->waiting), &err);
        jset(o, p->name, e, &err);
    }
    if (err) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The load shape's current target, or null (acrida's extension). */
static json_t *json_shape(const acr_report_meta_t *meta)
{
    if (!meta || !meta->have_shape) return json_null();
    int err = 0;
    json_t *o = json_object();
    jset(o, "users", json_integer(meta->shape_users), &err);
    jset(o, "spawn_rate", jreal(meta->shape_rate), &err);
    jset(o, "stage", meta->shape_stage > 0 ? json_integer(meta->shape_stage) : json_null(), &err);
    if (err) {
        json_decref(o);
        return NULL;
    }
    return o;
}

char *acr_report_json(acr_stats_t *s, const acr_report_meta_t *meta)
{
    int err = 0;
    char *dump = NULL, *out = NULL;
    const acr_stats_entry_t *total = acr_stats_total(s);
    bool have = total->hist.count > 0;
    json_t *doc = json_object();

    const acr_hist_t *cur = meta && meta->current ? meta->current : NULL;
    bool have_cur = cur ? cur->count > 0 : have;
    jset(doc, "current_response_time_percentile_50",
         have_cur ? jreal(cur ? acr_hist_percentile(cur, 0.5) / 1000.0
                              : acr_stats_percentile_ms(total, 0.5))
                  : json_null(),
         &err);
    jset(doc, "current_response_time_percentile_95",
         have_cur ? jreal(cur ? acr_hist_percentile(cur, 0.95) / 1000.0
                              : acr_stats_percentile_ms(total, 0.95))
                  : json_null(),
         &err);
    jset(doc, "errors", json_errors(s), &err);
    jset(doc, "fail_ratio", jreal(acr_stats_fail_ratio(total)), &err);
    jset(doc, "state", jstr_or_null(meta ? meta->state : NULL), &err);

    json_t *rows = json_array();
    size_t n;
    acr_stats_entry_t *const *v = acr_stats_sorted(s, &n);
    for (size_t i = 0; i < n && i < MAX_JSON_ROWS; i++)
        jappend(rows, json_stats_row(v[i], total), &err);
    jappend(rows, json_stats_row(total, total), &err);
    jset(doc, "stats", rows, &err);

    jset(doc, "total_rps",
         jreal_or_zero(total->last_request_ts > 0, acr_stats_current_rps(total, total)), &err);
    jset(doc, "user_count", json_integer(meta ? meta->user_count : 0), &err);
    jset(doc, "workers", json_workers(meta), &err);
    jset(doc, "run_time", jreal(meta ? meta->run_time : 0.0), &err);
    jset(doc, "test_id", jstr_or_null(meta ? meta->test_id : NULL), &err);
    jset(doc, "adopted", json_boolean(meta && meta->adopted), &err);
    jset(doc, "lost_reports", json_integer(meta ? (json_int_t)meta->lost_reports : 0), &err);
    jset(doc, "aborted_at_stop", json_integer((json_int_t)total->num_aborted), &err);
    jset(doc, "reports_merged", json_integer(meta ? (json_int_t)meta->reports_merged : 0), &err);
    jset(doc, "shape", json_shape(meta), &err);
    if (meta && meta->npools) jset(doc, "pools", json_pools(meta), &err);
    if (err) goto fail;

    dump = json_dumps(doc, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_ENSURE_ASCII |
                               JSON_REAL_PRECISION(17));
    if (!dump) goto fail;
    acr_buf_t b = {0};
    if (acr_report_pythonic_json(&b, dump) == 0)
        out = b.data;
    else
        acr_buf_free(&b);
fail:
    free(dump);
    json_decref(doc);
    return out;
}
