/*
 * Unit tests of the /metrics text (master/web/metrics.c): the output is parsed back line by line
 * as a Prometheus text-format 0.0.4 reader would (HELP/TYPE before each family's samples, label
 * values with only \\ \" \n escapes, valid UTF-8), then every value is checked against the
 * hand-built snapshot it came from.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "master/web/metrics.h"
#include "proto/proto.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1700000000.0
#define MAX_LABELS 4
#define MAX_SAMPLES 256
#define MAX_FAMILIES 32

typedef struct sample {
    char name[64];
    size_t nlabels;
    char key[MAX_LABELS][16];
    char val[MAX_LABELS][128];
    double value;
} sample_t;

typedef struct family {
    char name[64], type[128];
    bool help;
} family_t;

typedef struct parsed {
    sample_t samples[MAX_SAMPLES];
    size_t n;
    family_t families[MAX_FAMILIES];
    size_t nfam;
} parsed_t;

static family_t *find_family(parsed_t *p, const char *name)
{
    for (size_t i = 0; i < p->nfam; i++)
        if (strcmp(p->families[i].name, name) == 0) return &p->families[i];
    return NULL;
}

/* The family a sample name belongs to: itself, or a summary's base for _sum/_count. */
static family_t *family_of(parsed_t *p, const char *sample)
{
    family_t *f = find_family(p, sample);
    if (f) return f;
    char base[64];
    size_t n = strlen(sample);
    static const char *const sfx[] = {"_sum", "_count"};
    for (size_t i = 0; i < 2; i++) {
        size_t k = strlen(sfx[i]);
        if (n > k && strcmp(sample + n - k, sfx[i]) == 0 && n - k < sizeof(base)) {
            memcpy(base, sample, n - k);
            base[n - k] = '\0';
            f = find_family(p, base);
            if (f && strcmp(f->type, "summary") == 0) return f;
        }
    }
    return NULL;
}

/* Parses one label value after its opening quote; returns the position after the closing
 * quote. Fails the test on an escape the format does not have. */
static const char *parse_label_value(const char *s, char *out, size_t size)
{
    size_t o = 0;
    for (; *s && *s != '"'; s++) {
        char c = *s;
        if (c == '\\') {
            s++;
            if (*s == 'n')
                c = '\n';
            else if (*s == '\\' || *s == '"')
                c = *s;
            else
                fail_msg("bad escape \\%c", *s);
        }
        assert_true(o + 1 < size);
        out[o++] = c;
    }
    assert_int_equal(*s, '"');
    out[o] = '\0';
    return s + 1;
}

static void parse_line(parsed_t *p, const char *line, family_t **current)
{
    if (line[0] == '#') {
        char kind[8], name[64], rest[128];
        assert_int_equal(sscanf(line, "# %7s %63s %127[^\n]", kind, name, rest), 3);
        if (strcmp(kind, "HELP") == 0) {
            assert_null(find_family(p, name)); /* each family once */
            assert_true(p->nfam < MAX_FAMILIES);
            family_t *f = &p->families[p->nfam++];
            snprintf(f->name, sizeof(f->name), "%s", name);
            f->help = true;
            *current = f;
        } else {
            assert_string_equal(kind, "TYPE");
            assert_non_null(*current);
            assert_string_equal((*current)->name, name); /* TYPE right after its HELP */
            assert_true(strcmp(rest, "counter") == 0 || strcmp(rest, "gauge") == 0 ||
                        strcmp(rest, "summary") == 0);
            snprintf((*current)->type, sizeof((*current)->type), "%s", rest);
        }
        return;
    }
    assert_true(p->n < MAX_SAMPLES);
    sample_t *sm = &p->samples[p->n++];
    memset(sm, 0, sizeof(*sm));
    size_t k = strcspn(line, "{ ");
    assert_true(k > 0 && k < sizeof(sm->name));
    memcpy(sm->name, line, k);
    const char *s = line + k;
    if (*s == '{') {
        s++;
        while (*s != '}') {
            assert_true(sm->nlabels < MAX_LABELS);
            size_t kl = strcspn(s, "=");
            assert_true(kl > 0 && kl < sizeof(sm->key[0]));
            memcpy(sm->key[sm->nlabels], s, kl);
            s += kl;
            assert_int_equal(s[0], '=');
            assert_int_equal(s[1], '"');
            s = parse_label_value(s + 2, sm->val[sm->nlabels], sizeof(sm->val[0]));
            sm->nlabels++;
            if (*s == ',') s++;
        }
        s++;
    }
    assert_int_equal(*s, ' ');
    s++;
    char *end;
    sm->value = strcmp(s, "NaN") == 0 ? NAN : strtod(s, &end);
    if (!isnan(sm->value)) assert_true(*end == '\0' && end != s);
    /* every sample under the HELP/TYPE of its family, the families' samples together */
    family_t *f = family_of(p, sm->name);
    if (!f || f != *current) fail_msg("sample %s outside its family's block", sm->name);
}

static void parse(parsed_t *p, const acr_buf_t *b)
{
    memset(p, 0, sizeof(*p));
    assert_non_null(b->data);
    assert_true(b->len > 0 && b->data[b->len - 1] == '\n');
    assert_true(acr_proto_utf8_valid(b->data, b->len));
    family_t *current = NULL;
    char *copy = strndup(b->data, b->len);
    assert_non_null(copy);
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
        parse_line(p, line, &current);
    free(copy);
}

static const char *label(const sample_t *s, const char *key)
{
    for (size_t i = 0; i < s->nlabels; i++)
        if (strcmp(s->key[i], key) == 0) return s->val[i];
    return NULL;
}

/* The one sample @name with the given labels (NULL-terminated key, value pairs, all of its
 * labels); fails the test unless exactly one matches. */
static double value_of(parsed_t *p, const char *name, ...)
{
    const sample_t *found = NULL;
    for (size_t i = 0; i < p->n; i++) {
        const sample_t *s = &p->samples[i];
        if (strcmp(s->name, name) != 0) continue;
        va_list ap;
        va_start(ap, name);
        size_t nl = 0;
        bool match = true;
        for (const char *k = va_arg(ap, const char *); k; k = va_arg(ap, const char *)) {
            const char *v = va_arg(ap, const char *);
            const char *got = label(s, k);
            if (!got || strcmp(got, v) != 0) match = false;
            nl++;
        }
        va_end(ap);
        if (!match || nl != s->nlabels) continue;
        if (found) fail_msg("two samples %s with the same labels", name);
        found = s;
    }
    if (!found) fail_msg("no sample %s with those labels", name);
    return found->value;
}

static size_t count_of(parsed_t *p, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++) n += strcmp(p->samples[i].name, name) == 0;
    return n;
}

static void assert_close(double got, double want)
{
    if (!(fabs(got - want) <= 1e-12 * fmax(1.0, fabs(want))))
        fail_msg("got %.17g, want %.17g", got, want);
}

#define QUOTED_NAME "a \"quoted\" \\path\\\nline2"

/* GET /api/items: 9 x 10 ms + 1 x 150 ms failed; POST QUOTED_NAME: 2 x 40 us; GET "bad\xff":
 * created, no request. */
static acr_stats_t *known_stats(void)
{
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    acr_stats_entry_t *items = acr_stats_get(s, "GET", "/api/items");
    acr_stats_entry_t *quoted = acr_stats_get(s, "POST", QUOTED_NAME);
    assert_non_null(items);
    assert_non_null(quoted);
    assert_non_null(acr_stats_get(s, "GET", "bad\xff\xc3"));
    for (int i = 1; i <= 9; i++) acr_stats_log(s, items, true, 10000, 10, NULL, T0 + i);
    acr_stats_log(s, items, true, 150000, 10, "HTTPError('500 Server Error')", T0 + 10);
    acr_stats_log(s, quoted, true, 40, 10, NULL, T0 + 10);
    acr_stats_log(s, quoted, true, 40, 10, NULL, T0 + 10);
    return s;
}

static void test_metrics_values_and_escaping(void **state)
{
    (void)state;
    acr_core_worker_t workers[] = {
        {.id = "w1", .state = "running"},
        {.id = "w2", .state = "running"},
        {.id = "w3", .state = "missing"},
        {.id = "w4", .state = "ready"},
    };
    acr_core_snapshot_t snap = {
        .state = ACR_RUN_RUNNING,
        .user_count = 7,
        .stats = known_stats(),
        .workers = workers,
        .nworkers = ACR_ARRAY_SIZE(workers),
        .lost_reports = 3,
    };
    acr_buf_t b = {0};
    assert_int_equal(acr_metrics_text(&snap, &b), 0);
    static parsed_t p;
    parse(&p, &b);

    /* families and types */
    static const struct {
        const char *name, *type;
    } fams[] = {
        {"acrida_requests_total", "counter"},
        {"acrida_failures_total", "counter"},
        {"acrida_response_time_seconds", "summary"},
        {"acrida_users", "gauge"},
        {"acrida_workers", "gauge"},
        {"acrida_current_rps", "gauge"},
        {"acrida_current_fail_per_sec", "gauge"},
        {"acrida_run_state", "gauge"},
        {"acrida_lost_reports_total", "counter"},
    };
    assert_int_equal(p.nfam, ACR_ARRAY_SIZE(fams));
    for (size_t i = 0; i < ACR_ARRAY_SIZE(fams); i++) {
        family_t *f = find_family(&p, fams[i].name);
        if (!f) fail_msg("no family %s", fams[i].name);
        assert_string_equal(f->type, fams[i].type);
    }

    /* counters: three entries plus Aggregated */
    assert_int_equal(count_of(&p, "acrida_requests_total"), 4);
    assert_close(value_of(&p, "acrida_requests_total", "method", "GET", "name", "/api/items", NULL),
                 10);
    assert_close(value_of(&p, "acrida_failures_total", "method", "GET", "name", "/api/items", NULL),
                 1);
    assert_close(value_of(&p, "acrida_requests_total", "method", "POST", "name", QUOTED_NAME, NULL),
                 2);
    assert_close(value_of(&p, "acrida_requests_total", "method", "GET", "name",
                          "bad\xef\xbf\xbd\xef\xbf\xbd", NULL),
                 0);
    assert_close(value_of(&p, "acrida_requests_total", "method", "", "name", "Aggregated", NULL),
                 12);
    assert_close(value_of(&p, "acrida_failures_total", "method", "", "name", "Aggregated", NULL),
                 1);
    /* the raw text of the escaped label */
    assert_non_null(strstr(b.data, "name=\"a \\\"quoted\\\" \\\\path\\\\\\nline2\""));

    /* summary: quantiles in seconds (10 ms sits in the bucket whose value is 10.048 ms; p99 of
     * /api/items is its max), _sum and _count; NaN quantiles for an entry without times */
    static const struct {
        const char *q;
        double items, total;
    } qs[] = {{"0.5", 0.010048, 0.010048},
              {"0.9", 0.010048, 0.010048},
              {"0.95", 0.15, 0.15},
              {"0.99", 0.15, 0.15}};
    for (size_t i = 0; i < ACR_ARRAY_SIZE(qs); i++) {
        assert_close(value_of(&p, "acrida_response_time_seconds", "method", "GET", "name",
                              "/api/items", "quantile", qs[i].q, NULL),
                     qs[i].items);
        assert_close(value_of(&p, "acrida_response_time_seconds", "method", "", "name",
                              "Aggregated", "quantile", qs[i].q, NULL),
                     qs[i].total);
        assert_close(value_of(&p, "acrida_response_time_seconds", "method", "POST", "name",
                              QUOTED_NAME, "quantile", qs[i].q, NULL),
                     0.00004);
        assert_true(isnan(value_of(&p, "acrida_response_time_seconds", "method", "GET", "name",
                                   "bad\xef\xbf\xbd\xef\xbf\xbd", "quantile", qs[i].q, NULL)));
    }
    assert_int_equal(count_of(&p, "acrida_response_time_seconds"), 16);
    assert_close(value_of(&p, "acrida_response_time_seconds_sum", "method", "GET", "name",
                          "/api/items", NULL),
                 0.24);
    assert_close(value_of(&p, "acrida_response_time_seconds_count", "method", "GET", "name",
                          "/api/items", NULL),
                 10);
    assert_close(
        value_of(&p, "acrida_response_time_seconds_sum", "method", "", "name", "Aggregated", NULL),
        0.24008);
    assert_close(value_of(&p, "acrida_response_time_seconds_count", "method", "", "name",
                          "Aggregated", NULL),
                 12);
    assert_close(value_of(&p, "acrida_response_time_seconds_count", "method", "GET", "name",
                          "bad\xef\xbf\xbd\xef\xbf\xbd", NULL),
                 0);

    /* gauges */
    assert_close(value_of(&p, "acrida_users", NULL), 7);
    static const struct {
        const char *state;
        double n;
    } ws[] = {{"ready", 1}, {"spawning", 0}, {"running", 2}, {"stopped", 0}, {"missing", 1}};
    assert_int_equal(count_of(&p, "acrida_workers"), ACR_ARRAY_SIZE(ws));
    for (size_t i = 0; i < ACR_ARRAY_SIZE(ws); i++)
        assert_close(value_of(&p, "acrida_workers", "state", ws[i].state, NULL), ws[i].n);
    acr_stats_entry_t *total = acr_stats_total(snap.stats);
    double rps = acr_stats_current_rps(total, total);
    assert_true(rps > 0);
    assert_close(value_of(&p, "acrida_current_rps", NULL), rps);
    assert_close(value_of(&p, "acrida_current_fail_per_sec", NULL),
                 acr_stats_current_fail_per_sec(total, total));
    assert_int_equal(count_of(&p, "acrida_run_state"), ACR_RUN__COUNT);
    for (int i = 0; i < ACR_RUN__COUNT; i++)
        assert_close(
            value_of(&p, "acrida_run_state", "state", acr_run_state_name((acr_run_state_t)i), NULL),
            i == ACR_RUN_RUNNING);
    assert_close(value_of(&p, "acrida_lost_reports_total", NULL), 3);

    acr_buf_free(&b);
    acr_stats_free(snap.stats);
}

/* Before any report: every family with its HELP/TYPE, no entry samples, zero gauges. The text is
 * appended to what the buffer holds. */
static void test_metrics_before_any_report(void **state)
{
    (void)state;
    acr_core_snapshot_t snap = {.state = ACR_RUN_READY};
    acr_buf_t b = {0};
    assert_int_equal(acr_buf_appendf(&b, "# HELP x y\n# TYPE x gauge\nx 1\n"), 0);
    assert_int_equal(acr_metrics_text(&snap, &b), 0);
    static parsed_t p;
    parse(&p, &b);
    assert_int_equal(p.nfam, 10);
    assert_int_equal(count_of(&p, "acrida_requests_total"), 0);
    assert_int_equal(count_of(&p, "acrida_response_time_seconds"), 0);
    assert_close(value_of(&p, "acrida_users", NULL), 0);
    assert_close(value_of(&p, "acrida_current_rps", NULL), 0);
    assert_close(value_of(&p, "acrida_workers", "state", "ready", NULL), 0);
    assert_close(value_of(&p, "acrida_run_state", "state", "ready", NULL), 1);
    assert_close(value_of(&p, "acrida_run_state", "state", "stopped", NULL), 0);
    assert_close(value_of(&p, "acrida_lost_reports_total", NULL), 0);
    acr_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_values_and_escaping),
        cmocka_unit_test(test_metrics_before_any_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
