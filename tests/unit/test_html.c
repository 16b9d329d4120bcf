/*
 * The HTML report (master/html.c): a run whose names, errors, tracebacks, node ids, hosts and
 * scenario name are hostile must appear escaped and never raw; the document is self-contained
 * (no URL outside uPlot's own text and the run's host, no script src or link); every table is
 * there with its rows in order; the chart samples parse back from their JSON block; the download
 * link toggles; the escapers for JSON in a script and for inlined library text are checked
 * directly (the test includes html.c and history.c to reach them).
 */
#include "master/history.c"
#include "master/html.c"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#define HOSTILE_NAME "<script>alert(1)</script>"
#define HOSTILE_QUOTES "a\"b'c&d"
#define HOSTILE_ERROR "</script><!-- boom \"x\" 'y' & z"
#define HOSTILE_TB "line 1\n</script>\n<img src=x onerror=alert(1)>"
#define HOST "http://target.test:8080/'x'"

typedef struct {
    acr_core_snapshot_t snap;
    acr_core_worker_t workers[2];
    acr_core_lost_t lost[1];
    acr_history_t *history;
    acr_html_input_t in;
} run_t;

static void add_requests(acr_stats_t *st, const char *method, const char *name, int n,
                         uint64_t rt_us, const char *error)
{
    acr_stats_entry_t *e = acr_stats_get(st, method, name);
    assert_non_null(e);
    for (int i = 0; i < n; i++) acr_stats_log(st, e, true, rt_us, 100, error, 1010.0);
}

static run_t *hostile_run(void)
{
    run_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    acr_stats_t *st = acr_stats_new(1000.0);
    assert_non_null(st);
    add_requests(st, "GET", "/ok", 4, 2000, NULL);
    add_requests(st, "GET", HOSTILE_NAME, 3, 1500, NULL);
    add_requests(st, "POST", HOSTILE_QUOTES, 2, 500, HOSTILE_ERROR);
    assert_int_equal(acr_stats_add_exception(st, "<b>bad</b>", HOSTILE_TB, "node<1>", 5), 0);
    r->snap = (acr_core_snapshot_t){.state = ACR_RUN_STOPPED,
                                    .user_count = 0,
                                    .run_time = 10,
                                    .stats = st,
                                    .lost_reports = 2,
                                    .reports_merged = 7,
                                    .workers = r->workers,
                                    .nworkers = 2,
                                    .lost = r->lost,
                                    .nlost = 1};
    snprintf(r->snap.test_id, sizeof r->snap.test_id, "%s", "18c-<id>");
    r->workers[0] = (acr_core_worker_t){.id = (char *)"w<1>\"",
                                        .host = (char *)"h&h",
                                        .state = "running",
                                        .user_count = 5,
                                        .cpu_usage = 12.5,
                                        .memory_usage = 3 << 20};
    r->workers[1] = (acr_core_worker_t){
        .id = (char *)"gone_1", .host = (char *)"gone", .state = "missing", .user_count = 0};
    r->lost[0] = (acr_core_lost_t){.worker = (char *)"l<ost>", .lost = 2};
    r->history = calloc(1, sizeof(*r->history));
    assert_non_null(r->history);
    history_clear(r->history);
    for (int i = 0; i < 3; i++) {
        acr_history_sample_t s = {.time = 1000 + 2 * i, .rps = i, .p99 = 3 * i, .users = i};
        assert_int_equal(history_push(r->history, &s), 0);
    }
    r->in = (acr_html_input_t){.snap = &r->snap,
                               .history = r->history,
                               .scenario = "<scen>.lua",
                               .host = HOST,
                               .users = 5,
                               .spawn_rate = 2.5,
                               .start_time = 1000,
                               .end_time = 1010};
    return r;
}

static void run_free(run_t *r)
{
    acr_stats_free(r->snap.stats);
    acr_history_free(r->history);
    free(r);
}

static char *report(const acr_html_input_t *in)
{
    acr_buf_t b = {0};
    assert_int_equal(acr_html_report(in, &b), 0);
    assert_non_null(b.data);
    assert_int_equal(strlen(b.data), b.len); /* no NUL inside */
    return b.data;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static void assert_has(const char *doc, const char *s)
{
    if (!strstr(doc, s)) fail_msg("the report lacks '%s'", s);
}

static void assert_lacks(const char *doc, const char *s)
{
    const char *p = strstr(doc, s);
    if (p) fail_msg("the report has '%s' at offset %td", s, p - doc);
}

/* Removes every occurrence of @s from @doc in place. */
static void cut(char *doc, const char *s)
{
    size_t n = strlen(s);
    for (char *p = strstr(doc, s); p; p = strstr(p, s)) memmove(p, p + n, strlen(p + n) + 1);
}

static void test_hostile_strings_escaped(void **state)
{
    (void)state;
    run_t *r = hostile_run();
    char *doc = report(&r->in);
    /* raw forms never (uPlot's minified text aside, which may hold anything) */
    cut(doc, (const char *)acr_asset_find("uPlot.iife.min.js")->data);
    const char *raw[] = {HOSTILE_NAME, HOSTILE_QUOTES, "<!-- boom", "<img",   "<b>bad", "node<1>",
                         "w<1>",       "h&h",          "l<ost>",    "<scen>", "'x'",    "<id>"};
    for (size_t i = 0; i < ACR_ARRAY_SIZE(raw); i++) assert_lacks(doc, raw[i]);
    /* escaped forms where they belong */
    assert_has(doc, "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>");
    assert_has(doc, "<td>a&quot;b&#39;c&amp;d</td>");
    assert_has(doc, "<td>&lt;/script&gt;&lt;!-- boom &quot;x&quot; &#39;y&#39; &amp; z</td>");
    assert_has(doc, "<td><pre>line 1\n&lt;/script&gt;\n&lt;img src=x onerror=alert(1)&gt;</pre>");
    assert_has(doc, "<td>&lt;b&gt;bad&lt;/b&gt;</td>");
    assert_has(doc, "<td>node&lt;1&gt;</td>");
    assert_has(doc, "<td>w&lt;1&gt;&quot;</td><td>h&amp;h</td>");
    assert_has(doc, "l&lt;ost&gt; lost 2");
    assert_has(doc, "<title>acrida report: &lt;scen&gt;.lua (");
    assert_has(doc, "http://target.test:8080/&#39;x&#39;");
    assert_has(doc, "18c-&lt;id&gt;");
    /* the only script elements are the report's three: nothing closed one early */
    assert_int_equal(count(doc, "<script"), 3);
    assert_int_equal(count(doc, "</script>"), 3);
    assert_int_equal(count(doc, "<style"), 2);
    assert_int_equal(count(doc, "</style>"), 2);
    free(doc);
    run_free(r);
}

static void test_self_contained(void **state)
{
    (void)state;
    run_t *r = hostile_run();
    char *doc = report(&r->in);
    const acr_asset_t *js = acr_asset_find("uPlot.iife.min.js");
    const acr_asset_t *css = acr_asset_find("uPlot.min.css");
    assert_non_null(js);
    assert_non_null(css);
    /* uPlot inlined as it is (it has nothing to break), and nothing linked */
    assert_has(doc, (const char *)js->data);
    assert_has(doc, (const char *)css->data);
    const char *linked[] = {"<script src", "<link",  "<img",  "<iframe",     "@import",
                            "url(",        "src=\"", "src='", "href=\"http", "href=\"//"};
    /* outside uPlot's own text and the run's host, no URL at all */
    cut(doc, (const char *)js->data);
    cut(doc, (const char *)css->data);
    for (size_t i = 0; i < ACR_ARRAY_SIZE(linked); i++) assert_lacks(doc, linked[i]);
    cut(doc, "http://target.test:8080/&#39;x&#39;");
    assert_lacks(doc, "http:");
    assert_lacks(doc, "https:");
    assert_lacks(doc, "//cdn");
    assert_int_equal(count(doc, "href="), 1); /* the download link */
    assert_has(doc, "href=\"?download=1\"");
    free(doc);
    run_free(r);
}

/* The text between @open and the next @close, malloc'ed. */
static char *between(const char *doc, const char *open, const char *close)
{
    const char *a = strstr(doc, open);
    if (!a) fail_msg("no '%s'", open);
    a += strlen(open);
    const char *b = strstr(a, close);
    if (!b) fail_msg("no '%s' after '%s'", close, open);
    return strndup(a, (size_t)(b - a));
}

static void test_tables_and_rows(void **state)
{
    (void)state;
    run_t *r = hostile_run();
    char *doc = report(&r->in);
    const char *sections[] = {"parameters", "requests", "percentiles", "failures",
                              "exceptions", "workers",  "charts"};
    const char *prev = doc;
    for (size_t i = 0; i < ACR_ARRAY_SIZE(sections); i++) {
        char id[64];
        snprintf(id, sizeof id, "<section id=\"%s\">", sections[i]);
        const char *at = strstr(doc, id);
        if (!at || at < prev) fail_msg("section %s missing or out of order", sections[i]);
        prev = at;
    }
    /* run parameters */
    assert_has(doc, "<tr><th>Users</th><td>5</td></tr>");
    assert_has(doc, "<tr><th>Spawn rate</th><td>2.5 users/s</td></tr>");
    assert_has(doc, "<tr><th>Duration</th><td>10s</td></tr>");
    assert_has(doc, "<tr><th>State</th><td>stopped</td></tr>");
    assert_has(doc, "<tr><th>Lost report intervals</th><td class=\"bad\">2 (");
    /* request rows sorted by name, Aggregated last; ms like the console ("0.50"); rates over
     * the 10 s from the stats' start to the last request */
    char *req = between(doc, "<section id=\"requests\">", "</section>");
    const char *ok = strstr(req, "<tr><td>GET</td><td>/ok</td><td class=\"num\">4</td>"
                                 "<td class=\"num\">0</td><td class=\"num\">2</td>"
                                 "<td class=\"num\">2</td><td class=\"num\">2</td>"
                                 "<td class=\"num\">2</td><td class=\"num\">100</td>"
                                 "<td class=\"num\">0.40</td><td class=\"num\">0.00</td></tr>");
    const char *post = strstr(req, "<tr><td>POST</td><td>a&quot;b&#39;c&amp;d</td>"
                                   "<td class=\"num\">2</td><td class=\"num\">2</td>"
                                   "<td class=\"num\">0.50</td>");
    const char *agg = strstr(req, "<tr class=\"total\"><td></td><td>Aggregated</td>"
                                  "<td class=\"num\">9</td><td class=\"num\">2</td>");
    if (!ok || !post || !agg || !(agg > ok && agg > post))
        fail_msg("request rows missing or Aggregated not last:\n%s", req);
    assert_int_equal(count(req, "<tr"), 5); /* header, 3 entries, Aggregated */
    free(req);
    /* percentiles: Locust's report's columns plus 99.9 */
    char *pct = between(doc, "<section id=\"percentiles\">", "</section>");
    assert_has(pct, "<th class=\"num\">50%</th><th class=\"num\">60%</th><th class=\"num\">70%"
                    "</th><th class=\"num\">80%</th><th class=\"num\">90%</th><th class=\"num\">"
                    "95%</th><th class=\"num\">99%</th><th class=\"num\">99.9%</th>"
                    "<th class=\"num\">100%</th>");
    assert_has(pct, "<td>/ok</td><td class=\"num\">2</td>");
    assert_int_equal(count(pct, "<tr"), 5);
    assert_has(pct, "<tr class=\"total\"><td></td><td>Aggregated</td>");
    free(pct);
    char *fail = between(doc, "<section id=\"failures\">", "</section>");
    assert_has(fail, "<td class=\"num\">2</td></tr>");
    assert_int_equal(count(fail, "<tr"), 2);
    free(fail);
    char *exc = between(doc, "<section id=\"exceptions\">", "</section>");
    assert_has(exc, "<tr><td class=\"num\">5</td>");
    free(exc);
    char *wk = between(doc, "<section id=\"workers\">", "</section>");
    assert_has(wk, "<td>running</td><td class=\"num\">5</td><td class=\"num\">12.5 %</td>"
                   "<td class=\"num\">3.0 MiB</td>");
    assert_has(wk, "<tr class=\"missing\"><td>gone_1</td>");
    free(wk);
    free(doc);
    run_free(r);
}

static void test_empty_run(void **state)
{
    (void)state;
    acr_core_snapshot_t snap = {.state = ACR_RUN_READY, .stats = acr_stats_new(1000)};
    acr_html_input_t in = {.snap = &snap};
    char *doc = report(&in);
    assert_has(doc, "<td class=\"none\" colspan=\"4\">No failures</td>");
    assert_has(doc, "<td class=\"none\" colspan=\"4\">No exceptions</td>");
    assert_has(doc, "<td class=\"none\" colspan=\"6\">No workers</td>");
    assert_has(doc, "No chart history was kept.");
    assert_has(doc, "<script type=\"application/json\" id=\"acr-history\">[]</script>");
    assert_has(doc, "<tr><th>Host</th><td>(each user class&#39;s own)</td></tr>");
    assert_has(doc, "<tr><th>End time</th><td>still running</td></tr>");
    assert_has(doc, "<tr class=\"total\"><td></td><td>Aggregated</td><td class=\"num\">0</td>");
    free(doc);
    acr_stats_free(snap.stats);
}

static void test_chart_data(void **state)
{
    (void)state;
    run_t *r = hostile_run();
    char *doc = report(&r->in);
    char *json = between(doc, "<script type=\"application/json\" id=\"acr-history\">", "</script>");
    json_error_t err;
    json_t *j = json_loads(json, 0, &err);
    if (!j) fail_msg("chart JSON: %s in %s", err.text, json);
    assert_int_equal(json_array_size(j), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(j, 2), "users")), 2);
    assert_true(json_number_value(json_object_get(json_array_get(j, 2), "p99")) == 6);
    json_decref(j);
    free(json);
    assert_has(doc, "one sample every 2 s");
    assert_has(doc, "new uPlot(");
    free(doc);
    run_free(r);
}

static void test_download_link(void **state)
{
    (void)state;
    run_t *r = hostile_run();
    char *doc = report(&r->in);
    assert_has(doc, "<a class=\"download\" href=\"?download=1\">");
    free(doc);
    r->in.download = true;
    doc = report(&r->in);
    assert_lacks(doc, "?download");
    assert_lacks(doc, "href=");
    free(doc);
    run_free(r);
}

static void test_write_file(void **state)
{
    (void)state;
    run_t *r = hostile_run();
    char dir[] = "/tmp/acr_html_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/report.html", dir);
    assert_int_equal(acr_html_write(&r->in, path), 0); /* download false: no link in a file */
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *text = calloc(1, 1 << 20);
    assert_non_null(text);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    fclose(f);
    r->in.download = true;
    char *doc = report(&r->in);
    assert_int_equal(n, strlen(doc));
    assert_string_equal(text, doc);
    free(doc);
    free(text);
    char bad[160];
    snprintf(bad, sizeof bad, "%s/no/such/dir/report.html", dir);
    assert_true(acr_html_write(&r->in, bad) < 0);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    run_free(r);
}

static char *script_json(const char *s, size_t len)
{
    acr_buf_t b = {0};
    html_writer_t w = {.b = &b};
    put_script_json(&w, s, len);
    assert_int_equal(w.rc, 0);
    return b.data ? b.data : strdup("");
}

static void test_script_json_escape(void **state)
{
    (void)state;
    /* "</script><!--" and the raw line separators U+2028/U+2029 inside a JSON string */
    const char in[] = "{\"k\":\"</script><!-- a&b \xe2\x80\xa8|\xe2\x80\xa9 \xe2\x80\xa7\"}";
    char *out = script_json(in, sizeof in - 1);
    assert_string_equal(out, "{\"k\":\"\\u003c/script\\u003e\\u003c!-- a\\u0026b \\u2028|\\u2029 "
                             "\xe2\x80\xa7\"}");
    json_t *a = json_loads(in, 0, NULL), *b = json_loads(out, 0, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(json_equal(a, b)); /* the same value */
    json_decref(a);
    json_decref(b);
    free(out);
    out = script_json("\xe2\x80", 2); /* a cut sequence at the end is left as it is */
    assert_string_equal(out, "\xe2\x80");
    free(out);
}

static char *raw_text(const char *s, const char *tag)
{
    acr_buf_t b = {0};
    html_writer_t w = {.b = &b};
    put_raw_text(&w, s, strlen(s), tag);
    assert_int_equal(w.rc, 0);
    return b.data ? b.data : strdup("");
}

static void test_raw_text_escape(void **state)
{
    (void)state;
    char *out = raw_text("a</script>b</SCRIPT c<!--d</scrip </ <", "script");
    assert_string_equal(out, "a<\\/script>b<\\/SCRIPT c<\\!--d</scrip </ <");
    free(out);
    out = raw_text("x</style>y<!--</Style", "style");
    assert_string_equal(out, "x<\\/style>y<!--<\\/Style");
    free(out);
    out = raw_text("", "script");
    assert_string_equal(out, "");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_strings_escaped),
        cmocka_unit_test(test_self_contained),
        cmocka_unit_test(test_tables_and_rows),
        cmocka_unit_test(test_empty_run),
        cmocka_unit_test(test_chart_data),
        cmocka_unit_test(test_download_link),
        cmocka_unit_test(test_write_file),
        cmocka_unit_test(test_script_json_escape),
        cmocka_unit_test(test_raw_text_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
