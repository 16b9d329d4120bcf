/*
 * Unit tests of the report writers: number formatting (Python repr, ms rule), Locust's exact CSV
 * headers/quoting/CRLF, known CSV rows, console table shape and the /stats/requests JSON.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "master/report.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1700000000.0

/* Captures what @fn writes to a FILE into a malloc'ed string. */
typedef struct cap {
    char *buf;
    size_t len;
    FILE *f;
} cap_t;

static FILE *cap_open(cap_t *c)
{
    c->buf = NULL;
    c->len = 0;
    c->f = open_memstream(&c->buf, &c->len);
    assert_non_null(c->f);
    return c->f;
}

static char *cap_close(cap_t *c)
{
    fclose(c->f);
    return c->buf;
}

/* GET /fake: 3 x 10 ms + 1 x 150 ms (failed), 100 bytes each; POST /a,"b" created, unused. */
static acr_stats_t *known_stats(void)
{
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    acr_stats_entry_t *e = acr_stats_get(s, "GET", "/fake");
    assert_non_null(e);
    assert_non_null(acr_stats_get(s, "POST", "/a,\"b\""));
    acr_stats_log(s, e, true, 10000, 100, NULL, T0 + 1);
    acr_stats_log(s, e, true, 10000, 100, NULL, T0 + 2);
    acr_stats_log(s, e, true, 10000, 100, NULL, T0 + 3);
    acr_stats_log(s, e, true, 150000, 100, "HTTPError('500 Server Error')", T0 + 10);
    return s;
}

static void test_fmt_float_python_repr(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {70.0, "70.0"},
        {3.7807597755311115, "3.7807597755311115"},
        {0.3780759775531112, "0.3780759775531112"},
        {0.1, "0.1"},
        {1.0 / 3.0, "0.3333333333333333"},
        {0.0, "0.0"},
        {-2.5, "-2.5"},
        {100.0, "100.0"},
        {1e15, "1000000000000000.0"},
        {1e16, "1e+16"},
        {1.5e17, "1.5e+17"},
        {0.0001, "0.0001"},
        {0.00001, "1e-05"},
        {1.25e-7, "1.25e-07"},
        {123456.789, "123456.789"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {NAN, "nan"},
        {INFINITY, "inf"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[40];
        acr_report_fmt_float(buf, sizeof(buf), cases[i].v);
        assert_string_equal(buf, cases[i].want);
    }
}

static void test_fmt_ms(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0.0, "0"}, {0.42, "0.42"}, {0.07, "0.07"}, {0.994, "0.99"},  {0.999, "1"},
        {1.0, "1"}, {10.048, "10"}, {150.6, "151"}, {1234.4, "1234"}, {3600000.0, "3600000"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[40];
        acr_report_fmt_ms(buf, sizeof(buf), cases[i].v);
        assert_string_equal(buf, cases[i].want);
    }
}

static void test_csv_stats(void **state)
{
    (void)state;
    acr_stats_t *s = known_stats();
    cap_t c;
    assert_int_equal(acr_report_csv_stats(cap_open(&c), s), 0);
    char *out = cap_close(&c);
    const char *want =
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
        "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,"
        "50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\r\n"
        "POST,\"/a,\"\"b\"\"\",0,0,0,0.0,0,0,0,0.0,0.0,"
        "N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A\r\n"
        "GET,/fake,4,1,10,45.0,10,150,100.0,0.4,0.1,10,10,10,150,150,150,150,150,150,150,150\r\n"
        ",Aggregated,4,1,10,45.0,10,150,100.0,0.4,0.1,10,10,10,150,150,150,150,150,150,150,150\r\n";
    assert_string_equal(out, want);
    free(out);
    acr_stats_free(s);
}

static void test_csv_stats_sub_ms(void **state)
{
    (void)state;
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    acr_stats_entry_t *e = acr_stats_get(s, "GET", "/fast");
    acr_stats_log(s, e, true, 420, 3, NULL, T0 + 0.5);
    acr_stats_log(s, e, true, 70, 3, NULL, T0 + 1.0);
    cap_t c;
    assert_int_equal(acr_report_csv_stats(cap_open(&c), s), 0);
    char *out = cap_close(&c);
    /* avg 0.245 ms; min 0.07, max 0.42; 2 req over 1 s */
    assert_non_null(strstr(out, "\r\nGET,/fast,2,0,0.07,0.245,0.07,0.42,3.0,2.0,0.0,0.07,0.42,"));
    free(out);
    acr_stats_free(s);
}

static void test_csv_history(void **state)
{
    (void)state;
    cap_t c;
    assert_int_equal(acr_report_csv_history_header(cap_open(&c)), 0);
    char *out = cap_close(&c);
    assert_string_equal(out, "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,"
                             "90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,"
                             "Total Failure Count,Total Median Response Time,"
                             "Total Average Response Time,Total Min Response Time,"
                             "Total Max Response Time,Total Average Content Size\r\n");
    free(out);

    /* Locust's verified row for an idle process */
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    assert_int_equal(acr_report_csv_history_rows(cap_open(&c), s, 0, 1795313060, false), 0);
    out = cap_close(&c);
    assert_string_equal(out, "1795313060,0,,Aggregated,0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,"
                             "N/A,N/A,N/A,N/A,N/A,0,0,0,0.0,0,0,0\r\n");
    free(out);
    acr_stats_free(s);

    /* full history: one row per entry, then Aggregated, all with the same timestamp */
    s = known_stats();
    assert_int_equal(acr_report_csv_history_rows(cap_open(&c), s, 7, 1700000010, true), 0);
    out = cap_close(&c);
    /* window [T0, T0+8): 3 requests in 8 s = 0.375/s; no failure in it */
    const char *want =
        "1700000010,7,POST,\"/a,\"\"b\"\"\",0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,"
        "N/A,N/A,N/A,0,0,0,0.0,0,0,0\r\n"
        "1700000010,7,GET,/fake,0.375000,0.000000,10,10,10,150,150,150,150,150,150,150,150,4,1,"
        "10,45.0,10,150,100.0\r\n"
        "1700000010,7,,Aggregated,0.375000,0.000000,10,10,10,150,150,150,150,150,150,150,150,4,1,"
        "10,45.0,10,150,100.0\r\n";
    assert_string_equal(out, want);
    free(out);
    acr_stats_free(s);
}

static void test_csv_failures_and_exceptions(void **state)
{
    (void)state;
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    assert_int_equal(acr_stats_add_error(s, "POST", "/b", "plain", 2), 0);
    assert_int_equal(acr_stats_add_error(s, "GET", "/z", "ConnectionError(\"refused, twice\")", 5),
                     0);
    assert_int_equal(acr_stats_add_error(s, "GET", "/a", "line1\nline2", 1), 0);
    cap_t c;
    assert_int_equal(acr_report_csv_failures(cap_open(&c), s), 0);
    char *out = cap_close(&c);
    assert_string_equal(out, "Method,Name,Error,Occurrences\r\n"
                             "GET,/a,\"line1\nline2\",1\r\n"
                             "GET,/z,\"ConnectionError(\"\"refused, twice\"\")\",5\r\n"
                             "POST,/b,plain,2\r\n");
    free(out);

    assert_int_equal(
        acr_stats_add_exception(s, "ValueError: x", "Traceback:\n  at a.lua:3", "w1", 1), 0);
    assert_int_equal(
        acr_stats_add_exception(s, "ValueError: x", "Traceback:\n  at a.lua:3", "w2", 2), 0);
    assert_int_equal(acr_stats_add_exception(s, "E", "tb2", "local", 1), 0);
    assert_int_equal(acr_report_csv_exceptions(cap_open(&c), s), 0);
    out = cap_close(&c);
    assert_string_equal(out, "Count,Message,Traceback,Nodes\r\n"
                             "3,ValueError: x,\"Traceback:\n  at a.lua:3\",\"w1, w2\"\r\n"
                             "1,E,tb2,local\r\n");
    free(out);
    acr_stats_free(s);
}

static void test_lost_reports_outputs(void **state)
{
    (void)state;
    cap_t c;
    /* nothing in the summary when nothing was lost */
    assert_int_equal(acr_report_console_lost(cap_open(&c), 0), 0);
    char *txt = cap_close(&c);
    assert_string_equal(txt, "");
    free(txt);
    assert_int_equal(acr_report_console_lost(cap_open(&c), 3), 0);
    txt = cap_close(&c);
    assert_non_null(strstr(txt, "Lost report intervals: 3 ("));
    free(txt);
    /* acrida's own CSV: per node id (quoted like every CSV field), then the total */
    const acr_report_lost_t rows[] = {{"host_a", 2}, {"odd,\"id\"", 1}};
    assert_int_equal(acr_report_csv_lost(cap_open(&c), rows, 2, 3), 0);
    txt = cap_close(&c);
    assert_string_equal(txt, "Worker,Lost Report Intervals\r\nhost_a,2\r\n\"odd,\"\"id\"\"\",1\r\n"
                             "Aggregated,3\r\n");
    free(txt);
    assert_int_equal(acr_report_csv_lost(cap_open(&c), NULL, 0, 0), 0);
    txt = cap_close(&c);
    assert_string_equal(txt, "Worker,Lost Report Intervals\r\nAggregated,0\r\n");
    free(txt);
}

/* Requests aborted at stop: a summary table and acrida's own CSV, apart from Locust's columns. */
static void test_aborted_outputs(void **state)
{
    (void)state;
    acr_stats_t *s = known_stats();
    cap_t c;
    assert_int_equal(acr_report_console_aborted(cap_open(&c), s), 0);
    char *txt = cap_close(&c);
    assert_string_equal(txt, ""); /* none: nothing in the summary */
    free(txt);
    assert_int_equal(acr_report_csv_aborted(cap_open(&c), s), 0);
    txt = cap_close(&c);
    assert_string_equal(txt, "Type,Name,Aborted At Stop\r\n,Aggregated,0\r\n");
    free(txt);
    acr_stats_entry_t *slow = acr_stats_get(s, "GET", "/slow,\"x\"");
    uint64_t reqs = acr_stats_total(s)->num_requests, fails = acr_stats_total(s)->num_failures;
    acr_stats_log_aborted(s, slow, T0 + 9);
    acr_stats_log_aborted(s, slow, T0 + 9);
    assert_int_equal(acr_stats_total(s)->num_requests, reqs);  /* neither a request */
    assert_int_equal(acr_stats_total(s)->num_failures, fails); /* nor a failure */
    assert_int_equal(slow->num_requests, 0);
    assert_int_equal(acr_report_csv_aborted(cap_open(&c), s), 0);
    txt = cap_close(&c);
    assert_string_equal(txt, "Type,Name,Aborted At Stop\r\nGET,\"/slow,\"\"x\"\"\",2\r\n"
                             ",Aggregated,2\r\n");
    free(txt);
    assert_int_equal(acr_report_console_aborted(cap_open(&c), s), 0);
    txt = cap_close(&c);
    assert_non_null(strstr(txt, "Aborted at stop: 2 requests were still in flight"));
    assert_non_null(strstr(txt, "Aggregated"));
    free(txt);
    assert_int_equal(acr_report_csv_stats(cap_open(&c), s), 0);
    txt = cap_close(&c);
    assert_null(strstr(txt, "Aborted")); /* Locust's file keeps Locust's columns */
    free(txt);
    acr_stats_free(s);
}

static void test_console_tables(void **state)
{
    (void)state;
    acr_stats_t *s = known_stats();
    cap_t c;
    assert_int_equal(acr_report_console_stats(cap_open(&c), s, false), 0);
    char *out = cap_close(&c);
    char *lines[16];
    int n = 0;
    for (char *tok = strtok(out, "\n"); tok && n < 16; tok = strtok(NULL, "\n")) lines[n++] = tok;
    assert_int_equal(n, 6); /* header, sep, 2 rows, sep, Aggregated */
    /* Locust's header: "%-8s %-76s %7s %12s |%7s %7s %7s%7s | %7s %11s" */
    char hdr[256];
    snprintf(hdr, sizeof(hdr), "Type     Name%72s %s", "",
             " # reqs      # fails |    Avg     Min     Max    Med |   req/s  failures/s");
    assert_string_equal(lines[0], hdr);
    assert_string_equal(lines[1], lines[4]);
    assert_int_equal(strspn(lines[1], "-|"), strlen(lines[1]));
    assert_int_equal(strlen(lines[1]), strlen(lines[0]));
    assert_true(!strncmp(lines[2], "POST     /a,\"b\" ", 16));
    assert_true(!strncmp(lines[3], "GET      /fake ", 15));
    assert_non_null(strstr(lines[3],
                           "       4    1(25.00%) |     45      10     150     10 |    0.40 "
                           "       0.10"));
    assert_true(!strncmp(lines[5], "         Aggregated ", 20));
    assert_non_null(strstr(lines[5], "1(25.00%)"));
    /* every row is as wide as the header (names shorter than the column) */
    for (int i = 2; i < n; i++)
        if (i != 4) assert_int_equal(strlen(lines[i]), strlen(lines[0]));
    free(out);

    assert_int_equal(acr_report_console_percentiles(cap_open(&c), s), 0);
    out = cap_close(&c);
    assert_non_null(strstr(out, "Response time percentiles (approximated)\n"));
    assert_non_null(strstr(out, "    50%    66%    75%    80%    90%    95%    98%    99%  99.9% "
                                "99.99%   100% # reqs\n"));
    assert_non_null(strstr(out, "      10     10     10    150    150    150    150    150    150 "
                                "   150    150      4\n"));
    assert_null(strstr(out, "POST")); /* entries without response times have no row */
    free(out);

    assert_int_equal(acr_report_console_failures(cap_open(&c), s), 0);
    out = cap_close(&c);
    assert_non_null(strstr(out, "# occurrences      Error\n"));
    assert_non_null(strstr(out, "\n1                  GET /fake: HTTPError('500 Server Error')\n"));
    free(out);

    /* nothing at all without failures / exceptions */
    acr_stats_reset(s, T0 + 20);
    assert_int_equal(acr_report_console_failures(cap_open(&c), s), 0);
    out = cap_close(&c);
    assert_string_equal(out, "");
    free(out);
    assert_int_equal(acr_report_console_exceptions(cap_open(&c), s), 0);
    out = cap_close(&c);
    assert_string_equal(out, "");
    free(out);
    assert_int_equal(acr_stats_add_exception(s, "Boom", "tb line 1\ntb line 2", "w1", 2), 0);
    assert_int_equal(acr_report_console_exceptions(cap_open(&c), s), 0);
    out = cap_close(&c);
    assert_non_null(strstr(out, "\n2          Boom\n           tb line 1\n           tb line 2\n"));
    free(out);
    acr_stats_free(s);
}

static void assert_keys(json_t *o, const char *const *keys, size_t n)
{
    assert_true(json_is_object(o));
    if (json_object_size(o) != n)
        fail_msg("object has %zu keys, expected %zu", json_object_size(o), n);
    for (size_t i = 0; i < n; i++)
        if (!json_object_get(o, keys[i])) fail_msg("missing key %s", keys[i]);
}

static double jnum(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v)) fail_msg("%s is not a number", key);
    return json_number_value(v);
}

static const char *const ROW_KEYS[] = {"method",
                                       "name",
                                       "safe_name",
                                       "num_requests",
                                       "num_failures",
                                       "avg_response_time",
                                       "min_response_time",
                                       "max_response_time",
                                       "current_rps",
                                       "current_fail_per_sec",
                                       "median_response_time",
                                       "ninetieth_response_time",
                                       "ninety_ninth_response_time",
                                       "avg_content_length",
                                       "response_time_percentiles",
                                       "aborted_at_stop"};
static const char *const TOP_KEYS[] = {"current_response_time_percentile_50",
                                       "current_response_time_percentile_95",
                                       "errors",
                                       "fail_ratio",
                                       "state",
                                       "stats",
                                       "total_rps",
                                       "user_count",
                                       "workers",
                                       "run_time",
                                       "test_id",
                                       "lost_reports",
                                       "reports_merged",
                                       "shape",
                                       "adopted",
                                       "aborted_at_stop"};

static void test_json(void **state)
{
    (void)state;
    acr_stats_t *s = known_stats();
    acr_stats_entry_t *x = acr_stats_get(s, "GET", "/q?a=1&b=<2>");
    acr_stats_log(s, x, true, 420, 0, "Err('<\"x\">')", T0 + 10);
    acr_core_worker_t w[] = {{"w1", "h1", "running", 5, 12.5, 1234567, 0.1},
                             {"w2", NULL, "missing", 0, 0, 0, 4.0}};
    acr_report_meta_t m = {.state = "running",
                           .user_count = 5,
                           .run_time = 30.25,
                           .test_id = "t-1",
                           .workers = w,
                           .nworkers = 2,
                           .now = T0 + 10,
                           .lost_reports = 3,
                           .reports_merged = 7};
    char *txt = acr_report_json(s, &m);
    assert_non_null(txt);
    size_t len = strlen(txt);
    assert_true(len > 2 && txt[len - 1] == '\n' && txt[len - 2] == '}');
    assert_non_null(
        strstr(txt, "\n  \"current_response_time_percentile_50\": ")); /* 2-space indent */
    assert_non_null(
        strstr(txt, "\"last_heartbeat_age\": 0.1,")); /* shortest repr, not 0.1000...1 */
    /* keys sorted: errors before fail_ratio before stats */
    assert_true(strstr(txt, "\"errors\"") < strstr(txt, "\"fail_ratio\""));
    assert_true(strstr(txt, "\"fail_ratio\"") < strstr(txt, "\"stats\""));

    json_error_t jerr;
    json_t *doc = json_loads(txt, 0, &jerr);
    if (!doc) fail_msg("JSON does not parse: %s at line %d", jerr.text, jerr.line);
    assert_keys(doc, TOP_KEYS, sizeof(TOP_KEYS) / sizeof(TOP_KEYS[0]));
    assert_string_equal(json_string_value(json_object_get(doc, "state")), "running");
    assert_string_equal(json_string_value(json_object_get(doc, "test_id")), "t-1");
    assert_int_equal(json_integer_value(json_object_get(doc, "user_count")), 5);
    assert_true(jnum(doc, "run_time") == 30.25);
    assert_int_equal(json_integer_value(json_object_get(doc, "lost_reports")), 3);
    assert_int_equal(json_integer_value(json_object_get(doc, "reports_merged")), 7);
    assert_true(json_is_null(json_object_get(doc, "shape"))); /* no load shape */
    assert_true(jnum(doc, "fail_ratio") == 2.0 / 5.0);
    /* window [T0, T0+8): 3 requests over 8 s */
    assert_true(jnum(doc, "total_rps") == 0.375);
    assert_true(fabs(jnum(doc, "current_response_time_percentile_50") - 10.0) <= 0.1);
    assert_true(jnum(doc, "current_response_time_percentile_95") == 150.0);

    json_t *stats = json_object_get(doc, "stats");
    assert_int_equal(json_array_size(stats), 4);
    const char *names[] = {"/a,\"b\"", "/fake", "/q?a=1&b=<2>", "Aggregated"};
    for (size_t i = 0; i < 4; i++) {
        json_t *row = json_array_get(stats, i);
        assert_keys(row, ROW_KEYS, sizeof(ROW_KEYS) / sizeof(ROW_KEYS[0]));
        assert_string_equal(json_string_value(json_object_get(row, "name")), names[i]);
        json_t *p = json_object_get(row, "response_time_percentiles");
        assert_int_equal(json_object_size(p), 11);
        static const char *const pk[] = {"50", "66", "75",   "80",    "90", "95",
                                         "98", "99", "99.9", "99.99", "100"};
        for (size_t k = 0; k < 11; k++) assert_true(json_is_number(json_object_get(p, pk[k])));
    }
    json_t *q = json_array_get(stats, 2);
    assert_string_equal(json_string_value(json_object_get(q, "safe_name")),
                        "/q?a=1&amp;b=&lt;2&gt;");
    assert_true(jnum(q, "min_response_time") == 0.42); /* sub-ms precision kept */
    assert_true(jnum(q, "median_response_time") == 0.42);
    json_t *fake = json_array_get(stats, 1);
    assert_string_equal(json_string_value(json_object_get(fake, "method")), "GET");
    assert_int_equal(json_integer_value(json_object_get(fake, "num_requests")), 4);
    assert_int_equal(json_integer_value(json_object_get(fake, "num_failures")), 1);
    assert_int_equal(json_integer_value(json_object_get(fake, "aborted_at_stop")), 0);
    assert_int_equal(json_integer_value(json_object_get(doc, "aborted_at_stop")), 0);
    assert_true(jnum(fake, "avg_response_time") == 45.0);
    assert_true(jnum(fake, "max_response_time") == 150.0);
    assert_true(jnum(fake, "min_response_time") == 10.0);
    assert_true(jnum(fake, "ninety_ninth_response_time") == 150.0);
    assert_true(jnum(fake, "avg_content_length") == 100.0);
    /* percentile values are real numbers at full precision: 10 ms lies in bucket 9984..10111 */
    double p50 = jnum(json_object_get(fake, "response_time_percentiles"), "50");
    assert_true(p50 == 10.048);
    json_t *agg = json_array_get(stats, 3);
    assert_true(json_is_null(json_object_get(agg, "method"))); /* Locust: null */
    assert_int_equal(json_integer_value(json_object_get(agg, "num_requests")), 5);
    json_t *unused = json_array_get(stats, 0);
    assert_true(json_is_integer(json_object_get(unused, "min_response_time"))); /* Locust: 0 */
    assert_true(jnum(unused, "max_response_time") == 0.0);

    json_t *errors = json_object_get(doc, "errors");
    assert_int_equal(json_array_size(errors), 2);
    json_t *e1 = json_array_get(errors, 1); /* sorted: GET /fake, GET /q... */
    assert_keys(e1, (const char *const[]){"error", "method", "name", "occurrences"}, 4);
    assert_string_equal(json_string_value(json_object_get(e1, "error")),
                        "Err(&#x27;&lt;&quot;x&quot;&gt;&#x27;)");
    assert_string_equal(json_string_value(json_object_get(e1, "name")), "/q?a=1&amp;b=&lt;2&gt;");
    assert_int_equal(json_integer_value(json_object_get(e1, "occurrences")), 1);

    json_t *workers = json_object_get(doc, "workers");
    assert_int_equal(json_array_size(workers), 2);
    json_t *w1 = json_array_get(workers, 0);
    assert_keys(w1,
                (const char *const[]){"id", "host", "state", "user_count", "cpu_usage",
                                      "memory_usage", "last_heartbeat_age"},
                7);
    assert_int_equal(json_integer_value(json_object_get(w1, "memory_usage")), 1234567);
    assert_true(jnum(w1, "cpu_usage") == 12.5);
    assert_true(json_is_null(json_object_get(json_array_get(workers, 1), "host")));
    json_decref(doc);
    free(txt);
    acr_stats_free(s);
}

/* current_response_time_percentile_* come from the window the caller passes, not the run. */
static void test_json_current_window(void **state)
{
    (void)state;
    acr_stats_t *s = known_stats();
    acr_hist_t *win = malloc(sizeof(*win));
    assert_non_null(win);
    acr_hist_reset(win);
    for (int i = 0; i < 100; i++) acr_hist_record(win, 50000); /* 50 ms, unlike the run's */
    acr_report_meta_t m = {.state = "running",
                           .user_count = 1,
                           .run_time = 1,
                           .test_id = "t",
                           .now = T0 + 10,
                           .current = win};
    char *txt = acr_report_json(s, &m);
    assert_non_null(txt);
    json_t *doc = json_loads(txt, 0, NULL);
    assert_non_null(doc);
    assert_true(jnum(doc, "current_response_time_percentile_50") == 50.0);
    assert_true(jnum(doc, "current_response_time_percentile_95") == 50.0);
    json_decref(doc);
    free(txt);
    acr_hist_reset(win); /* nothing in the last 10 s: null, as Locust before data */
    txt = acr_report_json(s, &m);
    doc = json_loads(txt, 0, NULL);
    assert_true(json_is_null(json_object_get(doc, "current_response_time_percentile_50")));
    json_decref(doc);
    free(txt);
    free(win);
    acr_stats_free(s);
}

static void test_json_empty_and_limits(void **state)
{
    (void)state;
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    acr_report_meta_t m = {.state = "ready", .now = T0};
    char *txt = acr_report_json(s, &m);
    assert_non_null(txt);
    json_t *doc = json_loads(txt, 0, NULL);
    assert_non_null(doc);
    assert_true(json_is_null(json_object_get(doc, "current_response_time_percentile_50")));
    assert_true(json_is_null(json_object_get(doc, "current_response_time_percentile_95")));
    assert_true(json_is_integer(json_object_get(doc, "total_rps")));
    assert_int_equal(json_array_size(json_object_get(doc, "workers")), 0);
    assert_int_equal(json_array_size(json_object_get(doc, "errors")), 0);
    json_t *stats = json_object_get(doc, "stats");
    assert_int_equal(json_array_size(stats), 1);
    json_t *agg = json_array_get(stats, 0);
    assert_string_equal(json_string_value(json_object_get(agg, "name")), "Aggregated");
    assert_true(json_is_integer(json_object_get(agg, "current_rps")));
    assert_true(json_is_integer(json_object_get(agg, "avg_content_length")));
    assert_true(json_is_real(json_object_get(agg, "max_response_time")));
    json_decref(doc);
    free(txt);

    /* more than 500 entries and errors: 500 rows + Aggregated, 500 errors; non-ASCII escaped,
     * invalid UTF-8 does not break the document */
    char name[32];
    for (int i = 0; i < 600; i++) {
        snprintf(name, sizeof(name), "/n%04d", i);
        acr_stats_entry_t *e = acr_stats_get(s, "GET", name);
        assert_non_null(e);
        acr_stats_log(s, e, true, 1000, 0, "err", T0 + 1);
    }
    acr_stats_log(s, acr_stats_get(s, "GET", "/a\xc3\xbc"), true, 1000, 0, NULL, T0 + 1);
    acr_stats_log(s, acr_stats_get(s, "GET", "/bad\xff"), true, 1000, 0, NULL, T0 + 1);
    txt = acr_report_json(s, &m);
    assert_non_null(txt);
    assert_non_null(strstr(txt, "\"/a\\u00fc\""));
    doc = json_loads(txt, 0, NULL);
    assert_non_null(doc);
    stats = json_object_get(doc, "stats");
    assert_int_equal(json_array_size(stats), 501);
    assert_string_equal(json_string_value(json_object_get(json_array_get(stats, 0), "name")),
                        "/a\xc3\xbc");
    assert_string_equal(json_string_value(json_object_get(json_array_get(stats, 1), "name")),
                        "/bad?");
    assert_string_equal(json_string_value(json_object_get(json_array_get(stats, 500), "name")),
                        "Aggregated");
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(stats, 500), "num_requests")), 602);
    assert_int_equal(json_array_size(json_object_get(doc, "errors")), 500);
    json_decref(doc);
    free(txt);
    acr_stats_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt_float_python_repr),
        cmocka_unit_test(test_fmt_ms),
        cmocka_unit_test(test_csv_stats),
        cmocka_unit_test(test_csv_stats_sub_ms),
        cmocka_unit_test(test_csv_history),
        cmocka_unit_test(test_csv_failures_and_exceptions),
        cmocka_unit_test(test_console_tables),
        cmocka_unit_test(test_lost_reports_outputs),
        cmocka_unit_test(test_aborted_outputs),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_json_current_window),
        cmocka_unit_test(test_json_empty_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
