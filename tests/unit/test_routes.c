/*
 * The HTTP API's routes (master/web/routes*.c) without a socket: each test builds requests,
 * calls acr_routes_handle over a real control core (fake workers fed to its registry as the
 * ROUTER would; what the core sends goes nowhere) and inspects the answers: status, headers,
 * JSON, CSV. /swarm's checks are table-driven, and every refused request is shown to leave a
 * running test as it was.
 */
#include "master/core/core_int.h"
#include "master/web/routes.h"

#include "common/util.h"
#include "proto/msg.h"

#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "unit_core.h"

static char *reader_tasks[] = {(char *)"browse", (char *)"search"};
static double reader_weights[] = {3, 1};
static char *writer_tasks[] = {(char *)"post", (char *)"post"};
static double writer_weights[] = {1, 1};

static acr_user_class_t classes[] = {
    {(char *)"Reader", 3, 0, NULL, reader_tasks, reader_weights, 2},
    {(char *)"Writer", 1, 0, NULL, writer_tasks, writer_weights, 2},
};

typedef struct {
    uv_loop_t loop;
    acr_core_t *c;
    acr_cli_opts_t opts;
    acr_routes_t r;
    acr_httpd_resp_t resp;
    acr_buf_t b;
    char tmp[64];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    acr_core_config_t cfg = {
        .classes = classes,
        .nclasses = ACR_ARRAY_SIZE(classes),
        .host = "http://default.test",
        .stop_timeout = -1,
    };
    ucore_open(&f->loop, &cfg, &f->c);
    f->opts.scenario = (char *)"s.lua";
    f->opts.host = (char *)"http://default.test";
    f->r = (acr_routes_t){
        .core = f->c,
        .opts = &f->opts,
        .classes = classes,
        .nclasses = ACR_ARRAY_SIZE(classes),
    };
    assert_int_equal(acr_core_subscribe(f->c, acr_routes_core_listener, &f->r), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    ucore_close(&f->loop, f->c);
    acr_buf_free(&f->resp.headers);
    acr_buf_free(&f->resp.body);
    acr_buf_free(&f->b);
    if (f->tmp[0]) {
        char path[128];
        snprintf(path, sizeof(path), "%s/run_stats_history.csv", f->tmp);
        unlink(path);
        rmdir(f->tmp);
    }
    free(f);
    return 0;
}

/* ---- requests ---- */

/* Answers one request as the server would call the routes; returns the status. The answer
 * stays in f->resp until the next call. */
static int call(fixture_t *f, const char *method, const char *path, const char *ctype,
                const char *body)
{
    char p[256];
    const char *q = strchr(path, '?');
    snprintf(p, sizeof(p), "%.*s", q ? (int)(q - path) : (int)strlen(path), path);
    acr_httpd_req_t req = {
        .method = method,
        .path = p,
        .query = q ? q + 1 : "",
        .content_type = ctype ? ctype : "",
        .body = body ? body : "",
        .body_len = body ? strlen(body) : 0,
        .peer = "127.0.0.1:1",
    };
    acr_buf_reset(&f->resp.headers);
    acr_buf_reset(&f->resp.body);
    acr_buf_append(&f->resp.body, "", 0);
    acr_buf_append(&f->resp.headers, "", 0);
    f->resp.status = 200;
    f->resp.content_type = "text/plain; charset=utf-8";
    acr_routes_handle(&f->r, &req, &f->resp);
    return f->resp.status;
}

static int get(fixture_t *f, const char *path)
{
    return call(f, "GET", path, NULL, NULL);
}

static int form(fixture_t *f, const char *body)
{
    return call(f, "POST", "/swarm", "application/x-www-form-urlencoded", body);
}

static int json(fixture_t *f, const char *body)
{
    return call(f, "POST", "/swarm", "application/json", body);
}

/* The answer as JSON (the test fails when it is not). The caller decrefs. */
static json_t *doc(fixture_t *f)
{
    json_error_t e;
    json_t *d = json_loads(f->resp.body.data, 0, &e);
    if (!d) fail_msg("not JSON (%s): %s", e.text, f->resp.body.data);
    return d;
}

/* The answer is an error: success false and a message containing @needle. */
static void assert_error(fixture_t *f, int status, const char *needle)
{
    if (f->resp.status != status)
        fail_msg("status %d, expected %d: %s", f->resp.status, status, f->resp.body.data);
    json_t *d = doc(f);
    assert_true(json_is_false(json_object_get(d, "success")));
    const char *msg = json_string_value(json_object_get(d, "message"));
    assert_non_null(msg);
    if (!strstr(msg, needle)) fail_msg("message '%s' does not contain '%s'", msg, needle);
    json_decref(d);
}

static bool has_header(fixture_t *f, const char *prefix)
{
    return f->resp.headers.data && strstr(f->resp.headers.data, prefix) != NULL;
}

/* ---- fake workers ---- */

static acr_core_snapshot_t snap(fixture_t *f)
{
    acr_core_snapshot_t s;
    assert_int_equal(acr_core_snapshot(f->c, &s), 0);
    acr_core_snapshot_free(&s); /* only the scalar fields are read */
    return s;
}

/* A running test of 10 users at 100/s on one worker, started through /swarm. */
static void running(fixture_t *f)
{
    ucore_worker_ready(f->c, &f->b, "h1_a");
    assert_int_equal(form(f, "user_count=10&spawn_rate=100"), 200);
    ucore_worker_spawned(f->c, &f->b, "h1_a");
    acr_core_snapshot_t s = snap(f);
    assert_int_equal(s.state, ACR_RUN_RUNNING);
    assert_int_equal(s.target_users, 10);
}

/* ---- routing ---- */

static void test_unknown_and_methods(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(get(f, "/nope"), 404);
    assert_error(f, 404, "/nope");
    assert_int_equal(call(f, "POST", "/stats/requests", "", ""), 405);
    assert_error(f, 405, "POST");
    assert_true(has_header(f, "Allow: GET, HEAD, OPTIONS\r\n"));
    assert_int_equal(get(f, "/swarm"), 405);
    assert_true(has_header(f, "Allow: POST, OPTIONS\r\n"));
    assert_int_equal(call(f, "DELETE", "/stop", NULL, NULL), 405);
    assert_true(has_header(f, "Allow: GET, HEAD, POST, OPTIONS\r\n"));
    assert_int_equal(call(f, "OPTIONS", "/stats/requests", NULL, NULL), 200);
    assert_true(has_header(f, "Allow: GET, HEAD, OPTIONS\r\n"));
    /* a path with bytes that are not UTF-8 still gets a JSON answer */
    assert_int_equal(get(f, "/\xff\xfe\x01"), 404);
    assert_error(f, 404, "/???");
    assert_int_equal(call(f, "HEAD", "/stats/requests", NULL, NULL), 200);
}

static void test_static_files(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(get(f, "/"), 200);
    assert_non_null(strstr(f->resp.content_type, "text/html"));
    assert_true(f->resp.body.len > 0);
    assert_int_equal(get(f, "/static/index.html"), 200);
    assert_int_equal(get(f, "/static/nope.js"), 404);
    assert_int_equal(get(f, "/static/../index.html"), 404);
    assert_int_equal(get(f, "/static/a/index.html"), 404);
    assert_int_equal(get(f, "/static/"), 404);
    assert_int_equal(get(f, "/static/.."), 404);
}

/* ---- /swarm ---- */

typedef struct bad_case {
    const char *ctype, *body, *needle;
    int status;
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"application/x-www-form-urlencoded", "spawn_rate=1", "user_count is required", 400},
    {"application/x-www-form-urlencoded", "user_count=1", "spawn_rate is required", 400},
    {"application/x-www-form-urlencoded", "", "user_count is required", 400},
    {"application/x-www-form-urlencoded", "user_count=abc&spawn_rate=1", "user_count", 400},
    {"application/x-www-form-urlencoded", "user_count=1.5&spawn_rate=1", "user_count", 400},
    {"application/x-www-form-urlencoded", "user_count=-3&spawn_rate=1", "user_count must be >= 0",
     400},
    {"application/x-www-form-urlencoded", "user_count=99999999999999999999999&spawn_rate=1",
     "user_count must be at most", 400},
    {"application/x-www-form-urlencoded", "user_count=10000001&spawn_rate=1",
     "user_count must be at most", 400},
    {"application/x-www-form-urlencoded", "locust_count=x&hatch_rate=1", "locust_count", 400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=nan", "spawn_rate", 400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=inf", "spawn_rate", 400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=0", "spawn_rate", 400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=-1", "spawn_rate", 400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=0x10", "spawn_rate", 400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=1e300", "spawn_rate", 400},
    {"application/x-www-form-urlencoded", "user_count=1&hatch_rate=fast", "hatch_rate", 400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=1&run_time=soon", "run_time",
     400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=1&run_time=5m3h", "run_time",
     400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=1&host=example.com", "host",
     400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=1&host=ftp%3A%2F%2Fx", "host",
     400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=1&host=http%3A%2F%2Fx%3A0",
     "host", 400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=1&host=http%3A%2F%2F", "host",
     400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=1&host=http%3A%2F%2Fa+b", "host",
     400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=1&user_classes=Nobody",
     "unknown user class 'Nobody'", 400},
    {"application/x-www-form-urlencoded", "user_count=1%00&spawn_rate=1", "user_count", 400},
    {"application/json", "{\"user_count\": 1", "not valid JSON", 400},
    {"application/json", "[1, 2]", "must be an object", 400},
    {"application/json", "", "not valid JSON", 400},
    {"application/json", "{\"spawn_rate\": 1}", "user_count is required", 400},
    {"application/json", "{\"user_count\": \"ten\", \"spawn_rate\": 1}", "user_count", 400},
    {"application/json", "{\"user_count\": true, \"spawn_rate\": 1}", "user_count", 400},
    {"application/json", "{\"user_count\": -1, \"spawn_rate\": 1}", "user_count must be >= 0", 400},
    {"application/json", "{\"user_count\": 1e30, \"spawn_rate\": 1}", "user_count", 400},
    {"application/json", "{\"user_count\": 2.5, \"spawn_rate\": 1}", "user_count", 400},
    {"application/json", "{\"user_count\": 1, \"spawn_rate\": \"NaN\"}", "spawn_rate", 400},
    {"application/json", "{\"user_count\": 1, \"spawn_rate\": [1]}", "spawn_rate", 400},
    {"application/json", "{\"user_count\": 1, \"spawn_rate\": NaN}", "not valid JSON", 400},
    {"application/json", "{\"user_count\": 1, \"spawn_rate\": 1, \"run_time\": -5}", "run_time",
     400},
    {"application/json", "{\"user_count\": 1, \"spawn_rate\": 1, \"run_time\": {}}", "run_time",
     400},
    {"application/json", "{\"user_count\": 1, \"spawn_rate\": 1, \"host\": 5}", "host", 400},
    {"application/json",
     "{\"user_count\": 1, \"spawn_rate\": 1, \"user_classes\": [\"Reader\", 3]}", "user_classes",
     400},
    {"application/json", "{\"user_count\": 1, \"spawn_rate\": 1, \"user_classes\": [\"X<\"]}",
     "unknown user class 'X<'", 400},
    {"application/json", "{\"user_count\": 1, \"spawn_rate\": 1, \"user_classes\": 7}",
     "user_classes", 400},
    /* hostile values found by tests/integration/test_web_hostile.py's attacks: a spawn rate so
     * small that the ramp's wait overflowed (the ramp went instant); a host that is not ASCII */
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=1e-300",
     "spawn_rate must be at least 1e-06 users/s", 400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=4.9e-324", "spawn_rate", 400},
    {"application/json", "{\"user_count\": 1, \"spawn_rate\": 1e-300}", "spawn_rate", 400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=1&host=http%3A%2F%2F%FF%FE",
     "host must be ASCII", 400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=1&host=http%3A%2F%2F%C3%A9.com",
     "host must be ASCII", 400},
    {"application/x-www-form-urlencoded", "user_count=1&spawn_rate=1&host=http%3A%2F%2Fa%0D%0AX",
     "control characters", 400},
    {"text/plain", "user_count=1&spawn_rate=1", "Content-Type", 415},
    {"multipart/form-data; boundary=x", "--x--", "Content-Type", 415},
};

static void run_bad_cases(fixture_t *f)
{
    for (size_t i = 0; i < ACR_ARRAY_SIZE(bad_cases); i++) {
        const bad_case_t *c = &bad_cases[i];
        call(f, "POST", "/swarm", c->ctype, c->body);
        if (f->resp.status != c->status)
            fail_msg("case %zu (%s): status %d, expected %d: %s", i, c->body, f->resp.status,
                     c->status, f->resp.body.data);
        assert_error(f, c->status, c->needle);
    }
}

static void test_swarm_bad_input_when_ready(void **state)
{
    fixture_t *f = *state;
    ucore_worker_ready(f->c, &f->b, "h1_a");
    run_bad_cases(f);
    assert_int_equal(snap(f).state, ACR_RUN_READY);
}

static void test_swarm_bad_input_leaves_the_test_alone(void **state)
{
    fixture_t *f = *state;
    running(f);
    run_bad_cases(f);
    acr_core_snapshot_t s = snap(f);
    assert_int_equal(s.state, ACR_RUN_RUNNING);
    assert_int_equal(s.target_users, 10);
    assert_int_equal(s.user_count, 10);
    /* a run time cannot be given to a test under way */
    assert_int_equal(form(f, "user_count=3&spawn_rate=1&run_time=5m"), 400);
    assert_error(f, 400, "run_time");
    assert_int_equal(snap(f).target_users, 10);
}

static void test_swarm_without_worker(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(form(f, "user_count=1&spawn_rate=1"), 503);
    assert_error(f, 503, "no worker");
    assert_int_equal(snap(f).state, ACR_RUN_READY);
}

static void test_swarm_form_start_and_reply(void **state)
{
    fixture_t *f = *state;
    ucore_worker_ready(f->c, &f->b, "h1_a");
    assert_int_equal(form(f, "user_count=4&spawn_rate=2.5&host=http%3A%2F%2Fex<am>ple.test%3A8080"
                             "&run_time=1h20m&user_classes=Writer&user_classes=Reader&x=y"),
                     200);
    json_t *d = doc(f);
    assert_true(json_is_true(json_object_get(d, "success")));
    assert_string_equal(json_string_value(json_object_get(d, "message")), "Swarming started");
    assert_string_equal(json_string_value(json_object_get(d, "host")), "http://example.test:8080");
    assert_int_equal(json_integer_value(json_object_get(d, "run_time")), 4800);
    json_t *uc = json_object_get(d, "user_classes");
    assert_int_equal(json_array_size(uc), 2);
    assert_string_equal(json_string_value(json_array_get(uc, 0)), "Reader");
    assert_string_equal(json_string_value(json_array_get(uc, 1)), "Writer");
    json_decref(d);
    assert_non_null(strstr(f->resp.body.data, "{\n  \"host\": "));
    assert_int_equal(f->resp.body.data[f->resp.body.len - 1], '\n');
    assert_string_equal(f->resp.content_type, "application/json");
    acr_core_snapshot_t s = snap(f);
    assert_int_equal(s.state, ACR_RUN_SPAWNING);
    assert_int_equal(s.target_users, 4);
    assert_true(s.spawn_rate == 2.5);
    assert_int_equal(f->r.users, 4);
    assert_string_equal(f->r.host, "http://example.test:8080");
    assert_true(f->r.start_time > 0);
    assert_true(f->r.end_time == 0);
}

static void test_swarm_json_legacy_names_and_edit(void **state)
{
    fixture_t *f = *state;
    running(f);
    /* an edit: legacy names, JSON, numbers as strings */
    assert_int_equal(json(f, "{\"locust_count\": \"25\", \"hatch_rate\": 50}"), 200);
    json_t *d = doc(f);
    assert_true(json_is_true(json_object_get(d, "success")));
    assert_null(json_object_get(d, "run_time"));
    assert_null(json_object_get(d, "user_classes"));
    json_decref(d);
    acr_core_snapshot_t s = snap(f);
    assert_int_equal(s.state, ACR_RUN_SPAWNING);
    assert_int_equal(s.target_users, 25);
    /* user_count wins over locust_count; an empty host keeps the current one */
    assert_int_equal(json(f, "{\"user_count\": 7.0, \"locust_count\": 99, \"spawn_rate\": 1, "
                             "\"host\": \"\", \"run_time\": null}"),
                     200);
    assert_int_equal(snap(f).target_users, 7);
    d = doc(f);
    assert_string_equal(json_string_value(json_object_get(d, "host")), "http://default.test");
    json_decref(d);
}

static void test_swarm_json_start_with_classes(void **state)
{
    fixture_t *f = *state;
    ucore_worker_ready(f->c, &f->b, "h1_a");
    assert_int_equal(json(f, "{\"user_count\": 0, \"spawn_rate\": 1, \"run_time\": 90.5, "
                             "\"user_classes\": \"Writer\"}"),
                     200);
    json_t *d = doc(f);
    assert_true(json_real_value(json_object_get(d, "run_time")) == 90.5);
    assert_string_equal(json_string_value(json_array_get(json_object_get(d, "user_classes"), 0)),
                        "Writer");
    json_decref(d);
}

/* ---- /stop, /stats/reset ---- */

static void test_stop_is_idempotent(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(get(f, "/stop"), 200);
    assert_string_equal(f->resp.body.data,
                        "{\n  \"message\": \"Test stopped\",\n  \"success\": true\n}\n");
    running(f);
    assert_int_equal(call(f, "POST", "/stop", NULL, NULL), 200);
    assert_int_equal(snap(f).state, ACR_RUN_STOPPING);
    /* while stopping: /swarm is refused, /stop still answers */
    assert_int_equal(form(f, "user_count=1&spawn_rate=1"), 409);
    assert_error(f, 409, "stopping");
    assert_int_equal(get(f, "/stop"), 200);
    assert_int_equal(get(f, "/stats/reset"), 200);
    assert_string_equal(f->resp.body.data, "ok");
    assert_non_null(strstr(f->resp.content_type, "text/html"));
}

/* ---- data routes ---- */

static void test_requests_before_any_test(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(get(f, "/stats/requests"), 200);
    assert_string_equal(f->resp.content_type, "application/json");
    json_t *d = doc(f);
    assert_string_equal(json_string_value(json_object_get(d, "state")), "ready");
    json_t *rows = json_object_get(d, "stats");
    assert_int_equal(json_array_size(rows), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "name")),
                        "Aggregated");
    assert_int_equal(json_array_size(json_object_get(d, "workers")), 0);
    json_decref(d);
}

static void test_csv_downloads(void **state)
{
    fixture_t *f = *state;
    static const struct {
        const char *path, *header, *file;
    } csvs[] = {
        {"/stats/requests/csv",
         "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min "
         "Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,"
         "80%,90%,95%,98%,99%,99.9%,99.99%,100%\r\n",
         "Content-Disposition: attachment;filename=requests_"},
        {"/stats/failures/csv", "Method,Name,Error,Occurrences\r\n",
         "Content-Disposition: attachment;filename=failures_"},
        {"/exceptions/csv", "Count,Message,Traceback,Nodes\r\n",
         "Content-Disposition: attachment;filename=exceptions_"},
    };
    for (size_t i = 0; i < ACR_ARRAY_SIZE(csvs); i++) {
        assert_int_equal(get(f, csvs[i].path), 200);
        assert_string_equal(f->resp.content_type, "text/csv");
        if (strncmp(f->resp.body.data, csvs[i].header, strlen(csvs[i].header)) != 0)
            fail_msg("%s: %s", csvs[i].path, f->resp.body.data);
        assert_true(has_header(f, csvs[i].file));
        assert_true(has_header(f, ".csv\r\n"));
    }
}

static void test_full_history(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(get(f, "/stats/requests_full_history/csv"), 404);
    assert_string_equal(f->resp.body.data,
                        "Error: Server was not started with option to generate full history.");
    snprintf(f->tmp, sizeof(f->tmp), "/tmp/acr_routes_XXXXXX");
    assert_non_null(mkdtemp(f->tmp));
    char prefix[128], path[160];
    snprintf(prefix, sizeof(prefix), "%s/run", f->tmp);
    f->opts.csv = prefix;
    f->opts.csv_full_history = true;
    assert_int_equal(get(f, "/stats/requests_full_history/csv"), 404);
    snprintf(path, sizeof(path), "%s_stats_history.csv", prefix);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("Timestamp,User Count\r\n1,0\r\n", fp);
    fclose(fp);
    assert_int_equal(get(f, "/stats/requests_full_history/csv"), 200);
    assert_string_equal(f->resp.body.data, "Timestamp,User Count\r\n1,0\r\n");
    assert_true(has_header(f, "Content-Disposition: attachment; filename=requests_full_history_"));
    f->opts.csv = NULL;
}

static void test_exceptions_escaped(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(get(f, "/exceptions"), 200);
    assert_string_equal(f->resp.body.data, "{\n  \"exceptions\": []\n}\n");
    running(f);
    acr_buf_reset(&f->b);
    assert_int_equal(acr_msg_encode_exception(&f->b, "bad <b>'x'</b>", "tb & \"more\"", 2, "h1_a"),
                     0);
    ucore_feed(f->c, &f->b, "h1_a");
    assert_int_equal(get(f, "/exceptions"), 200);
    json_t *d = doc(f);
    json_t *e = json_array_get(json_object_get(d, "exceptions"), 0);
    assert_non_null(e);
    assert_int_equal(json_integer_value(json_object_get(e, "count")), 2);
    assert_string_equal(json_string_value(json_object_get(e, "msg")),
                        "bad &lt;b&gt;&#x27;x&#x27;&lt;/b&gt;");
    assert_string_equal(json_string_value(json_object_get(e, "traceback")),
                        "tb &amp; &quot;more&quot;");
    assert_string_equal(json_string_value(json_object_get(e, "nodes")), "h1_a");
    json_decref(d);
}

static double ratio_at(json_t *d, const char *part, const char *cls, const char *task)
{
    json_t *c = json_object_get(json_object_get(d, part), cls);
    if (task) c = json_object_get(json_object_get(c, "tasks"), task);
    if (!c) fail_msg("no %s/%s/%s", part, cls, task ? task : "");
    return json_real_value(json_object_get(c, "ratio"));
}

static void test_tasks(void **state)
{
    fixture_t *f = *state;
    /* before any user: one round of the dispatcher, weights 3:1 */
    assert_int_equal(get(f, "/tasks"), 200);
    json_t *d = doc(f);
    assert_true(ratio_at(d, "per_class", "Reader", NULL) == 0.75);
    assert_true(ratio_at(d, "per_class", "Writer", NULL) == 0.25);
    assert_true(ratio_at(d, "per_class", "Reader", "browse") == 0.75);
    assert_true(ratio_at(d, "per_class", "Reader", "search") == 0.25);
    assert_true(ratio_at(d, "per_class", "Writer", "post") == 1.0); /* same name: summed */
    assert_true(ratio_at(d, "total", "Reader", "browse") == 0.5625);
    assert_true(ratio_at(d, "total", "Writer", "post") == 0.25);
    json_decref(d);
    /* 10 users running: the ratios are what the core's dispatcher placed */
    running(f);
    acr_dispatch_t *disp = f->c->run.dispatch;
    double placed[2] = {0};
    for (size_t k = 0; k < acr_dispatch_nclasses(disp); k++)
        placed[strcmp(acr_dispatch_class_name(disp, k), "Reader") == 0 ? 0 : 1] +=
            (double)acr_dispatch_entry_counts(disp, 0)[k];
    assert_true(placed[0] + placed[1] == 10);
    assert_true(placed[0] != 7.5); /* not a plain weight split */
    assert_int_equal(get(f, "/tasks"), 200);
    d = doc(f);
    assert_true(ratio_at(d, "per_class", "Reader", NULL) == placed[0] / 10);
    assert_true(ratio_at(d, "per_class", "Writer", NULL) == placed[1] / 10);
    assert_true(ratio_at(d, "total", "Writer", "post") == placed[1] / 10);
    json_decref(d);
}

static void test_workers_and_metrics(void **state)
{
    fixture_t *f = *state;
    running(f);
    ucore_worker_ready(f->c, &f->b, "h2_b");
    assert_int_equal(get(f, "/workers"), 200);
    json_t *d = doc(f);
    assert_int_equal(json_integer_value(json_object_get(d, "total")), 2);
    assert_string_equal(json_string_value(json_object_get(d, "state")), "running");
    json_t *w = json_array_get(json_object_get(d, "workers"), 0);
    assert_string_equal(json_string_value(json_object_get(w, "id")), "h1_a");
    const char *keys[] = {"host",         "state",     "user_count",
                          "memory_usage", "cpu_usage", "last_heartbeat_age"};
    for (size_t i = 0; i < ACR_ARRAY_SIZE(keys); i++)
        if (!json_object_get(w, keys[i])) fail_msg("no %s in a worker row", keys[i]);
    json_t *by = json_object_get(d, "by_state");
    long sum = 0;
    const char *k;
    json_t *v;
    json_object_foreach(by, k, v) sum += (long)json_integer_value(v);
    assert_int_equal(sum, 2);
    json_decref(d);
    assert_int_equal(get(f, "/metrics"), 200);
    assert_string_equal(f->resp.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_non_null(strstr(f->resp.body.data, "acrida_users"));
    assert_int_equal(get(f, "/stats/history"), 200);
    assert_string_equal(f->resp.body.data, "[]\n");
}

static void test_report(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(get(f, "/stats/report"), 200);
    assert_non_null(strstr(f->resp.content_type, "text/html"));
    assert_non_null(strstr(f->resp.body.data, "<html"));
    assert_false(has_header(f, "Content-Disposition"));
    assert_int_equal(get(f, "/stats/report?download=1"), 200);
    assert_true(has_header(f, "Content-Disposition: attachment;filename=report_"));
    assert_int_equal(get(f, "/stats/report?download="), 200);
    assert_false(has_header(f, "Content-Disposition"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unknown_and_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_static_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swarm_bad_input_when_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swarm_bad_input_leaves_the_test_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_swarm_without_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swarm_form_start_and_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swarm_json_legacy_names_and_edit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_swarm_json_start_with_classes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_is_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requests_before_any_test, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_downloads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exceptions_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tasks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workers_and_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
