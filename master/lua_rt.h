/*
 * The master's scenario runtime: one persistent LuaJIT state in the "master" role that holds the
 * scenario for the master's lifetime. It gives the user classes to the core (the same classes as
 * acr_scenario_classes) and runs what a scenario does on the master: its event listeners (init
 * once attached to the core; test_start, spawning_complete and test_stop from the core's state
 * changes, once per test; worker_report per received report; quitting at shutdown) and the
 * handlers of its custom messages (acrida.runner:register_message / :send_message to all
 * workers or one). A listener or handler error is logged and becomes an exception row of the
 * run (node "master"); the other listeners still run.
 *
 * Error convention: 0 or a negative errno with the reason in a caller buffer.
 */
#ifndef ACR_MASTER_LUA_RT_H
#define ACR_MASTER_LUA_RT_H

#include "common/scenario.h"
#include "master/core/core.h"

#include <stddef.h>

typedef struct acr_lua_rt acr_lua_rt_t;

/**
 * Loads the scenario @path in a new state, applies --tags/--exclude-tags (@tags, @exclude_tags:
 * NULL-terminated, NULL = none; see acr_scenario_apply_tags) and reads its classes into
 * *@classes / *@n (free with acr_scenario_classes_free). Errors as acr_scenario_classes_tagged
 * ("<file>:<line>: <message>", "user class 'X' has no task left after --tags/--exclude-tags",
 * -EINVAL; -ENOMEM).
 */
int acr_lua_rt_new(const char *path, const char *const *tags, const char *const *exclude_tags,
                   acr_lua_rt_t **out, acr_user_class_t **classes, size_t *n, char *err,
                   size_t errlen);

struct acr_cli_opts; /**< common/cli.h */

/** Attaches the runtime to @core (subscribes, sets the core's hooks) and fires init. @opts (NULL:
 *  none; borrowed, it must outlive @rt) gives the events' env its host (-H) and env.options (a
 *  documented subset, docs/scenario-api.md "Events"). Returns 0 or a negative errno. */
int acr_lua_rt_attach(acr_lua_rt_t *rt, acr_core_t *core, const struct acr_cli_opts *opts);

/** The master is shutting down: test_stop if a test started and its stop was not seen, then
 *  quitting; the core is no longer used afterwards. Calls after the first do nothing. */
void acr_lua_rt_quitting(acr_lua_rt_t *rt);

/** The scenario's Lua state, for the load shape (master/shape.h: acr_shape_new), which runs on
 *  it; owned by @rt. */
struct lua_State *acr_lua_rt_state(acr_lua_rt_t *rt);

/** The scenario's data pools (master/pools.h), owned by @rt; NULL when @rt is NULL. */
struct acr_pools *acr_lua_rt_pools(acr_lua_rt_t *rt);

/** Closes the Lua state. NULL is fine. */
void acr_lua_rt_free(acr_lua_rt_t *rt);

#endif
