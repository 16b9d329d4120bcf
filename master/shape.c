/*
 * Load shapes (master/shape.h): acrida.shape / acrida.stages recorded in the master's Lua state,
 * the protected and bounded call of a shape function, and the runner that evaluates the shape
 * every second and re-targets the core, for a test it started or one adopted from the workers of
 * a previous master (resumed at the run time their rejoins give).
 */
#include "master/shape.h"

#include "common/cli.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHAPE_KEY "acrida.shape"             /* the function, or the checked stages table */
#define WHERE_KEY "acrida.shape.where"       /* "<file>:<line>" of the declaration */
#define DEADLINE_KEY "acrida.shape.deadline" /* the running call's deadline (monotonic s) */
#define BUDGET_KEY "acrida.shape.budget"     /* its budget in ms, for the message */
#define HOOK_COUNT 1000                      /* VM instructions between two deadline checks */

void acr_shape_target_clear(acr_shape_target_t *t)
{
    for (size_t i = 0; i < t->nclasses; i++) free(t->classes[i]);
    free(t->classes);
    t->classes = NULL;
    t->nclasses = 0;
}

/* ---- declaring ---- */

/* Records the value at @idx as the scenario's shape; a second declaration is an error. */
static void record(lua_State *L, int idx)
{
    lua_getfield(L, LUA_REGISTRYINDEX, SHAPE_KEY);
    bool have = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (have) {
        lua_getfield(L, LUA_REGISTRYINDEX, WHERE_KEY);
        luaL_error(L,
                   "a scenario declares at most one load shape (acrida.shape or acrida.stages): "
                   "one was already declared at %s",
                   lua_tostring(L, -1));
    }
    luaL_where(L, 1); /* "<file>:<line>: " */
    size_t len;
    const char *w = lua_tolstring(L, -1, &len);
    if (len >= 2 && w[len - 2] == ':' && w[len - 1] == ' ') len -= 2;
    lua_pushlstring(L, len ? w : "?", len ? len : 1);
    lua_setfield(L, LUA_REGISTRYINDEX, WHERE_KEY);
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_setfield(L, LUA_REGISTRYINDEX, SHAPE_KEY);
}

static int l_shape(lua_State *L)
{
    if (!lua_isfunction(L, 1))
        return luaL_error(L,
                          "acrida.shape expects a function(run_time_s) returning users, "
                          "spawn_rate[, {class names}] or nil to end, got %s",
                          luaL_typename(L, 1));
    record(L, 1);
    return 0;
}

/* What a bad value looks like in a message: "-1", "'x'", "nil", "a table" (pushed). */
static const char *shown(lua_State *L, int idx)
{
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        return lua_pushfstring(L, "%f", lua_tonumber(L, idx));
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        return len > 60 ? lua_pushfstring(L, "a string of %d bytes", (int)len)
                        : lua_pushfstring(L, "'%s'", s);
    }
    case LUA_TNIL:
        return "nil";
    default:
        return lua_pushfstring(L, "a %s", luaL_typename(L, idx));
    }
}

/* Checks stage @i's (1-based) table at @t and pushes its normalised copy. */
static void check_stage(lua_State *L, int t, int i, double prev)
{
    if (!lua_istable(L, t))
        luaL_error(L,
                   "acrida.stages: stage %d must be a table {duration = s, users = n, "
                   "spawn_rate = r}, got %s",
                   i, shown(L, t));
    lua_pushnil(L);
    while (lua_next(L, t)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (!k || (strcmp(k, "duration") && strcmp(k, "users") && strcmp(k, "spawn_rate") &&
                   strcmp(k, "user_classes")))
            luaL_error(L,
                       "acrida.stages: stage %d: unknown field %s (fields: duration, users, "
                       "spawn_rate, user_classes)",
                       i, shown(L, -2));
        lua_pop(L, 1);
    }
    lua_createtable(L, 0, 4);
    int out = lua_gettop(L);

    lua_getfield(L, t, "duration");
    double d = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !isfinite(d) || d <= 0)
        luaL_error(L,
                   "acrida.stages: stage %d: duration must be a number of seconds > 0 (counted "
                   "from the start of the test), got %s",
                   i, shown(L, -1));
    if (d <= prev) {
        const char *this = lua_pushfstring(L, "%f", d), *before = lua_pushfstring(L, "%f", prev);
        luaL_error(L,
                   "acrida.stages: stage %d: duration %s is not after stage %d's %s: durations "
                   "count from the start of the test (e.g. 60, 120, 180)",
                   i, this, i - 1, before);
    }
    lua_setfield(L, out, "duration");

    lua_getfield(L, t, "users");
    double u = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !isfinite(u) || u != floor(u) || u < 0 ||
        u > (double)ACR_SHAPE_MAX_USERS)
        luaL_error(L, "acrida.stages: stage %d: users must be a whole number from 0 to %d, got %s",
                   i, (int)ACR_SHAPE_MAX_USERS, shown(L, -1));
    lua_setfield(L, out, "users");

    lua_getfield(L, t, "spawn_rate");
    double r = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !isfinite(r) || r < ACR_MIN_SPAWN_RATE ||
        r > ACR_SHAPE_MAX_RATE)
        luaL_error(L,
                   "acrida.stages: stage %d: spawn_rate must be a number of users/s > 0 (at most "
                   "%d), got %s",
                   i, (int)ACR_SHAPE_MAX_RATE, shown(L, -1));
    lua_setfield(L, out, "spawn_rate");

    lua_getfield(L, t, "user_classes");
    if (!lua_isnil(L, -1)) {
        int c = lua_gettop(L);
        size_t n = lua_objlen(L, c);
        if (!lua_istable(L, c) || n == 0 || n > ACR_SHAPE_MAX_CLASSES)
            luaL_error(L,
                       "acrida.stages: stage %d: user_classes must be a list of 1 to %d class "
                       "names, got %s",
                       i, ACR_SHAPE_MAX_CLASSES, shown(L, c));
        lua_createtable(L, (int)n, 0);
        for (size_t k = 1; k <= n; k++) {
            lua_rawgeti(L, c, (int)k);
            if (lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L,
                           "acrida.stages: stage %d: user_classes[%d] must be a class name, "
                           "got %s",
                           i, (int)k, shown(L, -1));
            lua_rawseti(L, -2, (int)k);
        }
        lua_setfield(L, out, "user_classes");
    }
    lua_pop(L, 1);
}

static int l_stages(lua_State *L)
{
    if (!lua_istable(L, 1))
        return luaL_error(L,
                          "acrida.stages expects a list of stages {duration = s, users = n, "
                          "spawn_rate = r}, got %s",
                          luaL_typename(L, 1));
    size_t n = lua_objlen(L, 1);
    if (n == 0 || n > ACR_SHAPE_MAX_STAGES)
        return luaL_error(L, "acrida.stages expects a list of 1 to %d stages, got %d",
                          ACR_SHAPE_MAX_STAGES, (int)n);
    lua_createtable(L, (int)n, 0);
    int list = lua_gettop(L);
    double prev = 0;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, (int)i);
        check_stage(L, lua_gettop(L), (int)i, prev);
        lua_getfield(L, -1, "duration");
        prev = lua_tonumber(L, -1);
        lua_pop(L, 1);
        lua_rawseti(L, list, (int)i);
        lua_pop(L, 1);
    }
    record(L, list);
    return 0;
}

int acr_shape_open(lua_State *L)
{
    lua_getglobal(L, "acrida");
    lua_pushcfunction(L, l_shape);
    lua_setfield(L, -2, "shape");
    lua_pushcfunction(L, l_stages);
    lua_setfield(L, -2, "stages");
    lua_pop(L, 1);
    return 0;
}

bool acr_shape_declared(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, SHAPE_KEY);
    bool have = !lua_isnil(L, -1);
    lua_pop(L, 1);
    return have;
}

/* ---- a tick's parts ---- */

long acr_shape_stage_at(const acr_shape_stage_t *stages, size_t n, double t)
{
    for (size_t i = 0; i < n; i++)
        if (t < stages[i].duration) return (long)i;
    return -1;
}

static bool class_known(const acr_user_class_t *classes, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(classes[i].name, name) == 0) return true;
    return false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Copies @names (sorted, duplicates dropped) into @t. Returns 0 or -ENOMEM. */
static int set_classes(acr_shape_target_t *t, char *const *names, size_t n)
{
    if (n == 0) return 0;
    t->classes = calloc(n, sizeof(*t->classes));
    if (!t->classes) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(t->classes[t->nclasses] = strdup(names[i]))) return -ENOMEM;
        t->nclasses++;
    }
    qsort(t->classes, t->nclasses, sizeof(*t->classes), cmp_str);
    size_t o = 0;
    for (size_t i = 0; i < t->nclasses; i++) {
        if (o > 0 && strcmp(t->classes[o - 1], t->classes[i]) == 0)
            free(t->classes[i]);
        else
            t->classes[o++] = t->classes[i];
    }
    t->nclasses = o;
    return 0;
}

/* A number in a message: "-1", "nan", "'x'", "nil", "a table". */
static void show_value(lua_State *L, int idx, char *buf, size_t len)
{
    if (lua_type(L, idx) == LUA_TNUMBER && isnan(lua_tonumber(L, idx)))
        snprintf(buf, len, "nan");
    else if (lua_type(L, idx) == LUA_TNUMBER)
        snprintf(buf, len, "%.17g", lua_tonumber(L, idx));
    else if (lua_type(L, idx) == LUA_TSTRING)
        snprintf(buf, len, "'%.40s' (a string)", lua_tostring(L, idx));
    else if (lua_isnil(L, idx))
        snprintf(buf, len, "nil");
    else
        snprintf(buf, len, "a %s", luaL_typename(L, idx));
}

/* Checks the values @base..@base+@nres-1 a shape function returned. 1, 0 (nil) or -EINVAL. */
static int check_result(lua_State *L, int base, int nres, const acr_user_class_t *classes,
                        size_t nclasses, acr_shape_target_t *out, char *err, size_t errlen)
{
    char v[80];
    if (nres == 0 || lua_isnil(L, base)) return 0;
    double u = lua_tonumber(L, base);
    if (lua_type(L, base) != LUA_TNUMBER || !isfinite(u) || u != floor(u) || u < 0 ||
        u > (double)ACR_SHAPE_MAX_USERS) {
        show_value(L, base, v, sizeof v);
        snprintf(err, errlen,
                 "the load shape returned users = %s: it must return a whole number from 0 to "
                 "%ld, a spawn rate and optionally a list of user classes (or nil to end)",
                 v, ACR_SHAPE_MAX_USERS);
        return -EINVAL;
    }
    double r = nres >= 2 ? lua_tonumber(L, base + 1) : 0;
    if (nres < 2 || lua_type(L, base + 1) != LUA_TNUMBER || !isfinite(r) ||
        r < ACR_MIN_SPAWN_RATE || r > ACR_SHAPE_MAX_RATE) {
        if (nres >= 2)
            show_value(L, base + 1, v, sizeof v);
        else
            snprintf(v, sizeof v, "nil");
        snprintf(err, errlen,
                 "the load shape returned spawn_rate = %s: it must be a number of users/s > 0 "
                 "(at most %g)",
                 v, ACR_SHAPE_MAX_RATE);
        return -EINVAL;
    }
    out->users = (long)u;
    out->rate = r;
    out->stage = -1;
    if (nres < 3 || lua_isnil(L, base + 2)) return 1;
    int c = base + 2;
    size_t n = lua_istable(L, c) ? lua_objlen(L, c) : 0;
    if (!lua_istable(L, c) || n == 0 || n > ACR_SHAPE_MAX_CLASSES) {
        show_value(L, c, v, sizeof v);
        snprintf(err, errlen,
                 "the load shape returned user classes = %s: it must be nil or a list of 1 to "
                 "%d class names",
                 v, ACR_SHAPE_MAX_CLASSES);
        return -EINVAL;
    }
    char **names = calloc(n, sizeof(*names));
    if (!names) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = 1;
    for (size_t k = 1; k <= n && rc == 1; k++) {
        lua_rawgeti(L, c, (int)k);
        if (lua_type(L, -1) != LUA_TSTRING) {
            show_value(L, -1, v, sizeof v);
            snprintf(err, errlen, "the load shape returned user classes[%zu] = %s: not a name", k,
                     v);
            rc = -EINVAL;
        } else if (!class_known(classes, nclasses, lua_tostring(L, -1))) {
            snprintf(err, errlen, "the load shape returned an unknown user class '%.200s'",
                     lua_tostring(L, -1));
            rc = -EINVAL;
        } else {
            names[k - 1] = (char *)lua_tostring(L, -1); /* kept alive by the table */
        }
        lua_pop(L, 1);
    }
    if (rc == 1 && set_classes(out, names, n) < 0) {
        acr_shape_target_clear(out);
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
    free(names);
    return rc;
}

/* The count hook: interrupts a call that went past its deadline. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_getfield(L, LUA_REGISTRYINDEX, DEADLINE_KEY);
    double deadline = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (acr_mono_s() <= deadline) return;
    lua_getfield(L, LUA_REGISTRYINDEX, BUDGET_KEY);
    int budget = (int)lua_tonumber(L, -1);
    lua_pop(L, 1);
    luaL_error(L,
               "the load shape was interrupted: it worked for more than %d ms without returning "
               "(it is called every second and must return at once)",
               budget);
}

/* Message handler: {message, traceback}. */
static int msgh(lua_State *L)
{
    if (!lua_isstring(L, 1))
        lua_pushfstring(L, "the load shape raised a non-string error (a %s value)",
                        luaL_typename(L, 1));
    else
        lua_pushvalue(L, 1);
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, 1);
    luaL_traceback(L, L, NULL, 1);
    lua_rawseti(L, -2, 2);
    return 1;
}

int acr_shape_call(lua_State *L, double run_time, unsigned budget_ms,
                   const acr_user_class_t *classes, size_t nclasses, acr_shape_target_t *out,
                   char *err, size_t errlen, char *tb, size_t tblen)
{
    memset(out, 0, sizeof(*out));
    if (tb && tblen) tb[0] = '\0';
    int fn = lua_gettop(L);
    /* Compiled traces do not run hooks: the shape runs interpreted. */
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_FLUSH);
    luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
    lua_pushnumber(L, acr_mono_s() + budget_ms / 1000.0);
    lua_setfield(L, LUA_REGISTRYINDEX, DEADLINE_KEY);
    lua_pushnumber(L, budget_ms);
    lua_setfield(L, LUA_REGISTRYINDEX, BUDGET_KEY);
    lua_pushcfunction(L, msgh);
    lua_insert(L, fn);
    lua_pushnumber(L, run_time);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_COUNT);
    int st = lua_pcall(L, 1, LUA_MULTRET, fn);
    lua_sethook(L, NULL, 0, 0);
    int rc;
    if (st != 0) {
        if (lua_istable(L, -1)) {
            lua_rawgeti(L, -1, 1);
            snprintf(err, errlen, "%s", lua_tostring(L, -1));
            lua_rawgeti(L, -2, 2);
            if (tb && tblen)
                snprintf(tb, tblen, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
            lua_pop(L, 2);
        } else {
            snprintf(err, errlen, "%s",
                     lua_isstring(L, -1) ? lua_tostring(L, -1) : "the load shape failed");
        }
        rc = -EINVAL;
    } else {
        rc = check_result(L, fn + 1, lua_gettop(L) - fn, classes, nclasses, out, err, errlen);
    }
    lua_settop(L, fn - 1);
    return rc;
}

/* ---- the runner ---- */

struct acr_shape {
    uv_loop_t *loop;
    acr_core_t *core;
    lua_State *L;
    const acr_user_class_t *classes;
    size_t nclasses;
    void (*on_error)(void *ud);
    void *ud;
    char where[256];
    acr_shape_stage_t *stages; /* acrida.stages; NULL for a shape function */
    size_t nstages;
    uv_timer_t timer;
    double t0;              /* run time 0 in s of uv_now (before the loop's start when resumed) */
    bool active;            /* a test driven by the shape is under way */
    acr_shape_target_t cur; /* the target applied last */
    /* an adopted test (acr_shape_resume): */
    bool reapply;         /* the next tick applies its target even when unchanged */
    bool warned;          /* the adopted test has no start time: said once */
    double origin;        /* the start (epoch s) the resumed run time counts from */
    unsigned long joined; /* the adoption's rejoins seen (acr_core_adoption) */
};

/* uv_now in seconds. */
static double now_s(const acr_shape_t *s)
{
    return (double)uv_now(s->loop) / 1000.0;
}

static void stages_free(acr_shape_stage_t *st, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < st[i].nclasses; k++) free(st[i].classes[k]);
        free(st[i].classes);
    }
    free(st);
}

/* Reads the checked stages table at the top of s->L into s->stages. */
static int read_stages(acr_shape_t *s, char *err, size_t errlen)
{
    lua_State *L = s->L;
    size_t n = lua_objlen(L, -1);
    s->stages = calloc(n, sizeof(*s->stages));
    if (!s->stages) return -ENOMEM;
    s->nstages = n;
    for (size_t i = 0; i < n; i++) {
        acr_shape_stage_t *st = &s->stages[i];
        lua_rawgeti(L, -1, (int)i + 1);
        lua_getfield(L, -1, "duration");
        st->duration = lua_tonumber(L, -1);
        lua_getfield(L, -2, "users");
        st->users = (long)lua_tonumber(L, -1);
        lua_getfield(L, -3, "spawn_rate");
        st->rate = lua_tonumber(L, -1);
        lua_getfield(L, -4, "user_classes");
        size_t nc = lua_istable(L, -1) ? lua_objlen(L, -1) : 0;
        if (nc && !(st->classes = calloc(nc, sizeof(*st->classes)))) return -ENOMEM;
        for (size_t k = 0; k < nc; k++) {
            lua_rawgeti(L, -1, (int)k + 1);
            const char *name = lua_tostring(L, -1);
            if (!class_known(s->classes, s->nclasses, name)) {
                snprintf(err, errlen, "acrida.stages (%s): stage %zu: unknown user class '%.200s'",
                         s->where, i + 1, name);
                return -EINVAL;
            }
            if (!(st->classes[k] = strdup(name))) return -ENOMEM;
            st->nclasses++;
            lua_pop(L, 1);
        }
        lua_pop(L, 5);
    }
    return 0;
}

/* An adopted test without a known start: the shape cannot drive it (the master cannot know how
 * far into the shape it is, and guessing would move users the workers run). Said once per test;
 * a start time a later rejoin brings still resumes it (adoption_changed). */
static void warn_adopted(acr_shape_t *s, acr_core_t *c)
{
    acr_core_snapshot_t snap;
    s->warned = true;
    if (acr_core_snapshot(c, &snap) < 0) return;
    ACR_WARN("load shape (%s): test %s was adopted from the workers of a previous master without "
             "its start time (workers older than this master): the shape does not drive it (its "
             "users stay as the workers run them); stop it and start a new test to follow the "
             "shape",
             s->where, snap.test_id);
    acr_core_snapshot_free(&snap);
}

/* The shape no longer drives a test: its timer stops and its target is forgotten. Returns whether
 * it was driving one. */
static bool deactivate(acr_shape_t *s)
{
    bool was = s->active;
    uv_timer_stop(&s->timer);
    s->active = false;
    s->origin = 0;
    acr_shape_target_clear(&s->cur);
    return was;
}

/* After a frame or a liveness tick: an adopted test (proto/PROTOCOL.md, section 7) resumes the
 * shape at its run time once the rejoins gave its start; while it is resumed, a worker adopted
 * into it later gets the target applied again at the next tick, and an earlier start moves the
 * run time on. */
static void adoption_changed(acr_shape_t *s, acr_core_t *c)
{
    acr_core_adoption_t a;
    acr_core_adoption(c, &a);
    if (!a.adopted) return;
    if (s->active) {
        if (s->origin <= 0) return; /* a test this shape started */
        if (a.joined != s->joined) s->reapply = true;
        s->joined = a.joined;
        if (a.started_at > 0 && a.started_at < s->origin) {
            s->t0 -= s->origin - a.started_at;
            s->origin = a.started_at;
        }
        return;
    }
    if (a.started_at <= 0) {
        if (!s->warned) warn_adopted(s, c);
        return;
    }
    char err[1024];
    s->origin = a.started_at;
    s->joined = a.joined;
    acr_shape_resume(s, acr_now() - a.started_at, err, sizeof err);
}

static void on_core_event(acr_core_t *c, const acr_core_event_t *ev, void *ud)
{
    acr_shape_t *s = ud;
    if (ev->type == ACR_CORE_EV_WORKERS) {
        adoption_changed(s, c);
        return;
    }
    if (ev->type != ACR_CORE_EV_STATE) return;
    if (ev->to == ACR_RUN_SPAWNING && !s->active &&
        (ev->from == ACR_RUN_READY || ev->from == ACR_RUN_STOPPED))
        s->warned = false; /* a new test, maybe adopted: the next ACR_CORE_EV_WORKERS tells */
    if (ev->to == ACR_RUN_SPAWNING || ev->to == ACR_RUN_RUNNING) return;
    deactivate(s); /* stopping, stopped: the shape's test is over */
}

int acr_shape_new(const acr_shape_config_t *cfg, acr_shape_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!acr_shape_declared(cfg->L)) return 0;
    acr_shape_t *s = calloc(1, sizeof(*s));
    if (!s) return -ENOMEM;
    s->loop = cfg->loop;
    s->core = cfg->core;
    s->L = cfg->L;
    s->classes = cfg->classes;
    s->nclasses = cfg->nclasses;
    s->on_error = cfg->on_error;
    s->ud = cfg->ud;
    lua_getfield(s->L, LUA_REGISTRYINDEX, WHERE_KEY);
    snprintf(s->where, sizeof s->where, "%s", lua_tostring(s->L, -1));
    lua_pop(s->L, 1);
    int top = lua_gettop(s->L);
    lua_getfield(s->L, LUA_REGISTRYINDEX, SHAPE_KEY);
    int rc = lua_istable(s->L, -1) ? read_stages(s, err, errlen) : 0;
    lua_settop(s->L, top);
    if (rc == -ENOMEM) snprintf(err, errlen, "out of memory reading acrida.stages");
    if (rc == 0) rc = uv_timer_init(s->loop, &s->timer);
    if (rc < 0) {
        stages_free(s->stages, s->nstages);
        free(s);
        return rc;
    }
    if ((rc = acr_core_subscribe(s->core, on_core_event, s)) < 0) {
        snprintf(err, errlen, "cannot subscribe the load shape to the core");
        acr_shape_close(s); /* the loop frees nothing of s: freed after it closed the timer */
        *out = s;
        return rc;
    }
    *out = s;
    return 0;
}

const char *acr_shape_where(const acr_shape_t *s)
{
    return s->where;
}

/* The target at @t: 1 with *@out, 0 for the end, or -EINVAL / -ENOMEM (reason in @err). */
static int evaluate(acr_shape_t *s, double t, acr_shape_target_t *out, char *err, size_t errlen,
                    char *tb, size_t tblen)
{
    if (!s->stages) {
        lua_getfield(s->L, LUA_REGISTRYINDEX, SHAPE_KEY);
        return acr_shape_call(s->L, t, ACR_SHAPE_BUDGET_MS, s->classes, s->nclasses, out, err,
                              errlen, tb, tblen);
    }
    memset(out, 0, sizeof(*out));
    long i = acr_shape_stage_at(s->stages, s->nstages, t);
    if (i < 0) return 0;
    out->users = s->stages[i].users;
    out->rate = s->stages[i].rate;
    out->stage = i;
    if (set_classes(out, s->stages[i].classes, s->stages[i].nclasses) < 0) {
        acr_shape_target_clear(out);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 1;
}

/* The shape failed: the test stops, the error is logged and recorded, the run fails. */
static void fail(acr_shape_t *s, const char *err, const char *tb)
{
    ACR_ERROR("load shape (%s): %s: stopping the test", ACR_ESC(s->where), ACR_ESC_LONG(err));
    if (acr_core_add_exception(s->core, err, tb ? tb : "", "master") < 0)
        ACR_ERROR("out of memory recording an exception");
    bool was = deactivate(s);
    if (was) acr_core_stop(s->core);
    if (s->on_error) s->on_error(s->ud);
}

static bool same_classes(const acr_shape_target_t *a, const acr_shape_target_t *b)
{
    if (a->nclasses != b->nclasses) return false;
    for (size_t i = 0; i < a->nclasses; i++)
        if (strcmp(a->classes[i], b->classes[i]) != 0) return false;
    return true;
}

/* Re-targets the core to @next: its classes, or every class when it names none (a stage without
 * user_classes after one with them). */
static int edit_core(acr_shape_t *s, const acr_shape_target_t *next)
{
    if (next->classes)
        return acr_core_edit(s->core, next->users, next->rate, (const char *const *)next->classes,
                             next->nclasses);
    const char **all = calloc(s->nclasses ? s->nclasses : 1, sizeof(*all));
    if (!all) return -ENOMEM;
    for (size_t i = 0; i < s->nclasses; i++) all[i] = s->classes[i].name;
    int rc = acr_core_edit(s->core, next->users, next->rate, all, s->nclasses);
    free(all);
    return rc;
}

/* "A, B" (at most @len bytes) for the log; "every class" for none. */
static const char *classes_text(const acr_shape_target_t *t, char *buf, size_t len)
{
    if (!t->classes) return "every class";
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < t->nclasses && o + 1 < len; i++) {
        int n = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", t->classes[i]);
        if (n < 0) break;
        o += (size_t)n;
    }
    return buf;
}

/* The shape returned nil at run time @rt: the test stops as the shape says. */
static void ended(acr_shape_t *s, double rt)
{
    ACR_INFO("load shape (%s): the shape ended at %.0f s: stopping the test", ACR_ESC(s->where),
             rt);
    deactivate(s);
    acr_core_stop(s->core);
}

static void tick_cb(uv_timer_t *t)
{
    acr_shape_t *s = acr_container_of(t, acr_shape_t, timer);
    char err[1024], tb[4096], names[256];
    acr_shape_target_t next;
    if (!s->active) return;
    double rt = now_s(s) - s->t0;
    int rc = evaluate(s, rt, &next, err, sizeof err, tb, sizeof tb);
    if (rc < 0) {
        fail(s, err, tb);
        return;
    }
    if (rc == 0) {
        ended(s, rt);
        return;
    }
    if (!s->reapply && next.users == s->cur.users && next.rate == s->cur.rate &&
        same_classes(&next, &s->cur)) {
        s->cur.stage = next.stage;
        acr_shape_target_clear(&next);
        return;
    }
    rc = edit_core(s, &next);
    if (rc < 0) {
        if (rc == -EAGAIN) ACR_WARN("load shape: no live worker to re-target: trying again");
        acr_shape_target_clear(&next);
        return;
    }
    s->reapply = false;
    const char *cls = classes_text(&next, names, sizeof names); /* "every class" is not in names */
    if (next.stage >= 0)
        ACR_INFO("load shape: stage %ld: %ld users at %g users/s (%s)", next.stage + 1, next.users,
                 next.rate, ACR_ESC_LONG(cls));
    else
        ACR_INFO("load shape: %ld users at %g users/s (%s)", next.users, next.rate,
                 ACR_ESC_LONG(cls));
    acr_shape_target_clear(&s->cur);
    s->cur = next; /* takes its classes */
}

int acr_shape_start(acr_shape_t *s, const char *host, double run_time, char *err, size_t errlen)
{
    char tb[4096];
    acr_shape_target_t first;
    if (s->active) {
        snprintf(err, errlen, "a test driven by the load shape is under way");
        return -EBUSY;
    }
    int rc = evaluate(s, 0, &first, err, errlen, tb, sizeof tb);
    if (rc < 0) {
        fail(s, err, tb);
        return -EINVAL;
    }
    if (rc == 0) {
        snprintf(err, errlen, "the load shape (%s) returned nil at run time 0: no test to run",
                 s->where);
        ACR_WARN("%s", ACR_ESC_LONG(err));
        return 1;
    }
    rc = acr_core_start(s->core, first.users, first.rate, host, run_time,
                        (const char *const *)first.classes, first.nclasses);
    if (rc < 0) {
        snprintf(err, errlen, "cannot start the test: %s", strerror(-rc));
        acr_shape_target_clear(&first);
        return rc;
    }
    char names[256];
    ACR_INFO("load shape (%s) starts the test: %s%ld users at %g users/s (%s)", ACR_ESC(s->where),
             first.stage >= 0 ? "stage 1: " : "", first.users, first.rate,
             ACR_ESC_LONG(classes_text(&first, names, sizeof names)));
    acr_shape_target_clear(&s->cur);
    s->cur = first;
    s->active = true;
    s->reapply = false;
    s->origin = 0;
    s->t0 = now_s(s);
    uv_timer_start(&s->timer, tick_cb, ACR_SHAPE_TICK_MS, ACR_SHAPE_TICK_MS);
    return 0;
}

int acr_shape_resume(acr_shape_t *s, double run_time, char *err, size_t errlen)
{
    char tb[4096], names[256];
    acr_shape_target_t now;
    if (s->active) {
        snprintf(err, errlen, "a test driven by the load shape is under way");
        return -EBUSY;
    }
    if (!(run_time > 0)) run_time = 0; /* a start a little ahead of this clock: its beginning */
    s->active = true;                  /* a failure or the end stops the adopted test */
    s->t0 = now_s(s) - run_time;
    int rc = evaluate(s, run_time, &now, err, errlen, tb, sizeof tb);
    if (rc < 0) {
        fail(s, err, tb);
        return -EINVAL;
    }
    if (rc == 0) {
        ended(s, run_time);
        return 1;
    }
    char stage[32] = "";
    if (now.stage >= 0) snprintf(stage, sizeof stage, "stage %ld: ", now.stage + 1);
    ACR_INFO("load shape (%s) resumes the adopted test at run time %.1f s: %s%ld users at %g "
             "users/s (%s), applied at the next tick",
             ACR_ESC(s->where), run_time, stage, now.users, now.rate,
             ACR_ESC_LONG(classes_text(&now, names, sizeof names)));
    acr_shape_target_clear(&s->cur);
    s->cur = now;      /* takes its classes */
    s->reapply = true; /* what the workers run is not the shape's yet: applied at the next tick */
    uv_timer_start(&s->timer, tick_cb, ACR_SHAPE_TICK_MS, ACR_SHAPE_TICK_MS);
    return 0;
}

bool acr_shape_active(const acr_shape_t *s)
{
    return s && s->active;
}

bool acr_shape_current(const acr_shape_t *s, long *users, double *rate, long *stage)
{
    if (!s || !s->active) return false;
    *users = s->cur.users;
    *rate = s->cur.rate;
    *stage = s->cur.stage;
    return true;
}

void acr_shape_close(acr_shape_t *s)
{
    if (!s) return;
    s->active = false;
    if (s->timer.loop && !uv_is_closing((uv_handle_t *)&s->timer))
        uv_close((uv_handle_t *)&s->timer, NULL);
}

void acr_shape_free(acr_shape_t *s)
{
    if (!s) return;
    acr_shape_target_clear(&s->cur);
    stages_free(s->stages, s->nstages);
    free(s);
}
