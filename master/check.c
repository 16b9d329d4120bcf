/*
 * --check: the parser of threshold expressions and their evaluation on the final statistics
 * (syntax and semantics in master/check.h). Parsing is strict and hand-written (no strtod on the
 * raw text: it would take "inf", "nan", hex and leading spaces); every rejection names the
 * expression and what is wrong with it.
 */
#include "master/check.h"

#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_TIME, KIND_RATIO, KIND_RATE, KIND_COUNT } metric_kind_t;

typedef enum {
    M_FAIL_RATIO,
    M_AVG,
    M_MIN,
    M_MAX,
    M_MEDIAN,
    M_PERCENTILE,
    M_RPS,
    M_FAIL_PER_SEC,
    M_REQUESTS,
    M_FAILURES,
} metric_t;

typedef enum { OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ } op_t;

static const struct {
    const char *name;
    metric_t metric;
    metric_kind_t kind;
} METRICS[] = {
    {"fail_ratio", M_FAIL_RATIO, KIND_RATIO},
    {"avg", M_AVG, KIND_TIME},
    {"min", M_MIN, KIND_TIME},
    {"max", M_MAX, KIND_TIME},
    {"median", M_MEDIAN, KIND_TIME},
    {"rps", M_RPS, KIND_RATE},
    {"fail_per_sec", M_FAIL_PER_SEC, KIND_RATE},
    {"requests", M_REQUESTS, KIND_COUNT},
    {"failures", M_FAILURES, KIND_COUNT},
};

#define METRIC_LIST "fail_ratio, avg, min, max, median, pNN, rps, fail_per_sec, requests, failures"

static const struct {
    const char *text;
    op_t op;
} OPS[] = {{"<=", OP_LE}, {">=", OP_GE}, {"==", OP_EQ}, {"<", OP_LT}, {">", OP_GT}};

/* Time units: factor to milliseconds. */
static const struct {
    const char *unit;
    double to_ms;
} TIME_UNITS[] = {{"us", 0.001}, {"ms", 1.0}, {"s", 1000.0}, {"m", 60000.0}};

typedef struct check_item {
    char *text;   /* the expression, trimmed, for the report */
    char *prefix; /* NULL: the Aggregated entry */
    char metric_name[24];
    metric_t metric;
    metric_kind_t kind;
    double pct; /* M_PERCENTILE: 0..1 */
    op_t op;
    double threshold; /* ms for times, a ratio for fail_ratio */
} check_item_t;

struct acr_check {
    size_t n;
    check_item_t items[];
};

static int syntax_error(char *err, size_t errlen, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int syntax_error(char *err, size_t errlen, const char *expr, const char *fmt, ...)
{
    if (err && errlen) {
        int n = snprintf(err, errlen, "--check '%s': ", expr);
        if (n >= 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return -EINVAL;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static void trim(const char **s, size_t *n)
{
    while (*n && is_space(**s)) (*s)++, (*n)--;
    while (*n && is_space((*s)[*n - 1])) (*n)--;
}

/*
 * A strict decimal number at the start of @s: digits with an optional fraction ("1", "1.", "1.5",
 * ".5") and, when @exponent, an optional exponent ("1e6", "2.5E-3"). Returns the length of the
 * number (0 when @s does not start with one) and its value in *@v.
 */
static size_t scan_number(const char *s, size_t n, bool exponent, double *v)
{
    size_t i = 0, digits = 0;
    while (i < n && is_digit(s[i])) i++, digits++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && is_digit(s[i])) i++, digits++;
    }
    if (digits == 0) return 0;
    if (exponent && i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-')) j++;
        if (j < n && is_digit(s[j])) {
            while (j < n && is_digit(s[j])) j++;
            i = j;
        }
    }
    char buf[64];
    if (i >= sizeof(buf)) {
        *v = HUGE_VAL; /* longer than any sane threshold: reported as out of range */
        return i;
    }
    memcpy(buf, s, i);
    buf[i] = '\0';
    *v = strtod(buf, NULL);
    return i;
}

/* The metric named by @s (@n bytes): its table row, or a percentile "pNN[.N]". */
static int parse_metric(check_item_t *it, const char *expr, const char *s, size_t n, char *err,
                        size_t errlen)
{
    if (n == 0) return syntax_error(err, errlen, expr, "missing metric (" METRIC_LIST ")");
    if (n >= sizeof(it->metric_name))
        return syntax_error(err, errlen, expr, "unknown metric '%.*s' (" METRIC_LIST ")", (int)n,
                            s);
    memcpy(it->metric_name, s, n);
    it->metric_name[n] = '\0';
    if (memchr(s, ':', n))
        return syntax_error(
            err, errlen, expr,
            "unknown metric '%s' (a name prefix is written name=PREFIX:METRIC OP VALUE)",
            it->metric_name);
    for (size_t i = 0; i < ACR_ARRAY_SIZE(METRICS); i++) {
        if (strcmp(it->metric_name, METRICS[i].name) == 0) {
            it->metric = METRICS[i].metric;
            it->kind = METRICS[i].kind;
            it->pct = it->metric == M_MEDIAN ? 0.5 : 0.0;
            return 0;
        }
    }
    double p;
    if (s[0] == 'p' && n > 1 && scan_number(s + 1, n - 1, false, &p) == n - 1) {
        if (!(p >= 0.0 && p <= 100.0))
            return syntax_error(err, errlen, expr, "percentile '%s' is not between p0 and p100",
                                it->metric_name);
        it->metric = M_PERCENTILE;
        it->kind = KIND_TIME;
        it->pct = p / 100.0;
        return 0;
    }
    return syntax_error(err, errlen, expr, "unknown metric '%s' (" METRIC_LIST ")",
                        it->metric_name);
}

static const char *units_of(metric_kind_t k)
{
    switch (k) {
    case KIND_TIME:
        return "us, ms, s, m; ms when none";
    case KIND_RATIO:
        return "none for a ratio, or %";
    default:
        return "none";
    }
}

/* VALUE[UNIT] of @s (@n bytes, trimmed) into it->threshold. */
static int parse_value(check_item_t *it, const char *expr, const char *opname, const char *s,
                       size_t n, char *err, size_t errlen)
{
    if (n == 0) return syntax_error(err, errlen, expr, "missing value after '%s'", opname);
    if (s[0] == '-') return syntax_error(err, errlen, expr, "'%.*s' is negative", (int)n, s);
    double v;
    size_t len = scan_number(s, n, true, &v);
    if (len == 0)
        return syntax_error(err, errlen, expr, "'%.*s' is not a number (units of %s: %s)", (int)n,
                            s, it->metric_name, units_of(it->kind));
    if (!isfinite(v)) return syntax_error(err, errlen, expr, "'%.*s' is out of range", (int)len, s);
    const char *unit = s + len;
    size_t ulen = n - len;
    trim(&unit, &ulen); /* "300 ms" */
    double factor = 1.0;
    bool known = ulen == 0;
    if (!known && it->kind == KIND_TIME) {
        for (size_t i = 0; i < ACR_ARRAY_SIZE(TIME_UNITS); i++) {
            if (strlen(TIME_UNITS[i].unit) == ulen && memcmp(TIME_UNITS[i].unit, unit, ulen) == 0) {
                factor = TIME_UNITS[i].to_ms;
                known = true;
            }
        }
    } else if (!known && it->kind == KIND_RATIO && ulen == 1 && unit[0] == '%') {
        factor = 0.01;
        known = true;
    } else if (!known && (it->kind == KIND_COUNT || it->kind == KIND_RATE)) {
        bool unit_like = true;
        for (size_t i = 0; i < ulen; i++)
            if (!((unit[i] >= 'a' && unit[i] <= 'z') || unit[i] == '%')) unit_like = false;
        if (unit_like)
            return syntax_error(err, errlen, expr, "%s takes no unit ('%.*s')", it->metric_name,
                                (int)ulen, unit);
    }
    if (!known)
        return syntax_error(err, errlen, expr, "'%.*s' is not a number (units of %s: %s)", (int)n,
                            s, it->metric_name, units_of(it->kind));
    it->threshold = v * factor;
    return 0;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* One expression into *@it (whose strings it owns afterwards, also on failure). */
static int parse_one(check_item_t *it, const char *expr, char *err, size_t errlen)
{
    const char *s = expr;
    size_t n = strlen(expr);
    trim(&s, &n);
    it->text = dup_n(s, n);
    if (!it->text) return -ENOMEM;
    expr = it->text; /* messages quote the trimmed text */
    if (n == 0) return syntax_error(err, errlen, expr, "empty expression");
    if (n >= 5 && memcmp(s, "name=", 5) == 0) {
        const char *colon = NULL;
        for (size_t i = n; !colon && i-- > 5;)
            if (s[i] == ':') colon = s + i;
        if (!colon)
            return syntax_error(err, errlen, expr,
                                "missing ':' after the name prefix (name=PREFIX:METRIC OP VALUE)");
        it->prefix = dup_n(s + 5, (size_t)(colon - s - 5));
        if (!it->prefix) return -ENOMEM;
        n -= (size_t)(colon + 1 - s);
        s = colon + 1;
        trim(&s, &n);
    }
    size_t m = 0;
    while (m < n && !is_space(s[m]) && !strchr("<>=!", s[m])) m++;
    if (parse_metric(it, expr, s, m, err, errlen) < 0) return -EINVAL;
    s += m;
    n -= m;
    trim(&s, &n);
    size_t olen = 0;
    while (olen < n && strchr("<>=!", s[olen])) olen++;
    if (olen == 0)
        return syntax_error(err, errlen, expr, "missing operator (<, <=, >, >=, ==) after '%s'",
                            it->metric_name);
    const char *opname = NULL;
    for (size_t i = 0; i < ACR_ARRAY_SIZE(OPS); i++) {
        if (strlen(OPS[i].text) == olen && memcmp(OPS[i].text, s, olen) == 0) {
            it->op = OPS[i].op;
            opname = OPS[i].text;
        }
    }
    if (!opname)
        return syntax_error(err, errlen, expr, "unknown operator '%.*s' (<, <=, >, >=, ==)",
                            (int)olen, s);
    s += olen;
    n -= olen;
    trim(&s, &n);
    return parse_value(it, expr, opname, s, n, err, errlen);
}

int acr_check_parse(const char *const *exprs, acr_check_t **out, char *err, size_t errlen)
{
    *out = NULL;
    size_t n = 0;
    while (exprs && exprs[n]) n++;
    if (n == 0) return 0;
    acr_check_t *c = calloc(1, sizeof(*c) + n * sizeof(c->items[0]));
    if (!c) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        c->n = i + 1;
        int rc = parse_one(&c->items[i], exprs[i], err, errlen);
        if (rc < 0) {
            if (rc == -ENOMEM && err && errlen) snprintf(err, errlen, "--check: out of memory");
            acr_check_free(c);
            return rc;
        }
    }
    *out = c;
    return 0;
}

size_t acr_check_count(const acr_check_t *c)
{
    return c ? c->n : 0;
}

void acr_check_free(acr_check_t *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->items[i].text);
        free(c->items[i].prefix);
    }
    free(c);
}

/* ---- evaluation ---- */

/* Whole-run requests (or failures) per second of @e: acr_stats_total_rps over the stats' own
 * span, else over @run_time. */
static double rate(const acr_stats_entry_t *e, bool failures, const acr_stats_entry_t *total,
                   double run_time)
{
    if (total->last_request_ts > 0 && total->start_time > 0 &&
        total->last_request_ts > total->start_time)
        return failures ? acr_stats_total_fail_per_sec(e, total) : acr_stats_total_rps(e, total);
    uint64_t count = failures ? e->num_failures : e->num_requests;
    return run_time > 0 ? (double)count / run_time : 0.0;
}

/* The value of @it's metric on @e; false when there is nothing to measure (a time on an entry
 * without response times). */
static bool measure(const check_item_t *it, const acr_stats_entry_t *e,
                    const acr_stats_entry_t *total, double run_time, double *v)
{
    switch (it->metric) {
    case M_FAIL_RATIO:
        *v = acr_stats_fail_ratio(e);
        return true;
    case M_AVG:
        *v = acr_stats_avg_ms(e);
        return e->hist.count > 0;
    case M_MIN:
        *v = acr_stats_min_ms(e);
        return e->hist.count > 0;
    case M_MAX:
        *v = acr_stats_max_ms(e);
        return e->hist.count > 0;
    case M_MEDIAN:
    case M_PERCENTILE:
        *v = acr_stats_percentile_ms(e, it->pct);
        return e->hist.count > 0;
    case M_RPS:
        *v = rate(e, false, total, run_time);
        return true;
    case M_FAIL_PER_SEC:
        *v = rate(e, true, total, run_time);
        return true;
    case M_REQUESTS:
        *v = (double)e->num_requests;
        return true;
    case M_FAILURES:
        *v = (double)e->num_failures;
        return true;
    }
    return false;
}

static bool compare(op_t op, double v, double t)
{
    switch (op) {
    case OP_LT:
        return v < t;
    case OP_LE:
        return v <= t;
    case OP_GT:
        return v > t;
    case OP_GE:
        return v >= t;
    case OP_EQ:
        return v == t;
    }
    return false;
}

/* @v with at most @decimals decimals, trailing zeros dropped ("12.3", "0.001", "1000"). */
static void fmt_num(char *buf, size_t size, double v, int decimals)
{
    snprintf(buf, size, "%.*f", decimals, v);
    char *dot = strchr(buf, '.');
    if (!dot) return;
    char *end = buf + strlen(buf);
    while (end > dot + 1 && end[-1] == '0') end--;
    if (end == dot + 1) end = dot;
    *end = '\0';
    if (strcmp(buf, "-0") == 0) strcpy(buf, "0");
}

/* "p95 = 12.3 ms", "fail_ratio = 0.02 (1 of 50 requests)", "rps = 523.25". */
static void fmt_measured(char *buf, size_t size, const check_item_t *it, const acr_stats_entry_t *e,
                         double v)
{
    char num[64];
    switch (it->kind) {
    case KIND_TIME:
        fmt_num(num, sizeof(num), v, 3);
        snprintf(buf, size, "%s = %s ms", it->metric_name, num);
        break;
    case KIND_RATIO:
        fmt_num(num, sizeof(num), v, 6);
        snprintf(buf, size, "%s = %s (%llu of %llu requests)", it->metric_name, num,
                 (unsigned long long)e->num_failures, (unsigned long long)e->num_requests);
        break;
    case KIND_RATE:
        fmt_num(num, sizeof(num), v, 2);
        snprintf(buf, size, "%s = %s", it->metric_name, num);
        break;
    case KIND_COUNT:
        snprintf(buf, size, "%s = %.0f", it->metric_name, v);
        break;
    }
}

/* Writes @s with control characters (and DEL) as '?', so a name cannot break the line. */
static void put_name(FILE *f, const char *s)
{
    acr_log_escape_file(f, s); /* names come from workers: no terminal control reaches stdout */
}

/* One line for @it on @e (named: a name= match, shown in the line). Returns whether it passed. */
static bool eval_entry(const check_item_t *it, const acr_stats_entry_t *e, bool named,
                       const acr_stats_entry_t *total, double run_time, FILE *f)
{
    double v = 0.0;
    bool measured = measure(it, e, total, run_time, &v);
    bool ok = measured && compare(it->op, v, it->threshold);
    fputs("check ", f);
    put_name(f, it->text);
    fprintf(f, ": %s (", ok ? "passed" : "FAILED");
    if (named) {
        if (*e->method) {
            put_name(f, e->method);
            fputc(' ', f);
        }
        put_name(f, e->name);
        fputs(": ", f);
    }
    if (measured) {
        char buf[160];
        fmt_measured(buf, sizeof(buf), it, e, v);
        fputs(buf, f);
    } else {
        fprintf(f, "%s: no response times recorded", it->metric_name);
    }
    fputs(")\n", f);
    return ok;
}

static bool eval_item(const check_item_t *it, acr_stats_t *s, double run_time, FILE *f)
{
    const acr_stats_entry_t *total = acr_stats_total(s);
    if (!it->prefix) return eval_entry(it, total, false, total, run_time, f);
    size_t n = 0, matched = 0;
    bool ok = true;
    acr_stats_entry_t *const *rows = acr_stats_sorted(s, &n);
    size_t plen = strlen(it->prefix);
    for (size_t i = 0; rows && i < n; i++) {
        if (strncmp(rows[i]->name, it->prefix, plen) != 0) continue;
        matched++;
        if (!eval_entry(it, rows[i], true, total, run_time, f)) ok = false;
    }
    if (matched == 0) {
        fputs("check ", f);
        put_name(f, it->text);
        fputs(": FAILED (no entry whose name starts with '", f);
        put_name(f, it->prefix);
        fputs("')\n", f);
        return false;
    }
    return ok;
}

size_t acr_check_eval(const acr_check_t *c, acr_stats_t *s, double run_time, FILE *f)
{
    if (!c || c->n == 0) return 0;
    acr_stats_t *empty = s ? NULL : acr_stats_new(0);
    if (!s && !empty) {
        fprintf(f, "check: out of memory, %zu check(s) not evaluated\n", c->n);
        return c->n;
    }
    size_t failed = 0;
    for (size_t i = 0; i < c->n; i++)
        if (!eval_item(&c->items[i], s ? s : empty, run_time, f)) failed++;
    acr_stats_free(empty);
    fflush(f);
    return failed;
}
