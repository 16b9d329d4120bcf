/*
 * Unit tests of load shapes (master/shape.c): the stage active at a run time (boundaries, past the
 * last), acrida.stages / acrida.shape declarations and their errors (file:line, the stage index,
 * a second shape), the checks of a shape function's return values (nil, negative, fractional,
 * NaN, strings, a missing rate, unknown or duplicate classes), a raising shape (message and
 * traceback), a shape that loops forever (interrupted each time, also when JIT-compiled, and the
 * state still usable), acr_shape_new's check of the stages' classes, the "shape" field of the
 * /stats/requests JSON, and a test adopted from a previous master's workers driven by the shape
 * from the run time its rejoins give (a real core, fake workers: tests/unit/unit_core.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/scenario.h"
#include "common/util.h"
#include "master/report.h"
#include "master/shape.h"

#include <errno.h>
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <string.h>

#include "unit_core.h"

static char name_a[] = "A", name_b[] = "B";
static const acr_user_class_t CLASSES[] = {{.name = name_a, .weight = 1},
                                           {.name = name_b, .weight = 1}};

/* A master-role state with the shape API; @src run as "s.lua". Returns the state; *@rc the
 * scenario's result and @err its message. */
static lua_State *load(const char *src, int *rc, char *err, size_t errlen)
{
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    assert_int_equal(acr_scenario_open(L, "master", err, errlen), 0);
    assert_int_equal(acr_shape_open(L), 0);
    *rc = acr_scenario_exec_string(L, "s.lua", src, strlen(src), err, errlen);
    return L;
}

static void expect_load_error(const char *src, const char *needle)
{
    char err[1024] = "";
    int rc;
    lua_State *L = load(src, &rc, err, sizeof err);
    if (rc != -EINVAL || !strstr(err, needle))
        fail_msg("rc %d, error '%s', expected one containing '%s'", rc, err, needle);
    lua_close(L);
}

static void test_stage_at(void **state)
{
    (void)state;
    acr_shape_stage_t st[] = {{.duration = 4}, {.duration = 8}, {.duration = 12}};
    assert_int_equal(acr_shape_stage_at(st, 3, 0), 0);
    assert_int_equal(acr_shape_stage_at(st, 3, 3.999), 0);
    assert_int_equal(acr_shape_stage_at(st, 3, 4), 1);
    assert_int_equal(acr_shape_stage_at(st, 3, 7.5), 1);
    assert_int_equal(acr_shape_stage_at(st, 3, 8), 2);
    assert_int_equal(acr_shape_stage_at(st, 3, 11.99), 2);
    assert_int_equal(acr_shape_stage_at(st, 3, 12), -1);
    assert_int_equal(acr_shape_stage_at(st, 3, 1e9), -1);
    assert_int_equal(acr_shape_stage_at(st, 0, 0), -1);
}

static void test_declarations(void **state)
{
    (void)state;
    char err[1024] = "";
    int rc;
    lua_State *L =
        load("acrida.stages{ {duration = 1, users = 1, spawn_rate = 1} }", &rc, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_true(acr_shape_declared(L));
    lua_close(L);
    L = load("local x = 1", &rc, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_false(acr_shape_declared(L));
    lua_close(L);

    expect_load_error("acrida.stages{ {duration = 5, users = 1, spawn_rate = 1},\n"
                      "  {duration = 10, users = 2} }",
                      "s.lua:1: acrida.stages: stage 2: spawn_rate must be a number");
    expect_load_error("\nacrida.stages{ {duration = 5, users = -1, spawn_rate = 1} }",
                      "s.lua:2: acrida.stages: stage 1: users must be a whole number");
    expect_load_error("acrida.stages{ {duration = 5, users = 1.5, spawn_rate = 1} }",
                      "stage 1: users must be a whole number");
    expect_load_error("acrida.stages{ {duration = 0/0, users = 1, spawn_rate = 1} }",
                      "stage 1: duration must be a number of seconds > 0");
    expect_load_error("acrida.stages{ {duration = 10, users = 1, spawn_rate = 1},\n"
                      "  {duration = 5, users = 1, spawn_rate = 1} }",
                      "stage 2: duration 5 is not after stage 1's 10");
    expect_load_error("acrida.stages{ {duration = 10, users = 1, spawn_rate = 1, dur = 3} }",
                      "stage 1: unknown field 'dur'");
    expect_load_error("acrida.stages{ 5 }", "stage 1 must be a table");
    expect_load_error("acrida.stages{}", "acrida.stages expects a list of 1 to");
    expect_load_error("acrida.stages('x')", "acrida.stages expects a list of stages");
    expect_load_error("acrida.stages{ {duration = 1, users = 1, spawn_rate = 1, "
                      "user_classes = {1}} }",
                      "stage 1: user_classes[1] must be a class name");
    expect_load_error("acrida.shape(42)", "s.lua:1: acrida.shape expects a function");
    expect_load_error("acrida.shape(function() end)\n\n"
                      "acrida.stages{ {duration = 1, users = 1, spawn_rate = 1} }",
                      "s.lua:3: a scenario declares at most one load shape (acrida.shape or "
                      "acrida.stages): one was already declared at s.lua:1");
}

/* Calls the function @src returns (a chunk "return function(t) ... end") at @t. */
static int call(const char *src, double t, acr_shape_target_t *out, char *err, size_t errlen,
                char *tb, size_t tblen)
{
    char e[256];
    int rc;
    lua_State *L = load("", &rc, e, sizeof e);
    assert_int_equal(luaL_loadbuffer(L, src, strlen(src), "=f.lua"), 0);
    assert_int_equal(lua_pcall(L, 0, 1, 0), 0);
    rc = acr_shape_call(L, t, ACR_SHAPE_BUDGET_MS, CLASSES, 2, out, err, errlen, tb, tblen);
    assert_int_equal(lua_gettop(L), 0);
    lua_close(L);
    return rc;
}

static void expect_bad(const char *src, const char *needle)
{
    char err[1024] = "";
    acr_shape_target_t t;
    int rc = call(src, 1, &t, err, sizeof err, NULL, 0);
    if (rc != -EINVAL || !strstr(err, needle))
        fail_msg("%s: rc %d, error '%s', expected one containing '%s'", src, rc, err, needle);
    assert_null(t.classes);
}

static void test_results(void **state)
{
    (void)state;
    char err[1024] = "";
    acr_shape_target_t t;
    assert_int_equal(
        call("return function(t) return t * 2, 5 end", 3, &t, err, sizeof err, NULL, 0), 1);
    assert_int_equal(t.users, 6);
    assert_true(t.rate == 5.0);
    assert_int_equal(t.stage, -1);
    assert_null(t.classes);
    assert_int_equal(
        call("return function() return 1, 2, {'B', 'A', 'B'} end", 0, &t, err, sizeof err, NULL, 0),
        1);
    assert_int_equal(t.nclasses, 2);
    assert_string_equal(t.classes[0], "A");
    assert_string_equal(t.classes[1], "B");
    acr_shape_target_clear(&t);
    assert_null(t.classes);
    assert_int_equal(call("return function() return nil end", 0, &t, err, sizeof err, NULL, 0), 0);
    assert_int_equal(call("return function() end", 0, &t, err, sizeof err, NULL, 0), 0);

    expect_bad("return function() return -1, 1 end", "users = -1");
    expect_bad("return function() return 1.5, 1 end", "users = 1.5");
    expect_bad("return function() return 0/0, 1 end", "users = nan");
    expect_bad("return function() return '3', 1 end", "users = '3' (a string)");
    expect_bad("return function() return {}, 1 end", "users = a table");
    expect_bad("return function() return 1 end", "spawn_rate = nil");
    expect_bad("return function() return 1, 0 end", "spawn_rate = 0");
    expect_bad("return function() return 1, 1/0 end", "spawn_rate = inf");
    expect_bad("return function() return 1, 1, 'A' end", "user classes = 'A' (a string)");
    expect_bad("return function() return 1, 1, {} end", "user classes = a table");
    expect_bad("return function() return 1, 1, {'A', 'Nope'} end", "unknown user class 'Nope'");
    expect_bad("return function() return 1, 1, {'A', 7} end", "user classes[2] = 7");
}

static void test_raise(void **state)
{
    (void)state;
    char err[1024] = "", tb[2048] = "";
    acr_shape_target_t t;
    int rc = call("return function(t)\n  error('shape boom at ' .. t)\nend", 7, &t, err, sizeof err,
                  tb, sizeof tb);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err, "f.lua:2: shape boom at 7");
    if (!strstr(tb, "f.lua:2")) fail_msg("traceback '%s'", tb);
    rc = call("return function() error({}) end", 0, &t, err, sizeof err, tb, sizeof tb);
    assert_int_equal(rc, -EINVAL);
    assert_non_null(strstr(err, "non-string error"));
}

/* A shape that never returns is interrupted after its budget, every time, JIT or not, and the
 * state stays usable. */
static void test_interrupt(void **state)
{
    (void)state;
    char err[1024], tb[2048], e[256];
    int rc;
    lua_State *L = load("", &rc, e, sizeof e);
    const char *src = "local function spin() local x = 0 while true do x = x + 1 end end\n"
                      "local function hot(n) local s = 0 for i = 1, n do s = s + i end return s "
                      "end\n"
                      "for i = 1, 200 do hot(1000) end\n" /* compiled before the shape runs */
                      "return function(t) if t > 0 then spin() end return hot(10), 1 end";
    assert_int_equal(luaL_loadbuffer(L, src, strlen(src), "=loop.lua"), 0);
    assert_int_equal(lua_pcall(L, 0, 1, 0), 0);
    lua_setglobal(L, "shape_fn");
    for (int i = 0; i < 3; i++) {
        acr_shape_target_t t;
        double t0 = acr_mono_s();
        lua_getglobal(L, "shape_fn");
        rc = acr_shape_call(L, 1, 50, CLASSES, 2, &t, err, sizeof err, tb, sizeof tb);
        assert_int_equal(rc, -EINVAL);
        if (!strstr(err, "interrupted")) fail_msg("error '%s'", err);
        assert_true(acr_mono_s() - t0 < 30.0); /* a bound, not a timing: it did return */
        lua_getglobal(L, "shape_fn");
        rc = acr_shape_call(L, 0, 50, CLASSES, 2, &t, err, sizeof err, tb, sizeof tb);
        assert_int_equal(rc, 1);
        assert_int_equal(t.users, 55);
    }
    assert_int_equal(lua_gettop(L), 0);
    lua_close(L);
}

static void test_new_checks_stage_classes(void **state)
{
    (void)state;
    char err[1024] = "";
    int rc;
    lua_State *L = load("acrida.stages{ {duration = 1, users = 1, spawn_rate = 1},\n"
                        "  {duration = 2, users = 1, spawn_rate = 1, user_classes = {'A', 'Z'}} }",
                        &rc, err, sizeof err);
    assert_int_equal(rc, 0);
    acr_shape_config_t cfg = {.L = L, .classes = CLASSES, .nclasses = 2};
    acr_shape_t *s = NULL;
    rc = acr_shape_new(&cfg, &s, err, sizeof err);
    assert_int_equal(rc, -EINVAL);
    assert_null(s);
    assert_string_equal(err, "acrida.stages (s.lua:1): stage 2: unknown user class 'Z'");
    lua_close(L);
    L = load("", &rc, err, sizeof err);
    cfg.L = L;
    assert_int_equal(acr_shape_new(&cfg, &s, err, sizeof err), 0);
    assert_null(s); /* no shape declared */
    assert_false(acr_shape_active(NULL));
    lua_close(L);
}

static void test_json_shape(void **state)
{
    (void)state;
    acr_stats_t *st = acr_stats_new(1e9);
    assert_non_null(st);
    acr_report_meta_t m = {.state = "running",
                           .have_shape = true,
                           .shape_users = 6,
                           .shape_rate = 2.5,
                           .shape_stage = 2};
    char *txt = acr_report_json(st, &m);
    assert_non_null(txt);
    json_t *doc = json_loads(txt, 0, NULL);
    assert_non_null(doc);
    json_t *sh = json_object_get(doc, "shape");
    assert_int_equal(json_integer_value(json_object_get(sh, "users")), 6);
    assert_true(json_real_value(json_object_get(sh, "spawn_rate")) == 2.5);
    assert_int_equal(json_integer_value(json_object_get(sh, "stage")), 2);
    json_decref(doc);
    free(txt);
    m.shape_stage = 0; /* a shape function: no stage */
    txt = acr_report_json(st, &m);
    doc = json_loads(txt, 0, NULL);
    assert_true(json_is_null(json_object_get(json_object_get(doc, "shape"), "stage")));
    json_decref(doc);
    free(txt);
    acr_stats_free(st);
}

/* ---- resuming an adopted test ---- */

#define TEST_A "0123456789abcdef0123456789abcdef"

typedef struct {
    uv_loop_t loop;
    acr_core_t *c;
    lua_State *L;
    acr_shape_t *s;
    acr_buf_t b;
} adopt_fx_t;

/* A core with the two classes, the shape "2 users until 20 s, 4 until 40 s" and worker h1_a. */
static void adopt_open(adopt_fx_t *f)
{
    char err[1024] = "";
    int rc;
    memset(f, 0, sizeof(*f));
    f->L = load("acrida.stages{ {duration = 20, users = 2, spawn_rate = 10},\n"
                "  {duration = 40, users = 4, spawn_rate = 10} }",
                &rc, err, sizeof err);
    assert_int_equal(rc, 0);
    acr_core_config_t cc = {.classes = CLASSES,
                            .nclasses = 2,
                            .stop_timeout = -1,
                            .scenario_name = "s.lua",
                            .scenario_src = "-- s",
                            .scenario_len = 4};
    ucore_open(&f->loop, &cc, &f->c);
    acr_shape_config_t sc = {
        .loop = &f->loop, .core = f->c, .L = f->L, .classes = CLASSES, .nclasses = 2};
    assert_int_equal(acr_shape_new(&sc, &f->s, err, sizeof err), 0);
    assert_non_null(f->s);
    ucore_worker_ready(f->c, &f->b, "h1_a");
}

static void adopt_close(adopt_fx_t *f)
{
    acr_core_close(f->c); /* as the master shuts down: the core, the shape, then the loop */
    acr_shape_close(f->s);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    acr_core_free(f->c);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    acr_shape_free(f->s);
    lua_close(f->L);
    acr_buf_free(&f->b);
}

/* h1_a rejoins running test A with one user of each class, first spawned at @started_at. */
static void adopt_rejoin(adopt_fx_t *f, double started_at)
{
    acr_class_count_t cc[2] = {{name_a, 1}, {name_b, 1}};
    acr_msg_rejoin_t r = {.test_id = TEST_A,
                          .state = "running",
                          .classes = cc,
                          .nclasses = 2,
                          .user_count = 2,
                          .scenario_sha256 = f->c->scenario_sha256,
                          .stop_timeout = -1,
                          .last_seq = 3,
                          .started_at = started_at};
    acr_buf_reset(&f->b);
    assert_int_equal(acr_msg_encode_rejoin(&f->b, &r, "h1_a"), 0);
    ucore_feed(f->c, &f->b, "h1_a");
    assert_true(f->c->run.adopted);
}

static void test_resume_adopted(void **state)
{
    (void)state;
    adopt_fx_t f;
    adopt_open(&f);
    adopt_rejoin(&f, acr_now() - 25); /* 25 s into the shape: stage 2 */
    long users = 0, stage = -9;
    double rate = 0;
    assert_true(acr_shape_active(f.s));
    assert_true(acr_shape_current(f.s, &users, &rate, &stage));
    assert_int_equal(users, 4);
    assert_int_equal(stage, 1);
    assert_int_equal(f.c->run.target_users, 2); /* nothing moved before the next tick */
    double deadline = acr_mono_s() + 60;
    while (f.c->run.target_users != 4 && acr_mono_s() < deadline) uv_run(&f.loop, UV_RUN_ONCE);
    assert_int_equal(f.c->run.target_users, 4);
    assert_true(f.c->run.adopted);
    assert_string_equal(f.c->run.test_id, TEST_A);
    adopt_close(&f);
}

static void test_resume_after_the_end_stops(void **state)
{
    (void)state;
    adopt_fx_t f;
    adopt_open(&f);
    adopt_rejoin(&f, acr_now() - 45); /* the shape ended at 40 s */
    assert_false(acr_shape_active(f.s));
    assert_int_equal(f.c->run.state, ACR_RUN_STOPPING);
    adopt_close(&f);
}

static void test_adopted_without_start_not_driven(void **state)
{
    (void)state;
    static const double starts[] = {0, 1.0 /* 1970: ignored */};
    for (size_t i = 0; i < ACR_ARRAY_SIZE(starts); i++) {
        adopt_fx_t f;
        adopt_open(&f);
        adopt_rejoin(&f, starts[i]);
        assert_false(acr_shape_active(f.s));
        assert_int_equal(f.c->run.state, ACR_RUN_RUNNING); /* settled: every worker answered */
        assert_int_equal(f.c->run.target_users, 2);
        adopt_close(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stage_at),
        cmocka_unit_test(test_declarations),
        cmocka_unit_test(test_results),
        cmocka_unit_test(test_raise),
        cmocka_unit_test(test_interrupt),
        cmocka_unit_test(test_new_checks_stage_classes),
        cmocka_unit_test(test_json_shape),
        cmocka_unit_test(test_resume_adopted),
        cmocka_unit_test(test_resume_after_the_end_stops),
        cmocka_unit_test(test_adopted_without_start_not_driven),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
