/*
 * Unit tests of --check (master/check.c): what each well-formed expression parses to, the exact
 * message of each malformed one, and the evaluation's lines and failure count on hand-built
 * statistics whose values are known exactly.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "master/check.c" /* the parsed items, for the parse table */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1700000000.0

static void test_parse_ok(void **state)
{
    (void)state;
    static const struct {
        const char *expr;
        metric_t metric;
        op_t op;
        double threshold;
        double pct;
        const char *prefix; /* NULL: Aggregated */
        const char *metric_name;
    } cases[] = {
        {"fail_ratio<0.01", M_FAIL_RATIO, OP_LT, 0.01, 0, NULL, "fail_ratio"},
        {"fail_ratio<=1.5%", M_FAIL_RATIO, OP_LE, 0.015, 0, NULL, "fail_ratio"},
        {"p95<300ms", M_PERCENTILE, OP_LT, 300, 0.95, NULL, "p95"},
        {"p99.9<1s", M_PERCENTILE, OP_LT, 1000, 0.999, NULL, "p99.9"},
        {"p99.99<2.5s", M_PERCENTILE, OP_LT, 2500, 0.9999, NULL, "p99.99"},
        {"p100<1m", M_PERCENTILE, OP_LT, 60000, 1.0, NULL, "p100"},
        {"p0>0", M_PERCENTILE, OP_GT, 0, 0.0, NULL, "p0"},
        {"p50 <= 250us", M_PERCENTILE, OP_LE, 0.25, 0.5, NULL, "p50"},
        {"  avg<50ms  ", M_AVG, OP_LT, 50, 0, NULL, "avg"},
        {"min>.5", M_MIN, OP_GT, 0.5, 0, NULL, "min"},
        {"max>=2m", M_MAX, OP_GE, 120000, 0, NULL, "max"},
        {"median==5", M_MEDIAN, OP_EQ, 5, 0.5, NULL, "median"},
        {"p95<300 ms", M_PERCENTILE, OP_LT, 300, 0.95, NULL, "p95"},
        {"rps>1000", M_RPS, OP_GT, 1000, 0, NULL, "rps"},
        {"rps >= 2.5e3", M_RPS, OP_GE, 2500, 0, NULL, "rps"},
        {"fail_per_sec < 0.5", M_FAIL_PER_SEC, OP_LT, 0.5, 0, NULL, "fail_per_sec"},
        {"requests>=1e6", M_REQUESTS, OP_GE, 1e6, 0, NULL, "requests"},
        {"failures==0", M_FAILURES, OP_EQ, 0, 0, NULL, "failures"},
        {"name=/api/items:p95<300ms", M_PERCENTILE, OP_LT, 300, 0.95, "/api/items", "p95"},
        /* the prefix runs to the last ':' and may hold ':', '=', '<' and spaces */
        {"name=a:b=c<d e:p99<1s", M_PERCENTILE, OP_LT, 1000, 0.99, "a:b=c<d e", "p99"},
        {"name=/x: rps > 1", M_RPS, OP_GT, 1, 0, "/x", "rps"},
        {"name=:rps>1", M_RPS, OP_GT, 1, 0, "", "rps"},
    };
    for (size_t i = 0; i < ACR_ARRAY_SIZE(cases); i++) {
        const char *exprs[] = {cases[i].expr, NULL};
        acr_check_t *c = NULL;
        char err[256] = "";
        int rc = acr_check_parse(exprs, &c, err, sizeof(err));
        if (rc != 0) fail_msg("'%s' did not parse: %s", cases[i].expr, err);
        assert_non_null(c);
        assert_int_equal(acr_check_count(c), 1);
        const check_item_t *it = &c->items[0];
        if (it->metric != cases[i].metric || it->op != cases[i].op ||
            fabs(it->threshold - cases[i].threshold) > 1e-9 * fmax(1, cases[i].threshold) ||
            fabs(it->pct - cases[i].pct) > 1e-12 ||
            strcmp(it->metric_name, cases[i].metric_name) != 0)
            fail_msg("'%s': metric %d op %d threshold %.17g pct %.17g name %s", cases[i].expr,
                     it->metric, it->op, it->threshold, it->pct, it->metric_name);
        if (cases[i].prefix)
            assert_non_null(it->prefix), assert_string_equal(it->prefix, cases[i].prefix);
        else
            assert_null(it->prefix);
        acr_check_free(c);
    }
}

static void test_parse_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *expr, *msg;
    } cases[] = {
        {"", "--check '': empty expression"},
        {"   ", "--check '': empty expression"},
        {"p95<3xx",
         "--check 'p95<3xx': '3xx' is not a number (units of p95: us, ms, s, m; ms when none)"},
        {"p95<300ms junk", "--check 'p95<300ms junk': '300ms junk' is not a number (units of p95: "
                           "us, ms, s, m; ms when none)"},
        {"p95 < 1 < 2",
         "--check 'p95 < 1 < 2': '1 < 2' is not a number (units of p95: us, ms, s, m; ms when "
         "none)"},
        {"p95<0x10", "--check 'p95<0x10': '0x10' is not a number (units of p95: us, ms, s, m; ms "
                     "when none)"},
        {"p95<1h",
         "--check 'p95<1h': '1h' is not a number (units of p95: us, ms, s, m; ms when none)"},
        {"p95<5%",
         "--check 'p95<5%': '5%' is not a number (units of p95: us, ms, s, m; ms when none)"},
        {"p95<nan",
         "--check 'p95<nan': 'nan' is not a number (units of p95: us, ms, s, m; ms when none)"},
        {"p95<inf",
         "--check 'p95<inf': 'inf' is not a number (units of p95: us, ms, s, m; ms when none)"},
        {"p95<+1",
         "--check 'p95<+1': '+1' is not a number (units of p95: us, ms, s, m; ms when none)"},
        {"rps>1e999", "--check 'rps>1e999': '1e999' is out of range"},
        {"p95<-1", "--check 'p95<-1': '-1' is negative"},
        {"failures>=-0", "--check 'failures>=-0': '-0' is negative"},
        {"p95x<3", "--check 'p95x<3': unknown metric 'p95x' (fail_ratio, avg, min, max, median, "
                   "pNN, rps, fail_per_sec, requests, failures)"},
        {"P95<3", "--check 'P95<3': unknown metric 'P95' (fail_ratio, avg, min, max, median, pNN, "
                  "rps, fail_per_sec, requests, failures)"},
        {"p<3", "--check 'p<3': unknown metric 'p' (fail_ratio, avg, min, max, median, pNN, rps, "
                "fail_per_sec, requests, failures)"},
        {"a_metric_name_much_too_long<3",
         "--check 'a_metric_name_much_too_long<3': unknown metric 'a_metric_name_much_too_long' "
         "(fail_ratio, avg, min, max, median, pNN, rps, fail_per_sec, requests, failures)"},
        {"p101<3", "--check 'p101<3': percentile 'p101' is not between p0 and p100"},
        {"<3", "--check '<3': missing metric (fail_ratio, avg, min, max, median, pNN, rps, "
               "fail_per_sec, requests, failures)"},
        {"p95", "--check 'p95': missing operator (<, <=, >, >=, ==) after 'p95'"},
        {"p95 300", "--check 'p95 300': missing operator (<, <=, >, >=, ==) after 'p95'"},
        {"p95<", "--check 'p95<': missing value after '<'"},
        {"p95 >=  ", "--check 'p95 >=': missing value after '>='"},
        {"p95=3", "--check 'p95=3': unknown operator '=' (<, <=, >, >=, ==)"},
        {"p95=<3", "--check 'p95=<3': unknown operator '=<' (<, <=, >, >=, ==)"},
        {"p95!=3", "--check 'p95!=3': unknown operator '!=' (<, <=, >, >=, ==)"},
        {"p95<<3", "--check 'p95<<3': unknown operator '<<' (<, <=, >, >=, ==)"},
        {"requests>10ms", "--check 'requests>10ms': requests takes no unit ('ms')"},
        {"failures<1%", "--check 'failures<1%': failures takes no unit ('%')"},
        {"rps>5s", "--check 'rps>5s': rps takes no unit ('s')"},
        {"rps>5/s", "--check 'rps>5/s': '5/s' is not a number (units of rps: none)"},
        {"fail_ratio<1ms", "--check 'fail_ratio<1ms': '1ms' is not a number (units of "
                           "fail_ratio: none for a ratio, or %)"},
        {"name=/api", "--check 'name=/api': missing ':' after the name prefix "
                      "(name=PREFIX:METRIC OP VALUE)"},
        {"name=/api:", "--check 'name=/api:': missing metric (fail_ratio, avg, min, max, median, "
                       "pNN, rps, fail_per_sec, requests, failures)"},
        {"name=/a:p95<1:5", "--check 'name=/a:p95<1:5': unknown metric '5' (fail_ratio, avg, "
                            "min, max, median, pNN, rps, fail_per_sec, requests, failures)"},
        {"/api:p95<1s", "--check '/api:p95<1s': unknown metric '/api:p95' (a name prefix is "
                        "written name=PREFIX:METRIC OP VALUE)"},
    };
    for (size_t i = 0; i < ACR_ARRAY_SIZE(cases); i++) {
        const char *exprs[] = {"p95<1s", cases[i].expr, NULL};
        acr_check_t *c = (acr_check_t *)&cases; /* must be reset to NULL */
        char err[512] = "";
        int rc = acr_check_parse(exprs, &c, err, sizeof(err));
        if (rc != -EINVAL || strcmp(err, cases[i].msg) != 0)
            fail_msg("'%s': rc %d, message\n  got  %s\n  want %s", cases[i].expr, rc, err,
                     cases[i].msg);
        assert_null(c);
    }
}

static void test_parse_empty_and_truncated_message(void **state)
{
    (void)state;
    acr_check_t *c = (acr_check_t *)&c;
    char err[8] = "x";
    assert_int_equal(acr_check_parse(NULL, &c, err, sizeof(err)), 0);
    assert_null(c);
    const char *none[] = {NULL};
    c = (acr_check_t *)&c;
    assert_int_equal(acr_check_parse(none, &c, err, sizeof(err)), 0);
    assert_null(c);
    assert_int_equal(acr_check_count(NULL), 0);
    assert_int_equal(acr_check_eval(NULL, NULL, 0, stdout), 0);
    acr_check_free(NULL);
    /* a message longer than the buffer is cut, NUL-terminated */
    const char *bad[] = {"p95<3xx", NULL};
    assert_int_equal(acr_check_parse(bad, &c, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "--check");
    assert_null(c);
}

/*
 * GET /api/items: 9 x 10 ms and 1 x 150 ms failed, at T0+1..T0+10; POST /api/users:v2=x: 4 x
 * 40 us at T0+5; GET /empty: created, no request. Aggregated: 14 requests, 1 failure over 10 s;
 * its 10 ms requests sit in the histogram bucket whose value is 10.048 ms.
 */
static acr_stats_t *known_stats(void)
{
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    acr_stats_entry_t *items = acr_stats_get(s, "GET", "/api/items");
    acr_stats_entry_t *users = acr_stats_get(s, "POST", "/api/users:v2=x");
    assert_non_null(items);
    assert_non_null(users);
    assert_non_null(acr_stats_get(s, "GET", "/empty"));
    for (int i = 1; i <= 9; i++) acr_stats_log(s, items, true, 10000, 10, NULL, T0 + i);
    acr_stats_log(s, items, true, 150000, 10, "HTTPError('500 Server Error')", T0 + 10);
    for (int i = 0; i < 4; i++) acr_stats_log(s, users, true, 40, 10, NULL, T0 + 5);
    return s;
}

static char *eval_text(const char *const *exprs, acr_stats_t *s, double run_time, size_t *failed)
{
    acr_check_t *c = NULL;
    char err[256] = "";
    if (acr_check_parse(exprs, &c, err, sizeof(err)) != 0) fail_msg("parse: %s", err);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    *failed = acr_check_eval(c, s, run_time, f);
    fclose(f);
    acr_check_free(c);
    return buf;
}

static void test_eval_lines(void **state)
{
    (void)state;
    acr_stats_t *s = known_stats();
    const char *exprs[] = {
        "fail_ratio<0.01",
        "fail_ratio < 10%",
        "p50<11ms",
        "median<50us",
        "p90<=10.048ms",
        "p99<=150ms",
        "max<1s",
        "min>=0.04ms",
        "avg<17.154ms",
        "rps>1000",
        "rps>=1.4",
        "fail_per_sec<=0.1",
        "requests==14",
        "failures==0",
        "name=/api/items:p95<100ms",
        "name=/api/:avg<50ms",
        "name=/api/users:v2=x:requests==4",
        "name=/nope:requests>0",
        "name=/empty:p50<1s",
        "name=/empty:requests==0",
        NULL,
    };
    size_t failed = 0;
    char *out = eval_text(exprs, s, 99, &failed);
    const char *want =
        "check fail_ratio<0.01: FAILED (fail_ratio = 0.071429 (1 of 14 requests))\n"
        "check fail_ratio < 10%: passed (fail_ratio = 0.071429 (1 of 14 requests))\n"
        "check p50<11ms: passed (p50 = 10.048 ms)\n"
        "check median<50us: FAILED (median = 10.048 ms)\n"
        "check p90<=10.048ms: passed (p90 = 10.048 ms)\n"
        "check p99<=150ms: passed (p99 = 150 ms)\n"
        "check max<1s: passed (max = 150 ms)\n"
        "check min>=0.04ms: passed (min = 0.04 ms)\n"
        "check avg<17.154ms: FAILED (avg = 17.154 ms)\n"
        "check rps>1000: FAILED (rps = 1.4)\n"
        "check rps>=1.4: passed (rps = 1.4)\n"
        "check fail_per_sec<=0.1: passed (fail_per_sec = 0.1)\n"
        "check requests==14: passed (requests = 14)\n"
        "check failures==0: FAILED (failures = 1)\n"
        "check name=/api/items:p95<100ms: FAILED (GET /api/items: p95 = 150 ms)\n"
        "check name=/api/:avg<50ms: passed (GET /api/items: avg = 24 ms)\n"
        "check name=/api/:avg<50ms: passed (POST /api/users:v2=x: avg = 0.04 ms)\n"
        "check name=/api/users:v2=x:requests==4: passed (POST /api/users:v2=x: requests = 4)\n"
        "check name=/nope:requests>0: FAILED (no entry whose name starts with '/nope')\n"
        "check name=/empty:p50<1s: FAILED (GET /empty: p50: no response times recorded)\n"
        "check name=/empty:requests==0: passed (GET /empty: requests = 0)\n";
    assert_string_equal(out, want);
    assert_int_equal(failed, 8);
    free(out);
    acr_stats_free(s);
}

/* A name= check fails when any matching entry fails, and counts once. */
static void test_eval_prefix_any_entry_fails(void **state)
{
    (void)state;
    acr_stats_t *s = known_stats();
    const char *exprs[] = {"name=/api:p95<1ms", "name=:requests>0", NULL};
    size_t failed = 0;
    char *out = eval_text(exprs, s, 0, &failed);
    assert_string_equal(out,
                        "check name=/api:p95<1ms: FAILED (GET /api/items: p95 = 150 ms)\n"
                        "check name=/api:p95<1ms: passed (POST /api/users:v2=x: p95 = 0.04 ms)\n"
                        "check name=:requests>0: passed (GET /api/items: requests = 10)\n"
                        "check name=:requests>0: passed (POST /api/users:v2=x: requests = 4)\n"
                        "check name=:requests>0: FAILED (GET /empty: requests = 0)\n");
    assert_int_equal(failed, 2);
    free(out);
    acr_stats_free(s);
}

/* No requests at all: times fail (nothing measured), rates are 0; without a span of request
 * time stamps, rps divides by the run time; control characters in names print as '?'. */
static void test_eval_empty_and_run_time(void **state)
{
    (void)state;
    acr_stats_t *s = acr_stats_new(T0);
    assert_non_null(s);
    const char *exprs[] = {"p95<1s", "rps==0", "fail_ratio==0", "name=bad:requests==0", NULL};
    assert_non_null(acr_stats_get(s, "GET", "bad\nname\x7f"));
    size_t failed = 0;
    char *out = eval_text(exprs, s, 10, &failed);
    assert_string_equal(out,
                        "check p95<1s: FAILED (p95: no response times recorded)\n"
                        "check rps==0: passed (rps = 0)\n"
                        "check fail_ratio==0: passed (fail_ratio = 0 (0 of 0 requests))\n"
                        "check name=bad:requests==0: passed (GET bad\\nname\\x7f: requests = 0)\n");
    assert_int_equal(failed, 1);
    free(out);
    /* no stats at all (no report yet) reads as empty stats */
    const char *one[] = {"p95<1s", "requests==0", NULL};
    out = eval_text(one, NULL, 10, &failed);
    assert_string_equal(out, "check p95<1s: FAILED (p95: no response times recorded)\n"
                             "check requests==0: passed (requests = 0)\n");
    assert_int_equal(failed, 1);
    free(out);
    acr_stats_entry_t *total = acr_stats_total(s);
    total->num_requests = 50; /* as if merged without time stamps */
    total->num_failures = 5;
    const char *rates[] = {"rps==5", "fail_per_sec==0.5", NULL};
    out = eval_text(rates, s, 10, &failed);
    assert_string_equal(out, "check rps==5: passed (rps = 5)\n"
                             "check fail_per_sec==0.5: passed (fail_per_sec = 0.5)\n");
    assert_int_equal(failed, 0);
    free(out);
    acr_stats_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_parse_empty_and_truncated_message),
        cmocka_unit_test(test_eval_lines),
        cmocka_unit_test(test_eval_prefix_any_entry_fails),
        cmocka_unit_test(test_eval_empty_and_run_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
