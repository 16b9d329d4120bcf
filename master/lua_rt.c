/*
 * The master's scenario runtime (master/lua_rt.h): the Lua state, the core subscriber that turns
 * run state changes into test_start / spawning_complete / test_stop, the core hooks for custom
 * messages and reports, and the sender behind acrida.runner:send_message on the master.
 */
#include "master/lua_rt.h"

#include "common/cli.h"
#include "common/events.h"
#include "common/log.h"
#include "common/lua_value.h"
#include "master/pools.h"
#include "master/shape.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct acr_lua_rt {
    lua_State *L;
    acr_core_t *core; /**< NULL before attach and after quitting */
    char *host;
    const acr_cli_opts_t *opts; /**< the parsed command line, for env.options (borrowed) */
    bool test_started;          /**< test_start fired, test_stop not yet */
    bool quit;
    acr_pools_t *pools; /**< the scenario's data pools (master/pools.h) */
    acr_buf_t pool_buf; /**< scratch for pool answers */
};

static void listener_error(const char *msg, const char *tb, void *ud)
{
    acr_lua_rt_t *rt = ud;
    ACR_ERROR("error in a scenario listener or message handler on the master: %s\n%s",
              ACR_ESC_LONG(msg), ACR_ESC_LONG(tb));
    if (rt->core && acr_core_add_exception(rt->core, msg, tb, "master") < 0)
        ACR_ERROR("out of memory recording an exception");
}

static void set_str(lua_State *L, const char *key, const char *v)
{
    if (!v) return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, key);
}

static void set_num(lua_State *L, const char *key, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, key);
}

static void set_bool(lua_State *L, const char *key, bool v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, key);
}

/* A list of strings (NULL: an empty list). */
static void set_list(lua_State *L, const char *key, char *const *list)
{
    lua_newtable(L);
    for (int i = 0; list && list[i]; i++) {
        lua_pushstring(L, list[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, key);
}

/* env.options: the options of the command line that matter to a scenario (never --web-auth or
 * the TLS files); an option not given is nil (run_time, stop_timeout, csv, html). */
static void push_options(const acr_cli_opts_t *o, lua_State *L)
{
    lua_createtable(L, 0, 16);
    if (!o) return;
    set_str(L, "scenario", o->scenario);
    set_str(L, "host", o->host);
    set_num(L, "users", o->users);
    set_num(L, "spawn_rate", o->spawn_rate);
    if (o->run_time >= 0) set_num(L, "run_time", o->run_time);
    set_bool(L, "headless", o->headless);
    set_bool(L, "autostart", o->autostart);
    set_list(L, "tags", o->tags);
    set_list(L, "exclude_tags", o->exclude_tags);
    if (o->stop_timeout >= 0) set_num(L, "stop_timeout", o->stop_timeout);
    set_num(L, "expect_workers", o->expect_workers);
    set_num(L, "local_workers", o->local_workers);
    set_str(L, "csv", o->csv);
    set_str(L, "html", o->html);
    set_bool(L, "json", o->json);
    set_bool(L, "reset_stats", o->reset_stats);
    set_str(L, "loglevel", o->loglevel);
}

/* Pushes the events' env: role, host, user_count, worker_count, options. */
static void push_env(acr_lua_rt_t *rt)
{
    lua_State *L = rt->L;
    acr_core_snapshot_t s;
    bool snap = rt->core && acr_core_snapshot(rt->core, &s) == 0;
    lua_createtable(L, 0, 5);
    push_options(rt->opts, L);
    lua_setfield(L, -2, "options");
    lua_pushliteral(L, "master");
    lua_setfield(L, -2, "role");
    if (rt->host) {
        lua_pushstring(L, rt->host);
        lua_setfield(L, -2, "host");
    }
    if (snap) {
        lua_pushnumber(L, (double)s.user_count);
        lua_setfield(L, -2, "user_count");
        lua_pushnumber(L, (double)s.live_workers);
        lua_setfield(L, -2, "worker_count");
        acr_core_snapshot_free(&s);
    }
}

static void fire_env(acr_lua_rt_t *rt, const char *name)
{
    if (!acr_events_has_listeners(rt->L, name)) return;
    push_env(rt);
    acr_events_fire(rt->L, name, 1, listener_error, rt);
}

static void fire_test_stop(acr_lua_rt_t *rt)
{
    if (!rt->test_started) return;
    rt->test_started = false;
    fire_env(rt, "test_stop");
}

static void on_core_event(acr_core_t *c, const acr_core_event_t *ev, void *ud)
{
    acr_lua_rt_t *rt = ud;
    if (!rt->core) return;
    if (ev->type == ACR_CORE_EV_WORKERS) acr_pools_expire(rt->pools, acr_mono_s());
    if (ev->type != ACR_CORE_EV_STATE) return;
    if (ev->to == ACR_RUN_STOPPED) acr_pools_test_stop(rt->pools); /* every lease returns */
    if (ev->to == ACR_RUN_SPAWNING && (ev->from == ACR_RUN_READY || ev->from == ACR_RUN_STOPPED)) {
        acr_pools_test_start(rt->pools);
        rt->test_started = true;
        fire_env(rt, "test_start");
    } else if (ev->to == ACR_RUN_RUNNING && acr_events_has_listeners(rt->L, "spawning_complete")) {
        acr_core_snapshot_t s;
        long target = 0;
        if (acr_core_snapshot(c, &s) == 0) {
            target = s.target_users;
            acr_core_snapshot_free(&s);
        }
        lua_pushnumber(rt->L, (double)target);
        acr_events_fire(rt->L, "spawning_complete", 1, listener_error, rt);
    } else if (ev->to == ACR_RUN_STOPPED) {
        fire_test_stop(rt);
    }
}

static void on_custom(acr_core_t *c, const char *node_id, const char *type, const void *data,
                      size_t len, void *ud)
{
    acr_lua_rt_t *rt = ud;
    char err[256];
    (void)c;
    if (!rt->core) return;
    if (acr_messages_dispatch(rt->L, type, data, len, node_id, listener_error, rt, err,
                              sizeof err) < 0)
        ACR_WARN("message '%s' from worker %s dropped: %s", ACR_ESC(type), ACR_ESC(node_id),
                 ACR_ESC_LONG(err));
}

static void on_report(acr_core_t *c, const char *node_id, const void *extra, size_t extra_len,
                      long user_count, void *ud)
{
    acr_lua_rt_t *rt = ud;
    lua_State *L = rt->L;
    char err[256];
    (void)c;
    if (!rt->core || !acr_events_has_listeners(L, "worker_report")) return;
    int top = lua_gettop(L);
    lua_pushstring(L, node_id);
    if (!extra || acr_lua_value_push(L, extra, extra_len, err, sizeof err) < 0 ||
        !lua_istable(L, -1)) {
        if (extra)
            ACR_WARN("report fields from worker %s ignored: %s", ACR_ESC(node_id),
                     ACR_ESC_LONG(err));
        lua_settop(L, top + 1);
        lua_newtable(L);
    }
    if (user_count >= 0) {
        lua_pushnumber(L, (double)user_count);
        lua_setfield(L, -2, "user_count");
    }
    acr_events_fire(L, "worker_report", 2, listener_error, rt);
    lua_settop(L, top);
}

/* An answer of the pool store to a worker. */
static void pool_reply(const char *node_id, const acr_pool_reply_t *rep, void *ud)
{
    acr_lua_rt_t *rt = ud;
    if (!rt->core) return;
    acr_buf_reset(&rt->pool_buf);
    if (acr_msg_encode_pool_rep(&rt->pool_buf, rep->req_id, rep->row, rep->row_len, rep->row_id,
                                rep->size, rep->available, rep->error, node_id) < 0) {
        ACR_ERROR("out of memory answering a pool request of worker %s", ACR_ESC(node_id));
        return;
    }
    int rc = acr_core_send_frame(rt->core, node_id, rt->pool_buf.data, rt->pool_buf.len);
    if (rc < 0) ACR_DEBUG("pool answer to worker %s not sent: %s", ACR_ESC(node_id), strerror(-rc));
}

static void on_pool(acr_core_t *c, const char *node_id, const struct acr_msg_pool *req, void *ud)
{
    acr_lua_rt_t *rt = ud;
    (void)c;
    if (rt->core) acr_pools_request(rt->pools, node_id, req, acr_mono_s());
}

static void on_worker_lost(acr_core_t *c, const char *node_id, void *ud)
{
    acr_lua_rt_t *rt = ud;
    (void)c;
    acr_pools_release_node(rt->pools, node_id);
}

/* acrida.runner:send_message on the master: to one worker or all. */
static int send_custom(const char *type, const void *data, size_t len, const char *node_id,
                       void *ud, char *err, size_t errlen)
{
    acr_lua_rt_t *rt = ud;
    if (!rt->core) {
        snprintf(err, errlen, "the master has no workers yet (or is shutting down)");
        return -ENOTCONN;
    }
    int rc = acr_core_send_custom(rt->core, type, data, len, node_id);
    if (rc == -ENOENT) snprintf(err, errlen, "no worker '%s'", node_id);
    if (rc == -EINVAL) rc = -EIO; /* the type was checked before: not the caller's mistake */
    if (rc < 0 && !err[0]) snprintf(err, errlen, "%s", strerror(-rc));
    return rc;
}

int acr_lua_rt_new(const char *path, const char *const *tags, const char *const *exclude_tags,
                   acr_lua_rt_t **out, acr_user_class_t **classes, size_t *n, char *err,
                   size_t errlen)
{
    *out = NULL;
    *classes = NULL;
    *n = 0;
    acr_lua_rt_t *rt = calloc(1, sizeof(*rt));
    if (rt) rt->L = luaL_newstate();
    if (!rt || !rt->L) {
        free(rt);
        snprintf(err, errlen, "out of memory (Lua state)");
        return -ENOMEM;
    }
    int rc = acr_scenario_open(rt->L, "master", err, errlen);
    if (rc == 0) rc = acr_shape_open(rt->L); /* acrida.shape / acrida.stages (master/shape.h) */
    if (rc == 0 && !(rt->pools = acr_pools_new(pool_reply, rt))) rc = -ENOMEM;
    if (rc == 0) { /* acrida.pool (master/pools.h): CSV files relative to the scenario's dir */
        const char *slash = strrchr(path, '/');
        char *dir = slash ? strndup(path, (size_t)(slash - path + (slash == path))) : strdup(".");
        rc = dir ? acr_pools_open(rt->L, rt->pools, dir) : -ENOMEM;
        free(dir);
        if (rc < 0) snprintf(err, errlen, "cannot install acrida.pool");
    }
    if (rc == 0 && (rc = acr_events_open(rt->L)) < 0)
        snprintf(err, errlen, "cannot install acrida.events");
    if (rc == 0 && (rc = acr_messages_open(rt->L, send_custom, rt)) < 0)
        snprintf(err, errlen, "cannot install the messages API");
    if (rc == 0) {
        acr_events_set_error_handler(rt->L, listener_error, rt);
        rc = acr_scenario_exec_file(rt->L, path, err, errlen);
    }
    if (rc == 0 && acr_scenario_nclasses(rt->L) > 0 &&
        ((tags && tags[0]) || (exclude_tags && exclude_tags[0])))
        rc = acr_scenario_apply_tags(rt->L, tags, exclude_tags, err, errlen);
    if (rc == 0) rc = acr_scenario_read_classes(rt->L, true, classes, n, err, errlen);
    if (rc < 0) {
        acr_lua_rt_free(rt);
        return rc;
    }
    *out = rt;
    return 0;
}

int acr_lua_rt_attach(acr_lua_rt_t *rt, acr_core_t *core, const acr_cli_opts_t *opts)
{
    rt->opts = opts;
    if (opts && opts->host && !(rt->host = strdup(opts->host))) return -ENOMEM;
    int rc = acr_core_subscribe(core, on_core_event, rt);
    if (rc < 0) return rc;
    acr_core_hooks_t hooks = {.on_custom = on_custom,
                              .on_report = on_report,
                              .on_pool = on_pool,
                              .on_worker_lost = on_worker_lost};
    acr_core_set_hooks(core, &hooks, rt);
    rt->core = core;
    fire_env(rt, "init");
    return 0;
}

void acr_lua_rt_quitting(acr_lua_rt_t *rt)
{
    if (!rt || rt->quit) return;
    rt->quit = true;
    fire_test_stop(rt);
    fire_env(rt, "quitting");
    if (rt->core) acr_core_set_hooks(rt->core, NULL, NULL);
    rt->core = NULL;
}

struct lua_State *acr_lua_rt_state(acr_lua_rt_t *rt)
{
    return rt->L;
}

acr_pools_t *acr_lua_rt_pools(acr_lua_rt_t *rt)
{
    return rt ? rt->pools : NULL;
}

void acr_lua_rt_free(acr_lua_rt_t *rt)
{
    if (!rt) return;
    if (rt->L) lua_close(rt->L);
    acr_pools_free(rt->pools);
    acr_buf_free(&rt->pool_buf);
    free(rt->host);
    free(rt);
}
